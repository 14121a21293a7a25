"""Runs the openspf.org test suite of RFC 7208 (rfc7208-tests.yml, as the pyspf package on PyPI
ships it) against `wasmail spf check`: for each section, a DNS server on 127.0.0.1 answers
from the section's zone data, and each test's host, HELO name and MAIL FROM go to the server's
SPF check through that DNS server.

Zone data as the suite's drivers read it: a type SPF (99) record also stands as a TXT record
unless the name has `TXT: NONE`; TIMEOUT makes the questions about the name that its records
do not answer fail — here with SERVFAIL, which the check takes as the same temporary DNS error
as a timeout, without the wait.

Usage: spf_suite.py WASMAIL CACHE_DIR WORKDIR
The suite comes from pyspf 2.0.14's source package on PyPI (found through the simple index,
its SHA-256 checked against the index's), downloaded once into CACHE_DIR. Prints a JSON object:
{"run": N, "failed": [{"test", "section", "expected", "got"}...]}."""

import hashlib
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tarfile
import urllib.request

import yaml
from dns_listen import listen

A, NS, CNAME, PTR, MX, TXT, AAAA, SPF = 1, 2, 5, 12, 15, 16, 28, 99
TYPES = {"A": A, "CNAME": CNAME, "PTR": PTR, "MX": MX, "TXT": TXT, "AAAA": AAAA, "SPF": SPF}


def encode_name(name):
    out = b""
    for label in [l for l in name.rstrip(".").split(".") if l]:
        raw = label.encode("latin-1", "replace")[:63]
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def as_bytes(text):
    # The suite writes octets >= 0x80 as \x escapes: latin-1 keeps them as octets.
    return text.encode("latin-1", "replace") if isinstance(text, str) else bytes(text)


class Zone:
    def __init__(self, data):
        self.records = {}  # name -> [(type, rdata bytes)]
        self.timeout = set()
        for name, entries in (data or {}).items():
            name = name.lower().rstrip(".")
            records = self.records.setdefault(name, [])
            no_txt = False
            spf = []
            for entry in entries:
                if entry == "TIMEOUT":
                    self.timeout.add(name)
                    continue
                for kind, value in entry.items():
                    if kind == "TXT" and value == "NONE":
                        no_txt = True
                        continue
                    if kind not in TYPES:
                        continue
                    rdata = self.rdata(kind, value)
                    if rdata is not None:
                        records.append((TYPES[kind], rdata))
                        if kind == "SPF":
                            spf.append(rdata)
            if not no_txt:
                have_txt = {r for t, r in records if t == TXT}
                records.extend((TXT, r) for r in spf if r not in have_txt)

    @staticmethod
    def rdata(kind, value):
        if kind == "A":
            return socket.inet_aton(value)
        if kind == "AAAA":
            return socket.inet_pton(socket.AF_INET6, value)
        if kind in ("PTR", "CNAME"):
            return encode_name(value)
        if kind == "MX":
            return struct.pack("!H", value[0]) + encode_name(value[1])
        if kind in ("TXT", "SPF"):
            parts = value if isinstance(value, list) else [value]
            if not parts:
                # A record of no strings cannot be sent (the suite's "null text").
                return None
            out = b""
            for part in parts:
                raw = as_bytes(part)
                for i in range(0, max(len(raw), 1), 255):
                    chunk = raw[i:i + 255]
                    out += bytes([len(chunk)]) + chunk
            return out
        return None

    def answer(self, data, limit=None):
        (qid,) = struct.unpack("!H", data[:2])
        pos, labels = 12, []
        while data[pos] != 0:
            n = data[pos]
            labels.append(data[pos + 1:pos + 1 + n].decode("latin-1"))
            pos += 1 + n
        qtype, _ = struct.unpack("!HH", data[pos + 1:pos + 5])
        question = data[12:pos + 5]
        name = ".".join(labels).lower()
        has_type = any(kind == qtype or kind == CNAME for kind, _ in self.records.get(name, []))
        if name in self.timeout and not has_type:
            return struct.pack("!HHHHHH", qid, 0x8182, 1, 0, 0, 0) + question
        if name not in self.records:
            return struct.pack("!HHHHHH", qid, 0x8583, 1, 0, 0, 0) + question
        answers = b""
        count = 0
        for kind, rdata in self.records[name]:
            # A CNAME answers every type (the resolver follows it).
            if kind == qtype or kind == CNAME:
                answers += b"\xc0\x0c" + struct.pack("!HHIH", kind, 1, 60, len(rdata)) + rdata
                count += 1
        if limit is not None and 12 + len(question) + len(answers) > limit:
            # Too long for UDP: truncated (TC), and the resolver asks again over TCP.
            return struct.pack("!HHHHHH", qid, 0x8780, 1, 0, 0, 0) + question
        return struct.pack("!HHHHHH", qid, 0x8580, 1, count, 0, 0) + question + answers


class Server:
    """Answers from the zone in hand (a section's), on a free port."""

    def __init__(self):
        self.zone = Zone({})
        self.port = listen(0, lambda data, limit: self.zone.answer(data, limit))


PACKAGE, VERSION, MEMBER = "pyspf", "2.0.14", "pyspf-2.0.14/test/rfc7208-tests.yml"


def suite_text(cache):
    """The suite's YAML, from the cached source package or PyPI."""
    archive = os.path.join(cache, f"{PACKAGE}-{VERSION}.tar.gz")
    if not os.path.exists(archive):
        # PyPI's simple index (PEP 503) names the file with its SHA-256.
        with urllib.request.urlopen(f"https://pypi.org/simple/{PACKAGE}/", timeout=60) as r:
            index = r.read().decode()
        found = re.search(rf'href="([^"#]*/{PACKAGE}-{VERSION}\.tar\.gz)#sha256=([0-9a-f]{{64}})"', index)
        if not found:
            sys.exit(f"{PACKAGE} {VERSION}'s source package is not in PyPI's index")
        url, digest = found.groups()
        with urllib.request.urlopen(url, timeout=120) as r:
            data = r.read()
        if hashlib.sha256(data).hexdigest() != digest:
            sys.exit(f"{url}: the download does not match PyPI's SHA-256")
        os.makedirs(cache, exist_ok=True)
        with open(archive + ".tmp", "wb") as f:
            f.write(data)
        os.replace(archive + ".tmp", archive)
    with tarfile.open(archive) as tar:
        return tar.extractfile(MEMBER).read().decode("latin-1")


def main():
    wasmail, cache, work = sys.argv[1:4]
    server = Server()
    config = os.path.join(work, "spf-suite.toml")
    with open(config, "w") as f:
        f.write(f'hostname = "receiver.example"\n[dns]\nnameservers = ["127.0.0.1:{server.port}"]\n')
    run, failed = 0, []
    sections = list(yaml.safe_load_all(io.StringIO(suite_text(cache))))
    for section in sections:
        server.zone = Zone(section.get("zonedata"))
        for name, test in section["tests"].items():
            expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
            argv = [wasmail, "spf", "check", "--config", config, "--ip", str(test["host"]), "--helo", str(test["helo"]),
                    "--sender", str(test.get("mailfrom", ""))]
            out = subprocess.run(argv, capture_output=True, text=True, errors="replace")
            got = out.stdout.split(" ")[0].strip() if out.returncode == 0 else "error: " + out.stderr.strip()
            run += 1
            if got not in expected:
                failed.append({"test": name, "section": section["description"], "expected": expected, "got": got})
    print(json.dumps({"run": run, "failed": failed}, indent=1))


main()

"""A tiny authoritative DNS server for the tests (UDP and TCP on 127.0.0.1), answering from a
table: MX and A records, a null MX (RFC 7505), a domain with no MX (RFC 5321 5.1 A fallback),
the records a test adds, and NXDOMAIN for anything else.

Usage: dns_server.py PORT [RECORDS.json]. RECORDS.json maps a name to its records by type:
{"example.org": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"], "A": ["127.0.0.1"], "MX": [[10, "mx"]]}};
a TXT value longer than 255 octets is sent as several strings (RFC 1035 3.3.14), and
{"SERVFAIL": true} makes every question about the name fail (a temporary DNS error).
Prints "ready" once it listens."""

import json
import socket
import struct
import sys

from dns_listen import forever, listen

PORT = int(sys.argv[1])
A, MX, TXT, AAAA = 1, 15, 16, 28
TYPES = {"A": A, "MX": MX, "TXT": TXT, "AAAA": AAAA}

# name -> {type: [rdata...]}; MX rdata is (preference, exchange).
ZONE = {
    "mx.test": {MX: [(10, "mx1.mx.test")]},
    "mx1.mx.test": {A: ["127.0.0.1"]},
    "nomx.test": {A: ["127.0.0.1"]},
    "nullmx.test": {MX: [(0, "")]},
}
SERVFAIL = set()
if len(sys.argv) > 2:
    with open(sys.argv[2]) as f:
        for name, records in json.load(f).items():
            name = name.lower().rstrip(".")
            if records.get("SERVFAIL"):
                SERVFAIL.add(name)
                continue
            entry = ZONE.setdefault(name, {})
            for kind, values in records.items():
                entry.setdefault(TYPES[kind], []).extend(tuple(v) if kind == "MX" else v for v in values)


def encode_name(name):
    out = b""
    for label in [l for l in name.split(".") if l]:
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def parse_question(data):
    pos, labels = 12, []
    while data[pos] != 0:
        n = data[pos]
        labels.append(data[pos + 1:pos + 1 + n].decode())
        pos += 1 + n
    qtype, qclass = struct.unpack("!HH", data[pos + 1:pos + 5])
    return ".".join(labels).lower(), qtype, pos + 5


def answer(data):
    (qid,) = struct.unpack("!H", data[:2])
    name, qtype, end = parse_question(data)
    question = data[12:end]
    if name in SERVFAIL:
        return struct.pack("!HHHHHH", qid, 0x8182, 1, 0, 0, 0) + question
    if name not in ZONE:
        return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
    records = b""
    count = 0
    for rdata in ZONE[name].get(qtype, []):
        if qtype == A:
            body = socket.inet_aton(rdata)
        elif qtype == AAAA:
            body = socket.inet_pton(socket.AF_INET6, rdata)
        elif qtype == TXT:
            raw = rdata.encode()
            body = b"".join(bytes([len(raw[i:i + 255])]) + raw[i:i + 255] for i in range(0, max(len(raw), 1), 255))
        else:
            body = struct.pack("!H", rdata[0]) + encode_name(rdata[1])
        records += b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 60, len(body)) + body
        count += 1
    return struct.pack("!HHHHHH", qid, 0x8580, 1, count, 0, 0) + question + records


listen(PORT, lambda data, limit: answer(data))
print("ready", flush=True)
forever()

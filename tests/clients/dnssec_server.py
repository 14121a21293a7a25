"""A DNSSEC-signed authoritative DNS server for the DANE tests (UDP and TCP on 127.0.0.1), with
dnspython (Debian's python3-dnspython, which python3-dkim brings): one zone, signed with an
ECDSA P-256 key made at start (algorithm 13), whose DNSKEY is written to TRUST_ANCHOR as a
zone-file line for the resolver to trust. Answers carry RRSIGs when the query sets DO; a name
without records of the asked type gets a signed NSEC and SOA (NODATA); a name outside the
records gets NXDOMAIN with a signed NSEC covering it.

Usage (with Debian's python3): dnssec_server.py PORT ZONE RECORDS.json TRUST_ANCHOR
RECORDS.json: {"mx1.dane.test": {"A": ["127.0.0.1"], "TLSA": ["3 1 1 <hex>"]},
"dane.test": {"MX": ["10 mx1.dane.test."]}} — values in zone-file form; a TLSA value
`3 1 1 spki-sha256:CERT.pem` stands for the SHA-256 of that certificate's public key.
Prints "ready"."""

import json
import sys
import time

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec
from dns_listen import forever, listen

PORT, ORIGIN, RECORDS_FILE, ANCHOR_FILE = int(sys.argv[1]), dns.name.from_text(sys.argv[2]), sys.argv[3], sys.argv[4]
TTL = 300
KEY = ec.generate_private_key(ec.SECP256R1())
DNSKEY = dns.dnssec.make_dnskey(KEY.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)

# name -> {rdtype: RRset}
ZONE = {}


def spki_sha256(text):
    """`3 1 1 spki-sha256:FILE` with the digest of FILE's SubjectPublicKeyInfo in place."""
    head, marker, path = text.partition("spki-sha256:")
    if not marker:
        return text
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return head + digest.finalize().hex()


def add(name, rdtype, texts):
    texts = [spki_sha256(t) for t in texts]
    name = dns.name.from_text(name, origin=dns.name.root)
    rdtype = dns.rdatatype.from_text(rdtype)
    rrset = dns.rrset.from_text_list(name, TTL, dns.rdataclass.IN, rdtype, texts)
    ZONE.setdefault(name, {})[rdtype] = rrset


with open(RECORDS_FILE) as f:
    for name, types in json.load(f).items():
        for rdtype, texts in types.items():
            add(name, rdtype, texts)
ZONE.setdefault(ORIGIN, {})[dns.rdatatype.DNSKEY] = dns.rrset.from_rdata(ORIGIN, TTL, DNSKEY)
add(ORIGIN.to_text(), "SOA", [f"ns.{ORIGIN} hostmaster.{ORIGIN} 1 3600 600 86400 {TTL}"])
add(ORIGIN.to_text(), "NS", [f"ns.{ORIGIN}"])

# NSEC chain in canonical order.
NAMES = sorted(ZONE)
for i, name in enumerate(NAMES):
    types = sorted(ZONE[name]) + [dns.rdatatype.NSEC, dns.rdatatype.RRSIG]
    following = NAMES[(i + 1) % len(NAMES)]
    text = f"{following} " + " ".join(dns.rdatatype.to_text(t) for t in types)
    ZONE[name][dns.rdatatype.NSEC] = dns.rrset.from_text_list(name, TTL, dns.rdataclass.IN, dns.rdatatype.NSEC, [text])

NOW = int(time.time())
SIGS = {}
for name, types in ZONE.items():
    for rdtype, rrset in types.items():
        sig = dns.dnssec.sign(rrset, KEY, ORIGIN, DNSKEY, inception=NOW - 3600, expiration=NOW + 86400)
        SIGS[(name, rdtype)] = dns.rrset.from_rdata(name, TTL, sig)

with open(ANCHOR_FILE, "w") as f:
    f.write(f"{ORIGIN.to_text()} {TTL} IN DNSKEY {DNSKEY.to_text()}\n")


def answer(wire, limit):
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    dnssec = bool(query.ednsflags & dns.flags.DO)
    question = query.question[0]
    name, rdtype = question.name, question.rdtype

    def put(section, rrset_name, t):
        section.append(ZONE[rrset_name][t])
        if dnssec:
            section.append(SIGS[(rrset_name, t)])

    if not name.is_subdomain(ORIGIN):
        response.set_rcode(dns.rcode.REFUSED)
    elif name in ZONE and rdtype in ZONE[name]:
        put(response.answer, name, rdtype)
    elif name in ZONE:
        # NODATA: the SOA, and the name's NSEC listing the types it has.
        put(response.authority, ORIGIN, dns.rdatatype.SOA)
        if dnssec:
            put(response.authority, name, dns.rdatatype.NSEC)
    else:
        response.set_rcode(dns.rcode.NXDOMAIN)
        put(response.authority, ORIGIN, dns.rdatatype.SOA)
        if dnssec:
            # The NSEC whose owner sorts just before the name covers it; the apex's covers
            # the wildcard (this zone has none).
            before = max((n for n in NAMES if n < name), default=NAMES[-1])
            put(response.authority, before, dns.rdatatype.NSEC)
            if before != ORIGIN:
                put(response.authority, ORIGIN, dns.rdatatype.NSEC)
    reply = response.to_wire(max_size=65535)
    if limit is not None and len(reply) > max(limit, query.payload if query.edns >= 0 else 0):
        # Too long for UDP: TC set, and the resolver asks again over TCP.
        truncated = dns.message.make_response(query)
        truncated.flags |= dns.flags.TC
        return truncated.to_wire()
    return reply


listen(PORT, answer)
print("ready", flush=True)
forever()

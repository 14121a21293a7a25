#!/usr/bin/env python3
"""Opens an implicit-TLS connection to 127.0.0.1:PORT and prints, as JSON, the SHA-256 of the
certificate the server presented and of the first certificate in CERT_FILE (PEM).

Usage: peer_cert.py PORT CERT_FILE"""

import hashlib
import json
import socket
import ssl
import sys

port, cert_file = int(sys.argv[1]), sys.argv[2]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with context.wrap_socket(raw) as tls:
        served = tls.getpeercert(binary_form=True)
pem = open(cert_file).read()
on_disk = ssl.PEM_cert_to_DER_cert(pem[: pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")])
print(json.dumps({"served": hashlib.sha256(served).hexdigest(), "file": hashlib.sha256(on_disk).hexdigest()}))

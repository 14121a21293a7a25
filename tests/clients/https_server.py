"""An HTTPS server for the MTA-STS tests: answers GET /.well-known/mta-sts.txt with the policy
the Host header names, from POLICIES.json ({"mta-sts.example.org": "version: STSv1\\n..."}),
as text/plain; anything else is 404.

Usage: https_server.py PORT CERT KEY POLICIES.json. Prints "ready" once it listens on
127.0.0.1."""

import http.server
import json
import ssl
import sys

port, cert, key, policies_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
with open(policies_file) as f:
    POLICIES = json.load(f)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        policy = POLICIES.get(host)
        if self.path != "/.well-known/mta-sts.txt" or policy is None:
            self.send_response(404)
            self.end_headers()
            return
        body = policy.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()

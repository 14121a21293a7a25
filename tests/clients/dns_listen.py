"""What the tests' DNS servers share (dns_server.py, dnssec_server.py, spf_suite.py): UDP and
TCP listeners on 127.0.0.1 that hand each query to `answer(query, limit)` and send back what
it returns. `limit` is the most a UDP reply may hold (512 octets, RFC 1035 4.2.1; the answer
sets TC past it and the resolver asks again over TCP); None over TCP."""

import socket
import struct
import threading


def listen(port, answer):
    """Starts both listeners (port 0: a free one) in daemon threads; returns the port."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    port = udp.getsockname()[1]
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(16)
    threading.Thread(target=serve_udp, args=(udp, answer), daemon=True).start()
    threading.Thread(target=serve_tcp, args=(tcp, answer), daemon=True).start()
    return port


def serve_udp(sock, answer):
    while True:
        data, addr = sock.recvfrom(4096)
        try:
            sock.sendto(answer(data, 512), addr)
        except Exception:
            pass


def serve_tcp(sock, answer):
    while True:
        conn, _ = sock.accept()
        with conn:
            try:
                (n,) = struct.unpack("!H", conn.recv(2))
                data = b""
                while len(data) < n:
                    data += conn.recv(n - len(data))
                reply = answer(data, None)
                conn.sendall(struct.pack("!H", len(reply)) + reply)
            except Exception:
                pass


def forever():
    threading.Event().wait()

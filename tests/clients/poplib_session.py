"""Drives a running wasmail with Python's poplib (stdlib): CAPA, login, STAT, LIST, UIDL, TOP,
RETR and DELE, then a second session that finds the deletion done and the UIDs unchanged.

Usage: poplib_session.py HOST PORT USER PASSWORD. Exits non-zero on any mismatch."""

import poplib
import sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

pop = poplib.POP3(host, port, timeout=30)
assert pop.getwelcome().startswith(b"+OK"), pop.getwelcome()
capa = pop.capa()
for name in ["TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING", "SASL"]:
    assert name in capa, capa
assert capa["SASL"] == ["PLAIN"], capa
assert "STLS" not in capa  # not offered until TLS lands
pop.user(user)
pop.pass_(password)
count, size = pop.stat()
assert count == 3, count
_, listing, _ = pop.list()
sizes = [int(line.split()[1]) for line in listing]
assert sum(sizes) == size, (sizes, size)
_, uids_before, _ = pop.uidl()
for n in range(1, count + 1):
    _, lines, octets = pop.retr(n)
    # poplib gives the lines without their CRLF and undoes dot-stuffing.
    assert octets >= sizes[n - 1], (octets, sizes[n - 1])
    assert sum(len(l) + 2 for l in lines) == sizes[n - 1], (n, sum(len(l) + 2 for l in lines), sizes[n - 1])
_, top_lines, _ = pop.top(1, 0)
assert top_lines[-1] == b"", top_lines  # the header and the blank line, no body
assert any(l.startswith(b"Subject: ") for l in top_lines)
pop.dele(2)
pop.quit()

pop = poplib.POP3(host, port, timeout=30)
pop.user(user)
pop.pass_(password)
assert pop.stat()[0] == 2
_, uids_after, _ = pop.uidl()
kept = [u for i, u in enumerate(uids_before) if i != 1]
assert [u.split()[1] for u in uids_after] == [u.split()[1] for u in kept], (uids_before, uids_after)
pop.quit()
print("ok")

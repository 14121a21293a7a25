#!/usr/bin/env python3
"""A QRESYNC resynchronisation (RFC 7162 3.2.5) driven with Python's imaplib: a first visit
notes UIDVALIDITY and HIGHESTMODSEQ, another client changes flags and expunges, and the next
visit's SELECT ... (QRESYNC (...)) must answer with VANISHED (EARLIER) for exactly the
expunged UIDs and FETCH for exactly the changed messages. Usage: imaplib_qresync.py PORT
(user tyler, password "secret", empty INBOX). Prints {"ok": true, ...} or fails with the step."""

import imaplib
import json
import re
import sys

port = int(sys.argv[1])


def check(condition, what):
    if not condition:
        raise SystemExit(f"failed: {what}")


def ok(result, what):
    typ, data = result
    check(typ == "OK", f"{what}: {typ} {data}")
    return data


def login():
    m = imaplib.IMAP4("127.0.0.1", port)
    ok(m.login("tyler", "secret"), "LOGIN")
    return m


first = login()
check("QRESYNC" in first.capabilities and "CONDSTORE" in first.capabilities, f"capabilities {first.capabilities}")
for i in range(1, 6):
    message = f"From: a@client.test\r\nSubject: m{i}\r\n\r\nbody {i}\r\n".encode()
    ok(first.append("INBOX", None, None, message), f"APPEND {i}")
ok(first.select("INBOX"), "SELECT")
validity = int(first.untagged_responses["UIDVALIDITY"][-1])
highest = int(first.untagged_responses["HIGHESTMODSEQ"][-1])
first.logout()

other = login()
ok(other.select("INBOX"), "other SELECT")
ok(other.uid("STORE", "2", "+FLAGS", "(\\Flagged)"), "STORE 2")
ok(other.uid("STORE", "4", "+FLAGS", "(\\Deleted)"), "STORE 4")
ok(other.expunge(), "EXPUNGE")
other.logout()

again = login()
ok(again.enable("QRESYNC"), "ENABLE QRESYNC")
# imaplib has no QRESYNC parameter for select(): the command goes out as written.
again.untagged_responses.clear()
ok(again._simple_command("SELECT", f"INBOX (QRESYNC ({validity} {highest} 1:5))"), "SELECT (QRESYNC)")
vanished = again.untagged_responses.get("VANISHED", [])
fetched = [f.decode() if isinstance(f, bytes) else f for f in again.untagged_responses.get("FETCH", [])]
check(vanished == [b"(EARLIER) 4"], f"VANISHED {vanished}")
check(len(fetched) == 1, f"only the changed message: {fetched}")
match = re.match(r"(\d+) \(FLAGS \(([^)]*)\) UID (\d+) MODSEQ \((\d+)\)\)", fetched[0])
check(match is not None, f"FETCH {fetched[0]}")
check(match.group(2) == "\\Flagged" and match.group(3) == "2", f"FETCH {fetched[0]}")
check(int(match.group(4)) > highest, f"MODSEQ {match.group(4)} after {highest}")
again.logout()
print(json.dumps({"ok": True, "vanished": vanished[0].decode(), "fetched": fetched}))

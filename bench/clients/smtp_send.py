"""Sends COUNT messages over SESSIONS concurrent SMTP sessions (smtplib, one connection per
session, messages one after another on it) to 127.0.0.1:PORT, taking the contents from the
files given in turn, and prints the seconds it took.

Usage: smtp_send.py PORT COUNT SESSIONS SENDER RECIPIENT FILE...
Each file is one message with CRLF line ends, sent as it is."""

import smtplib
import sys
import threading
import time

port, count, sessions = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sender, recipient = sys.argv[4], sys.argv[5]
messages = [open(f, "rb").read() for f in sys.argv[6:]]
failures = []


def session(first, n):
    try:
        smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.org", timeout=120)
        for i in range(first, first + n):
            smtp.sendmail(sender, [recipient], messages[i % len(messages)])
        smtp.quit()
    except Exception as e:
        failures.append(repr(e))


start = time.time()
share = [count // sessions + (1 if i < count % sessions else 0) for i in range(sessions)]
threads = []
first = 0
for n in share:
    t = threading.Thread(target=session, args=(first, n))
    t.start()
    threads.append(t)
    first += n
for t in threads:
    t.join()
if failures:
    sys.exit(f"{len(failures)} session(s) failed: {failures[0]}")
print(f"{time.time() - start:.3f}")

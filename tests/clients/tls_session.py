#!/usr/bin/env python3
"""TLS against Wasmail with Python's own clients, trusting only the server's self-signed
certificate (CAFILE).

  tls_session.py injection smtp|pop3|imap PORT CAFILE
      CVE-2011-0411: a command pipelined after STARTTLS/STLS in the same packet must not be
      executed once TLS is on.
  tls_session.py clients CAFILE SUBMISSION SUBMISSIONS POP3S IMAPS IMAP
      smtplib (STARTTLS + AUTH on submission, SMTP_SSL on submissions), poplib POP3_SSL,
      imaplib IMAP4_SSL and IMAP4 with starttls(): tyler sends to hunt, hunt reads it.

Prints {"ok": true, ...} or exits with the failed step."""

import imaplib
import json
import poplib
import smtplib
import socket
import ssl
import sys
import time


def fail(what):
    raise SystemExit(f"failed: {what}")


def context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


def read_reply(f):
    """An SMTP reply: all its lines."""
    lines = []
    while True:
        line = f.readline().decode()
        if not line:
            fail(f"connection closed after {lines}")
        lines.append(line.rstrip("\r\n"))
        if len(line) < 4 or line[3] != "-":
            return lines


def injection(protocol, port, cafile):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = raw.makefile("rb")
    if protocol == "smtp":
        read_reply(f)
        raw.sendall(b"EHLO client.test\r\n")
        ehlo = read_reply(f)
        if not any("STARTTLS" in l for l in ehlo):
            fail(f"no STARTTLS in {ehlo}")
        raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
        if not read_reply(f)[0].startswith("220 "):
            fail("STARTTLS refused")
        tls = context(cafile).wrap_socket(raw, server_hostname="mx.test")
        f = tls.makefile("rb")
        tls.sendall(b"EHLO client.test\r\n")
        first = read_reply(f)
        # Had the injected MAIL run, its reply (503: no EHLO yet) would come first.
        if not first[0].startswith("250-") or "Hello" not in first[0] or any("STARTTLS" in l for l in first):
            fail(f"first reply after TLS: {first}")
        tls.sendall(b"MAIL FROM:<tyler@localhost>\r\n")
        reply = read_reply(f)
        if not reply[0].startswith("250 "):
            fail(f"MAIL after TLS: {reply}")
        return {"first": first[0], "tls": tls.version()}
    if protocol == "pop3":
        f.readline()
        raw.sendall(b"STLS\r\nUSER hunt\r\n")
        line = f.readline().decode()
        if not line.startswith("+OK"):
            fail(f"STLS refused: {line}")
        tls = context(cafile).wrap_socket(raw, server_hostname="mx.test")
        f = tls.makefile("rb")
        # Had the injected USER run, PASS would log in.
        tls.sendall(b"PASS secret\r\n")
        line = f.readline().decode()
        if not line.startswith("-ERR"):
            fail(f"PASS after TLS answered {line!r}: the injected USER ran")
        tls.sendall(b"CAPA\r\n")
        capa = []
        while True:
            line = f.readline().decode().rstrip("\r\n")
            if line == ".":
                break
            capa.append(line)
        if "STLS" in capa or "USER" not in capa:
            fail(f"CAPA after TLS: {capa}")
        return {"pass": line, "tls": tls.version()}
    if protocol == "imap":
        greeting = f.readline().decode()
        if "STARTTLS" not in greeting:
            fail(f"no STARTTLS in {greeting}")
        raw.sendall(b"a STARTTLS\r\nb LOGIN hunt secret\r\n")
        line = f.readline().decode()
        if not line.startswith("a OK"):
            fail(f"STARTTLS refused: {line}")
        tls = context(cafile).wrap_socket(raw, server_hostname="mx.test")
        f = tls.makefile("rb")
        tls.sendall(b"c CAPABILITY\r\nd SELECT INBOX\r\n")
        lines = []
        while True:
            line = f.readline().decode().rstrip("\r\n")
            lines.append(line)
            if line.startswith("d "):
                break
        if any(l.startswith("b ") for l in lines):
            fail(f"the injected LOGIN was answered: {lines}")
        if not lines[-1].startswith("d BAD"):
            fail(f"SELECT after TLS should need a login: {lines}")
        if any("STARTTLS" in l for l in lines if l.startswith("* CAPABILITY")):
            fail(f"STARTTLS offered again: {lines}")
        return {"lines": lines, "tls": tls.version()}
    fail(f"unknown protocol {protocol}")


def clients(cafile, submission, submissions, pop3s, imaps, imap):
    ctx = context(cafile)
    message = "From: tyler@localhost\r\nTo: hunt@localhost\r\nSubject: {}\r\n\r\nsent over TLS\r\n"
    with smtplib.SMTP("127.0.0.1", submission, timeout=10) as s:
        s.ehlo("client.test")
        if not s.has_extn("starttls"):
            fail("submission offers no STARTTLS")
        s.starttls(context=ctx)
        s.ehlo("client.test")
        if s.has_extn("starttls"):
            fail("STARTTLS offered again after TLS")
        s.login("tyler", "secret")
        refused = s.sendmail("tyler@localhost", ["hunt@localhost"], message.format("via submission"))
        if refused:
            fail(f"refused {refused}")
    with smtplib.SMTP_SSL("127.0.0.1", submissions, timeout=10, context=ctx) as s:
        s.ehlo("client.test")
        s.login("tyler", "secret")
        s.sendmail("tyler@localhost", ["hunt@localhost"], message.format("via submissions"))
    # hunt reads them over IMAPS once delivered.
    deadline = time.time() + 20
    subjects = []
    while time.time() < deadline:
        m = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx)
        m.login("hunt", "secret")
        typ, data = m.select("INBOX")
        typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT RECEIVED)])") if int(data[0]) else ("OK", [])
        headers = [d[1].decode() for d in data if isinstance(d, tuple)]
        subjects = sorted(h.split("Subject: ")[1].split("\r\n")[0] for h in headers if "Subject: " in h)
        m.logout()
        if len(subjects) == 2:
            break
        time.sleep(0.2)
    if subjects != ["via submission", "via submissions"]:
        fail(f"subjects over IMAPS: {subjects}")
    if not all("with ESMTPSA" in h and "(using TLS1." in h and "(Authenticated sender: tyler)" in h for h in headers):
        fail(f"Received headers: {headers}")
    p = poplib.POP3_SSL("127.0.0.1", pop3s, context=ctx, timeout=10)
    p.user("hunt")
    p.pass_("secret")
    count, _ = p.stat()
    p.quit()
    if count != 2:
        fail(f"POP3S sees {count} messages")
    m = imaplib.IMAP4("127.0.0.1", imap)
    m.starttls(ssl_context=ctx)
    m.login("hunt", "secret")
    typ, data = m.status("INBOX", "(MESSAGES)")
    m.logout()
    if data != [b'"INBOX" (MESSAGES 2)']:
        fail(f"IMAP after STARTTLS: {data}")
    return {"subjects": subjects}


if sys.argv[1] == "injection":
    result = injection(sys.argv[2], int(sys.argv[3]), sys.argv[4])
else:
    result = clients(sys.argv[2], *map(int, sys.argv[3:8]))
print(json.dumps({"ok": True, **result}))

"""Drives a running wasmail with Python's smtplib (stdlib): EHLO features, a plain message,
an 8-bit SMTPUTF8 message, a partly refused recipient list, and a size refusal.

Usage: smtplib_session.py HOST PORT. Exits non-zero (with a traceback) on any mismatch."""

import smtplib
import sys
from email.message import EmailMessage

host, port = sys.argv[1], int(sys.argv[2])

with smtplib.SMTP(host, port, local_hostname="python.test", timeout=30) as smtp:
    code, _ = smtp.ehlo()
    assert code == 250, code
    for feature in ["pipelining", "size", "8bitmime", "chunking", "enhancedstatuscodes", "dsn", "smtputf8", "etrn"]:
        assert smtp.has_extn(feature), feature
    assert not smtp.has_extn("vrfy")
    assert not smtp.has_extn("starttls")  # not offered until TLS lands
    max_size = int(smtp.esmtp_features["size"])

    msg = EmailMessage()
    msg["From"] = "daniel@python.test"
    msg["To"] = "tyler@localhost"
    msg["Subject"] = "from smtplib"
    msg.set_content("Hello from Python's smtplib.\n.leading dot survives\n")
    refused = smtp.send_message(msg)
    assert refused == {}, refused

    utf8 = EmailMessage()
    utf8["From"] = "jörg@python.test"
    utf8["To"] = "tyler@localhost"
    utf8["Subject"] = "Grüße"
    utf8.set_content("Schöne Grüße aus Python\n", cte="8bit")
    # smtplib sees the non-ASCII sender and adds SMTPUTF8 and BODY=8BITMIME itself.
    refused = smtp.send_message(utf8)
    assert refused == {}, refused

    # One bad recipient among good ones: smtplib reports it and sends to the rest.
    refused = smtp.sendmail("daniel@python.test", ["hunt@localhost", "x@elsewhere.example"],
                            b"Subject: partial\r\n\r\nto hunt only\r\n")
    assert list(refused) == ["x@elsewhere.example"], refused
    assert refused["x@elsewhere.example"][0] == 550, refused

    try:
        # smtplib declares SIZE itself; the server refuses at MAIL, before any content.
        smtp.sendmail("daniel@python.test", ["tyler@localhost"], b"x" * (max_size + 1))
        raise AssertionError("oversize message accepted")
    except smtplib.SMTPSenderRefused as e:
        assert e.smtp_code == 552, e

    code, text = smtp.docmd("HELP", "DATA")
    assert code == 214, (code, text)

print("smtplib session ok")

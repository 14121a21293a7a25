"""Reads stored messages with Python's email package (an independent MIME parser) and prints
what it found as JSON, for the MIME tests to check: defects, a few headers, and every part
with its type, file name, charset, transfer encoding and decoded content.

Usage: mime_check.py FILE..."""

import json
import sys
from email import message_from_bytes, policy

out = []
for path in sys.argv[1:]:
    raw = open(path, "rb").read()
    message = message_from_bytes(raw, policy=policy.default)
    parts = []
    for part in message.walk():
        if part.is_multipart():
            continue
        entry = {
            "type": part.get_content_type(),
            "filename": part.get_filename(),
            "charset": part.get_content_charset(),
            "encoding": part.get("Content-Transfer-Encoding", "7bit").lower(),
            "defects": [type(d).__name__ for d in part.defects],
        }
        if part.get_content_maintype() == "text":
            entry["text"] = part.get_content()
        elif part.get_content_type() == "message/rfc822":
            entry["inner_subject"] = str(part.get_payload(0)["subject"])
        else:
            entry["size"] = len(part.get_payload(decode=True) or b"")
        parts.append(entry)
    out.append({
        "defects": [type(d).__name__ for d in message.defects],
        "subject": str(message["subject"]),
        "mime_version": message["MIME-Version"],
        "calendar": [str(v) for v in message.get_all("X-Calendar-Summary", [])],
        "ascii": all(b < 128 for b in raw),
        "parts": parts,
    })
json.dump(out, sys.stdout, ensure_ascii=False)

"""Reads delivery status notifications with Python's email package and prints what they say
as JSON: the report's type, its per-message and per-recipient fields (RFC 3464), and the
returned message or header.

Usage: dsn_check.py FILE..."""

import json
import sys
from email import message_from_bytes, policy

out = []
for path in sys.argv[1:]:
    message = message_from_bytes(open(path, "rb").read(), policy=policy.default)
    entry = {
        "content_type": message.get_content_type(),
        "report_type": message.get_param("report-type"),
        "subject": str(message["subject"]),
        "to": str(message["to"]),
        "return_path": str(message["return-path"]),
        "auto_submitted": str(message["auto-submitted"]),
        "defects": [type(d).__name__ for d in message.defects],
    }
    parts = list(message.iter_parts())
    entry["part_types"] = [p.get_content_type() for p in parts]
    status = next(p for p in parts if p.get_content_type() == "message/delivery-status")
    blocks = status.get_payload()
    entry["message_fields"] = {k: str(v) for k, v in blocks[0].items()}
    entry["recipients"] = [{k: str(v) for k, v in block.items()} for block in blocks[1:]]
    returned = parts[2]
    if returned.get_content_type() == "message/rfc822":
        entry["returned"] = returned.get_payload(0).as_string()
    else:
        entry["returned"] = returned.get_content()
    out.append(entry)
json.dump(out, sys.stdout)

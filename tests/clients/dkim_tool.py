"""Checks DKIM signatures and ARC chains with dkimpy (Debian's python3-dkim, the library behind
dkimverify and arcverify), an implementation independent of the server's, answering its key
lookups from a file instead of DNS.

Usage (run with Debian's /usr/bin/python3, which has the package):
  dkim_tool.py verify RECORDS.json MESSAGE     -> {"signatures": N, "valid": [true, ...]}
  dkim_tool.py arc RECORDS.json MESSAGE        -> {"cv": "pass" | "fail" | "none", "reason": "..."}
RECORDS.json maps a DNS name ("s1._domainkey.example.org") to its TXT value."""

import json
import sys

import dkim


def check(verify):
    """A verdict: dkimpy returns False for some failures and raises for others (a body hash
    that does not match)."""
    try:
        return bool(verify())
    except dkim.DKIMException:
        return False


def main():
    command, records_file, message_file = sys.argv[1:4]
    with open(records_file) as f:
        records = {k.lower().rstrip("."): v for k, v in json.load(f).items()}
    with open(message_file, "rb") as f:
        message = f.read()

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        value = records.get(name.lower().rstrip("."))
        return value.encode() if value is not None else None

    if command == "verify":
        d = dkim.DKIM(message)
        count = sum(1 for line in message.split(b"\n") if line.lower().startswith(b"dkim-signature:"))
        valid = [check(lambda: d.verify(idx=i, dnsfunc=dnsfunc)) for i in range(count)]
        print(json.dumps({"signatures": count, "valid": valid}))
    elif command == "arc":
        cv, results, reason = dkim.arc_verify(message, dnsfunc=dnsfunc)
        print(json.dumps({"cv": cv.decode() if isinstance(cv, bytes) else cv, "reason": str(reason)}))
    else:
        sys.exit(f"unknown command {command}")


main()

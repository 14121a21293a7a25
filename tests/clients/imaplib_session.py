#!/usr/bin/env python3
"""Drives Wasmail's IMAP server with Python's imaplib over the whole RFC 3501 command set
(and the extensions it advertises). Usage: imaplib_session.py PORT. The mailbox of user
tyler (password "secret") holds two messages: a plain one and a multipart one with a
quoted-printable German text and a PDF. Prints {"ok": true} or fails with the step."""

import email
import imaplib
import json
import re
import sys

port = int(sys.argv[1])
steps = []


def check(condition, what):
    steps.append(what)
    if not condition:
        raise SystemExit(f"failed: {what}")


def ok(result, what):
    typ, data = result
    check(typ == "OK", f"{what}: {typ} {data}")
    return data


m = imaplib.IMAP4("127.0.0.1", port)
caps = m.capabilities
for cap in ("IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "LITERAL+", "NAMESPACE", "ID", "ENABLE", "SPECIAL-USE", "UNSELECT", "CHILDREN", "AUTH=PLAIN", "AUTH=LOGIN"):
    check(cap in caps, f"capability {cap}")
ok(m.noop(), "NOOP before login")
# AUTHENTICATE LOGIN in a session of its own (imaplib answers its two prompts).
other = imaplib.IMAP4("127.0.0.1", port)
answers = iter([b"tyler", b"secret"])
ok(other.authenticate("LOGIN", lambda _: next(answers)), "AUTHENTICATE LOGIN")
other.logout()
# AUTHENTICATE PLAIN (with a continuation: imaplib does not use SASL-IR).
ok(m.authenticate("PLAIN", lambda _: b"\0tyler\0secret"), "AUTHENTICATE PLAIN")
ok(m.xatom("ENABLE", "UTF8=ACCEPT"), "ENABLE")
data = ok(m.namespace(), "NAMESPACE")
check(data[0] == b'(("" "/")) NIL NIL', f"namespace {data}")
typ, data = m.xatom("ID", '("name" "imaplib")')
check(typ == "OK" and b"Wasmail" in m.untagged_responses.pop("ID")[0], "ID")

# Folders: the special-use ones exist; CREATE (with parents), RENAME, SUBSCRIBE, LSUB, DELETE.
data = ok(m.list(), "LIST")
listing = b"\n".join(data)
for name, attribute in ((b"Sent", b"\\Sent"), (b"Drafts", b"\\Drafts"), (b"Trash", b"\\Trash"), (b"Junk", b"\\Junk"), (b"Archive", b"\\Archive")):
    check(re.search(rb"\(.*" + re.escape(attribute) + rb".*\) \"/\" \"?" + name, listing) is not None, f"LIST shows {name} as {attribute}")
ok(m.create("Projects/2025"), "CREATE with a parent")
data = ok(m.list('""', "Projects*"), "LIST Projects*")
check(any(b"\\HasChildren" in d and d.endswith(b'"Projects"') for d in data), f"Projects has children: {data}")
ok(m.rename("Projects/2025", "Projects/2026"), "RENAME")
check(m.create("Projects/2026")[0] == "NO", "CREATE of an existing mailbox fails")
ok(m.subscribe("Projects/2026"), "SUBSCRIBE")
data = ok(m.lsub('""', "Proj*"), "LSUB")
check(data == [b'() "/" "Projects/2026"'], f"LSUB {data}")
ok(m.unsubscribe("Projects/2026"), "UNSUBSCRIBE")
check(ok(m.lsub('""', "Proj*"), "LSUB after") == [None], "LSUB empty")
ok(m.create("Scratch"), "CREATE Scratch")
ok(m.delete("Scratch"), "DELETE")
check(m.select("Scratch")[0] == "NO", "a deleted mailbox cannot be selected")
check(m.delete("INBOX")[0] == "NO", "INBOX cannot be deleted")
ok(m.create('"Entw&APw-rfe-Alt"'), "CREATE in modified UTF-7")
check(any(b"Entw&APw-rfe-Alt" in d for d in ok(m.list(), "LIST")), "the name comes back encoded")

# STATUS, then SELECT.
data = ok(m.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"), "STATUS")
check(re.match(rb'"INBOX" \(MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY \d+ UNSEEN 2\)', data[0]) is not None, f"STATUS {data}")
data = ok(m.select("INBOX"), "SELECT")
check(data == [b"2"], "2 EXISTS")
check(m.untagged_responses.get("RECENT") == [b"2"], "2 RECENT")
check(m.untagged_responses.get("UNSEEN") == [b"1"], "UNSEEN 1")

# FETCH: macros, ENVELOPE, BODYSTRUCTURE, sections, partials, RFC822.*.
data = ok(m.fetch("1:*", "FAST"), "FETCH FAST")
check(len(data) == 2 and b"RFC822.SIZE" in data[0] and b"INTERNALDATE" in data[0], f"FAST {data}")
data = ok(m.fetch("1", "ALL"), "FETCH ALL")
check(b'ENVELOPE ("Mon, 2 Mar 2026 10:00:00 +0000" "plain" (("Hunt" NIL "hunt" "client.test"))' in data[0], f"ALL {data}")
data = ok(m.fetch("2", "(BODYSTRUCTURE)"), "FETCH BODYSTRUCTURE")
structure = data[0]
check(b'("text" "plain" ("charset" "utf-8") NIL NIL "QUOTED-PRINTABLE"' in structure, f"text part {structure}")
check(b'("application" "pdf" ("name" "a.pdf") NIL NIL "BASE64" 12 NIL ("attachment" ("filename" "a.pdf")) NIL NIL) "mixed"' in structure, f"pdf part {structure}")
data = ok(m.fetch("2", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[TEXT]<0.4>)"), "FETCH sections")
check(data[0][1] == b"Gr=C3=BC=C3=9Fe aus K=C3=B6ln", f"part 1 {data[0]}")
check(data[1][1].startswith(b"Content-Type: application/pdf"), f"part 2 MIME {data[1]}")
check(data[2][1] == b"--b\r", f"partial {data[2]}")
check(b"<0>" in data[2][0], f"partial origin {data[2][0]}")
data = ok(m.fetch("1", "(RFC822.HEADER RFC822.SIZE)"), "FETCH RFC822.HEADER")
check(data[0][1].endswith(b"\r\n\r\n") and b"Subject: plain" in data[0][1], "RFC822.HEADER")
flags = ok(m.fetch("1", "(FLAGS)"), "FLAGS before")
check(b"\\Seen" not in flags[0], "PEEK left \\Seen alone")
data = ok(m.fetch("1", "(RFC822)"), "FETCH RFC822")
parsed = email.message_from_bytes(data[0][1])
check(parsed["Subject"] == "plain" and parsed.get_payload() == "the quick brown fox\r\n", "RFC822 is the message")
check(b"\\Seen" in ok(m.fetch("1", "(FLAGS)"), "FLAGS after")[0], "RFC822 set \\Seen")
data = ok(m.fetch("1", "(RFC822.TEXT)"), "FETCH RFC822.TEXT")
check(data[0][1] == b"the quick brown fox\r\n", "RFC822.TEXT")
data = ok(m.uid("FETCH", "1:*", "(FLAGS)"), "UID FETCH")
check(data[0].startswith(b"1 (UID 1 FLAGS") and data[1].startswith(b"2 (UID 2 FLAGS"), f"UID FETCH {data}")

# SEARCH: flags, headers (RFC 2047 decoded), bodies (QP and charset decoded), dates, sizes, sets.
def search(*criteria, uid=False, charset=None):
    result = m.uid("SEARCH", *criteria) if uid else m.search(charset, *criteria)
    return ok(result, f"SEARCH {criteria}")[0].split()

check(search("ALL") == [b"1", b"2"], "SEARCH ALL")
check(search("SEEN") == [b"1"] and search("UNSEEN") == [b"2"], "SEEN / UNSEEN")
check(search("RECENT") == [b"1", b"2"] and search("NEW") == [b"2"] and search("OLD") == [], "RECENT / NEW / OLD")
check(search("FROM", "hunt") == [b"1"] and search("TO", "tyler") == [b"1"], "FROM / TO")
m.literal = "grüße".encode()
check(search("SUBJECT", charset="UTF-8") == [b"2"], "SUBJECT with a UTF-8 literal, decoded from RFC 2047")
m.literal = "köln".encode()
check(search("BODY", charset="UTF-8") == [b"2"], "BODY decoded from quoted-printable and UTF-8")
check(search("TEXT", "quick") == [b"1"] and search("TEXT", "nowhere") == [], "TEXT")
check(search("HEADER", "Content-Type", "multipart") == [b"2"], "HEADER")
check(search("SENTON", "2-Mar-2026") == [b"1"] and search("SENTSINCE", "3-Mar-2026") == [b"2"] and search("SENTBEFORE", "3-Mar-2026") == [b"1"], "SENT*")
check(search("SINCE", "1-Jan-2000") == [b"1", b"2"] and search("BEFORE", "1-Jan-2000") == [], "SINCE / BEFORE")
sizes = [int(re.search(rb"RFC822.SIZE (\d+)", d).group(1)) for d in ok(m.fetch("1:2", "(RFC822.SIZE)"), "sizes")]
check(sizes[0] < sizes[1], f"sizes {sizes}")
between = str((sizes[0] + sizes[1]) // 2)
check(search("LARGER", between) == [b"2"] and search("SMALLER", between) == [b"1"], "LARGER / SMALLER")
check(search("OR", "FROM", "hunt", "LARGER", between) == [b"1", b"2"] and search("NOT", "FROM", "hunt") == [b"2"], "OR / NOT")
check(search("2") == [b"2"] and search("UID", "1") == [b"1"] and search("ALL", uid=True) == [b"1", b"2"], "sets and UID SEARCH")
typ, data = m._simple_command("SEARCH", "CHARSET", "KOI8-R", "ALL")
check(typ == "NO" and data[0].startswith(b"[BADCHARSET (UTF-8 US-ASCII)]"), f"an unknown charset is refused: {typ} {data}")

# STORE in every form.
data = ok(m.store("2", "+FLAGS", "(\\Flagged $Work)"), "STORE +FLAGS")
check(b"\\Flagged" in data[0] and b"$Work" in data[0], f"+FLAGS {data}")
data = ok(m.store("2", "-FLAGS", "($Work)"), "STORE -FLAGS")
check(b"$Work" not in data[0], f"-FLAGS {data}")
data = ok(m.store("2", "FLAGS", "(\\Seen \\Flagged)"), "STORE FLAGS")
check(b"\\Seen" in data[0] and b"\\Flagged" in data[0], f"FLAGS {data}")
data = ok(m.store("1", "+FLAGS.SILENT", "(\\Answered)"), "STORE .SILENT")
check(data == [None], f"silent {data}")
check(search("ANSWERED") == [b"1"] and search("FLAGGED") == [b"2"] and search("KEYWORD", "$Work") == [], "flag searches")
data = ok(m.uid("STORE", "1", "+FLAGS", "(\\Draft)"), "UID STORE")
check(b"UID 1" in data[0], f"UID STORE answers with the UID {data}")
check(search("DRAFT") == [b"1"] and search("UNDRAFT") == [b"2"], "DRAFT / UNDRAFT")

# COPY, MOVE (UIDPLUS answers), APPEND with flags and date.
typ, data = m.copy("2", "Archive")
check(typ == "OK" and re.match(rb"\[COPYUID \d+ 2 1\]", data[0]) is not None, f"COPY {data}")
typ, data = m._simple_command("COPY", "1", "Nowhere")
check(typ == "NO", f"COPY to a missing mailbox: {typ}")
typ, data = m.append("Drafts", "(\\Draft \\Seen)", imaplib.Time2Internaldate(1700000000), b"Subject: draft\r\n\r\nnot yet\r\n")
check(typ == "OK" and re.match(rb"\[APPENDUID \d+ 1\] ", data[0]) is not None, f"APPEND {data}")
ok(m.select("Drafts", readonly=True), "EXAMINE Drafts")
data = ok(m.fetch("1", "(FLAGS INTERNALDATE)"), "FETCH the appended message")
check(b"\\Draft" in data[0] and b"\\Seen" in data[0] and b'INTERNALDATE "14-Nov-2023 22:13:20 +0000"' in data[0], f"appended {data}")
check(m.store("1", "+FLAGS", "(\\Flagged)")[0] == "NO", "STORE in an EXAMINEd mailbox fails")
ok(m.select("INBOX"), "SELECT again")
typ, data = m.uid("MOVE", "1", "Trash")
check(typ == "OK", f"UID MOVE {typ} {data}")
check(any(re.match(rb"\[COPYUID \d+ 1 1\]", r) for r in m.untagged_responses.get("OK", [])), f"MOVE COPYUID {m.untagged_responses}")
check(m.untagged_responses.pop("EXPUNGE", None) == [b"1"], f"MOVE expunges {m.untagged_responses}")
data = ok(m.status("Trash", "(MESSAGES)"), "STATUS Trash")
check(data == [b'"Trash" (MESSAGES 1)'], f"Trash {data}")

# CHECK, EXPUNGE, UID EXPUNGE, UNSELECT, CLOSE, IDLE, LOGOUT.
ok(m.check(), "CHECK")
ok(m.append("INBOX", None, None, b"Subject: extra\r\n\r\nx\r\n"), "APPEND to the selected mailbox")
ok(m.noop(), "NOOP")
check(m.untagged_responses.get("EXISTS", [b""])[-1] == b"2", f"EXISTS after APPEND {m.untagged_responses}")
ok(m.store("1:*", "+FLAGS.SILENT", "(\\Deleted)"), "mark all deleted")
typ, data = m.uid("EXPUNGE", "3")
check(typ == "OK" and m.untagged_responses.pop("EXPUNGE", None) == [b"2"], f"UID EXPUNGE only UID 3 {data}")
ok(m.store("1", "-FLAGS.SILENT", "(\\Deleted)"), "undelete")
ok(m.expunge(), "EXPUNGE with nothing deleted")
ok(m.unselect(), "UNSELECT")
ok(m.select("Archive"), "SELECT Archive")
ok(m.store("1", "+FLAGS", "(\\Seen)"), "seen in Archive")
ok(m.close(), "CLOSE")
# RENAME INBOX moves its messages into the new mailbox and leaves INBOX, empty (RFC 3501 6.3.5).
ok(m.rename("INBOX", '"Old Inbox"'), "RENAME INBOX")
check(ok(m.status("INBOX", "(MESSAGES)"), "STATUS INBOX") == [b'"INBOX" (MESSAGES 0)'], "INBOX is empty")
data = ok(m.status('"Old Inbox"', "(MESSAGES)"), "STATUS Old Inbox")
check(data == [b'"Old Inbox" (MESSAGES 1)'], f"the messages moved: {data}")
m.send(b"i1 IDLE\r\n")
check(m.readline().startswith(b"+ "), "IDLE continuation")
m.send(b"DONE\r\n")
check(m.readline().startswith(b"i1 OK"), "IDLE done")
check(m.logout()[0] == "BYE", "LOGOUT")
print(json.dumps({"ok": True, "steps": len(steps)}))

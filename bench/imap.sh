#!/usr/bin/env bash
# IMAP against Dovecot: a 10,000-message Maildir (plain, multipart/alternative and messages
# with an attachment, 1 to 7 KiB of text), served by Wasmail and by a private Dovecot imapd
# (Debian's dovecot-imapd, on loopback, reading a copy of the same Maildir). For each server,
# Python's imaplib times SELECT, FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE), FETCH 1:* BODY.PEEK[]
# (all bodies), SEARCH TEXT, SORT (SUBJECT), THREAD REFERENCES and a QRESYNC resync (SELECT
# ... (QRESYNC (...)) after another session changed the flags of 100 messages: it must answer
# with exactly those 100), and mbsync pulls the whole mailbox into an empty Maildir (on tmpfs,
# without fsync: the server's speed, not the client's disk).
# Every figure but the first SELECT is the second of two runs (the first warms the page cache
# and lets each server build its index and caches); it prints messages per second and the
# ratio.
#
# Usage: bench/imap.sh [MESSAGES]   (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."

MESSAGES=${1:-10000}
WASMAIL_SMTP=2656
WASMAIL_IMAP=2657
DOVECOT_IMAP=2658

source bench/lib.sh
if [ ! -x /usr/lib/dovecot/imap ]; then
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq dovecot-imapd >/dev/null
fi
command -v mbsync >/dev/null || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq isync >/dev/null
cargo build --release --locked -p wasmail >/dev/null

work=$(mktemp -d /tmp/wasmail-imap-bench.XXXXXX)
chmod 755 "$work"
scratch=$(mktemp -d "$( [ -d /dev/shm ] && echo /dev/shm || echo /tmp )/wasmail-imap-pull.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$work/dovecot/dovecot.conf" ] && $sudo doveadm -c "$work/dovecot/dovecot.conf" stop >/dev/null 2>&1 || true
    $sudo rm -rf "$work" "$scratch"
}
trap cleanup EXIT

python3 - "$work/maildir" "$MESSAGES" <<'PY'
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
random.seed(1)
for sub in ("tmp", "new", "cur"):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore".split()
def text(size):
    out, n = [], 0
    while n < size:
        line = " ".join(random.choice(words) for _ in range(11))
        out.append(line)
        n += len(line) + 1
    return "\n".join(out) + "\n"
for i in range(count):
    head = (f"Date: Mon, {1 + i % 28} Mar 2026 10:{i % 60:02d}:00 +0000\nFrom: Sender {i % 97} <sender{i % 97}@client.example>\n"
            f"To: bench@localhost\nSubject: message {i} about {random.choice(words)}\nMessage-ID: <{i}@bench>\nMIME-Version: 1.0\n")
    body = text(random.randint(1024, 7168))
    if i % 500 == 7:
        body = body.replace("lorem", "needle", 1)
    if i % 3 == 1:
        msg = (head + "Content-Type: multipart/alternative; boundary=alt\n\n--alt\nContent-Type: text/plain; charset=utf-8\n\n"
               + body + "--alt\nContent-Type: text/html; charset=utf-8\n\n<p>" + body[:1024] + "</p>\n--alt--\n")
    elif i % 5 == 2:
        msg = (head + "Content-Type: multipart/mixed; boundary=mix\n\n--mix\nContent-Type: text/plain\n\n" + body
               + "--mix\nContent-Type: application/pdf; name=doc.pdf\nContent-Disposition: attachment; filename=doc.pdf\n"
               + "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURlY29kZT4+\n--mix--\n")
    else:
        msg = head + "Content-Type: text/plain; charset=us-ascii\n\n" + body
    data = msg.encode()
    size, lines = len(data), data.count(b"\n")
    name = f"{1800000000 + i}.M{i}P1.bench,S={size},W={size + lines}"
    with open(os.path.join(root, "cur", name + ":2,S"), "wb") as f:
        f.write(data)
PY

# Wasmail: the Maildir as user bench's mailbox.
serve_maildir "$work/wasmail" "$work/maildir" "[smtp]\nlisten = [\"127.0.0.1:$WASMAIL_SMTP\"]\n[pop3]\nlisten = []\n[imap]\nlisten = [\"127.0.0.1:$WASMAIL_IMAP\"]\n"

# Dovecot: a private instance reading a copy of the Maildir.
start_dovecot "$work/dovecot" imap "$DOVECOT_IMAP" "$work/maildir"

wait_for_ports "$WASMAIL_IMAP" "$DOVECOT_IMAP"

# Prints "first-select select fetch bodies search sort thread resync" in messages per second:
# the first SELECT (no index yet), then the second run's figures.
imaplib_rates() {
    python3 - "$1" "$MESSAGES" <<'PY'
import imaplib, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
def timed(f):
    start = time.monotonic()
    result = f()
    return time.monotonic() - start, result
def resync(round):
    # The client's last visit, then 100 flag changes by another session, then the resync.
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login("bench", "secret")
    m.enable("QRESYNC")
    m.select("INBOX")
    validity, highest = m.untagged_responses["UIDVALIDITY"][-1].decode(), m.untagged_responses["HIGHESTMODSEQ"][-1].decode()
    m.logout()
    other = imaplib.IMAP4("127.0.0.1", port)
    other.login("bench", "secret")
    other.select("INBOX")
    typ, _ = other.store("1:100", "FLAGS.SILENT", f"(\\Seen $Round{round})")
    assert typ == "OK"
    other.logout()
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login("bench", "secret")
    m.enable("QRESYNC")
    m.untagged_responses.clear()
    seconds, (typ, _) = timed(lambda: m._simple_command("SELECT", f"INBOX (QRESYNC ({validity} {highest}))"))
    assert typ == "OK"
    changed = len(m.untagged_responses.get("FETCH", []))
    assert changed == 100, changed
    m.logout()
    return seconds
def run():
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login("bench", "secret")
    t_select, (typ, data) = timed(lambda: m.select("INBOX"))
    assert typ == "OK" and int(data[0]) == count, data
    t_fetch, (typ, data) = timed(lambda: m.fetch("1:*", "(FLAGS ENVELOPE BODYSTRUCTURE)"))
    assert typ == "OK" and len(data) == count, len(data)
    t_bodies, (typ, data) = timed(lambda: m.fetch("1:*", "(BODY.PEEK[])"))
    assert typ == "OK" and sum(1 for d in data if isinstance(d, tuple)) == count
    t_search, (typ, data) = timed(lambda: m.search(None, "TEXT", "needle"))
    assert typ == "OK" and len(data[0].split()) == (count + 492) // 500, data
    t_sort, (typ, data) = timed(lambda: m.sort("(SUBJECT)", "UTF-8", "ALL"))
    assert typ == "OK" and len(data[0].split()) == count, len(data[0].split())
    t_thread, (typ, data) = timed(lambda: m.thread("REFERENCES", "UTF-8", "ALL"))
    assert typ == "OK" and data[0].startswith(b"("), data[0][:40]
    m.logout()
    return [count / t for t in (t_select, t_fetch, t_bodies, t_search, t_sort, t_thread)]
first = run()
second = run()
# Last, as it changes the mailbox (the SELECTs above find it as the first run left it).
print(" ".join(f"{r:.0f}" for r in [first[0]] + second + [count / resync(1)]))
PY
}

# Prints messages per second for an mbsync pull of the whole mailbox into an empty Maildir.
# The local copy is on tmpfs (/dev/shm where there is one) and mbsync does not fsync it, so
# that the figure is the server's speed, not the client's disk.
mbsync_rate() {
    local port=$1 dir="$scratch/mbsync-$1"
    local seconds
    for round in 1 2; do
        rm -rf "$dir" && mkdir -p "$dir/mail"
        printf 'FSync no\n\nIMAPAccount a\nHost 127.0.0.1\nPort %s\nUser bench\nPass secret\nSSLType None\nAuthMechs PLAIN\n\nIMAPStore remote\nAccount a\n\nMaildirStore local\nPath %s/mail/\nInbox %s/mail/INBOX\n\nChannel c\nFar :remote:INBOX\nNear :local:INBOX\nCreate Near\nSync Pull\nSyncState *\n' \
            "$port" "$dir" "$dir" >"$dir/rc"
        local start end
        start=$(date +%s.%N)
        mbsync -q -c "$dir/rc" -a
        end=$(date +%s.%N)
        seconds=$(echo "$end - $start" | bc -l)
    done
    local got
    got=$(find "$dir/mail/INBOX" -type f -path '*/cur/*' -o -type f -path '*/new/*' | wc -l)
    [ "$got" -eq "$MESSAGES" ] || { echo "mbsync pulled $got of $MESSAGES" >&2; return 1; }
    echo "$MESSAGES / $seconds" | bc -l | xargs printf '%.0f\n'
}

read -r w_first w_select w_fetch w_bodies w_search w_sort w_thread w_resync < <(imaplib_rates "$WASMAIL_IMAP")
read -r d_first d_select d_fetch d_bodies d_search d_sort d_thread d_resync < <(imaplib_rates "$DOVECOT_IMAP")
w_mbsync=$(mbsync_rate "$WASMAIL_IMAP")
d_mbsync=$(mbsync_rate "$DOVECOT_IMAP")

printf '%-46s %12s %12s %8s\n' "messages/s ($MESSAGES messages)" wasmail dovecot ratio
row() { printf '%-46s %12d %12d %8.2f\n' "$1" "$2" "$3" "$(echo "$2 / $3" | bc -l)"; }
row "first SELECT INBOX (building the index)" "$w_first" "$d_first"
row "SELECT INBOX" "$w_select" "$d_select"
row "FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE)" "$w_fetch" "$d_fetch"
row "FETCH 1:* BODY.PEEK[]" "$w_bodies" "$d_bodies"
row "SEARCH TEXT" "$w_search" "$d_search"
row "SORT (SUBJECT) UTF-8 ALL" "$w_sort" "$d_sort"
row "THREAD REFERENCES UTF-8 ALL" "$w_thread" "$d_thread"
row "QRESYNC resync after 100 flag changes" "$w_resync" "$d_resync"
row "mbsync full pull" "$w_mbsync" "$d_mbsync"

#!/usr/bin/env bash
# IMAP against Dovecot: a 10,000-message Maildir (plain, multipart/alternative and messages
# with an attachment, 1 to 7 KiB of text), served by Wasmail and by a private Dovecot imapd
# (Debian's dovecot-imapd, on loopback, reading a copy of the same Maildir). For each server,
# Python's imaplib times SELECT, FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE), FETCH 1:* BODY.PEEK[]
# (all bodies), SEARCH TEXT, SORT (SUBJECT), THREAD REFERENCES and a QRESYNC resync (SELECT
# ... (QRESYNC (...)) after another session changed the flags of 100 messages: it must answer
# with exactly those 100), STORE on all, EXPUNGE of 1,000, STORE/NOOP on one message (what a
# client marking one message does), and mbsync pulls the whole mailbox into an empty Maildir
# (on tmpfs, without fsync: the server's speed, not the client's disk).
# Every figure but the first SELECT is the second of two runs (the first warms the page cache
# and lets each server build its index and caches); it prints messages per second and the
# ratio.
#
# Usage: [PAIRS=3] [PERF=1] bench/imap.sh [MESSAGES]   (default 10000; PAIRS interleaved rounds)
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

# imaplib_rates PORT PAIR: prints "first-select select fetch bodies search sort thread resync
# store expunge small" in messages per second: the first SELECT of the round, then the second
# run's figures, the resync, STORE +FLAGS on all, EXPUNGE of 1,000 (per expunged message),
# and STORE/NOOP on one message (commands per second).
imaplib_rates() {
    python3 - "$1" "$MESSAGES" "$2" <<'PY'
import imaplib, sys, time
port, count, PAIR = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
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
def store_and_expunge():
    # STORE on every message (then undone), and EXPUNGE of 1,000 messages COPYed into a
    # folder of their own for it, so that INBOX stays as it was for the next round.
    m = imaplib.IMAP4("127.0.0.1", port)
    m.login("bench", "secret")
    m.select("INBOX")
    t_store, (typ, _) = timed(lambda: m.store("1:*", "+FLAGS.SILENT", "(\\Flagged)"))
    assert typ == "OK"
    assert m.store("1:*", "-FLAGS.SILENT", "(\\Flagged)")[0] == "OK"
    m.create("expunge-bench")
    assert m.copy("1:1000", "expunge-bench")[0] == "OK"
    m.select("expunge-bench")
    assert m.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
    t_expunge, (typ, data) = timed(lambda: m.expunge())
    assert typ == "OK" and len(data) == 1000, len(data)
    m.close() if m.state == "SELECTED" else None
    m.delete("expunge-bench")
    # What a client marking one message does: STORE +FLAGS, STORE -FLAGS and NOOP on one
    # message of the large mailbox, 50 times; commands per second.
    m.select("INBOX")
    start = time.monotonic()
    for _ in range(50):
        assert m.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
        assert m.store("1", "-FLAGS", "(\\Flagged)")[0] == "OK"
        assert m.noop()[0] == "OK"
    t_small = time.monotonic() - start
    m.logout()
    return [count / t_store, 1000 / t_expunge, 150 / t_small]
first = run()
second = run()
writes = store_and_expunge()
# Last, as it changes the flags of 100 messages (the SELECTs above find them as before).
print(" ".join(f"{r:.0f}" for r in [first[0]] + second + [count / resync(PAIR)] + writes))
PY
}

# Prints messages per second for two mbsync pulls of the whole mailbox, each into an empty
# Maildir (the first and the second run: the server's caches warm for the second).
# The local copy is on tmpfs (/dev/shm where there is one) and mbsync does not fsync it, so
# that the figure is the server's speed, not the client's disk.
mbsync_rate() {
    local port=$1 dir="$scratch/mbsync-$1"
    local seconds rates=()
    for round in 1 2; do
        rm -rf "$dir" && mkdir -p "$dir/mail"
        printf 'FSync no\n\nIMAPAccount a\nHost 127.0.0.1\nPort %s\nUser bench\nPass secret\nSSLType None\nAuthMechs PLAIN\n\nIMAPStore remote\nAccount a\n\nMaildirStore local\nPath %s/mail/\nInbox %s/mail/INBOX\n\nChannel c\nFar :remote:INBOX\nNear :local:INBOX\nCreate Near\nSync Pull\nSyncState *\n' \
            "$port" "$dir" "$dir" >"$dir/rc"
        local start end
        start=$(date +%s.%N)
        mbsync -q -c "$dir/rc" -a
        end=$(date +%s.%N)
        seconds=$(echo "$end - $start" | bc -l)
        local got
        got=$(find "$dir/mail/INBOX" -type f -path '*/cur/*' -o -type f -path '*/new/*' | wc -l)
        [ "$got" -eq "$MESSAGES" ] || { echo "mbsync pulled $got of $MESSAGES" >&2; return 1; }
        rates+=("$(echo "$MESSAGES / $seconds" | bc -l | xargs printf '%.0f')")
    done
    echo "${rates[@]}"
}

# Rounds in turn (Wasmail, Dovecot, Wasmail, Dovecot, ...: ABAB), so that a machine whose
# speed drifts (this VM's fsync latency does) affects both alike; each row's ratio is the
# median of the rounds' ratios.
PAIRS=${PAIRS:-3}
names=("first SELECT INBOX of a round (1st: indexing)" "SELECT INBOX" "FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE)"
    "FETCH 1:* BODY.PEEK[]" "SEARCH TEXT" "SORT (SUBJECT) UTF-8 ALL" "THREAD REFERENCES UTF-8 ALL"
    "QRESYNC resync after 100 flag changes" "STORE 1:* +FLAGS (\\Flagged)" "EXPUNGE 1,000 (per message)"
    "STORE/NOOP on one message (commands/s)"
    "mbsync full pull, first run" "mbsync full pull, second run")
for pair in $(seq 1 "$PAIRS"); do
    echo "$(imaplib_rates "$WASMAIL_IMAP" "$pair") $(mbsync_rate "$WASMAIL_IMAP")" >"$work/wasmail.$pair"
    echo "$(imaplib_rates "$DOVECOT_IMAP" "$pair") $(mbsync_rate "$DOVECOT_IMAP")" >"$work/dovecot.$pair"
done

# PERF=1: one more mbsync pull from Wasmail under `perf record`, and its profile.
if [ -n "${PERF:-}" ]; then
    profile mbsync "$(pgrep -f "wasmail serve --config $work/wasmail")" mbsync_rate "$WASMAIL_IMAP"
fi

python3 - "$work" "$PAIRS" "$MESSAGES" "${names[@]}" <<'PY'
import statistics, sys
work, pairs, messages, names = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
def rounds(server):
    return [[float(x) for x in open(f"{work}/{server}.{p}").read().split()] for p in range(1, pairs + 1)]
w, d = rounds("wasmail"), rounds("dovecot")
print(f"messages/s ({messages} messages), medians of {pairs} interleaved pairs; ratio per pair, then its median")
print(f"{'':44} {'wasmail':>10} {'dovecot':>10}  {'pairs':<24} {'ratio':>6}")
for i, name in enumerate(names):
    ratios = [w[p][i] / d[p][i] for p in range(pairs)]
    wm, dm = statistics.median(r[i] for r in w), statistics.median(r[i] for r in d)
    print(f"{name:44} {wm:10.0f} {dm:10.0f}  {' '.join(f'{r:.2f}' for r in ratios):<24} {statistics.median(ratios):6.2f}")
PY

#!/usr/bin/env bash
# POP3 RETR throughput: Python's poplib logs in and RETRs every message of a 10,000-message
# Maildir (4 KiB on average), from Wasmail and then from a private Dovecot pop3d (Debian's
# dovecot-pop3d, on loopback, reading a copy of the same Maildir), and prints messages per
# second and their ratio, PAIRS rounds in turn. Both servers read from the page cache after a
# warm-up pass.
#
# Usage: [PAIRS=3] [PERF=1] bench/pop3-retr.sh [MESSAGES]   (default 10000; PAIRS interleaved rounds)
set -euo pipefail
cd "$(dirname "$0")/.."

MESSAGES=${1:-10000}
WASMAIL_SMTP=2646
WASMAIL_POP3=2647
DOVECOT_POP3=2648

source bench/lib.sh
if [ ! -x /usr/lib/dovecot/pop3 ]; then
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq dovecot-pop3d >/dev/null
fi
cargo build --release --locked -p wasmail >/dev/null

work=$(mktemp -d /tmp/wasmail-pop3-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$work/dovecot/dovecot.conf" ] && $sudo doveadm -c "$work/dovecot/dovecot.conf" stop >/dev/null 2>&1 || true
    $sudo rm -rf "$work"
}
trap cleanup EXIT

# One Maildir of MESSAGES messages, 1 to 7 KiB (4 KiB on average), named as Maildir names are.
python3 - "$work/maildir" "$MESSAGES" <<'PY'
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
random.seed(1)
for sub in ("tmp", "new", "cur"):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01234\n"
for i in range(count):
    body = line * (random.randint(1024, 7168) // len(line))
    text = f"From: bench@client.example\nTo: bench@localhost\nSubject: message {i}\nMessage-ID: <{i}@bench>\n\n{body}"
    data = text.encode()
    size, lines = len(data), data.count(b"\n")
    name = f"{1800000000 + i}.M{i}P1.bench,S={size},W={size + lines}"
    with open(os.path.join(root, "cur", name + ":2,S"), "wb") as f:
        f.write(data)
PY

# Wasmail: the Maildir as user bench's mailbox.
serve_maildir "$work/wasmail" "$work/maildir" "[smtp]\nlisten = [\"127.0.0.1:$WASMAIL_SMTP\"]\n[pop3]\nlisten = [\"127.0.0.1:$WASMAIL_POP3\"]\n[imap]\nlisten = []\n"

# Dovecot: a private instance reading a copy of the Maildir.
start_dovecot "$work/dovecot" pop3 "$DOVECOT_POP3" "$work/maildir"

wait_for_ports "$WASMAIL_POP3" "$DOVECOT_POP3"

retr_all() {
    python3 - "$1" "$MESSAGES" <<'PY'
import poplib, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
def run():
    pop = poplib.POP3("127.0.0.1", port, timeout=60)
    pop.user("bench")
    pop.pass_("secret")
    n, _ = pop.stat()
    assert n == count, (n, count)
    start = time.monotonic()
    octets = 0
    for i in range(1, n + 1):
        octets += pop.retr(i)[2]
    elapsed = time.monotonic() - start
    pop.quit()
    return n / elapsed, octets / elapsed / 1e6
run()  # warm-up: both read from the page cache after it
rate, mb = run()
print(f"{rate:.0f} {mb:.1f}")
PY
}

# Rounds in turn (Wasmail, Dovecot, Wasmail, ...: ABAB, PAIRS times), as the other
# benchmarks: the ratio is the median of the pairs' ratios.
PAIRS=${PAIRS:-3}
ratios=()
for pair in $(seq 1 "$PAIRS"); do
    read -r w_rate w_mb < <(retr_all "$WASMAIL_POP3")
    read -r d_rate d_mb < <(retr_all "$DOVECOT_POP3")
    printf 'wasmail  RETR %6d messages/s  %6.1f MB/s\n' "$w_rate" "$w_mb"
    printf 'dovecot  RETR %6d messages/s  %6.1f MB/s\n' "$d_rate" "$d_mb"
    ratios+=("$(echo "$w_rate / $d_rate" | bc -l | xargs printf '%.2f')")
done
# PERF=1: one more round from Wasmail under `perf record`, and its profile.
if [ -n "${PERF:-}" ]; then
    profile pop3-retr "$(pgrep -f "wasmail serve --config $work/wasmail")" retr_all "$WASMAIL_POP3"
fi
echo "wasmail/dovecot RETR ratio per pair: ${ratios[*]}; median $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ r[NR] = $1 } END { print (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2 }')"

#!/usr/bin/env bash
# What DKIM signing and the checks of mail received cost: the server's CPU time per message
# (user + system, from /proc, over the whole of receiving, queueing and delivering into
# Maildir) and the messages per second, with and without.
#
# - Signing: a client in relay_networks sends MESSAGES messages whose From: is in a domain
#   with an RSA-2048 signer, in one with an Ed25519 signer, and in one with none.
# - Checks: an unauthenticated client sends mail signed by those keys (signed by Wasmail
#   itself first) from a domain whose SPF passes, to a server with [auth_results] on, and the
#   same to one with it off. DNS is answered by tests/clients/dns_server.py on 127.0.0.1: the
#   SPF, DKIM and DMARC records, which the resolver then caches (as it would for a sender that
#   writes often).
#
# The sender is Python's smtplib over SESSIONS connections (bench/clients/smtp_send.py).
# Usage: [ROUNDS=3] bench/authenticity.sh [MESSAGES] [SESSIONS] [SIZE]   (defaults 2000 10 4096)
# Servers listen on 127.0.0.1 only and are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

MESSAGES=${1:-2000}
SESSIONS=${2:-10}
SIZE=${3:-4096}
ROUNDS=${ROUNDS:-3}
DNS_PORT=2653
SIGN_PORT=2654
CHECK_PORT=2655
PLAIN_PORT=2656

source bench/lib.sh
cargo build --release --locked -p wasmail >/dev/null

work=$(mktemp -d /tmp/wasmail-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Keys, their records, and the other records the checks look up.
target/release/wasmail dkim keygen --domain example.org --selector s1 --out "$work/rsa.key" >"$work/rsa.record" 2>/dev/null
target/release/wasmail dkim keygen --domain ed.example --selector s2 --algorithm ed25519 --out "$work/ed.key" >"$work/ed.record" 2>/dev/null
python3 - "$work" "$SIZE" <<'PY'
import json, sys
work, size = sys.argv[1], int(sys.argv[2])
def record(path):
    name, value = open(path).read().strip().split(" IN TXT ", 1)
    return name.rstrip("."), "".join(value.split('"')[1::2])
records = {
    "example.org": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
    "ed.example": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
    "_dmarc.example.org": {"TXT": ["v=DMARC1; p=reject"]},
    "_dmarc.ed.example": {"TXT": ["v=DMARC1; p=reject"]},
}
for path in ("rsa.record", "ed.record"):
    name, value = record(f"{work}/{path}")
    records[name] = {"TXT": [value]}
json.dump(records, open(f"{work}/records.json", "w"))
# One message per From: domain, SIZE octets of text.
line = "The quarterly figures are in the attached sheet; the totals are final.\r\n"
body = line * max(1, size // len(line))
for name, sender in (("plain", "ann@plain.example"), ("rsa", "ann@example.org"), ("ed", "cat@ed.example")):
    with open(f"{work}/{name}.eml", "wb") as f:
        f.write((f"From: <{sender}>\r\nTo: <tyler@localhost>\r\nSubject: figures\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
                 f"Message-ID: <{name}@bench>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{body}\r\n").encode())
PY

python3 tests/clients/dns_server.py "$DNS_PORT" "$work/records.json" >"$work/dns.out" &
pids+=($!)
for _ in $(seq 1 100); do grep -q ready "$work/dns.out" 2>/dev/null && break; sleep 0.05; done

printf 'relay_networks = ["127.0.0.0/8"]\n' >"$work/sign.toml"
for signer in "example.org s1 rsa" "ed.example s2 ed"; do
    read -r domain selector key <<<"$signer"
    printf '[[dkim.signer]]\ndomain = "%s"\nselector = "%s"\nkey_file = "%s"\n' "$domain" "$selector" "$work/$key.key" >>"$work/sign.toml"
done
printf '[dns]\nnameservers = ["127.0.0.1:%s"]\n' "$DNS_PORT" >"$work/check.toml"
printf '[auth_results]\nenabled = false\n' >"$work/plain.toml"
start_wasmail "$work/sign" "$SIGN_PORT" --config "$work/sign.toml"
sign_pid=${pids[-1]}
start_wasmail "$work/check" "$CHECK_PORT" --config "$work/check.toml"
check_pid=${pids[-1]}
start_wasmail "$work/plain" "$PLAIN_PORT" --config "$work/plain.toml"
plain_pid=${pids[-1]}

# The corpus the checks verify: one message of each signer, signed by Wasmail, without the
# trace fields it put on top.
python3 bench/clients/smtp_send.py "$SIGN_PORT" 1 1 bounce@example.org tyler@localhost "$work/rsa.eml" >/dev/null
python3 bench/clients/smtp_send.py "$SIGN_PORT" 1 1 bounce@ed.example tyler@localhost "$work/ed.eml" >/dev/null
wait_for "$work/sign/data/mail" 2 "$(date +%s.%N)" >/dev/null
for file in "$work"/sign/data/mail/tyler/new/*; do
    name=rsa
    grep -q "d=ed.example" "$file" && name=ed
    # Maildir keeps LF line ends; SMTP wants CRLF.
    python3 -c 'import sys; m = open(sys.argv[1], "rb").read().replace(b"\n", b"\r\n"); open(sys.argv[2], "wb").write(m[m.index(b"DKIM-Signature:"):])' "$file" "$work/$name-signed.eml"
done
delivered_sign=2
delivered_check=0
delivered_plain=0

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# measure MODE PID PORT SENDER FILE COUNTER: one run; appends "messages/s cpu-ms-per-message"
# to $work/MODE.runs. COUNTER names the variable that counts the server's deliveries (its
# name after delivered_ is the server's folder).
measure() {
    local mode=$1 pid=$2 port=$3 sender=$4 file=$5 counter=$6
    local before after seconds expected start
    before=$(cpu_ticks "$pid")
    start=$(date +%s.%N)
    seconds=$(python3 bench/clients/smtp_send.py "$port" "$MESSAGES" "$SESSIONS" "$sender" tyler@localhost "$file")
    expected=$((${!counter} + MESSAGES))
    printf -v "$counter" '%s' "$expected"
    wait_for "$work/${counter#delivered_}/data/mail" "$expected" "$start" >/dev/null
    after=$(cpu_ticks "$pid")
    echo "$(echo "$MESSAGES / $seconds" | bc -l) $(echo "($after - $before) * 1000 / $(getconf CLK_TCK) / $MESSAGES" | bc -l)" >>"$work/$mode.runs"
}

for round in $(seq 1 "$ROUNDS"); do
    measure unsigned "$sign_pid" "$SIGN_PORT" bounce@plain.example "$work/plain.eml" delivered_sign
    measure rsa-sign "$sign_pid" "$SIGN_PORT" bounce@example.org "$work/rsa.eml" delivered_sign
    measure ed-sign "$sign_pid" "$SIGN_PORT" bounce@ed.example "$work/ed.eml" delivered_sign
    measure checks-off "$plain_pid" "$PLAIN_PORT" bounce@example.org "$work/rsa-signed.eml" delivered_plain
    measure rsa-checked "$check_pid" "$CHECK_PORT" bounce@example.org "$work/rsa-signed.eml" delivered_check
    measure ed-checked "$check_pid" "$CHECK_PORT" bounce@ed.example "$work/ed-signed.eml" delivered_check
    echo "round $round of $ROUNDS done" >&2
done

# The figures mean something only if the checks passed.
for d in example.org ed.example; do
    grep -rlq "dkim=pass header.d=$d" "$work/check/data/mail/tyler/new" || { echo "no checked message passed DKIM for $d" >&2; exit 1; }
done
median() { sort -n | awk '{ r[NR] = $1 } END { print (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2 }'; }
row() {
    local mode=$1 base=$2 label=$3 rate cpu base_cpu cost=-
    rate=$(cut -d' ' -f1 "$work/$mode.runs" | median)
    cpu=$(cut -d' ' -f2 "$work/$mode.runs" | median)
    base_cpu=$(cut -d' ' -f2 "$work/$base.runs" | median)
    [ "$mode" = "$base" ] || cost=$(printf '%+.3f' "$(echo "$cpu - $base_cpu" | bc -l)")
    printf '%-36s %10.0f %15.3f %10s\n' "$label" "$rate" "$cpu" "$cost"
}
printf '%d messages of %d octets over %d sessions, median of %d rounds\n' "$MESSAGES" "$SIZE" "$SESSIONS" "$ROUNDS"
printf '%-36s %10s %15s %10s\n' "" "messages/s" "CPU ms/message" "cost (ms)"
row unsigned unsigned "relay_networks, not signed"
row rsa-sign unsigned "signed, rsa-sha256 (2048 bits)"
row ed-sign unsigned "signed, ed25519-sha256"
row checks-off checks-off "unauthenticated, checks off"
row rsa-checked checks-off "checked, rsa-sha256 signature"
row ed-checked checks-off "checked, ed25519-sha256 signature"

#!/usr/bin/env bash
# What a session costs in memory: a release Wasmail (with the example plugins) is given
# SESSIONS idle SMTP sessions (greeted, after EHLO) and then, on a fresh start, SESSIONS idle
# IMAP sessions (logged in, INBOX selected, as a mail client that stays connected), each held
# open by one Python process. The server's resident size (VmRSS) is read before and once all
# sessions are up; it prints the growth per session. Then it does the same with SESSIONS/10
# SMTP sessions that each sent a 1 MiB message first (buffers grown once, then idle).
#
# Usage: bench/session-memory.sh [SESSIONS]   (default 10000; KINDS="smtp imap smtp-busy")
set -euo pipefail
cd "$(dirname "$0")/.."

SESSIONS=${1:-10000}
SMTP_PORT=2661
IMAP_PORT=2662

source bench/lib.sh
# One descriptor per session in the server, one in the client (separate processes).
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((SESSIONS + 200)) ]; then
    echo "ulimit -n is $(ulimit -n): too few descriptors for $SESSIONS sessions" >&2
    exit 1
fi
cargo build --release --locked -p wasmail >/dev/null
[ -f target/plugins/verb.wasm ] || scripts/build-plugins.sh

work=$(mktemp -d /tmp/wasmail-memory-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# start DIR: a fresh server whose limits let SESSIONS sessions in from 127.0.0.1.
start() {
    local dir=$1
    mkdir -p "$dir/plugins"
    cp target/plugins/*.wasm "$dir/plugins/"
    # greylist would defer the busy sessions' first message: let every triple pass.
    printf '[config]\ndelay = "0"\n' >"$dir/plugins/greylist.toml"
    cat >"$dir/wasmail.toml" <<TOML
data_dir = "data"
users_file = "users"
domains = ["localhost"]
[smtp]
listen = ["127.0.0.1:$SMTP_PORT"]
max_connections = $((SESSIONS + 100))
max_connections_per_address = $((SESSIONS + 100))
max_messages_per_minute = 100000
[imap]
listen = ["127.0.0.1:$IMAP_PORT"]
max_connections = $((SESSIONS + 100))
max_connections_per_address = $((SESSIONS + 100))
[pop3]
listen = ["127.0.0.1:0"]
TOML
    echo secret | target/release/wasmail user add bench --password-stdin --config "$dir/wasmail.toml" >/dev/null
    target/release/wasmail serve --config "$dir/wasmail.toml" 2>"$dir/log" &
    server=$!
    pids+=("$server")
    wait_for_ports "$SMTP_PORT" "$IMAP_PORT"
}

# hold KIND COUNT: opens COUNT sessions of KIND and keeps them until stdin closes; the file
# $work/ready appears once all are up.
hold() {
    python3 - "$1" "$2" "$work/ready" <<'PY' &
import socket, sys
kind, count, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3]
smtp_port, imap_port = 2661, 2662
message = b"Subject: memory\r\n\r\n" + (b"x" * 1022 + b"\r\n") * 1024 + b".\r\n"
message = message.replace(b"x" * 1022, b"x" * 510 + b"\r\n" + b"x" * 510)

def reply(s, done):
    data = b""
    while not done(data):
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit(f"closed after {data!r}")
        data += chunk
    return data

def smtp_done(data):
    lines = data.split(b"\r\n")
    return len(lines) > 1 and len(lines[-2]) > 3 and lines[-2][3:4] == b" "

held = []
if kind == "imap-warm-up":
    # Password checks (argon2, 19 MiB each) leave memory in the allocator's per-thread arenas
    # once; log in a few hundred times first so that the figure is what sessions hold.
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", imap_port))
        reply(s, lambda d: d.endswith(b"\r\n"))
        s.sendall(b"a LOGIN bench secret\r\nb LOGOUT\r\n")
        reply(s, lambda d: b"b OK" in d)
        s.close()
    count = 0
for i in range(count):
    if kind == "imap":
        s = socket.create_connection(("127.0.0.1", imap_port))
        reply(s, lambda d: d.endswith(b"\r\n"))
        s.sendall(b"a LOGIN bench secret\r\nb SELECT INBOX\r\n")
        reply(s, lambda d: b"\r\nb OK" in d or d.startswith(b"b OK"))
    else:
        s = socket.create_connection(("127.0.0.1", smtp_port))
        reply(s, smtp_done)
        s.sendall(b"EHLO bench.example\r\n")
        reply(s, smtp_done)
        if kind == "smtp-busy":
            s.sendall(b"MAIL FROM:<a@bench.example>\r\nRCPT TO:<bench@localhost>\r\nDATA\r\n")
            reply(s, lambda d: d.count(b"\r\n") >= 3)
            s.sendall(message)
            reply(s, smtp_done)
    held.append(s)
open(ready, "w").close()
sys.stdin.read()
PY
    client=$!
}

# measure KIND COUNT: prints the server's growth per session for COUNT sessions of KIND.
measure() {
    local kind=$1 count=$2
    start "$work/$kind"
    sleep 1
    local before after warm
    if [ "$kind" = imap ]; then
        warm=$(rss_kib "$server")
        rm -f "$work/ready"
        hold imap-warm-up 300 < /dev/null
        wait "$client" || true
        printf '%-10s 300 logins one after the other: server RSS %d KiB -> %d KiB (allocator arenas, once)\n' \
            "$kind" "$warm" "$(rss_kib "$server")"
    fi
    before=$(rss_kib "$server")
    rm -f "$work/ready"
    hold "$kind" "$count" < <(sleep 100000)
    # Each IMAP login checks a password (argon2): 10,000 take several minutes here.
    for _ in $(seq 1 18000); do [ -f "$work/ready" ] && break; sleep 0.1; done
    [ -f "$work/ready" ] || { echo "the sessions did not come up" >&2; exit 1; }
    sleep 2
    after=$(rss_kib "$server")
    printf '%-10s %6d sessions   server RSS %7d KiB -> %7d KiB   %6.1f KiB per session\n' \
        "$kind" "$count" "$before" "$after" "$(echo "($after - $before) / $count" | bc -l)"
    kill "$client" "$server" 2>/dev/null || true
    wait "$client" "$server" 2>/dev/null || true
}

# KINDS="imap" runs only some of the measurements.
for kind in ${KINDS:-smtp imap smtp-busy}; do
    case $kind in
        smtp-busy) measure smtp-busy $((SESSIONS / 10)) ;;
        *) measure "$kind" "$SESSIONS" ;;
    esac
done

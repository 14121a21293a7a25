#!/usr/bin/env bash
# SMTP throughput: Wasmail against Postfix on the same machine, both storing into Maildir and
# both fsync'ing before they answer 250.
#
# Postfix's smtp-source sends MESSAGES messages of SIZE octets over SESSIONS concurrent
# sessions (one message per session connection: -m total, -s sessions, -l size) to each
# server in turn. For each we print:
#   accepted/s   messages answered 250 per second (smtp-source's wall time)
#   delivered/s  messages in the Maildir per second, from the first connection until the
#                last message is in new/ (both queue first, fsync'd before the 250, and
#                deliver after it)
# Then the same load to another domain, relayed by each server to a Wasmail next hop, whose
# Maildir is counted.
#
# Usage: [PAIRS=3] [PERF=1] bench/smtp-throughput.sh [MESSAGES] [SESSIONS] [SIZE]   (defaults 5000 20 4096)
# Installs postfix (for smtp-source and the comparison; the system Postfix is never started:
# the peer runs as a private instance under a temporary directory) and builds wasmail in
# release mode. Servers listen on 127.0.0.1 only and are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

MESSAGES=${1:-5000}
SESSIONS=${2:-20}
SIZE=${3:-4096}
WASMAIL_PORT=2626
POSTFIX_PORT=2727

source bench/lib.sh
need_smtp_source
cargo build --release --locked -p wasmail >/dev/null

work=$(mktemp -d /tmp/wasmail-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$work/postfix/main.cf" ] && $sudo postfix -c "$work/postfix" stop >/dev/null 2>&1 || true
    $sudo rm -rf "$work"
}
trap cleanup EXIT

# --- Wasmail: embedded defaults, development mode, its own data directory, no plugins.
start_wasmail "$work/wasmail" "$WASMAIL_PORT"

# --- Postfix: a private instance, virtual(8) Maildir delivery to one mailbox.
pf="$work/postfix"
mkdir -p "$pf/mail"
chown nobody:nogroup "$pf/mail"
sed "s/^smtp      inet  n       -       y       -       -       smtpd/127.0.0.1:$POSTFIX_PORT inet n - n - - smtpd/" \
    /usr/share/postfix/master.cf.dist >"$pf/master.cf"
grep -q "^127.0.0.1:$POSTFIX_PORT" "$pf/master.cf" || { echo "could not set the Postfix listener" >&2; exit 1; }
cat >"$pf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $pf/spool
data_directory = $pf/lib
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = localhost
virtual_mailbox_base = $pf/mail
virtual_mailbox_maps = static:tyler/
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(getent group nogroup | cut -d: -f3)
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
maillog_file = $pf/maillog
maillog_file_prefixes = /tmp
default_process_limit = 100
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
EOF
mkdir -p "$pf/spool" "$pf/lib"
chown postfix "$pf/lib"
$sudo postfix -c "$pf" set-permissions >/dev/null 2>&1 || true
$sudo postfix -c "$pf" start >/dev/null 2>&1 || { echo "Postfix did not start; see $pf/maillog" >&2; cat "$pf/maillog" >&2 || true; exit 1; }
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$POSTFIX_PORT") 2>/dev/null && break; sleep 0.1; done

# Rounds in turn (Wasmail, Postfix, Wasmail, Postfix, ...: ABAB), so that a drift of the
# machine's speed (this VM's fsync latency varies several-fold) affects both alike; the
# ratio is the median of the pairs' ratios.
PAIRS=${PAIRS:-3}
pairs() {
    local a=$1 a_port=$2 a_root=$3 b=$4 b_port=$5 b_root=$6 ratios=()
    for pair in $(seq 1 "$PAIRS"); do
        EXPECT=$((pair * MESSAGES)) run_source "$a" "$a_port" "$a_root"
        EXPECT=$((pair * MESSAGES)) run_source "$b" "$b_port" "$b_root"
        ratios+=("$(ratio "$a" "$b")")
    done
    echo "$a/$b delivered ratio per pair: ${ratios[*]}; median $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ r[NR] = $1 } END { print (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2 }')"
}
pairs wasmail "$WASMAIL_PORT" "$work/wasmail/data/mail" postfix "$POSTFIX_PORT" "$pf/mail"
# PERF=1: one more round on Wasmail under `perf record`, and its profile.
if [ -n "${PERF:-}" ]; then
    EXPECT=$(((PAIRS + 1) * MESSAGES)) profile smtp "${pids[0]}" run_source wasmail "$WASMAIL_PORT" "$work/wasmail/data/mail"
fi

# Relaying: the same load for another domain, through Wasmail and through the same Postfix,
# each relaying to a fresh Wasmail instance (the next hop) that delivers into its Maildir.
HOP_A=2636
HOP_B=2637
RELAY_PORT=2638
start_wasmail "$work/hop-a" "$HOP_A" --domain remote.test
start_wasmail "$work/hop-b" "$HOP_B" --domain remote.test
printf 'relay_networks = ["127.0.0.0/8"]\n[auth_results]\nenabled = false\n[routes]\n"remote.test" = "127.0.0.1:%s"\n' "$HOP_A" >"$work/relay.toml"
start_wasmail "$work/relay" "$RELAY_PORT" --config "$work/relay.toml"
$sudo postconf -c "$pf" -e "relay_domains = remote.test" "transport_maps = inline:{remote.test=smtp:[127.0.0.1]:$HOP_B}"
$sudo postfix -c "$pf" reload >/dev/null 2>&1
sleep 1
RCPT=tyler@remote.test pairs wasmail-relay "$RELAY_PORT" "$work/hop-a/data/mail" postfix-relay "$POSTFIX_PORT" "$work/hop-b/data/mail"

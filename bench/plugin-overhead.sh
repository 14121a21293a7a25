#!/usr/bin/env bash
# Plugin overhead: the SMTP throughput benchmark (smtp-source, MESSAGES messages of SIZE
# octets over SESSIONS sessions) against Wasmail without plugins and with the example plugins
# loaded and hooked on every stage (greylist enabled with no delay: MAIL, RCPT; onex:
# MAIL; xusr: DATA; verb: its verb and replies). Prints both figures and their ratio, then
# `wasmail plugin bench`: one session's instantiation of all plugins and one hook call, in µs.
#
# The two configurations run in ABBA order (without, with, with, without), each on a fresh
# data directory, and each figure is the mean of its two runs: on a VM the fsync latency
# drifts from one run to the next, and a plain A-then-B order measures the drift.
#
# Usage: bench/plugin-overhead.sh [MESSAGES] [SESSIONS] [SIZE]   (defaults 5000 20 4096)
set -euo pipefail
cd "$(dirname "$0")/.."

MESSAGES=${1:-5000}
SESSIONS=${2:-20}
SIZE=${3:-4096}
PORT_PLAIN=2626
PORT_PLUGINS=2628

source bench/lib.sh
need_smtp_source
scripts/build-plugins.sh 2>/dev/null
cargo build --release --locked -p wasmail >/dev/null

# The data directories live in a tmpfs (BENCH_DIR to change it): fsync there is nearly free,
# so the figures compare the CPU cost of the two configurations instead of the VM's disk
# latency, which drifts by a factor of two from run to run (see the README).
work=$(mktemp -d "${BENCH_DIR:-/dev/shm}/wasmail-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# The session-hook example plugins, greylisting switched on with no delay so that it runs but
# passes. The MIME handlers have their own benchmark (bench/mime.sh).
mkdir -p "$work/plugins"
for name in verb onex xusr greylist; do cp "target/plugins/$name.wasm" "$work/plugins/"; done
printf 'enabled = true\n[config]\ndelay = "0"\n' >"$work/plugins/greylist.toml"

mean() { echo "($(cat "$work/$1.rate") + $(cat "$work/$2.rate")) / 2" | bc -l; }

# compare LABEL: runs the ABBA rounds with the current SOURCE_ARGS and prints the ratio.
compare() {
    local label=$1 round=0 config dir port
    for config in no-plugins with-plugins with-plugins no-plugins; do
        round=$((round + 1))
        dir="$work/run$round"
        port=$PORT_PLAIN
        if [ "$config" = with-plugins ]; then
            port=$PORT_PLUGINS
            start_wasmail "$dir" "$port" --plugins "$work/plugins"
        else
            start_wasmail "$dir" "$port"
        fi
        run_source "$config-$round" "$port" "$dir/data/mail"
        kill "${pids[-1]}"
        wait "${pids[-1]}" 2>/dev/null || true
        rm -rf "$dir"
    done
    local without with
    without=$(mean no-plugins-1 no-plugins-4)
    with=$(mean with-plugins-2 with-plugins-3)
    printf '%s: delivered/s without plugins %.0f, with plugins %.0f, ratio %.2f\n' \
        "$label" "$without" "$with" "$(echo "$with / $without" | bc -l)"
}

# A new connection for every message: each message pays a session's instantiations.
SOURCE_ARGS="" compare "one message per connection"
# smtp-source -d: each of the SESSIONS connections sends its share of the messages.
SOURCE_ARGS="-d" compare "messages over $SESSIONS kept connections"
target/release/wasmail plugin bench "$work/plugins"

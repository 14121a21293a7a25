#!/usr/bin/env bash
# Runs Dovecot's IMAP compliance suite (imaptest, the `src/tests` of its release-2.3 branch)
# against a release Wasmail on loopback, one test group at a time, and prints a verdict per
# group and the totals.
#
# Usage: scripts/imaptest.sh IMAPTEST_DIR [GROUP...]
#        PEER=dovecot scripts/imaptest.sh IMAPTEST_DIR [GROUP...]   (the same groups against a
#        private Dovecot imapd, Debian's dovecot-imapd, as bench/imap.sh starts it)
#   IMAPTEST_DIR  a built imaptest tree: IMAPTEST_DIR/src/imaptest and IMAPTEST_DIR/src/tests
#                 (github.com/dovecot/imaptest, branch release-2.3, built against Debian's
#                 dovecot-dev: ./autogen.sh && ./configure --with-dovecot=/usr/lib/dovecot
#                 && make). GROUPs name test files; all of them by default.
# Not part of scripts/test: building imaptest needs its repository.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAPTEST_DIR=${1:?usage: scripts/imaptest.sh IMAPTEST_DIR [GROUP...]}
shift
IMAPTEST_DIR=$(cd "$IMAPTEST_DIR" && pwd)
[ -x "$IMAPTEST_DIR/src/imaptest" ] || { echo "no $IMAPTEST_DIR/src/imaptest: build imaptest first" >&2; exit 2; }
work=$(mktemp -d /tmp/wasmail-imaptest.XXXXXX)
chmod 755 "$work"
pid=""
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user=testuser pass=pass
if [ "${PEER:-}" = dovecot ]; then
    source bench/lib.sh
    [ -x /usr/lib/dovecot/imap ] || DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq dovecot-imapd >/dev/null
    cleanup() {
        $sudo doveadm -c "$work/dovecot/dovecot.conf" stop >/dev/null 2>&1 || true
        $sudo rm -rf "$work"
    }
    trap cleanup EXIT
    mkdir -p "$work/empty/cur" "$work/empty/new" "$work/empty/tmp"
    start_dovecot "$work/dovecot" imap "$port" "$work/empty"
    user=bench pass=secret
else
    cargo build --release --locked -p wasmail >/dev/null
    cleanup() {
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
        rm -rf "$work"
    }
    trap cleanup EXIT
    printf 'data_dir = "data"\nusers_file = "users"\n[smtp]\nlisten = ["127.0.0.1:0"]\n[pop3]\nlisten = []\n[imap]\nlisten = ["127.0.0.1:%s"]\n' "$port" >"$work/wasmail.toml"
    echo "$pass" | target/release/wasmail user add "$user" --password-stdin --config "$work/wasmail.toml" >/dev/null
    target/release/wasmail serve --config "$work/wasmail.toml" 2>"$work/log" &
    pid=$!
fi
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

groups=("$@")
if [ ${#groups[@]} -eq 0 ]; then
    for file in "$IMAPTEST_DIR"/src/tests/*; do
        [ -f "$file" ] || continue   # broken/ holds tests imaptest itself does not run
        case "$file" in *.mbox) continue ;; esac
        groups+=("$(basename "$file")")
    done
fi

passed=0 failed=0 skipped=0
for group in "${groups[@]}"; do
    out=$(cd "$IMAPTEST_DIR" && timeout 300 src/imaptest host=127.0.0.1 port="$port" user="$user" pass="$pass" \
        test="src/tests/$group" 2>&1 || true)
    summary=$(grep -E '^[0-9]+ test groups:' <<<"$out" | tail -1)
    if grep -q ' 1 skipped' <<<"$summary"; then
        verdict=skipped; skipped=$((skipped + 1))
    elif grep -q ' 0 failed' <<<"$summary"; then
        verdict=passed; passed=$((passed + 1))
    else
        verdict=FAILED; failed=$((failed + 1))
    fi
    printf '%-40s %s\n' "$group" "$verdict"
    [ "$verdict" = FAILED ] && grep -E '^\*\*\* Test|failed:|Error:' <<<"$out" | head -20 | sed 's/^/    /'
done
echo "groups: $passed passed, $failed failed, $skipped skipped (missing capabilities)"
[ "$failed" -eq 0 ]

# Shared by the benchmark scripts: sourced, not run. Servers listen on 127.0.0.1 only.

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# Installs postfix for smtp-source (and the Postfix comparison) without starting it.
need_smtp_source() {
    if ! command -v smtp-source >/dev/null || ! command -v postfix >/dev/null; then
        echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
        # policy-rc.d keeps the package from starting the system Postfix.
        DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq postfix >/dev/null
    fi
}

count_files() { find "$1" -path '*/new/*' -type f 2>/dev/null | wc -l; }

# wait_for DIR N START: waits until DIR holds N messages; prints the seconds since START.
wait_for() {
    local dir=$1 n=$2 start=$3
    for _ in $(seq 1 6000); do
        if [ "$(count_files "$dir")" -ge "$n" ]; then
            echo "$(date +%s.%N) - $start" | bc -l
            return 0
        fi
        sleep 0.05
    done
    echo "timed out waiting for $n messages in $dir" >&2
    return 1
}

# run_source NAME PORT MAILDIR_ROOT: sends $MESSAGES messages of $SIZE octets over $SESSIONS
# sessions, prints accepted/s and delivered/s, and leaves delivered/s in $work/NAME.rate.
# Delivered means MAILDIR_ROOT holds $EXPECT messages (default $MESSAGES; more when earlier
# rounds left theirs).
run_source() {
    local name=$1 port=$2 root=$3
    local start end sent delivered
    start=$(date +%s.%N)
    # shellcheck disable=SC2086 # SOURCE_ARGS is a word list on purpose (e.g. "-d").
    smtp-source ${SOURCE_ARGS:-} -s "$SESSIONS" -m "$MESSAGES" -l "$SIZE" -f sender@bench.test -t "${RCPT:-tyler@localhost}" "127.0.0.1:$port"
    end=$(date +%s.%N)
    sent=$(echo "$end - $start" | bc -l)
    delivered=$(wait_for "$root" "${EXPECT:-$MESSAGES}" "$start")
    printf '%-16s accepted/s %8.0f   delivered/s %8.0f   (%d messages, %d sessions, %d octets)\n' \
        "$name" "$(echo "$MESSAGES / $sent" | bc -l)" "$(echo "$MESSAGES / $delivered" | bc -l)" \
        "$MESSAGES" "$SESSIONS" "$SIZE"
    echo "$MESSAGES / $delivered" | bc -l >"$work/$name.rate"
}

# start_wasmail DIR PORT [ARGS...]: starts target/release/wasmail with its data under DIR and
# waits for its listener. Without a --config among ARGS it runs on a config that turns the
# checks of mail received off ([auth_results] enabled = false): they query DNS for every
# message from a client outside relay_networks, and the peers here run without such checks
# (no policy services); bench/authenticity.sh measures them.
start_wasmail() {
    local dir=$1 port=$2
    shift 2
    mkdir -p "$dir"
    if [[ " $* " != *" --config "* ]]; then
        printf '[auth_results]\nenabled = false\n' >"$dir/bench.toml"
        set -- --config "$dir/bench.toml" "$@"
    fi
    target/release/wasmail serve --data-dir "$dir/data" --smtp-listen "127.0.0.1:$port" --pop3-listen 127.0.0.1:0 --imap-listen 127.0.0.1:0 "$@" 2>"$dir/log" &
    pids+=($!)
    for _ in $(seq 1 200); do grep -q '"listening"' "$dir/log" && return 0; sleep 0.05; done
    echo "wasmail did not start:" >&2
    cat "$dir/log" >&2
    return 1
}

ratio() { printf '%.2f' "$(echo "$(cat "$work/$1.rate") / $(cat "$work/$2.rate")" | bc -l)"; }

# start_dovecot DIR PROTOCOL PORT MAILDIR: a private Dovecot instance in DIR (its own base_dir,
# a passwd-file with user bench, password secret) serving PROTOCOL (pop3 or imap) on
# 127.0.0.1:PORT from a copy of MAILDIR. Stop it with `doveadm -c DIR/dovecot.conf stop`.
start_dovecot() {
    local d=$1 protocol=$2 port=$3 maildir=$4
    mkdir -p "$d/run" "$d/home"
    cp -r "$maildir" "$d/Maildir"
    chown -R nobody:nogroup "$d/Maildir" "$d/home"
    echo "bench:{PLAIN}secret" >"$d/passwd"
    cat >"$d/dovecot.conf" <<CONF
base_dir = $d/run
instance_name = wasmail-bench-$protocol
protocols = $protocol
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = $d/log
mail_location = maildir:$d/Maildir
default_login_user = dovenull
default_internal_user = dovecot
passdb {
  driver = passwd-file
  args = $d/passwd
}
userdb {
  driver = static
  args = uid=$(id -u nobody) gid=$(getent group nogroup | cut -d: -f3) home=$d/home
}
service $protocol-login {
  inet_listener $protocol {
    port = $port
  }
}
CONF
    if [ "$protocol" = imap ]; then
        # COMPRESS=DEFLATE as Wasmail offers it (level 1): mbsync uses it with both servers.
        printf 'protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}\nplugin {\n  imap_compress_deflate_level = 1\n}\n' >>"$d/dovecot.conf"
    fi
    $sudo dovecot -c "$d/dovecot.conf"
}

# serve_maildir DIR MAILDIR TABLES: a release Wasmail in DIR serving a copy of MAILDIR as user
# bench (password secret), with TABLES (TOML) for its listeners; its pid joins `pids`.
serve_maildir() {
    local dir=$1 maildir=$2 tables=$3
    mkdir -p "$dir/data/mail"
    cp -r "$maildir" "$dir/data/mail/bench"
    printf 'data_dir = "data"\nusers_file = "users"\n%b' "$tables" >"$dir/wasmail.toml"
    echo secret | target/release/wasmail user add bench --password-stdin --config "$dir/wasmail.toml" >/dev/null
    target/release/wasmail serve --config "$dir/wasmail.toml" 2>"$dir/log" &
    pids+=($!)
}

# wait_for_ports PORT...: until each accepts connections (10 s at most each).
wait_for_ports() {
    local port
    for port in "$@"; do
        for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    done
}

# profile NAME PID COMMAND...: runs COMMAND; with PERF=1 set, records the Wasmail server PID
# with `perf record -g` meanwhile and prints its hottest functions, by their own time and with
# what they call (the summaries in bench/README.md come from here).
profile() {
    local name=$1 pid=$2
    shift 2
    if [ -z "${PERF:-}" ]; then
        "$@"
        return
    fi
    command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq linux-perf >/dev/null
    perf record -F 2000 -g -p "$pid" -o "$work/$name.perf" >/dev/null 2>&1 &
    local recorder=$!
    sleep 1
    "$@"
    kill -INT "$recorder"
    wait "$recorder" || true
    echo "--- $name: the Wasmail server's hottest functions, own time (% of its samples)"
    perf report -i "$work/$name.perf" --no-children --sort dso,sym -g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -20 || true
    echo "--- $name: with what they call"
    perf report -i "$work/$name.perf" --children --sort sym -g none --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30 || true
}

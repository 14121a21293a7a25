#!/usr/bin/env bash
# MIME handlers: what the end of DATA costs with attachment-guard and disclaimer, in process
# (`wasmail plugin bench-mime`): the limit check (a parse), a fresh session's plugin instances,
# every handler call, and writing the message out again.
#   - a 1 MiB multipart/mixed message (QP text, base64 HTML, a 1 MiB base64 attachment and
#     an .exe that attachment-guard removes), in MB/s;
#   - a 4 KiB multipart/alternative message with a small .exe, in messages/s (10,000 rounds).
# Each also without plugins (the parse alone), for scale; and a hostile 20 MiB message that
# must not take seconds (Dovecot's CVE-2020-12100). No peer server has an equivalent
# step to compare with (Postfix's cleanup only matches MIME headers against patterns).
#
# Usage: bench/mime.sh [ROUNDS_LARGE] [ROUNDS_SMALL]   (defaults 200 10000)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS_LARGE=${1:-200}
ROUNDS_SMALL=${2:-10000}

scripts/build-plugins.sh 2>/dev/null
cargo build --release --locked -p wasmail >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plugins" "$work/none"
cp target/plugins/attachment-guard.wasm target/plugins/disclaimer.wasm "$work/plugins/"

python3 - "$work" <<'PY'
import base64, quopri, random, sys
work = sys.argv[1]
random.seed(7)
def b64(data):
    s = base64.b64encode(data).decode()
    return "\n".join(s[i:i + 76] for i in range(0, len(s), 76))
text = ("Dear team,\n\nthe quarterly figures are attached. Caf\u00e9 at ten?\n\n" * 20).encode()
html = b"<html><body>" + text.replace(b"\n", b"<br>\n") + b"</body></html>"
exe = b"MZ" + bytes(random.randrange(256) for _ in range(2000))
def message(attachment_size, name):
    blob = bytes(random.randrange(256) for _ in range(attachment_size))
    return f"""From: daniel@client.example
To: tyler@localhost
Subject: figures
Message-ID: <{name}@client.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mixed"

--mixed
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

{quopri.encodestring(text).decode()}
--alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

{b64(html)}
--alt--

--mixed
Content-Type: application/pdf; name="figures.pdf"
Content-Disposition: attachment; filename="figures.pdf"
Content-Transfer-Encoding: base64

{b64(blob)}
--mixed
Content-Type: application/octet-stream; name="tool.exe"
Content-Disposition: attachment; filename="tool.exe"
Content-Transfer-Encoding: base64

{b64(exe)}
--mixed--
"""
open(f"{work}/large.eml", "w").write(message(750_000, "large"))
small = message(0, "small").replace(b64(exe), b64(exe[:300]))
open(f"{work}/small.eml", "w").write(small)
# Hostile: 20 nested multiparts (the default limit), then 20 MiB of lines that start like a
# boundary delimiter but are not one, which every level must look at.
hostile = "".join(f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n" for i in range(20)) + "\n"
hostile += "--b1x\n--\n" * ((20 << 20) // 9)
open(f"{work}/hostile.eml", "w").write(hostile)
PY

for dir in plugins none; do
    if [ "$dir" = plugins ]; then echo "== attachment-guard + disclaimer"; else echo "== no plugins (the parse alone)"; fi
    target/release/wasmail plugin bench-mime "$work/$dir" "$work/large.eml" --rounds "$ROUNDS_LARGE"
    target/release/wasmail plugin bench-mime "$work/$dir" "$work/small.eml" --rounds "$ROUNDS_SMALL"
done
echo "== hostile input: 20 levels, 20 MiB of near-miss delimiters, no plugins"
target/release/wasmail plugin bench-mime "$work/none" "$work/hostile.eml" --rounds 5

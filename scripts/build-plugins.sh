#!/usr/bin/env bash
# Builds every plugin of plugins/ for wasm32-wasip2 and puts the components in
#   target/plugins/NAME.wasm        the example plugins (with NAME.toml where there is one)
#   target/test-plugins/NAME.wasm   the sandbox test plugins (loop, memory-hog, panic, ...)
#
# It uses `rustup target add wasm32-wasip2` where that works. Where it does not (no network
# for rustup), it falls back to Debian's Rust toolchain, which builds the standard library for
# wasm32-wasip2 from source: the packages are installed if missing (see ../shared/DESIGN.md).
set -euo pipefail
cd "$(dirname "$0")/.."

examples=(verb onex xusr greylist attachment-guard disclaimer calendar-summary subaddress list-sorter archive forward dmarc-policy)
tests=(loop memory-hog panic bad-reply missing-import policy mime-trouble route-trouble host-hog)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# WASMAIL_PLUGIN_TOOLCHAIN=debian forces the fallback (to test it where rustup works).
if [ "${WASMAIL_PLUGIN_TOOLCHAIN:-}" != debian ] && { rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 \
    || timeout 60 rustup target add wasm32-wasip2 >/dev/null 2>&1; }; then
    echo "building plugins with rustup's wasm32-wasip2 target" >&2
    (cd plugins && cargo build --release --locked --target wasm32-wasip2)
else
    echo "rustup cannot add wasm32-wasip2 here; building with Debian's Rust and std from source" >&2
    if [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust ] || [ ! -x /usr/lib/llvm-22/bin/wasm-ld ] \
        || [ ! -d /usr/lib/wasm32-wasi ]; then
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -t bookworm-security \
            rustc-web cargo-web rust-web-src lld-22 >/dev/null
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wasi-libc >/dev/null
    fi
    (cd plugins && PATH=/usr/lib/llvm-22/bin:$PATH RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
        RUSTFLAGS="-L /usr/lib/wasm32-wasi" RUSTC_BOOTSTRAP=1 \
        /usr/bin/cargo build --release --locked -Zbuild-std=std,panic_abort --target wasm32-wasip2)
fi

out=plugins/target/wasm32-wasip2/release
mkdir -p target/plugins target/test-plugins
for name in "${examples[@]}"; do
    cp "$out/${name//-/_}.wasm" "target/plugins/$name.wasm"
    if [ -f "plugins/$name/$name.toml" ]; then
        cp "plugins/$name/$name.toml" "target/plugins/$name.toml"
    fi
done
for name in "${tests[@]}"; do
    cp "$out/test_${name//-/_}.wasm" "target/test-plugins/$name.wasm"
done
echo "plugins: $(ls target/plugins/*.wasm | xargs -n1 basename | tr '\n' ' ')" >&2
echo "test plugins: $(ls target/test-plugins/*.wasm | xargs -n1 basename | tr '\n' ' ')" >&2

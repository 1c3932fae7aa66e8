#!/bin/sh
# The release build the benchmark measures, and the one to run a daemon from:
#
#   sh bench/build-release.sh        # -> target/<host>/release/{mcpctl,mcpctl-shim,mcp-echo}
#
# On x86_64 Linux it links glibc statically: an idle daemon then maps no shared
# libraries (their pages counted ~1.9 MiB of its RSS), and starts without the dynamic
# loader. src/build.rs lays the daemon's functions out first from
# bench/daemon-layout.txt, written for this build (its symbol names depend on the
# target). `--target` keeps the static flag off build scripts and proc-macros.
# Caveat of static glibc: resolving host names still loads the NSS modules of the glibc
# it was built with, so run the binary where it was built (as `cargo install` does).
set -eu
cd "$(dirname "$0")/.."
HOST=$(rustc -vV | sed -n 's/^host: //p')
case "$HOST" in
  x86_64-unknown-linux-gnu) RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" ;;
  *) RUSTFLAGS=${RUSTFLAGS:-} ;;
esac
export RUSTFLAGS
exec cargo build --release --locked --target "$HOST" --bins "$@"

#!/bin/sh
# Runs mcpctl's gateway in front of one stdio backend, in the foreground, for the
# load harness in ../shared/bench (compare.py / run-peers.sh):
#
#   sh bench/mcpctl-gateway.sh PORT BACKEND_COMMAND [ARGS...]
#
# Writes a one-server config to $TMPDIR/mcpctl-bench-PORT.toml and execs
# `mcpctl daemon`, which converges at start and serves /mcp and /sse on
# 127.0.0.1:PORT. SIGTERM stops the daemon and its child. MCPCTL names the binary
# (default: the build of bench/build-release.sh). No subprocess runs before the exec, so the cold
# start measured is mcpctl's, not this script's.
set -eu
PORT=${1:?usage: mcpctl-gateway.sh PORT COMMAND [ARGS...]}
shift
MCPCTL=${MCPCTL:-$(cd "$(dirname "$0")/.." && pwd)/target/x86_64-unknown-linux-gnu/release/mcpctl}
CONFIG=${TMPDIR:-/tmp}/mcpctl-bench-$PORT.toml
{
  echo "version = 1"
  echo "[servers.bench]"
  printf 'command = "%s"\n' "$1"
  shift
  printf 'args = ['
  sep=""
  for a in "$@"; do
    printf '%s"%s"' "$sep" "$a"
    sep=", "
  done
  echo "]"
  echo "port = $PORT"
} > "$CONFIG"
exec "$MCPCTL" -f "$CONFIG" daemon

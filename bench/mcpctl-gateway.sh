#!/usr/bin/env bash
# Runs mcpctl's gateway in front of one stdio backend, in the foreground, for the
# load harness in ../shared/bench (compare.py / run-peers.sh):
#
#   bash bench/mcpctl-gateway.sh PORT BACKEND_COMMAND [ARGS...]
#
# Writes a one-server mcpctl.toml into a scratch folder and execs `mcpctl daemon`,
# which converges at start and serves /mcp and /sse on 127.0.0.1:PORT. SIGTERM stops
# the daemon and its child. MCPCTL names the binary (a release build is fairest).
set -euo pipefail
PORT=${1:?usage: mcpctl-gateway.sh PORT COMMAND [ARGS...]}
shift
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MCPCTL=${MCPCTL:-$HERE/../target/release/mcpctl}
WORK=$(mktemp -d /tmp/mcpctl-bench.XXXXXX)
{
  echo "version = 1"
  echo "[servers.bench]"
  printf 'command = "%s"\n' "$1"
  shift
  printf 'args = ['
  sep=""
  for a in "$@"; do printf '%s"%s"' "$sep" "$a"; sep=", "; done
  echo "]"
  echo "port = $PORT"
} > "$WORK/mcpctl.toml"
exec "$MCPCTL" -f "$WORK/mcpctl.toml" daemon

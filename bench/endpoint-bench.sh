#!/bin/sh
# An endpoint of 3 members against a member's own port, with the shared load client:
#
#   sh bench/endpoint-bench.sh        # needs the release build and ../shared/bench built
#
# Three `echo-backend` members (../shared/bench) behind one endpoint (`prefix =
# "always"`: the call goes to `m1__echo`), and the same call on m1's own port: p50 of
# sequential calls and 16-session throughput, for both. Then `tools/list` of an
# endpoint of 20 members x 50 tools, once cached (`mcpbench` times any tool; the list
# is timed with curl in a loop), and the daemon's memory per endpoint session.
# MCPCTL names the binary (default: target/x86_64-unknown-linux-gnu/release/mcpctl),
# BENCH_BIN the folder of mcpbench and echo-backend (default /tmp/peers/target/release).
set -eu
cd "$(dirname "$0")/.."
MCPCTL=${MCPCTL:-$PWD/target/x86_64-unknown-linux-gnu/release/mcpctl}
BIN=${BENCH_BIN:-/tmp/peers/target/release}
WORK=$(mktemp -d)
trap '"$MCPCTL" -f "$WORK/mcpctl.toml" daemon stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P1=$(free_port); P2=$(free_port); P3=$(free_port); EP=$(free_port)
cat > "$WORK/mcpctl.toml" <<TOML
version = 1
[servers.m1]
command = "$BIN/echo-backend"
port = $P1
[servers.m2]
command = "$BIN/echo-backend"
port = $P2
[servers.m3]
command = "$BIN/echo-backend"
port = $P3
[endpoints.three]
port = $EP
servers = ["m1", "m2", "m3"]
TOML
export XDG_CONFIG_HOME="$WORK/xdg" XDG_RUNTIME_DIR="$WORK/run"
mkdir -p "$XDG_RUNTIME_DIR"
"$MCPCTL" -f "$WORK/mcpctl.toml" apply >/dev/null
for _ in $(seq 1 100); do
  "$MCPCTL" -f "$WORK/mcpctl.toml" tools three 2>/dev/null | grep -q m1__echo && break
  sleep 0.1
done
# The two sides in alternating rounds (ROUNDS, default 3): on two cores, timing one
# side after the other in single blocks measured the machine's drift as much as them.
show() { python3 -c 'import json,sys; r=json.load(sys.stdin); print({k: r[k] for k in r if k not in ("label",)})'; }
for round in $(seq 1 "${ROUNDS:-3}"); do
  echo "== round $round: m1's own port"
  "$BIN/mcpbench" bench --mcp "http://127.0.0.1:$P1/mcp" --quiet --label own | tee "$WORK/own.json" | show
  echo "== round $round: through the endpoint (3 members)"
  "$BIN/mcpbench" bench --mcp "http://127.0.0.1:$EP/mcp" --tool m1__echo --quiet --label endpoint | tee "$WORK/ep.json" | show
done
echo "== memory per endpoint session"
PID=$(cat "$(dirname "$WORK/mcpctl.toml")/.mcpctl/daemon.pid")
before=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
python3 - "$EP" <<'PY'
import json, sys, urllib.request
port = sys.argv[1]
init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}}}).encode()
for i in range(200):
    r = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/mcp", data=init, headers={"content-type": "application/json", "accept": "application/json, text/event-stream"}))
    sid = r.headers["mcp-session-id"]
    call = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "m1__echo", "arguments": {"message": "x"}}}).encode()
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/mcp", data=call, headers={"content-type": "application/json", "accept": "application/json, text/event-stream", "mcp-session-id": sid})).read()
PY
after=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
echo "daemon RSS $before KiB -> $after KiB after 200 endpoint sessions (each with a member session): $(( (after - before) / 200 )) KiB a session"
echo "== tools/list of 20 members x 50 tools, cached (against one member's own, same client)"
python3 -c 'import json; print(json.dumps(["t%02d" % i for i in range(50)]))' > "$WORK/tools.json"
{
  echo "version = 1"
  for i in $(seq 1 20); do
    echo "[servers.s$i]"
    echo "command = \"python3\""
    echo "args = [\"$PWD/tests/fixtures/listed_server.py\", \"$WORK/tools.json\"]"
    echo "port = $(free_port)"
  done
  echo "[endpoints.wide]"
  echo "port = $(free_port)"
  echo "profile = \"default\""
} > "$WORK/wide.toml"
"$MCPCTL" -f "$WORK/wide.toml" apply >/dev/null
WIDE=$(sed -n '/endpoints.wide/,$p' "$WORK/wide.toml" | sed -n 's/^port = //p')
ONE=$(sed -n '/servers.s1\]/,/port/p' "$WORK/wide.toml" | sed -n 's/^port = //p')
for _ in $(seq 1 100); do
  "$MCPCTL" -f "$WORK/wide.toml" tools wide 2>/dev/null | grep -q "1000 tools" && break
  sleep 0.2
done
python3 - "$WIDE" "$ONE" <<'PY'
import json, statistics, sys, time, http.client
def p50(port, n=300):
    c = http.client.HTTPConnection("127.0.0.1", int(port))
    init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}}})
    c.request("POST", "/mcp", init, {"content-type": "application/json", "accept": "application/json, text/event-stream"})
    r = c.getresponse(); sid = r.getheader("mcp-session-id"); r.read()
    body = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    times, count = [], 0
    for _ in range(n):
        t = time.perf_counter()
        c.request("POST", "/mcp", body, {"content-type": "application/json", "accept": "application/json, text/event-stream", "mcp-session-id": sid})
        r = c.getresponse(); data = r.read()
        times.append(time.perf_counter() - t)
        count = len(json.loads(data)["result"]["tools"])
    return statistics.median(times) * 1000, count
wide, n = p50(sys.argv[1]); one, m = p50(sys.argv[2])
print(f"endpoint tools/list of {n} tools: p50 {wide:.3f} ms; one member's own ({m} tools): p50 {one:.3f} ms")
PY
"$MCPCTL" -f "$WORK/wide.toml" daemon stop >/dev/null


#!/bin/sh
# What a caller's token costs (issue 24): the check alone, and a call end to end.
#
#   cargo build --release && sh bench/tokens-bench.sh
#
# 1. `Callers::admit` (hash the token, look it up, its view of the target) with 1 and
#    1,000 tokens in the file: the ignored unit test `bench_admit`, release profile.
# 2. p50 of sequential `tools/call echo` on one keep-alive connection (Python
#    `http.client`: its own cost is the same on both sides) against mcp-echo on a port
#    without `auth` and on one with `auth = { tokens = true }`; the difference is what
#    the guard, the caller's filter and the audit line add.
# MCPCTL names the binary (default: target/release/mcpctl, the plain release build).
set -eu
cd "$(dirname "$0")/.."
MCPCTL=${MCPCTL:-$PWD/target/release/mcpctl}
WORK=$(mktemp -d)
trap '"$MCPCTL" -f "$WORK/mcpctl.toml" daemon stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== the check alone"
cargo test -q --release --lib bench_admit -- --ignored --nocapture 2>/dev/null | grep '^admit:'

OPEN=$(free_port); TOKENS=$(free_port)
ECHO=$(dirname "$MCPCTL")/mcp-echo
cat > "$WORK/mcpctl.toml" <<TOML
version = 1
[servers.open]
command = "$ECHO"
port = $OPEN
[servers.guarded]
command = "$ECHO"
port = $TOKENS
auth = { tokens = true }
TOML
export XDG_CONFIG_HOME="$WORK/xdg"
TOKEN=$("$MCPCTL" -f "$WORK/mcpctl.toml" token create bench --allow 'guarded/echo' 2>/dev/null)
"$MCPCTL" -f "$WORK/mcpctl.toml" apply >/dev/null
echo "== a call end to end (p50 of 3000 sequential calls a side, after 300 unmeasured)"
python3 - "$OPEN" "$TOKENS" "$TOKEN" <<'PY'
import http.client, json, statistics, sys, time
# The two ports in alternating rounds, so the machine's drift (other work on two
# cores, the daemon's polling) falls on both alike.
def session(port, token):
    conn = http.client.HTTPConnection("127.0.0.1", int(port))
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}}}
    conn.request("POST", "/mcp", json.dumps(init), headers)
    r = conn.getresponse(); r.read()
    headers["mcp-session-id"] = r.getheader("mcp-session-id")
    return conn, headers
body = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}})
def calls(conn, headers, n, out):
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/mcp", body, headers)
        r = conn.getresponse(); r.read()
        assert r.status == 200, r.status
        if out is not None:
            out.append((time.perf_counter() - t) * 1e6)
sides = {"open": session(sys.argv[1], None), "tokens": session(sys.argv[2], sys.argv[3])}
times = {"open": [], "tokens": []}
for side in sides:
    calls(*sides[side], 300, None)
for _ in range(20):
    for side in sides:
        calls(*sides[side], 150, times[side])
o, t = statistics.median(times["open"]), statistics.median(times["tokens"])
print(f"no auth: p50 {o:.0f} us; callers' tokens: p50 {t:.0f} us; added {t - o:+.0f} us (20 alternating rounds of 150 calls each)")
PY

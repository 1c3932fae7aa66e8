#!/bin/sh
# What tracing costs a call (issue 26): p50 and p99 of sequential `tools/call echo` on
# one keep-alive connection (Python `http.client`, the same on both sides) against
# mcp-echo, with tracing off and on, in alternating rounds on the same daemon: each
# round applies the file without `[telemetry]`, or with it (to a collector served here
# by Python, answering every export 200), live, with no restart of the server.
#
#   cargo build --release && sh bench/otel-bench.sh [ROUNDS [CALLS]]   (default 30 rounds of 1000)
#
# "on" traces every call (sample_ratio 1, no client context: a new trace each, the
# worst case: ids, both spans, the `_meta` rewrite, the export). At the end the
# daemon's /metrics says how many spans were exported and dropped.
# AA=1 measures off against off (the noise floor of the method on this machine).
# MCPCTL names the binary (default: target/release/mcpctl, the plain release build).
set -eu
cd "$(dirname "$0")/.."
MCPCTL=${MCPCTL:-$PWD/target/release/mcpctl}
ROUNDS=${1:-30}
CALLS=${2:-1000}
WORK=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); METRICS=$(free_port); COLLECTOR=$(free_port)

# The collector: reads each export, answers 200, counts requests and bytes.
python3 - "$COLLECTOR" "$WORK/collected" <<'PY' &
import http.server, sys
port, out = int(sys.argv[1]), sys.argv[2]
seen = {"requests": 0, "bytes": 0}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        self.rfile.read(n)
        seen["requests"] += 1; seen["bytes"] += n
        open(out, "w").write(f"{seen['requests']} {seen['bytes']}\n")
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
COLLECTOR_PID=$!
trap 'kill $COLLECTOR_PID 2>/dev/null; "$MCPCTL" -f "$WORK/mcpctl.toml" daemon stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
ECHO=$(dirname "$MCPCTL")/mcp-echo
cat > "$WORK/off.toml" <<TOML
version = 1
[daemon]
metrics = "127.0.0.1:$METRICS"
[servers.echo]
command = "$ECHO"
port = $PORT
TOML
{ cat "$WORK/off.toml"; printf '[telemetry]\notlp_endpoint = "http://127.0.0.1:%s"\n' "$COLLECTOR"; } > "$WORK/on.toml"
# AA=1: "on" is "off" too, the same file applied again: the method's own noise floor.
[ "${AA:-0}" = 1 ] && cp "$WORK/off.toml" "$WORK/on.toml"
cp "$WORK/off.toml" "$WORK/mcpctl.toml"
export XDG_CONFIG_HOME="$WORK/xdg"
env -u OTEL_EXPORTER_OTLP_ENDPOINT "$MCPCTL" -f "$WORK/mcpctl.toml" apply >/dev/null
echo "== a call end to end, tracing off and on ($ROUNDS alternating rounds of $CALLS calls a side, after 500 unmeasured)"
python3 - "$PORT" "$WORK" "$MCPCTL" "$ROUNDS" "$CALLS" <<'PY'
import http.client, json, shutil, statistics, subprocess, sys, time
port, work, mcpctl, rounds, per = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def use(side):
    shutil.copy(f"{work}/{side}.toml", f"{work}/mcpctl.toml")
    out = subprocess.run([mcpctl, "-f", f"{work}/mcpctl.toml", "apply"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
conn = http.client.HTTPConnection("127.0.0.1", port)
headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}}}
conn.request("POST", "/mcp", json.dumps(init), headers)
r = conn.getresponse(); r.read()
headers["mcp-session-id"] = r.getheader("mcp-session-id")
body = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}})
def calls(n, out):
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/mcp", body, headers)
        r = conn.getresponse(); r.read()
        assert r.status == 200, r.status
        if out is not None:
            out.append((time.perf_counter() - t) * 1e6)
import os, glob
def daemon_pid():
    for f in glob.glob(f"{work}/.mcpctl/daemon.pid") + glob.glob(f"{work}/**/daemon.pid", recursive=True):
        return int(open(f).read().strip())
PID = daemon_pid()
def cpu():
    # The daemon's CPU time (utime + stime, its threads included), in seconds.
    fields = open(f"/proc/{PID}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
cpu_used = {"off": 0.0, "on": 0.0}
times = {"off": [], "on": []}
per_round = {"off": [], "on": []}
for side in ("off", "on"):
    use(side); calls(500, None)
for i in range(rounds):
    for side in (("off", "on") if i % 2 == 0 else ("on", "off")):
        use(side)
        calls(100, None)  # the first calls after an apply
        these = []
        before = cpu() if PID else 0.0
        calls(per, these)
        cpu_used[side] += (cpu() - before) if PID else 0.0
        times[side] += these
        per_round[side].append(statistics.median(these))
def p(xs, q):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(q * len(xs)))]
off50, on50 = p(times["off"], 0.5), p(times["on"], 0.5)
off99, on99 = p(times["off"], 0.99), p(times["on"], 0.99)
print(f"off: p50 {off50:.1f} us, p99 {off99:.1f} us; on: p50 {on50:.1f} us ({on50 - off50:+.1f} us), "
      f"p99 {on99:.1f} us ({on99 - off99:+.1f} us)")
diffs = [b - a for a, b in zip(per_round["off"], per_round["on"])]
print("per round p50 (off/on us): " + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(per_round["off"], per_round["on"])))
print(f"median of the rounds' p50 differences: {statistics.median(diffs):+.1f} us")
if PID:
    n = rounds * per
    off_cpu, on_cpu = cpu_used["off"] / n * 1e6, cpu_used["on"] / n * 1e6
    print(f"daemon CPU per call: off {off_cpu:.1f} us, on {on_cpu:.1f} us ({on_cpu - off_cpu:+.1f} us)")
PY
sleep 2
echo "== the exporter"
python3 - "$METRICS" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode()
print("\n".join(l for l in text.splitlines() if l.startswith("mcpctl_otel_")))
PY
echo "collector: $(cut -d' ' -f1 "$WORK/collected") exports, $(cut -d' ' -f2 "$WORK/collected") bytes"

#!/bin/sh
# Tools on demand (issue 29): what a session's first `tools/list` costs with and
# without `discovery`, on six real servers, and what `find_tools` costs over 2,000
# tools.
#
#   cargo build --release && sh bench/discovery-bench.sh
#
# Part 1 serves server-everything, server-filesystem, server-memory (npm) and
# mcp-server-git, mcp-server-fetch, mcp-server-time (PyPI), pinned below, behind two
# endpoints (`all`: no discovery; `ondemand`: `discovery = true`) and counts the
# `tools` array of each first `tools/list` as compact JSON: bytes, bytes/4, and tokens
# of OpenAI's o200k_base (bpe-openai ships it, offline; no tokenizer of Claude's is
# public, so read the counts as an estimate of the order).
# Part 2: four listed_server.py members of 500 tools each (2,000, with descriptions)
# behind one endpoint with `discovery = true`: p50/p90 of 300 sequential `find_tools`
# calls over HTTP (one keep-alive connection); then the ranking alone (index build and
# one query, in-process) from the `#[ignore]` test `rank::tests::bench_find_over_2000`.
# PEERS: a folder with the servers installed (default: installed into a temp folder).
set -eu
cd "$(dirname "$0")/.."
MCPCTL=${MCPCTL:-$PWD/target/release/mcpctl}
WORK=$(mktemp -d)
PEERS=${PEERS:-$WORK/peers}
trap '"$MCPCTL" -f "$WORK/mcpctl.toml" daemon stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
if [ ! -x "$PEERS/venv/bin/mcp-server-time" ]; then
  mkdir -p "$PEERS"
  npm install --silent --no-audit --no-fund --prefix "$PEERS" \
    @modelcontextprotocol/server-everything@2026.8.31 \
    @modelcontextprotocol/server-filesystem@2026.8.31 \
    @modelcontextprotocol/server-memory@2026.8.31 >/dev/null
  python3 -m venv "$PEERS/venv"
  "$PEERS/venv/bin/pip" install -q mcp-server-git==2026.10.19 mcp-server-fetch==2026.10.24 \
    mcp-server-time==2026.10.19 bpe-openai==0.1.4
fi
PY=$PEERS/venv/bin/python
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export XDG_CONFIG_HOME="$WORK/xdg" XDG_RUNTIME_DIR="$WORK/run"
mkdir -p "$XDG_RUNTIME_DIR" "$WORK/files" "$WORK/repo"
git -C "$WORK/repo" init -q
BIN=$PEERS/node_modules/.bin
PE=$(free_port); PF=$(free_port); PM=$(free_port); PG=$(free_port); PH=$(free_port); PT=$(free_port)
ALL=$(free_port); ON=$(free_port)
cat > "$WORK/mcpctl.toml" <<TOML
version = 1
[servers.everything]
command = "$BIN/mcp-server-everything"
port = $PE
[servers.filesystem]
command = "$BIN/mcp-server-filesystem"
args = ["$WORK/files"]
port = $PF
[servers.memory]
command = "$BIN/mcp-server-memory"
port = $PM
env = { MEMORY_FILE_PATH = "$WORK/memory.jsonl" }
[servers.git]
command = "$PEERS/venv/bin/mcp-server-git"
args = ["--repository", "$WORK/repo"]
port = $PG
[servers.fetch]
command = "$PEERS/venv/bin/mcp-server-fetch"
port = $PH
[servers.time]
command = "$PEERS/venv/bin/mcp-server-time"
args = ["--local-timezone", "UTC"]
port = $PT
[endpoints.all]
port = $ALL
servers = ["everything", "filesystem", "memory", "git", "fetch", "time"]
[endpoints.ondemand]
port = $ON
servers = ["everything", "filesystem", "memory", "git", "fetch", "time"]
discovery = true
TOML
"$MCPCTL" -f "$WORK/mcpctl.toml" apply >/dev/null
# The catalog reads the members once they answer: wait for the last one's tools.
for _ in $(seq 1 300); do
  "$MCPCTL" -f "$WORK/mcpctl.toml" tools all 2>/dev/null | grep -q time__get_current_time && \
  "$MCPCTL" -f "$WORK/mcpctl.toml" tools all 2>/dev/null | grep -q everything__echo && break
  sleep 0.2
done
echo "== part 1: a session's first tools/list"
"$PY" - "$PE" "$PF" "$PM" "$PG" "$PH" "$PT" "$ALL" "$ON" <<'PY'
import json, sys, urllib.request
import bpe_openai
enc = bpe_openai.get_encoding("o200k_base")
names = ["server-everything", "server-filesystem", "server-memory", "mcp-server-git",
         "mcp-server-fetch", "mcp-server-time", "endpoint, no discovery", "endpoint, discovery = true"]
H = {"content-type": "application/json", "accept": "application/json, text/event-stream",
     "mcp-protocol-version": "2025-06-18"}
def rpc(port, body, sid=None):
    h = dict(H)
    if sid: h["mcp-session-id"] = sid
    r = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/mcp", data=json.dumps(body).encode(), headers=h), timeout=30)
    text = r.read().decode()
    if text.startswith("event:") or text.startswith("data:"):
        text = [l[5:] for l in text.splitlines() if l.startswith("data:")][-1]
    return r.headers.get("mcp-session-id"), json.loads(text)
print(f"| {'list':28} | tools | bytes | bytes/4 | o200k tokens |")
print(f"|{'-'*30}|------:|------:|--------:|-------------:|")
for name, port in zip(names, sys.argv[1:]):
    sid, _ = rpc(port, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    _, listed = rpc(port, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, sid)
    tools = listed["result"]["tools"]
    text = json.dumps(tools, separators=(",", ":"), ensure_ascii=False)
    n = len(text.encode())
    print(f"| {name:28} | {len(tools):5} | {n:5} | {n // 4:7} | {len(enc.encode(text)):12} |")
PY
"$MCPCTL" -f "$WORK/mcpctl.toml" tools ondemand | grep '^discovery:'
"$MCPCTL" -f "$WORK/mcpctl.toml" daemon stop >/dev/null

echo "== part 2: find_tools over 2,000 tools"
python3 - "$WORK" <<'PY'
import json, sys
verbs = ["read", "write", "list", "create", "delete", "update", "search", "get", "send", "move"]
nouns = ["file", "issue", "branch", "message", "event", "user", "record", "page", "image", "queue",
         "table", "ticket", "commit", "invoice", "order", "report", "note", "task", "folder", "secret"]
adjs = ["remote", "local", "shared", "archived", "pending", "recent", "private", "public", "draft", "cached"]
for m in range(4):
    tools = []
    for i in range(500):
        v, n, a = verbs[i % 10], nouns[(i // 10) % 20], adjs[(i + m) % 10]
        tools.append({"name": f"{v}_{n}_{i}", "description": f"{v.title()} a {a} {n} of service {m}. Returns the {n} as JSON; fails when the {n} does not exist.",
                      "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}}}})
    json.dump(tools, open(f"{sys.argv[1]}/m{m}.json", "w"))
PY
EP=$(free_port)
{
  echo "version = 1"
  for m in 0 1 2 3; do
    printf '[servers.m%s]\ncommand = "python3"\nargs = ["%s", "%s"]\nport = %s\n' \
      "$m" "$PWD/tests/fixtures/listed_server.py" "$WORK/m$m.json" "$(free_port)"
  done
  printf '[endpoints.big]\nport = %s\nservers = ["m0", "m1", "m2", "m3"]\ndiscovery = true\n' "$EP"
} > "$WORK/mcpctl.toml"
"$MCPCTL" -f "$WORK/mcpctl.toml" apply >/dev/null
for _ in $(seq 1 300); do
  "$MCPCTL" -f "$WORK/mcpctl.toml" tools big 2>/dev/null | grep -q '2000 kept out' && break
  sleep 0.2
done
"$MCPCTL" -f "$WORK/mcpctl.toml" tools big | grep '^discovery:'
python3 - "$EP" <<'PY'
import http.client, json, sys, time
port = int(sys.argv[1])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
H = {"content-type": "application/json", "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
def rpc(body, sid=None):
    h = dict(H)
    if sid: h["mcp-session-id"] = sid
    conn.request("POST", "/mcp", json.dumps(body), h)
    r = conn.getresponse()
    return r.getheader("mcp-session-id"), r.read()
sid, _ = rpc({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
queries = ["read file", "delete remote ticket", "search issue", "send message", "get_user_35", "list archived invoice"]
def timed(name, args, n=300):
    times = []
    for i in range(n):
        body = {"jsonrpc": "2.0", "id": i + 2, "method": "tools/call", "params": {"name": name, "arguments": args(i)}}
        t = time.perf_counter(); _, out = rpc(body, sid); times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.9)], out
p50, p90, out = timed("find_tools", lambda i: {"query": queries[i % len(queries)], "limit": 10})
print(f"find_tools over 2,000 tools, through the endpoint: p50 {p50:.2f} ms, p90 {p90:.2f} ms (300 calls)")
assert b"m0__" in out or b"m1__" in out, out[:300]
p50, p90, _ = timed("m0__read_file_0", lambda i: {"id": "x"})
print(f"a member's tool through the same endpoint (for scale): p50 {p50:.2f} ms, p90 {p90:.2f} ms")
PY
"$MCPCTL" -f "$WORK/mcpctl.toml" daemon stop >/dev/null
echo "== part 2b: the ranking alone (release, in-process)"
cargo test -q --release --lib bench_find_over_2000 -- --ignored --nocapture 2>/dev/null | grep '^rank:'

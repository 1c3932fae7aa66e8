#!/bin/sh
# Regenerates bench/daemon-layout.txt: the functions the daemon runs while it starts
# one stdio server and serves it over /mcp and /sse, hottest first. The release build
# links them first (src/build.rs), so the code an idle daemon has touched sits in a
# few hundred KiB instead of being spread over the whole binary (fewer pages
# resident, fewer page faults at start). A stale list costs nothing but that gain.
#
#   MCPBENCH=/tmp/peers/target/release/mcpbench sh bench/daemon-layout.sh
#                                      # after sh bench/build-release.sh
#
# Needs valgrind and curl. MCPCTL names the binary to trace; MCPBENCH, the shared
# harness's client (../shared/bench: mcpbench), adds its requests to the trace.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MCPCTL:-$ROOT/target/x86_64-unknown-linux-gnu/release/mcpctl}
ECHO_SERVER=$(dirname "$BIN")/mcp-echo
PORT=${PORT:-18998}
OUT=$ROOT/bench/daemon-layout.txt
WORK=$(mktemp -d)
VG=""
cleanup() {
  [ -n "$VG" ] && kill "$VG" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

printf 'version = 1\n[servers.layout]\ncommand = "%s"\nport = %s\n' "$ECHO_SERVER" "$PORT" >"$WORK/mcpctl.toml"
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$WORK/callgrind.out" \
  "$BIN" -f "$WORK/mcpctl.toml" daemon 2>"$WORK/daemon.log" &
VG=$!

URL=http://127.0.0.1:$PORT
rpc() { # rpc PATH BODY [HEADER...]: POST one JSON-RPC message
  path=$1 body=$2
  shift 2
  curl -sS --max-time 60 -X POST "$URL$path" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' "$@" -d "$body"
  echo
}
INIT='{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"layout","version":"1"}}}'
READY='{"jsonrpc":"2.0","method":"notifications/initialized"}'
call() { echo "{\"jsonrpc\":\"2.0\",\"id\":$1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"m$1\"}}}"; }

tries=0
until curl -sf -o /dev/null --max-time 60 -X POST "$URL/mcp" -H 'Content-Type: application/json' \
  -H 'Accept: application/json, text/event-stream' -d "$INIT"; do
  tries=$((tries + 1))
  [ "$tries" -lt 600 ] || { cat "$WORK/daemon.log"; exit 1; }
  sleep 0.1
done

# Streamable HTTP: a session, a few calls, its end.
SESSION=$(curl -sS -D - -o /dev/null --max-time 60 -X POST "$URL/mcp" -H 'Content-Type: application/json' \
  -H 'Accept: application/json, text/event-stream' -d "$INIT" | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')
H="Mcp-Session-Id: $SESSION"
V="MCP-Protocol-Version: 2025-06-18"
rpc /mcp "$READY" -H "$H" -H "$V" >/dev/null
rpc /mcp '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' -H "$H" -H "$V" >/dev/null
for i in 2 3 4 5 6 7 8 9; do rpc /mcp "$(call $i)" -H "$H" -H "$V" >/dev/null; done
rpc /mcp '{"jsonrpc":"2.0","id":10,"method":"ping"}' -H "$H" -H "$V" >/dev/null
curl -sS --max-time 60 -X DELETE "$URL/mcp" -H "$H" -H "$V" >/dev/null

# Legacy SSE: the stream names the messages endpoint; calls are answered on it.
curl -sS -N --max-time 60 "$URL/sse" >"$WORK/sse.txt" &
SSE=$!
tries=0
until grep -q '^data: /messages' "$WORK/sse.txt" 2>/dev/null; do
  tries=$((tries + 1))
  [ "$tries" -lt 600 ] || exit 1
  sleep 0.1
done
ENDPOINT=$(grep -m1 '^data: /messages' "$WORK/sse.txt" | sed 's/^data: //' | tr -d '\r')
rpc "$ENDPOINT" "$INIT" >/dev/null
rpc "$ENDPOINT" "$READY" >/dev/null
for i in 2 3 4 5 6 7 8 9; do rpc "$ENDPOINT" "$(call $i)" >/dev/null; done
sleep 1
kill "$SSE" 2>/dev/null || true

# The shared harness's client, when built (MCPBENCH names it): it keeps connections
# alive and closes them its own way, paths that curl does not take.
if [ -n "${MCPBENCH:-}" ] && [ -x "$MCPBENCH" ]; then
  "$MCPBENCH" probe --mcp "$URL/mcp" >/dev/null
  for transport in mcp sse; do
    "$MCPBENCH" bench --"$transport" "$URL/$transport" --warmup 5 --seq 20 --sessions 2 \
      --calls 5 --timeout-ms 60000 --quiet >/dev/null
  done
fi

kill -TERM "$VG"
wait "$VG" || true
VG=""

# Functions of the mcpctl binary by their own instruction count, hottest first.
# callgrind.out names a function (or object) once as "fn=(ID) NAME", maybe as a callee
# ("cfn=", "cob="), and then by "(ID)" alone, with "'N" after the name for a level of
# recursion (the same function for the linker); a
# cost line after "calls=" is the callee's inclusive cost, not this function's.
awk '
  /^c?ob=/ {
    split($0, a, /\) ?/); id = substr(a[1], index(a[1], "(") + 1)
    if (a[2] != "") obname[id] = a[2]
    if ($0 ~ /^ob=/) ours = (obname[id] ~ /\/mcpctl$/)
    next
  }
  /^c?fn=/ {
    split($0, a, /\) ?/); id = substr(a[1], index(a[1], "(") + 1)
    if (a[2] != "") fname[id] = a[2]
    if ($0 ~ /^fn=/) { current = ours ? id : ""; skip = 0 }
    next
  }
  /^calls=/ { skip = 1; next }
  /^[0-9+*-]/ { if (skip) { skip = 0; next } if (current != "") cost[current] += $NF; next }
  END { for (id in cost) printf "%d %s\n", cost[id], fname[id] }
' "$WORK/callgrind.out" | sed "s/'[0-9]*\$//" | sort -k2,2 -k1,1rn | awk '$2 != last { print; last = $2 }' |
  sort -rn | awk '{print $2}' >"$WORK/traced.txt"

# valgrind runs glibc's SSE/AVX2 string functions; a machine with AVX-512 runs their
# EVEX and AVX-512 variants instead (memcpy's are memmove's), so those follow the one
# traced (a variant `__NAME_...`, or the resolver `NAME_ifunc`).
nm "$BIN" | awk '{print $NF}' | grep -E '^__[a-z]+_(evex|avx512)' >"$WORK/variants.txt" || true
awk -v variants="$WORK/variants.txt" '
  BEGIN { while ((getline v < variants) > 0) all[++n] = v }
  !seen[$0]++ { print }
  /^__[a-z]+_(sse|ssse|avx)/ || /^[a-z]+_ifunc$/ {
    name = $0; sub(/^__/, "", name); sub(/_.*/, "", name)
    if (name == "memcpy" || name == "mempcpy") name = "memmove"
    for (i = 1; i <= n; i++)
      if (index(all[i], "__" name "_") == 1 && !seen[all[i]]++) print all[i]
  }
' "$WORK/traced.txt" >"$OUT"
echo "wrote $(wc -l <"$OUT") functions to $OUT"

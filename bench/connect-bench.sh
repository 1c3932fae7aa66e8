#!/bin/sh
# The cost of `mcpctl connect` (stdio client -> connect -> the daemon's gateway ->
# the stdio child) against the same child driven directly over stdio, and against
# the gateway's /mcp driven directly, in interleaved rounds:
#
#   sh bench/connect-bench.sh [ROUNDS]        # default 5
#
# Needs the harness of ../shared/bench built in /tmp/peers (mcpbench, echo-backend)
# and MCPCTL (default: target/release/mcpctl, the plain `cargo build --release`).
# Writes each run's JSON to $OUT (default /tmp/mcpctl-connect-bench/<time>/) and
# prints a table of medians. The daemon it starts is stopped at the end.
set -eu
ROUNDS=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MCPCTL=${MCPCTL:-$ROOT/target/release/mcpctl}
PEERS=${PEERS:-/tmp/peers/target/release}
OUT=${OUT:-/tmp/mcpctl-connect-bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$DIR/mcpctl.toml" <<TOML
version = 1
[servers.echo]
command = "$PEERS/echo-backend"
port = $PORT
TOML
trap '"$MCPCTL" -f "$DIR/mcpctl.toml" daemon stop >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
"$MCPCTL" -f "$DIR/mcpctl.toml" apply >/dev/null
# The same workload for all three: the floor's longer phases (see the harness README).
LOAD="--seq 10000 --sessions 16 --calls 1000 --max-secs 10 --quiet"
for round in $(seq 1 "$ROUNDS"); do
  for target in direct connect gateway; do
    case $target in
      direct) set -- --stdio -- "$PEERS/echo-backend" ;;
      connect) set -- --stdio -- "$MCPCTL" -f "$DIR/mcpctl.toml" connect echo ;;
      gateway) set -- --mcp "http://127.0.0.1:$PORT/mcp" ;;
    esac
    # shellcheck disable=SC2086
    "$PEERS/mcpbench" bench $LOAD --label "$target" --json "$OUT/$target-$round.json" "$@" >/dev/null
  done
done
python3 - "$OUT" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
runs = {}
for f in sorted(os.listdir(out)):
    if f.endswith(".json"):
        r = json.load(open(os.path.join(out, f)))
        runs.setdefault(r["label"], []).append(r)
med = lambda rs, phase, k: statistics.median(r[phase][k] for r in rs)
floor = {k: med(runs["direct"], "seq", k) for k in ("p50_us", "p99_us")}
print("| target | seq p50 µs | seq p99 µs | p50 added µs | seq req/s | 16 sessions req/s | conc p50 µs | conc p99 µs | errors | wrong |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for label in ("direct", "gateway", "connect"):
    rs = runs[label]
    errors = sum(r["seq"]["errors"] + r["conc"]["errors"] for r in rs)
    wrong = sum(r["seq"]["wrong"] + r["conc"]["wrong"] for r in rs)
    p50 = med(rs, "seq", "p50_us")
    print(f"| {label} | {p50:,.0f} | {med(rs, 'seq', 'p99_us'):,.0f} | {p50 - floor['p50_us']:,.0f} | "
          f"{med(rs, 'seq', 'rps'):,.0f} | {med(rs, 'conc', 'rps'):,.0f} | {med(rs, 'conc', 'p50_us'):,.0f} | "
          f"{med(rs, 'conc', 'p99_us'):,.0f} | {errors} | {wrong} |")
print(f"\n{len(runs['direct'])} interleaved rounds; JSON in {out}")
PY

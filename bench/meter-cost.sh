#!/bin/sh
# The meter's and the sampler's share of the gateway's instructions per request,
# counted by callgrind (deterministic, whatever else the machine does).
set -eu
BIN=${1:-target/release/mcpctl}
PORT=${2:?a free port}
OUT=/tmp/meter-cost; rm -rf $OUT; mkdir -p $OUT
MCPCTL_BUSY_POLL_US=0 valgrind --tool=callgrind --callgrind-out-file=$OUT/cg.out \
  $BIN gateway --port $PORT -- /tmp/peers/target/release/echo-backend 2>$OUT/gateway.err &
VG=$!
/tmp/peers/target/release/mcpbench probe --mcp http://127.0.0.1:$PORT/mcp --deadline-ms 120000 >/dev/null
/tmp/peers/target/release/mcpbench bench --mcp http://127.0.0.1:$PORT/mcp --warmup 100 --seq 2000 --sessions 4 --calls 250 --max-secs 600 --quiet > $OUT/bench.json
kill -TERM $VG; wait $VG || true
callgrind_annotate --inclusive=yes $OUT/cg.out > $OUT/annotate.txt 2>/dev/null
head -30 $OUT/annotate.txt

#!/bin/sh
# What the dashboard costs the daemon (issue 26: "the page idle and with 5 browsers open
# adds < 1 % CPU"): the daemon's CPU time (utime + stime from /proc) over SECS seconds,
# three ways, with 3 idle servers (mcp-echo, 4 instances in all) supervised:
#   1. no dashboard;
#   2. the dashboard served (`mcpctl ui --no-open`), no page open;
#   3. PAGES pages open: each a signed-in session holding `/api/v1/events` (the stream
#      an open page holds) and fetching a server's hour of samples every 10 s (what a
#      server's page does); curl stands in for the browsers (the daemon's work is
#      the same whoever reads).
#
#   cargo build --release && sh bench/ui-bench.sh
#
# MCPCTL names the binary (default target/release/mcpctl); SECS (60), PAGES (5).
# Ends with one JSON line.
set -eu
cd "$(dirname "$0")/.."
MCPCTL=${MCPCTL:-$PWD/target/release/mcpctl}
ECHO=${ECHO:-$(dirname "$MCPCTL")/mcp-echo}
SECS=${SECS:-60}
PAGES=${PAGES:-5}
WORK=$(mktemp -d)
PIDS=""
trap 'for p in $PIDS; do kill "$p" 2>/dev/null || true; done; "$MCPCTL" -f "$WORK/mcpctl.toml" daemon stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

{
  echo 'version = 1'
  for name in a b c; do
    printf '\n[servers.%s]\ncommand = "%s"\nport = %s\n' "$name" "$ECHO" "$(free_port)"
  done
  echo 'instances = 2'
} > "$WORK/mcpctl.toml"
"$MCPCTL" -f "$WORK/mcpctl.toml" apply >/dev/null
DAEMON=$(cat "$WORK/.mcpctl/daemon.pid")
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON/stat"; }
# Percent of one core the daemon used over SECS seconds.
measure() {
  before=$(cpu_ticks)
  sleep "$SECS"
  after=$(cpu_ticks)
  python3 -c "print(round(($after - $before) / $TICK / $SECS * 100, 3))"
}

sleep 3
none=$(measure)
echo "no dashboard:            ${none} % of a core"

link=$("$MCPCTL" -f "$WORK/mcpctl.toml" ui --no-open 2>/dev/null)
base=${link%%/login*}
sleep 3
served=$(measure)
echo "dashboard, no page:      ${served} % of a core"

i=0
while [ "$i" -lt "$PAGES" ]; do
  link=$("$MCPCTL" -f "$WORK/mcpctl.toml" ui --no-open 2>/dev/null)
  cookie=$(curl -si "$link" | tr -d '\r' | sed -n 's/^set-cookie: \([^;]*\).*/\1/Ip')
  curl -sN -H "Cookie: $cookie" "$base/api/v1/events" >/dev/null &
  PIDS="$PIDS $!"
  ( while :; do curl -s -H "Cookie: $cookie" "$base/api/v1/servers/a/metrics?since=0" >/dev/null; sleep 10; done ) &
  PIDS="$PIDS $!"
  i=$((i + 1))
done
sleep 3
pages=$(measure)
echo "dashboard, $PAGES pages open:  ${pages} % of a core"
python3 -c "import json; print(json.dumps({'secs': $SECS, 'pages': $PAGES, 'cpu_percent_none': $none, 'cpu_percent_served': $served, 'cpu_percent_pages': $pages, 'added_by_pages': round($pages - $none, 3)}))"

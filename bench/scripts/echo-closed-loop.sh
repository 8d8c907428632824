#!/bin/bash
# Closed-loop echo against one or more server binaries, alternating, RUNS rounds:
# 1,000 connections, one request in flight each, 8 s; prints round trips/s, server and
# loadgen CPU per round trip, losses and p99 for each run.
#
#   bench/scripts/echo-closed-loop.sh RUNS LABEL=SERVER_BINARY [LABEL=SERVER_BINARY ...]
#
# Build the binaries first, e.g. for two commits A and B:
#   git worktree add /tmp/a A && (cd /tmp/a/bench && go build -o /tmp/srv-a ./servers/livepoll)
#   go build -o /tmp/loadgen ./cmd/loadgen      (LOADGEN overrides the path)
# Each server is started on its own port, stops itself after 60 s, and is killed by PID.
set -euo pipefail
runs=$1; shift
loadgen=${LOADGEN:-/tmp/loadgen}
out=$(mktemp -d)
port=18300
for r in $(seq 1 "$runs"); do
  for spec in "$@"; do
    label=${spec%%=*}; bin=${spec#*=}
    port=$((port+1))
    "$bin" -addr 127.0.0.1:$port -exit-after 60s & spid=$!
    sleep 0.4
    timeout 50 "$loadgen" -url ws://127.0.0.1:$port/ws -scenario echo -conns 1000 -inflight 1 \
      -duration 8s -progress 0 -json "$out/$label-$r.json" > "$out/$label-$r.txt" 2>&1 || true
    kill $spid 2>/dev/null || true; wait $spid 2>/dev/null || true
    python3 - "$out/$label-$r.json" "$label" "$r" <<'PY'
import json, sys
l = json.load(open(sys.argv[1]))["load"]
print(f'{sys.argv[2]:10s} run {sys.argv[3]}: {l.get("deliveries_per_sec", 0):8.0f}/s  '
      f'server {l.get("server_cpu_us_per_delivery", float("nan")):6.2f} µs/rt  '
      f'loadgen {l.get("loadgen_cpu_us_per_delivery", float("nan")):6.2f} µs/rt  '
      f'lost {l.get("lost")}  p99 {l["latency"].get("p99_ms")} ms')
PY
  done
done
echo "reports in $out"

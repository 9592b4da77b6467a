#!/usr/bin/env bash
# usage: run.sh BIN OUT [PERF: g|dwarf]
set -euo pipefail
cd /work/main
eval "$(scripts/stack env)"
BIN=$1; OUT=$2
AGGREGATOR__FLUSH__MAX_AGE_MS=60000 $BIN/aggbench pipeline --aggregator $BIN/aggregator --events 10000000 --videos 100000 --spread-secs 60 --request-events 100 --client-ids --out $OUT > $OUT.log 2>&1 &
AB=$!
if [[ -n ${3:-} ]]; then
  while ! grep -q prefilled $OUT.log; do sleep 1; done
  sleep 3
  P=$(pgrep -f "^$BIN/aggregator" | head -1)
  if [[ $3 == dwarf ]]; then
    perf record -F 299 --call-graph dwarf,16384 -p $P -o $OUT.perf -- sleep 6 2>/dev/null >/dev/null
  else
    perf record -F 499 -g -p $P -o $OUT.perf -- sleep 12 2>/dev/null >/dev/null
  fi
fi
wait $AB
tail -1 $OUT.log

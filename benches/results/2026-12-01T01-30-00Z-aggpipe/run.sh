#!/usr/bin/env bash
# usage: run.sh BIN OUT [PERF]
set -euo pipefail
cd "$(dirname "$0")/../../.."
eval "$(scripts/stack env)"
BIN=$1; OUT=$2
AGGREGATOR__FLUSH__MAX_AGE_MS=60000 $BIN/aggbench pipeline --aggregator $BIN/aggregator --events 10000000 --videos 100000 --spread-secs 60 --request-events 100 --client-ids --out $OUT > $OUT.log 2>&1 &
AB=$!
if [[ -n ${3:-} ]]; then
  while ! grep -q prefilled $OUT.log; do sleep 1; done
  sleep 3
  P=$(pgrep -f "^$BIN/aggregator" | head -1)
  perf record -F 499 -g -p $P -o $OUT.perf -- sleep 12 2>/dev/null >/dev/null
fi
wait $AB
tail -1 $OUT.log

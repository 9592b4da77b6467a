#!/usr/bin/env bash
# perf profile of the release gateway under single views (no aggregator).
set -euo pipefail
cd /work/main
eval "$(scripts/stack env)"
RATE=${RATE:-12000}
export VCOUNT_API_KEY="vck_prof-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export GATEWAY__PRODUCERS__KEYS="[{name=\"bench\",sha256=\"$(printf %s "$VCOUNT_API_KEY" | sha256sum | cut -d' ' -f1)\",per_second=0,burst=0}]"
env ${GW_ENV:-} GATEWAY__HTTP__LISTEN=127.0.0.1:28480 GATEWAY__ADMIN__LISTEN=127.0.0.1:28483 GATEWAY__KAFKA__BROKERS="$VCOUNT_KAFKA_BROKERS" \
  GATEWAY__KAFKA__TOPIC_PREFIX="${PREFIX:-ab-6b0d3177-old.}" NO_COLOR=1 ${BIN:-target/release}/ingest-gateway > /tmp/profgw.log 2>&1 &
GW=$!
for i in $(seq 1 60); do curl -sf http://127.0.0.1:28483/readyz >/dev/null && break; sleep 0.5; done
t0=$(awk '{print $14+$15}' /proc/$GW/stat)
${BIN:-target/release}/loadgen --gateway http://127.0.0.1:28480 --mode ${MODE:-single} ${LGARGS:-} --rate $RATE --duration 40 --warmup 5 --connections ${CONNS:-1024} --videos 100000 --zipf 1 > /tmp/profgw.loadgen 2>&1 &
LG=$!
sleep 12
if [[ -n ${PERF:-1} ]]; then perf record -F 499 -g -p $GW -o /tmp/gw.perf -- sleep 20 2>/dev/null; fi
wait $LG || true
t1=$(awk '{print $14+$15}' /proc/$GW/stat)
echo "gateway CPU ticks over the run: $((t1-t0))"
tail -3 /tmp/profgw.loadgen
kill $GW; wait $GW 2>/dev/null || true

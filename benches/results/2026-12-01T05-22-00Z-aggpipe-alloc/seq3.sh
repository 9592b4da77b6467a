#!/usr/bin/env bash
cd /tmp/aggpipe
for r in "bnp 1" "np10 1" "bnp 2" "np10 2"; do
  set -- $r
  case $1 in
    bnp) MIMALLOC_PURGE_DELAY=-1 ./run.sh /tmp/binA /tmp/aggpipe/V-$1-$2 ;;
    np10) MIMALLOC_PURGE_DELAY=10000 ./run.sh /tmp/binO /tmp/aggpipe/V-$1-$2 ;;
  esac | sed "s/^/$1 $2: /"
done

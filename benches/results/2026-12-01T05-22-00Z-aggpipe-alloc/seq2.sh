#!/usr/bin/env bash
cd /tmp/aggpipe
for r in "base 1" "np 1" "ovr 1" "ovr 2" "np 2" "base 2"; do
  set -- $r
  case $1 in
    base) ./run.sh /tmp/binA /tmp/aggpipe/U-$1-$2 ;;
    np) MIMALLOC_PURGE_DELAY=-1 ./run.sh /tmp/binO /tmp/aggpipe/U-$1-$2 ;;
    ovr) ./run.sh /tmp/binO /tmp/aggpipe/U-$1-$2 ;;
  esac | sed "s/^/$1 $2: /"
done

#!/usr/bin/env bash
cd /tmp/aggpipe
TUN=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824
for r in "base 1" "tun 1" "ovr 1" "ovr 2" "tun 2" "base 2"; do
  set -- $r
  case $1 in
    base) ./run.sh /tmp/binA /tmp/aggpipe/S-$1-$2 ;;
    tun) GLIBC_TUNABLES=$TUN ./run.sh /tmp/binA /tmp/aggpipe/S-$1-$2 ;;
    ovr) ./run.sh /tmp/binO /tmp/aggpipe/S-$1-$2 ;;
  esac | sed "s/^/$1 $2: /"
done

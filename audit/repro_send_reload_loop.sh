#!/bin/bash
# D3 frequency: reload then send after DELAY; count workers missing the line.
cd "$(dirname "$0")"
SOCK=/tmp/lib-audit-d3.sock
PORT=26415 WORKERS=${WORKERS:-2} CONTROL=$SOCK RUST_BACKTRACE=0 ../target/debug/examples/audit_lib >/dev/null 2>d3loop.err &
MASTER=$!
sleep 1.5
C="./ringmaster ctl $SOCK"
for d in 0.01 0.03 0.06 0.1 0.15 0.2 0.3; do
  ($C reload >/dev/null &); sleep $d; r=$($C send "x$d"); sleep 2.5
  got=$(for i in $(seq 1 8); do curl -s --max-time 2 http://127.0.0.1:26415/msgs; done | sort -u | grep -c "x$d")
  echo "delay $d: '$r'; serving workers that have the line: $got of ${WORKERS:-2}"
done
kill $MASTER; wait $MASTER

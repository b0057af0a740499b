#!/bin/bash
# D3: `ctl send` during a reload or an upgrade answers "ok sent to N workers",
# yet the processes serving afterwards never see the line.
# Run from /work/wt-library/audit after `cargo build --examples`.
set -u
cd "$(dirname "$0")"
SOCK=/tmp/lib-audit-d3.sock
PORT=26415 WORKERS=2 CONTROL=$SOCK RUST_BACKTRACE=0 ../target/debug/examples/audit_lib >/dev/null 2>d3.err &
MASTER=$!
sleep 1.5
C="./ringmaster ctl $SOCK"
msgs() { for i in 1 2 3 4 5 6; do curl -s --max-time 2 http://127.0.0.1:26415/msgs; done | sort -u; }
echo "== reload, then send 30 ms later"
($C reload >/dev/null &); sleep 0.03; $C send during-reload; sleep 3; msgs
echo "== upgrade, then send 30 ms later"
($C upgrade >/dev/null &); sleep 0.03; $C send during-upgrade; sleep 3; msgs
# the upgrade replaced the master: stop the new one through the socket
$C stop >/dev/null; sleep 1; kill $MASTER 2>/dev/null; true

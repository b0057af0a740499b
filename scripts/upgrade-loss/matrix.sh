#!/bin/sh
# Requests lost across binary upgrades under load (README, limits table: "a
# keep-alive connection idle when its worker drains"). For every mode on both
# backends, run.py starts BINARY with 2 workers, runs load.py's churn and
# keep-alive clients (KA_PAUSE_MAX seconds of pause at most between a
# keep-alive client's requests; NCHURN and NKA clients) for SECS seconds and
# asks for UPGRADES `ctl upgrade`s GAP seconds apart; one JSON line per run.
# Summarise with summary.py. Loopback only, ports PORT+1.. (26100 by default).
#
#   KA_PAUSE_MAX=0.3 scripts/upgrade-loss/matrix.sh target/release/ringmaster 14 10 0.8 | tee runs.jsonl
#   scripts/upgrade-loss/summary.py < runs.jsonl
set -eu
B=$1; S=${2:-14}; U=${3:-6}; G=${4:-1.5}; P=${PORT:-26100}
for be in uring epoll; do for m in rr least shared reuseport; do
  P=$((P+1)); python3 "$(dirname "$0")/run.py" "$B" $m $be $P $S $U $G
done; done

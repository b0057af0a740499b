#!/usr/bin/env bash
# The accounting scenarios of 2026-12-05 (see scripts/README.md), each mode on
# both backends, SECS seconds each (15 by default; ~25 min for all). Ports from
# PORT (26300) up. Prints one summary per run; logs in $OUT/NAME (OUT: a new
# /tmp/ringmaster-accounting.XXXXXX per run of this script unless set).
#   scripts/accounting/matrix.sh            # every scenario
#   SCENARIOS="C I" SECS=10 scripts/accounting/matrix.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECS=${SECS:-15}
port=${PORT:-26300}
OUT=${OUT:-$(mktemp -d /tmp/ringmaster-accounting.XXXXXX)}
export OUT
echo "logs in $OUT" >&2
MIX="churn=8 ka=8 pipe=4 slowpost=4 halfclose=4 noread=2 100c=2 rst=2"
CROWD="churn=24 ka=10 pipe=6 slowpost=4 halfclose=6 noread=2 rst=2"
run() { # scenario mode backend server-args kinds actions [fault]
    local name=$1-$(echo "$2" | tr -d ' -')-$3
    port=$((port + 1))
    timeout $((SECS * 4 + 60)) python3 "$HERE/drive.py" "$name" $port "$SECS" \
        "--mode $2 --backend $3 --workers 2 $4" "$5" "$6" "${7:-}"
}
for scenario in ${SCENARIOS:-A B C D E F H I}; do
  for backend in uring epoll; do
    for mode in rr least shared "reuseport --steer load" "reuseport --steer hash"; do
      case $scenario in
        # reloads and scale changes under every kind of client
        A) run A "$mode" $backend "--shutdown-timeout 5" "$MIX" "every:0.4:1.0:reload|scaleR|reload|status" ;;
        # upgrades while a worker is stopped, or just after a scale-down
        B) run B "$mode" $backend "--shutdown-timeout 5" "${MIX% rst=2}" \
               "every:0.8:1.5:upgrade-stopped|scaledown-upgrade|upgrade-stopped|reload" ;;
        # --max-conns 6 for 54 clients, workers killed
        C) run C "$mode" $backend "--max-conns 6 --shutdown-timeout 5 --watchdog 3" "$CROWD" "every:0.7:1.5:kill9" ;;
        # a stalling and a slow worker, reloads, scale, pauses
        D) run D "$mode" $backend "--shutdown-timeout 5 --watchdog 5" "$MIX" \
               "every:0.5:1.2:reload|scaleR|reload|stopw" "stall:1:1500:700,slow:2:1500" ;;
        # scale thrashed between 1 and 4 every 0.1-0.4 s
        E) run E "$mode" $backend "--shutdown-timeout 5" "churn=16 ka=8 pipe=4 halfclose=4 slowpost=2" \
               "every:0.1:0.4:scaleR|scaleR|scaleR|reload" ;;
        # RLIMIT_NOFILE 48 for the master and workers
        F) NOFILE=48 run F "$mode" $backend "--shutdown-timeout 5 --watchdog 5" \
               "churn=30 ka=16 pipe=8 halfclose=8 slowpost=8 noread=4" "every:0.4:1.0:reload|scaleR|upgrade|stopw" ;;
        # back-pressure past the socket buffers while workers drain
        H) run H "$mode" $backend "--shutdown-timeout 8" "churn=8 ka=4 bignoread=6 halfclose=4" \
               "every:0.5:1.0:reload|upgrade|scaleR" ;;
        # everything at once
        I) NOFILE=48 run I "$mode" $backend "--shutdown-timeout 5 --watchdog 3 --max-conns 8" "$CROWD" \
               "every:0.5:1.2:upgrade|kill9|reload|scaleR|upgrade-stopped" "stall:1:800:1000,slow:2:500" ;;
      esac
    done
  done
done

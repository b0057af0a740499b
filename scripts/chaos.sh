#!/usr/bin/env bash
# A bounded soak: ringmaster under wrk (keep-alive and churn at once) while
# workers are killed (SIGKILL), stopped (SIGSTOP for up to a second, or for
# longer than the watchdog), reloaded, scaled between 1 and 3 and the
# master upgraded, at random every 0.2-0.8 s; then checks that the server
# still answers, that `ctl status` shows every worker ready, that the master
# holds as many descriptors as before, that no client waited past wrk's
# timeout, and that SIGTERM leaves no process behind.
#
#   scripts/chaos.sh                       # every mode on io_uring and on epoll, 60 s each
#   MODES="rr least" BACKENDS=epoll SECONDS_EACH=30 scripts/chaos.sh
#
# PORT (25080) is the one port it serves on; RINGMASTER_BIN a binary to use
# instead of building target/release/ringmaster.
#
# wrk's read errors are expected: a killed worker's connections die with
# it (the ones the master still held go to another worker). A timeout, a
# master that stops answering, a leaked descriptor or a process left behind
# is a failure: the script exits 1 and names it. Runs on 127.0.0.1 only;
# the logs stay in the directory printed at the end.
set -euo pipefail

MODES=${MODES:-"rr least shared reuseport"}
BACKENDS=${BACKENDS:-"uring epoll"}
SECONDS_EACH=${SECONDS_EACH:-60}
PORT=${PORT:-25080}
WATCHDOG=2        # a worker stopped longer than this is killed by the master
WRK_TIMEOUT=5     # no client may wait longer
# shellcheck source=lib/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/tools.sh"
install_missing wrk:wrk curl:curl ss:iproute2 python3:python3 pgrep:procps
# shellcheck source=lib/binary.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/binary.sh"
ringmaster_binary
OUT=$(mktemp -d /tmp/ringmaster-chaos.XXXXXX)

# On any exit (an error, Ctrl-C, SIGTERM) stop what this soak started: the
# clients, a worker left stopped, and every process of the server (its
# master, workers, and the masters its upgrades started).
token=""
WRK_PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    ((${#WRK_PIDS[@]})) && kill -TERM "${WRK_PIDS[@]}" 2>/dev/null
    [[ -n $token ]] && stop_ours
    exit "$rc"
}
# shellcheck source=lib/stop.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/stop.sh"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The pid of the master serving PORT (workers hold the listener too in
# `shared`; the master retitles itself `ringmaster: master`).
master_pid() {
    local p
    for p in $(ss -ltnpH "sport = :$PORT" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
        [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") == "ringmaster: master"* ]] && { echo "$p"; return; }
    done
    return 0
}

# Every process of this soak: the master started it with RINGMASTER_CHAOS_RUN
# set to its own token, which its workers and the masters its upgrades
# start inherit; another server of the same binary is not ours to kill.
ours() {
    local p
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/exe" 2>/dev/null) == "$RINGMASTER_BIN" ]] || continue
        tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qxF "RINGMASTER_CHAOS_RUN=$token" && echo "${p#/proc/}"
    done
    return 0
}

# One random action against the master in $1.
act() {
    local master=$1 ctl=$2 worker
    worker=$(pgrep -P "$master" | shuf -n1 || true)
    case $((RANDOM % 6)) in
        0) [[ -n $worker ]] && kill -KILL "$worker" 2>/dev/null; echo "kill $worker" ;;
        1) [[ -n $worker ]] && kill -STOP "$worker" 2>/dev/null && { sleep 0.$((RANDOM % 9 + 1)); kill -CONT "$worker" 2>/dev/null; }
           echo "pause $worker" ;;
        2) [[ -n $worker ]] && kill -STOP "$worker" 2>/dev/null && { sleep $((WATCHDOG + 1)); kill -CONT "$worker" 2>/dev/null; }
           echo "stall $worker" ;;
        3) "$RINGMASTER_BIN" ctl "$ctl" reload >/dev/null 2>&1 || true; echo reload ;;
        4) local n=$((RANDOM % 3 + 1)); "$RINGMASTER_BIN" ctl "$ctl" scale $n >/dev/null 2>&1 || true; echo "scale $n" ;;
        5) "$RINGMASTER_BIN" ctl "$ctl" upgrade >/dev/null 2>&1 || true; echo upgrade ;;
    esac
}

# run MODE BACKEND: one soak; prints its verdict, returns 1 on a failure.
run() {
    local mode=$1 backend=$2 dir=$OUT/$1-$2 failed=0
    mkdir -p "$dir"
    local ctl=$dir/ctl.sock
    [[ -n $(master_pid) ]] && { echo "chaos.sh: something already serves port $PORT" >&2; return 1; }
    token="$$-$mode-$backend-$RANDOM"
    RINGMASTER_CHAOS_RUN=$token "$RINGMASTER_BIN" --bind 127.0.0.1:$PORT --mode "$mode" --backend "$backend" \
        --workers 2 --control "$ctl" --shutdown-timeout 3 --watchdog $WATCHDOG >"$dir/stdout" 2>"$dir/log" &
    local first=$!
    # Up when its own log says so (an answer on the port could come from another
    # server there) and it answers.
    for _ in $(seq 100); do
        grep -q "listening on 127.0.0.1:$PORT " "$dir/log" && curl -s -m 2 -o /dev/null http://127.0.0.1:$PORT/ && break
        grep -q " ERROR " "$dir/log" && break
        sleep 0.1
    done
    if ! grep -q "listening on 127.0.0.1:$PORT " "$dir/log"; then
        echo "  FAIL: the server did not start on 127.0.0.1:$PORT: $(tail -n 1 "$dir/log")"
        kill -TERM "$first" 2>/dev/null
        return 1
    fi
    # The fewest descriptors over a second: an idle master keeps its copy of
    # a handed connection (curl's, above) until its next loop turn, up to
    # its 100 ms tick after the worker's ack.
    local fds_before=1000000 count
    for _ in $(seq 10); do
        count=$(ls /proc/$first/fd | wc -l)
        ((count < fds_before)) && fds_before=$count
        sleep 0.1
    done
    ls -l /proc/$first/fd >"$dir/fds-before" 2>&1 || true
    wrk -t1 -c40 -d"${SECONDS_EACH}s" --timeout ${WRK_TIMEOUT}s http://127.0.0.1:$PORT/ >"$dir/wrk-keepalive" 2>&1 &
    local ka=$!
    wrk -t1 -c16 -d"${SECONDS_EACH}s" --timeout ${WRK_TIMEOUT}s -H 'Connection: close' http://127.0.0.1:$PORT/ \
        >"$dir/wrk-churn" 2>&1 &
    local churn=$!
    WRK_PIDS=("$ka" "$churn")
    local end=$((SECONDS + SECONDS_EACH - WATCHDOG - 2)) master
    while ((SECONDS < end)); do
        master=$(master_pid)
        [[ -n $master ]] && act "$master" "$ctl"
        sleep 0.$((RANDOM % 7 + 2))
    done >"$dir/actions"
    wait $ka $churn || true
    WRK_PIDS=()
    # Back to 2 workers, and let restarts and an upgrade in progress finish.
    "$RINGMASTER_BIN" ctl "$ctl" scale 2 >/dev/null 2>&1 || true
    local status="" ready=0
    for _ in $(seq 100); do
        status=$("$RINGMASTER_BIN" ctl "$ctl" status 2>/dev/null || true)
        ready=$(python3 -c 'import json,sys
try: print(sum(w["state"] == "ready" for w in json.loads(sys.argv[1])["workers"]))
except Exception: print(0)' "$status")
        ((ready == 2)) && break
        sleep 0.1
    done
    master=$(master_pid)
    curl -s -m 5 http://127.0.0.1:$PORT/ | grep -q "hello world" || { echo "  FAIL: no answer after the soak"; failed=1; }
    ((ready == 2)) || { echo "  FAIL: not 2 ready workers 10 s after the soak: $status"; failed=1; }
    # A refused connection is closed a moment after its 503, and the reserve
    # comes back at the next loop turn: give them 3 s.
    local fds_after
    for _ in $(seq 30); do
        fds_after=$(ls /proc/"$master"/fd 2>/dev/null | wc -l)
        ((fds_after == fds_before)) && break
        sleep 0.1
    done
    ls -l /proc/"$master"/fd >"$dir/fds-after" 2>&1 || true
    ((fds_after == fds_before)) || {
        echo "  FAIL: the master holds $fds_after descriptors, $fds_before before (pid $first then $master: $dir/fds-*)"
        failed=1
    }
    local timeouts
    timeouts=$(grep -ho 'timeout [0-9]*' "$dir"/wrk-* | awk '{s += $2} END {print s + 0}')
    ((timeouts == 0)) || { echo "  FAIL: $timeouts clients waited past ${WRK_TIMEOUT} s"; failed=1; }
    grep -E " ERROR " "$dir/log" | head -3 | sed 's/^/  FAIL: /' | grep . && failed=1
    kill -TERM "$master" 2>/dev/null || true
    for _ in $(seq 150); do [[ -z $(ours) ]] && break; sleep 0.1; done
    local left
    left=$(ours | tr '\n' ' ')
    [[ -z $left ]] || { echo "  FAIL: still running 15 s after SIGTERM: $left"; kill -KILL $left 2>/dev/null || true; failed=1; }
    printf '  %s actions (%s), answers: %s keep-alive, %s churn; read errors (connections of killed workers): %s\n' \
        "$(wc -l <"$dir/actions")" "$(cut -d' ' -f1 "$dir/actions" | sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}')" \
        "$(awk '/requests in/ {print $1}' "$dir/wrk-keepalive")" "$(awk '/requests in/ {print $1}' "$dir/wrk-churn")" \
        "$(grep -ho 'read [0-9]*' "$dir"/wrk-* | awk '{s += $2} END {print s + 0}')"
    return $failed
}

status=0
for mode in $MODES; do
    for backend in $BACKENDS; do
        echo "$mode on $backend, ${SECONDS_EACH} s:"
        if run "$mode" "$backend"; then echo "  ok"; else status=1; fi
    done
done
echo "logs: $OUT"
exit $status

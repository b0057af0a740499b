#!/usr/bin/env bash
# The master's own CPU per handed connection under connection churn, for one
# or more ringmaster binaries side by side (README, "Balancing (issue 10)").
#
#   scripts/master-cost.sh OLD_BIN NEW_BIN           # 5 rounds, rr/least on io_uring, rr on epoll
#   ROUNDS=3 CONFIGS="rr:uring least:epoll" scripts/master-cost.sh BIN
#
# Each run: ringmaster --workers 2 (pinned) on 127.0.0.1, a 1 s warm-up, then
# `wrk -t1 -c32 -d${DURATION}s -H 'Connection: close'`; the master's utime +
# stime (/proc/PID/stat) and its context switches (/proc/PID/status) over the
# run, divided by wrk's request count (one request per connection). Rounds
# alternate the binaries' order. Prints one line per run, then per binary and
# configuration the median (min-max) of µs per connection, context switches
# per connection and req/s, and the load average before and after.
#
# Machines are noisy: run it when nothing else does (before each run it waits
# up to QUIET_WAIT seconds, 180 by default, while a compiler, wrk or nginx of
# someone else runs), and compare medians taken in one run, not across runs.
# Ports: the first free one from PORT_BASE (18180 by default) on, as compare.sh
# takes them; a server counts as up once its own log says it listens there.
set -euo pipefail

(($# >= 1)) || { sed -n '2,20p' "$0" >&2; exit 2; }
BINS=("$@")
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6}
CONNS=${CONNS:-32}
CONFIGS=${CONFIGS:-"rr:uring least:uring rr:epoll"}
QUIET_WAIT=${QUIET_WAIT:-180}   # seconds a run waits at most for someone else's compiler, wrk or nginx
PORT_BASE=${PORT_BASE:-18180}
# shellcheck source=lib/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/tools.sh"
install_missing wrk:wrk pgrep:procps

wait_quiet() {
    for _ in $(seq $((QUIET_WAIT / 2))); do
        pgrep -x rustc >/dev/null || pgrep -x clippy-driver >/dev/null || pgrep -x wrk >/dev/null \
            || pgrep -x nginx >/dev/null || return 0
        sleep 2
    done
}

# Free ports: pick_port (lib/ports.sh).
# shellcheck source=lib/ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/ports.sh"

# The server and wrk run in this shell (not in a $(...) subshell), wrk in the
# background with a `wait` that a signal interrupts: on Ctrl-C, SIGTERM or an
# error the trap stops them at once rather than leaving them to finish the run.
SERVER=""
WRK=""
LOG=$(mktemp)
WRK_OUT=$(mktemp)
stop_server() { [[ -n $SERVER ]] && { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; }; SERVER=""; }
stop_wrk() { [[ -n $WRK ]] && { kill "$WRK" 2>/dev/null; wait "$WRK" 2>/dev/null || true; }; WRK=""; }
RESULTS=""
trap 'stop_wrk; stop_server; rm -f "$LOG" "$WRK_OUT" ${RESULTS:+"$RESULTS"}' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# load SECONDS URL : wrk's churn load; its output in WRK_OUT
load() {
    wrk -t1 -c"$CONNS" -d"$1" -H 'Connection: close' "$2" >"$WRK_OUT" 2>&1 &
    WRK=$!
    wait "$WRK" || true
    WRK=""
}

# run BIN MODE BACKEND -> sets RUN_RESULT to "us cs rps"
run() {
    local bin=$1 mode=$2 backend=$3 port=$PORT_BASE up=0
    for _ in 1 2 3; do
        pick_port "$port"; port=$PICKED_PORT
        "$bin" --bind 127.0.0.1:$port --mode "$mode" --backend "$backend" --workers 2 >/dev/null 2>"$LOG" &
        SERVER=$!
        # Up when its own log says so: an answer on the port could be someone else's server
        # that took it first (another run of this script), and ours then exits unable to bind.
        for _ in $(seq 50); do
            grep -q "listening on 127.0.0.1:$port " "$LOG" && { up=1; break; }
            kill -0 "$SERVER" 2>/dev/null || break
            sleep 0.1
        done
        ((up)) && break
        stop_server
        port=$((port + 1))
    done
    ((up)) || { echo "master-cost.sh: $bin did not start; its last log:" >&2; tail -n 5 "$LOG" >&2; exit 1; }
    load 1s "http://127.0.0.1:$port/"
    local t0 c0 t1 c1 out
    t0=$(awk '{print $14 + $15}' /proc/$SERVER/stat)
    c0=$(awk '/ctxt_switches/{s += $2} END{print s}' /proc/$SERVER/status)
    load "${DURATION}s" "http://127.0.0.1:$port/"
    out=$(<"$WRK_OUT")
    t1=$(awk '{print $14 + $15}' /proc/$SERVER/stat)
    c1=$(awk '/ctxt_switches/{s += $2} END{print s}' /proc/$SERVER/status)
    stop_server
    RUN_RESULT=$(awk -v t=$((t1 - t0)) -v c=$((c1 - c0)) -v tck="$(getconf CLK_TCK)" \
        -v n="$(awk '/requests in/{print $1}' <<<"$out")" -v rps="$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
        'BEGIN { if (n > 0) printf "%.2f %.3f %.0f\n", t * 1e6 / tck / n, c / n, rps; else print "nan nan 0" }')
}

RESULTS=$(mktemp)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
    for config in $CONFIGS; do
        order=("${BINS[@]}")
        if ((r % 2 == 0)); then
            for ((i = 0; i < ${#BINS[@]}; i++)); do order[i]=${BINS[${#BINS[@]} - 1 - i]}; done
        fi
        for bin in "${order[@]}"; do
            wait_quiet
            run "$bin" "${config%%:*}" "${config##*:}"
            line="$bin ${config%%:*} ${config##*:} $RUN_RESULT"
            echo "round $r: $line (load $(cut -d' ' -f1 /proc/loadavg))"
            echo "$line" >>"$RESULTS"
        done
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| binary | mode | backend | master µs per connection | context switches per connection | req/s |"
echo "|---|---|---|---:|---:|---:|"
for bin in "${BINS[@]}"; do
    for config in $CONFIGS; do
        awk -v bin="$bin" -v mode="${config%%:*}" -v backend="${config##*:}" '
            function median(a, n,   i, j, t) {
                for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
                return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
            }
            $1 == bin && $2 == mode && $3 == backend && $4 != "nan" { n++; us[n] = $4; cs[n] = $5; rps[n] = $6 }
            END {
                if (!n) exit
                m = median(us, n); lo = us[1]; hi = us[n]
                printf "| %s | %s | %s | %.1f (%.1f-%.1f) | %.2f | %.0f |\n", bin, mode, backend, m, lo, hi, median(cs, n), median(rps, n)
            }' "$RESULTS"
    done
done
rm -f "$RESULTS"

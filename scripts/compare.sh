#!/usr/bin/env bash
# ringmaster beside nginx and Node's cluster under the same wrk load, in one run.
#
#   scripts/compare.sh            # full run: 3 rounds x 10 s per server and scenario
#   scripts/compare.sh --quick    # smoke test: 1 round x 3 s
#   SERVERS="nginx node-rr" scripts/compare.sh --quick      # a subset
#
# Writes results/compare.md (+ a timestamped copy), results/compare.png, and
# results/compare-<stamp>.json (every round's numbers). See --help for the knobs.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

usage() {
    cat <<EOF
usage: scripts/compare.sh [--quick] [--help]

Runs every server in SERVERS, loads each in turn with the same wrk settings in
alternating rounds, each round starting one server later (round 1: A B C,
round 2: B C A, round 3: C A B; with two: A B, B A), and reports median
requests/s, p50/p99 latency, ratio to nginx, requests per server CPU-second and
the per-worker split (Jain's fairness index). Two balancing scenarios beside
the three loads: one worker stopped (SIGSTOP) for part of a churn run, and
unequal connections (half pipelined, half one request per connection).

  --quick          1 round of 3 s per server and scenario (ROUNDS/DURATION still win if set;
                   stalled keeps its two STALL_DURATION runs): about 8 min for all 14 servers;
                   writes to <repo>/target/compare-quick, not over the committed results
  --help           this text

Environment (defaults in brackets):
  SERVERS          servers to compare, in order [$DEFAULT_SERVERS]
                   rm-<mode>        ringmaster --mode <mode> (pinned): rm-rr, rm-least,
                                    rm-shared, rm-reuseport (steered by load where it may)
                   rm-reuseport-hash, rm-reuseport-load  reuseport with --steer hash / load
                   rm-<mode>-nopin  the same with --no-pin
                   rm-<mode>-epoll  the same with --backend epoll (-nopin-epoll: both)
                   rm-<...>-base    the same with RINGMASTER_BASE_BIN: a change against the
                                    code before it, in one run (e.g. rm-shared rm-shared-base)
                   nginx            nginx, return 200 "hello world\\n"
                   node-rr|node-none  Node cluster, NODE_CLUSTER_SCHED_POLICY=rr|none
  SCENARIOS        [keepalive pipeline churn stalled unequal]
                   stalled: churn with STALL_CONNS connections for STALL_DURATION, run
                   twice per round: healthy, then with the server's second worker
                   stopped (SIGSTOP) from STALL_AT s for STALL_FOR s; wrk --timeout
                   STALL_TIMEOUT. unequal: for DURATION, UNEQUAL_CONNS/2 connections
                   pipelining PIPELINE_DEPTH deep beside UNEQUAL_CONNS/2 churn ones
                   (two wrk processes at once)
  ROUNDS           rounds per server and scenario [3]
  DURATION         wrk -d per run [10s]
  CONNS            wrk -c [64]
  THREADS          wrk -t [1]  (2 cores: see the note in results/compare.md)
  WARMUP           unmeasured keep-alive warm-up per server before round 1 [2s]
  PIPELINE_DEPTH   requests per write in the pipeline and unequal scenarios [16]
  STALL_CONNS      wrk -c of the stalled scenario [32]
  STALL_DURATION   wrk -d of the stalled scenario [8s]
  STALL_AT         seconds into the stalled run the worker is stopped [2]
  STALL_FOR        seconds it stays stopped [3]
  STALL_TIMEOUT    wrk --timeout in the stalled and unequal scenarios [2s]
  UNEQUAL_CONNS    connections of the unequal scenario, half of each kind [32]
  UNEQUAL_STAGGER  1 = start the churn half once the pipelined connections are all
                   established, so that they split as a mode deals them alone [0]
  WORKERS          worker processes for every server [nproc]
  PORT_BASE        first port tried; each server gets its own free port [18080]
  WRK_CPUS         if set, run wrk under taskset -c WRK_CPUS [unset: wrk floats]
  NGINX_AFFINITY   1 = worker_cpu_affinity auto (pinned like ringmaster) [1]
  SCHED            batch = start every server (all its processes) under chrt -b 0,
                   SCHED_BATCH: none preempts wrk or another when woken, the same
                   for all [unset: the usual policy]
  RINGMASTER_BIN   use this binary instead of building with cargo build --release
  RINGMASTER_BASE_BIN  the binary of the rm-<...>-base servers [unset]
  RINGMASTER_ARGS  extra arguments for every ringmaster server [none]
  CARGO_TARGET_DIR honoured by the build
  RESULTS_DIR      [<repo>/results; with --quick <repo>/target/compare-quick]
  NO_INSTALL       1 = never apt-get/pip install, fail if something is missing
EOF
}

DEFAULT_SERVERS="rm-rr rm-least rm-shared rm-reuseport-hash rm-reuseport-load rm-rr-nopin rm-shared-nopin rm-rr-epoll rm-least-epoll rm-shared-epoll rm-reuseport-epoll nginx node-rr node-none"
QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

read -r -a SERVER_LIST <<<"${SERVERS:-$DEFAULT_SERVERS}"
read -r -a SCENARIO_LIST <<<"${SCENARIOS:-keepalive pipeline churn stalled unequal}"
if ((QUICK)); then
    ROUNDS=${ROUNDS:-1}; DURATION=${DURATION:-3s}; WARMUP=${WARMUP:-1s}
fi
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
PIPELINE_DEPTH=${PIPELINE_DEPTH:-16}
STALL_CONNS=${STALL_CONNS:-32}
STALL_DURATION=${STALL_DURATION:-8s}
STALL_AT=${STALL_AT:-2}
STALL_FOR=${STALL_FOR:-3}
STALL_TIMEOUT=${STALL_TIMEOUT:-2s}
UNEQUAL_CONNS=${UNEQUAL_CONNS:-32}
UNEQUAL_STAGGER=${UNEQUAL_STAGGER:-0}
WORKERS=${WORKERS:-$(nproc)}
PORT_BASE=${PORT_BASE:-18080}
NGINX_AFFINITY=${NGINX_AFFINITY:-1}
SCHED=${SCHED:-}
SCHED_PREFIX=()
case "$SCHED" in
    "") ;;
    batch) SCHED_PREFIX=(chrt -b 0) ;;
    *) printf "compare.sh: error: SCHED must be batch or unset (got '%s')\n" "$SCHED" >&2; exit 1 ;;
esac
# A smoke run is not a result: it must not replace the committed compare.md.
if ((QUICK)); then
    RESULTS_DIR=${RESULTS_DIR:-$ROOT/target/compare-quick}
else
    RESULTS_DIR=${RESULTS_DIR:-$ROOT/results}
fi
NO_INSTALL=${NO_INSTALL:-0}
[[ $DURATION =~ ^[0-9]+$ ]] && DURATION="${DURATION}s"
[[ $WARMUP =~ ^[0-9]+$ ]] && WARMUP="${WARMUP}s"
[[ $STALL_DURATION =~ ^[0-9]+$ ]] && STALL_DURATION="${STALL_DURATION}s"

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'compare.sh: error: %s\n' "$*" >&2; exit 1; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer (got '$ROUNDS')"
[[ $CONNS =~ ^[1-9][0-9]*$ ]] || die "CONNS must be a positive integer (got '$CONNS')"
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer (got '$THREADS')"
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer (got '$WORKERS')"
((CONNS >= THREADS)) || die "CONNS ($CONNS) must be >= THREADS ($THREADS)"
((${#SERVER_LIST[@]} > 0)) || die "SERVERS is empty"
for sc in "${SCENARIO_LIST[@]}"; do
    case "$sc" in
        keepalive|pipeline|churn|stalled|unequal) ;;
        *) die "unknown scenario '$sc' (keepalive, pipeline, churn, stalled, unequal)" ;;
    esac
done
[[ $STALL_CONNS =~ ^[1-9][0-9]*$ ]] || die "STALL_CONNS must be a positive integer (got '$STALL_CONNS')"
[[ $STALL_AT =~ ^[0-9]+$ && $STALL_FOR =~ ^[1-9][0-9]*$ ]] || die "STALL_AT and STALL_FOR are whole seconds"
[[ $UNEQUAL_CONNS =~ ^[1-9][0-9]*$ ]] && ((UNEQUAL_CONNS >= 2)) || die "UNEQUAL_CONNS must be an integer >= 2"

# ---------------------------------------------------------------- server kinds
# server_kind NAME -> ringmaster | nginx | node  (dies on an unknown name)
server_kind() {
    case "$1" in
        rm-*) echo ringmaster ;;
        nginx) echo nginx ;;
        node-rr|node-none) echo node ;;
        *) die "unknown server '$1' in SERVERS (rm-<mode>[-nopin][-epoll][-base], nginx, node-rr, node-none)" ;;
    esac
}
need_kind() { local s; for s in "${SERVER_LIST[@]}"; do [[ $(server_kind "$s") == "$1" ]] && return 0; done; return 1; }
for s in "${SERVER_LIST[@]}"; do
    server_kind "$s" >/dev/null
    if [[ $s == rm-*-base ]]; then
        [[ -x ${RINGMASTER_BASE_BIN:-} ]] || die "$s needs RINGMASTER_BASE_BIN, an executable ringmaster (got '${RINGMASTER_BASE_BIN:-}')"
    fi
done

# ---------------------------------------------------------------- cleanup
WORKDIR=""
declare -a STARTED_PIDS=()       # server master pids (each is its own process group leader)
WRK_PID=""
WRK_PID2=""
STOPPED_PID=""                   # a worker stopped by the stalled scenario: continued on any exit
STALLER_PID=""
CLEANED=0

stop_pid_group() {               # stop_pid_group PID : TERM the master, then KILL its group and descendants
    local pid=$1 i desc p
    [[ -d /proc/$pid ]] || return 0
    desc=$(python3 "$SCRIPT_DIR/procsnap.py" "$pid" 2>/dev/null |
        python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["procs"]))' 2>/dev/null || true)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do        # up to 5 s for a clean exit (ringmaster drains, prints stats)
        alive "$pid" || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    for p in $desc; do [[ $p == "$pid" ]] || kill -KILL "$p" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}

alive() {                        # alive PID : running and not a zombie
    local st
    st=$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

cleanup() {
    local rc=$?
    ((CLEANED)) && return
    CLEANED=1
    trap - EXIT INT TERM
    if [[ -n $STALLER_PID ]]; then kill -TERM "$STALLER_PID" 2>/dev/null || true; wait "$STALLER_PID" 2>/dev/null || true; fi
    if [[ -n $STOPPED_PID ]]; then kill -CONT "$STOPPED_PID" 2>/dev/null || true; fi
    if [[ -n $WRK_PID ]]; then kill -TERM "$WRK_PID" 2>/dev/null || true; wait "$WRK_PID" 2>/dev/null || true; fi
    if [[ -n $WRK_PID2 ]]; then kill -TERM "$WRK_PID2" 2>/dev/null || true; wait "$WRK_PID2" 2>/dev/null || true; fi
    local pid
    for pid in "${STARTED_PIDS[@]}"; do stop_pid_group "$pid"; done
    STARTED_PIDS=()
    if ((rc != 0)) && [[ -n $WORKDIR ]]; then
        echo "compare.sh: failed (exit $rc); logs and raw data kept in $WORKDIR" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
# shellcheck source=lib/tools.sh
source "$SCRIPT_DIR/lib/tools.sh"

find_nginx() { command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true; }

ensure_tools() {
    local wants=(python3:python3 wrk:wrk curl:curl setsid:util-linux)
    need_kind nginx && wants+=(nginx:nginx)
    need_kind node && wants+=(node:nodejs)
    install_missing "${wants[@]}"
    if need_kind nginx; then NGINX=$(find_nginx); [[ -n $NGINX ]] || die "nginx not found after install"; fi
    if [[ -n ${WRK_CPUS:-} ]]; then command -v taskset >/dev/null || die "WRK_CPUS set but taskset missing"; fi
    if ((${#SCHED_PREFIX[@]})); then command -v chrt >/dev/null || die "SCHED set but chrt missing"; fi

    # the chart: matplotlib from PyPI (Agg backend, no display needed), into the
    # python3 on PATH (a pyenv or venv one). A Python the distribution manages
    # (PEP 668) refuses pip: it is not forced (--break-system-packages would put
    # PyPI's packages over the system's own), and the run goes on without the chart.
    if ! python3 -c 'import matplotlib' 2>/dev/null; then
        if ((NO_INSTALL)); then
            log "matplotlib missing and NO_INSTALL=1: no chart"
        else
            log "pip install matplotlib (into $(command -v python3))"
            python3 -m pip install --quiet --disable-pip-version-check matplotlib >/dev/null 2>&1 ||
                log "warning: could not pip install matplotlib into $(command -v python3) (a system Python refuses it:" \
                    "apt-get install python3-matplotlib, or put a venv's python3 first on PATH); the Markdown table is" \
                    "still written, the chart is not"
        fi
    fi
}

build_ringmaster() {
    if [[ -n ${RINGMASTER_BIN:-} ]]; then
        RM_BIN=$RINGMASTER_BIN
    else
        command -v cargo >/dev/null || die "cargo not found: install Rust, or set RINGMASTER_BIN, or leave rm-* out of SERVERS"
        log "cargo build --release (target dir: ${CARGO_TARGET_DIR:-$ROOT/target})"
        (cd "$ROOT" && cargo build --release) ||
            die "cargo build --release failed; to compare the peers only: SERVERS='nginx node-rr node-none' $0"
        local tdir
        tdir=$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])') ||
            die "cargo metadata failed"
        RM_BIN=$tdir/release/ringmaster
    fi
    [[ -x $RM_BIN ]] || die "ringmaster binary not found at $RM_BIN"
}

# ---------------------------------------------------------------- servers
# shellcheck source=lib/ports.sh
source "$SCRIPT_DIR/lib/ports.sh"
NEXT_PORT=$PORT_BASE
pick_port() {                    # sets PICKED_PORT to a free port >= NEXT_PORT
    local p=$NEXT_PORT
    while port_in_use "$p" || port_listened "$p"; do
        p=$((p + 1))
        ((p < PORT_BASE + 1000)) || die "no free port in $PORT_BASE..$((PORT_BASE + 999))"
    done
    PICKED_PORT=$p
    NEXT_PORT=$((p + 1))
}

declare -A PORT=() MASTER=() KIND=() SDIR=()

start_server() {                 # start_server NAME
    local name=$1 kind dir port pid
    kind=$(server_kind "$name")
    dir=$WORKDIR/servers/$name
    mkdir -p "$dir"
    pick_port; port=$PICKED_PORT
    case "$kind" in
        ringmaster)
            local mode=${name#rm-} extra=() bin=$RM_BIN
            if [[ $mode == *-base ]]; then mode=${mode%-base}; bin=$RINGMASTER_BASE_BIN; fi
            if [[ $mode == *-epoll ]]; then mode=${mode%-epoll}; extra+=(--backend epoll); fi
            if [[ $mode == *-nopin ]]; then mode=${mode%-nopin}; extra+=(--no-pin); fi
            # rm-reuseport-hash, rm-reuseport-load: --steer (rm-reuseport: the default, load where it may)
            if [[ $mode == reuseport-hash || $mode == reuseport-load ]]; then extra+=(--steer "${mode#reuseport-}"); mode=reuseport; fi
            local more=()
            read -r -a more <<<"${RINGMASTER_ARGS:-}"
            extra+=("${more[@]}")
            printf '%q ' "${SCHED_PREFIX[@]}" "$bin" --bind "127.0.0.1:$port" --mode "$mode" --workers "$WORKERS" "${extra[@]}" >"$dir/cmd"
            setsid "${SCHED_PREFIX[@]}" "$bin" --bind "127.0.0.1:$port" --mode "$mode" --workers "$WORKERS" "${extra[@]}" \
                </dev/null >"$dir/stdout" 2>"$dir/stderr" &
            ;;
        nginx)
            mkdir -p "$dir"/{client_body,proxy,fastcgi,uwsgi,scgi}
            local aff=""
            ((NGINX_AFFINITY)) && aff="worker_cpu_affinity auto;"
            sed -e "s|@WORKERS@|$WORKERS|g" -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" -e "s|@AFFINITY@|$aff|g" \
                "$SCRIPT_DIR/peers/nginx.conf.template" >"$dir/nginx.conf"
            "$NGINX" -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stderr" 2>&1 ||
                { cat "$dir/stderr" >&2; die "nginx rejected $dir/nginx.conf"; }
            echo "${SCHED_PREFIX[*]:+${SCHED_PREFIX[*]} }$NGINX -p $dir -e $dir/error.log -c $dir/nginx.conf" >"$dir/cmd"
            setsid "${SCHED_PREFIX[@]}" "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
                </dev/null >"$dir/stdout" 2>"$dir/stderr" &
            ;;
        node)
            local policy=${name#node-}
            echo "NODE_CLUSTER_SCHED_POLICY=$policy PORT=$port WORKERS=$WORKERS ${SCHED_PREFIX[*]:+${SCHED_PREFIX[*]} }node $SCRIPT_DIR/peers/node-cluster.js" >"$dir/cmd"
            NODE_CLUSTER_SCHED_POLICY=$policy PORT=$port HOST=127.0.0.1 WORKERS=$WORKERS \
                setsid "${SCHED_PREFIX[@]}" node "$SCRIPT_DIR/peers/node-cluster.js" </dev/null >"$dir/stdout" 2>"$dir/stderr" &
            ;;
    esac
    pid=$!
    STARTED_PIDS+=("$pid")
    PORT[$name]=$port; MASTER[$name]=$pid; KIND[$name]=$kind; SDIR[$name]=$dir
    # setsid must not have forked: the server is our child and leads its own process group
    # (the child may not have run setsid() yet when we first look: poll for up to 2 s)
    local pgid i
    for ((i = 0; i < 100; i++)); do
        pgid=$(awk '{sub(/.*\) /, ""); print $3}' "/proc/$pid/stat" 2>/dev/null || echo "?")
        [[ $pgid == "$pid" ]] && break
        alive "$pid" || break
        sleep 0.02
    done
    [[ $pgid == "$pid" ]] || log "warning: $name pid $pid has pgid $pgid (expected its own group); stop falls back to killing its descendants"

    # wait for the port (up to 20 s), failing early if the server died
    for ((i = 0; i < 200; i++)); do
        port_in_use "$port" && break
        if ! alive "$pid"; then
            echo "---- $name stderr:" >&2; tail -n 20 "$dir/stderr" >&2 || true
            [[ -f $dir/error.log ]] && tail -n 20 "$dir/error.log" >&2
            die "$name exited before listening on 127.0.0.1:$port (command: $(cat "$dir/cmd"))"
        fi
        sleep 0.1
    done
    port_in_use "$port" || die "$name did not listen on 127.0.0.1:$port within 20 s (logs in $dir)"

    # it must answer like the others, and have its workers up
    local body
    body=$(curl -sS --max-time 5 "http://127.0.0.1:$port/") || die "$name: GET / failed on port $port"
    [[ $body == "hello world" ]] || die "$name: GET / answered '$body', expected 'hello world'"
    local n=0
    for ((i = 0; i < 100; i++)); do
        n=$(python3 "$SCRIPT_DIR/procsnap.py" "$pid" | python3 -c '
import json,sys; d=json.load(sys.stdin); r=str(d["root"])
print(sum(1 for p in d["procs"].values() if str(p["ppid"])==r))')
        ((n >= WORKERS)) && break
        sleep 0.1
    done
    ((n >= WORKERS)) || log "warning: $name has $n child processes, expected $WORKERS workers"
    log "$name up: pid $pid, port $port, $n workers"
}

# stats NAME OUTFILE : ringmaster only: SIGUSR1 the master, wait for the new JSON line on its stdout
stats() {
    local name=$1 out=$2 pid=${MASTER[$1]} f=${SDIR[$1]}/stdout before i
    before=$(wc -l <"$f")
    kill -USR1 "$pid" 2>/dev/null || { log "warning: $name: cannot signal master $pid"; return 0; }
    for ((i = 0; i < 150; i++)); do
        if (($(wc -l <"$f") > before)); then
            tail -n 1 "$f" >"$out"
            return 0
        fi
        sleep 0.02
    done
    log "warning: $name: no stats line on stdout within 3 s of SIGUSR1"
}

# ---------------------------------------------------------------- load
wrk_args() {                     # wrk_args SCENARIO DURATION -> sets WRK_ARGS
    WRK_ARGS=(-t "$THREADS" -c "$CONNS" -d "$2" --latency)
    case "$1" in
        keepalive) ;;
        pipeline) WRK_ARGS+=(-s "$SCRIPT_DIR/pipeline.lua") ;;
        churn) WRK_ARGS+=(-H "Connection: close") ;;
        stalled) WRK_ARGS=(-t "$THREADS" -c "$STALL_CONNS" -d "$2" --timeout "$STALL_TIMEOUT" --latency
                           -H "Connection: close") ;;
        unequal-pipelined) WRK_ARGS=(-t 1 -c $((UNEQUAL_CONNS / 2)) -d "$2" --timeout "$STALL_TIMEOUT" --latency
                                     -s "$SCRIPT_DIR/pipeline.lua") ;;
        unequal-churn) WRK_ARGS=(-t 1 -c $((UNEQUAL_CONNS - UNEQUAL_CONNS / 2)) -d "$2" --timeout "$STALL_TIMEOUT"
                                 --latency -H "Connection: close") ;;
    esac
}

run_wrk() {                      # run_wrk OUTFILE URL [extra args after the URL]
    local out=$1; shift
    local pre=()
    [[ -n ${WRK_CPUS:-} ]] && pre=(taskset -c "$WRK_CPUS")
    # in the background + wait, so that a signal to this script stops wrk at once
    # `times` before/after: the shell's reaped-children CPU time grows by exactly wrk's
    # (a builtin with a redirection runs in this shell; in $(...) it would see a fresh child)
    times >"$out.times0"
    "${pre[@]}" wrk "${WRK_ARGS[@]}" "$@" >"$out" 2>&1 </dev/null &
    WRK_PID=$!
    local rc=0
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    times >"$out.times1"
    ((rc == 0)) || { cat "$out" >&2; die "wrk failed (exit $rc), see above"; }
}

# second_worker NAME -> the pid of the server's second worker (its master's children by pid)
second_worker() {
    python3 "$SCRIPT_DIR/procsnap.py" "${MASTER[$1]}" | python3 -c '
import json,sys; d=json.load(sys.stdin); r=str(d["root"])
kids=sorted(int(p) for p, q in d["procs"].items() if str(q["ppid"])==r)
print(kids[1] if len(kids) > 1 else (kids[0] if kids else ""))'
}

# await_established PORT N : until N connections to PORT are established (5 s at most)
await_established() {
    local port=${1%%/*} i
    for ((i = 0; i < 500; i++)); do
        (($(ss -Htn state established "( dport = :$port )" | wc -l) >= $2)) && return 0
        sleep 0.01
    done
    log "warning: fewer than $2 connections to :$port after 5 s"
}

# run_wrk_pair OUT1 OUT2 URL : the unequal scenario's two wrk processes at once
# (OUT1: the churn half, OUT2: the pipelined half)
run_wrk_pair() {
    local out1=$1 out2=$2 url=$3 pre=() rc=0
    [[ -n ${WRK_CPUS:-} ]] && pre=(taskset -c "$WRK_CPUS")
    times >"$out1.times0"
    wrk_args unequal-pipelined "$DURATION"
    "${pre[@]}" wrk "${WRK_ARGS[@]}" "$url" "$PIPELINE_DEPTH" >"$out2" 2>&1 </dev/null &
    WRK_PID2=$!
    ((UNEQUAL_STAGGER)) && await_established "${url##*:}" $((UNEQUAL_CONNS / 2))
    wrk_args unequal-churn "$DURATION"
    "${pre[@]}" wrk "${WRK_ARGS[@]}" "$url" >"$out1" 2>&1 </dev/null &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    wait "$WRK_PID2" || rc=$?
    WRK_PID=""; WRK_PID2=""
    times >"$out1.times1"
    ((rc == 0)) || { cat "$out1" "$out2" >&2; die "wrk failed (exit $rc), see above"; }
}

# stalled_wrk NAME OUTFILE URL : one churn run with the second worker stopped for part of it
stalled_wrk() {
    local victim
    victim=$(second_worker "$1")
    [[ -n $victim ]] || die "$1: no worker to stop"
    # ringmaster: its stats line right after the stop says how many connections the stopped
    # worker held (its last published count), which is what it can make wait
    ( sleep "$STALL_AT"; kill -STOP "$victim"
      [[ ${KIND[$1]} == ringmaster ]] && stats "$1" "$2.stopped"
      echo "$victim" >"$2.victim"
      sleep "$STALL_FOR"; kill -CONT "$victim" ) &
    STALLER_PID=$!
    STOPPED_PID=$victim
    run_wrk "$2" "$3"
    wait "$STALLER_PID" 2>/dev/null || true
    kill -CONT "$victim" 2>/dev/null || true
    STALLER_PID=""; STOPPED_PID=""
}

one_run() {                      # one_run NAME SCENARIO ROUND
    local name=$1 sc=$2 r=$3 base url
    base=$WORKDIR/runs/r$r/$name.$sc
    mkdir -p "$(dirname "$base")"
    url="http://127.0.0.1:${PORT[$name]}/"
    alive "${MASTER[$name]}" || die "$name (pid ${MASTER[$name]}) died before round $r $sc; logs in ${SDIR[$name]}"
    wrk_args "$sc" "$DURATION"
    if [[ $sc == stalled ]]; then
        # the healthy run it is compared with: same settings, just before
        wrk_args stalled "$STALL_DURATION"
        run_wrk "$base.healthy.wrk" "$url"
    fi
    [[ ${KIND[$name]} == ringmaster ]] && stats "$name" "$base.stats0"
    python3 "$SCRIPT_DIR/procsnap.py" "${MASTER[$name]}" >"$base.cpu0"
    case $sc in
        pipeline) run_wrk "$base.wrk" "$url" "$PIPELINE_DEPTH" ;;
        stalled) stalled_wrk "$name" "$base.wrk" "$url" ;;
        unequal) run_wrk_pair "$base.wrk" "$base.pipelined.wrk" "$url" ;;
        *) run_wrk "$base.wrk" "$url" ;;
    esac
    python3 "$SCRIPT_DIR/procsnap.py" "${MASTER[$name]}" >"$base.cpu1"
    [[ ${KIND[$name]} == ringmaster ]] && stats "$name" "$base.stats1"
    local rps
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$base.wrk")
    log "round $r/$ROUNDS  $(printf '%-10s %-16s' "$sc" "$name") ${rps:-?} req/s"
}

# ---------------------------------------------------------------- main
ensure_tools
need_kind ringmaster && build_ringmaster

STAMP=$(date +%Y%m%d-%H%M%S)
WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/ringmaster-compare.$STAMP.XXXX")
mkdir -p "$WORKDIR/servers" "$WORKDIR/runs" "$RESULTS_DIR"
log "work dir $WORKDIR"

# the machine and the settings, for the report
{
    echo "stamp=$STAMP"
    echo "date=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "nproc=$(nproc)"
    echo "cpu_model=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "kernel=$(uname -srm)"
    echo "clk_tck=$(getconf CLK_TCK)"
    echo "wrk_version=$(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}' || true)"
    need_kind nginx && echo "nginx_version=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
    need_kind node && echo "node_version=$(node --version)"
    if need_kind ringmaster; then
        echo "ringmaster_bin=$RM_BIN"
        if [[ -n ${RINGMASTER_BASE_BIN:-} ]]; then echo "ringmaster_base_bin=$RINGMASTER_BASE_BIN"; fi
        echo "ringmaster_git=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo 'no commit yet')"
    fi
    echo "servers=${SERVER_LIST[*]}"
    echo "scenarios=${SCENARIO_LIST[*]}"
    echo "rounds=$ROUNDS"
    echo "duration=$DURATION"
    echo "warmup=$WARMUP"
    echo "conns=$CONNS"
    echo "threads=$THREADS"
    echo "workers=$WORKERS"
    echo "pipeline_depth=$PIPELINE_DEPTH"
    echo "stall=$STALL_CONNS connections, $STALL_DURATION, worker 2 stopped from ${STALL_AT}s for ${STALL_FOR}s, wrk --timeout $STALL_TIMEOUT"
    echo "unequal=$((UNEQUAL_CONNS / 2)) pipelined x$PIPELINE_DEPTH + $((UNEQUAL_CONNS - UNEQUAL_CONNS / 2)) churn, $DURATION, wrk --timeout $STALL_TIMEOUT"
    echo "wrk_cpus=${WRK_CPUS:-}"
    echo "nginx_affinity=$NGINX_AFFINITY"
    echo "sched=$SCHED"
    echo "quick=$QUICK"
} >"$WORKDIR/meta.env"

for s in "${SERVER_LIST[@]}"; do start_server "$s"; done
for s in "${SERVER_LIST[@]}"; do
    echo "$s ${KIND[$s]} ${PORT[$s]} ${MASTER[$s]}" >>"$WORKDIR/servers.txt"
done

if [[ $WARMUP != 0s ]]; then
    for s in "${SERVER_LIST[@]}"; do
        log "warm-up $s ($WARMUP keep-alive, not measured)"
        wrk_args keepalive "$WARMUP"
        run_wrk "${SDIR[$s]}/warmup.wrk" "http://127.0.0.1:${PORT[$s]}/"
    done
fi

total=$((ROUNDS * ${#SCENARIO_LIST[@]} * ${#SERVER_LIST[@]}))
log "$total runs of $DURATION: ${SERVER_LIST[*]} x ${SCENARIO_LIST[*]} x $ROUNDS rounds"
# Each round starts one server later, so that no server is always first (or
# always after the same one): the position in a round can move a server's
# numbers by a few per cent at 10,000 connections, as much as a change tested.
n_servers=${#SERVER_LIST[@]}
for ((r = 1; r <= ROUNDS; r++)); do
    for sc in "${SCENARIO_LIST[@]}"; do
        for ((i = 0; i < n_servers; i++)); do
            one_run "${SERVER_LIST[$(((r - 1 + i) % n_servers))]}" "$sc" "$r"
        done
    done
done

# stop everything before the report (so the final stats lines are written and no CPU is taken)
for pid in "${STARTED_PIDS[@]}"; do stop_pid_group "$pid"; done
STARTED_PIDS=()

python3 "$SCRIPT_DIR/report.py" --run "$WORKDIR" --out "$RESULTS_DIR" --stamp "$STAMP"
log "raw data: $WORKDIR"

#!/usr/bin/env bash
# A leak soak: ringmaster under light traffic while one kind of lifecycle event
# is repeated many times, phase after phase, sampling the master and workers'
# resources every few events, so that a count that grows with the events
# (rather than settling) shows as a leak and names the event that leaks.
#
#   scripts/soak.sh                              # rr least shared reuseport on io_uring, rr on epoll
#   CONFIGS="rr:uring" EVENTS=50 scripts/soak.sh
#   PHASES="reload upgrade" EVENTS=200 scripts/soak.sh
#
# Each configuration runs one master (`--workers 2 --control --metrics`)
# under a small Python client (keep-alive and `Connection: close`
# connections, a request every 20 ms each), then, phase by phase, EVENTS
# times (100 by default; PHASE_SECONDS, 240, ends a phase early, saying so):
#   status   `ctl status`
#   metrics  a scrape of /metrics
#   reset    a client that connects to the server (and to the metrics
#            listener, every other time), sends half a request and resets
#   reload   `ctl reload`, until the log says `reload: done`
#   scale    `ctl scale 3` until 3 are ready, `ctl scale 2` until 2 are left
#   kill     `ctl scale 3`, SIGKILL of worker 3 until its restart is ready,
#            `ctl scale 2` (a new worker 3 each time: no restart back-off
#            builds up; compare with the scale phase)
#   upgrade  `ctl upgrade` to the same binary, following the new master
#            until the old one is gone
# Every SAMPLE events (EVENTS/5 by default) and at each phase's start it
# prints one row: events done, the master's pid, descriptors (the fewest of
# 5 reads 50 ms apart: a handed connection's copy lives until the worker's
# ack), RSS (KB), threads, the soak's ringmaster processes alive, zombies
# among them and their children, and each worker's descriptors. A phase
# FAILs when the master ends it with more than SLACK (2) descriptors above
# its first sample past the first SAMPLE events, when any zombie is seen, or
# when more processes than the master and 2 workers are left at its end.
# RSS is printed for a person to judge (allocators settle slowly).
#
# PORT_BASE (26000): the first port tried for the server and the metrics
# listener, each the first free one from there (lib/ports.sh);
# RINGMASTER_BIN a binary instead of building target/release/ringmaster
# (upgrades re-execute the same file). Loopback only. Whatever it started is
# stopped on any exit (an error, Ctrl-C, SIGTERM). Run it at `nice -n 19` on a
# shared machine. Logs stay in the directory printed first and last.
set -euo pipefail

CONFIGS=${CONFIGS:-"rr:uring least:uring shared:uring reuseport:uring rr:epoll"}
PHASES=${PHASES:-"status metrics reset reload scale kill upgrade"}
EVENTS=${EVENTS:-100}
SAMPLE=${SAMPLE:-$(((EVENTS + 4) / 5))}
PHASE_SECONDS=${PHASE_SECONDS:-240}
SLACK=${SLACK:-2}
PORT_BASE=${PORT_BASE:-26000}
WAIT=20           # seconds any one event may take to settle before the phase fails
# --shutdown-timeout: also how long a new master (upgrade) and a new worker
# have to be ready; a starved machine (nice 19 beside CPU burners) took 2.4 s
# to start 2 workers, so not the 3 s chaos.sh uses
SHUTDOWN_TIMEOUT=${SHUTDOWN_TIMEOUT:-10}
# shellcheck source=lib/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/tools.sh"
install_missing curl:curl python3:python3 ss:iproute2 pgrep:procps
# shellcheck source=lib/binary.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/binary.sh"
ringmaster_binary
NAME=$(basename "$RINGMASTER_BIN" | cut -c1-15 | sed 's/[][\\.^$*+?(){}|]/\\&/g')   # as the kernel names its processes, for pgrep
OUT=$(mktemp -d /tmp/ringmaster-soak.XXXXXX)
echo "soak.sh: logs in $OUT"

# shellcheck source=lib/ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/ports.sh"

# On any exit stop what this soak started: the client, and every process of
# the server (its master, workers, and the masters its upgrades started).
token=""
CLIENT=""
SERVER=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $CLIENT ]] && kill -TERM "$CLIENT" 2>/dev/null
    # the first master, should it not have reached its exec yet
    [[ -n $SERVER ]] && kill -TERM "$SERVER" 2>/dev/null
    [[ -n $token ]] && stop_ours
    exit "$rc"
}
# shellcheck source=lib/stop.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/stop.sh"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Every live process of this soak: the master started with RINGMASTER_SOAK_RUN
# set to its token, which its workers and upgraded masters inherit.
ours() {
    local p
    # by name first (a master titles itself `ringmaster`, a worker `rm-worker-N`; until it
    # does, a process is named after its file): reading every environ is slow
    # (pgrep warns that a pattern over 15 characters matches no name when
    # none runs; the alternatives are each shorter)
    for p in $(pgrep -x "ringmaster|rm-worker-[0-9]+|$NAME" 2>/dev/null); do
        [[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$RINGMASTER_BIN" ]] || continue
        tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qxF "RINGMASTER_SOAK_RUN=$token" && echo "$p"
    done
    return 0
}
# Zombies among them and their children (a zombie's environ cannot be read).
zombies() {
    local pids
    pids=$(ours | tr '\n' ',')
    [[ -z $pids ]] && { echo 0; return; }
    ps -eo pid=,ppid=,stat= | awk -v s=",$pids" '$3 ~ /^Z/ && (index(s, "," $1 ",") || index(s, "," $2 ",")) {n++} END {print n + 0}'
}
# The master: the one of ours titled so (an old one draining after an
# upgrade is too until it exits: the newest wins).
master_pid() {
    local p m=""
    for p in $(ours); do
        [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") == "ringmaster: master"* ]] && m=$p
    done
    echo "$m"
}
ctl() { timeout $WAIT "$RINGMASTER_BIN" ctl "$CTL" "$@" 2>&1 || true; }
# wait_workers SECONDS EXPR [VALUE]: polls `ctl status` (one Python process
# for the whole wait) until its worker list satisfies EXPR (Python, `w` the
# list); prints VALUE (an expression too) then; false after SECONDS.
wait_workers() {
    python3 - "$RINGMASTER_BIN" "$CTL" "$@" <<'PY'
import json, subprocess, sys, time
binary, ctl, seconds, expr = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
value = sys.argv[5] if len(sys.argv) > 5 else None
end = time.monotonic() + seconds
while True:
    try:
        out = subprocess.run([binary, "ctl", ctl, "status"], capture_output=True, timeout=5).stdout
        w = json.loads(out)["workers"]
        if eval(expr):
            if value: print(eval(value))
            sys.exit(0)
    except Exception:
        pass
    if time.monotonic() > end: sys.exit(1)
    time.sleep(0.05)
PY
}
# until_ok SECONDS CMD...: run CMD every 50 ms until it succeeds; false after SECONDS.
until_ok() {
    local end=$((SECONDS + $1)); shift
    while ! "$@"; do ((SECONDS < end)) || return 1; sleep 0.05; done
}
ready_n() { wait_workers "${2:-$WAIT}" "len(w) == $1 and all(x['state'] == 'ready' for x in w)"; }

# sample EVENTS: one row of the table for the current master.
sample() {
    local m fds=1000000 c rss thr procs z wfds="" w
    m=$(master_pid)
    [[ -z $m ]] && { printf '%7s %8s %6s %8s %7s %6s %7s  %s\n' "$1" - - - - - - "no master"; return; }
    for _ in 1 2 3 4 5; do
        c=$(ls /proc/"$m"/fd 2>/dev/null | wc -l)
        ((c < fds)) && fds=$c
        sleep 0.05
    done
    rss=$(awk '/^VmRSS/ {print $2}' /proc/"$m"/status 2>/dev/null)
    thr=$(awk '/^Threads/ {print $2}' /proc/"$m"/status 2>/dev/null)
    procs=$(ours | wc -l)
    z=$(zombies)
    for w in $(pgrep -P "$m" | sort -n); do wfds+="$(ls /proc/"$w"/fd 2>/dev/null | wc -l) "; done
    printf '%7s %8s %6s %8s %7s %6s %7s  %s\n' "$1" "$m" "$fds" "$rss" "$thr" "$procs" "$z" "$wfds"
    LAST_FDS=$fds LAST_PROCS=$procs LAST_Z=$z
}

# One event of a phase; false when it did not settle within WAIT seconds.
event() {
    local i=$2 w pid new
    case $1 in
        status) [[ $(ctl status) == '{"mode"'* ]] ;;
        metrics) [[ $(curl -sf -m 5 "http://127.0.0.1:$MPORT/metrics") == *$'\n'ringmaster_info* ]] ;;
        reset) python3 - "$PORT" "$MPORT" "$i" <<'EOF'
import socket, struct, sys
port, mport, i = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for p in ([port, mport] if i % 2 else [port]):
    s = socket.create_connection(("127.0.0.1", p), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
EOF
            ;;
        reload)
            local before
            before=$(grep -c 'reload: done' "$LOG" || true)
            [[ $(ctl reload) == ok* ]] || return 1
            until_ok $WAIT eval '(( $(grep -c "reload: done" "$LOG" || true) > before ))' && ready_n 2 ;;
        scale)
            [[ $(ctl scale 3) == ok* ]] && ready_n 3 &&
                [[ $(ctl scale 2) == ok* ]] && ready_n 2 ;;
        kill)
            [[ $(ctl scale 3) == ok* ]] || return 1
            pid=$(wait_workers $WAIT "len(w) == 3 and all(x['state'] == 'ready' for x in w)" "[x['pid'] for x in w if x['id'] == 3][0]") || return 1
            kill -KILL "$pid" || return 1
            wait_workers $WAIT "any(x['id'] == 3 and x['pid'] not in (None, $pid) and x['state'] == 'ready' for x in w)" &&
                [[ $(ctl scale 2) == ok* ]] && ready_n 2 ;;
        upgrade)
            local old reply
            old=$(master_pid)
            reply=$(ctl upgrade)
            [[ $reply == "ok upgraded: pid "* ]] || { echo "upgrade: $reply" >>"$DIR/events"; return 1; }
            new=${reply#ok upgraded: pid }; new=${new%% *}
            until_ok $WAIT eval '[[ ! -d /proc/$old ]] || [[ $(awk "/^State/ {print \$2}" /proc/$old/status 2>/dev/null) == Z ]]' &&
                until_ok $WAIT eval '[[ $(master_pid) == $new ]]' && ready_n 2 ;;
    esac
}

# run MODE BACKEND: one configuration, every phase; returns 1 on a failure.
run() {
    local mode=$1 backend=$2 failed=0
    DIR=$OUT/$mode-$backend
    mkdir -p "$DIR"
    CTL=$DIR/ctl.sock LOG=$DIR/log
    pick_port "$PORT_BASE"; PORT=$PICKED_PORT
    pick_port $((PORT + 1)); MPORT=$PICKED_PORT
    token="$$-$mode-$backend-$RANDOM"
    RINGMASTER_SOAK_RUN=$token "$RINGMASTER_BIN" --bind 127.0.0.1:$PORT --mode "$mode" --backend "$backend" \
        --workers 2 --control "$CTL" --metrics 127.0.0.1:$MPORT --shutdown-timeout "$SHUTDOWN_TIMEOUT" >"$DIR/stdout" 2>"$LOG" &
    SERVER=$!
    if ! until_ok 10 eval 'grep -q "listening on 127.0.0.1:$PORT " "$LOG"' || ! ready_n 2 10; then
        echo "  FAIL: the server did not start on 127.0.0.1:$PORT: $(tail -n 1 "$LOG")"
        return 1
    fi
    # Light traffic the whole time: 2 keep-alive and 2 closing connections,
    # a request every 20 ms each (a keep-alive one ends when an answer says
    # `Connection: close`, as a draining worker's does); failures (a killed
    # worker's connections) are counted, and each is written to the client's
    # file with its time (UTC, as the events file's) and error.
    python3 - "$PORT" >"$DIR/client" 2>&1 <<'EOF' &
import socket, sys, threading, time, signal
port = int(sys.argv[1]); ok = [0]; bad = [0]; stop = threading.Event()
def one(keep):
    s = None
    while not stop.is_set():
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"" if keep else b"Connection: close\r\n") + b"\r\n")
            data = b""
            while b"hello world" not in data:
                chunk = s.recv(4096)
                if not chunk: raise ConnectionError("closed")
                data += chunk
            ok[0] += 1
            if not keep or b"connection: close" in data.lower(): s.close(); s = None
        except OSError as e:
            bad[0] += 1
            # Stamped, to be set beside the events file's phases.
            now = time.time()
            print(time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d} failed: {e!r}", flush=True)
            if s is not None: s.close()
            s = None
        time.sleep(0.02)
signal.signal(signal.SIGTERM, lambda *_: stop.set())
ts = [threading.Thread(target=one, args=(k,), daemon=True) for k in (True, True, False, False)]
for t in ts: t.start()
while not stop.is_set(): stop.wait(0.5)
print(f"answered {ok[0]}, failed {bad[0]}")
EOF
    CLIENT=$!
    local phase done_ start base
    for phase in $PHASES; do
        echo "  phase $phase (up to $EVENTS events, $PHASE_SECONDS s):"
        printf '  %7s %8s %6s %8s %7s %6s %7s  %s\n' events master fds rss_kb threads procs zombies "worker fds"
        sample 0 | sed 's/^/  /'
        base=""
        start=$SECONDS done_=0
        while ((done_ < EVENTS)); do
            if ((SECONDS - start >= PHASE_SECONDS)); then
                echo "  (time is up: $done_ events)"
                if ((done_ % SAMPLE)); then
                    sample "$done_" >"$DIR/row"; sed 's/^/  /' "$DIR/row"; cat "$DIR/row" >>"$DIR/table"
                    read -r _ _ LAST_FDS _ _ LAST_PROCS LAST_Z _ <"$DIR/row"
                fi
                break
            fi
            if ! event "$phase" "$done_"; then
                echo "  FAIL: $phase event $((done_ + 1)) failed or did not settle in $WAIT s: $(tail -n 2 "$LOG" | tr '\n' ' ')"
                failed=1
                break
            fi
            done_=$((done_ + 1))
            echo "$(date +%T.%N | cut -c1-12) $phase $done_" >>"$DIR/events"
            if ((done_ % SAMPLE == 0 || done_ == EVENTS)); then
                sample "$done_" >"$DIR/row"; sed 's/^/  /' "$DIR/row"; cat "$DIR/row" >>"$DIR/table"
                read -r _ _ LAST_FDS _ _ LAST_PROCS LAST_Z _ <"$DIR/row"
                ((done_ == SAMPLE)) && base=$LAST_FDS
                ((LAST_Z == 0)) || { echo "  FAIL: $LAST_Z zombies"; failed=1; }
            fi
        done
        if [[ -n $base && $LAST_FDS != - ]] && ((LAST_FDS > base + SLACK)); then
            echo "  FAIL: $phase: the master's descriptors grew from $base to $LAST_FDS over $done_ events"
            failed=1
        fi
        # The processes left at the phase's end: a master and 2 workers
        # (a retiring one and an old master are given WAIT seconds to go).
        if ! until_ok $WAIT eval '(( $(ours | wc -l) == 3 ))'; then
            echo "  FAIL: $phase: $(ours | wc -l) processes left, not 3: $(ours | tr '\n' ' ')"
            failed=1
        fi
    done
    kill -TERM "$CLIENT" 2>/dev/null || true
    wait "$CLIENT" 2>/dev/null || true
    CLIENT=""
    echo "  client: $(tail -n 1 "$DIR/client")"
    # Each failure beside the event last begun before it (a killed worker's
    # connections fail in the kill phase, by design; any other is news).
    local at what
    while read -r at what; do
        echo "    $at $what, during $(awk -v t="$at" '$1 <= t { p = $2 " event " $3 } END { print p }' "$DIR/events")"
    done < <(grep ' failed: ' "$DIR/client" || true)
    grep -E " ERROR " "$LOG" | head -3 | sed 's/^/  FAIL: /' | grep . && failed=1
    kill -TERM "$(master_pid)" 2>/dev/null || true
    until_ok 15 eval '[[ -z $(ours) ]]' || { echo "  FAIL: still running 15 s after SIGTERM: $(ours | tr '\n' ' ')"; failed=1; }
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
    return $failed
}

status=0
for config in $CONFIGS; do
    echo "${config%%:*} on ${config#*:}:"
    if run "${config%%:*}" "${config#*:}"; then echo "  ok"; else status=1; fi
done
echo "logs: $OUT"
exit $status

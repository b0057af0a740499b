#!/usr/bin/env bash
# Checks that the load scripts leave nothing behind when they are stopped
# part-way (SIGTERM, as `timeout` or a supervisor sends) and fail loudly when
# their server cannot start, rather than measure whatever holds the port:
#
#   chaos.sh        SIGTERM 4 s into a 10 s soak: no server process of the
#                   soak, and no wrk on its port, 1 s after the script exits
#   master-cost.sh  SIGTERM 3 s into a run: nothing listens on its port and
#                   no wrk loads it 1 s after the script exits
#   upgrade-loss/run.py  its port held by another listener: exits non-zero
#                   saying so, instead of counting the refusals as requests
#                   lost to upgrades
#   accounting/drive.py  two runs of one scenario at once (two users of a
#                   machine) make two control sockets, not one that the second
#                   takes from the first
#   chaos.sh        its port held by another listener: exits 1 within 5 s
#                   saying the server did not start
#   compare.sh --quick  a smoke run writes its report under target/, and
#                   leaves the committed results/ as they were
#   soak.sh         SIGTERM 4 s into a run: no server process of the soak,
#                   and no client of its, 1 s after the script exits
#
#   scripts/check-scripts.sh            (RINGMASTER_BIN, else target/release/ringmaster;
#                                        ports: the first free ones from PORT_BASE, 26430)
# About 45 s. Exits 1 and names each check that failed.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=$(readlink -f "${RINGMASTER_BIN:-$HERE/../target/release/ringmaster}")
[[ -x $BIN ]] || { echo "check-scripts.sh: no ringmaster at $BIN (cargo build --release, or set RINGMASTER_BIN)" >&2; exit 2; }
PORT_BASE=${PORT_BASE:-26430}
# shellcheck source=lib/ports.sh
source "$HERE/lib/ports.sh"
free_port() {                    # free_port FROM -> the first free port >= FROM
    local p=$1
    while port_in_use "$p" || port_listened "$p"; do p=$((p + 1)); done
    echo "$p"
}
failed=0
fail() { echo "FAIL: $*"; failed=1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-scripts.XXXX")
trap 'rm -rf "$TMP"' EXIT

# start_then_term SECONDS CMD... : runs CMD in its own process group (so that
# only the script gets the signal, as from `kill PID`), SIGTERMs it after
# SECONDS, waits for it to exit; sets STARTED to its pid
start_then_term() {
    local after=$1; shift
    set -m
    "$@" >"$TMP/out" 2>&1 &
    STARTED=$!
    set +m
    sleep "$after"
    kill -TERM "$STARTED" 2>/dev/null
    wait "$STARTED" 2>/dev/null
    sleep 1
}

# wrk processes whose command line names PORT
wrk_on() { local p; for p in $(pgrep -x wrk); do tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q ":$1/" && echo "$p"; done; }

# 1. chaos.sh
port=$(free_port "$PORT_BASE")
start_then_term 4 env MODES=rr BACKENDS=uring SECONDS_EACH=10 PORT="$port" RINGMASTER_BIN="$BIN" "$HERE/chaos.sh"
left=""
for p in /proc/[0-9]*; do
    tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -q "^RINGMASTER_CHAOS_RUN=$STARTED-" && left+="${p#/proc/} "
done
[[ -z $left ]] || fail "chaos.sh: its server processes still run 1 s after it exited on SIGTERM: $left"
[[ -z $(wrk_on "$port") ]] || fail "chaos.sh: wrk still loads port $port after it exited: $(wrk_on "$port" | tr '\n' ' ')"
for p in $left $(wrk_on "$port"); do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
echo "chaos.sh SIGTERM: checked"

# 2. master-cost.sh
port=$(free_port "$((port + 1))")
start_then_term 3 env ROUNDS=1 DURATION=8 CONFIGS=rr:uring QUIET_WAIT=0 PORT_BASE="$port" "$HERE/master-cost.sh" "$BIN"
if port_listened "$port"; then
    fail "master-cost.sh: port $port still listened 1 s after it exited on SIGTERM: $(ss -ltnpH "sport = :$port" | grep -o 'pid=[0-9]*' | sort -u | tr '\n' ' ')"
    for p in $(ss -ltnpH "sport = :$port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do kill -TERM "$p" 2>/dev/null; done
fi
[[ -z $(wrk_on "$port") ]] || fail "master-cost.sh: wrk still loads port $port after it exited: $(wrk_on "$port" | tr '\n' ' ')"
for p in $(wrk_on "$port"); do kill -KILL "$p" 2>/dev/null; done
echo "master-cost.sh SIGTERM: checked"

# Another listener on PORT for SECONDS, its pid in $holder, once it listens.
hold_port() {
    python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(128); time.sleep(int(sys.argv[2]))' "$1" "$2" &
    holder=$!
    for _ in $(seq 50); do port_listened "$1" && break; sleep 0.1; done
}

# 3. upgrade-loss/run.py with its port taken
port=$(free_port "$((port + 1))")
hold_port "$port" 60
timeout 90 python3 "$HERE/upgrade-loss/run.py" "$BIN" rr uring "$port" 2 1 0.5 >"$TMP/run.json" 2>"$TMP/run.err"
rc=$?
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
if ((rc == 0)) || ! grep -q '"error"' "$TMP/run.json"; then
    fail "upgrade-loss/run.py: exit $rc with its port held by another listener: $(head -c 300 "$TMP/run.json")"
fi
# its directory (kept, with the log, when a run goes wrong)
dir=$(python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline()).get("dir", ""))' "$TMP/run.json" 2>/dev/null)
[[ $dir == /tmp/rm-upg-* ]] && rm -rf "$dir"
echo "upgrade-loss/run.py, port taken: checked"

# 4. accounting/drive.py twice at once, one NAME, OUT unset
unset OUT
touch "$TMP/stamp"
port=$(free_port "$((port + 1))")
port2=$(free_port "$((port + 1))")
RINGMASTER_BIN=$BIN python3 "$HERE/accounting/drive.py" check-scripts "$port" 6 '--mode rr --workers 2' 'churn=2' '' >"$TMP/d1" 2>&1 &
d1=$!
for _ in $(seq 50); do port_in_use "$port" && break; sleep 0.1; done
sleep 1
RINGMASTER_BIN=$BIN python3 "$HERE/accounting/drive.py" check-scripts "$port2" 3 '--mode rr --workers 2' 'churn=2' '' >"$TMP/d2" 2>&1 &
d2=$!
for _ in $(seq 50); do port_in_use "$port2" && break; sleep 0.1; done
sleep 1
# each run's control socket, made since this check began
n=$(find /tmp -maxdepth 3 -path "/tmp/ringmaster-accounting*/check-scripts/ctl.sock" -newer "$TMP/stamp" 2>/dev/null | wc -l)
wait "$d1" "$d2"
((n == 2)) || fail "accounting/drive.py: two runs of one scenario at once share one control socket ($n found): the first run's ctl commands go to the second's master"
grep -h '  logs: ' "$TMP/d1" "$TMP/d2" | awk '{print $2}' | while read -r dir; do rm -rf "${dir%/check-scripts}"; done
rm -rf /tmp/ringmaster-accounting/check-scripts     # where drive.py put it before it made a directory of its own
echo "accounting/drive.py twice at once: checked"

# 5. chaos.sh with its port held by another listener: fails at once, saying so
port=$(free_port "$((port2 + 1))")
hold_port "$port" 30
SECONDS=0
MODES=rr BACKENDS=uring SECONDS_EACH=6 PORT="$port" RINGMASTER_BIN="$BIN" timeout 25 "$HERE/chaos.sh" >"$TMP/chaos-busy" 2>&1
rc=$?
took=$SECONDS
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
if ((rc != 1 || took > 5)) || ! grep -q 'did not start' "$TMP/chaos-busy"; then
    fail "chaos.sh: its port held by another listener: exit $rc after ${took} s: $(grep FAIL "$TMP/chaos-busy" | head -2 | tr '\n' ' ')"
fi
rm -rf "$(awk '/^logs: / {print $2}' "$TMP/chaos-busy")"
echo "chaos.sh, port taken: checked"

# 6. compare.sh --quick: its report goes under target/, results/ stays as committed
results_sum() { find "$HERE/../results" -maxdepth 1 -type f -exec md5sum {} + 2>/dev/null | sort; }
before=$(results_sum)
touch "$TMP/stamp"
port=$(free_port "$((port + 1))")
SERVERS=rm-rr SCENARIOS=keepalive DURATION=1s WARMUP=1s RINGMASTER_BIN="$BIN" NO_INSTALL=1 PORT_BASE="$port" \
    timeout 60 "$HERE/compare.sh" --quick >"$TMP/quick" 2>&1
rc=$?
quick_md=$HERE/../target/compare-quick/compare.md
if ((rc != 0)) || [[ ! $quick_md -nt $TMP/stamp ]]; then
    fail "compare.sh --quick: exit $rc, no new report at target/compare-quick: $(tail -2 "$TMP/quick" | tr '\n' ' ')"
fi
[[ $(results_sum) == "$before" ]] || fail "compare.sh --quick: it changed the committed results/"
echo "compare.sh --quick: checked"

# 7. soak.sh
port=$(free_port "$((port + 1))")
start_then_term 4 env CONFIGS=rr:uring EVENTS=50 PORT_BASE="$port" RINGMASTER_BIN="$BIN" "$HERE/soak.sh"
left=""
for p in /proc/[0-9]*; do
    tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -q "^RINGMASTER_SOAK_RUN=$STARTED-" && left+="${p#/proc/} "
    # its traffic and reset clients: `python3 - PORT ...`, PORT the first free one from $port on
    tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qE "^python3 - ($port|$((port + 1))|$((port + 2))) " && left+="${p#/proc/} "
done
[[ -z $left ]] || fail "soak.sh: its server processes or clients still run 1 s after it exited on SIGTERM: $left"
for p in $left; do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
rm -rf "$(grep -o '/tmp/ringmaster-soak\.[A-Za-z0-9]*' "$TMP/out" | head -1)"
echo "soak.sh SIGTERM: checked"

((failed)) || echo "OK: nothing left behind, a server that cannot start is said so, two runs at once keep apart, a smoke run leaves results/ alone"
exit "$failed"

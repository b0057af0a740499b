#!/usr/bin/env bash
# Check that scripts/pipeline.lua really pipelines and that wrk counts every response.
#
#   scripts/check-pipeline.sh        (needs wrk and nginx: run scripts/compare.sh once, it installs them)
#
# Starts a private nginx on 127.0.0.1 with an access log, then runs wrk with one connection
# (so the round trip, not the CPU, limits the plain run): first plain keep-alive, then
# pipelined. For each run it compares wrk's request count with the number of requests
# nginx logged. They must agree to within the requests still in flight when wrk stops
# (at most DEPTH per connection): that proves wrk counts each of the DEPTH responses of
# a write, not one per write. It also prints pipelined/plain req/s: well above 1 shows the
# requests really travel DEPTH to a write (the ideal DEPTH× is reached only when the round
# trip dominates nginx's per-request CPU cost; on a small shared machine expect 4-10×).
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPTH=${PIPELINE_DEPTH:-16}
PORT=${PORT:-18990}
DUR=${DURATION:-2s}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || { echo "check-pipeline.sh: nginx not found (scripts/compare.sh installs it)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "check-pipeline.sh: wrk not found (scripts/compare.sh installs it)" >&2; exit 1; }
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { echo "check-pipeline.sh: port $PORT busy (set PORT)" >&2; exit 1; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/check-pipeline.XXXX")
PID=""
cleanup() {
    if [[ -n $PID ]]; then
        kill -TERM "$PID" 2>/dev/null || true
        sleep 0.3
        kill -KILL -- "-$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$DIR"/{client_body,proxy,fastcgi,uwsgi,scgi}
sed -e "s|@WORKERS@|1|g" -e "s|@PORT@|$PORT|g" -e "s|@DIR@|$DIR|g" -e "s|@AFFINITY@||g" \
    -e "s|access_log off;|access_log $DIR/access.log;|" \
    "$SCRIPT_DIR/peers/nginx.conf.template" >"$DIR/nginx.conf"
setsid "$NGINX" -p "$DIR" -e "$DIR/error.log" -c "$DIR/nginx.conf" </dev/null >"$DIR/out" 2>&1 &
PID=$!
for ((i = 0; i < 100; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

fail=0
run() {     # run LABEL wrk-args... ; prints and sets RPS
    : >"$DIR/access.log"
    kill -USR1 "$PID"               # reopen the (truncated) log
    sleep 0.3
    local out n logged
    out=$(wrk -t1 -c1 -d"$DUR" "$@" "http://127.0.0.1:$PORT/" $([[ ${1:-} == -s ]] && echo "$DEPTH"))
    sleep 0.5                       # let nginx write the last lines
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    RPS=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    logged=$(wc -l <"$DIR/access.log")
    local diff=$((logged - n))
    printf '%-10s wrk counted %8d responses, nginx logged %8d requests (diff %d), %10.0f req/s\n' \
        "$LABEL" "$n" "$logged" "$diff" "$RPS"
    if ((diff < 0 || diff > DEPTH)); then
        echo "  MISMATCH: wrk's count is not within one batch of nginx's" >&2
        fail=1
    fi
}
LABEL=plain run
PLAIN=$RPS
LABEL="depth $DEPTH" run -s "$SCRIPT_DIR/pipeline.lua"
PIPE=$RPS
ratio=$(awk -v a="$PIPE" -v b="$PLAIN" 'BEGIN { printf "%.1f", a / b }')
echo "pipelined / plain = ${ratio}x (1 connection; ideal ${DEPTH}x when the round trip dominates)"
if awk -v r="$ratio" 'BEGIN { exit !(r < 1.5) }'; then
    echo "  FAIL: pipelining gives less than 1.5x: the requests do not seem to be pipelined" >&2
    fail=1
fi
((fail == 0)) && echo "OK: wrk counts every pipelined response"
exit "$fail"

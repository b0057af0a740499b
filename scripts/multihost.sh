#!/usr/bin/env bash
# Several ringmaster hosts behind the kernel's own L4 balancing, in network
# namespaces this script makes and always removes: a client, a router that
# holds a service IP and DNATs it with nftables (`numgen random mod N`, or
# `jhash` on the 4-tuple) to N hosts, and a health loop that takes a host out
# of the map when its health path answers 503 or nothing and puts it back at
# 200 (what kube-proxy's endpoint updates do); a round in which no host
# answers at all keeps the map (a stall, said as such).
#
#   scripts/multihost.sh              # up, every scenario under wrk, a summary, down
#   scripts/multihost.sh serve        # up, then commands on stdin (tests/suite/multihost.rs)
#   scripts/multihost.sh down         # remove what a killed run left behind
#   scripts/multihost.sh --help
set -euo pipefail
export LC_ALL=C

SELF=$(readlink -f "${BASH_SOURCE[0]}")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)

# The addresses: documentation ranges only (RFC 5737), and only inside the
# namespaces made here. Nothing is linked to the namespace this script runs in.
readonly CLIENT_NET=192.0.2     # client <-> router: 192.0.2.2/24, router 192.0.2.1
readonly SERVICE_IP=203.0.113.10  # the virtual service IP, on the router's loopback
readonly HOST_NET=198.51.100    # router <-> host k: a /30 each, 198.51.100.(4k-3) and .(4k-2)
readonly HEALTH_PATH=/healthz
readonly NFT_TABLE=ringmaster   # in the router's namespace: its own nftables
readonly MAX_HOSTS=16

usage() {
    cat <<EOF
usage: scripts/multihost.sh [OPTIONS] [run|serve|down|install]

Runs N ringmaster hosts (each: 2 workers, --health-path $HEALTH_PATH,
--drain-delay, a --control socket) in network namespaces behind a router
namespace that DNATs the service IP $SERVICE_IP:80 to them with an nftables
map, and a health loop that keeps the map to the hosts answering 200.

  client ns ── router ns (service IP on lo; nft dnat; health loop) ─┬─ host1 ns: ringmaster
  192.0.2.2     192.0.2.1 / 198.51.100.(4k-3)                      ├─ host2 ns: ringmaster
                                                                   └─ ...  198.51.100.(4k-2):PORT

Commands:
  run       (default) up; scenarios under wrk from the client namespace: spread
            (random, jhash), graceful removal (SIGTERM with the drain delay),
            hard failure (SIGKILL of one host), rolling upgrade (ctl upgrade of
            every host in turn); a summary; down
  serve     up; then one command per line on stdin, each answered by one line
            'ok COMMAND ...' or 'error COMMAND: why' on stdout, beside the
            health loop's events ('host K out: ...', 'host K in: ...',
            'map (MODE): ...', 'stall: ...' when no probe of a round answers
            and the map is kept, 'stall over: ...', each ending '; round N',
            the loop's round that made it). Ends at 'quit' or the end of stdin.
              status K    the host's stats line (ringmaster ctl status)
              stop K      SIGTERM to its master (lame duck for the drain delay, then drain)
              wait K      until its master has exited
              kill K      SIGKILL to every process in its namespace (master and workers);
                          answers once they are gone and its port no longer listens
              start K     start ringmaster there again (answers once it listens)
              upgrade K   a new binary at its path by rename, then ctl upgrade
                          (answers once the old master has exited)
              reload K    ctl reload (answers once every worker is new and ready)
              hash MODE   random | jhash (answers once the map uses it)
              map         the mode and the hosts in the map
              quit
  down      remove the namespaces, processes and files of --prefix (what a
            killed run left; every run does this at its start too)
  install   install what is missing (iproute2, nftables, curl, wrk) with apt-get

Options (defaults in brackets):
  --hosts N             ringmaster hosts [3], at most $MAX_HOSTS
  --prefix NAME         namespaces are NAME-client, NAME-router, NAME-hostK [rmh]
  --hash MODE           random (numgen random mod N) | jhash (on the 4-tuple) [random]
  --health-interval S   seconds between health rounds [0.5]
  --probe-timeout S     a probe without an answer in S seconds is a failure [1]
  --drain-delay S       each host's --drain-delay [3]
  --port P              the hosts' port (the service's is 80) [8080]
  --bin PATH            the ringmaster binary [\$RINGMASTER_BIN, else target/release/ringmaster,
                        built with cargo build --release if missing]
  --upgrade-bin PATH    the binary an upgrade puts in place [the same as --bin]
  --duration S          run: seconds of wrk load per scenario [6]
  --conns N             run: wrk connections (Connection: close) [32]
  --roll upgrade|reload run: how the rolling scenario renews each host [upgrade]
  -h, --help            this text

Environment: RINGMASTER_ARGS (more arguments for every host's ringmaster,
e.g. '--backend epoll'), NO_INSTALL=1 (never apt-get: fail if a tool is
missing), TMPDIR (state under \$TMPDIR/ringmaster-multihost/PREFIX).

Needs root (network namespaces, veth, nftables). Every namespace, veth, nft
table and process of the run is removed on exit, on error and on SIGINT,
SIGTERM or SIGHUP; a run of the same prefix left by a killed script is
removed at start (a live one is refused).
EOF
}

# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------

HOSTS=3
PREFIX=rmh
HASH=random
INTERVAL=0.5
PROBE_TIMEOUT=1
DRAIN_DELAY=3
PORT=8080
BIN=${RINGMASTER_BIN:-}
UPGRADE_BIN=
DURATION=6
CONNS=32
ROLL=upgrade
COMMAND=run
NO_INSTALL=${NO_INSTALL:-0}

die() { echo "multihost.sh: $*" >&2; exit 1; }
say() { echo "multihost.sh: $*" >&2; }
is_seconds() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]] && [[ ! $1 =~ ^0+(\.0+)?$ ]]; }

need_value() { [[ $# -ge 2 ]] || { echo "multihost.sh: $1 needs a value (try --help)" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --hosts) need_value "$@"; HOSTS=$2; shift 2 ;;
        --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
        --hash) need_value "$@"; HASH=$2; shift 2 ;;
        --health-interval) need_value "$@"; INTERVAL=$2; shift 2 ;;
        --probe-timeout) need_value "$@"; PROBE_TIMEOUT=$2; shift 2 ;;
        --drain-delay) need_value "$@"; DRAIN_DELAY=$2; shift 2 ;;
        --port) need_value "$@"; PORT=$2; shift 2 ;;
        --bin) need_value "$@"; BIN=$2; shift 2 ;;
        --upgrade-bin) need_value "$@"; UPGRADE_BIN=$2; shift 2 ;;
        --duration) need_value "$@"; DURATION=$2; shift 2 ;;
        --conns) need_value "$@"; CONNS=$2; shift 2 ;;
        --roll) need_value "$@"; ROLL=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        run|serve|down|install|__health-loop) COMMAND=$1; shift ;;
        *) echo "multihost.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

bad_usage() { echo "multihost.sh: $* (try --help)" >&2; exit 2; }
in_range() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= $2 && $1 <= $3)); }
in_range "$HOSTS" 1 "$MAX_HOSTS" || bad_usage "--hosts must be 1 to $MAX_HOSTS"
[[ $PREFIX =~ ^[a-z][a-z0-9]{0,19}$ ]] || bad_usage "--prefix must be a lowercase letter and up to 19 letters or digits"
[[ $HASH == random || $HASH == jhash ]] || bad_usage "--hash must be random or jhash"
[[ $ROLL == upgrade || $ROLL == reload ]] || bad_usage "--roll must be upgrade or reload"
is_seconds "$INTERVAL" || bad_usage "--health-interval must be a positive number of seconds"
is_seconds "$PROBE_TIMEOUT" || bad_usage "--probe-timeout must be a positive number of seconds"
is_seconds "$DRAIN_DELAY" || bad_usage "--drain-delay must be a positive number of seconds"
is_seconds "$DURATION" || bad_usage "--duration must be a positive number of seconds"
in_range "$PORT" 1 65535 || bad_usage "--port must be 1 to 65535"
in_range "$CONNS" 1 100000 || bad_usage "--conns must be 1 to 100000"
read -r -a EXTRA_ARGS <<<"${RINGMASTER_ARGS:-}"

readonly STATE_ROOT="${TMPDIR:-/tmp}/ringmaster-multihost"
readonly STATE="$STATE_ROOT/$PREFIX"
readonly NS_CLIENT="$PREFIX-client" NS_ROUTER="$PREFIX-router"
ns_host() { echo "$PREFIX-host$1"; }
host_addr() { echo "$HOST_NET.$((4 * $1 - 2))"; }
host_gateway() { echo "$HOST_NET.$((4 * $1 - 3))"; }

# Microseconds since the epoch, without a fork.
now_us() { local t=${EPOCHREALTIME/./}; echo "$((10#$t))"; }
# Seconds (decimal) as microseconds.
to_us() {
    local whole=${1%%.*} frac=
    [[ $1 == *.* ]] && frac=${1#*.}
    frac="${frac}000000"
    echo $((10#${whole:-0} * 1000000 + 10#${frac:0:6}))
}

# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------

# Installs the Debian packages of the missing commands: install_missing.
# shellcheck source=lib/tools.sh
source "$(dirname "$SELF")/lib/tools.sh"

need_root() {
    [[ $(id -u) == 0 ]] || die "needs root (network namespaces, veth pairs, nftables)"
}

# ---------------------------------------------------------------------------
# Down: everything of a prefix, also what a killed run left
# ---------------------------------------------------------------------------

# The namespaces of prefix $1 that exist.
namespaces_of() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$1-(client|router|host[0-9]+)\$" || true
}

# Is pid $1 a running instance of this script (not this very process)?
is_live_run() {
    [[ $1 =~ ^[0-9]+$ && $1 != "$$" ]] || return 1
    [[ -r /proc/$1/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$1/cmdline" | grep -q 'multihost\.sh'
}

# Gone: no such process, or a zombie.
gone() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    [[ ${stat##*) } == Z* ]]
}

# Waits until every pid in "$@" is gone, at most 5 s.
wait_all_gone() {
    local deadline=$(($(now_us) + 5000000)) pid
    for pid in "$@"; do
        while ! gone "$pid" && (($(now_us) < deadline)); do sleep 0.02; done
    done
}

# Removes every process, namespace (its veths and nft table go with it) and
# file of prefix $1. Processes are found by the namespace they run in: only
# what this script (or an earlier run of it) started is there.
teardown_prefix() {
    local prefix=$1 ns pid
    local -a pids=() spaces=()
    mapfile -t spaces < <(namespaces_of "$prefix")
    for ns in "${spaces[@]}"; do
        while read -r pid; do [[ -n $pid ]] && pids+=("$pid"); done < <(ip netns pids "$ns" 2>/dev/null || true)
    done
    if ((${#pids[@]})); then
        kill -KILL "${pids[@]}" 2>/dev/null || true
        wait_all_gone "${pids[@]}"
    fi
    for ns in "${spaces[@]}"; do ip netns delete "$ns" 2>/dev/null || true; done
    rm -rf "${STATE_ROOT:?}/$prefix"
}

# At start: refuse a prefix a live run holds; remove what dead runs left,
# of this prefix and of any other whose owner is gone.
reap_stale() {
    local dir owner prefix
    if [[ -d $STATE_ROOT ]]; then
        for dir in "$STATE_ROOT"/*/; do
            [[ -d $dir ]] || continue
            prefix=$(basename "$dir")
            owner=$(cat "$dir/owner" 2>/dev/null || true)
            if is_live_run "$owner"; then
                [[ $prefix == "$PREFIX" ]] && die "prefix $PREFIX is in use by a live run (pid $owner)"
                continue
            fi
            [[ $prefix =~ ^[a-z][a-z0-9]{0,19}$ ]] || continue
            if [[ -n $(namespaces_of "$prefix") || $prefix == "$PREFIX" ]]; then
                say "removing what a run of prefix $prefix left (owner ${owner:-unknown} is gone)"
            fi
            teardown_prefix "$prefix"
        done
    fi
    if [[ -n $(namespaces_of "$PREFIX") ]]; then
        say "removing namespaces of prefix $PREFIX left by an earlier run"
        teardown_prefix "$PREFIX"
    fi
}

HEALTH_PID=
TORN_DOWN=0
teardown() {
    ((TORN_DOWN)) && return 0
    TORN_DOWN=1
    # Ended below: bash need not report each job as killed.
    local -a jobs_left
    mapfile -t jobs_left < <(jobs -p)
    disown -a 2>/dev/null || true
    [[ -n $HEALTH_PID ]] && kill -KILL "$HEALTH_PID" 2>/dev/null
    # This shell's jobs (each is in one of the namespaces, found again below).
    local pid
    for pid in "${jobs_left[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    teardown_prefix "$PREFIX"
    say "removed namespaces, processes and state of prefix $PREFIX"
}

on_exit() {
    local rc=$?
    trap - EXIT INT TERM HUP
    teardown || true
    exit "$rc"
}

# ---------------------------------------------------------------------------
# Up: namespaces, links, addresses, routes, nftables
# ---------------------------------------------------------------------------

in_ns() { ip netns exec "$@"; }

make_topology() {
    local k ns
    ip netns add "$NS_CLIENT"
    ip netns add "$NS_ROUTER"
    for ((k = 1; k <= HOSTS; k++)); do ip netns add "$(ns_host "$k")"; done

    # Each veth pair is made with its ends already in their namespaces.
    ip link add eth0 netns "$NS_CLIENT" type veth peer name client netns "$NS_ROUTER"
    for ((k = 1; k <= HOSTS; k++)); do
        ip link add eth0 netns "$(ns_host "$k")" type veth peer name "host$k" netns "$NS_ROUTER"
    done

    # 127.0.0.1 in a namespace is that namespace's own loopback: up in each,
    # though nothing here talks to it (the control sockets are paths).
    for ns in "$NS_CLIENT" "$NS_ROUTER" $(for ((k = 1; k <= HOSTS; k++)); do ns_host "$k"; done); do
        ip -n "$ns" link set lo up
        # Every path is symmetric (the router is each side's only gateway and
        # un-NATs the replies itself): strict reverse-path filtering passes.
        in_ns "$ns" sysctl -q -w net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1
    done

    ip -n "$NS_CLIENT" addr add "$CLIENT_NET.2/24" dev eth0
    ip -n "$NS_CLIENT" link set eth0 up
    ip -n "$NS_CLIENT" route add default via "$CLIENT_NET.1"

    ip -n "$NS_ROUTER" addr add "$CLIENT_NET.1/24" dev client
    ip -n "$NS_ROUTER" link set client up
    # The service IP lives on the router. With hosts in the map, its DNAT
    # (prerouting, before routing) sends a connection on; with none, the
    # packet is the router's own and its kernel refuses it (RST), as
    # kube-proxy rejects a Service without endpoints.
    ip -n "$NS_ROUTER" addr add "$SERVICE_IP/32" dev lo
    in_ns "$NS_ROUTER" sysctl -q -w net.ipv4.ip_forward=1
    for ((k = 1; k <= HOSTS; k++)); do
        ns=$(ns_host "$k")
        ip -n "$NS_ROUTER" addr add "$(host_gateway "$k")/30" dev "host$k"
        ip -n "$NS_ROUTER" link set "host$k" up
        ip -n "$ns" addr add "$(host_addr "$k")/30" dev eth0
        ip -n "$ns" link set eth0 up
        # Replies go back through the router, whose conntrack entry turns
        # the host's source address back into the service IP.
        ip -n "$ns" route add default via "$(host_gateway "$k")"
    done

    # The service: DNAT in prerouting (conntrack keeps each connection on the
    # host its first packet was sent to; the map only decides new ones). The
    # chain `service` holds one rule, rewritten as a whole by the health loop.
    in_ns "$NS_ROUTER" nft -f - <<EOF
table ip $NFT_TABLE {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr $SERVICE_IP tcp dport 80 goto service
    }
    chain service {
    }
}
EOF
    # A connection that ends by a reset alone (a host that died with it in
    # its listen queue, or unread) leaves its conntrack entry in CLOSE, 10 s
    # by default, and a new SYN on the same tuple does not replace it
    # (conntrack decides again only for a tuple the client reset or closed
    # itself): the client's next connection from that port, which its
    # kernel hands out again within seconds under churn, would follow the
    # entry to the dead host and be refused, though the map dropped it.
    # Here such an entry expires at once. (The sysctl exists once the nat
    # chain above has loaded conntrack.)
    in_ns "$NS_ROUTER" sysctl -q -w net.netfilter.nf_conntrack_tcp_timeout_close=0
}

# ---------------------------------------------------------------------------
# The map and the health loop (these run inside the router's namespace)
# ---------------------------------------------------------------------------

# Rewrites the service chain in one nft transaction: `dnat` to the hosts in
# "$@" keyed by numgen or jhash mod their number; none: an empty chain.
apply_map() {
    local mode=$1; shift
    local n=$# i=0 k elements=""
    {
        echo "flush chain ip $NFT_TABLE service"
        if ((n > 0)); then
            for k in "$@"; do
                elements+="${elements:+, }$i : $(host_addr "$k") . $PORT"
                i=$((i + 1))
            done
            local key
            if [[ $mode == jhash ]]; then
                key="jhash ip saddr . tcp sport . ip daddr . tcp dport mod $n seed 0x726d6873"
            else
                key="numgen random mod $n"
            fi
            echo "add rule ip $NFT_TABLE service meta l4proto tcp dnat ip to $key map { $elements }"
        fi
    } | nft -f -
}

# One of the health loop's events: on stdout, and with its time in
# $STATE/events.
health_event() {
    echo "$1"
    echo "$EPOCHREALTIME $1" >>"$STATE/events"
}

# Probes every host's health path each --health-interval (one curl for all,
# in parallel, each probe bounded by --probe-timeout); a host is in the map
# while it answers 200; a round in which none answers at all keeps the map.
# Prints 'host K out: ...' / 'host K in: ...' / 'map (MODE): ...' once the
# map says so, and 'stall: ...' / 'stall over: ...', and appends them with
# their times to $STATE/events. Forks one process a round (curl): the loop keeps its
# pace on busy cores.
health_loop() {
    local parent=${MULTIHOST_PARENT:?}
    local interval_us k url code exit_code said mode applied="" start left line round=0 silent stalled_at=0
    interval_us=$(to_us "$INTERVAL")
    # inside[k]: host k is in the map as last applied (a change is said
    # once nft has taken it: a refused transaction is tried again, and said,
    # next round).
    local -a inside=() want=() members=() messages=() urls=() outputs=()
    local -A host_of=() code_of=() exit_of=()
    for ((k = 1; k <= HOSTS; k++)); do
        inside[k]=0
        url="http://$(host_addr "$k"):$PORT$HEALTH_PATH"
        urls+=("$url")
        outputs+=(-o /dev/null)
        host_of[$url]=$k
    done
    # Sleeping is a read that times out on a FIFO nobody writes: no fork.
    local tick="$STATE/tick.fifo" tick_fd
    mkfifo "$tick"
    exec {tick_fd}<>"$tick"
    while kill -0 "$parent" 2>/dev/null; do
        start=${EPOCHREALTIME/./}
        # Numbered, so a test can tell which round saw a change without
        # timing it (a builtin write: no fork).
        round=$((round + 1))
        echo "$round" >"$STATE/round"
        curl -s --no-progress-meter --parallel --parallel-immediate --max-time "$PROBE_TIMEOUT" \
            -w '%{url} %{http_code} %{exitcode}\n' "${outputs[@]}" "${urls[@]}" >"$STATE/probes" 2>/dev/null || true
        code_of=()
        exit_of=()
        while read -r url code exit_code; do
            k=${host_of[$url]:-}
            [[ -n $k ]] && code_of[$k]=$code exit_of[$k]=$exit_code
        done <"$STATE/probes"
        messages=()
        members=()
        # A round in which no probe got an answer (each timed out, or curl
        # gave no result at all) says nothing of the hosts: the loop, or the
        # whole machine, stood still past --probe-timeout. Taking every host
        # out then emptied the map (every client refused) on no evidence, and
        # put them all back a round later. The map is kept as it was instead,
        # and the stall said as it begins and as it ends.
        silent=0
        for ((k = 1; k <= HOSTS; k++)); do
            [[ ${code_of[$k]:-000} == 000 && ${exit_of[$k]:-28} == 28 ]] && silent=$((silent + 1))
        done
        if ((silent == HOSTS)); then
            for ((k = 1; k <= HOSTS; k++)); do
                want[k]=${inside[k]}
                ((inside[k])) && members+=("$k")
            done
            if ((stalled_at == 0)); then
                stalled_at=$round
                health_event "stall: no probe answered within ${PROBE_TIMEOUT} s; the map is kept (${members[*]:-none}); round $round"
            fi
        else
            if ((stalled_at)); then
                health_event "stall over: probes answered again after $((round - stalled_at)) silent round(s); round $round"
                stalled_at=0
            fi
            for ((k = 1; k <= HOSTS; k++)); do
                code=${code_of[$k]:-000} exit_code=${exit_of[$k]:-'?'}
                if [[ $code == 200 ]]; then
                    ((inside[k])) || messages+=("host $k in: health answered 200")
                    want[k]=1
                    members+=("$k")
                else
                    case "$code/$exit_code" in
                        000/7) said="refused the connection" ;;
                        000/28) said="no answer within ${PROBE_TIMEOUT} s" ;;
                        000/52|000/56) said="closed the connection without an answer" ;;
                        000/*) said="failed (curl exit code $exit_code)" ;;
                        *) said="answered $code" ;;
                    esac
                    ((inside[k])) && messages+=("host $k out: health $said")
                    want[k]=0
                fi
            done
        fi
        mode=random
        read -r mode <"$STATE/hash" || true
        if [[ "$mode ${members[*]}" != "$applied" ]]; then
            if apply_map "$mode" "${members[@]}"; then
                applied="$mode ${members[*]}"
                for ((k = 1; k <= HOSTS; k++)); do inside[k]=${want[k]}; done
                echo "$applied" >"$STATE/map.new" && mv -f "$STATE/map.new" "$STATE/map"
                [[ ${#messages[@]} == 0 ]] && messages+=("map changed")
                for line in "${messages[@]}"; do
                    health_event "$line; map ($mode): ${members[*]:-none}; round $round"
                done
            else
                echo "health loop: nft refused the map for ${members[*]:-none}" >&2
            fi
        fi
        left=$((10#$start + interval_us - 10#${EPOCHREALTIME/./}))
        if ((left > 0)); then
            local micros="00000$((left % 1000000))"
            read -r -t "$((left / 1000000)).${micros: -6}" -u "$tick_fd" _ || true
        fi
    done
}

# ---------------------------------------------------------------------------
# Hosts
# ---------------------------------------------------------------------------

host_dir() { echo "$STATE/host$1"; }
host_pid() { cat "$(host_dir "$1")/pid" 2>/dev/null || true; }
valid_host() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= HOSTS)); }

# Copies a binary where a process may execute it (cp in its own process: no
# fd of ours is left open on it).
copy_exec() { cp -- "$1" "$2" && chmod 0755 "$2"; }

# Reaps pid $1 if it is a child of this shell; its exit status, or '?'.
reap() {
    local rc=0
    wait "$1" 2>/dev/null || rc=$?
    ((rc == 127)) && echo '?' || echo "$rc"
}

# Waits (at most $3 s) for a line matching $2 in file $1 past its first $4
# lines, while pid $5 runs.
wait_for_line() {
    local file=$1 pattern=$2 limit_us; limit_us=$(to_us "$3")
    local skip=$4 pid=$5 deadline=$(($(now_us) + limit_us))
    while (($(now_us) < deadline)); do
        tail -n +"$((skip + 1))" "$file" 2>/dev/null | grep -q -- "$pattern" && return 0
        gone "$pid" && return 1
        sleep 0.05
    done
    return 1
}

# Starts ringmaster in host $1's namespace; returns once it listens.
host_start() {
    local k=$1 dir pid from
    dir=$(host_dir "$k")
    pid=$(host_pid "$k")
    if [[ -n $pid ]] && ! gone "$pid"; then
        echo "error start $k: already running (pid $pid)"
        return 1
    fi
    mkdir -p "$dir"
    if [[ ! -x $dir/ringmaster ]] && ! copy_exec "$BIN" "$dir/ringmaster"; then
        echo "error start $k: could not copy $BIN to $dir"
        return 1
    fi
    touch "$dir/log"
    from=$(wc -l <"$dir/log")
    ip netns exec "$(ns_host "$k")" "$dir/ringmaster" \
        --bind "$(host_addr "$k"):$PORT" --workers 2 \
        --health-path "$HEALTH_PATH" --drain-delay "$DRAIN_DELAY" \
        --control "$dir/ctl.sock" --body "hello from host $k\\n" \
        "${EXTRA_ARGS[@]}" </dev/null >>"$dir/stdout" 2>>"$dir/log" &
    pid=$!
    echo "$pid" >"$dir/pid"
    if ! wait_for_line "$dir/log" 'listening on ' 15 "$from" "$pid"; then
        echo "error start $k: ringmaster (pid $pid) did not listen within 15 s; its log: $(tail -n 3 "$dir/log" | tr '\n' '|')"
        return 1
    fi
    echo "ok start $k: pid $pid listens on $(host_addr "$k"):$PORT"
}

running_pid() {
    local pid; pid=$(host_pid "$1")
    [[ -n $pid ]] && ! gone "$pid" && echo "$pid"
}

host_stop() {
    local k=$1 pid
    pid=$(running_pid "$k") || { echo "error stop $k: not running"; return 1; }
    kill -TERM "$pid"
    echo "ok stop $k: SIGTERM to pid $pid"
}

host_wait() {
    local k=$1 pid deadline
    pid=$(host_pid "$k")
    [[ -n $pid ]] || { echo "error wait $k: never started"; return 1; }
    deadline=$(($(now_us) + $(to_us "$DRAIN_DELAY") + 40000000))
    while ! gone "$pid"; do
        (($(now_us) < deadline)) || { echo "error wait $k: pid $pid still runs"; return 1; }
        sleep 0.05
    done
    echo "ok wait $k: pid $pid exited (status $(reap "$pid"))"
}

host_kill() {
    local k=$1 pid
    local -a pids=()
    while read -r pid; do [[ -n $pid ]] && pids+=("$pid"); done < <(ip netns pids "$(ns_host "$k")")
    ((${#pids[@]})) || { echo "error kill $k: nothing runs there"; return 1; }
    # Reaped without a word from bash about a killed job.
    pid=$(host_pid "$k")
    [[ -n $pid ]] && disown "$pid" 2>/dev/null
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait_all_gone "${pids[@]}"
    # Dead is also its listener closed: an io_uring ring is torn down after
    # its process, by a kernel worker, and an accept or poll still armed on
    # the listener keeps it open (taking handshakes it then resets) for a few
    # ms more, seen here in 3 of 18 kills of io_uring servers, none of epoll.
    local deadline=$(($(now_us) + 5000000))
    while [[ -n $(in_ns "$(ns_host "$k")" ss -Hltn "sport = :$PORT") ]]; do
        (($(now_us) < deadline)) || { echo "error kill $k: still listening on :$PORT"; return 1; }
        sleep 0.005
    done
    rm -f "$(host_dir "$k")/ctl.sock"
    # The health loop's round now (it rewrites the file each round: read
    # again if the read fell between its truncation and its write).
    local round="" try
    for ((try = 0; try < 100 && ${#round} == 0; try++)); do
        read -r round <"$STATE/round" 2>/dev/null || round=""
    done
    echo "ok kill $k: SIGKILL to pids ${pids[*]}; health round $round"
}

ctl() { "$BIN" ctl "$(host_dir "$1")/ctl.sock" "${@:2}"; }

host_status() {
    local k=$1 line
    line=$(ctl "$k" status 2>&1) || { echo "error status $k: $line"; return 1; }
    echo "ok status $k $line"
}

# A new file renamed over the host's binary, as a package upgrade does, then
# `ctl upgrade`; answers once the old master has drained and exited.
host_upgrade() {
    local k=$1 dir reply old new
    dir=$(host_dir "$k")
    old=$(running_pid "$k") || { echo "error upgrade $k: not running"; return 1; }
    if ! { copy_exec "${UPGRADE_BIN:-$BIN}" "$dir/ringmaster.new" && mv -f "$dir/ringmaster.new" "$dir/ringmaster"; }; then
        echo "error upgrade $k: could not put a new binary at $dir/ringmaster"
        return 1
    fi
    reply=$(ctl "$k" upgrade 2>&1) || { echo "error upgrade $k: $reply"; return 1; }
    new=$(sed -n 's/^ok upgraded: pid \([0-9]*\) serves.*/\1/p' <<<"$reply")
    [[ -n $new ]] || { echo "error upgrade $k: $reply"; return 1; }
    echo "$new" >"$dir/pid"
    local deadline=$(($(now_us) + 40000000))
    while ! gone "$old"; do
        (($(now_us) < deadline)) || { echo "error upgrade $k: the old master (pid $old) still runs"; return 1; }
        sleep 0.05
    done
    echo "ok upgrade $k: pid $new serves; pid $old drained and exited (status $(reap "$old"))"
}

worker_pids() { grep -o '"pid":[0-9]*' <<<"$1" | cut -d: -f2 | sort; }

# `ctl reload`; answers once every worker is a new process and ready.
host_reload() {
    local k=$1 before reply status deadline
    before=$(ctl "$k" status 2>&1) || { echo "error reload $k: $before"; return 1; }
    reply=$(ctl "$k" reload 2>&1) || { echo "error reload $k: $reply"; return 1; }
    deadline=$(($(now_us) + 40000000))
    while (($(now_us) < deadline)); do
        status=$(ctl "$k" status 2>/dev/null) || status=
        if [[ -n $status ]] && ! grep -q '"state":"\(starting\|draining\|stopped\|exited\)"' <<<"$status" \
            && [[ -z $(comm -12 <(worker_pids "$before") <(worker_pids "$status")) ]]; then
            echo "ok reload $k: $reply; new workers $(worker_pids "$status" | tr '\n' ' ')"
            return 0
        fi
        sleep 0.05
    done
    echo "error reload $k: workers not all new and ready within 40 s"
    return 1
}

set_hash() {
    local mode=$1 deadline applied=
    [[ $mode == random || $mode == jhash ]] || { echo "error hash: random or jhash, not '$mode'"; return 1; }
    echo "$mode" >"$STATE/hash.new" && mv -f "$STATE/hash.new" "$STATE/hash"
    deadline=$(($(now_us) + 10000000))
    while (($(now_us) < deadline)); do
        [[ -f $STATE/map ]] && read -r applied _ <"$STATE/map"
        [[ $applied == "$mode" ]] && { echo "ok hash $mode"; return 0; }
        sleep 0.02
    done
    echo "error hash $mode: the health loop did not apply it within 10 s"
    return 1
}

show_map() {
    local mode members
    [[ -f $STATE/map ]] && read -r mode members <"$STATE/map"
    echo "ok map ($mode): ${members:-none}"
}

# Waits until the map holds every host (at most $1 s).
wait_all_in() {
    local deadline=$(($(now_us) + $(to_us "$1"))) mode members
    local want; want=$(seq -s ' ' 1 "$HOSTS")
    while (($(now_us) < deadline)); do
        members=
        [[ -f $STATE/map ]] && read -r mode members <"$STATE/map"
        [[ $members == "$want" ]] && return 0
        sleep 0.05
    done
    return 1
}

# ---------------------------------------------------------------------------
# Up
# ---------------------------------------------------------------------------

find_binary() {
    if [[ -z $BIN ]]; then
        BIN="$ROOT/target/release/ringmaster"
        if [[ ! -x $BIN ]]; then
            say "building ringmaster (cargo build --release)"
            (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
            [[ -n ${CARGO_TARGET_DIR:-} ]] && BIN="$CARGO_TARGET_DIR/release/ringmaster"
        fi
    fi
    [[ -x $BIN ]] || die "no ringmaster binary at $BIN (--bin or RINGMASTER_BIN)"
    BIN=$(readlink -f "$BIN")
    [[ -z $UPGRADE_BIN || -x $UPGRADE_BIN ]] || die "--upgrade-bin $UPGRADE_BIN is not executable"
}

up() {
    need_root
    find_binary
    reap_stale
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    # The state directory appears with its owner in it: a run starting at
    # the same time never sees it without one.
    local fresh
    mkdir -p "$STATE_ROOT"
    fresh=$(mktemp -d "$STATE_ROOT/.new.XXXXXX")
    echo "$$" >"$fresh/owner"
    mv -T "$fresh" "$STATE" || { rm -rf "$fresh"; die "$STATE exists"; }
    echo "$HASH" >"$STATE/hash"
    : >"$STATE/events"
    make_topology
    local k
    for ((k = 1; k <= HOSTS; k++)); do
        host_start "$k" >&2 || die "host $k did not start"
    done
    # The loop (and its curl and nft) at a higher priority than the hosts
    # and the load: on a real site it has a machine of its own; here it
    # shares the cores with everything, and a probe round that waits for
    # CPU behind wrk is a host taken out late.
    MULTIHOST_PARENT=$$ nice -n -10 ip netns exec "$NS_ROUTER" bash "$SELF" --prefix "$PREFIX" --hosts "$HOSTS" \
        --health-interval "$INTERVAL" --probe-timeout "$PROBE_TIMEOUT" --port "$PORT" __health-loop &
    HEALTH_PID=$!
    wait_all_in 15 || die "not every host answered its health check within 15 s (map: $(cat "$STATE/map" 2>/dev/null))"
}

# ---------------------------------------------------------------------------
# serve: commands on stdin
# ---------------------------------------------------------------------------

serve() {
    install_missing ip:iproute2 nft:nftables curl:curl
    up
    local k
    for ((k = 1; k <= HOSTS; k++)); do
        echo "host $k at $(host_addr "$k"):$PORT in namespace $(ns_host "$k"): pid $(host_pid "$k"), control $(host_dir "$k")/ctl.sock"
    done
    echo "ready service=$SERVICE_IP:80 client=/run/netns/$NS_CLIENT hosts=$HOSTS interval=$INTERVAL drain_delay=$DRAIN_DELAY state=$STATE"
    local line
    local -a words
    while IFS= read -r line; do
        read -r -a words <<<"$line"
        ((${#words[@]})) || continue
        local verb=${words[0]} arg=${words[1]:-}
        case "$verb" in
            status|stop|wait|kill|start|upgrade|reload)
                if ! valid_host "$arg"; then
                    echo "error $verb: a host number from 1 to $HOSTS, not '$arg'"
                    continue
                fi
                "host_$verb" "$arg" || true
                ;;
            hash) set_hash "$arg" || true ;;
            map) show_map ;;
            quit) echo "ok quit"; break ;;
            *) echo "error $verb: unknown command (status stop wait kill start upgrade reload hash map quit)" ;;
        esac
    done
}

# ---------------------------------------------------------------------------
# run: the scenarios under wrk from the client namespace
# ---------------------------------------------------------------------------

SUMMARY=()
TARGET="http://$SERVICE_IP/"

# wrk in the client namespace, in the background: $1 output file, then wrk's
# own arguments. Sets WRK_PID.
wrk_start() {
    local out=$1
    shift
    ip netns exec "$NS_CLIENT" wrk -t1 --timeout 3s "$@" "$TARGET" >"$out" 2>&1 &
    WRK_PID=$!
}

# Both loads of a scenario: churn (Connection: close, a new connection and so
# a new DNAT decision per request) and 8 keep-alive connections, for $1 s.
loads_start() {
    wrk_start "$STATE/wrk-$2" -c"$CONNS" -d"$1s" -H 'Connection: close'
    CHURN_PID=$WRK_PID
    wrk_start "$STATE/wrk-$2-keepalive" -c8 -d"$1s"
    KEEPALIVE_PID=$WRK_PID
}

loads_wait() {
    wait "$CHURN_PID" || true
    wait "$KEEPALIVE_PID" || true
}

# "REQUESTS ERRORS (KINDS)" from a wrk output: errors are socket errors of
# every kind and non-2xx/3xx answers; KINDS names the non-zero ones.
wrk_result() {
    awk '
        / requests in / { requests = $1 }
        /Socket errors:/ {
            gsub(",", "")
            for (i = 3; i < NF; i += 2) if ($(i + 1) > 0) { kinds = kinds sep $i " " $(i + 1); sep = ", "; errors += $(i + 1) }
        }
        /Non-2xx or 3xx responses:/ { kinds = kinds sep "non-2xx " $NF; sep = ", "; errors += $NF }
        END { printf "%d requests, %d errors%s\n", requests, errors, kinds == "" ? "" : " (" kinds ")" }' "$1"
}

# The sum of the workers' accepted connections in host $1's stats.
host_accepted() {
    local status
    status=$(ctl "$1" status 2>/dev/null) || { echo 0; return; }
    grep -o '"accepted":[0-9]*' <<<"$status" | cut -d: -f2 | awk '{ s += $1 } END { print s + 0 }'
}

# Jain's fairness index of the numbers in "$@".
jain() { printf '%s\n' "$@" | awk '{ s += $1; q += $1 * $1; n++ } END { if (q == 0) print "0.0000"; else printf "%.4f\n", s * s / (n * q) }'; }

# Waits (at most $3 s) for an event line containing $1 that the health loop
# recorded after time $2 (µs); prints the µs it was recorded at.
event_after() {
    local pattern=$1 since=$2 deadline at
    deadline=$(($(now_us) + $(to_us "$3")))
    while (($(now_us) < deadline)); do
        at=$(awk -v s="$since" -v p="$pattern" '{ t = $1; sub(/\./, "", t) } t + 0 > s + 0 && index($0, p) { print t; exit }' "$STATE/events")
        [[ -n $at ]] && { echo "$((10#$at))"; return 0; }
        sleep 0.02
    done
    return 1
}

# Milliseconds from $1 to $2 (µs), or '?' when $2 is empty.
ms_between() { [[ -n $2 ]] && echo $((($2 - $1) / 1000)) || echo '?'; }

summary() { SUMMARY+=("| $1 | $2 | $3 |"); }

scenario_spread() {
    local mode=$1 k counts j
    local -a before=() share=()
    set_hash "$mode" >/dev/null || die "hash $mode was not applied"
    for ((k = 1; k <= HOSTS; k++)); do before[k]=$(host_accepted "$k"); done
    wrk_start "$STATE/wrk-spread-$mode" -c"$CONNS" -d"${DURATION}s" -H 'Connection: close'
    wait "$WRK_PID" || true
    for ((k = 1; k <= HOSTS; k++)); do share+=("$(($(host_accepted "$k") - before[k]))"); done
    counts=$(wrk_result "$STATE/wrk-spread-$mode")
    j=$(jain "${share[@]}")
    say "spread ($mode): connections per host ${share[*]}, Jain $j; wrk: $counts"
    summary "spread, \`$mode\`" "$counts" "connections per host (their stats) ${share[*]}: Jain $j"
}

scenario_graceful() {
    local k=$HOSTS t0 t_out t_exit t_start t_in
    loads_start "$DURATION" graceful
    sleep 1
    t0=$(now_us)
    host_stop "$k" >&2
    t_out=$(event_after "host $k out:" "$t0" "$((${DRAIN_DELAY%%.*} + 10))") || t_out=
    host_wait "$k" >&2
    t_exit=$(now_us)
    # From the start command on: the loop may see 200 before host_start,
    # which polls the log, returns.
    t_start=$(now_us)
    host_start "$k" >&2
    t_in=$(event_after "host $k in:" "$t_start" 10) || t_in=
    loads_wait
    local what
    what="SIGTERM → out of the map $(ms_between "$t0" "$t_out") ms (drain delay ${DRAIN_DELAY} s), exited $(ms_between "$t0" "$t_exit") ms;"
    what+=" restarted → back in the map $(ms_between "$t_start" "$t_in") ms after the start"
    say "graceful removal of host $k: $what"
    summary "graceful removal of host $k (SIGTERM)" "$(wrk_result "$STATE/wrk-graceful"); keep-alive: $(wrk_result "$STATE/wrk-graceful-keepalive")" "$what"
}

scenario_hard() {
    local k=1 t0 t_out t_start t_in
    loads_start "$DURATION" hard
    sleep 1
    t0=$(now_us)
    host_kill "$k" >&2
    t_out=$(event_after "host $k out:" "$t0" 10) || t_out=
    sleep 1
    t_start=$(now_us)
    host_start "$k" >&2
    t_in=$(event_after "host $k in:" "$t_start" 10) || t_in=
    loads_wait
    local what
    what="SIGKILL → out of the map $(ms_between "$t0" "$t_out") ms (health every ${INTERVAL} s); restarted 1 s later → back in the map $(ms_between "$t_start" "$t_in") ms after the start"
    say "hard failure of host $k: $what"
    summary "hard failure of host $k (SIGKILL)" "$(wrk_result "$STATE/wrk-hard"); keep-alive: $(wrk_result "$STATE/wrk-hard-keepalive")" "$what"
}

scenario_roll() {
    local k t0 flaps events_before
    local -a took=()
    events_before=$(wc -l <"$STATE/events")
    loads_start "$((HOSTS + 2))" roll
    sleep 1
    for ((k = 1; k <= HOSTS; k++)); do
        t0=$(now_us)
        "host_$ROLL" "$k" >&2 || die "$ROLL of host $k failed"
        took+=("$(ms_between "$t0" "$(now_us)")")
    done
    loads_wait
    flaps=$(tail -n +"$((events_before + 1))" "$STATE/events" | grep -c ' out: ' || true)
    local what="ctl $ROLL of each host in turn: ${took[*]} ms; hosts the health loop took out meanwhile: $flaps"
    say "rolling $ROLL: $what"
    summary "rolling \`$ROLL\` of every host" "$(wrk_result "$STATE/wrk-roll"); keep-alive: $(wrk_result "$STATE/wrk-roll-keepalive")" "$what"
}

run() {
    install_missing ip:iproute2 nft:nftables curl:curl wrk:wrk
    up
    say "up: $HOSTS hosts behind $SERVICE_IP:80; wrk -c$CONNS with Connection: close (and -c8 keep-alive) for ${DURATION} s per scenario"
    scenario_spread random
    scenario_spread jhash
    set_hash random >/dev/null
    scenario_graceful
    scenario_hard
    scenario_roll
    echo
    echo "$HOSTS hosts x 2 workers ($("$BIN" --version)), health every ${INTERVAL} s, drain delay ${DRAIN_DELAY} s;" \
        "wrk -t1 -c$CONNS Connection: close and -c8 keep-alive; $(nproc) CPUs, Linux $(uname -r), $(date -u +%Y-%m-%d)"
    echo
    echo "| scenario | wrk (churn; keep-alive) | what happened |"
    echo "|---|---|---|"
    printf '%s\n' "${SUMMARY[@]}"
}

case "$COMMAND" in
    install) need_root; install_missing ip:iproute2 nft:nftables curl:curl wrk:wrk ;;
    down) need_root; teardown_prefix "$PREFIX"; say "removed everything of prefix $PREFIX" ;;
    serve) serve ;;
    run) run ;;
    __health-loop) health_loop ;;
esac

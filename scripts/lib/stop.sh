# Stopping what a script started (sourced, not run): every process the
# caller's ours() lists, woken first (one may be stopped), asked to stop,
# given 5 s, then killed.

stop_ours() {
    local left
    left=$(ours | tr '\n' ' ')
    [[ -n ${left// /} ]] || return 0
    kill -CONT $left 2>/dev/null
    kill -TERM $left 2>/dev/null
    for _ in $(seq 50); do [[ -z $(ours) ]] && break; sleep 0.1; done
    left=$(ours | tr '\n' ' ')
    [[ -n ${left// /} ]] && kill -KILL $left 2>/dev/null
    return 0
}

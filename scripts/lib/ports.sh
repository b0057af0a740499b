# Free-port tests shared by the scripts that start servers (sourced, not run):
# a port is free when nobody answers on it and no socket listens on it.

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_listened() {                # any socket LISTENing on this port, any address (tcp + tcp6)
    local hex
    hex=$(printf '%04X' "$1")
    awk -v h="$hex" '$4 == "0A" { n = split($2, a, ":"); if (a[n] == h) f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# pick_port FROM: sets PICKED_PORT to the first free port >= FROM, below
# PORT_BASE + 1000 (the caller's PORT_BASE), or exits naming the script.
pick_port() {
    local p=$1
    while port_in_use "$p" || port_listened "$p"; do
        p=$((p + 1))
        ((p < PORT_BASE + 1000)) || { echo "${0##*/}: no free port in $PORT_BASE..$((PORT_BASE + 999))" >&2; exit 1; }
    done
    PICKED_PORT=$p
}

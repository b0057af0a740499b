# Free-port tests shared by the scripts that start servers (sourced, not run):
# a port is free when nobody answers on it and no socket listens on it.

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_listened() {                # any socket LISTENing on this port, any address (tcp + tcp6)
    local hex
    hex=$(printf '%04X' "$1")
    awk -v h="$hex" '$4 == "0A" { n = split($2, a, ":"); if (a[n] == h) f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

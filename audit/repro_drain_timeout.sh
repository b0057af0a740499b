#!/bin/bash
# D9: Cluster::shutdown_timeout and EngineConfig::drain_timeout (configure)
# are one setting kept in two places: set the second after the first and the
# master kills a draining worker at shutdown_timeout + 1 s, inside the drain
# its workers were given.
cd "$(dirname "$0")"
SOCK=/tmp/lib-audit-d9.sock
PORT=26429 WORKERS=1 SHUTDOWN_TIMEOUT=2 DRAIN_TIMEOUT=10 CONTROL=$SOCK RUST_BACKTRACE=0 ../target/debug/examples/audit_lib >/dev/null 2>d9.err &
M=$!; sleep 1.5
# a slow upload: head and part of its body, the rest 6 s later
python3 - <<'PY' &
import socket, time
s = socket.create_connection(("127.0.0.1", 26429)); s.settimeout(15)
s.sendall(b"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
time.sleep(6)
try:
    s.sendall(b"world"); d = s.recv(65536)
    print("upload answered:", d.split(b"\r\n")[0] if d else "closed without an answer")
except Exception as e:
    print("upload:", e)
PY
sleep 0.5
./ringmaster ctl $SOCK reload
sleep 7
grep -E "reload|killed|drain" d9.err | cut -c1-200
kill $M; wait $M 2>/dev/null

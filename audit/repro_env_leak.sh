#!/bin/bash
# D8: a worker's environment (RINGMASTER_WORKER_ID, ...) passes to every
# subprocess its handler starts; a child built on the library then takes
# itself for a worker and exits 1. Node deletes NODE_UNIQUE_ID in the worker.
cd "$(dirname "$0")"
PORT=26427 WORKERS=1 RUST_BACKTRACE=0 ../target/debug/examples/audit_lib >/dev/null 2>envleak.err &
M=$!; sleep 1.5
echo "--- what a handler's subprocess inherits:"; curl -s http://127.0.0.1:26427/env
echo "--- the same environment given to a library program (the ringmaster binary):"
env $(curl -s http://127.0.0.1:26427/env | tr '\n' ' ') timeout 3 ./ringmaster --bind 127.0.0.1:26428 --workers 1 2>&1 | head -2
kill $M; wait $M 2>/dev/null

#!/usr/bin/env bash
# AddressSanitizer, with its LeakSanitizer, over the tests Miri cannot run
# because they make syscalls (nightly): the engine's unit tests, io_uring,
# memfd and socket ones included, and the in-process tests
# (tests/engine_*.rs: the worker driver run in the test's process over real
# sockets, on io_uring or epoll). Needs no rebuilt standard library: std and
# libtest stay uninstrumented, so a fault inside them is missed, but every
# load and store the engine compiles is checked, and every malloc is seen.
#
#   scripts/sanitize.sh            the engine's unit tests, then the in-process tests
#   scripts/sanitize.sh FILTER...  both, passing FILTER to the test harness
#
# Builds into target/asan (its own flags; one job) and bounds each run
# (SANITIZE_TIMEOUT seconds, default 1800), niced. About 3 min of building
# from cold for the engine, more for the in-process tests (the balancer and
# clap); the tests themselves take under a minute. Not part of CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
export CARGO_TARGET_DIR=${SANITIZE_TARGET_DIR:-$PWD/target/asan}
export RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address"
# fallible::tests asks for 2^63 bytes to see the error come back: ASan
# aborts on such a request unless told to return null as the allocator does.
export ASAN_OPTIONS="allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# Leaks made on purpose (each named there); any other leak fails the run.
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
LIMIT=${SANITIZE_TIMEOUT:-1800}
# An explicit target keeps build scripts and proc macros uninstrumented (a
# proc macro built with ASan cannot be loaded by rustc).
HOST=$(rustc +nightly -vV | sed -n 's/^host: //p')

run() { # name, cargo test options... -- harness arguments
    local name=$1
    shift
    echo "== asan: $name" >&2
    nice -n 19 timeout "$LIMIT" cargo +nightly test --target "$HOST" "$@"
}

in_process=()
for test in tests/engine_*.rs; do
    in_process+=(--test "$(basename "$test" .rs)")
done
run "engine unit tests" -p ringmaster-engine --lib -- "$@"
run "in-process tests" -p ringmaster "${in_process[@]}" -- "$@"

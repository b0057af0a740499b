#!/usr/bin/env bash
# Coverage-guided fuzzing of the engine's untrusted-input code (engine/fuzz/):
#   conn     one connection's state machine driven by a script of driver events
#            over an arbitrary stream (pieces, partial sends, deadlines, drain,
#            FINs): well-formed answers, the parser's answers in order, counts,
#            nothing after a close or our FIN, split invariance
#   parser   the request parser fed whole and cut anywhere: the same replies and bodies
#   chunked  the chunked decoder against a reference decoder written in the target
# Each runs FUZZ_SECONDS (default 30) at nice 19, from the seeds in
# engine/fuzz/corpus/<target>/seed-* plus what earlier runs here added (not
# committed). Needs the nightly toolchain; installs cargo-fuzz if missing.
# A failure leaves the input in engine/fuzz/artifacts/<target>/ and exits
# non-zero: `cargo +nightly fuzz run <target> <file>` (in engine/fuzz) replays it;
# make it a unit test in the engine, do not commit the artifact.
# Usage: scripts/fuzz.sh [target...]    (FUZZ_SECONDS=600 scripts/fuzz.sh conn)
set -euo pipefail
cd "$(dirname "$0")/../engine/fuzz"

seconds=${FUZZ_SECONDS:-30}
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(conn parser chunked)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz

status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "fuzz.sh: $target for ${seconds}s" >&2
    if ! nice -n 19 cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>"/tmp/ringmaster-fuzz-$target.log"; then
        echo "fuzz.sh: $target FAILED (log: /tmp/ringmaster-fuzz-$target.log)" >&2
        grep -A3 'panicked' "/tmp/ringmaster-fuzz-$target.log" >&2 || true
        status=1
        continue
    fi
    grep -E '^stat::number_of_executed_units|^Done' "/tmp/ringmaster-fuzz-$target.log" | tail -n 1 >&2 || true
    grep -E 'cov: ' "/tmp/ringmaster-fuzz-$target.log" | tail -n 1 >&2 || true
done
exit $status

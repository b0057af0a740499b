# The ringmaster binary a load script runs (sourced, not run):
# RINGMASTER_BIN if set, else a release build of this checkout, where cargo
# puts it (CARGO_TARGET_DIR or a config's target-dir honoured); made
# absolute and without symlinks, as the scripts compare it with
# /proc/PID/exe to find their own processes. Exits 1 when there is none.

ringmaster_binary() {
    local root
    root="$(dirname "${BASH_SOURCE[0]}")/../.."
    if [[ -z ${RINGMASTER_BIN:-} ]]; then
        (cd "$root" && cargo build --release -q)
        RINGMASTER_BIN=$(cd "$root" && cargo metadata --no-deps --format-version 1 |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/ringmaster
    fi
    RINGMASTER_BIN=$(readlink -f "$RINGMASTER_BIN")
    [[ -x $RINGMASTER_BIN ]] || { echo "${0##*/}: no ringmaster binary at $RINGMASTER_BIN" >&2; exit 1; }
}

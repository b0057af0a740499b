#!/usr/bin/env bash
# The whole test suite: every test with the backend `auto` chooses (io_uring
# where the kernel allows it), then the integration tests whose outcome
# depends on the backend again, with the master and its workers on epoll
# (what is left out of that pass, and why, is said where it is listed).
#
# The metrics tests parse the master's page with Prometheus' own parser and
# linter, `promtool check metrics`: installed here from Debian's `prometheus`
# package when missing (quietly, once; its service is not started). Without
# it those tests fail, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib/tools.sh
source scripts/lib/tools.sh
(install_missing promtool:prometheus) || echo "test.sh: without promtool the metrics tests will fail saying so" >&2

# Tests at once in each test binary. The integration tests spend most of
# their time waiting for the server's events and timers (a shutdown
# timeout, a drain, a back-off): with 8 at once the suite's pass took 78 s
# where 2 at once (the default on 2 cores) took 207 s, using 42 % of the 2
# cores, and 93-100 s beside two busy loops, every test passing
# (2026-12-06). RINGMASTER_TEST_THREADS overrides it.
threads=${RINGMASTER_TEST_THREADS:-8}
# Both passes run whatever the first gives (a failure in one test must not
# hide what the epoll pass says); the script fails if either did.
status=0
# Run alone, after each pass: the test that starts and stops 512 workers.
# Beside 7 others, its stop (512 processes exiting at once) held up theirs:
# 5 masters that got SIGTERM in the 10 s after it did ran on past their 10
# or 20 s (2026-12-08, the suite beside two busy loops).
alone=supervisor_scale::sigttin_at_the_most_workers_adds_none
cargo test --workspace -- --test-threads "$threads" --skip "$alone" || status=$?
cargo test -p ringmaster --test suite -- --exact "$alone" || status=$?

# The second pass: the tests whose outcome depends on the I/O backend of the
# master and its workers (the integration tests are one binary, `suite`, a
# module per file; the unit and allocation tests cover both drivers in
# process already). Left out: what never touches the backend (command-line
# parsing, logs, titles, privileges, systemd, the status table, the backend
# fallback, which picks its own, the eBPF program on its own), the examples
# (they choose their own backend), the multi-host scenarios (one pass is
# enough for the kernel's balancing), the binary-replaced test (how a worker
# is started, not how it serves), the stalled-worker tests and the backend
# parity test (each names its backends, io_uring and epoll, itself).
once_only=(backend_fallback backend_parity balance_stall balancer_config library_examples multihost operator_cli operator_logs
    operator_privileges operator_systemd operator_table operator_titles steer_program upgrade_binary_replaced)
skips=()
for module in "${once_only[@]}"; do
    skips+=(--skip "$module::")
done
RINGMASTER_TEST_BACKEND=epoll cargo test -p ringmaster --test suite -- --test-threads "$threads" "${skips[@]}" --skip "$alone" ||
    status=$?
RINGMASTER_TEST_BACKEND=epoll cargo test -p ringmaster --test suite -- --exact "$alone" || status=$?
((status == 0)) || echo "test.sh: a pass failed (exit $status): see above" >&2
exit "$status"

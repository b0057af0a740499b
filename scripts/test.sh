#!/usr/bin/env bash
# The whole test suite: every test with the backend `auto` chooses (io_uring
# where the kernel allows it), then the integration tests again with the
# master and its workers on epoll. The allocation tests cover both drivers
# in process and are not run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace
RINGMASTER_TEST_BACKEND=epoll cargo test --workspace --tests -- --skip allocate_nothing

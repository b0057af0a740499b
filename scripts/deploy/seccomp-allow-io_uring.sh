#!/usr/bin/env bash
# Writes, on stdout, a seccomp profile that is the one given plus io_uring:
# Docker's default profile (25+) and containerd's (2.0+) no longer allow
# io_uring_setup, io_uring_enter and io_uring_register, so ringmaster falls
# back to epoll in containers that use them. Give it the default profile of
# the Docker you run (profiles/seccomp/default.json in the moby repository,
# at the tag `docker version` names):
#
#   scripts/deploy/seccomp-allow-io_uring.sh default.json > seccomp-io_uring.json
#   docker run --security-opt seccomp=seccomp-io_uring.json ...
#
# Everything else in the profile stays as it was. io_uring was taken out of
# the defaults because its past kernel bugs made it a way out of containers:
# allow it for ringmaster's containers only, on kernels you keep patched.
set -euo pipefail
if [[ $# -ne 1 || ! -r $1 ]]; then
    echo "usage: $0 DEFAULT-PROFILE.json > PROFILE.json" >&2
    exit 2
fi
command -v jq >/dev/null || { echo "$0: needs jq (apt-get install jq)" >&2; exit 1; }
jq '.syscalls += [{
      "names": ["io_uring_setup", "io_uring_enter", "io_uring_register"],
      "action": "SCMP_ACT_ALLOW",
      "comment": "ringmaster: io_uring (absent from the defaults since Docker 25 and containerd 2.0)"
    }]' "$1"

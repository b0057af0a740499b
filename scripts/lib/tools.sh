# The commands a script needs, installed from Debian when missing (sourced,
# not run). NO_INSTALL=1 makes a missing one an error instead.
#
#   install_missing wrk:wrk ss:iproute2 nft:nftables
#
# Each argument is COMMAND:PACKAGE (a package that provides the command).
# Only the packages of missing commands are installed, quietly; `apt-get
# update` runs only if the first try fails (a fresh image has no lists).
# While it runs, /usr/sbin/policy-rc.d keeps a package's service from
# starting (nginx would take port 80). Exits 1, saying what to install, when
# it cannot. A command counts as there in /usr/sbin too, off a user's PATH.

have_command() {
    command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 ]]
}

install_missing() {
    local name=${0##*/} want
    local -a packages=()
    for want in "$@"; do
        have_command "${want%%:*}" || packages+=("${want#*:}")
    done
    ((${#packages[@]} == 0)) && return 0
    local cannot="$name: missing: ${packages[*]}"
    if [[ ${NO_INSTALL:-0} == 1 ]]; then
        echo "$cannot (NO_INSTALL=1: apt-get install ${packages[*]})" >&2
        exit 1
    fi
    local -a sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || { echo "$cannot, and not root (no sudo) to install them" >&2; exit 1; }
        sudo=(sudo)
        # No prompt where nobody can answer it (CI, a pipe).
        [[ -t 0 ]] || sudo=(sudo -n)
    fi
    command -v apt-get >/dev/null 2>&1 || { echo "$cannot, and no apt-get to install them" >&2; exit 1; }
    echo "$name: installing ${packages[*]} with apt-get" >&2
    local added_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
        added_policy=1
    fi
    local -a apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -qq --no-install-recommends)
    local installed=1
    "${apt[@]}" install "${packages[@]}" >/dev/null 2>&1 ||
        { "${apt[@]}" update >/dev/null 2>&1 && "${apt[@]}" install "${packages[@]}" >/dev/null 2>&1; } ||
        installed=0
    ((added_policy)) && "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
    ((installed)) || { echo "$name: could not install ${packages[*]} with apt-get" >&2; exit 1; }
    for want in "$@"; do
        have_command "${want%%:*}" ||
            { echo "$name: ${want%%:*} still missing after installing ${want#*:}" >&2; exit 1; }
    done
}

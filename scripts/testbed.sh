#!/usr/bin/env bash
# The testbed of many hosts (issue 16; docs/performance.md section 6, docs/transport.md Tests):
# N Linux network namespaces joined by one bridge, MEMBERS `demls node` processes spread over
# them, random loss per link (nftables), latency and jitter only where the kernel has `tc netem`
# (it says so when it has not), and the journeys: a multi-steward group formed through
# invitations, chat, a partition of a third of the namespaces that commits on both sides and
# heals, and the epoch steward killed with SIGKILL while it has a change to commit. Prints a
# table and, last, one JSON line; exits 1 when a journey breaks its contract.
#
#   scripts/testbed.sh N [MEMBERS] [driver options, see scripts/testbed.py --help]
#
# MEMBERS defaults to 30. Needs root (namespaces), iproute2 and nftables
# (scripts/system-deps.sh installs them); prints SKIP and exits 0 where namespaces cannot be
# made. TESTBED_BINARY names the demls binary (default target/debug/demls, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

namespaces=${1:?usage: scripts/testbed.sh N [MEMBERS] [options]}
members=${2:-30}
shift $(($# < 2 ? $# : 2))
binary=${TESTBED_BINARY:-target/debug/demls}

skip() {
    echo "SKIP testbed: $*" >&2
    exit 0
}
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root (run as root, as CI does)"
command -v ip >/dev/null || skip "no 'ip' (iproute2; scripts/system-deps.sh installs it)"
command -v nft >/dev/null || skip "no 'nft' (nftables; scripts/system-deps.sh installs it)"
probe="dtbprobe$$"
if ! ip netns add "$probe" 2>/dev/null; then
    skip "network namespaces cannot be created here ('ip netns add' failed)"
fi
ip netns del "$probe"

if [ ! -x "$binary" ]; then
    echo "== building $binary"
    cargo build -q -p demls
fi

# The driver cleans up after itself; this trap is for a driver killed with SIGKILL: it removes
# the namespaces and bridge it made (named after its pid) and their processes.
driver_pid=
cleanup() {
    if [ -n "$driver_pid" ]; then
        local tag=$((driver_pid % 100000))
        for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^dtb${tag}n" || true); do
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        done
        ip link del "dtb${tag}br" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'kill -TERM "$driver_pid" 2>/dev/null; wait "$driver_pid"; exit 130' INT TERM

python3 scripts/testbed.py "$namespaces" "$members" --binary "$binary" "$@" &
driver_pid=$!
wait "$driver_pid"

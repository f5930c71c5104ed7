#!/usr/bin/env bash
# Runs every demls test. On a fresh machine it first installs what the tests
# need beyond Rust: the system packages the build links against (scripts/system-deps.sh), the
# npm packages of the js-waku interop peer, of anvil and of
# the web client, and Debian's chromium for the web client's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

install_npm() { # dir
    local dir=$1
    if [ ! -f "$dir/package-lock.json" ]; then return; fi
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        echo "== npm ci in $dir"
        npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
    fi
}

./scripts/system-deps.sh # libssl-dev and pkg-config, which the build links against

install_npm interop/js-waku
install_npm interop/anvil
install_npm web

if ! command -v chromium >/dev/null; then
    echo "== apt-get install chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# First, and on its own so that its message is the first failure: docs/openapi.yaml and
# web/src/api-types.ts are generated from the API's types (docs/web.md) and must be current.
echo "== generated API files are current"
cargo test -q -p demls-api -p demls --lib --bins generated

echo "== cargo test --workspace"
cargo test --workspace --no-fail-fast
# The testbed of many hosts (issue 16, docs/performance.md section 6): 30 `demls node` processes
# in 10 network namespaces joined by a bridge, 1 % loss per link, the formation, chat,
# partition and killed-steward journeys; about 50 s with the debug binary. Prints SKIP
# where namespaces cannot be created (not root).
echo "== testbed: 10 namespaces, 30 members"
./scripts/testbed.sh 10 30
# The demo over TCP, 20 times in a row at 30 members and 5 times at 50 (issue 12): each run's
# summary must keep its contract (everyone joined, every message delivered, the removed member
# reads nothing, a thief with a member's copied state reads nothing after its update,
# authenticators agree). The debug binary the tests just built; about 7 minutes (run on
# 2026-12-08: 10-14 s a 30-member run, 32-45 s a 50-member run, with the storage and transport
# crates built optimised; 50 nodes in one process keep both cores busy, so a 50-member run
# varies; a slow one is bounded by the demo's waits, 300 s for the joins and 60 s a chat round).
./scripts/demo-runs.sh 20 30 target/debug/demls
./scripts/demo-runs.sh 5 50 target/debug/demls
# A bounded run of every fuzz target (docs/fuzzing.md): 20 s each unless DEMLS_FUZZ_SECONDS says.
./scripts/fuzz.sh "${DEMLS_FUZZ_SECONDS:-20}"

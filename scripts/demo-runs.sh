#!/usr/bin/env bash
# Runs `demls demo` over TCP several times in a row and checks each run's summary contract
# (everyone joined, every message reached every member, the removed member reads nothing,
# key updates were committed, a thief holding a copy of a member's state from before its
# update reads nothing sent after it, the authenticators agree). Stops at the first failure
# and prints its output.
#
#   scripts/demo-runs.sh RUNS MEMBERS [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:?RUNS}
members=${2:?MEMBERS}
binary=${3:-target/release/demls}
if [ ! -x "$binary" ]; then
    cargo build --release --quiet
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for i in $(seq 1 "$runs"); do
    start=$(date +%s)
    if ! "$binary" demo --members "$members" --json >"$log" 2>&1; then
        echo "demo --members $members: run $i of $runs failed" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    summary=$(tail -n 1 "$log")
    if ! python3 - "$summary" "$members" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); n = int(sys.argv[2])
ok = (s["members"] == n and s["joined"] == n
      and s["messages_delivered"] == s["messages_sent"] > 0
      and s["removed_member_can_decrypt"] is False
      and s["key_updates"] > 0
      and s["stolen_state_can_decrypt_after_update"] is False
      and s["epoch_authenticators_agree"] is True)
sys.exit(0 if ok else 1)
PY
    then
        echo "demo --members $members: run $i of $runs broke its contract: $summary" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    echo "demo --members $members: run $i of $runs ok in $(( $(date +%s) - start )) s: $summary"
done

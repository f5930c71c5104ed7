#!/usr/bin/env bash
# Fuzzes every decoder that takes bytes from the network or disk, each target for a bounded
# time, with cargo fuzz (libFuzzer, coverage-guided, AddressSanitizer, debug assertions).
# docs/fuzzing.md lists the targets and what each checks.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target: the argument, else $DEMLS_FUZZ_SECONDS, else 60 (10 targets: about ten
# minutes of fuzzing, plus the build). 0 skips fuzzing. TARGETs default to all of them.
# cargo fuzz needs unstable compiler flags: the stable toolchain allows them with
# RUSTC_BOOTSTRAP=1, which this script sets for its own cargo commands only.
# Corpora grow in fuzz/corpus/<target> (not committed); the seeds program writes the fixture
# group and the seed corpora there first. A crash leaves its input in fuzz/artifacts/<target>/
# and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
ALL_TARGETS=(waku_message waku_metadata engine_bytes engine_envelope engine_app key_package
    consensus engine_restore storage policy)

seconds=${1:-${DEMLS_FUZZ_SECONDS:-60}}
if [ "$#" -gt 0 ]; then shift; fi
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then targets=("${ALL_TARGETS[@]}"); fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "fuzz.sh: SECONDS must be a whole number, not '$seconds'" >&2
    exit 2
fi
if [ "$seconds" -eq 0 ]; then
    echo "== fuzz: skipped (0 seconds per target)"
    exit 0
fi

if ! cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
    echo "== cargo install cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --quiet
fi

export RUSTC_BOOTSTRAP=1
FLAGS=(--debug-assertions)
start=$(date +%s)
echo "== cargo fuzz build"
cargo fuzz build "${FLAGS[@]}"
bin=fuzz/target/x86_64-unknown-linux-gnu/release
echo "== seeds"
"$bin/seeds" fuzz/corpus

failed=()
for target in "${targets[@]}"; do
    echo "== fuzz $target (${seconds} s)"
    log=fuzz/target/fuzz-$target.log
    if cargo fuzz run "${FLAGS[@]}" "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=30 -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)|^Done ' "$log" |
            tr '\n' ' ' | sed 's/stat:://g'
        echo
    else
        failed+=("$target")
        tail -n 25 "$log"
        echo "!! $target failed; its input is in fuzz/artifacts/$target/ (full log: $log)"
    fi
done

elapsed=$(($(date +%s) - start))
if [ "${#failed[@]}" -gt 0 ]; then
    # Enough to reproduce from a CI log alone: what went wrong (the panic message or sanitizer
    # report sits above long backtraces), each crashing input, and the fixture group the
    # inputs were run against (formed afresh on a new machine), all base64.
    for target in "${failed[@]}"; do
        echo "== $target"
        grep -m 20 -E "panicked at|==ERROR|SUMMARY:|libFuzzer: (deadly|out-of|timeout)" \
            "fuzz/target/fuzz-$target.log" || true
        for artifact in fuzz/artifacts/"$target"/*; do
            [ -f "$artifact" ] || continue
            echo "input $artifact, base64: $(head -c 65536 "$artifact" | base64 -w 0)"
        done
    done
    echo "fixture (DEMLS_FUZZ_FIXTURE), gzip + base64: $(gzip -c fuzz/corpus/fixture.pb | base64 -w 0)"
    echo "== fuzz: ${#failed[@]} of ${#targets[@]} targets found a crash: ${failed[*]} (${elapsed} s)"
    echo "   Reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --debug-assertions TARGET fuzz/artifacts/TARGET/FILE"
    exit 1
fi
echo "== fuzz: ${#targets[@]} targets, ${seconds} s each, no crash (${elapsed} s with the build)"

#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 60), one after the other, then prints the runs of
# each target. Not part of CI (.ci/run): fuzzing time is better spent here; the property tests run in CI.
#
#   bash tests/fuzz/run.sh [SECONDS] [TARGET...]      (targets: ingest query config; default all)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and python3. Stable Rust is enough: the build uses no
# sanitizer (`--sanitizer none`), only libFuzzer's coverage instrumentation, with debug assertions and overflow
# checks on. If a toolchain ever refuses those flags on stable, RUSTC_BOOTSTRAP=1 for this build only is the
# documented workaround (FUZZ_BOOTSTRAP=1 here sets it).
#
# Seeds and dictionaries are generated (seeds.py) into $FUZZ_WORK (default /tmp/tierd-fuzz), never into the
# repository; the corpus each run grows stays there too, so a second run starts where the first stopped. A crash or a
# broken property leaves its input in $FUZZ_WORK/artifacts/TARGET/ and makes this script exit 1; reproduce it with
#   tests/fuzz/target/x86_64-unknown-linux-gnu/release/TARGET ARTIFACT
set -euo pipefail

SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(ingest query config)
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${FUZZ_WORK:-/tmp/tierd-fuzz}
[ "${FUZZ_BOOTSTRAP:-0}" = 1 ] && export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2; exit 2; }
mkdir -p "$WORK"
python3 "$HERE/seeds.py" "$WORK"

cd "$HERE"
BUILD=(-O -a --sanitizer none --codegen-units 16)
for target in "${TARGETS[@]}"; do
    cargo fuzz build "${BUILD[@]}" "$target" >&2 || exit 2
done

declare -A MAX_LEN=([ingest]=16384 [query]=4096 [config]=32768)
failed=0
summary=()
for target in "${TARGETS[@]}"; do
    corpus="$WORK/corpus/$target"
    artifacts="$WORK/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    log="$WORK/$target.log"
    echo "== $target: ${SECONDS_PER_TARGET}s (log $log)" >&2
    status=0
    # -timeout: an input that takes 10 s (a runaway loop) is a finding; -rss_limit_mb: so is one that takes 2 GB.
    cargo fuzz run "${BUILD[@]}" "$target" "$corpus" "$WORK/seeds/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len="${MAX_LEN[$target]}" \
        -dict="$WORK/$target.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 || true)
    if [ -z "$runs" ]; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
        runs="stopped after ${runs:-?} runs"
    fi
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1 || true)
    if [ "$status" -ne 0 ]; then
        failed=1
        summary+=("$target: FAILED (exit $status): $runs; $(ls -t "$artifacts" | head -1 | sed "s|^|$artifacts/|")")
        grep -m3 -E "panicked at|ERROR: libFuzzer" "$log" >&2 || true
    else
        summary+=("$target: $runs ($cov)")
    fi
done
printf '%s\n' "${summary[@]}"
exit $failed

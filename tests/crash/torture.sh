#!/usr/bin/env bash
# The crash torture: RUNS independent runs of `kill9_during_ingest_and_every_pass_loses_nothing_acknowledged`
# (tests/tests/crash.rs: four writers ingest, a deleter deletes batches and a restorer restores from the trash while
# re-encode, compaction, recompression, migration, gc and deletions run every second; the daemon is SIGKILLed
# 300-1500 ms into each life, restarted and checked against their ledger),
# CYCLES kill points each, every run with its own seed. Each run starts from an empty data directory, so the
# verification after each kill stays quick; RUNS x CYCLES points in all (default 20 x 50 = 1,000).
#
#   tests/crash/torture.sh [RUNS] [CYCLES] [FIRST_SEED]
#
# Prints one line per run and a summary; exits non-zero at the first failing run (its seed reproduces it:
# `TIERD_CRASH_SEED=S TIERD_CRASH_PASS_CYCLES=C cargo test --workspace --locked --test crash every_pass`).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-20}
cycles=${2:-50}
first_seed=${3:-$(date +%s)}
log_dir=${TORTURE_LOG_DIR:-target/torture}
mkdir -p "$log_dir"
cargo test --workspace --locked --test crash --no-run >/dev/null 2>&1 || cargo test --workspace --locked --test crash --no-run
start=$(date +%s)
points=0
for i in $(seq 0 $((runs - 1))); do
    seed=$((first_seed + i))
    log="$log_dir/run-$seed.log"
    t0=$(date +%s)
    if ! TIERD_CRASH_SEED=$seed TIERD_CRASH_PASS_CYCLES=$cycles \
        cargo test --workspace --locked --test crash every_pass -- --nocapture >"$log" 2>&1; then
        echo "run $((i + 1))/$runs seed $seed: FAILED after $(( $(date +%s) - t0 )) s; log: $log" >&2
        tail -40 "$log" >&2
        echo "before it: $points kill points passed" >&2
        exit 1
    fi
    points=$((points + cycles))
    summary=$(grep -E "^crash test done" "$log" | tail -1)
    echo "run $((i + 1))/$runs seed $seed: $cycles kills ok in $(( $(date +%s) - t0 )) s; $summary"
done
echo "torture: $points kill points in $runs runs, all passed, $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# Issue 12, "Ingest parse amplification": peak RSS (VmHWM) of a tierd daemon before and after N parallel
# `POST /import` requests, each a gzip of a JSON array of five million `0`s (10 MB decoded, about 10 KB sent),
# then one normal import that must be acknowledged.
#
#   tests/scripts/ingest_amplification.sh [TIERD_BIN] [PARALLEL]
#
# Prints the answers' status codes and VmHWM before and after, in kB.
set -euo pipefail
BIN=${1:-target/debug/tierd}
N=${2:-8}
PORT=${PORT:-17391}
DIR=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
python3 -c 'import sys; sys.stdout.write("[" + "0," * 4999999 + "0]")' | gzip -9 > "$DIR/zeros.json.gz"
"$BIN" serve --data-dir "$DIR/data" --listen "127.0.0.1:$PORT" --no-schedules > "$DIR/log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.1; done
# Warm up: one normal import, so the baseline includes the writer's and the encoder's steady state.
NOW=$(date +%s)
EVENT="[{\"event\":\"e\",\"properties\":{\"time\":$NOW,\"distinct_id\":\"u\",\"\$insert_id\":\"warm\"}}]"
curl -s -o /dev/null -w "warm-up: %{http_code}\n" -H 'content-type: application/json' \
    --data-binary "$EVENT" "http://127.0.0.1:$PORT/import?project=p"
BEFORE=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
echo "gzip body: $(stat -c %s "$DIR/zeros.json.gz") bytes; $N in parallel"
for i in $(seq "$N"); do
    curl -s -o "$DIR/answer.$i" -w "%{http_code}\n" -H 'content-encoding: gzip' -H 'content-type: application/json' \
        --data-binary "@$DIR/zeros.json.gz" "http://127.0.0.1:$PORT/import?project=p" &
done | sort | uniq -c
head -c 300 "$DIR/answer.1"; echo
AFTER=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
EVENT="[{\"event\":\"e\",\"properties\":{\"time\":$NOW,\"distinct_id\":\"u\",\"\$insert_id\":\"after\"}}]"
curl -s -o /dev/null -w "normal import after: %{http_code}\n" -H 'content-type: application/json' \
    --data-binary "$EVENT" "http://127.0.0.1:$PORT/import?project=p"
echo "VmHWM before: $BEFORE kB, after: $AFTER kB, growth: $((AFTER - BEFORE)) kB"

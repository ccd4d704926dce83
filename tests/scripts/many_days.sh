#!/usr/bin/env bash
# Issue 12, "One request spanning many days": one request of 2000 events on 2000 different UTC days. Prints the
# answer, its latency, and the daemon's open file descriptors right after.
#
#   tests/scripts/many_days.sh [TIERD_BIN]
set -euo pipefail
BIN=${1:-target/debug/tierd}
PORT=${PORT:-17392}
DIR=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
python3 - > "$DIR/body.json" <<'PY'
import json, time
now = int(time.time())
print(json.dumps([{"event": "e", "properties": {"time": now - i * 86400, "distinct_id": "u", "$insert_id": f"d{i}"}}
                  for i in range(2000)]))
PY
"$BIN" serve --data-dir "$DIR/data" --listen "127.0.0.1:$PORT" --no-schedules > "$DIR/log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.1; done
echo "descriptors before: $(ls /proc/$PID/fd | wc -l)"
curl -s -w "\nstatus %{http_code} in %{time_total} s\n" -H 'content-type: application/json' \
    --data-binary "@$DIR/body.json" "http://127.0.0.1:$PORT/import?project=p" | cut -c1-300
echo "descriptors after: $(ls /proc/$PID/fd | wc -l)"

#!/usr/bin/env python3
"""Streaming rewrites at scale (issue 13): GBs of row segments of one project and day re-encoded and compacted by
the daemon, its RSS sampled every second, beside DuckDB's `COPY ... zstd-3` of the same events.

Run from the repository root (see BENCHMARKS.md), with a release build:

    CARGO_TARGET_DIR=target-rel cargo build --release --locked -p tierd-daemon
    python3 tests/bench/stream.py --bin target-rel/release/tierd --gb 1

Steps:
  1. `tierd gen` writes Mixpanel-shaped NDJSON of ONE day (`--days 1`, 2% re-sends, no late events) in chunks of
     `--chunk-events`, each with its own seed, until the chunks are about `--gb` x `--ndjson-per-row-byte` bytes
     (the row format stores about a third of the NDJSON's bytes; the figure printed is what the hot tier holds);
  2. a fresh `tierd serve --no-schedules` with `rewrite.max_memory_bytes = --memory` imports every chunk
     (`tierd import`, batches of 2000), which seals row segments at `hot.seal_max_bytes` (64 MiB);
  3. `reencode` is run by hand (`POST /v1/admin/passes/reencode/run`): actions of `passes.reencode.max_output_bytes`
     (`--reencode-max-output`) of row segments each, every one a streaming rewrite (sort buffer, spilled runs,
     merges); then `compact` with `passes.compact.target_bytes = --compact-target`, which merges the day's columnar
     segments into as few as that target allows (a k-way merge, in several levels when its inputs' row groups do not
     fit the budget at once);
  4. while each pass runs, the daemon's VmRSS is sampled every second (and its VmHWM, the kernel's peak, before
     anything else runs); the script reports peak RSS, seconds, events/s and bytes per pass; then the deduplicated
     count by event name (`POST /v1/query`) is checked against DuckDB's distinct count of the same NDJSON;
  5. DuckDB (`--threads`, 2 by default, as the daemon's two cores): the chunks read into an in-memory table
     (`read_json`, `unnest(properties)` into columns, time in ms as tierd reads it; timed apart), then, timed,
     `COPY (SELECT * FROM t ORDER BY event, time) TO f (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 3)`.

Disk: the NDJSON, gzipped once imported (about the row bytes), the row segments, the Parquet outputs, the retired
inputs (kept until gc) and the spill files of the rewrite running: about 4x `--gb` at the peak. `df` is printed
before, at the peak and after. (DuckDB's load time includes the gunzip; its COPY, the figure compared, does not.)
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

PROJECT = "stream"
DAY = "2026-01-01"


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def df(path):
    return subprocess.run(["df", "-h", path], capture_output=True, text=True).stdout.strip().splitlines()[-1]


def dir_bytes(path, suffix=None):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            if suffix is None or f.endswith(suffix):
                try:
                    total += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass
    return total


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


# The admin token the daemon writes to DATA_DIR/admin.token on its first start (the query and admin API need it).
TOKEN = None


def http(method, url, body=None, timeout=24 * 3600):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if TOKEN:
        headers["Authorization"] = "Bearer " + TOKEN
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode() or "null")


def start_daemon(binary, data_dir, config):
    global TOKEN
    cfg = os.path.join(data_dir, "..", "tierd.toml")
    with open(cfg, "w") as f:
        f.write(config)
    logf = open(os.path.join(data_dir, "..", "tierd.log"), "ab")
    p = subprocess.Popen([binary, "serve", "--config", cfg, "--data-dir", data_dir, "--listen", "127.0.0.1:0",
                          "--no-schedules"], stdout=subprocess.PIPE, stderr=logf, text=True)
    line = p.stdout.readline()
    m = re.search(r"http://(\S+)", line)
    if not m:
        p.kill()
        sys.exit(f"tierd did not start: {line!r}")
    token = os.path.join(data_dir, "admin.token")
    if os.path.exists(token):
        with open(token) as f:
            TOKEN = f.read().strip()
    return p, "http://" + m.group(1)


class RssSampler:
    """VmRSS of `pid` every second while running."""

    def __init__(self, pid):
        self.pid, self.samples, self.stop = pid, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        t0 = time.monotonic()
        while not self.stop.is_set():
            self.samples.append((round(time.monotonic() - t0, 1), status_kb(self.pid, "VmRSS")))
            self.stop.wait(1.0)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def run_pass(url, pid, name, csv):
    with RssSampler(pid) as s:
        t0 = time.monotonic()
        report = http("POST", f"{url}/v1/admin/passes/{name}/run", {})
        secs = time.monotonic() - t0
    if csv:
        with open(csv, "a") as f:
            for t, rss in s.samples:
                f.write(f"{name},{t},{rss}\n")
    peak = max((r for _, r in s.samples), default=0)
    actions = report.get("actions", [])
    return {
        "seconds": secs,
        "peak_rss": peak,
        "actions": len(actions),
        "errors": report.get("errors", []),
        "bytes_before": sum(a.get("bytes_before") or 0 for a in actions),
        "bytes_after": sum(a.get("bytes_after") or 0 for a in actions),
        "duplicates_removed": sum(a.get("duplicates_removed") or 0 for a in actions),
        "samples": len(s.samples),
    }


def counts_by_event(url):
    body = {"project": PROJECT, "from": 0, "to": 4102444800000, "group_by": "event"}
    out = http("POST", f"{url}/v1/query", body)
    return {r["key"]: r["count"] for r in out["rows"]}


def segments(url):
    out = http("GET", f"{url}/v1/catalog/segments?project={PROJECT}")
    return out["segments"]


def duckdb_peer(chunks, out_dir, threads):
    """The issue's peer: read_json -> unnest(properties) -> time in ms -> ORDER BY event, time -> COPY zstd-3."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET threads = {threads}")
    files = "[" + ",".join(f"'{c}'" for c in chunks) + "]"
    t0 = time.monotonic()
    con.execute(f"CREATE TABLE raw AS SELECT event, unnest(properties) FROM read_json({files}, "
                "format = 'newline_delimited')")
    con.execute("CREATE TABLE t AS SELECT * REPLACE (epoch_ms(CAST(CASE WHEN time >= 1e11 THEN time "
                "ELSE round(time * 1000) END AS BIGINT)) AS time) FROM raw")
    con.execute("DROP TABLE raw")
    load = time.monotonic() - t0
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    # tierd's dedup key: (event, distinct_id, time in ms, $insert_id).
    distinct = dict(con.execute(
        'SELECT event, count(*) FROM (SELECT DISTINCT event, time, distinct_id, "$insert_id" FROM t) GROUP BY event'
    ).fetchall())
    out = os.path.join(out_dir, "duckdb_zstd3.parquet")
    t0 = time.monotonic()
    con.execute(f"COPY (SELECT * FROM t ORDER BY event, time) TO '{out}' "
                "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 3)")
    copy = time.monotonic() - t0
    size = os.path.getsize(out)
    con.close()
    os.remove(out)
    return {"rows": rows, "load_s": load, "copy_s": copy, "bytes": size, "distinct_by_event": distinct}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target-rel/release/tierd")
    ap.add_argument("--gb", type=float, default=1.0, help="row segment bytes to reach, GB (1e9)")
    ap.add_argument("--ndjson-per-row-byte", type=float, default=3.0)
    ap.add_argument("--chunk-events", type=int, default=500_000)
    ap.add_argument("--memory", type=int, default=256 << 20, help="rewrite.max_memory_bytes")
    ap.add_argument("--reencode-max-output", type=int, default=256 << 20)
    ap.add_argument("--compact-target", type=int, default=64 << 30)
    ap.add_argument("--codec", default="zstd-3", help="passes.reencode.codec (the peer's COPY is zstd-3)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--csv", help="write the RSS samples (pass,t,rss_bytes) here")
    ap.add_argument("--work", help="work directory (default: a new one under /tmp, removed at the end)")
    ap.add_argument("--skip-duckdb", action="store_true")
    args = ap.parse_args()

    binary = os.path.abspath(args.bin)
    work = args.work or tempfile.mkdtemp(prefix="tierd-stream-")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("pass,t,rss_bytes\n")
    log("disk before:", df(work))
    machine = {"nproc": os.cpu_count(), "loadavg": open("/proc/loadavg").read().strip(),
               "mem_total": status_like("/proc/meminfo", "MemTotal")}

    config = f"""
[rewrite]
max_memory_bytes = {args.memory}
[passes.reencode]
codec = "{args.codec}"
min_age_secs = 0
max_output_bytes = {args.reencode_max_output}
[passes.compact]
target_bytes = {args.compact_target}
[query]
timeout_ms = 3600000
max_memory_bytes = 4294967296
max_total_memory_bytes = 4294967296
"""
    proc, url = start_daemon(binary, data, config)
    chunks, results = [], {}
    try:
        # 1-2: generate and import chunk by chunk until the row segments reach the target.
        target = args.gb * 1e9
        t0 = time.monotonic()
        seed = 1
        while dir_bytes(os.path.join(data, "hot"), ".rows") < target:
            chunk = os.path.join(work, f"chunk-{seed}.ndjson")
            subprocess.run([binary, "gen", "--events", str(args.chunk_events), "--days", "1", "--start", DAY,
                            "--seed", str(seed), "--late-rate", "0", "--out", chunk], check=True, capture_output=True)
            subprocess.run([binary, "import", chunk, "--project", PROJECT, "--url", url], check=True,
                           capture_output=True)
            # Kept gzipped for DuckDB (a quarter of the disk; it reads .gz itself).
            subprocess.run(["gzip", "-1", chunk], check=True)
            chunks.append(chunk + ".gz")
            seed += 1
            log(f"imported {len(chunks)} chunks; rows {dir_bytes(os.path.join(data, 'hot'), '.rows') / 1e9:.2f} GB")
        results["import_s"] = time.monotonic() - t0
        # Seal what is open (a restart seals every open segment), then the rewrites.
        proc.terminate()
        proc.wait(timeout=600)
        proc, url = start_daemon(binary, data, config)
        rows_bytes = dir_bytes(os.path.join(data, "hot"), ".rows")
        segs = segments(url)
        events = sum(s["rows"] for s in segs)
        results.update({"row_bytes": rows_bytes, "row_segments": len(segs), "stored_events": events,
                        "ndjson_gz_bytes": sum(os.path.getsize(c) for c in chunks),
                        "rss_after_import": status_kb(proc.pid, "VmRSS")})
        log(f"{len(segs)} row segments, {rows_bytes / 1e9:.2f} GB, {events} stored events; re-encoding")
        results["reencode"] = run_pass(url, proc.pid, "reencode", args.csv)
        log("reencode:", {k: v for k, v in results["reencode"].items() if k != "errors"}, results["reencode"]["errors"][:3])
        results["after_reencode"] = {"segments": len(segments(url)), "parquet_bytes": dir_bytes(os.path.join(data, "hot"), ".parquet")}
        results["compact"] = run_pass(url, proc.pid, "compact", args.csv)
        log("compact:", {k: v for k, v in results["compact"].items() if k != "errors"}, results["compact"]["errors"][:3])
        live = segments(url)
        results["after_compact"] = {"segments": len(live), "bytes": sum(s["bytes"] for s in live),
                                    "rows": sum(s["rows"] for s in live)}
        results["vm_hwm"] = status_kb(proc.pid, "VmHWM")
        # After the measured passes: the answer, checked against DuckDB's distinct count below.
        after = counts_by_event(url)
        results["deduplicated_events"] = sum(after.values())
        log("disk at the peak of the run:", df(work))
    finally:
        proc.terminate()
        proc.wait(timeout=600)
    if not args.skip_duckdb:
        log("duckdb")
        peer = duckdb_peer(chunks, work, args.threads)
        results["duckdb"] = {k: v for k, v in peer.items() if k != "distinct_by_event"}
        results["duckdb_counts_equal"] = peer["distinct_by_event"] == after
    results["machine"] = machine
    print(json.dumps(results, indent=2, default=str))
    report(results)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    log("disk after:", df("/tmp"))


def status_like(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
    return "?"


def report(r):
    mib = 1 << 20
    ev = r["stored_events"]
    print()
    print(f"row segments: {r['row_segments']} ({r['row_bytes'] / 1e9:.2f} GB), {ev:,} stored events, "
          f"NDJSON gzipped {r['ndjson_gz_bytes'] / 1e9:.2f} GB")
    print(f"| pass | seconds | events/s (stored, in) | peak RSS (sampled 1/s) | actions | bytes in -> out | errors |")
    print("|---|---|---|---|---|---|---|")
    for name in ("reencode", "compact"):
        p = r[name]
        rate = (ev / p["seconds"]) if p["seconds"] > 0 else 0
        print(f"| {name} | {p['seconds']:.1f} | {rate:,.0f} | {p['peak_rss'] / mib:.0f} MiB | {p['actions']} | "
              f"{p['bytes_before'] / 1e6:.0f} MB -> {p['bytes_after'] / 1e6:.0f} MB | {len(p['errors'])} |")
    print(f"VmHWM (the kernel's peak RSS of the daemon restarted after the import: both passes): {r['vm_hwm'] / mib:.0f} MiB")
    print(f"after compaction: {r['after_compact']['segments']} segments, {r['after_compact']['bytes'] / 1e6:.0f} MB, "
          f"{r['after_compact']['rows']:,} rows; deduplicated count {r['deduplicated_events']:,}")
    if "duckdb" in r:
        d = r["duckdb"]
        print(f"DuckDB ({d['rows']:,} rows): load {d['load_s']:.1f} s, COPY zstd-3 sorted {d['copy_s']:.1f} s "
              f"({d['rows'] / d['copy_s']:,.0f} rows/s), {d['bytes'] / 1e6:.0f} MB; distinct counts equal tierd's: "
              f"{r['duckdb_counts_equal']}")


if __name__ == "__main__":
    main()

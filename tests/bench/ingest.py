#!/usr/bin/env python3
"""Durable-ingest benchmark: tierd over HTTP vs DuckDB read_json on the same NDJSON file.

Run from the repository root (see BENCHMARKS.md):

    python3 tests/bench/ingest.py --events 400000 --runs 3

Steps: builds release binaries; generates one NDJSON stream with `tierd gen` (no duplicates, so every event is
new); for each run starts a fresh `tierd serve` on a temp dir and sends the whole file with `ingest-bench` (closed
loop, as fast as acknowledgements come back; acknowledgement = fsync + catalog commit); then offers half the median
throughput open loop and records ack latency percentiles; then loads the same file with DuckDB `read_json`
(in memory, and into a database file followed by CHECKPOINT, which is durable). Medians over --runs.
Also reports where tierd's time goes: CPU seconds of the daemon and of the load generator (from /proc), fsyncs,
group commit sizes and commit latency (from /metrics).
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TIERD = os.path.join(TARGET, "release", "tierd")
BENCH = os.path.join(TARGET, "release", "ingest-bench")
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def start_daemon(data_dir):
    p = subprocess.Popen(
        [TIERD, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=open(os.path.join(data_dir, "..", "tierd.log"), "ab"), text=True,
    )
    line = p.stdout.readline()
    m = re.search(r"http://(\S+)", line)
    if not m:
        p.kill()
        sys.exit(f"tierd did not start: {line!r}")
    return p, "http://" + m.group(1)


def metric_sum(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def scrape(url):
    import urllib.request
    with urllib.request.urlopen(url + "/metrics") as r:
        return r.read().decode()


def run_tierd(path, connections, batch, rate=0.0):
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        daemon, url = start_daemon(data)
        try:
            cpu0 = cpu_seconds(daemon.pid)
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run(
                [BENCH, path, "--url", url, "--connections", str(connections), "--batch", str(batch),
                 "--rate", str(rate)],
                capture_output=True, text=True,
            )
            if out.returncode != 0:
                sys.exit(f"ingest-bench failed: {out.stderr}\n{out.stdout}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            res["daemon_cpu_s"] = cpu_seconds(daemon.pid) - cpu0
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            res["loadgen_cpu_s"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
            res["daemon_cpu_us_per_event"] = 1e6 * res["daemon_cpu_s"] / res["events"]
            m = scrape(url)
            res["fsyncs"] = metric_sum(m, "tierd_hot_fsyncs_total")
            groups = metric_sum(m, "tierd_hot_groups_total")
            res["groups"] = groups
            res["batches_per_group"] = metric_sum(m, "tierd_hot_group_batches_sum") / max(groups, 1)
            res["commit_ms_mean"] = 1000 * metric_sum(m, "tierd_hot_commit_seconds_sum") / max(groups, 1)
            res["catalog_commit_ms_mean"] = 1000 * metric_sum(m, "tierd_catalog_commit_seconds_sum") / max(
                metric_sum(m, "tierd_catalog_commit_seconds_count"), 1)
            res["ingested"] = metric_sum(m, "tierd_ingest_events_total")
            return res
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)


def run_duckdb(path, durable):
    import duckdb
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.duckdb") if durable else ":memory:"
        con = duckdb.connect(db)
        t0 = time.perf_counter()
        con.execute(f"CREATE TABLE events AS SELECT * FROM read_json('{path}', format='newline_delimited')")
        if durable:
            con.execute("CHECKPOINT")
        secs = time.perf_counter() - t0
        n = con.execute("SELECT count(*) FROM events").fetchone()[0]
        con.close()
        return {"events": n, "seconds": secs, "events_per_s": n / secs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "tierd", "--bin", "ingest-bench"],
                       cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="tierd-bench-")
    path = os.path.join(work, "events.ndjson")
    subprocess.run([TIERD, "gen", "--events", str(args.events), "--days", str(args.days), "--seed", "1",
                    "--dup-rate", "0", "--out", path], check=True)
    size = os.path.getsize(path)
    print(f"# {args.events} events, {size / 1e6:.1f} MB NDJSON ({size / args.events:.0f} B/event), "
          f"{os.cpu_count()} cores", flush=True)

    closed = [run_tierd(path, args.connections, args.batch) for _ in range(args.runs)]
    for r in closed:
        assert r["ingested"] == args.events, r
        print("tierd closed loop:", json.dumps(r), flush=True)
    eps = statistics.median(r["events_per_s"] for r in closed)
    half = [run_tierd(path, args.connections, args.batch, rate=eps / 2) for _ in range(args.runs)]
    for r in half:
        print("tierd at half rate:", json.dumps(r), flush=True)
    duck_mem = [run_duckdb(path, durable=False) for _ in range(args.runs)]
    duck_file = [run_duckdb(path, durable=True) for _ in range(args.runs)]
    for r in duck_mem + duck_file:
        assert r["events"] == args.events, r

    med = lambda rs, k: statistics.median(r[k] for r in rs)
    medp = lambda rs, k: statistics.median(r["ack_ms"][k] for r in rs)
    print()
    print("| measurement | events/s | MB/s | ack p50 ms | p99 ms | p999 ms | daemon CPU µs/event | load generator CPU s | "
          "requests/group | group commit ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, rs in [("tierd, closed loop", closed), (f"tierd, offered {eps / 2:,.0f} ev/s", half)]:
        print(f"| {name} | {med(rs, 'events_per_s'):,.0f} | {med(rs, 'mb_per_s'):.1f} | {medp(rs, 'p50'):.2f} | "
              f"{medp(rs, 'p99'):.2f} | {medp(rs, 'p999'):.2f} | {med(rs, 'daemon_cpu_us_per_event'):.2f} | "
              f"{med(rs, 'loadgen_cpu_s'):.2f} | "
              f"{med(rs, 'batches_per_group'):.1f} | {med(rs, 'commit_ms_mean'):.2f} |")
    print(f"| DuckDB read_json, in memory | {med(duck_mem, 'events_per_s'):,.0f} | "
          f"{size / med(duck_mem, 'seconds') / 1e6:.1f} | | | | | | | |")
    print(f"| DuckDB read_json into a file + CHECKPOINT | {med(duck_file, 'events_per_s'):,.0f} | "
          f"{size / med(duck_file, 'seconds') / 1e6:.1f} | | | | | | | |")


if __name__ == "__main__":
    main()

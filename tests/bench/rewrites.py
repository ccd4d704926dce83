#!/usr/bin/env python3
"""Rewrite speed (issue 13, "use both cores", "re-encode at least as fast as DuckDB's COPY zstd-3", "recompress at
least as fast as DuckDB's zstd-19 COPY"): tierd's `reencode`, `compact` and `recompress` passes beside DuckDB's
sorted `COPY ... (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 3|19)` of the same events, in one run.

Run from the repository root (see BENCHMARKS.md, "Rewrite speed"):

    CARGO_TARGET_DIR=target-rel cargo build --release --locked -p tierd-daemon
    python3 tests/bench/rewrites.py --bin target-rel/release/tierd --runs 3 --tierd-threads 1,2

1. Data: the stream of `tests/bench/queries.py` (`tierd gen --events N --days 7 --seed 1`, 2% byte-identical
   re-sends, 1% late events, time in seconds for half the events), imported once into a fresh
   `tierd serve --no-schedules` (`tierd import`, over HTTP), then the daemon restarted (which seals the open row
   segments). That data directory is the template of every run.
2. tierd, for each `--tierd-threads` value (`[rewrite] threads`), `--runs` times: a fresh copy of the template, the
   daemon started on it (`[passes] nice = 0`, so that the passes and DuckDB share the CPU on equal terms; the default
   10 yields to ingest, queries and, on a shared machine, everyone else), the start-up scrub of the hot segments
   waited for (it would otherwise share the CPU with the first pass), then, each timed over HTTP (`POST /v1/admin/passes/NAME/run`, as `tierd pass` does): `reencode`
   (the row segments of each day -> one Parquet segment, lz4: read, sort, dedup, encode, fsync, verify, commit),
   `compact` (the day's segments merged, when there is more than one) and `recompress` (the default ladder takes
   segments this old to zstd-19). Medians.
3. DuckDB (in process, `--threads`, 2 by default): the same file loaded as `tests/bench/queries.py` loads it
   (`read_json` -> `unnest(properties)` -> time in ms -> one row per event, as tierd's dedup keeps), untimed; then,
   `--runs` times each and timed, `COPY (SELECT * FROM d ORDER BY event, time) TO f (FORMAT parquet, COMPRESSION
   zstd, COMPRESSION_LEVEL 3)` and the same with level 19. Medians.

tierd's passes do more than DuckDB's COPY: they read and check their inputs from disk (crc32c), deduplicate,
write a side segment of the removed copies, fsync, read the output back to verify it and commit to the catalog;
DuckDB's COPY starts from a deduplicated table in memory. Both sides are given the same number of threads.
Prints a Markdown table and, with --json, everything measured.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cold  # noqa: E402
import queries  # noqa: E402

PASSES = ("reencode", "compact", "recompress")


class Daemon(queries.Daemon):
    """`queries.Daemon` that sends the admin token the daemon writes to `DATA_DIR/admin.token` (the catalog and the
    passes need it)."""

    def auth(self):
        with open(os.path.join(self.data, "admin.token")) as f:
            return {"Authorization": "Bearer " + f.read().strip()}

    def cpu_seconds(self):
        """User + system CPU time of every thread of the daemon so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def run_pass(self, name, body=None):
        """The pass's report, its wall seconds and the daemon's CPU seconds over it."""
        cpu, t0 = self.cpu_seconds(), time.perf_counter()
        report = json.loads(cold.http("POST", f"{self.url}/v1/admin/passes/{name}/run", body or {},
                                      headers=self.auth()))
        return report, time.perf_counter() - t0, self.cpu_seconds() - cpu

    def segments(self, project):
        url = f"{self.url}/v1/catalog/segments?project={project}"
        return json.loads(cold.http("GET", url, headers=self.auth()))["segments"]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def template_data(binary, work, ndjson):
    """The data directory after the import and a restart: sealed row segments only."""
    data = os.path.join(work, "template")
    config = os.path.join(work, "import.toml")
    with open(config, "w") as f:
        f.write("")
    d = Daemon(binary, data, config)
    try:
        t = time.perf_counter()
        subprocess.run([binary, "import", ndjson, "--project", queries.PROJECT, "--url", d.url], check=True,
                       capture_output=True)
        log(f"import: {time.perf_counter() - t:.1f} s")
        d.restart()
        segs = d.segments(queries.PROJECT)
    finally:
        d.stop()
    return data, segs


def wait_for_scrub(d, segments, timeout=120):
    """Until the start-up scrub has read every sealed hot segment (or `timeout` seconds)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = cold.metric(d.metrics(), "tierd_scrub_segments_total")
        if done >= segments:
            return True
        time.sleep(0.2)
    return False


def run_tierd(binary, work, template, segments, threads, runs):
    config = os.path.join(work, f"threads{threads}.toml")
    with open(config, "w") as f:
        # nice 0: the passes and DuckDB (a normal process) then share a busy machine's CPU on equal terms; a daemon
        # runs them at passes.nice = 10 so that ingest and queries come first.
        f.write(f"[rewrite]\nthreads = {threads}\n[passes]\nnice = 0\n")
    out = {name: [] for name in PASSES}
    out["result"] = None
    for r in range(runs):
        data = cold.fresh_copy(template, work, f"run-t{threads}")
        d = Daemon(binary, data, config)
        try:
            if not wait_for_scrub(d, segments):
                log("warning: the start-up scrub did not finish in time")
            for name in PASSES:
                report, secs, cpu = d.run_pass(name)
                assert not report["errors"], report["errors"]
                out[name].append({"s": secs, "cpu": cpu, "actions": len(report["actions"]), "load": cold.loadavg()})
                log(f"tierd threads={threads} run {r + 1}: {name}: {len(report['actions'])} actions in {secs:.2f} s, "
                    f"{cpu:.2f} CPU s, load {cold.loadavg()}")
            segs = d.segments(queries.PROJECT)
            out["result"] = {
                "segments": len(segs),
                "events": sum(s["rows"] for s in segs),
                "bytes": sum(s["bytes"] for s in segs),
                "codecs": sorted({s.get("codec", "?") for s in segs}),
            }
        finally:
            d.stop()
            shutil.rmtree(data, ignore_errors=True)
    return out


def run_duckdb(ndjson, work, runs, threads):
    import duckdb
    con, _ = queries.duckdb_events(ndjson, threads)
    rows = con.execute("SELECT count(*) FROM d").fetchone()[0]
    out = {"rows": rows, "threads": con.execute("SELECT current_setting('threads')").fetchone()[0],
           "version": duckdb.__version__}
    f = os.path.join(work, "duckdb.parquet")
    for level in (3, 19):
        times, cpus = [], []
        for r in range(runs):
            cpu, t = time.process_time(), time.perf_counter()
            con.execute(f"COPY (SELECT * FROM d ORDER BY event, time) TO '{f}' "
                        f"(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {level})")
            times.append(time.perf_counter() - t)
            cpus.append(time.process_time() - cpu)
            log(f"DuckDB COPY zstd-{level} run {r + 1}: {times[-1]:.2f} s, {cpus[-1]:.2f} CPU s, "
                f"load {cold.loadavg()}")
        out[f"zstd{level}"] = {"s": times, "cpu": cpus, "bytes": os.path.getsize(f)}
        os.remove(f)
    con.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=cold.TIERD, help="the tierd build measured (also used to generate the data)")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="DuckDB's threads")
    ap.add_argument("--tierd-threads", default="2", help="comma-separated values of tierd's [rewrite] threads")
    ap.add_argument("--work", help="keep everything in this directory instead of a temporary one")
    ap.add_argument("--json", help="also write everything measured to this file")
    ap.add_argument("--no-duckdb", action="store_true", help="measure tierd only (while working on it)")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    tmp = tempfile.TemporaryDirectory(dir=args.work) if args.work else tempfile.TemporaryDirectory()
    work = tmp.name
    load_start = cold.loadavg()
    log(f"rewrites benchmark: {os.uname().nodename}, {os.cpu_count()} CPUs, load {load_start}")
    ndjson, seconds = queries.prepare(binary, work, args.events)
    template, segs = template_data(binary, work, ndjson)
    stored = sum(s["rows"] for s in segs)
    log(f"template: {len(segs)} row segments, {stored} events stored, {sum(s['bytes'] for s in segs) / 1e6:.1f} MB")
    results = {"events": args.events, "stored": stored, "row_segments": len(segs), "load_start": load_start}
    for threads in [int(t) for t in args.tierd_threads.split(",")]:
        results[f"tierd threads={threads}"] = run_tierd(binary, work, template, len(segs), threads, args.runs)
    results["duckdb"] = None if args.no_duckdb else run_duckdb(ndjson, work, args.runs, args.threads)
    results["load_end"] = cold.loadavg()

    med = statistics.median
    duck = results["duckdb"] or {"rows": 0, "threads": "-"}
    print(f"\n{args.events:,} lines, {stored:,} events stored in {len(segs)} row segments; DuckDB {duck['rows']:,} "
          f"rows (deduplicated), {duck['threads']} threads; medians of {args.runs} runs; load average "
          f"{load_start} at the start, {results['load_end']} at the end\n")
    print("| what | wall s (median) | wall s, each run | CPU s (median) | events/s (wall) |")
    print("|---|---|---|---|---|")
    for key in [k for k in results if k.startswith("tierd threads=")]:
        for name in PASSES:
            ts = [x["s"] for x in results[key][name]]
            cpu = med([x["cpu"] for x in results[key][name]])
            rate = stored / med(ts) if name == "reencode" else None
            print(f"| {key}: {name} ({results[key][name][0]['actions']} actions) | {med(ts):.2f} | "
                  f"{', '.join(f'{t:.2f}' for t in ts)} | {cpu:.2f} | {f'{rate:,.0f}' if rate else ''} |")
        res = results[key]["result"]
        print(f"| {key}: result | {res['segments']} segments, {res['events']:,} events, {res['bytes']:,} bytes, "
              f"{res['codecs']} | | |")
    for level in (3, 19) if results["duckdb"] else ():
        ts = duck[f"zstd{level}"]["s"]
        print(f"| DuckDB COPY zstd-{level}, sorted | {med(ts):.2f} | {', '.join(f'{t:.2f}' for t in ts)} | "
              f"{med(duck[f'zstd{level}']['cpu']):.2f} | {duck['rows'] / med(ts):,.0f} rows/s "
              f"({duck[f'zstd{level}']['bytes']:,} bytes) |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Columnar segment benchmark: tierd's columnar segments vs DuckDB's and pyarrow's Parquet writers, same data.

Run from the repository root (see BENCHMARKS.md):

    python3 tests/bench/columnar.py --events 500000 --runs 3

Datasets (each turned into Mixpanel-shaped NDJSON, the form tierd ingests):
- gen: `tierd gen --events N --days 7 --seed 1 --dup-rate 0`;
- gharchive: the GH Archive hour 2015-01-01 15:00 (shared/data/real), event = type, distinct_id = str(actor),
  $insert_id = id, time = created_at in epoch seconds, every other key (repo, org, public, payload) a property;
- wikipedia: the wikiticker sample of Wikipedia edits, event = channel, distinct_id = user, time = the ISO `time`
  in epoch seconds (float, millisecond precision), $insert_id = md5 of the source line, every other field a property.

For each dataset:
- tierd (`columnar-bench`, release): parses the NDJSON with `parse_batch`, then per rung of the ladder (lz4,
  zstd-3, zstd-19; default row group size) times `columnar::encode` of all events as one segment, and times a
  count-by-event over the middle half of the time range with `columnar::count_by_event`, the path a query takes on
  a day held by one (deduplicated) columnar segment: only `time` and `event` are decoded (single thread; the
  reported scan time includes reading the whole file, from the page cache; `event_scan_mem_ms` in the JSON is the
  general path, a `columnar::scan` building every event, from memory).
- DuckDB: `read_json` of the same NDJSON with `properties` unnested into top-level columns
  (`SELECT event, unnest(properties)`; types as DuckDB infers them), `time` turned into a TIMESTAMP with the same
  seconds-or-milliseconds rule as tierd, sorted by time, held in memory; then timed
  `COPY t TO f (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 3 | 19)`, and the same count-by-event
  `SELECT event, count(*) FROM f WHERE time >= .. AND time < .. GROUP BY event` on its own zstd-3 file.
- pyarrow: `pq.write_table(table, f, compression="zstd")` (pyarrow's default zstd level) of the same table fetched
  from DuckDB as Arrow.
Medians over --runs. The per-event-name counts of every scan are checked against tierd's.
"""
import argparse
import gzip
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TIERD = os.path.join(TARGET, "release", "tierd")
BENCH = os.path.join(TARGET, "release", "columnar-bench")
REAL = os.path.join(ROOT, "..", "shared", "data", "real")
GHARCHIVE = os.path.join(REAL, "gharchive_2015-01-01-15", "events.json.zst")
WIKIPEDIA = os.path.join(REAL, "wikipedia_edits_wikiticker", "wikiticker-2015-09-12-sampled.json.gz")


def uptime():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def iso_seconds(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_zst(path):
    try:
        import zstandard
        with open(path, "rb") as f:
            return zstandard.ZstdDecompressor().stream_reader(f).read()
    except ImportError:
        return subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout


def prepare_gen(tmp, events):
    out = os.path.join(tmp, "gen.ndjson")
    subprocess.run([TIERD, "gen", "--events", str(events), "--days", "7", "--seed", "1", "--dup-rate", "0",
                    "--out", out], check=True, capture_output=True)
    return out


def prepare_gharchive(tmp):
    out = os.path.join(tmp, "gharchive.ndjson")
    with open(out, "w") as w:
        for line in read_zst(GHARCHIVE).splitlines():
            if not line.strip():
                continue
            o = json.loads(line)
            props = {"time": int(iso_seconds(o["created_at"])), "distinct_id": str(o["actor"]), "$insert_id": o["id"]}
            for k, v in o.items():
                if k not in ("type", "actor", "id", "created_at"):
                    props[k] = v
            w.write(json.dumps({"event": o["type"], "properties": props}, separators=(",", ":")) + "\n")
    return out


def prepare_wikipedia(tmp):
    out = os.path.join(tmp, "wikipedia.ndjson")
    with gzip.open(WIKIPEDIA, "rb") as r, open(out, "w") as w:
        for line in r:
            if not line.strip():
                continue
            o = json.loads(line)
            props = {"time": round(iso_seconds(o["time"]), 3), "distinct_id": o["user"],
                     "$insert_id": hashlib.md5(line.rstrip(b"\n")).hexdigest()}
            for k, v in o.items():
                if k not in ("time", "channel", "user"):
                    props[k] = v
            w.write(json.dumps({"event": o["channel"], "properties": props}, separators=(",", ":")) + "\n")
    return out


def run_tierd(path, out_dir, runs):
    p = subprocess.run([BENCH, path, "--out-dir", out_dir, "--runs", str(runs)], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"columnar-bench failed:\n{p.stderr}")
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return lines[0], lines[1:]


def timed(fn, runs):
    times = []
    result = None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), result


def run_peers(path, out_dir, runs, window, threads):
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    used_threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    t = time.perf_counter()
    con.execute(f"CREATE TABLE raw AS SELECT event, unnest(properties) FROM read_json('{path}', "
                "format='newline_delimited')")
    con.execute("CREATE TABLE t AS SELECT * REPLACE (epoch_ms(CAST(CASE WHEN time >= 1e11 THEN time "
                "ELSE round(time * 1000) END AS BIGINT)) AS time) FROM raw ORDER BY time")
    con.execute("DROP TABLE raw")
    load_s = time.perf_counter() - t
    n = con.execute("SELECT count(*) FROM t").fetchone()[0]
    schema = con.execute("DESCRIBE t").fetchall()
    rows = {"_n": n, "_threads": used_threads, "_load_s": load_s, "_columns": len(schema),
            "_schema": [(c[0], c[1][:60]) for c in schema]}

    for level in (3, 19):
        f = os.path.join(out_dir, f"duckdb-zstd-{level}.parquet")

        def copy():
            if os.path.exists(f):
                os.remove(f)
            con.execute(f"COPY t TO '{f}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {level})")
        ms, _ = timed(copy, runs)
        rows[f"DuckDB zstd-{level}"] = {"bytes": os.path.getsize(f), "encode_ms": ms, "path": f}

    rel = con.sql("SELECT * FROM t")
    fetch = getattr(rel, "to_arrow_table", None) or getattr(rel, "fetch_arrow_table", None) or rel.arrow
    arrow = fetch()
    if isinstance(arrow, pa.RecordBatchReader):
        arrow = arrow.read_all()
    f = os.path.join(out_dir, "pyarrow-zstd.parquet")
    ms, _ = timed(lambda: pq.write_table(arrow, f, compression="zstd"), runs)
    rows["pyarrow zstd"] = {"bytes": os.path.getsize(f), "encode_ms": ms, "path": f}
    del arrow

    lo, hi = window
    own = rows["DuckDB zstd-3"]["path"]
    q = (f"SELECT event, count(*) FROM read_parquet('{own}') WHERE time >= epoch_ms({lo}) AND time < epoch_ms({hi}) "
         "GROUP BY event")
    ms, res = timed(lambda: con.execute(q).fetchall(), runs)
    rows["DuckDB zstd-3"]["scan_ms"] = ms
    rows["DuckDB zstd-3"]["counts"] = dict(res)
    own19 = rows["DuckDB zstd-19"]["path"]
    ms, res = timed(lambda: con.execute(q.replace(own, own19)).fetchall(), runs)
    rows["DuckDB zstd-19"]["scan_ms"] = ms
    rows["DuckDB zstd-19"]["counts"] = dict(res)
    con.close()
    return rows


def fmt(x, nd=1):
    return "" if x is None else f"{x:,.{nd}f}"


def report(name, info, tierd, peers):
    n = info["events"]
    print(f"\n### {name}: {n:,} events, {info['json_bytes'] / n:,.0f} bytes/event as NDJSON "
          f"({info['rejected_lines']} lines rejected by tierd), scan window [{info['from_ms']}, {info['to_ms']}) ms; "
          f"DuckDB rows {peers['_n']:,}, threads {peers['_threads']}, {peers['_columns']} columns\n")
    print("| writer | bytes/event | file MB | encode ms | events/s | scan ms (count by event) | events in window |")
    print("|---|---|---|---|---|---|---|")
    table = {}
    for r in tierd:
        key = f"tierd {r['compression']}"
        table[key] = r
        print(f"| {key} | {fmt(r['bytes_per_event'], 2)} | {fmt(r['bytes'] / 1e6, 2)} | {fmt(r['encode_ms'])} | "
              f"{fmt(n / r['encode_ms'] * 1e3, 0)} | {fmt(r['scan_ms'], 2)} (from memory {fmt(r['scan_mem_ms'], 2)}) | "
              f"{r['matched']:,} |")
    for key in ("DuckDB zstd-3", "DuckDB zstd-19", "pyarrow zstd"):
        r = peers[key]
        r["bytes_per_event"] = r["bytes"] / n
        table[key] = r
        scan = fmt(r.get("scan_ms"), 2)
        matched = f"{sum(r['counts'].values()):,}" if "counts" in r else ""
        print(f"| {key} | {fmt(r['bytes_per_event'], 2)} | {fmt(r['bytes'] / 1e6, 2)} | {fmt(r['encode_ms'])} | "
              f"{fmt(n / r['encode_ms'] * 1e3, 0)} | {scan} | {matched} |")
    t3, d3 = table.get("tierd zstd-3"), table["DuckDB zstd-3"]
    ok = []
    if t3:
        ratio = t3["bytes_per_event"] / d3["bytes_per_event"]
        ok.append(f"tierd zstd-3 / DuckDB zstd-3 bytes/event = {ratio:.3f} (target <= 0.6: "
                  f"{'met' if ratio <= 0.6 else 'NOT met'})")
        ok.append(f"encode tierd zstd-3 {t3['encode_ms']:.1f} ms vs DuckDB zstd-3 COPY {d3['encode_ms']:.1f} ms "
                  f"(target tierd <= DuckDB: {'met' if t3['encode_ms'] <= d3['encode_ms'] else 'NOT met'})")
        ok.append(f"scan tierd zstd-3 {t3['scan_ms']:.2f} ms vs DuckDB on its zstd-3 file {d3['scan_ms']:.2f} ms "
                  f"(target tierd <= DuckDB: {'met' if t3['scan_ms'] <= d3['scan_ms'] else 'NOT met'})")
        tl = table.get("tierd lz4")
        if tl:
            ok.append(f"tierd lz4: encode {tl['encode_ms']:.1f} ms, scan {tl['scan_ms']:.2f} ms")
        for key in ("DuckDB zstd-3", "DuckDB zstd-19"):
            if table[key]["counts"] != t3["counts"]:
                ok.append(f"WARNING: {key} scan counts differ from tierd's: "
                          f"{sum(table[key]['counts'].values())} vs {t3['matched']}")
    if peers["_n"] != n:
        ok.append(f"WARNING: DuckDB loaded {peers['_n']} rows, tierd {n} events")
    print()
    for line in ok:
        print("- " + line)
    return table


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=500_000, help="events of the generated stream")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--datasets", default="gen,gharchive,wikipedia")
    ap.add_argument("--duckdb-threads", type=int, default=0, help="0 = DuckDB's default (all cores)")
    ap.add_argument("--keep", help="keep inputs and files in this directory instead of a temp dir")
    ap.add_argument("--json", help="also write all results to this file")
    args = ap.parse_args()
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pyarrow"], check=True)
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "tierd", "--bin", "columnar-bench"],
                       cwd=ROOT, check=True)
    import duckdb
    import pyarrow
    print(f"# columnar benchmark: {os.uname().nodename}, {os.cpu_count()} CPUs, DuckDB {duckdb.__version__}, "
          f"pyarrow {pyarrow.__version__}, runs {args.runs}; load before: {uptime()}")
    tmp_ctx = tempfile.TemporaryDirectory() if not args.keep else None
    tmp = args.keep or tmp_ctx.name
    os.makedirs(tmp, exist_ok=True)
    prepare = {"gen": lambda: prepare_gen(tmp, args.events), "gharchive": lambda: prepare_gharchive(tmp),
               "wikipedia": lambda: prepare_wikipedia(tmp)}
    everything = {}
    for name in args.datasets.split(","):
        path = prepare[name]()
        out = os.path.join(tmp, name)
        os.makedirs(out, exist_ok=True)
        info, tierd = run_tierd(path, out, args.runs)
        peers = run_peers(path, out, args.runs, (info["from_ms"], info["to_ms"]), args.duckdb_threads)
        table = report(name, info, tierd, peers)
        everything[name] = {"input": info, "rows": table, "duckdb_schema": peers["_schema"],
                            "duckdb_load_s": peers["_load_s"]}
        print(f"\n(load now: {uptime()})", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=1, default=str)
    print(f"\nload after: {uptime()}")
    if tmp_ctx:
        tmp_ctx.cleanup()


if __name__ == "__main__":
    main()

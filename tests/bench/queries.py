#!/usr/bin/env python3
"""Query benchmark: tierd's `POST /v1/query` against DuckDB (and ClickHouse through chdb, when it is installed) on
the same events, side by side in one run. Issue 13, "Queries as fast as the best engine on the same files".

Run from the repository root (see BENCHMARKS.md, "Queries"):

    CARGO_TARGET_DIR=target-rel cargo build --release --locked -p tierd-daemon
    python3 tests/bench/queries.py --bin target-rel/release/tierd --before /path/to/main/tierd --runs 11

1. Data: `tierd gen --events N --days 7 --seed 1` (2% byte-identical re-sends, 1% late events, Mixpanel-shaped:
   `$city`, `$os`, `$browser`, ...), with `properties.time` rewritten as float seconds (ms precision, so the same
   instant) for every event whose `$insert_id` starts with an even hex digit, so seconds and milliseconds mix.
2. tierd: a fresh `tierd serve --no-schedules` (the `--bin` build), `tierd import` of the file over HTTP, a restart
   (which seals the open row segments), then the `reencode`, `compact` and `recompress` passes
   (`POST /v1/admin/passes/NAME/run`; the default ladder takes segments this old to zstd-19). The data directory is
   then copied for each build measured (`--before`, the engine of main, and `--bin`): both query the same files.
3. Queries, each timed over HTTP from this script (`urllib`, a fresh connection per query, as a client would): one
   warm-up run, then the median of `--runs`:
   - count by event over a 4-day window (days 2..5 of the 7, whole UTC days);
   - group by `properties.$city` over the same window;
   - `event = Purchase` group by `properties.$os`, all 7 days;
   - distinct users over the window: the query API has no distinct count, so tierd answers
     `group_by: properties.distinct_id` with `limit: 1` (its `other.groups` + 1 is the number of users); the peers
     answer `count(DISTINCT distinct_id)`.
4. DuckDB (in process, `--threads`, default 2): `read_json` of the same file -> `unnest(properties)` -> time as
   BIGINT ms (the same seconds-or-milliseconds rule as tierd) -> one row per `$insert_id` and event identity (tierd
   deduplicates, so the peers get the deduplicated events and every answer can be compared) -> `ORDER BY event, time`
   -> `COPY ... (FORMAT parquet, COMPRESSION zstd)`; the queries run on that file.
5. ClickHouse through chdb (when `import chdb` works): a MergeTree table `ORDER BY (event, time)` of the columns
   the queries read (`LowCardinality` strings, `Delta` time) loaded from DuckDB's file, `max_threads` = `--threads`.

6. With `--cold`: the same queries on cold segments. A fresh copy of the data directory, served with its cold tier
   on a moto server on 127.0.0.1 (`s3://`, started by this script; `[budget]` unlimited), every segment moved cold by
   hand (`POST /v1/admin/move {"to": "cold"}`: their hot copies leave service). Per query, `--first-runs` times: the
   daemon stopped, `DATA_DIR/cache` removed, restarted, one query of another project (warms the HTTP path), then the
   query once: the first read (blocks fetched from moto; bytes and requests from `tierd_cold_*` metrics); then the
   median of `--runs` more (after one warm-up): cached (every block from the cold cache on the hot disk). DuckDB's
   peer figures stay its queries of its local Parquet file (no object store: it is the peer of the cached reads).

Every peer's answer is checked against tierd's. Prints a Markdown table and, with --json, everything measured.
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
import cold  # noqa: E402  (the Daemon, HTTP and metric helpers)

PROJECT = "bench"
DAY_MS = 86_400_000
START_MS = 1_767_225_600_000  # 2026-01-01, `tierd gen`'s default start
WINDOW = (START_MS + 2 * DAY_MS, START_MS + 6 * DAY_MS)
ALL = (0, 4_102_444_800_000)

CONFIG = """
[query]
max_groups = 10000000
"""


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def prepare(tierd, work, events):
    raw = os.path.join(work, "raw.ndjson")
    out = os.path.join(work, "events.ndjson")
    subprocess.run([tierd, "gen", "--events", str(events), "--days", "7", "--seed", "1", "--out", raw], check=True,
                   capture_output=True)
    seconds = 0
    with open(raw) as r, open(out, "w") as w:
        for line in r:
            e = json.loads(line)
            p = e["properties"]
            # By `$insert_id`, so a re-send (a byte-identical copy) gets the same form as its original.
            if int(p["$insert_id"][0], 16) % 2 == 0:
                p["time"] = p["time"] / 1000
                seconds += 1
            w.write(json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n")
    os.remove(raw)
    return out, seconds


def tierd_queries():
    lo, hi = WINDOW
    return {
        "count by event, 4-day window": {"project": PROJECT, "from": lo, "to": hi, "group_by": "event"},
        "group by $city, 4-day window": {"project": PROJECT, "from": lo, "to": hi,
                                         "group_by": "properties.$city"},
        "event = Purchase group by $os": {"project": PROJECT, "from": ALL[0], "to": ALL[1], "event": "Purchase",
                                          "group_by": "properties.$os"},
        "distinct users, 4-day window": {"project": PROJECT, "from": lo, "to": hi,
                                         "group_by": "properties.distinct_id", "limit": 1},
    }


def peer_queries(table):
    lo, hi = WINDOW
    window = f"time >= {lo} AND time < {hi}"
    return {
        "count by event, 4-day window": f"SELECT event, count(*) FROM {table} WHERE {window} GROUP BY event",
        "group by $city, 4-day window": f'SELECT "$city", count(*) FROM {table} WHERE {window} GROUP BY 1',
        "event = Purchase group by $os": f"SELECT \"$os\", count(*) FROM {table} WHERE event = 'Purchase' GROUP BY 1",
        "distinct users, 4-day window": f"SELECT count(DISTINCT distinct_id) FROM {table} WHERE {window}",
    }


def normalize(name, rows):
    """An answer as {key: count} (keys as text, null as None), or the distinct count."""
    if name.startswith("distinct"):
        return rows
    return {None if k is None else str(k): int(n) for k, n in rows}


def tierd_answer(name, r):
    if name.startswith("distinct"):
        return len(r["rows"]) + (r.get("other") or {}).get("groups", 0)
    return normalize(name, [(row["key"], row["count"]) for row in r["rows"]])


def timed(fn, runs):
    fn()  # warm-up
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), result


def build_data(binary, work, ndjson):
    data = os.path.join(work, "template")
    config = os.path.join(work, "bench.toml")
    with open(config, "w") as f:
        f.write(CONFIG)
    d = Daemon(binary, data, config)
    info = {}
    try:
        t = time.perf_counter()
        subprocess.run([binary, "import", ndjson, "--project", PROJECT, "--url", d.url], check=True,
                       capture_output=True, env=dict(os.environ, TIERD_TOKEN=cold.TOKENS.get(d.url, "")))
        info["import_s"] = time.perf_counter() - t
        d.restart()  # seals the open row segments
        for name in ("reencode", "compact", "recompress"):
            report, secs = d.run_pass(name)
            assert not report["errors"], report["errors"]
            info[f"{name}_s"] = secs
            info[f"{name}_actions"] = len(report["actions"])
            log(f"# {name}: {len(report['actions'])} actions in {secs:.1f} s")
        segs = d.segments(PROJECT)
        info["segments"] = [(s["day"], s["format"], s["rows"], s["bytes"]) for s in segs]
        info["events"] = sum(s["rows"] for s in segs)
        info["bytes"] = sum(s["bytes"] for s in segs)
    finally:
        d.stop()
    return data, config, info


def serve_no_schedules(binary):
    """A wrapper of `binary` whose `serve` adds `--no-schedules` (`cold.Daemon` builds the command line)."""
    wrapper = binary + ".no-schedules.sh"
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nif [ "$1" = serve ]; then shift; exec "{binary}" serve --no-schedules "$@"; fi\n'
                f'exec "{binary}" "$@"\n')
    os.chmod(wrapper, 0o755)
    return wrapper


class Daemon(cold.Daemon):
    """`cold.Daemon` running `binary serve --no-schedules`: passes run only when the script asks."""

    def __init__(self, binary, data, config):
        self.wrapper = serve_no_schedules(binary)
        super().__init__(data, config)

    def start(self):
        saved, cold.TIERD = cold.TIERD, self.wrapper
        try:
            super().start()
        finally:
            cold.TIERD = saved


def run_tierd(label, binary, work, template, config, runs):
    data = cold.fresh_copy(template, work, label)
    d = Daemon(binary, data, config)
    out = {}
    try:
        for name, q in tierd_queries().items():
            ms, r = timed(lambda: cold.post(d.url + "/v1/query", q), runs)
            out[name] = {"ms": ms, "answer": tierd_answer(name, r), "segments": r["segments_scanned"],
                         "bytes_scanned": r["bytes_scanned"], "total": r["total"]}
            log(f"# {label}: {name}: {ms:.2f} ms ({r['segments_scanned']} segments, {r['total']} events)")
    finally:
        d.stop()
        shutil.rmtree(data, ignore_errors=True)
    return out


def cold_config(base, moto, prefix):
    """`base` with the cold tier at `s3://BUCKET/prefix` on `moto`, and no IO budget (the moves by hand go fast)."""
    return base + "\n".join([
        "", "[cold]", f'url = "s3://{cold.BUCKET}/{prefix}"', f'endpoint = "{moto.endpoint}"', 'region = "us-east-1"',
        f'access_key_id = "{cold.KEY_ID}"', f'secret_access_key = "{cold.SECRET}"', "allow_http = true", "",
        "[budget]", "object_bytes_per_sec = 0", "object_requests_per_sec = 0", "object_max_concurrent = 0",
        "disk_bytes_per_sec = 0", ""])


def run_tierd_cold(label, binary, work, template, runs, first_runs, moto, extra_config=""):
    """The queries on cold segments: first reads (empty cache, after a restart) and cached reads; see step 6."""
    data = cold.fresh_copy(template, work, label)
    config = os.path.join(work, f"{label}.toml")
    prefix = f"queries-{label}"
    with open(config, "w") as f:
        f.write(cold_config(CONFIG + extra_config, moto, prefix))
    d = Daemon(binary, data, config)
    out = {}
    try:
        ids = [s["id"] for s in d.segments(PROJECT)]
        moved = cold.post(d.url + "/v1/admin/move", {"segments": ids, "to": "cold"})
        assert all(r["outcome"] == "moved" for r in moved["results"]), moved
        assert all(s["tier"] == "cold" for s in d.segments(PROJECT)), d.segments(PROJECT)
        for name, q in tierd_queries().items():
            first, fetched = [], []
            for _ in range(first_runs):
                d.stop()
                shutil.rmtree(os.path.join(data, "cache"), ignore_errors=True)
                d.start()
                cold.post(d.url + "/v1/query", {"project": "warmup", "from": WINDOW[0], "to": WINDOW[1]})
                m0 = d.metrics()
                t = time.perf_counter()
                r = cold.post(d.url + "/v1/query", q)
                first.append((time.perf_counter() - t) * 1e3)
                m1 = d.metrics()
                delta = lambda n, **kw: cold.metric(m1, n, **kw) - cold.metric(m0, n, **kw)
                fetched.append({"bytes": delta("tierd_cold_bytes_total", direction="read"),
                                "requests": delta("tierd_cold_requests_total"),
                                "request_ms": 1e3 * delta("tierd_cold_request_seconds_sum")})
                answer = tierd_answer(name, r)
            m0 = d.metrics()
            ms, r = timed(lambda: cold.post(d.url + "/v1/query", q), runs)
            m1 = d.metrics()
            assert cold.metric(m1, "tierd_cold_bytes_total", direction="read") == cold.metric(
                m0, "tierd_cold_bytes_total", direction="read"), f"{name}: a cached read went to the object store"
            assert tierd_answer(name, r) == answer, f"{name}: the cached answer differs from the first read's"
            med = statistics.median
            out[name] = {"ms": ms, "first_ms": med(first), "first_all_ms": first, "answer": answer,
                         "segments": r["segments_scanned"],
                         "fetched_bytes": med(x["bytes"] for x in fetched),
                         "fetched_requests": med(x["requests"] for x in fetched),
                         "fetched_request_ms": med(x["request_ms"] for x in fetched)}
            log(f"# {label}: {name}: first read {med(first):.1f} ms ({out[name]['fetched_bytes'] / 1e6:.2f} MB in "
                f"{out[name]['fetched_requests']:.0f} requests), cached {ms:.2f} ms")
    finally:
        d.stop()
        shutil.rmtree(data, ignore_errors=True)
        moto.clear(prefix + "/")
    return out


def duckdb_events(ndjson, threads, order=None):
    """A DuckDB connection on `threads` threads holding table `d`: the events of `ndjson` with `unnest(properties)`,
    time in ms by tierd's rule and one row per tierd dedup key (sorted by `order`, an SQL list, when given); and the
    number of events loaded before the dedup."""
    import duckdb
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET threads = {int(threads)}")
    con.execute(f"CREATE TABLE raw AS SELECT event, unnest(properties) FROM read_json('{ndjson}', "
                "format='newline_delimited')")
    # tierd's rule: a number below 1e11 is seconds (a float rounded to the nearest millisecond), else milliseconds.
    con.execute("CREATE TABLE t AS SELECT * REPLACE (CAST(CASE WHEN time >= 1e11 THEN time ELSE round(time * 1000) "
                "END AS BIGINT) AS time) FROM raw")
    con.execute("DROP TABLE raw")
    loaded = con.execute("SELECT count(*) FROM t").fetchone()[0]
    # One row per event (tierd's dedup key; the re-sends are byte-identical, so any copy is the one).
    con.execute('CREATE TABLE d AS SELECT * FROM t QUALIFY row_number() OVER (PARTITION BY event, distinct_id, time, '
                '"$insert_id") = 1' + (f" ORDER BY {order}" if order else ""))
    con.execute("DROP TABLE t")
    return con, loaded


def run_duckdb(ndjson, work, runs, threads):
    con, loaded = duckdb_events(ndjson, threads, order="event, time")
    f = os.path.join(work, "duckdb.parquet")
    t = time.perf_counter()
    con.execute(f"COPY d TO '{f}' (FORMAT parquet, COMPRESSION zstd)")
    copy_s = time.perf_counter() - t
    n = con.execute("SELECT count(*) FROM d").fetchone()[0]
    con.execute("DROP TABLE d")
    out = {"_loaded": loaded, "_events": n, "_bytes": os.path.getsize(f), "_copy_s": copy_s, "_file": f,
           "_threads": con.execute("SELECT current_setting('threads')").fetchone()[0]}
    for name, sql in peer_queries(f"read_parquet('{f}')").items():
        ms, rows = timed(lambda: con.execute(sql).fetchall(), runs)
        out[name] = {"ms": ms, "answer": rows[0][0] if name.startswith("distinct") else normalize(name, rows)}
        log(f"# DuckDB: {name}: {ms:.2f} ms")
    con.close()
    return out


def run_chdb(parquet, work, runs, threads):
    try:
        import chdb
        from chdb import session
    except ImportError:
        return None
    s = session.Session(os.path.join(work, "chdb"))
    s.query("CREATE DATABASE IF NOT EXISTS b")
    # The columns the queries read, at ClickHouse's best: low-cardinality strings, delta-coded time.
    s.query("CREATE TABLE b.t (event LowCardinality(String), time Int64 CODEC(Delta, ZSTD), distinct_id String, "
            "`$city` LowCardinality(Nullable(String)), `$os` LowCardinality(Nullable(String))) "
            "ENGINE = MergeTree ORDER BY (event, time)")
    s.query(f"INSERT INTO b.t SELECT event, time, distinct_id, `$city`, `$os` FROM file('{parquet}', Parquet)")
    out = {"_version": chdb.__version__}
    settings = f" SETTINGS max_threads = {int(threads)}"
    for name, sql in peer_queries("b.t").items():
        sql = sql.replace('"$city"', "`$city`").replace('"$os"', "`$os`") + settings

        def q(sql=sql):
            return [line.split("\t") for line in str(s.query(sql, "TabSeparated")).splitlines() if line]
        ms, rows = timed(q, runs)
        if name.startswith("distinct"):
            answer = int(rows[0][0])
        else:
            answer = normalize(name, [(None if k == "\\N" else k, n) for k, n in rows])
        out[name] = {"ms": ms, "answer": answer}
        log(f"# ClickHouse (chdb): {name}: {ms:.2f} ms")
    s.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=cold.TIERD, help="the tierd build measured (and used to prepare the data)")
    ap.add_argument("--before", help="another tierd build to measure on the same files (e.g. main's)")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--threads", type=int, default=2, help="the peers' threads")
    ap.add_argument("--work", help="keep everything in this directory instead of a temporary one")
    ap.add_argument("--cold", action="store_true",
                    help="also query cold segments on moto: first reads and cached reads (step 6)")
    ap.add_argument("--first-runs", type=int, default=3, help="first reads per query with --cold (restarts)")
    ap.add_argument("--no-footer-cache-too", action="store_true",
                    help="also measure the --bin build with `cache.footer_max_bytes = 0` (every read parses its "
                         "footer: the engine before the footer cache), hot and (with --cold) cold")
    ap.add_argument("--json", help="also write everything measured to this file")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    tmp = tempfile.TemporaryDirectory() if not args.work else None
    work = args.work or tmp.name
    os.makedirs(work, exist_ok=True)
    log(f"# queries benchmark: {os.uname().nodename}, {os.cpu_count()} CPUs, load {cold.loadavg()}")
    ndjson, seconds = prepare(binary, work, args.events)
    size = os.path.getsize(ndjson)
    log(f"# data: {args.events} lines, {size / args.events:.0f} B/event, {seconds} with time in seconds")
    template, config, info = build_data(binary, work, ndjson)
    log(f"# tierd: {info['events']} events in {len(info['segments'])} segments, {info['bytes'] / 1e6:.1f} MB")
    results = {"data": {"lines": args.events, "ndjson_bytes": size, "seconds_times": seconds, **info}}
    engines = []
    if args.before:
        results["tierd before"] = run_tierd("before", os.path.abspath(args.before), work, template, config, args.runs)
        engines.append("tierd before")
    no_footers = "\n[cache]\nfooter_max_bytes = 0\n"
    if args.no_footer_cache_too:
        plain = os.path.join(work, "no-footer-cache.toml")
        with open(plain, "w") as f:
            f.write(CONFIG + no_footers)
        results["tierd, no footer cache"] = run_tierd("no-footers", binary, work, template, plain, args.runs)
        engines.append("tierd, no footer cache")
    results["tierd"] = run_tierd("after", binary, work, template, config, args.runs)
    engines.append("tierd")
    if args.cold:
        moto = cold.Moto(work)
        try:
            if args.before:
                results["tierd before, cold cached"] = run_tierd_cold(
                    "before-cold", os.path.abspath(args.before), work, template, args.runs, args.first_runs, moto)
                engines.append("tierd before, cold cached")
            if args.no_footer_cache_too:
                results["tierd, no footer cache, cold cached"] = run_tierd_cold(
                    "no-footers-cold", binary, work, template, args.runs, args.first_runs, moto, no_footers)
                engines.append("tierd, no footer cache, cold cached")
            results["tierd, cold cached"] = run_tierd_cold("cold", binary, work, template, args.runs, args.first_runs,
                                                           moto)
            engines.append("tierd, cold cached")
        finally:
            moto.stop()
    results["DuckDB"] = run_duckdb(ndjson, work, args.runs, args.threads)
    engines.append("DuckDB")
    ch = run_chdb(results["DuckDB"]["_file"], work, args.runs, args.threads)
    if ch:
        results["ClickHouse"] = ch
        engines.append("ClickHouse")
    problems = []
    for name in tierd_queries():
        want = results["tierd"][name]["answer"]
        for engine in engines:
            if results[engine][name]["answer"] != want:
                problems.append(f"{engine} answers {name!r} differently from tierd")
    print(f"\n{args.events:,} lines ({size / args.events:.0f} B/event NDJSON), {info['events']:,} events after dedup "
          f"in {len(info['segments'])} segments ({info['bytes'] / info['events']:.1f} B/event); DuckDB "
          f"{results['DuckDB']['_events']:,} rows, {results['DuckDB']['_bytes'] / results['DuckDB']['_events']:.1f} "
          f"B/event; peers' threads {args.threads}; medians of {args.runs} runs; load {cold.loadavg()}\n")
    colds = [e for e in engines if e.endswith("cold cached")]
    print("| query | " + " | ".join(engines) + " | tierd / DuckDB |" + "".join(f" {e} / DuckDB |" for e in colds))
    print("|---|" + "---|" * (len(engines) + 1 + len(colds)))
    for name in tierd_queries():
        cells = [f"{results[e][name]['ms']:.2f} ms" for e in engines]
        ratio = results["tierd"][name]["ms"] / results["DuckDB"][name]["ms"]
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio:.2f}x |"
              + "".join(f" {results[e][name]['ms'] / results['DuckDB'][name]['ms']:.2f}x |" for e in colds))
    if colds:
        print("\nFirst reads of cold segments (empty cache, moto on 127.0.0.1; medians of "
              f"{args.first_runs} restarts per query):\n")
        print("| query | " + " | ".join(f"{e.replace(' cached', '')}: first read" for e in colds)
              + " | fetched (MB in requests, ms in object-store calls) |")
        print("|---|" + "---|" * (len(colds) + 1))
        for name in tierd_queries():
            r = results[colds[-1]][name]
            print(f"| {name} | " + " | ".join(f"{results[e][name]['first_ms']:.1f} ms" for e in colds)
                  + f" | {r['fetched_bytes'] / 1e6:.2f} MB in {r['fetched_requests']:.0f}, "
                  f"{r['fetched_request_ms']:.0f} ms |")
    if not ch:
        print("\n(ClickHouse: `import chdb` failed; not measured.)")
    for p in problems:
        print(f"\nWARNING: {p}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    if tmp:
        tmp.cleanup()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

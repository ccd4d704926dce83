#!/usr/bin/env python3
"""Bytes per event at the coldest step: tierd against DuckDB's and ClickHouse's best layouts of the same events.
Issue 13, "Fewer bytes than the best peer".

Run from the repository root (see BENCHMARKS.md, "Bytes per event at the coldest step"):

    CARGO_TARGET_DIR=target-rel cargo build --release --locked -p tierd-daemon
    python3 tests/bench/bytes.py --bin target-rel/release/tierd --events 1000000

Datasets (Mixpanel-shaped NDJSON, the form tierd ingests):
- gen: `tierd gen --events N --days 7 --seed 1` (2% byte-identical re-sends, 1% late events);
- gharchive, wikipedia: the GH Archive hour and the Wikipedia edits of shared/data/real, mapped to events as
  tests/bench/columnar.py maps them (read from there, never copied into the repository).

For each dataset, from the same NDJSON file:
1. tierd: a fresh `tierd serve --no-schedules`, `tierd import` over HTTP, a restart (seals the open row segments),
   then the passes `reencode`, `compact` and `recompress` (the default ladder takes segments this old to zstd-19).
   The size is the sum of the data segments' files (duplicates side segments, which hold the removed re-sends, are
   reported apart), over the catalog's event count.
2. DuckDB 2.0.1 (`--threads`, default 2): `read_json` -> `unnest(properties)` (every property a column, types as
   DuckDB infers them) -> time as BIGINT ms (tierd's seconds-or-milliseconds rule) -> one row per tierd dedup key
   (event, distinct_id, time, `$insert_id`) -> `COPY ... (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 19)`,
   sorted by (event, time) and by (event, distinct_id, time); the smaller is DuckDB's best.
3. ClickHouse through chdb 4.4.0: a MergeTree table of every column of DuckDB's file, `ORDER BY (event, time)`, at
   its best codecs: every column `ZSTD(19)`, `time` `Delta, ZSTD(19)`, strings with at most 10,000 distinct values
   `LowCardinality`, mixed-type properties (JSON in DuckDB's file) as text; a wide part also when small
   (`min_bytes_for_wide_part = 0`, so sizes per column exist); loaded from DuckDB's file, merged to one part
   (`OPTIMIZE ... FINAL`); the size is the active parts' `bytes_on_disk` (per column: `system.parts_columns`, which
   reports nested (Tuple) columns by their subcolumns only, so those show 0).

Per column, the compressed bytes of each file (Parquet footers: sum of the column chunks' compressed sizes; chdb:
`system.columns`) are printed beside each other, so the gap can be read column by column.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cold  # noqa: E402  (HTTP helpers, loadavg)
import columnar  # noqa: E402  (the real datasets' mapping to events)
import queries  # noqa: E402  (the daemon run through the passes)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def prepare(name, binary, work, events):
    if name == "gen":
        out = os.path.join(work, "gen.ndjson")
        subprocess.run([binary, "gen", "--events", str(events), "--days", "7", "--seed", "1", "--out", out],
                       check=True, capture_output=True)
        return out
    if name == "gharchive":
        return columnar.prepare_gharchive(work)
    if name == "wikipedia":
        return columnar.prepare_wikipedia(work)
    sys.exit(f"unknown dataset {name!r}")


def parquet_columns(path, flat):
    """Compressed bytes per top-level column of a Parquet file, and the bytes outside column chunks (footer, page
    index, magic). `flat`: the schema has no nesting, so a column's path is its name (tierd's `p.<key>`)."""
    import pyarrow.parquet as pq
    md = pq.ParquetFile(path).metadata
    cols, total = {}, 0
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        for c in range(rg.num_columns):
            ch = rg.column(c)
            name = ch.path_in_schema if flat else ch.path_in_schema.split(".")[0]
            cols[name] = cols.get(name, 0) + ch.total_compressed_size
            total += ch.total_compressed_size
    return cols, os.path.getsize(path) - total, md.num_row_groups


def run_tierd(binary, work, ndjson):
    template, _config, info = queries.build_data(binary, work, ndjson)
    d = queries.Daemon(binary, template, os.path.join(work, "bench.toml"))
    try:
        segs = d.segments(queries.PROJECT)
    finally:
        d.stop()
    files = {}
    for root, _dirs, names in os.walk(template):
        for n in names:
            if n.endswith(".parquet"):
                files[n.split(".")[0]] = os.path.join(root, n)
    data = [s for s in segs if (s.get("role") or {"kind": "data"}).get("kind", "data") == "data"]
    side = [s for s in segs if s not in data]
    cols, other, groups, nbytes = {}, 0, 0, 0
    codecs = set()
    for s in data:
        path = files[s["id"]]
        c, o, g = parquet_columns(path, flat=True)
        for k, v in c.items():
            cols[k] = cols.get(k, 0) + v
        other += o
        groups += g
        nbytes += os.path.getsize(path)
        codecs.add(s.get("codec") or s.get("format"))
    return {"events": sum(s["rows"] for s in data), "bytes": nbytes, "segments": len(data), "row_groups": groups,
            "side_segments": len(side), "side_rows": sum(s["rows"] for s in side),
            "side_bytes": sum(s["bytes"] for s in side), "codecs": sorted(map(str, codecs)), "columns": cols,
            "overhead": other, "passes": info}


def run_duckdb(ndjson, work, threads):
    con, _ = queries.duckdb_events(ndjson, threads)
    n = con.execute("SELECT count(*) FROM d").fetchone()[0]
    out = {"events": n, "layouts": {}}
    for label, order in (("event,time", "event, time"), ("event,distinct_id,time", "event, distinct_id, time")):
        f = os.path.join(work, f"duckdb-{label.replace(',', '-')}.parquet")
        t = time.perf_counter()
        con.execute(f"COPY (SELECT * FROM d ORDER BY {order}) TO '{f}' "
                    "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 19)")
        secs = time.perf_counter() - t
        cols, other, groups = parquet_columns(f, flat=False)
        out["layouts"][label] = {"bytes": os.path.getsize(f), "copy_s": secs, "columns": cols, "overhead": other,
                                 "row_groups": groups, "file": f}
    con.close()
    best = min(out["layouts"], key=lambda k: out["layouts"][k]["bytes"])
    out["best"] = best
    return out


def run_chdb(parquet, work, n):
    try:
        from chdb import session
        import chdb
    except ImportError:
        return None
    path = os.path.join(work, "chdb")
    shutil.rmtree(path, ignore_errors=True)
    s = session.Session(path)

    def q(sql):
        return [line.split("\t") for line in str(s.query(sql, "TabSeparated")).splitlines() if line]
    described = [json.loads(line) for line in
                 str(s.query(f"DESCRIBE file('{parquet}', Parquet)", "JSONEachRow")).splitlines() if line]
    # A property of mixed types is JSON text in DuckDB's file (Parquet's JSON type); ClickHouse reads it as text.
    structure = [(row["name"], "Nullable(String)" if "JSON" in row["type"] else row["type"]) for row in described]
    quoted = ", ".join(f"`{name}` {typ}" for name, typ in structure).replace("'", "\\'")
    src = f"file('{parquet}', Parquet, '{quoted}')"
    defs = []
    for name, typ in structure:
        base = typ[len("Nullable("):-1] if typ.startswith("Nullable(") else typ
        if name in ("event", "time"):
            typ = base  # sort key columns: never null in these events
        if base == "String" and name not in ("$insert_id",):
            distinct = int(q(f"SELECT uniqExact(`{name}`) FROM {src}")[0][0])
            if distinct <= 10_000:
                typ = f"LowCardinality({typ})"
        codec = "CODEC(Delta, ZSTD(19))" if name == "time" else "CODEC(ZSTD(19))"
        defs.append(f"`{name}` {typ} {codec}")
    s.query("CREATE DATABASE IF NOT EXISTS b")
    s.query(f"CREATE TABLE b.t ({', '.join(defs)}) ENGINE = MergeTree ORDER BY (event, time) "
            "SETTINGS min_bytes_for_wide_part = 0")  # a wide part (a file per column), also when small
    t = time.perf_counter()
    s.query(f"INSERT INTO b.t SELECT * FROM {src}")
    s.query("OPTIMIZE TABLE b.t FINAL")
    secs = time.perf_counter() - t
    rows = int(q("SELECT count() FROM b.t")[0][0])
    total = int(q("SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'b' AND table = 't' AND active")[0][0])
    parts = int(q("SELECT count() FROM system.parts WHERE database = 'b' AND table = 't' AND active")[0][0])
    cols = {r[0]: int(r[1]) for r in q("SELECT column, sum(column_data_compressed_bytes) FROM system.parts_columns "
                                       "WHERE database = 'b' AND table = 't' AND active GROUP BY column")}
    s.close()
    shutil.rmtree(path, ignore_errors=True)
    return {"version": chdb.__version__, "events": rows, "bytes": total, "parts": parts, "columns": cols,
            "overhead": total - sum(cols.values()), "load_s": secs, "types": defs}


def tierd_name(col):
    return col[2:] if col.startswith("p.") else col


def report(name, ndjson_bytes, lines, t, dk, ch, top):
    n = t["events"]
    best = dk["layouts"][dk["best"]]
    print(f"\n### {name}: {lines:,} lines ({ndjson_bytes / lines:.0f} B/event as NDJSON), {n:,} events after dedup\n")
    print("| writer | events | bytes | B/event | vs DuckDB's best |")
    print("|---|---|---|---|---|")
    ref = best["bytes"] / dk["events"]
    rows = [(f"tierd ({t['segments']} segments, {t['row_groups']} row groups, {', '.join(t['codecs'])})", n,
             t["bytes"])]
    for label, lay in dk["layouts"].items():
        rows.append((f"DuckDB zstd-19, ORDER BY {label}" + (" (best)" if label == dk["best"] else ""), dk["events"],
                     lay["bytes"]))
    if ch:
        rows.append((f"ClickHouse (chdb {ch['version']}, MergeTree, ZSTD(19), {ch['parts']} part)", ch["events"],
                     ch["bytes"]))
    for label, events, nbytes in rows:
        print(f"| {label} | {events:,} | {nbytes:,} | {nbytes / events:.2f} | {nbytes / events / ref:.3f}x |")
    if t["side_segments"]:
        print(f"\n(tierd's {t['side_segments']} duplicates side segments, {t['side_rows']:,} removed copies, "
              f"{t['side_bytes']:,} bytes, are not counted: DuckDB and ClickHouse keep no removed copies.)")
    # Per column, B/event.
    names = {}
    for col, b in t["columns"].items():
        names.setdefault(tierd_name(col), {})["tierd"] = (col, b)
    for col, b in best["columns"].items():
        names.setdefault(col, {})["duckdb"] = (col, b)
    if ch:
        for col, b in ch["columns"].items():
            names.setdefault(col, {})["chdb"] = (col, b)
    order = sorted(names, key=lambda k: -max(v[1] for v in names[k].values()))
    print(f"\nPer column, B/event (largest {top}; DuckDB's best layout):\n")
    print("| column | tierd | DuckDB | ClickHouse |")
    print("|---|---|---|---|")

    def cell(entry, count):
        return "" if entry is None else f"{entry[1] / count:.3f}"
    for k in order[:top]:
        v = names[k]
        tc = v.get("tierd")
        label = tc[0] if tc else k
        print(f"| `{label}` | {cell(tc, n)} | {cell(v.get('duckdb'), dk['events'])} | "
              f"{cell(v.get('chdb'), ch['events']) if ch else ''} |")
    rest = order[top:]

    def rest_sum(key, count):
        s = sum(names[k][key][1] for k in rest if key in names[k])
        return f"{s / count:.3f}"
    print(f"| {len(rest)} other columns | {rest_sum('tierd', n)} | {rest_sum('duckdb', dk['events'])} | "
          f"{rest_sum('chdb', ch['events']) if ch else ''} |")
    print(f"| footer, page index | {t['overhead'] / n:.3f} | {best['overhead'] / dk['events']:.3f} | "
          f"{ch['overhead'] / ch['events']:.3f} |" if ch else "")
    if n != dk["events"] or (ch and ch["events"] != n):
        print(f"\nWARNING: event counts differ: tierd {n}, DuckDB {dk['events']}, ClickHouse {ch and ch['events']}")
    return {"tierd_bpe": t["bytes"] / n, "duckdb_bpe": ref, "chdb_bpe": ch and ch["bytes"] / ch["events"],
            "ratio": t["bytes"] / n / ref}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=cold.TIERD, help="the tierd build measured")
    ap.add_argument("--events", type=int, default=1_000_000, help="lines of the generated stream")
    ap.add_argument("--datasets", default="gen,gharchive,wikipedia")
    ap.add_argument("--real", default=columnar.REAL,
                    help="the shared real datasets (default: ../shared/data/real beside the repository)")
    ap.add_argument("--threads", type=int, default=2, help="the peers' threads")
    ap.add_argument("--top", type=int, default=16, help="columns listed one by one")
    ap.add_argument("--work", help="keep everything in this directory instead of a temporary one")
    ap.add_argument("--json", help="also write everything measured to this file")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    columnar.GHARCHIVE = os.path.join(args.real, "gharchive_2015-01-01-15", "events.json.zst")
    columnar.WIKIPEDIA = os.path.join(args.real, "wikipedia_edits_wikiticker", "wikiticker-2015-09-12-sampled.json.gz")
    tmp = tempfile.TemporaryDirectory() if not args.work else None
    work = args.work or tmp.name
    os.makedirs(work, exist_ok=True)
    print(f"# bytes/event benchmark: {os.uname().nodename}, {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {cold.loadavg()}")
    results, summary = {}, {}
    for name in args.datasets.split(","):
        dwork = os.path.join(work, name)
        os.makedirs(dwork, exist_ok=True)
        ndjson = prepare(name, binary, dwork, args.events)
        lines = sum(1 for line in open(ndjson, "rb") if line.strip())
        log(f"# {name}: {lines} lines")
        t = run_tierd(binary, dwork, ndjson)
        dk = run_duckdb(ndjson, dwork, args.threads)
        try:
            ch = run_chdb(dk["layouts"][dk["best"]]["file"], dwork, dk["events"])
        except Exception as e:  # noqa: BLE001  (a peer that fails is reported, the others still are)
            print(f"\nClickHouse (chdb) failed on {name}: {e}")
            ch = None
        summary[name] = report(name, os.path.getsize(ndjson), lines, t, dk, ch, args.top)
        results[name] = {"tierd": t, "duckdb": dk, "chdb": ch}
        if not args.work:
            shutil.rmtree(dwork, ignore_errors=True)
    print("\n| dataset | tierd B/event | DuckDB best B/event | ClickHouse B/event | tierd / DuckDB |")
    print("|---|---|---|---|---|")
    for name, s in summary.items():
        chs = f"{s['chdb_bpe']:.2f}" if s["chdb_bpe"] else ""
        print(f"| {name} | {s['tierd_bpe']:.2f} | {s['duckdb_bpe']:.2f} | {chs} | {s['ratio']:.3f}x |")
    print(f"\nload after: {cold.loadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()

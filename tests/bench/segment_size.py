#!/usr/bin/env python3
"""Compacted segment size: bytes per event, encode time and peak memory of one compaction, per output size.

Run from the repository root (see BENCHMARKS.md, "Compacted segment size"):

    python3 tests/bench/segment_size.py --runs 3

Data: ONE stream, `tierd gen --events MAX --days 1 --seed 1 --dup-rate 0` (MAX = --stream, default the largest
size), and for each size S the S events in the middle of it (arrival order), so that every size sees the same users
and event mix: a busy project's day, cut into segments of S events. (A separate `tierd gen --events S` per size would scale the user
population with S.) Also the GH Archive hour 2015-01-01 15:00 (shared/data/real, mapped as in columnar.py) as one
small real-data point; it is too small for a ladder.

Per size, with the release `segment_size_bench` example (codecs/examples/segment_size_bench.rs), each step a fresh
process so that its peak RSS (VmHWM) is its own:
- `prepare`: the S events as 8 lz4 columnar segments of consecutive arrivals (the inputs of one compaction);
- `compact --codec lz4|zstd-3`, --runs times each: what store::rewrite does for a compaction (decode every input into
  one Vec<StoredEvent>, dedup, encode one Parquet output in memory); encode time is the median over the runs, peak
  RSS the largest;
- `recompress` of the lz4 output to zstd-3 (what the recompress pass does a day later) and, up to --zstd19-max
  events, to zstd-19 (one run each: the bytes are exact, the time is not a median).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TIERD = os.path.join(TARGET, "release", "tierd")
BENCH = os.path.join(TARGET, "release", "examples", "segment_size_bench")
SIZES = "25000,50000,100000,106000,200000,225000,400000,800000,1600000,2000000"
MIB = 1024 * 1024


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def bench(*args, stdin=None):
    p = subprocess.run([BENCH, *args], stdin=stdin, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"segment_size_bench {' '.join(args)} failed:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(ndjson, events, skip, tmp, runs, zstd19):
    d = os.path.join(tmp, f"s{events}")
    os.makedirs(d, exist_ok=True)
    with open(ndjson, "rb") as f:
        prep = bench("prepare", "--dir", d, "--events", str(events), "--skip", str(skip), stdin=f)
    row = {"events": events, "skip": skip, "prepare": prep, "compact": {}, "recompress": {}}
    lz4_out = os.path.join(d, "out-lz4.parquet")
    for codec in ("lz4", "zstd-3"):
        results = []
        for i in range(runs):
            extra = ["--out", lz4_out] if codec == "lz4" and i == 0 else []
            results.append(bench("compact", "--dir", d, "--codec", codec, *extra))
            print(f"  {events} {codec} run {i + 1}: encode {results[-1]['encode_s']:.2f} s, "
                  f"peak {results[-1]['peak_rss_mib']:.0f} MiB (load {loadavg()})", flush=True)
        row["compact"][codec] = results
    for codec in ("zstd-3", "zstd-19"):
        if codec == "zstd-19" and events > zstd19:
            continue
        row["recompress"][codec] = bench("recompress", "--input", lz4_out, "--codec", codec)
    for name in os.listdir(d):
        os.remove(os.path.join(d, name))
    os.rmdir(d)
    return row


def summary(label, row):
    c3, c4 = row["compact"]["zstd-3"], row["compact"]["lz4"]
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    rz19 = row["recompress"].get("zstd-19")
    return {
        "label": label,
        "events": row["events"],
        "input_mib": c4[0]["input_bytes"] / MIB,
        "lz4_mib": c4[0]["output_bytes"] / MIB,
        "zstd3_mib": c3[0]["output_bytes"] / MIB,
        "bpe_lz4": c4[0]["bytes_per_event"],
        "bpe_zstd3": c3[0]["bytes_per_event"],
        "bpe_zstd19": rz19["bytes_per_event"] if rz19 else None,
        "encode_lz4_s": med(c4, "encode_s"),
        "encode_zstd3_s": med(c3, "encode_s"),
        "compaction_zstd3_s": statistics.median(r["load_s"] + r["dedup_s"] + r["encode_s"] for r in c3),
        "rss_loaded_mib": max(r["rss_loaded_mib"] for r in c3 + c4),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in c3 + c4),
        "recompress_zstd3_peak_mib": row["recompress"]["zstd-3"]["peak_rss_mib"],
    }


def table(rows):
    print("| data | events | inputs MiB (8 x lz4) | lz4 MiB | zstd-3 MiB | B/event lz4 | B/event zstd-3 | B/event zstd-19 | encode s lz4 "
          "| encode s zstd-3 | compaction s zstd-3 | RSS with events MiB | peak RSS MiB | recompress peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in rows:
        z19 = f"{s['bpe_zstd19']:.2f}" if s["bpe_zstd19"] is not None else ""
        print(f"| {s['label']} | {s['events']:,} | {s['input_mib']:.1f} | {s['lz4_mib']:.1f} | {s['zstd3_mib']:.1f} | {s['bpe_lz4']:.2f} "
              f"| {s['bpe_zstd3']:.2f} | {z19} | {s['encode_lz4_s']:.2f} | {s['encode_zstd3_s']:.2f} "
              f"| {s['compaction_zstd3_s']:.2f} | {s['rss_loaded_mib']:,.0f} | {s['peak_rss_mib']:,.0f} "
              f"| {s['recompress_zstd3_peak_mib']:,.0f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=SIZES, help="events per compacted segment, comma-separated")
    ap.add_argument("--stream", type=int, help="events of the generated stream (default: the largest size)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--zstd19-max", type=int, default=2_000_000, help="largest size also recompressed to zstd-19")
    ap.add_argument("--no-gharchive", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--keep", help="work in this directory instead of a temp dir")
    ap.add_argument("--json", help="also write all results to this file")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "tierd-daemon", "--bin", "tierd"],
                       cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "tierd-codecs", "--example",
                        "segment_size_bench"], cwd=ROOT, check=True)
    print(f"# segment size benchmark: {os.uname().nodename}, nproc {os.cpu_count()}, runs {args.runs}; "
          f"load average before: {loadavg()}", flush=True)
    tmp_ctx = tempfile.TemporaryDirectory() if not args.keep else None
    tmp = args.keep or tmp_ctx.name
    os.makedirs(tmp, exist_ok=True)
    most = args.stream or max(sizes)
    if most < max(sizes):
        sys.exit(f"--stream {most} is smaller than the largest size {max(sizes)}")
    ndjson = os.path.join(tmp, f"gen-{most}.ndjson")
    if not os.path.exists(ndjson):
        subprocess.run([TIERD, "gen", "--events", str(most), "--days", "1", "--seed", "1", "--dup-rate", "0",
                        "--out", ndjson], check=True)
    rows, raw = [], []
    if not args.no_gharchive:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from columnar import prepare_gharchive
        gh = prepare_gharchive(tmp)
        with open(gh) as f:
            n = sum(1 for line in f if line.strip())
        print(f"gharchive: {n} events", flush=True)
        r = measure(gh, n, 0, tmp, args.runs, args.zstd19_max)
        raw.append(r)
        rows.append(summary("GH Archive hour", r))
    for events in sizes:
        print(f"size {events}: load average {loadavg()}", flush=True)
        r = measure(ndjson, events, (most - events) // 2, tmp, args.runs, args.zstd19_max)
        raw.append(r)
        rows.append(summary("generated", r))
    print()
    table(rows)
    print(f"\nload average after: {loadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "raw": raw}, f, indent=1)
    if tmp_ctx:
        tmp_ctx.cleanup()


if __name__ == "__main__":
    main()

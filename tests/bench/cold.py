#!/usr/bin/env python3
"""Cold-tier benchmark: tierd's migrate pass vs raw object_store puts of the same bytes, cold vs cached vs hot
query latency, and ingest ack latency idle vs during a migration; one script, one moto server.

Run from the repository root (see BENCHMARKS.md, "Cold tier"):

    python3 tests/bench/cold.py              # the measurement (about 5 minutes on 2 vCPUs)
    python3 tests/bench/cold.py --quick      # smoke run (small data, one run of each)

Needs `moto_server` (`pip install 'moto[server]==5.2.5'`, as .ci/run installs it). Steps:

1. Template: `tierd gen --events N --days D --seed 1 --dup-rate 0`, ingested into project `cold` of a fresh
   `tierd serve` (closed loop, `ingest-bench`), the daemon restarted (which seals the open row segments), the
   `reencode` pass run (one lz4 columnar segment per day, the default codec) and `gc` with no grace (the retired
   row segments go). The stopped daemon's data directory is the template; every run below starts a daemon on a
   fresh copy of it (`cp -a`, then `sync`), with a forced `all-cold` policy rule (every columnar segment goes
   cold) and the cold tier at `s3://BUCKET/<fresh prefix>` on the one moto server. Each run's objects are deleted
   from moto afterwards.
2. Migration throughput, per round (rounds interleave the variants, so drift of a shared machine hits all alike):
   - tierd `migrate` under the default `[budget]`, with every budget limit at 0 (unlimited), unlimited with every
     upload read back (`cold.verify = "read_back"`), and unlimited with multipart uploads from 16 MiB: wall time of
     `POST /v1/admin/passes/migrate/run` (reads each hot copy, uploads it, verifies it by its ETag and a HEAD,
     commits; one segment at a time), MB/s = bytes moved (the pass's report) / wall time;
   - raw object_store (`cold-bench`, tests/src/bin/cold_bench.rs): the same Parquet files, copied out of the
     template's hot directory and read into memory first, put one after the other with object_store's AmazonS3 to
     the same bucket under another prefix: one PUT each (`put`), tierd's way (`multipart`: 8 MiB parts, 4 in flight,
     for objects of 16 MiB and more), and a `put` followed by a GET of each object (the requests a move that reads
     back makes, `cold.verify = "read_back"`; moto's read speed), then 32 GETs of 1 MiB ranges (moto's ranged-read latency).
3. Query latency on a cold segment: a fresh copy, all migrated; `POST /v1/query` counting one day (one segment) by
   event. First read: the daemon stopped, `DATA_DIR/cache` removed, restarted, one query on an unknown project to
   warm the HTTP path, then the query (bytes fetched from the object store = delta of
   `tierd_cold_bytes_total{direction="read"}`); cached: the same query again; hot: after
   `POST /v1/admin/move {"to":"hot"}` of that segment. Answers must be identical.
4. Ingest ack latency: a fresh copy, default budget; `ingest-bench` offers --rate events/s open loop (latency from
   each request's scheduled start) for --ingest-secs, three times on one daemon, each into its own project: with
   nothing else running (idle); while `cold-bench` puts the same files to moto paced at the
   default-budget migration's measured MB/s (a control: the object-store traffic without tierd's work); while the
   migrate pass moves the whole backlog. The background work starts 1 s before the ingest; the script reports
   whether it outlasted the ingest window (it must, for the figures to mean anything), and the CPU seconds tierd and
   moto used in each window.

Medians over --runs (query latencies: over --query-runs restarts, cached and hot over all their repeats).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TIERD = os.path.join(TARGET, "release", "tierd")
INGEST = os.path.join(TARGET, "release", "ingest-bench")
RAW = os.path.join(TARGET, "release", "cold-bench")
BUCKET = "tierd-bench"
PROJECT = "cold"
DAY_MS = 86_400_000
KEY_ID, SECRET = "bench", "bench-secret"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def group_cpu_seconds(pgid):
    """CPU seconds (user + system) of every live process in process group pgid (moto behind its pyenv shim)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / CLK
    return total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The admin token of the daemon last started (`DATA_DIR/admin.token`, written on a loopback listener's first
# start): the query and admin API need a bearer token.
TOKEN = None


def http(method, url, body=None, timeout=3600, headers=None):
    data = None if body is None else json.dumps(body).encode()
    headers = dict(headers or {})
    if TOKEN and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {TOKEN}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def post(url, body):
    return json.loads(http("POST", url, body))


# --- moto -------------------------------------------------------------------------------------------------------

class Moto:
    def __init__(self, work, tmpdir=None, nice=0):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(work, "moto.log"), "ab")
        # moto keeps an object over about 5 MiB in a temporary file (SpooledTemporaryFile), on TMPDIR's disk.
        env = dict(os.environ, **({"TMPDIR": tmpdir} if tmpdir else {}))
        # `nice`: moto at a lower CPU priority, a stand-in for an object store on another host (its CPU time then
        # comes from what tierd and the ingest client leave idle).
        niced = ["nice", "-n", str(nice)] if nice else []
        self.proc = subprocess.Popen([*niced, "moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, start_new_session=True, env=env)
        deadline = time.time() + 60
        while True:
            try:
                http("GET", self.endpoint + "/", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                if self.proc.poll() is not None or time.time() > deadline:
                    sys.exit(f"moto_server did not start (log: {self.log.name})")
                time.sleep(0.2)
        http("PUT", f"{self.endpoint}/{BUCKET}")

    def keys(self, prefix):
        keys, token = [], None
        while True:
            url = f"{self.endpoint}/{BUCKET}?list-type=2&prefix={urllib.request.quote(prefix)}"
            if token:
                url += "&continuation-token=" + urllib.request.quote(token)
            root = ET.fromstring(http("GET", url))
            ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
            keys += [(c.find(ns + "Key").text, int(c.find(ns + "Size").text)) for c in root.findall(ns + "Contents")]
            t = root.find(ns + "NextContinuationToken")
            token = t.text if t is not None else None
            if not token:
                return keys

    def clear(self, prefix):
        """Deletes every object under prefix (frees moto's memory and temp files between runs)."""
        # moto refuses an unsigned DELETE (403) but checks no signature: any SigV4-shaped header will do.
        auth = {"Authorization": f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20260101/us-east-1/s3/aws4_request, "
                                 "SignedHeaders=host, Signature=0"}
        for key, _ in self.keys(prefix):
            http("DELETE", f"{self.endpoint}/{BUCKET}/{urllib.request.quote(key)}", headers=auth)

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


# --- tierd ------------------------------------------------------------------------------------------------------

def write_config(path, moto, prefix, budget, grace=None):
    """budget: "default", "unlimited", "read-back" (unlimited, every upload read back: `cold.verify = "read_back"`)
    or "multipart" (unlimited, multipart from 16 MiB: the threshold before it became 100 MiB)."""
    lines = [
        # Every columnar segment goes cold at once, whatever the move costs (segments were made minutes ago: no
        # residency either).
        "[policy]", "min_residency_secs = 0", "",
        "[[policy.rules]]", 'name = "all-cold"', 'format = "columnar"', 'placement = "cold"', "force = true", "",
        "[cold]", f'url = "s3://{BUCKET}/{prefix}"', f'endpoint = "{moto.endpoint}"', 'region = "us-east-1"',
        f'access_key_id = "{KEY_ID}"', f'secret_access_key = "{SECRET}"', "allow_http = true",
    ]
    if budget == "read-back":
        lines.append('verify = "read_back"')
    if budget == "multipart":
        lines.append(f"multipart_threshold_bytes = {16 << 20}")
    lines.append("")
    if budget in ("unlimited", "read-back", "multipart"):
        lines += ["[budget]", "object_bytes_per_sec = 0", "object_requests_per_sec = 0", "object_max_concurrent = 0",
                  "disk_bytes_per_sec = 0", ""]
    if grace is not None:
        # gc also waits a lease TTL after a restart (leases from before it may be lost).
        lines += ["[gc]", f"grace_secs = {grace}", f"trash_retention_secs = {grace}", "",
                  "[catalog]", "lease_ttl_secs = 1", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


class Daemon:
    def __init__(self, data, config):
        self.data, self.config = data, config
        self.start()

    def start(self):
        logf = open(self.data.rstrip("/") + ".log", "ab")
        self.proc = subprocess.Popen([TIERD, "serve", "--data-dir", self.data, "--listen", "127.0.0.1:0",
                                      "--config", self.config], stdout=subprocess.PIPE, stderr=logf, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://(\S+)", line)
        if not m:
            self.proc.kill()
            sys.exit(f"tierd did not start: {line!r} (log: {logf.name})")
        self.url = "http://" + m.group(1)
        token = os.path.join(self.data, "admin.token")
        if os.path.exists(token):
            global TOKEN
            with open(token) as f:
                TOKEN = f.read().strip()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)

    def restart(self):
        self.stop()
        self.start()

    def metrics(self):
        return http("GET", self.url + "/metrics").decode()

    def run_pass(self, name, body=None):
        t0 = time.perf_counter()
        report = post(f"{self.url}/v1/admin/passes/{name}/run", body or {})
        return report, time.perf_counter() - t0

    def segments(self, project=PROJECT):
        return json.loads(http("GET", f"{self.url}/v1/catalog/segments?project={project}"))["segments"]


def metric(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        series, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


def ingest(url, path, project, rate=0.0, passes=1, batch=2000, connections=16):
    out = subprocess.run([INGEST, path, "--url", url, "--project", project, "--rate", str(rate), "--passes",
                          str(passes), "--batch", str(batch), "--connections", str(connections)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"ingest-bench failed: {out.stderr}\n{out.stdout}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh_copy(template, work, name):
    dest = os.path.join(work, name)
    shutil.rmtree(dest, ignore_errors=True)
    if os.path.exists(dest + ".log"):
        os.rename(dest + ".log", f"{dest}.{time.time_ns()}.log")
    subprocess.run(["cp", "-a", template, dest], check=True)
    subprocess.run(["sync"], check=True)
    return dest


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


# --- the benchmark ----------------------------------------------------------------------------------------------

def build_template(args, work, moto):
    events = os.path.join(work, "events.ndjson")
    subprocess.run([TIERD, "gen", "--events", str(args.events), "--days", str(args.days), "--seed", "1",
                    "--dup-rate", "0", "--out", events], check=True, capture_output=True)
    ndjson = os.path.getsize(events)
    data = os.path.join(work, "template")
    config = os.path.join(work, "template.toml")
    write_config(config, moto, "template", "default", grace=0)
    d = Daemon(data, config)
    t0 = time.perf_counter()
    # Closed loop, in chunks of 1M events: ingest-bench holds its whole file in memory twice.
    chunk = os.path.join(work, "chunk.ndjson")
    with open(events, "rb") as f:
        while True:
            lines = [line for _, line in zip(range(1_000_000), f)]
            if not lines:
                break
            with open(chunk, "wb") as w:
                w.writelines(lines)
            ingest(d.url, chunk, PROJECT)
    os.remove(chunk)
    os.remove(events)
    ingest_s = time.perf_counter() - t0
    d.restart()  # seals the open row segments
    # (No catalog lookup before the re-encode: its lease would keep the retired row segments from gc.)
    report, reencode_s = d.run_pass("reencode")
    assert not report["errors"], report["errors"]
    row_segments = sum(len(a["inputs"]) for a in report["actions"])
    row_bytes = sum(a["bytes_before"] for a in report["actions"])
    time.sleep(1.5)  # the lease TTL after the restart
    for _ in range(2):  # retired -> trash -> purged (grace and retention 0)
        gc, _ = d.run_pass("gc")
        assert not gc["errors"], gc
    segs = d.segments()
    d.stop()
    assert all(s["format"] == "parquet" and s["tier"] == "hot" for s in segs), segs
    left = [f for f in os.listdir(os.path.join(data, "hot", PROJECT)) if not f.endswith(".parquet")]
    assert not left, f"gc left the retired row segments: {left}"
    total = sum(s["bytes"] for s in segs)
    log(f"# template: {args.events} events over {args.days} days ({ndjson / 1e6:.0f} MB NDJSON) ingested in "
        f"{ingest_s:.1f} s; {row_segments} row segments ({row_bytes / 1e6:.1f} MB) -> {len(segs)} columnar "
        f"segments, {total / 1e6:.1f} MB, re-encoded in {reencode_s:.1f} s; data dir {dir_bytes(data) / 1e6:.0f} MB")
    return data, segs, {"events": args.events, "days": args.days, "ndjson_bytes": ndjson,
                        "row_segments": row_segments, "row_bytes": row_bytes, "reencode_s": reencode_s,
                        "segments": len(segs), "bytes": total, "segment_bytes": sorted(s["bytes"] for s in segs)}


def migrate_run(work, template, moto, budget, tag):
    data = fresh_copy(template, work, "run")
    config = os.path.join(work, "run.toml")
    write_config(config, moto, tag, budget)
    d = Daemon(data, config)
    try:
        m0 = d.metrics()
        report, secs = d.run_pass("migrate")
        m1 = d.metrics()
    finally:
        d.stop()
    assert not report["errors"], report["errors"]
    moved = sum(a["bytes_after"] or 0 for a in report["actions"])
    objects = moto.keys(tag + "/")
    assert len(objects) == len(report["actions"]) and sum(s for _, s in objects) == moved, (objects, report)
    moto.clear(tag + "/")
    shutil.rmtree(data)
    d_ = lambda name, **kw: metric(m1, name, **kw) - metric(m0, name, **kw)
    return {"budget": budget, "segments": len(report["actions"]), "bytes": moved, "seconds": secs,
            "mb_per_s": moved / secs / 1e6,
            "cold_write_bytes": d_("tierd_cold_bytes_total", direction="write"),
            "cold_read_bytes": d_("tierd_cold_bytes_total", direction="read"),
            "cold_requests": d_("tierd_cold_requests_total"),
            "budget_wait_s": {r: d_("tierd_budget_wait_seconds_sum", resource=r)
                              for r in ("object_bytes", "object_requests", "object_concurrency", "disk_bytes")}}


def raw_cmd(files, moto, mode, read_back, tag, pace=0.0, range_probe=0):
    cmd = [RAW, *files, "--endpoint", moto.endpoint, "--bucket", BUCKET, "--prefix", tag, "--mode", mode,
           "--access-key-id", KEY_ID, "--secret-access-key", SECRET, "--pace-mb-per-s", str(pace),
           "--range-probe", str(range_probe)]
    if read_back:
        cmd.append("--read-back")
    return cmd


def raw_run(files, moto, mode, read_back, tag, range_probe=0):
    cmd = raw_cmd(files, moto, mode, read_back, tag, range_probe=range_probe)
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"cold-bench failed: {out.stderr}\n{out.stdout}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    moto.clear(tag + "/")
    return res


def query_bench(args, work, template, moto, segs):
    data = fresh_copy(template, work, "query")
    config = os.path.join(work, "query.toml")
    write_config(config, moto, "query", "default")
    d = Daemon(data, config)
    try:
        report, _ = d.run_pass("migrate")
        assert not report["errors"], report["errors"]
        # The middle day; its one segment.
        days = sorted({s["day"] for s in segs})
        day = days[len(days) // 2]
        seg = [s for s in segs if s["day"] == day]
        assert len(seg) == 1, seg
        seg = seg[0]
        day_ms = int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp() * 1000)
        q = {"project": PROJECT, "from": day_ms, "to": day_ms + DAY_MS, "group_by": "event"}

        def timed():
            t0 = time.perf_counter()
            r = post(d.url + "/v1/query", q)
            return (time.perf_counter() - t0) * 1000, r

        first, cached, fetched, answers = [], [], [], []
        for _ in range(args.query_runs):
            d.stop()
            shutil.rmtree(os.path.join(data, "cache"), ignore_errors=True)
            d.start()
            post(d.url + "/v1/query", {"project": "warmup", "from": day_ms, "to": day_ms + DAY_MS})
            m0 = d.metrics()
            ms, r = timed()
            m1 = d.metrics()
            assert r["segments_scanned"] == 1, r
            first.append(ms)
            answers.append(r["rows"])
            fetched.append({
                "cold_read_bytes": metric(m1, "tierd_cold_bytes_total", direction="read")
                - metric(m0, "tierd_cold_bytes_total", direction="read"),
                "cold_requests": metric(m1, "tierd_cold_requests_total") - metric(m0, "tierd_cold_requests_total"),
                "cold_request_ms": 1000 * (metric(m1, "tierd_cold_request_seconds_sum")
                                           - metric(m0, "tierd_cold_request_seconds_sum")),
                "cache_misses": metric(m1, "tierd_cache_misses_total") - metric(m0, "tierd_cache_misses_total"),
                "cache_fill_bytes": metric(m1, "tierd_cache_fill_bytes_total")
                - metric(m0, "tierd_cache_fill_bytes_total"),
            })
            for _ in range(args.repeats):
                m0 = d.metrics()
                ms, r = timed()
                m1 = d.metrics()
                assert metric(m1, "tierd_cold_bytes_total", direction="read") == metric(
                    m0, "tierd_cold_bytes_total", direction="read"), "a cached read went to the object store"
                cached.append(ms)
                answers.append(r["rows"])
        moved = post(d.url + "/v1/admin/move", {"segments": [seg["id"]], "to": "hot"})
        assert moved["results"][0]["outcome"] == "moved", moved
        hot = []
        for _ in range(args.query_runs * args.repeats + 1):
            ms, r = timed()
            hot.append(ms)
            answers.append(r["rows"])
        hot = hot[1:]  # the first read of the fresh hot copy pays the page cache
        assert all(a == answers[0] for a in answers), "answers differ between cold, cached and hot"
        total = sum(row["count"] for row in answers[0])
    finally:
        d.stop()
    moto.clear("query/")
    shutil.rmtree(data)
    return {"day": day, "segment_bytes": seg["bytes"], "rows": seg["rows"], "events_counted": total,
            "first_ms": first, "cached_ms": cached, "hot_ms": hot, "fetched": fetched}


def ingest_bench(args, work, template, moto, ingest_file, passes, r, files, pace):
    """Three windows on one daemon, each ingest into its own project: idle; while `cold-bench` puts
    the same segment files to moto paced at `pace` MB/s (the default-budget migrate's measured rate: moto's and the
    disk's share of the load, no tierd background work); while tierd's migrate pass moves the backlog."""
    data = fresh_copy(template, work, "ingest")
    config = os.path.join(work, "ingest.toml")
    tag = f"ingest-{r}"
    write_config(config, moto, tag, "default")
    d = Daemon(data, config)
    out = {}

    def window(name, background):
        box = {}

        def bg():
            box["start"] = time.perf_counter()
            box["result"] = background()
            box["end"] = time.perf_counter()

        t = None
        if background:
            t = threading.Thread(target=bg)
            t.start()
            time.sleep(1.0)
        c0 = (cpu_seconds(d.proc.pid), group_cpu_seconds(moto.proc.pid))
        i0 = time.perf_counter()
        res = ingest(d.url, ingest_file, f"{name}{r}", args.rate, passes, args.batch, args.connections)
        i1 = time.perf_counter()
        c1 = (cpu_seconds(d.proc.pid), group_cpu_seconds(moto.proc.pid))
        res["window_s"] = i1 - i0
        res["daemon_cpu_s"], res["moto_cpu_s"] = c1[0] - c0[0], c1[1] - c0[1]
        if t:
            t.join()
            res["background"] = box["result"]
            res["background_s"] = box["end"] - box["start"]
            res["started_after_background_s"] = i0 - box["start"]
            res["background_ended_after_ingest_s"] = box["end"] - i1
        out[name] = res

    def control():
        done = subprocess.run(raw_cmd(files, moto, "put", False, f"ctl-{r}", pace=pace), capture_output=True,
                              text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    try:
        window("idle", None)
        window("control", control)
        window("during", lambda: d.run_pass("migrate"))
    finally:
        d.stop()
    report = out["during"]["background"][0]
    assert not report["errors"], report["errors"]
    out["migrate_bytes"] = sum(a["bytes_after"] or 0 for a in report["actions"])
    out["during"]["background"] = {"seconds": out["during"]["background"][1], "actions": len(report["actions"])}
    moto.clear(tag + "/")
    moto.clear(f"ctl-{r}/")
    shutil.rmtree(data)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=4_000_000)
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--query-runs", type=int, default=5, help="restarts with an empty cache (first reads)")
    ap.add_argument("--repeats", type=int, default=5, help="cached reads after each first read")
    ap.add_argument("--rate", type=float, default=100_000, help="offered ingest rate, events/s")
    ap.add_argument("--ingest-secs", type=float, help="default: 3/4 of the default-budget migrate pass, less 1 s")
    ap.add_argument("--ingest-runs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=500, help="events per ingest request")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="smoke run: small data, one run of each")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--moto-nice", type=int, default=0,
                    help="run moto at this nice value (a stand-in for an object store on another host)")
    ap.add_argument("--moto-tmpdir", help="TMPDIR for moto, where it keeps objects over ~5 MiB (default: /tmp's disk; "
                                          "/dev/shm keeps them in memory)")
    ap.add_argument("--json", help="also write every run's raw results to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (daemon logs) for inspection")
    args = ap.parse_args()
    if args.quick:
        args.events, args.days, args.runs, args.query_runs, args.repeats, args.ingest_runs = 200_000, 3, 1, 2, 2, 1
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "tierd", "--bin", "ingest-bench",
                        "--bin", "cold-bench"], cwd=ROOT, check=True)
    from importlib.metadata import version
    machine = {"nproc": os.cpu_count(), "load_start": loadavg(), "moto": version("moto"),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    log(f"# {machine}")
    work = tempfile.mkdtemp(prefix="tierd-cold-bench-")
    moto = Moto(work, args.moto_tmpdir, args.moto_nice)
    machine["moto_nice"] = args.moto_nice
    machine["moto_tmpdir"] = args.moto_tmpdir or tempfile.gettempdir()
    try:
        template, segs, sizes = build_template(args, work, moto)
        files = []
        for i, s in enumerate(sorted(segs, key=lambda s: s["location"])):
            dest = os.path.join(work, "raw", os.path.basename(s["location"]))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(os.path.join(template, s["location"]), dest)
            files.append(dest)

        mig = {"default": [], "unlimited": [], "read-back": [], "multipart": []}
        raw = {"put": [], "multipart": [], "put+get": []}
        for r in range(args.runs):
            for budget in mig:
                res = migrate_run(work, template, moto, budget, f"mig-{budget}-{r}")
                log(f"migrate {budget} budget:", json.dumps(res))
                mig[budget].append(res)
            for name, mode, back in (("put", "put", False), ("multipart", "multipart", False),
                                     ("put+get", "put", True)):
                res = raw_run(files, moto, mode, back, f"raw-{name.replace('+', '-')}-{r}", 32 if back else 0)
                assert res["bytes"] == sizes["bytes"], (res, sizes)
                log(f"raw {name}:", json.dumps(res))
                raw[name].append(res)

        query = query_bench(args, work, template, moto, segs)
        log("query:", json.dumps(query))

        # The ingest window must lie inside the migrate pass: by default it lasts 3/4 of the default-budget pass's
        # measured median, less the 1 s head start (the script reports the overlap it got).
        if args.ingest_secs is None:
            args.ingest_secs = max(1.0, 0.75 * statistics.median(r["seconds"] for r in mig["default"]) - 1.0)
        want = int(args.rate * args.ingest_secs)
        passes = -(-want // 200_000)
        per_file = -(-want // passes)
        ingest_file = os.path.join(work, "ingest.ndjson")
        subprocess.run([TIERD, "gen", "--events", str(per_file), "--days", "7", "--seed", "2", "--dup-rate", "0",
                        "--out", ingest_file], check=True, capture_output=True)
        ing = []
        for r in range(args.ingest_runs):
            res = ingest_bench(args, work, template, moto, ingest_file, passes, r, files,
                               statistics.median(x["mb_per_s"] for x in mig["default"]))
            log("ingest:", json.dumps(res))
            ing.append(res)
    finally:
        moto.stop()
    machine["load_end"] = loadavg()
    if args.keep:
        log(f"# work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "sizes": sizes, "migrate": mig, "raw": raw, "query": query,
                       "ingest": ing, "args": vars(args)}, f, indent=1)
    report(args, machine, sizes, mig, raw, query, ing)


def report(args, machine, sizes, mig, raw, query, ing):
    med = statistics.median
    mb = sizes["bytes"] / 1e6
    print(f"machine: nproc {machine['nproc']}, load average (1, 5, 15 min) at start {machine['load_start']}, "
          f"at end {machine['load_end']}; moto {machine['moto']} (objects over ~5 MiB in {machine['moto_tmpdir']}"
          f"{', nice ' + str(machine['moto_nice']) if machine.get('moto_nice') else ''}); "
          f"{machine['date']}")
    segs = sizes["segment_bytes"]
    print(f"data: {sizes['events']:,} events over {sizes['days']} days, {sizes['ndjson_bytes'] / 1e6:.0f} MB NDJSON "
          f"-> {sizes['row_segments']} row segments {sizes['row_bytes'] / 1e6:.1f} MB -> {sizes['segments']} lz4 "
          f"columnar segments {mb:.1f} MB (each {segs[0] / 1e6:.1f} to {segs[-1] / 1e6:.1f} MB)")
    print()
    print(f"Migration, {mb:.1f} MB in {sizes['segments']} objects, medians of {args.runs}:")
    print()
    print("| what | seconds | MB/s | vs raw put | vs raw multipart | vs raw put then get | object-store bytes "
          "written / read (MB) | budget waits s (object bytes / requests / concurrency / disk) |")
    print("|---|---|---|---|---|---|---|---|")
    raw_put = med(r["put_mb_per_s"] for r in raw["put"])
    raw_mp = med(r["put_mb_per_s"] for r in raw["multipart"])
    raw_pg = med(r["put_get_mb_per_s"] for r in raw["put+get"])
    names = {"default": "default budget", "unlimited": "unlimited budget",
             "read-back": "unlimited budget, every upload read back (`cold.verify = \"read_back\"`)",
             "multipart": "unlimited budget, multipart from 16 MiB (8 MiB parts, 4 in flight)"}
    for budget in mig:
        rs = mig[budget]
        v = med(r["mb_per_s"] for r in rs)
        waits = " / ".join(f"{med(r['budget_wait_s'][k] for r in rs):.1f}"
                           for k in ("object_bytes", "object_requests", "object_concurrency", "disk_bytes"))
        print(f"| tierd migrate, {names[budget]} | {med(r['seconds'] for r in rs):.2f} | {v:.1f} | "
              f"{v / raw_put:.2f}x | {v / raw_mp:.2f}x | {v / raw_pg:.2f}x | {med(r['cold_write_bytes'] for r in rs) / 1e6:.1f} / "
              f"{med(r['cold_read_bytes'] for r in rs) / 1e6:.1f} | {waits} |")
    for name in ("put", "multipart"):
        rs = raw[name]
        print(f"| raw object_store, {name} | {med(r['put_seconds'] for r in rs):.2f} | "
              f"{med(r['put_mb_per_s'] for r in rs):.1f} | | | | | |")
    rs = raw["put+get"]
    print(f"| raw object_store, put then get of each (moto's whole GET: {med(r['get_mb_per_s'] for r in rs):.1f} MB/s; "
          f"1 MiB ranged GET: {med(r['range_median_ms'] for r in rs):.1f} ms) | "
          f"{med(r['put_seconds'] + r['get_seconds'] for r in rs):.2f} | {med(r['put_get_mb_per_s'] for r in rs):.1f}"
          f" | | | | | |")
    print()
    q = query
    f0 = q["fetched"]
    print(f"Query: count by event over {q['day']} (one segment, {q['segment_bytes'] / 1e6:.1f} MB, {q['rows']:,} rows; "
          f"{q['events_counted']:,} counted), client wall time, medians (first reads: {len(q['first_ms'])} restarts; "
          f"cached: {len(q['cached_ms'])} reads; hot: {len(q['hot_ms'])} reads):")
    print()
    print("| read | ms | min-max ms | fetched from the object store |")
    print("|---|---|---|---|")
    print(f"| cold, first read (empty cache) | {med(q['first_ms']):.1f} | {min(q['first_ms']):.1f}-"
          f"{max(q['first_ms']):.1f} | {med(x['cold_read_bytes'] for x in f0) / 1e6:.2f} MB in "
          f"{med(x['cold_requests'] for x in f0):.0f} requests ({med(x['cold_request_ms'] for x in f0):.0f} ms in "
          f"object-store calls), {med(x['cache_misses'] for x in f0):.0f} block misses |")
    print(f"| cold, cached | {med(q['cached_ms']):.1f} | {min(q['cached_ms']):.1f}-{max(q['cached_ms']):.1f} | 0 |")
    print(f"| hot | {med(q['hot_ms']):.1f} | {min(q['hot_ms']):.1f}-{max(q['hot_ms']):.1f} | |")
    print()
    print(f"Ingest at {args.rate:,.0f} events/s offered ({args.batch} events/request, {args.connections} connections, "
          f"{ing[0]['idle']['events']:,} events, {ing[0]['idle']['requests']} requests, "
          f"{ing[0]['idle']['window_s']:.1f} s per window), medians of {len(ing)} runs:")
    print()
    print("| ingest | events/s | ack p50 ms | p99 ms | p999 ms | max ms | p99 / idle p99 (median of the runs' ratios; "
          "each run) | tierd CPU s | moto CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, name in (("idle", "idle"),
                    ("control", f"during raw puts of the same files to moto at "
                                f"{statistics.median(r['mb_per_s'] for r in mig['default']):.1f} MB/s (no tierd work)"),
                    ("during", "during migrate, default budget")):
        g = lambda p: med(r[k]["ack_ms"][p] for r in ing)
        ratio = [r[k]["ack_ms"]["p99"] / r["idle"]["ack_ms"]["p99"] for r in ing]
        print(f"| {name} | {med(r[k]['events_per_s'] for r in ing):,.0f} | {g('p50'):.2f} | {g('p99'):.2f} | "
              f"{g('p999'):.2f} | {g('max'):.2f} | {med(ratio):.2f}x ({', '.join(f'{x:.2f}' for x in ratio)}) | "
              f"{med(r[k]['daemon_cpu_s'] for r in ing):.2f} | {med(r[k]['moto_cpu_s'] for r in ing):.2f} |")
    print()
    if any(r[k]["background_ended_after_ingest_s"] < 0 for r in ing for k in ("control", "during")):
        print("WARNING: background work ended before an ingest window did: those rows were not measured under load "
              "(expected with --quick; otherwise lower --ingest-secs).")
    for k in ("control", "during"):
        print(f"{k}: " + "; ".join(
            f"background {r[k]['background_s']:.1f} s, ingest started {r[k]['started_after_background_s']:.1f} s "
            f"after it, background ended {r[k]['background_ended_after_ingest_s']:.1f} s after the ingest"
            for r in ing))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A long mixed run: ingest at half the measured maximum, queries, and every pass on its schedule, sampled every
second. Nothing may grow without bound: the daemon's RSS, its open file descriptors, and ingest's ack latency.

  1. a fresh data directory, `tierd serve` with every pass scheduled (re-encode every 10 s, compaction every 30 s,
     recompression, migration of columnar segments to the embedded `file://` cold tier, and gc every minute);
  2. the maximum (each send's insert ids made unique, so every batch is new events): `--writers` threads import `--batch`-event NDJSON batches as fast as they are acknowledged, for
     `--probe-secs` seconds; the run's rate is half of it (or `--rate`);
  3. the run: the writers paced at that rate, one reader sending three query shapes in turn, for `--minutes`;
  4. every second: RSS (VmRSS), open descriptors (/proc/PID/fd), events acknowledged, and the acks' and queries'
     latencies; a CSV of the samples (`--csv`) and a summary per minute, then the first and last minute compared.

  python3 tests/bench/load.py --bin target/release/tierd --minutes 10 --csv /tmp/load.csv
"""

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

PROJECT = "load"

CONFIG = """
[catalog]
lease_ttl_secs = 30
[gc]
grace_secs = 60
trash_retention_secs = 300
[hot]
seal_max_age_secs = 60
[passes.reencode]
min_age_secs = 20
schedule = "*/10 * * * * *"
[passes.compact]
schedule = "*/30 * * * * *"
[passes.recompress]
schedule = "5 * * * * *"
[passes.migrate]
schedule = "20 * * * * *"
[passes.gc]
schedule = "40 * * * * *"
[policy]
min_residency_secs = 0
[[policy.rules]]
name = "columnar-cold"
format = "columnar"
placement = "cold"
force = true
"""

QUERIES = [
    '{"project": "load", "from": 0, "to": 4102444800000, "group_by": "event"}',
    '{"project": "load", "from": 0, "to": 4102444800000, "group_by": "properties.$os"}',
    '{"project": "load", "from": 0, "to": 4102444800000, "event": "Purchase", "group_by": "properties.plan"}',
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, content_type, timeout=60):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code
    except OSError:
        return 0


def wait_healthy(url, proc):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tierd exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("tierd did not become healthy")


def proc_sample(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.acks = []  # latencies (s) since the last sample
        self.queries = []
        self.acked_events = 0
        self.refused = 0
        self.query_errors = 0

    def take(self):
        with self.lock:
            acks, queries, self.acks, self.queries = self.acks, self.queries, [], []
            return acks, queries, self.acked_events, self.refused, self.query_errors


SENDS = iter(range(1, 1 << 62))
SENDS_LOCK = threading.Lock()


def writer(url, batches, stats, stop, pace):
    """Sends batches in turn; `pace()` returns how long to wait before the next (0 = as fast as acknowledged).
    Each send prefixes every `$insert_id` with a number of its own, so a batch sent again is new events (the
    generated stream's own re-sends, about 2%, stay duplicates within it), not a re-send of the whole batch."""
    i = random.randrange(len(batches))
    while not stop.is_set():
        body, n = batches[i % len(batches)]
        i += 1
        with SENDS_LOCK:
            k = next(SENDS)
        body = body.replace(b'"$insert_id":"', b'"$insert_id":"%d-' % k)
        wait = pace(n)
        if wait > 0:
            time.sleep(wait)
        t0 = time.monotonic()
        status = post(f"{url}/import?project={PROJECT}", body, "application/x-ndjson")
        took = time.monotonic() - t0
        with stats.lock:
            if status == 200:
                stats.acks.append(took)
                stats.acked_events += n
            else:
                stats.refused += 1


def reader(url, stats, stop):
    i = 0
    while not stop.is_set():
        t0 = time.monotonic()
        status = post(f"{url}/v1/query", QUERIES[i % len(QUERIES)].encode(), "application/json")
        took = time.monotonic() - t0
        i += 1
        with stats.lock:
            if status == 200:
                stats.queries.append(took)
            else:
                stats.query_errors += 1
        time.sleep(0.2)


class Pacer:
    """A token bucket shared by the writers: `rate` events per second overall."""

    def __init__(self, rate):
        self.rate = rate
        self.lock = threading.Lock()
        self.next = time.monotonic()

    def __call__(self, n):
        with self.lock:
            now = time.monotonic()
            start = max(self.next, now)
            self.next = start + n / self.rate
            return start - now


def load_batches(binary, work, events, batch):
    path = os.path.join(work, "events.ndjson")
    if not os.path.exists(path):
        subprocess.run([binary, "gen", "--events", str(events), "--days", "7", "--out", path], check=True)
    batches = []
    with open(path, "rb") as f:
        lines = f.readlines()
    for k in range(0, len(lines), batch):
        chunk = lines[k:k + batch]
        batches.append((b"".join(chunk), len(chunk)))
    return batches


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--probe-secs", type=float, default=20)
    ap.add_argument("--rate", type=float, default=None, help="events/s (default: half the probed maximum)")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--events", type=int, default=400_000, help="distinct generated events, sent round and round")
    ap.add_argument("--work", default=None)
    ap.add_argument("--csv", default=None)
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="tierd-load-")
    os.makedirs(work, exist_ok=True)
    batches = load_batches(a.bin, work, a.events, a.batch)
    data = os.path.join(work, "data")
    shutil.rmtree(data, ignore_errors=True)
    cfg = os.path.join(work, "tierd.toml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(os.path.join(work, "tierd.log"), "w")
    proc = subprocess.Popen([a.bin, "serve", "--config", cfg, "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
                            stdout=log, stderr=log)
    try:
        wait_healthy(url, proc)
        # The maximum, then a fresh start is not needed: the same daemon goes on at half of it.
        stats = Stats()
        stop = threading.Event()
        ws = [threading.Thread(target=writer, args=(url, batches, stats, stop, lambda n: 0)) for _ in range(a.writers)]
        t0 = time.monotonic()
        for w in ws:
            w.start()
        time.sleep(a.probe_secs)
        stop.set()
        for w in ws:
            w.join()
        probed = stats.acked_events / (time.monotonic() - t0)
        rate = a.rate or probed / 2
        print(f"probe: {probed:,.0f} events/s acknowledged with {a.writers} writers of {a.batch}-event batches; "
              f"the run sends {rate:,.0f} events/s", flush=True)

        stats = Stats()
        stop = threading.Event()
        pacer = Pacer(rate)
        threads = [threading.Thread(target=writer, args=(url, batches, stats, stop, pacer)) for _ in range(a.writers)]
        threads.append(threading.Thread(target=reader, args=(url, stats, stop)))
        for t in threads:
            t.start()
        samples = []
        start = time.monotonic()
        end = start + a.minutes * 60
        last_events = 0
        while time.monotonic() < end:
            time.sleep(1)
            if proc.poll() is not None:
                raise RuntimeError(f"tierd exited with {proc.returncode} during the run")
            rss, fds = proc_sample(proc.pid)
            acks, queries, acked, refused, qerr = stats.take()
            samples.append({
                "t": round(time.monotonic() - start, 1), "rss": rss, "fds": fds, "events": acked - last_events,
                "ack_p99": pct(acks, 99), "ack_max": max(acks) if acks else None, "acks": acks,
                "query_p99": pct(queries, 99), "queries": queries, "refused": refused, "query_errors": qerr,
            })
            last_events = acked
        stop.set()
        for t in threads:
            t.join()
        import json
        with urllib.request.urlopen(url + "/v1/status", timeout=30) as r:
            status = json.loads(r.read())
        passes = ", ".join(f"{p['name']} {p['runs']} runs ({p['failures']} failed)" for p in status["passes"])
        print(f"passes during the run: {passes}")
        with urllib.request.urlopen(url + "/v1/catalog/projects", timeout=30) as r:
            print(f"catalog: {r.read().decode()[:400]}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("t,rss_bytes,fds,events,ack_p99_ms,ack_max_ms,query_p99_ms,refused_total,query_errors_total\n")
            for s in samples:
                ms = lambda v: "" if v is None else f"{v * 1000:.1f}"
                f.write(f"{s['t']},{s['rss']},{s['fds']},{s['events']},{ms(s['ack_p99'])},{ms(s['ack_max'])},"
                        f"{ms(s['query_p99'])},{s['refused']},{s['query_errors']}\n")
    print(f"{'minute':>6} {'events/s':>9} {'RSS MB max':>10} {'fds max':>7} {'ack p50 ms':>10} {'ack p99 ms':>10} "
          f"{'ack max ms':>10} {'query p99 ms':>12}")
    minutes = {}
    for s in samples:
        minutes.setdefault(int(s["t"] // 60), []).append(s)
    rows = []
    for m in sorted(minutes):
        ss = minutes[m]
        acks = [x for s in ss for x in s["acks"]]
        queries = [x for s in ss for x in s["queries"]]
        row = (m + 1, sum(s["events"] for s in ss) / len(ss), max(s["rss"] for s in ss) / 1e6, max(s["fds"] for s in ss),
               (pct(acks, 50) or 0) * 1000, (pct(acks, 99) or 0) * 1000, max(acks or [0]) * 1000,
               (pct(queries, 99) or 0) * 1000)
        rows.append(row)
        print(f"{row[0]:>6} {row[1]:>9,.0f} {row[2]:>10.0f} {row[3]:>7} {row[4]:>10.1f} {row[5]:>10.1f} {row[6]:>10.1f} "
              f"{row[7]:>12.1f}")
    last = samples[-1]
    print(f"refused imports: {last['refused']}, failed queries: {last['query_errors']}")
    if len(rows) >= 2:
        first, final = rows[0], rows[-1]
        print(f"first minute -> last minute: RSS max {first[2]:.0f} -> {final[2]:.0f} MB, fds max {first[3]} -> "
              f"{final[3]}, ack p99 {first[5]:.1f} -> {final[5]:.1f} ms")
    hot = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(data) for f in fs)
    print(f"data directory at the end: {hot / 1e6:.0f} MB ({work})")


if __name__ == "__main__":
    sys.exit(main())

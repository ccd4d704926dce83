#!/usr/bin/env python3
"""Time back in service after kill -9: how long a restarted daemon takes to answer /healthz, by the hot bytes it holds.

For each binary given (e.g. the build before and after a change), in one run on the same generated events:
  1. a fresh data directory; `tierd serve --no-schedules` (nothing is re-encoded: the hot tier keeps every byte);
  2. the generated NDJSON imported `--copies` times (each copy under its own project, so nothing is deduplicated);
  3. `--runs` times: a small import (so that open segments with a fresh tail exist, as after any crash under
     ingest), kill -9, start again, time from the start until /healthz answers 200.
Prints one line per binary (median and all runs) and the hot directory's size.

  python3 tests/bench/recovery.py --bin before=/path/tierd --bin after=target/release/tierd --events 2000000 --copies 4
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url, proc, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tierd exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError("tierd did not become healthy")


def start(binary, data_dir, port, log):
    return subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}", "--no-schedules"],
        stdout=log, stderr=log,
    )


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", required=True, help="NAME=PATH of a tierd binary")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default=None, help="where data directories go (default: a temp dir)")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="tierd-recovery-")
    os.makedirs(work, exist_ok=True)
    events = os.path.join(work, "events.ndjson")
    first = a.bin[0].split("=", 1)[1]
    if not os.path.exists(events):
        subprocess.run([first, "gen", "--events", str(a.events), "--days", "7", "--out", events], check=True)
    tail = os.path.join(work, "tail.ndjson")
    if not os.path.exists(tail):
        subprocess.run([first, "gen", "--events", "2000", "--days", "7", "--seed", "2", "--out", tail], check=True)
    results = {}
    for spec in a.bin:
        name, binary = spec.split("=", 1)
        data = os.path.join(work, f"data-{name}")
        shutil.rmtree(data, ignore_errors=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with open(os.path.join(work, f"{name}.log"), "wb") as log:
            p = start(binary, data, port, log)
            wait_healthy(url, p)
            for c in range(a.copies):
                subprocess.run([binary, "import", "--url", url, "--project", f"p{c}", "--gzip", events],
                               check=True, stdout=subprocess.DEVNULL)
            hot = du(os.path.join(data, "hot"))
            times = []
            for r in range(a.runs):
                subprocess.run([binary, "import", "--url", url, "--project", f"tail{r}", tail],
                               check=True, stdout=subprocess.DEVNULL)
                p.send_signal(signal.SIGKILL)
                p.wait()
                t0 = time.monotonic()
                p = start(binary, data, port, log)
                wait_healthy(url, p)
                times.append(time.monotonic() - t0)
            p.send_signal(signal.SIGKILL)
            p.wait()
        results[name] = {"hot_bytes": hot, "restart_s": times, "median_s": statistics.median(times)}
        print(f"{name}: hot {hot / 1e6:.0f} MB, restart to /healthz median {statistics.median(times):.3f} s "
              f"(runs {', '.join(f'{t:.3f}' for t in times)}), {hot / 1e6 / statistics.median(times):.0f} MB/s",
              flush=True)
    print(json.dumps(results))
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

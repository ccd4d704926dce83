#!/usr/bin/env python3
"""Writes the seed corpora and dictionaries of the fuzz targets into OUT_DIR (never into the repository).

    python3 tests/fuzz/seeds.py OUT_DIR

- ingest: a few real events of the GH Archive hour and of the wikiticker edits (from ../shared/data/real, read,
  never copied whole) in Mixpanel's shape, as they are mapped by tests/tests/rewrites.rs and
  tests/bench/columnar.py, plus the odd bodies of the codec's edge-case tests; each as a JSON array and as NDJSON,
  under each of the target's encodings (first byte: plain, gzipped by the target, gzipped here) and limit sets.
- query: the README's query and bodies that use every operator, group_by form and value type.
- config: tierd.example.toml whole and one section at a time, and the configs of the end-to-end tests' shape.

Without the real data (another checkout layout) the generated seeds are written alone.
"""

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
REAL = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "real"))
if not os.path.isdir(REAL):
    REAL = "/work/shared/data/real"


def first_lines(path, n):
    """The first n lines of a .zst, .gz or plain file, decoding no more than needed."""
    if path.endswith(".zst"):
        p = subprocess.Popen(["zstd", "-dc", path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        lines = [p.stdout.readline() for _ in range(n)]
        p.kill()
        p.wait()
    else:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            lines = [f.readline() for _ in range(n)]
    return [l.decode() for l in lines if l.strip()]


def iso_seconds(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def gh_events(n):
    path = os.path.join(REAL, "gharchive_2015-01-01-15", "events.json.zst")
    if not os.path.exists(path):
        return []
    out = []
    for line in first_lines(path, n):
        v = json.loads(line)
        props = {"time": int(iso_seconds(v["created_at"])), "distinct_id": v["actor"], "$insert_id": v["id"]}
        for k in ("repo", "org", "public", "payload"):
            if k in v:
                props[k] = v[k]
        out.append({"event": v["type"], "properties": props})
    return out


def wiki_events(n):
    path = os.path.join(REAL, "wikipedia_edits_wikiticker", "wikiticker-2015-09-12-sampled.json.gz")
    if not os.path.exists(path):
        return []
    out = []
    for line in first_lines(path, n):
        o = json.loads(line)
        props = {"time": round(iso_seconds(o["time"]), 3), "distinct_id": o["user"],
                 "$insert_id": hashlib.md5(line.rstrip("\n").encode()).hexdigest()}
        props.update({k: v for k, v in o.items() if k not in ("time", "channel", "user")})
        out.append({"event": o["channel"], "properties": props})
    return out


# The odd bodies of codecs/src/event/fast/tests.rs (edge_cases_agree) and a few more shapes.
ODD_BODIES = [
    "[]",
    " [ ] ",
    "[{}]",
    "{}",
    "\ufeff[]",
    '[{"event":"e","properties":{"time":1}}]',
    '{"event":"e","properties":{"time":1}}\r\n\n  \n{"event":"e","properties":{"time":2}}',
    '[{"event":"e","properties":{"time":1e2}}]',
    '[{"event":"e","properties":{"time":-0}}]',
    '[{"event":"e","properties":{"time":1,"time":2}}]',
    '[{"event":"e","event":"f","properties":{"time":1}}]',
    '[{"event":"e","properties":{"time":1,"distinct_id":1.50,"x":1.50}}]',
    '[{"event":"e","properties":{"time":1,"distinct_id":"\\u00e9\\n"}}]',
    '[{"event":"\\u00e9","properties":{"time":1,"$insert_id":"\\u00e9"}}]',
    '[{"event":"e","properties":{"time":1,"\\u0074ime":2}}]',
    '[{"event":"e","properties":{"time":1,"x":1e400}}]',
    '[{"event":"e","properties":{"time":1},"token":"\\ud800"}]',
    '[{"event":"e","properties":{"time":1,"x":"\\ud83d\\ude00","y":[1,-2.5e-3,true,null,{"z":{}}]}}]',
    '[{"event":"e","properties":{"time":1700000000123,"$insert_id":null,"distinct_id":null}}]',
    '{"event":"e","properties":{"time":1700000000.5,"distinct_id":12345678901234567890,"a/b":"\\/"}}\n',
]

LIMIT_SETS = 4  # as LIMITS in fuzz_targets/ingest.rs


def ingest_seeds():
    bodies = []
    for events in (gh_events(3), wiki_events(3)):
        if events:
            bodies.append(json.dumps(events, separators=(",", ":")).encode())
            bodies.append("".join(json.dumps(e) + "\n" for e in events).encode())
            bodies.append(json.dumps(events[:1], indent=1).encode())
    bodies += [b.encode() for b in ODD_BODIES]
    seeds = []
    for body in bodies:
        for limits in range(LIMIT_SETS):
            seeds.append(bytes([limits << 2 | 0]) + body)
        seeds.append(bytes([1]) + body)
        seeds.append(bytes([1 | 0x10]) + body)
        seeds.append(bytes([2]) + gzip.compress(body, mtime=0))
    return seeds


QUERIES = [
    {"from": 0, "to": 1 << 62},
    {"project": "default", "from": 1700000000000, "to": 1800000000000, "event": "Purchase",
     "where": [{"property": "$os", "op": "eq", "value": "iOS"}], "group_by": "properties.$city"},
    {"from": 0, "to": 10, "group_by": "event", "limit": 3},
    {"from": -5, "to": 5, "where": [{"property": "time", "op": "gte", "value": 1}, {"property": "time", "op": "lt", "value": 1e3}]},
    {"from": 0, "to": 9, "where": [{"property": "distinct_id", "op": "neq", "value": "u1"},
                                   {"property": "$insert_id", "op": "exists"},
                                   {"property": "n", "op": "lte", "value": 18446744073709551615},
                                   {"property": "f", "op": "gt", "value": -0.0},
                                   {"property": "s", "op": "lt", "value": "\u00e9\ud83d\ude00"},
                                   {"property": "b", "op": "eq", "value": True},
                                   {"property": "o", "op": "eq", "value": {"a": [1, None]}},
                                   {"property": "z", "op": "eq", "value": None}]},
    {"from": 0, "to": 1, "where": [{"property": "x", "op": "like", "value": 1}]},
    {"from": 0, "to": 1, "where": [{"property": "", "op": "eq", "value": 1}]},
    {"from": 5, "to": 1, "project": "bad project"},
    {"from": 0, "to": 1, "limit": 0},
    {"from": 0, "to": 1, "group_by": "properties."},
]


def config_seeds():
    with open(os.path.join(ROOT, "tierd.example.toml")) as f:
        example = f.read()
    seeds = [example]
    # One section at a time, comments dropped: short inputs the fuzzer mutates quickly.
    sections = re.split(r"(?m)^(?=\[)", example)
    for section in sections:
        text = "\n".join(l for l in section.splitlines() if l.strip() and not l.lstrip().startswith("#"))
        if text:
            seeds.append(text + "\n")
    # Shapes of the end-to-end tests' configs (tests/tests/*.rs).
    seeds += [
        "[catalog]\nlease_ttl_secs = 60\n[gc]\ngrace_secs = 0\n[passes.reencode]\nmin_age_secs = 0\n",
        '[passes.reencode]\nschedule = "*/1 * * * * *"\n[passes]\nschedule_jitter_secs = 0\n',
        '[passes.gc]\nschedule = "0 0 0 29 2 * 2100-2200"\n',
        '[passes.migrate]\nschedule = "59 59 23 31 12 * 9999"\n',
        "[ingest]\nmax_bytes_per_request = 9223372036854775807\n",
        '[[policy.rules]]\nname = "cold"\ntier = "cold"\nmin_age_secs = 1\n',
        '[retention]\ndefault_days = 30\n[retention.projects]\nweb = 7\n',
        '[log]\nlevel = "tierd_store=debug,info"\n',
    ]
    return [s.encode() for s in seeds]


JSON_TOKENS = ['"event"', '"properties"', '"time"', '"distinct_id"', '"$insert_id"', '"token"', "\\u0000", "\\ud800",
               "\\udc00", "\\u00e9", "\\/", "\\\\", '\\"', "1e400", "-0", "-0.0", "1E+2", "0.1e-5", "18446744073709551616",
               "100000000000", "253402300799999", "null", "true", "false", "[]", "{}", "\r\n", "\ufeff"]
QUERY_TOKENS = ['"project"', '"from"', '"to"', '"event"', '"where"', '"group_by"', '"limit"', '"property"', '"op"',
                '"value"', '"eq"', '"neq"', '"lt"', '"lte"', '"gt"', '"gte"', '"exists"', '"properties.', '"time"',
                '"distinct_id"', '"$insert_id"', "-9223372036854775808", "9223372036854775807", "1e400", "-0.0", "null"]


def config_tokens():
    with open(os.path.join(ROOT, "tierd.example.toml")) as f:
        example = f.read()
    tokens = set(re.findall(r"(?m)^\[+[^\]]+\]+", example))
    tokens |= {k + " = " for k in re.findall(r"(?m)^([a-z_]+) =", example)}
    tokens |= {"9223372036854775807", "-1", "0", "1e308", "nan", "inf", '""', "true", '"* * * * * *"', "\n"}
    return sorted(tokens)


def write_dict(path, tokens):
    """libFuzzer's dictionary format: one quoted token a line, escapes only \\\\, \\" and \\xHH."""
    with open(path, "w") as f:
        for t in tokens:
            quoted = "".join(
                "\\" + chr(b) if chr(b) in '"\\' else chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02X}"
                for b in t.encode()
            )
            f.write(f'"{quoted}"\n')


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    corpora = {
        "ingest": ingest_seeds(),
        "query": [json.dumps(q).encode() for q in QUERIES],
        "config": config_seeds(),
    }
    for target, seeds in corpora.items():
        d = os.path.join(out, "seeds", target)
        os.makedirs(d, exist_ok=True)
        for seed in seeds:
            with open(os.path.join(d, hashlib.sha1(seed).hexdigest()), "wb") as f:
                f.write(seed)
        print(f"{target}: {len(seeds)} seeds", file=sys.stderr)
    write_dict(os.path.join(out, "ingest.dict"), JSON_TOKENS)
    write_dict(os.path.join(out, "query.dict"), QUERY_TOKENS)
    write_dict(os.path.join(out, "config.dict"), config_tokens())


if __name__ == "__main__":
    main()

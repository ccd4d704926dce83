//! Measures what the size of a merged columnar segment costs and gains: bytes per event, encode time and the peak
//! memory of one compaction, per output size. It chose the default `passes.compact.target_bytes` (BENCHMARKS.md,
//! "Compacted segment size"); `tests/bench/segment_size.py` runs it over a ladder of sizes.
//!
//! Three steps, each a separate process so that each one's peak RSS (`VmHWM`) is its own:
//!
//! - `prepare --dir DIR --events N [--skip M] [--inputs K]` reads NDJSON of ONE UTC day on stdin (e.g. from
//!   `tierd gen --days 1 --seed 1 --dup-rate 0`), skips its first M events (default 0), validates the next N with
//!   [`parse_batch`] in requests of 2000, gives them ingest sequence numbers in arrival order, and writes them as K
//!   lz4 columnar segments of consecutive arrivals (`DIR/input-NN.parquet`, default K = 8): the small segments the
//!   re-encode pass leaves for compaction. Taking slices of one stream keeps the user population and event mix the
//!   same for every size (a bigger `tierd gen --events` would also mean more users).
//! - `compact --dir DIR --codec C [--out FILE]` does what `store::rewrite` does for a compaction, from memory: reads
//!   every input, decodes it and appends its events to one `Vec<StoredEvent>`, deduplicates
//!   ([`tierd_codecs::dedup_split`]) and encodes ONE segment with codec C ([`columnar::encode`]), keeping the events
//!   alive until the output exists, as the rewriter does. Optionally writes the output to FILE (after measuring).
//! - `recompress --input FILE --codec C` rewrites one segment with another codec ([`columnar::recompress`], what the
//!   recompress pass does to a single columnar segment): the same rows, no events rebuilt.
//!
//! `compact` and `recompress` print one JSON object: events, input and output bytes, bytes per event, the time of
//! each step (one run per process; the driver runs the process several times for medians), `rss_loaded_mib` (RSS
//! with the decoded events held, before encoding) and `peak_rss_mib` (the process's `VmHWM` at the end: everything,
//! including the executable and allocator slack). Linux only (`/proc/self/status`).
//!
//! (The crate itself does no I/O and never reads a clock; a benchmark has to.)

#![allow(clippy::disallowed_methods)] // a benchmark measures wall time itself (codecs has no clock)

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use tierd_codecs::columnar::{self, CodecSpec, Compression, SegmentInfo};
use tierd_codecs::{parse_batch, BatchLimits, StoredEvent};

const DAY_MS: i64 = 86_400_000;
/// Events per validated request, as the daemon's `ingest.max_events_per_request`.
const REQUEST_EVENTS: usize = 2000;
const PROJECT: &str = "bench";

/// A process memory figure from `/proc/self/status` (`VmHWM`, `VmRSS`), in MiB.
fn status_mib(field: &str) -> f64 {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status (Linux only)");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in status"));
    let kib: f64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of kB");
    kib / 1024.0
}

fn info(day: i32, id: &str) -> SegmentInfo {
    SegmentInfo { segment_id: id.into(), project: PROJECT.into(), day }
}

fn spec(compression: Compression) -> CodecSpec {
    CodecSpec { compression, ..CodecSpec::default() }
}

struct Args {
    flags: Vec<(String, String)>,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Self {
        let mut flags = Vec::new();
        while let Some(flag) = args.next() {
            let value = args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            flags.push((flag, value));
        }
        Self { flags }
    }

    fn get(&self, flag: &str) -> Option<&str> {
        self.flags.iter().find(|(f, _)| f == flag).map(|(_, v)| v.as_str())
    }

    fn need(&self, flag: &str) -> &str {
        self.get(flag).unwrap_or_else(|| panic!("{flag} is required; see the example's doc comment"))
    }
}

/// `prepare`: NDJSON on stdin -> K lz4 input segments of consecutive arrivals.
fn prepare(args: &Args) {
    let dir = PathBuf::from(args.need("--dir"));
    let n: usize = args.need("--events").parse().expect("--events: a number");
    let k: usize = args.get("--inputs").unwrap_or("8").parse().expect("--inputs: a number");
    let mut skip: usize = args.get("--skip").unwrap_or("0").parse().expect("--skip: a number");
    assert!(n > 0 && k > 0, "--events and --inputs must be positive");
    fs::create_dir_all(&dir).expect("create --dir");
    let per_input = n.div_ceil(k);
    let limits = BatchLimits { max_events: REQUEST_EVENTS, max_bytes: 64 << 20, ..BatchLimits::MIXPANEL };
    let lz4 = spec(Compression::Lz4);

    let mut day: Option<i32> = None;
    let (mut seq, mut json_bytes, mut written, mut input_bytes) = (1_000u64, 0usize, 0usize, 0usize);
    let mut chunk: Vec<StoredEvent> = Vec::with_capacity(per_input);
    let mut flush = |chunk: &mut Vec<StoredEvent>, day: i32| {
        let id = format!("01HINPUT{:018}", written);
        let bytes = columnar::encode(&info(day, &id), chunk, &lz4).expect("encode an input");
        fs::write(dir.join(format!("input-{written:02}.parquet")), &bytes).expect("write an input");
        input_bytes += bytes.len();
        written += 1;
        chunk.clear();
    };
    let mut body = Vec::new();
    let mut lines = 0;
    let mut stdin = BufReader::with_capacity(1 << 20, std::io::stdin().lock());
    let mut line = Vec::new();
    let mut taken = 0;
    loop {
        line.clear();
        let eof = taken == n || stdin.read_until(b'\n', &mut line).expect("read stdin") == 0;
        if !eof && !line.trim_ascii().is_empty() {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            json_bytes += line.trim_ascii_end().len();
            body.extend_from_slice(&line);
            lines += 1;
            taken += 1;
        }
        if lines == REQUEST_EVENTS || (eof && lines > 0) {
            let events = parse_batch(&body, &limits).unwrap_or_else(|e| panic!("invalid request body: {e}"));
            for event in events {
                let d = i32::try_from(event.time_ms.div_euclid(DAY_MS)).expect("a day number");
                assert_eq!(*day.get_or_insert(d), d, "every event must fall on one UTC day (use --days 1)");
                chunk.push(StoredEvent { seq, event });
                seq += 1;
                if chunk.len() == per_input {
                    flush(&mut chunk, d);
                }
            }
            body.clear();
            lines = 0;
        }
        if eof {
            break;
        }
    }
    let day = day.expect("no events on stdin");
    if !chunk.is_empty() {
        flush(&mut chunk, day);
    }
    let events = (seq - 1_000) as usize;
    assert_eq!(events, n, "--events {n} but stdin had only {events} events after the skipped ones");
    println!(
        "{}",
        json!({
            "events": events,
            "skipped": args.get("--skip").unwrap_or("0").parse::<usize>().expect("--skip"),
            "day": day,
            "json_bytes_per_event": json_bytes as f64 / events as f64,
            "inputs": written,
            "input_bytes": input_bytes,
            "peak_rss_mib": status_mib("VmHWM:"),
        })
    );
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read --dir")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("input-")))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no input-NN.parquet in {}; run `prepare` first", dir.display());
    paths
}

/// `compact`: the rewriter's read -> dedup -> encode, in memory, as `store::rewrite` does it.
fn compact(args: &Args) {
    let compression: Compression = args.need("--codec").parse().expect("--codec");
    let paths = inputs(Path::new(args.need("--dir")));
    let started = Instant::now();
    // The rewriter sizes the event vector from the catalog's row counts; the footers give the same numbers.
    let mut input_bytes = 0usize;
    let mut rows = 0usize;
    for p in &paths {
        let bytes = fs::read(p).expect("read an input");
        rows += columnar::read_meta(&bytes).expect("an input footer").rows as usize;
    }
    let mut events: Vec<StoredEvent> = Vec::with_capacity(rows);
    let mut day = 0;
    for p in &paths {
        let bytes = fs::read(p).expect("read an input");
        input_bytes += bytes.len();
        let (info, decoded) = columnar::decode(&bytes).expect("decode an input");
        day = info.day;
        events.extend(decoded);
    }
    let load_s = started.elapsed().as_secs_f64();
    let rss_loaded_mib = status_mib("VmRSS:");

    let started = Instant::now();
    let (kept, removed) = tierd_codecs::dedup_split(PROJECT, events);
    let dedup_s = started.elapsed().as_secs_f64();
    drop(removed);

    let started = Instant::now();
    let out = columnar::encode(&info(day, "01HOUTPUT000000000000000000"), &kept, &spec(compression)).expect("encode");
    let encode_s = started.elapsed().as_secs_f64();
    let meta = columnar::read_meta(&out).expect("read the output's footer");
    assert_eq!(meta.rows as usize, kept.len(), "the output holds every kept event");
    let peak_rss_mib = status_mib("VmHWM:");
    drop(kept);
    if let Some(path) = args.get("--out") {
        fs::write(path, &out).expect("write --out");
    }
    println!(
        "{}",
        json!({
            "step": "compact",
            "codec": compression.to_string(),
            "inputs": paths.len(),
            "events": rows,
            "kept": meta.rows,
            "row_groups": meta.row_groups,
            "input_bytes": input_bytes,
            "output_bytes": out.len(),
            "bytes_per_event": out.len() as f64 / meta.rows as f64,
            "load_s": load_s,
            "dedup_s": dedup_s,
            "encode_s": encode_s,
            "rss_loaded_mib": rss_loaded_mib,
            "peak_rss_mib": peak_rss_mib,
        })
    );
}

/// `recompress`: one segment rewritten with another codec, as the recompress pass does.
fn recompress(args: &Args) {
    let compression: Compression = args.need("--codec").parse().expect("--codec");
    let input = fs::read(args.need("--input")).expect("read --input");
    let started = Instant::now();
    let out = columnar::recompress(&input, &spec(compression)).expect("recompress");
    let recompress_s = started.elapsed().as_secs_f64();
    let meta = columnar::read_meta(&out).expect("read the output's footer");
    println!(
        "{}",
        json!({
            "step": "recompress",
            "codec": compression.to_string(),
            "events": meta.rows,
            "input_bytes": input.len(),
            "output_bytes": out.len(),
            "bytes_per_event": out.len() as f64 / meta.rows as f64,
            "recompress_s": recompress_s,
            "peak_rss_mib": status_mib("VmHWM:"),
        })
    );
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let step = argv.next().unwrap_or_default();
    let args = Args::parse(argv);
    match step.as_str() {
        "prepare" => prepare(&args),
        "compact" => compact(&args),
        "recompress" => recompress(&args),
        other => panic!("unknown step {other:?}: prepare, compact or recompress; see the example's doc comment"),
    }
}

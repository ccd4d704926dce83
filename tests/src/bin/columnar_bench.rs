//! Columnar segment benchmark, tierd's side (`tests/bench/columnar.py` drives it and runs DuckDB and pyarrow on the
//! same data; see BENCHMARKS.md).
//!
//! Reads an NDJSON file of Mixpanel events, validates it with [`tierd_codecs::parse_batch`] in chunks of at most
//! 2000 lines (Mixpanel's per-request maximum; the byte limit is lifted), numbers the events by line (`seq` = 0-based
//! line number) and, for each rung of the compression ladder (`lz4`, `zstd-3`, `zstd-19`, default row group size):
//!
//! - times [`columnar::encode`] of all the events as one segment (median of `--runs`), reports the file size and
//!   bytes/event, and writes the file to `--out-dir/tierd-<compression>.parquet`;
//! - times a count-by-event over a time window with [`columnar::count_by_event`], median of `--runs`, both from
//!   memory and including reading the file from disk (the page cache, as the peer's scan of its own file does).
//!   That is the path `tierd_store::query::execute` takes for `count(*) group by event` on a day held by one
//!   columnar segment (deduplicated by the rewriter, so no cross-segment dedup is needed): it decodes only `time`
//!   and `event`. The counts are checked against counting the events [`columnar::scan`] delivers, and the general
//!   path's cost (a scan that builds every event, with no properties requested) is reported as
//!   `event_scan_mem_ms` for comparison.
//!
//! The window is `[--from-ms, --to-ms)`, by default the middle half of the events' time range.
//! Prints one JSON line per rung, plus one line describing the input first.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::json;
use tierd_codecs::columnar::{self, CodecSpec, Compression, ScanRequest, SegmentInfo};
use tierd_codecs::{parse_batch, BatchLimits, StoredEvent};

#[derive(Debug, Parser)]
struct Args {
    /// NDJSON file of Mixpanel events.
    file: PathBuf,
    /// Where the encoded segments are written.
    #[arg(long)]
    out_dir: PathBuf,
    /// Timed runs per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Scan window start (ms since the epoch, inclusive); default: a quarter into the events' time range.
    #[arg(long)]
    from_ms: Option<i64>,
    /// Scan window end (exclusive); default: three quarters into the events' time range.
    #[arg(long)]
    to_ms: Option<i64>,
    /// Compressions to measure, comma-separated.
    #[arg(long, default_value = "lz4,zstd-3,zstd-19")]
    specs: String,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Parses the file as `/import` would, 2000 lines at a time. A chunk the batch validator rejects is retried line by
/// line so that one bad record costs only itself; rejected lines are counted and reported.
fn load(text: &[u8]) -> anyhow::Result<(Vec<StoredEvent>, usize)> {
    let limits = BatchLimits { max_events: 2000, max_bytes: usize::MAX, ..BatchLimits::MIXPANEL };
    let lines: Vec<(usize, &[u8])> =
        text.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace)).collect();
    let mut events = Vec::with_capacity(lines.len());
    let mut rejected = 0;
    for chunk in lines.chunks(2000) {
        let mut body = Vec::with_capacity(chunk.iter().map(|(_, l)| l.len() + 1).sum());
        for (_, l) in chunk {
            body.extend_from_slice(l);
            body.push(b'\n');
        }
        match parse_batch(&body, &limits) {
            Ok(parsed) => {
                if parsed.len() != chunk.len() {
                    bail!("parse_batch returned {} events for {} lines", parsed.len(), chunk.len());
                }
                events.extend(
                    chunk.iter().zip(parsed).map(|((line, _), event)| StoredEvent { seq: *line as u64, event }),
                );
            }
            Err(_) => {
                for (line, l) in chunk {
                    match parse_batch(l, &limits) {
                        Ok(mut one) if one.len() == 1 => {
                            events.push(StoredEvent { seq: *line as u64, event: one.pop().expect("one event") })
                        }
                        _ => rejected += 1,
                    }
                }
            }
        }
    }
    Ok((events, rejected))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let text = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let t = Instant::now();
    let (events, rejected) = load(&text)?;
    let parse_s = t.elapsed().as_secs_f64();
    if events.is_empty() {
        bail!("no valid events in {}", args.file.display());
    }
    let min_t = events.iter().map(|e| e.event.time_ms).min().expect("non-empty");
    let max_t = events.iter().map(|e| e.event.time_ms).max().expect("non-empty");
    let from_ms = args.from_ms.unwrap_or(min_t + (max_t - min_t) / 4);
    let to_ms = args.to_ms.unwrap_or(min_t + (max_t - min_t) * 3 / 4);
    let n = events.len();
    println!(
        "{}",
        json!({
            "kind": "input", "file": args.file.display().to_string(), "json_bytes": text.len(), "events": n,
            "rejected_lines": rejected, "parse_s": parse_s, "min_time_ms": min_t, "max_time_ms": max_t,
            "from_ms": from_ms, "to_ms": to_ms, "runs": args.runs,
        })
    );
    drop(text);
    std::fs::create_dir_all(&args.out_dir)?;
    let info = SegmentInfo {
        segment_id: "bench".into(),
        project: "bench".into(),
        day: i32::try_from(min_t.div_euclid(86_400_000)).unwrap_or(0),
    };
    let req = ScanRequest { from_ms, to_ms, event: None, properties: Some(Vec::new()) };
    for name in args.specs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let compression: Compression = name.parse()?;
        let spec = CodecSpec { compression, ..CodecSpec::default() };
        let mut times = Vec::new();
        let mut bytes = Vec::new();
        for _ in 0..args.runs {
            let t = Instant::now();
            bytes = columnar::encode(&info, &events, &spec)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let encode_ms = median(times);
        let path = args.out_dir.join(format!("tierd-{compression}.parquet"));
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        let meta = columnar::read_meta(&bytes)?;

        // Count from memory (the segment's bytes already loaded), then including the read of the file.
        let count = |data: bytes::Bytes| -> anyhow::Result<(BTreeMap<String, u64>, columnar::ScanStats)> {
            let (counts, stats) = columnar::count_by_event(data, &req)?;
            Ok((counts.into_iter().collect(), stats))
        };
        // The general path: every event in the window built, then counted.
        let scan_count = |data: bytes::Bytes| -> anyhow::Result<(BTreeMap<String, u64>, columnar::ScanStats)> {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            let stats = columnar::scan(data, &req, |e| *counts.entry(e.event.event).or_default() += 1)?;
            Ok((counts, stats))
        };
        let shared = bytes::Bytes::from(bytes);
        let (mut mem_times, mut file_times, mut event_scan_times) = (Vec::new(), Vec::new(), Vec::new());
        let mut result = None;
        for _ in 0..args.runs {
            let t = Instant::now();
            let r = count(shared.clone())?;
            mem_times.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let data = std::fs::read(&path)?;
            let r2 = count(bytes::Bytes::from(data))?;
            file_times.push(t.elapsed().as_secs_f64() * 1e3);
            if r.0 != r2.0 {
                bail!("count from memory and from file disagree");
            }
            let t = Instant::now();
            let scanned = scan_count(shared.clone())?;
            event_scan_times.push(t.elapsed().as_secs_f64() * 1e3);
            if scanned != r {
                bail!("count_by_event and counting scan's events disagree: {:?} vs {:?}", r, scanned);
            }
            result = Some(r);
        }
        let (counts, stats) = result.expect("runs >= 1");
        let matched: u64 = counts.values().sum();
        println!(
            "{}",
            json!({
                "kind": "tierd", "compression": compression.to_string(), "row_group_rows": spec.row_group_rows,
                "bytes": shared.len(), "bytes_per_event": shared.len() as f64 / n as f64, "encode_ms": encode_ms,
                "events_per_s": n as f64 / (encode_ms / 1e3), "row_groups": meta.row_groups,
                "shredded_columns": meta.columns.len(), "props_keys": meta.props_keys.len(),
                "scan_ms": median(file_times), "scan_mem_ms": median(mem_times),
                "event_scan_mem_ms": median(event_scan_times), "matched": matched,
                "row_groups_read": stats.row_groups_read, "rows_read": stats.rows_read,
                "counts": counts, "path": path.display().to_string(),
            })
        );
    }
    Ok(())
}

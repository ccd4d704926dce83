//! Where a columnar segment's bytes go, on real events: an NDJSON file of Mixpanel events (what `/import` takes)
//! encoded as tierd's rewriter would (deduplicated, one segment per UTC day), with a chosen spec and sort order,
//! printing the total bytes per event and the compressed bytes per event of each column.
//!
//! Run with `cargo run -p tierd-codecs --release --example bytes_probe -- FILE [--codec zstd-19]
//! [--sort event,time] [--row-group-rows N]`. `tests/bench/bytes.py` measures the real pipeline (the daemon's
//! passes) against DuckDB and ClickHouse; this probe is for trying a layout quickly on the same events.

#![allow(clippy::disallowed_methods)] // a benchmark measures wall time itself (codecs has no clock)

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use parquet::file::metadata::ParquetMetaDataReader;
use tierd_codecs::columnar::{encode_with_order, CodecSpec, SegmentInfo, SortOrder};
use tierd_codecs::{parse_batch, BatchLimits, StoredEvent};

/// tierd's dedup key: (event, distinct_id, time_ms, $insert_id).
type DedupKey = (String, String, i64, String);

fn main() {
    let mut args = std::env::args().skip(1);
    let file = args.next().expect("usage: bytes_probe FILE [--codec C] [--sort S] [--row-group-rows N]");
    let mut spec = CodecSpec { compression: "zstd-19".parse().expect("a codec"), ..CodecSpec::default() };
    let mut order = SortOrder::DEFAULT;
    while let Some(flag) = args.next() {
        let value = args.next().expect("a value after each flag");
        match flag.as_str() {
            "--codec" => spec.compression = value.parse().expect("a codec: lz4, zstd-N"),
            "--sort" => order = value.parse().expect("a sort order: time, event,time, event,distinct_id,time"),
            "--dictionary" => spec.dictionary = value.parse().expect("true or false"),
            "--row-group-rows" => spec.row_group_rows = value.parse().expect("a number of rows"),
            other => panic!("unknown flag {other}"),
        }
    }
    let text = std::fs::read(&file).expect("the NDJSON file");
    let limits = BatchLimits { max_events: usize::MAX, max_bytes: usize::MAX, ..BatchLimits::MIXPANEL };
    let mut days: BTreeMap<i64, HashMap<DedupKey, StoredEvent>> = BTreeMap::new();
    let mut lines = 0u64;
    for (seq, line) in text.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).enumerate() {
        lines += 1;
        let Ok(events) = parse_batch(line, &limits) else { continue };
        for event in events {
            let day = event.time_ms.div_euclid(86_400_000);
            let key = (event.event.clone(), event.distinct_id.clone(), event.time_ms, event.insert_id.clone());
            // The copy ingested last wins, as in tierd's dedup.
            days.entry(day).or_default().insert(key, StoredEvent { seq: seq as u64, event });
        }
    }
    drop(text);
    let (mut total, mut events_n) = (0usize, 0usize);
    let mut columns: BTreeMap<String, usize> = BTreeMap::new();
    let started = Instant::now();
    for (day, events) in days {
        let events: Vec<StoredEvent> = events.into_values().collect();
        let info = SegmentInfo { segment_id: format!("day-{day}"), project: "probe".into(), day: day as i32 };
        let bytes = encode_with_order(&info, &events, &spec, order).expect("encode");
        let metadata =
            ParquetMetaDataReader::new().parse_and_finish(&bytes::Bytes::from(bytes.clone())).expect("footer");
        let mut chunks = 0;
        for group in metadata.row_groups() {
            for chunk in group.columns() {
                *columns.entry(chunk.column_path().string()).or_default() += chunk.compressed_size() as usize;
                chunks += chunk.compressed_size() as usize;
            }
        }
        *columns.entry("(footer, page index)".into()).or_default() += bytes.len() - chunks;
        total += bytes.len();
        events_n += events.len();
    }
    let n = events_n as f64;
    println!(
        "{file}: {lines} lines, {events_n} events, {spec}, sort {order}: {total} bytes, {:.3} B/event ({:.1} s)",
        total as f64 / n,
        started.elapsed().as_secs_f64(),
        spec = spec.compression,
    );
    let mut sorted: Vec<_> = columns.into_iter().collect();
    sorted.sort_by_key(|(_, bytes)| std::cmp::Reverse(*bytes));
    for (name, bytes) in sorted.iter().take(24) {
        println!("  {name:<28} {:>8.3}", *bytes as f64 / n);
    }
}

//! Catalog lookup benchmark (issue 13: "a catalog-lookup benchmark with 1,000,000 segments; target p99 under 50 µs
//! for a project and 7-day range"). See BENCHMARKS.md.
//!
//! Fills a real catalog (sled, on disk) with `--segments` sealed Parquet segment records spread over `--projects`
//! projects and `--days` days, `--per-commit` records per commit; reopens it (what a restart pays); then times
//! `--lookups` lookups of a random project and a random `--window-days` window, each as the daemon's
//! `GET /v1/catalog/segments` does it without HTTP:
//! - `lookup`: take the current snapshot and find the live segments of the window (`CatalogSnapshot::lookup`);
//! - `lookup+lease`: the same, then a lease over what it found (`LeaseGrants::grant`: a sled insert unless an
//!   equal lookup of the same generation is still covered);
//! - `btreemap`: the peer, the fastest plain in-memory index of the same records: a `std` `BTreeMap` keyed by
//!   (project, day, id), range-scanned for the same windows (no snapshots: it cannot give a reader a consistent
//!   view while commits go on).
//!
//! Prints one JSON line: fill and reopen times, and per mode p50/p90/p99/p99.9/max in microseconds and the mean
//! number of segments returned.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tierd_store::catalog::{
    Catalog, CatalogChange, Codec, Format, LeaseGrants, Location, Role, SegmentMeta, SegmentState,
};
use tierd_store::layout::{day_start_ms, Layout, SegmentId};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    segments: u64,
    #[arg(long, default_value_t = 100)]
    projects: u64,
    #[arg(long, default_value_t = 365)]
    days: u64,
    #[arg(long, default_value_t = 7)]
    window_days: i64,
    #[arg(long, default_value_t = 100_000)]
    lookups: u64,
    #[arg(long, default_value_t = 10_000)]
    per_commit: usize,
    /// Where the catalog is made (a fresh temporary directory by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// 2025-01-01.
const FIRST_DAY: i32 = 20_089;
const DAY_MS: i64 = 86_400_000;

fn record(i: u64, args: &Args) -> SegmentMeta {
    let project = format!("project-{:03}", i % args.projects);
    let day = FIRST_DAY + ((i / args.projects) % args.days) as i32;
    let start = day_start_ms(day);
    let id = SegmentId::generate(start + (i % 86_400_000) as i64);
    SegmentMeta {
        id,
        project: project.clone(),
        day,
        state: SegmentState::Sealed,
        format: Format::Parquet,
        codec: Codec::Zstd(3),
        locations: vec![Location::hot(Layout::hot_segment_location(&project, id, Format::Parquet.extension()))],
        dropped: Vec::new(),
        min_time_ms: start,
        max_time_ms: start + DAY_MS - 1,
        rows: 100_000,
        bytes: 4 << 20,
        checksum: i as u32,
        min_seq: i * 100_000,
        max_seq: i * 100_000 + 99_999,
        created_at_ms: start,
        sealed_at_ms: Some(start + DAY_MS),
        created_generation: 0,
        updated_generation: 0,
        retired: None,
        blocks: None,
        placed_at_ms: Some(start + DAY_MS),
        role: Role::Data,
    }
}

fn summary(h: &Histogram<u64>, returned: u64, n: u64) -> serde_json::Value {
    let us = |ns: u64| (ns as f64 / 1000.0 * 100.0).round() / 100.0;
    json!({
        "p50_us": us(h.value_at_quantile(0.5)),
        "p90_us": us(h.value_at_quantile(0.9)),
        "p99_us": us(h.value_at_quantile(0.99)),
        "p999_us": us(h.value_at_quantile(0.999)),
        "max_us": us(h.max()),
        "mean_segments": returned as f64 / n as f64,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().join("catalog"));

    let started = Instant::now();
    let catalog = Catalog::open(&dir).context("open the catalog")?;
    let mut batch = Vec::with_capacity(args.per_commit);
    for i in 0..args.segments {
        batch.push(CatalogChange::Put(record(i, &args)));
        if batch.len() == args.per_commit {
            catalog.commit(std::mem::take(&mut batch))?;
        }
    }
    if !batch.is_empty() {
        catalog.commit(batch)?;
    }
    let fill_s = started.elapsed().as_secs_f64();
    drop(catalog);

    let started = Instant::now();
    let catalog = Catalog::open(&dir).context("reopen the catalog")?;
    let reopen_s = started.elapsed().as_secs_f64();
    let segments = catalog.snapshot().segments().count() as u64;
    anyhow::ensure!(segments == args.segments, "{segments} segments after the reopen, {} committed", args.segments);

    // The peer's index, built from the same records: (project, day) -> that day's segments.
    let mut peer: BTreeMap<(String, i32), Vec<Arc<SegmentMeta>>> = BTreeMap::new();
    for m in catalog.snapshot().segments() {
        peer.entry((m.project.clone(), m.day)).or_default().push(m.clone());
    }

    let windows: Vec<(String, i64, i64)> = {
        let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
        (0..args.lookups)
            .map(|_| {
                let project = format!("project-{:03}", rng.random_range(0..args.projects));
                let first = FIRST_DAY as i64 + rng.random_range(0..args.days as i64);
                let from = first * DAY_MS + rng.random_range(0..DAY_MS);
                (project, from, from + args.window_days * DAY_MS)
            })
            .collect()
    };
    let new_histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");

    let (mut plain, mut plain_n) = (new_histogram(), 0u64);
    for (project, from, to) in &windows {
        let t = Instant::now();
        let found = catalog.snapshot().lookup(project, *from, *to);
        plain.record(t.elapsed().as_nanos() as u64)?;
        plain_n += found.len() as u64;
    }

    let leases = LeaseGrants::new(usize::MAX);
    let (mut leased, mut leased_n) = (new_histogram(), 0u64);
    for (i, (project, from, to)) in windows.iter().enumerate() {
        let t = Instant::now();
        let snapshot = catalog.snapshot();
        let found = snapshot.lookup(project, *from, *to);
        let now = FIRST_DAY as i64 * DAY_MS + i as i64;
        leases.grant(&catalog, now, 300_000, snapshot.generation(), found.iter().map(|m| m.id).collect())?;
        leased.record(t.elapsed().as_nanos() as u64)?;
        leased_n += found.len() as u64;
    }

    let (mut btree, mut btree_n) = (new_histogram(), 0u64);
    for (project, from, to) in &windows {
        let t = Instant::now();
        let (lo, hi) = ((from / DAY_MS) as i32, ((to - 1) / DAY_MS) as i32);
        let found: Vec<Arc<SegmentMeta>> = peer
            .range((project.clone(), lo)..=(project.clone(), hi))
            .flat_map(|(_, day)| day.iter())
            .filter(|m| m.max_time_ms >= *from && m.min_time_ms < *to)
            .cloned()
            .collect();
        btree.record(t.elapsed().as_nanos() as u64)?;
        btree_n += found.len() as u64;
    }
    anyhow::ensure!(plain_n == btree_n, "the catalog found {plain_n} segments, the peer {btree_n}");

    let n = args.lookups;
    println!(
        "{}",
        json!({
            "segments": args.segments,
            "projects": args.projects,
            "days": args.days,
            "window_days": args.window_days,
            "lookups": n,
            "fill_s": fill_s,
            "reopen_s": reopen_s,
            "lookup": summary(&plain, plain_n, n),
            "lookup+lease": summary(&leased, leased_n, n),
            "btreemap": summary(&btree, btree_n, n),
        })
    );
    Ok(())
}

//! Cold reads against a `memory://` cold tier: Parquet segments migrated with the real [`Mover`] answer queries
//! exactly as their hot copies did, fetching only the ranges a query needs, through a bounded cache that verifies
//! every block; corrupt bytes, cached or stored, are errors or misses, never data.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use tierd_codecs::columnar::CodecSpec;
use tierd_codecs::Event;
use tierd_policies::{ReencodePlanner, RewriteAction, RewriteKind, RewritePlanner};

use super::*;
use crate::budget::IoBudget;
use crate::cache::{BlockCache, BlockKey, CacheConfig};
use crate::catalog::{BlockChecksums, Catalog, CatalogChange};
use crate::clock::{Clock, ManualClock};
use crate::cold::{ColdConfig, ColdStore};
use crate::hot::{HotConfig, HotTier, IngestBatch};
use crate::layout::SegmentId;
use crate::moves::Mover;
use crate::query::{execute, Filter, GroupBy, Op, Query, QueryResult};
use crate::rewrite::Rewriter;

const T0: i64 = 1_767_225_600_000;
const DAY: i64 = 86_400_000;
const NAMES: [&str; 4] = ["view", "click", "buy", "signup"];
const PLANS: [&str; 3] = ["free", "pro", "team"];

struct Fixture {
    dir: tempfile::TempDir,
    layout: Layout,
    catalog: Arc<Catalog>,
    clock: ManualClock,
    cold: Arc<ColdStore>,
    rt: tokio::runtime::Runtime,
    /// The columnar segments, one per day.
    segments: Vec<SegmentId>,
}

/// Pseudo-random hex (poorly compressible, so property columns are big next to `time` and `event`).
fn noise(i: u64) -> String {
    let a = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d;
    let b = a.rotate_left(29).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    format!("{a:016x}{b:016x}")
}

fn events_of_day(day: i64, n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut props = json!({"i": i, "s": noise(i + day as u64 * n), "plan": PLANS[(i % 3) as usize]});
            if i % 5 == 0 {
                // Spills to `_props` (not half the rows).
                props["rare"] = json!(i);
            }
            Event {
                event: NAMES[((i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) % 4) as usize].into(),
                time_ms: T0 + day * DAY + (i as i64 * 6_151) % DAY,
                distinct_id: format!("u{}", i % 97),
                insert_id: format!("{day}-{i}"),
                properties: props.as_object().unwrap().clone(),
            }
        })
        .collect()
}

impl Fixture {
    /// `days` columnar segments of `per_day` events each (row groups of 2,000 rows), all hot.
    fn new(days: i64, per_day: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let clock = ManualClock::new(T0 + days * DAY);
        let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let cfg = ColdConfig { url: "memory://".into(), retry_backoff_ms: 1, ..Default::default() };
        let cold =
            Arc::new(ColdStore::open(&cfg, Path::new("/nonexistent"), Arc::new(IoBudget::unlimited()), None).unwrap());
        let ctx = crate::testing::context_with(&layout, &catalog, &clock, "", cold.clone(), rt.handle().clone());
        rt.block_on(async {
            let hot = HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap();
            for day in 0..days {
                hot.append(IngestBatch::encode("p".into(), events_of_day(day, per_day))).await.unwrap();
            }
            hot.shutdown().await;
        });
        let stats: Vec<_> = catalog.snapshot().segments().map(|m| m.planner_stats()).collect();
        let planner = ReencodePlanner { output_codec: "lz4".into(), max_output_bytes: 1 << 30, min_age_ms: 0 };
        let spec = CodecSpec { row_group_rows: 2_000, ..CodecSpec::default() };
        let rewriter = Rewriter::new(ctx, spec);
        let mut segments: Vec<SegmentId> =
            planner.plan(clock.now_ms(), &stats).iter().map(|a| rewriter.execute(a).unwrap().outputs[0]).collect();
        segments.sort_by_key(|id| catalog.snapshot().get(id).unwrap().day);
        Self { dir, layout, catalog, clock, cold, rt, segments }
    }

    fn meta(&self, id: SegmentId) -> SegmentMeta {
        (**self.catalog.snapshot().get(&id).unwrap()).clone()
    }

    /// Migrates every segment to the cold tier with the real mover.
    fn ctx(&self) -> crate::StoreContext {
        crate::testing::context_with(
            &self.layout,
            &self.catalog,
            &self.clock,
            "",
            self.cold.clone(),
            self.rt.handle().clone(),
        )
    }

    fn migrate(&self) {
        let mover = Mover::new(self.ctx());
        for id in &self.segments {
            assert_eq!(
                mover.execute(*id, crate::catalog::Placement::Cold).unwrap().to,
                crate::catalog::Placement::Cold
            );
        }
    }

    /// Records block checksums of `block_size` bytes for every segment (the mover records 1 MiB blocks; smaller
    /// ones give small test segments several blocks).
    fn reblock(&self, block_size: u64) {
        for id in &self.segments {
            let mut m = self.meta(*id);
            let bytes = self.rt.block_on(self.cold.get(m.cold_key().unwrap())).unwrap();
            m.blocks = Some(BlockChecksums::compute(&bytes, block_size));
            self.catalog.commit(vec![CatalogChange::Put(m)]).unwrap();
        }
    }

    /// A cold-reading source with a cache of `cache_bytes` under `name` in the data directory.
    fn source(&self, name: &str, cache_bytes: u64) -> SegmentSource {
        let cache = BlockCache::open(
            &self.dir.path().join(name),
            &CacheConfig { max_bytes: cache_bytes, ..Default::default() },
        )
        .unwrap();
        SegmentSource::new(self.layout.clone(), self.cold.clone(), Arc::new(cache), self.rt.handle().clone())
    }

    fn query(&self, source: &SegmentSource, q: &Query) -> Result<QueryResult> {
        execute(source, &self.catalog.snapshot(), q)
    }

    /// Replaces a cold object with other bytes of the same length (keys are never reused by tierd; a broken
    /// server or disk can still do this).
    fn corrupt_object(&self, id: SegmentId, at: usize) {
        let key = self.meta(id).cold_key().unwrap().to_string();
        let mut bytes = self.rt.block_on(self.cold.get(&key)).unwrap().to_vec();
        bytes[at] ^= 0x5a;
        self.rt.block_on(self.cold.delete(&key)).unwrap();
        self.rt.block_on(self.cold.put_new(&key, bytes.into())).unwrap();
    }
}

fn q(from_ms: i64, to_ms: i64) -> Query {
    Query { project: "p".into(), from_ms, to_ms, event: None, filters: vec![], group_by: GroupBy::None }
}

/// Queries over every path: count-only days (plain counts), scans with property filters and groups (some keys in
/// `_props`), narrow and wide windows.
fn queries(days: i64) -> Vec<Query> {
    let all = q(T0, T0 + days * DAY);
    let f = |property: &str, op, value: Value| Filter { property: property.into(), op, value };
    vec![
        all.clone(),
        Query { group_by: GroupBy::Event, ..all.clone() },
        Query { event: Some("buy".into()), ..q(T0 + 3_600_000, T0 + 7_200_000) },
        Query { group_by: GroupBy::Property("plan".into()), ..all.clone() },
        Query { filters: vec![f("plan", Op::Eq, json!("pro")), f("i", Op::Gte, json!(500))], ..all.clone() },
        Query { filters: vec![f("rare", Op::Exists, Value::Null)], group_by: GroupBy::Event, ..all.clone() },
        Query { event: Some("click".into()), filters: vec![f("distinct_id", Op::Eq, json!("u3"))], ..all.clone() },
        q(T0 + DAY / 2, T0 + DAY / 2 + 60_000),
    ]
}

fn answers(results: &[QueryResult]) -> Vec<(u64, Vec<(Value, u64)>)> {
    results.iter().map(|r| (r.total, r.rows.clone())).collect()
}

/// (a) Query answers are identical hot and cold (1 MiB blocks as the mover records them, and 64 KiB blocks), and
/// the rewriter's input read and the raw stream give the same events and bytes.
#[test]
fn cold_segments_answer_queries_exactly_as_hot_ones() {
    let f = Fixture::new(2, 6_000);
    let hot = SegmentSource::hot_only(f.layout.clone());
    let hot_answers: Vec<QueryResult> = queries(2).iter().map(|q| f.query(&hot, q).unwrap()).collect();
    assert_eq!(hot_answers[0].total, 12_000);
    let hot_events = hot.read_events(&f.meta(f.segments[0])).unwrap();
    let day0 = Query { group_by: GroupBy::Property("plan".into()), ..q(T0, T0 + DAY) };
    let hot_day0 = f.query(&hot, &day0).unwrap();
    let hot_bytes = hot.read_committed(&f.meta(f.segments[0])).unwrap();

    f.migrate();
    let e = f.query(&hot, &queries(2)[0]).unwrap_err();
    assert!(matches!(e, StoreError::NoReadableCopy { .. }), "{e}");
    for block_size in [BlockChecksums::DEFAULT_BLOCK_SIZE, 64 << 10] {
        f.reblock(block_size);
        let cold = f.source(&format!("cache-{block_size}"), 1 << 30);
        let cold_answers: Vec<QueryResult> = queries(2).iter().map(|q| f.query(&cold, q).unwrap()).collect();
        assert_eq!(answers(&cold_answers), answers(&hot_answers), "block size {block_size}");

        let meta = f.meta(f.segments[0]);
        assert_eq!(meta.placement(), crate::catalog::Placement::Cold);
        assert_eq!(cold.read_events(&meta).unwrap(), hot_events);
        assert_eq!(cold.read_committed(&meta).unwrap(), hot_bytes);
        let mut raw = cold.open_raw(&meta).unwrap();
        let mut streamed = Vec::new();
        while let Some(chunk) = raw.next_chunk().unwrap() {
            streamed.extend_from_slice(&chunk);
        }
        assert_eq!(streamed, hot_bytes);
    }

    // Without block checksums (not written by tierd, but tolerated): one whole GET, verified.
    let mut m = f.meta(f.segments[0]);
    m.blocks = None;
    f.catalog.commit(vec![CatalogChange::Put(m.clone())]).unwrap();
    let cold = f.source("cache-none", 1 << 30);
    let before = cold.cold_stats();
    assert_eq!(answers(&[f.query(&cold, &day0).unwrap()]), answers(&[hot_day0]));
    assert_eq!(cold.cold_stats().requests - before.requests, 1, "one GET for the whole object");
    assert_eq!(cold.read_events(&m).unwrap(), hot_events);
}

/// (b) A narrow query fetches a fraction of the object; (c) asked again it is answered from the cache without any
/// object-store request.
#[test]
fn narrow_queries_fetch_little_and_then_nothing() {
    let f = Fixture::new(1, 12_000);
    f.migrate();
    f.reblock(64 << 10);
    let meta = f.meta(f.segments[0]);
    let narrow = Query { event: Some("buy".into()), ..q(T0 + 3_600_000, T0 + 5_400_000) };
    // Every column: filters on `i`, `plan` and `rare` (in `_props`) that keep every event, grouped by `s`.
    let filter = |property: &str, op, value: Value| Filter { property: property.into(), op, value };
    let full = Query {
        filters: vec![
            filter("i", Op::Gte, json!(0)),
            filter("plan", Op::Exists, Value::Null),
            filter("rare", Op::Neq, json!(-1)),
        ],
        group_by: GroupBy::Property("s".into()),
        ..q(T0, T0 + DAY)
    };

    let cold = f.source("cache", 1 << 30);
    let r = f.query(&cold, &narrow).unwrap();
    let fetched = cold.cold_stats();
    assert!(r.total > 0);
    eprintln!(
        "narrow count: object {} bytes in {} blocks; fetched {} bytes in {} requests ({} ranges); bytes_scanned {}",
        meta.bytes,
        meta.blocks.as_ref().unwrap().crcs.len(),
        fetched.bytes_fetched,
        fetched.requests,
        fetched.ranges,
        r.bytes_scanned
    );
    assert!(fetched.bytes_fetched * 3 < meta.bytes, "fetched {} of {}", fetched.bytes_fetched, meta.bytes);
    assert_eq!(r.bytes_scanned, fetched.bytes_fetched);

    // (c) Again: every block from the cache, no request.
    let again = f.query(&cold, &narrow).unwrap();
    assert_eq!(answers(&[again]), answers(&[r]));
    assert_eq!(cold.cold_stats(), fetched, "no object-store request for a cached query");
    let cache = cold.cache().unwrap().stats();
    assert!(cache.hits > 0 && cache.bytes == fetched.bytes_fetched, "{cache:?}");

    // A full scan of every column reads (nearly) everything; what the narrow query cached is not fetched again.
    let other = f.source("cache-full", 1 << 30);
    let all = f.query(&other, &full).unwrap();
    assert_eq!(all.total, 12_000);
    let full_fetched = other.cold_stats().bytes_fetched;
    eprintln!("full scan (every column): fetched {full_fetched} bytes of {}", meta.bytes);
    assert!(full_fetched * 10 > meta.bytes * 9, "fetched {full_fetched} of {}", meta.bytes);
    let before = cold.cold_stats().bytes_fetched;
    f.query(&cold, &full).unwrap();
    assert_eq!(cold.cold_stats().bytes_fetched - before, full_fetched - fetched.bytes_fetched);
}

/// (d) A damaged cached block is a miss: detected by its crc, dropped, fetched again; the answer is unchanged.
#[test]
fn a_corrupt_cached_block_is_refetched() {
    let f = Fixture::new(1, 4_000);
    f.migrate();
    f.reblock(64 << 10);
    let meta = f.meta(f.segments[0]);
    let key = meta.cold_key().unwrap().to_string();
    let last = meta.blocks.as_ref().unwrap().crcs.len() as u64 - 1;
    let cold = f.source("cache", 1 << 30);
    let query = Query { group_by: GroupBy::Event, ..q(T0, T0 + DAY) };
    let expected = f.query(&cold, &query).unwrap();

    // The last block holds the footer: every query reads it.
    let path = cold.cache().unwrap().path_of(&BlockKey::new(&key, last));
    let mut data = std::fs::read(&path).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 1;
    std::fs::write(&path, &data).unwrap();
    let before = cold.cold_stats();
    let r = f.query(&cold, &query).unwrap();
    assert_eq!(answers(&[r]), answers(&[expected]));
    let stats = cold.cache().unwrap().stats();
    assert_eq!(stats.corrupt, 1);
    assert_eq!(cold.cold_stats().requests, before.requests + 1, "the damaged block was fetched again");
    let block = meta.blocks.as_ref().unwrap().block_range(last as usize, meta.bytes);
    assert_eq!(cold.cold_stats().bytes_fetched, before.bytes_fetched + (block.end - block.start));
    // And cached again, intact.
    assert_ne!(std::fs::read(&path).unwrap(), data);
}

/// (e) An object whose bytes changed in the store (same length) is an error naming the segment, key and block,
/// for ranged reads, whole reads and streams alike; nothing of it reaches the cache.
#[test]
fn a_corrupt_object_is_an_error_not_data() {
    let f = Fixture::new(1, 4_000);
    f.migrate();
    f.reblock(64 << 10);
    let id = f.segments[0];
    let meta = f.meta(id);
    let key = meta.cold_key().unwrap().to_string();
    // A byte in the footer (every query reads it), then one in the first block (the first data pages).
    f.corrupt_object(id, meta.bytes as usize - 100);
    let cold = f.source("cache", 1 << 30);
    let e = f.query(&cold, &q(T0, T0 + DAY)).unwrap_err();
    let last = (meta.bytes - 100) / meta.blocks.as_ref().unwrap().block_size;
    let message = e.to_string();
    assert!(matches!(e, StoreError::Corrupt { id: i, .. } if i == id), "{e}");
    assert!(message.contains(&key) && message.contains(&format!("block {last}")), "{message}");
    assert_eq!(cold.cache().unwrap().stats().bytes, 0, "a block that does not verify is not cached");
    let e = cold.read_committed(&meta).unwrap_err();
    assert!(e.to_string().contains(&format!("block {last}")), "{e}");

    f.corrupt_object(id, meta.bytes as usize - 100); // back as it was
    f.corrupt_object(id, 10);
    let e = cold.read_events(&meta).unwrap_err();
    assert!(e.to_string().contains("block 0"), "{e}");
    assert!(matches!(cold.open_raw(&meta), Err(StoreError::Corrupt { .. })));

    // Without block checksums the whole object is checked against the segment's crc32c.
    let mut m = f.meta(id);
    m.blocks = None;
    f.catalog.commit(vec![CatalogChange::Put(m.clone())]).unwrap();
    let e = f.query(&f.source("cache-none", 1 << 30), &q(T0, T0 + DAY)).unwrap_err();
    assert!(e.to_string().contains("crc32c"), "{e}");
}

/// (f) With many segments and a small cache, the cache never holds more than its bound, on disk or in its index,
/// and evicts to stay there; answers stay exact.
#[test]
fn the_cache_stays_within_its_bound() {
    let f = Fixture::new(6, 2_000);
    let hot = SegmentSource::hot_only(f.layout.clone());
    let expected: Vec<QueryResult> = queries(6).iter().map(|q| f.query(&hot, q).unwrap()).collect();
    f.migrate();
    f.reblock(16 << 10);
    let bound = 160 << 10;
    let cold = f.source("cache", bound);
    let cache_dir = f.dir.path().join("cache");
    let on_disk = || -> u64 {
        walk(&cache_dir)
            .into_iter()
            .filter(|p| !p.starts_with(cache_dir.join("tmp")))
            .map(|p| p.metadata().unwrap().len())
            .sum()
    };
    for round in 0..3 {
        for (i, query) in queries(6).iter().enumerate() {
            let r = f.query(&cold, query).unwrap();
            assert_eq!(answers(&[r]), answers(&expected[i..i + 1]), "round {round}, query {i}");
            let stats = cold.cache().unwrap().stats();
            assert!(stats.bytes <= bound, "{stats:?}");
            assert_eq!(on_disk(), stats.bytes);
        }
    }
    let stats = cold.cache().unwrap().stats();
    assert!(stats.evictions > 0 && stats.hits > 0, "{stats:?}");
    eprintln!("bounded cache after 3 rounds: {stats:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The rewriter reads cold inputs through its source: a cold segment is recompressed into a hot one with the
/// same events; without a cold tier the rewrite fails and changes nothing.
#[test]
fn the_rewriter_reads_cold_inputs() {
    let f = Fixture::new(1, 3_000);
    let id = f.segments[0];
    let events = SegmentSource::hot_only(f.layout.clone()).read_events(&f.meta(id)).unwrap();
    f.migrate();
    let meta = f.meta(id);
    let action = RewriteAction {
        kind: RewriteKind::Recompress,
        project: "p".into(),
        day: meta.day,
        inputs: vec![id.to_string()],
        output_codec: "zstd-3".into(),
        bytes_before: meta.bytes,
        reason: "test".into(),
    };
    let rewriter = || Rewriter::new(f.ctx(), CodecSpec::default());
    let e = rewriter().execute(&action).unwrap_err();
    assert!(matches!(e, StoreError::NoReadableCopy { .. }), "{e}");
    assert_eq!(f.meta(id), meta);
    let out = rewriter().with_source(f.source("cache", 1 << 30)).execute(&action).unwrap();
    let output = f.meta(out.outputs[0]);
    assert_eq!(output.placement(), crate::catalog::Placement::Hot);
    let mut got = SegmentSource::hot_only(f.layout.clone()).read_events(&output).unwrap();
    let mut want = events;
    got.sort_by_key(|e| e.seq);
    want.sort_by_key(|e| e.seq);
    assert_eq!(got, want);
}

/// A hot Parquet copy is read like a cold one: a count reads only the blocks it needs (footer, page index, `time`
/// and `event`), each verified; its answers equal a whole read's; a corrupt block it reads is an error naming the
/// hot file, never data.
#[test]
fn hot_parquet_copies_are_read_in_verified_blocks() {
    let f = Fixture::new(1, 20_000);
    let id = f.segments[0];
    let mut m = f.meta(id);
    let path = f.layout.resolve(m.hot_path().unwrap()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        m.blocks,
        Some(BlockChecksums::compute(&bytes, BlockChecksums::DEFAULT_BLOCK_SIZE)),
        "the rewriter records block checksums"
    );
    // Small blocks, so that a small test segment has many.
    m.blocks = Some(BlockChecksums::compute(&bytes, 16 << 10));
    f.catalog.commit(vec![CatalogChange::Put(m.clone())]).unwrap();
    let m = f.meta(id);
    let source = SegmentSource::hot_only(f.layout.clone());
    let req = everything();

    let (counts, read) = source.count_by_event(&m, &req).unwrap();
    assert_eq!(counts, count_by_event(&m, Bytes::from(bytes.clone()), &req).unwrap());
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 20_000);
    assert!(read < m.bytes / 2, "a count read {read} of {} bytes", m.bytes);
    let (mut ranged, mut whole) = (Vec::new(), Vec::new());
    let scanned = source.scan(&m, &req, |e| ranged.push(e)).unwrap();
    scan(&m, Bytes::from(bytes.clone()), &req, |e| whole.push(e)).unwrap();
    assert_eq!(ranged, whole);
    assert!(scanned <= m.bytes);
    // Answers through the query engine equal those of a whole read (the segment without block checksums).
    let with_blocks: Vec<QueryResult> = queries(1).iter().map(|q| f.query(&source, q).unwrap()).collect();
    let mut plain = m.clone();
    plain.blocks = None;
    f.catalog.commit(vec![CatalogChange::Put(plain)]).unwrap();
    let without: Vec<QueryResult> = queries(1).iter().map(|q| f.query(&source, q).unwrap()).collect();
    assert_eq!(answers(&with_blocks), answers(&without));
    f.catalog.commit(vec![CatalogChange::Put(m.clone())]).unwrap();

    // A flipped byte in the footer (read by every query): an error naming the file and the block.
    let mut broken = bytes.clone();
    let at = broken.len() - 20;
    broken[at] ^= 0x5a;
    std::fs::write(&path, &broken).unwrap();
    let e = source.count_by_event(&m, &req).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    let message = e.to_string();
    assert!(message.contains("hot file") && message.contains(&format!("block {}", at / (16 << 10))), "{message}");
    assert!(f.query(&source, &queries(1)[0]).is_err());
}

/// Parsed footers kept in memory ([`FooterCache`]): every query answers as without them, on hot and on cold copies;
/// a second round of the same queries takes every footer from the cache; a record naming other bytes does not meet
/// an old entry; the bound holds (a footer larger than it is refused, the least recently used goes first).
#[test]
fn parsed_footers_are_kept_within_their_bound_and_change_no_answer() {
    use super::footers;
    use tierd_codecs::columnar::ColumnarFooter;
    let f = Fixture::new(2, 6_000);
    let plain = SegmentSource::hot_only(f.layout.clone());
    let want: Vec<QueryResult> = queries(2).iter().map(|q| f.query(&plain, q).unwrap()).collect();
    let check = |source: &SegmentSource, cache: &FooterCache, what: &str| {
        let got: Vec<QueryResult> = queries(2).iter().map(|q| f.query(source, q).unwrap()).collect();
        assert_eq!(answers(&got), answers(&want), "{what}, first round");
        let first = cache.stats();
        assert_eq!((first.misses, first.entries), (2, 2), "{what}: one footer parsed per segment: {first:?}");
        assert!(first.hits > 0, "{what}: {first:?}");
        let got: Vec<QueryResult> = queries(2).iter().map(|q| f.query(source, q).unwrap()).collect();
        assert_eq!(answers(&got), answers(&want), "{what}, second round");
        let second = cache.stats();
        assert_eq!(second.misses, 2, "{what}: {second:?}");
        assert_eq!(second.hits, 2 * first.hits + 2, "{what}: every footer of the second round cached: {second:?}");
    };
    let hot_cache = Arc::new(FooterCache::new(64 << 20));
    check(&SegmentSource::hot_only(f.layout.clone()).with_footers(hot_cache.clone()), &hot_cache, "hot");

    let meta = f.meta(f.segments[0]);
    let path = meta.hot_path().unwrap().to_string();
    let other_bytes = SegmentMeta { checksum: meta.checksum ^ 1, ..meta.clone() };
    assert!(hot_cache.get(&footers::CopyKey::new(&meta, "hot", &path)).is_some());
    assert!(hot_cache.get(&footers::CopyKey::new(&other_bytes, "hot", &path)).is_none());

    f.migrate();
    let cold_cache = Arc::new(FooterCache::new(64 << 20));
    check(&f.source("cache-footers", 1 << 30).with_footers(cold_cache.clone()), &cold_cache, "cold");

    // The bound.
    let footers: Vec<Arc<ColumnarFooter>> = f
        .segments
        .iter()
        .map(|id| {
            let bytes = f.rt.block_on(f.cold.get(f.meta(*id).cold_key().unwrap())).unwrap();
            Arc::new(ColumnarFooter::load(&bytes).unwrap())
        })
        .collect();
    let key =
        |i: usize| footers::CopyKey::new(&f.meta(f.segments[i]), "cold", f.meta(f.segments[i]).cold_key().unwrap());
    let size = footers[0].memory_size() as u64;
    assert!(size > 1000, "{size}");
    let tiny = FooterCache::new(size - 1);
    tiny.put(key(0), footers[0].clone());
    assert_eq!((tiny.stats().refused, tiny.stats().entries, tiny.stats().bytes), (1, 0, 0));
    assert!(tiny.get(&key(0)).is_none());
    let one = FooterCache::new(size.max(footers[1].memory_size() as u64));
    one.put(key(0), footers[0].clone());
    one.put(key(1), footers[1].clone());
    let s = one.stats();
    assert_eq!((s.evictions, s.entries, s.bytes), (1, 1, footers[1].memory_size() as u64), "{s:?}");
    assert!(one.get(&key(0)).is_none() && one.get(&key(1)).is_some());
    let off = FooterCache::new(0);
    off.put(key(0), footers[0].clone());
    assert!(off.get(&key(0)).is_none());
    assert_eq!(off.stats(), FooterCacheStats::default());
}

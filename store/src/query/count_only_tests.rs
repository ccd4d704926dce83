//! The count-only path against the general path and against a model of dedup, on a catalog built by the real
//! ingest and rewrite code: one day held by one Parquet segment (counted), one by two Parquet segments that share
//! events, one by a Parquet segment and a hot row segment that share events (both scanned and deduplicated).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};
use tierd_codecs::columnar::CodecSpec;
use tierd_codecs::{dedup_key, DedupKey, Event};
use tierd_policies::{ReencodePlanner, RewritePlanner};

use super::*;
use crate::catalog::Catalog;
use crate::clock::{Clock, ManualClock};
use crate::hot::{HotConfig, HotTier, IngestBatch};
use crate::layout::{day_of_ms, Layout};
use crate::rewrite::Rewriter;

pub(super) const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
pub(super) const DAY_MS: i64 = 86_400_000;
const NAMES: [&str; 4] = ["a", "b", "c", "q\"uote"];

/// The `i`-th event of `day` (0, 1 or 2 days after T0), in version `version` (a re-send of the same event carries
/// the same dedup key and a different `version` property).
pub(super) fn event(day: i64, i: u64, version: u64) -> Event {
    Event {
        event: NAMES[(i * i % 7 % 4) as usize].to_owned(),
        time_ms: T0 + day * DAY_MS + (i as i64 * 977_777) % DAY_MS,
        distinct_id: format!("u{}", i % 13),
        insert_id: format!("d{day}-{i}"),
        properties: json!({"version": version, "i": i}).as_object().unwrap().clone(),
    }
}

/// What the catalog should answer: per dedup key the copy ingested last.
#[derive(Default)]
pub(super) struct Model(pub(super) BTreeMap<DedupKey, Event>);

impl Model {
    fn ingest(&mut self, events: &[Event]) {
        for e in events {
            self.0.insert(dedup_key("p", e), e.clone());
        }
    }

    pub(super) fn answer(&self, q: &Query) -> (u64, Vec<(Value, u64)>) {
        let mut groups: BTreeMap<String, (Value, u64)> = BTreeMap::new();
        let matching = self.0.values().filter(|e| {
            (q.from_ms..q.to_ms).contains(&e.time_ms)
                && q.event.as_ref().is_none_or(|n| *n == e.event)
                && q.filters.iter().all(|f| f.matches(e))
        });
        let mut total = 0;
        for e in matching {
            total += 1;
            let key = q.group_by.key(e);
            groups.entry(key.to_string()).or_insert((key, 0)).1 += 1;
        }
        let mut rows: Vec<(Value, u64)> = match q.group_by {
            GroupBy::None => Vec::new(),
            _ => groups.into_values().collect(),
        };
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.to_string().cmp(&b.0.to_string())));
        (total, rows)
    }
}

pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub(super) layout: Layout,
    clock: ManualClock,
    pub(super) catalog: Arc<Catalog>,
    pub(super) model: Model,
}

impl Fixture {
    /// Ingests `batches` (one request each) through a hot tier, then seals everything (shutdown).
    pub(super) fn ingest(&mut self, batches: Vec<Vec<Event>>) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let ctx = crate::testing::context(&self.layout, &self.catalog, &self.clock, "");
            let hot = HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap();
            for batch in batches {
                self.model.ingest(&batch);
                hot.append(IngestBatch::encode("p".into(), batch)).await.unwrap();
            }
            hot.shutdown().await;
        });
    }

    /// Re-encodes the sealed row segments of the given days (days after T0) into one Parquet segment per day.
    pub(super) fn reencode(&self, days: &[i64]) {
        let stats: Vec<_> = self.catalog.snapshot().segments().map(|m| m.planner_stats()).collect();
        let planner = ReencodePlanner { output_codec: "lz4".into(), max_output_bytes: 1 << 30, min_age_ms: 0 };
        let rewriter = Rewriter::new(
            crate::testing::context(&self.layout, &self.catalog, &self.clock, ""),
            // Small row groups: the counted segment has several, for pruning to matter.
            CodecSpec { row_group_rows: 100, ..CodecSpec::default() },
        );
        let wanted: Vec<i32> = days.iter().map(|d| day_of_ms(T0 + d * DAY_MS)).collect();
        let actions: Vec<_> =
            planner.plan(self.clock.now_ms(), &stats).into_iter().filter(|a| wanted.contains(&a.day)).collect();
        assert_eq!(actions.len(), days.len(), "{actions:?}");
        for action in &actions {
            rewriter.execute(action).unwrap();
        }
    }
}

pub(super) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
    Fixture { _dir: dir, layout, clock: ManualClock::new(T0 + 3 * DAY_MS), catalog, model: Model::default() }
}

/// Day 0: one Parquet segment (re-sends inside its only row segment, removed by the re-encode). Day 1: two Parquet
/// segments, the second re-sending events of the first with new properties. Day 2: a Parquet segment and a row
/// segment re-sending some of its events.
pub(super) fn mixed_catalog() -> Fixture {
    let mut f = fixture();
    let day0: Vec<Event> =
        (0..400).map(|i| event(0, i, 0)).chain((0..400).step_by(9).map(|i| event(0, i, 1))).collect();
    let day1: Vec<Event> = (0..300).map(|i| event(1, i, 0)).collect();
    let day2: Vec<Event> = (0..300).map(|i| event(2, i, 0)).collect();
    f.ingest(vec![day0, day1, day2]);
    f.reencode(&[0, 1, 2]);
    let day1_again: Vec<Event> =
        (0..300).step_by(4).map(|i| event(1, i, 2)).chain((300..350).map(|i| event(1, i, 0))).collect();
    let day2_again: Vec<Event> =
        (0..300).step_by(5).map(|i| event(2, i, 3)).chain((300..330).map(|i| event(2, i, 0))).collect();
    f.ingest(vec![day1_again, day2_again]);
    f.reencode(&[1]);
    f
}

pub(super) fn query(from_ms: i64, to_ms: i64, event: Option<&str>, filters: Vec<Filter>, group_by: GroupBy) -> Query {
    Query { project: "p".into(), from_ms, to_ms, event: event.map(str::to_owned), filters, group_by }
}

#[test]
fn days_of_one_parquet_segment_are_counted_the_others_scanned() {
    let f = mixed_catalog();
    let snapshot = f.catalog.snapshot();
    let segments = snapshot.lookup("p", i64::MIN, i64::MAX);
    // (day after T0, format) of each segment; within a day the order (by id) is random here.
    let mut described: Vec<(i64, &str)> =
        segments.iter().map(|m| ((m.day as i64 * DAY_MS - T0) / DAY_MS, m.format.extension())).collect();
    described.sort();
    assert_eq!(described, [(0, "parquet"), (1, "parquet"), (1, "parquet"), (2, "parquet"), (2, "rows")]);
    let plans = plan_days(&segments, Shortcut::EventCounts);
    assert!(matches!(plans[..], [DayPlan::CountOnly(_), DayPlan::Scan([_, _]), DayPlan::Scan([_, _])]), "{plans:?}");
    assert!(plan_days(&segments, Shortcut::None).iter().all(|p| matches!(p, DayPlan::Scan(_))));
    let plain = query(i64::MIN, i64::MAX, None, vec![], GroupBy::Event);
    assert!(plain.answered_by_event_counts());
    assert!(query(0, 1, Some("a"), vec![], GroupBy::None).answered_by_event_counts());
    assert!(!query(0, 1, None, vec![], GroupBy::Property("i".into())).answered_by_event_counts());
    let filter = Filter { property: "version".into(), op: Op::Exists, value: Value::Null };
    assert!(!query(0, 1, None, vec![filter], GroupBy::None).answered_by_event_counts());
}

#[test]
fn the_count_only_path_answers_like_the_general_path_and_the_model() {
    let f = mixed_catalog();
    let snapshot = f.catalog.snapshot();
    let version = |v: u64| Filter { property: "version".into(), op: Op::Eq, value: json!(v) };
    let windows = [
        (i64::MIN, i64::MAX),
        (T0, T0 + DAY_MS),
        (T0 + DAY_MS / 3, T0 + DAY_MS / 2),
        (T0 + DAY_MS / 2, T0 + 5 * DAY_MS / 2),
        (T0 + DAY_MS, T0 + 3 * DAY_MS),
        (T0 + 3 * DAY_MS, T0 + 4 * DAY_MS),
    ];
    let mut checked = 0;
    for (from_ms, to_ms) in windows {
        for event in [None, Some("a"), Some("q\"uote"), Some("missing")] {
            for group_by in [GroupBy::None, GroupBy::Event, GroupBy::Property("version".into())] {
                for filters in [vec![], vec![version(0)]] {
                    let q = query(from_ms, to_ms, event, filters, group_by.clone());
                    let fast = execute(&SegmentSource::hot_only(f.layout.clone()), &snapshot, &q).unwrap();
                    let general = execute_planned(
                        &SegmentSource::hot_only(f.layout.clone()),
                        &snapshot,
                        &q,
                        false,
                        None,
                        &QueryLimits::default(),
                    )
                    .unwrap();
                    assert_eq!(fast, general, "{q:?}");
                    assert_eq!((fast.total, fast.rows), f.model.answer(&q), "{q:?}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 6 * 4 * 3 * 2);
    // The whole range: every day, and every segment read once.
    let q = query(i64::MIN, i64::MAX, None, vec![], GroupBy::Event);
    let all = execute(&SegmentSource::hot_only(f.layout.clone()), &snapshot, &q).unwrap();
    assert_eq!(all.total, 400 + 350 + 330);
    assert_eq!(all.segments_scanned, 5);
    let bytes: u64 = snapshot.lookup("p", i64::MIN, i64::MAX).iter().map(|m| m.bytes).sum();
    assert_eq!(all.bytes_scanned, bytes);
}

/// A user deletion's tombstone at read time: the rows of `u1` ingested up to the request's sequence are gone from
/// every answer (on Parquet and row segments, before dedup, with the retention cutoff composed), and what `u1` sends
/// after the request, a re-send of an old event included, counts as if it were new.
#[test]
fn tombstones_hide_a_users_rows_up_to_the_request_sequence() {
    let mut f = mixed_catalog();
    let max_seq = f.catalog.snapshot().max_seq().unwrap();
    let filter = RowFilter::DistinctIds { ids: ["u1".to_string()].into(), max_seq };
    f.model.0.retain(|_, e| e.distinct_id != "u1");
    // After the request: u1 re-sends two old events of day 2 (i = 1, 14: distinct id u1) and sends a new one.
    let later = vec![event(2, 1, 7), event(2, 14, 7), event(2, 1002, 7)];
    assert!(later.iter().all(|e| e.distinct_id == "u1"));
    f.ingest(vec![later]);
    let snapshot = f.catalog.snapshot();
    let source = SegmentSource::hot_only(f.layout.clone());
    let mut checked = 0;
    for cutoff in [None, Some(T0 + DAY_MS + DAY_MS / 2)] {
        for group_by in [GroupBy::None, GroupBy::Event, GroupBy::Property("version".into())] {
            for event_name in [None, Some("a")] {
                let q = query(i64::MIN, i64::MAX, event_name, vec![], group_by.clone());
                let hidden = Hidden { before_ms: cutoff, rows: Some(&filter) };
                let got = execute_hidden(&source, &snapshot, &q, &hidden).unwrap();
                let seen = Query { from_ms: cutoff.unwrap_or(i64::MIN), ..q.clone() };
                assert_eq!((got.total, got.rows), f.model.answer(&seen), "{q:?} cutoff {cutoff:?}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 12);
    // Without the tombstone the old copies are still stored and counted: the filter is what hides them.
    let q = query(i64::MIN, i64::MAX, None, vec![], GroupBy::None);
    let unfiltered = execute(&source, &snapshot, &q).unwrap().total;
    let hidden = execute_hidden(&source, &snapshot, &q, &Hidden { before_ms: None, rows: Some(&filter) }).unwrap();
    assert!(unfiltered > hidden.total, "{unfiltered} vs {}", hidden.total);
    assert_eq!(hidden.total, f.model.answer(&q).0);
}

/// A filtered delete's conditions read properties a query may not ask for: the hidden rows are told apart all the
/// same, on Parquet (where only the requested property columns are decoded) and on rows.
#[test]
fn filtered_delete_tombstones_read_the_properties_they_test() {
    let mut f = mixed_catalog();
    let max_seq = f.catalog.snapshot().max_seq().unwrap();
    let window = (T0 + DAY_MS / 2, T0 + 2 * DAY_MS + DAY_MS / 2);
    let filter = RowFilter::Events {
        event: Some("a".into()),
        from_ms: window.0,
        to_ms: window.1,
        conditions: vec![Filter { property: "i".into(), op: Op::Lt, value: json!(150) }],
        max_seq,
    };
    let selected = |e: &Event| {
        e.event == "a" && (window.0..window.1).contains(&e.time_ms) && e.properties["i"].as_u64() < Some(150)
    };
    let before = f.model.0.len();
    f.model.0.retain(|_, e| !selected(e));
    assert!(f.model.0.len() < before, "the filter selects something: the test can fail");
    let snapshot = f.catalog.snapshot();
    let source = SegmentSource::hot_only(f.layout.clone());
    for group_by in [GroupBy::None, GroupBy::Event, GroupBy::Property("version".into())] {
        for event_name in [None, Some("a"), Some("b")] {
            let q = query(i64::MIN, i64::MAX, event_name, vec![], group_by.clone());
            let got = execute_hidden(&source, &snapshot, &q, &Hidden { before_ms: None, rows: Some(&filter) }).unwrap();
            assert_eq!((got.total, got.rows), f.model.answer(&q), "{q:?}");
        }
    }
}

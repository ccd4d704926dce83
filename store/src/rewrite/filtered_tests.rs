//! The filtered rewrite over a real hot directory: straddling row and Parquet segments lose exactly the matching
//! rows, a segment whose rows all match is retired whole, failures at every step leave nothing behind, and recovery
//! rolls back what a crash left.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;
use tierd_codecs::{Event, RowFilter};

use super::*;
use crate::catalog::Catalog;
use crate::clock::ManualClock;
use crate::durable::{FaultyFs, FsFault, FsFaultKind, FsOp};
use crate::hot::{HotConfig, HotTier, IngestBatch};
use crate::query::{execute, GroupBy, Query};
use crate::testing::{context, reencode_action, T0};
use crate::OsFs;

struct Store {
    _dir: tempfile::TempDir,
    layout: Layout,
    clock: ManualClock,
    catalog: Arc<Catalog>,
}

/// 40 events of project `p` at `T0 + i s` (i = 0..40, insert id `i`), then re-sends of i = 0..10 and 30..35 with
/// `k = 1` (the first copies say `k = 0`): one sealed row segment of 55 rows, 40 events.
fn row_segment() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let clock = ManualClock::new(T0);
    let catalog = Arc::new(Catalog::open(&layout.catalog_dir()).unwrap());
    let store = Store { _dir: dir, layout, clock, catalog };
    let ev = |i: i64, k: i64| Event {
        event: "E".into(),
        time_ms: T0 + i * 1000,
        distinct_id: format!("u{}", i % 3),
        insert_id: i.to_string(),
        properties: json!({"k": k}).as_object().unwrap().clone(),
    };
    let first: Vec<Event> = (0..40).map(|i| ev(i, 0)).collect();
    let again: Vec<Event> = (0..10).chain(30..35).map(|i| ev(i, 1)).collect();
    crate::testing::runtime().block_on(async {
        let hot = HotTier::start(&store.ctx(""), HotConfig::default(), Arc::new(|_| {})).unwrap();
        hot.append(IngestBatch::encode("p".into(), first)).await.unwrap();
        hot.append(IngestBatch::encode("p".into(), again)).await.unwrap();
        hot.shutdown().await;
    });
    store
}

impl Store {
    fn ctx(&self, failpoints: &str) -> StoreContext {
        context(&self.layout, &self.catalog, &self.clock, failpoints)
    }

    fn rewriter(&self, failpoints: &str) -> Rewriter {
        Rewriter::new(self.ctx(failpoints), Default::default()).keep_duplicates_for(60_000)
    }

    fn only_live(&self) -> Arc<SegmentMeta> {
        let live: Vec<_> = self.catalog.snapshot().lookup("p", i64::MIN, i64::MAX);
        assert_eq!(live.len(), 1, "{live:?}");
        live[0].clone()
    }

    /// Events in `[from, to)` and their `k`s, by insert id.
    fn events(&self, from: i64, to: i64) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for m in self.catalog.snapshot().lookup("p", from, to) {
            for e in crate::read::read_events(&self.layout, &m).unwrap() {
                if (from..to).contains(&e.event.time_ms) {
                    out.push((e.event.insert_id.clone(), e.event.properties["k"].as_i64().unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    fn count(&self) -> u64 {
        let q = Query {
            project: "p".into(),
            from_ms: i64::MIN,
            to_ms: i64::MAX,
            event: None,
            filters: vec![],
            group_by: GroupBy::None,
        };
        execute(&crate::read::SegmentSource::hot_only(self.layout.clone()), &self.catalog.snapshot(), &q).unwrap().total
    }

    fn hot_files(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.layout.hot_dir().join("p"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// What the model says is left: the last copy of each event at or after `cutoff`.
fn expected_after(cutoff_s: i64) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> =
        (cutoff_s..40).map(|i| (i.to_string(), i64::from((0..10).contains(&i) || (30..35).contains(&i)))).collect();
    out.sort();
    out
}

#[test]
fn a_straddling_row_segment_loses_exactly_the_expired_rows_and_is_deduplicated() {
    let store = row_segment();
    let input = store.only_live();
    assert_eq!((input.format, input.rows), (Format::Rows, 55));
    let filter = RowFilter::TimeBefore { before_ms: T0 + 20_000 };
    let o = store.rewriter("").remove_rows(input.id, &filter, "retention").unwrap();
    assert_eq!(o.action, FilterAction::Rewritten);
    // Rows 0..20 and the ten re-sends of 0..10 match (30 rows); of the 25 left, the five re-sends of 30..35
    // duplicate kept events: 20 rows remain, and the first copies of 30..35 go to the side segment.
    assert_eq!((o.rows_before, o.rows_removed, o.rows_after, o.duplicates_removed), (55, 30, 20, 5));
    let output = store.only_live();
    assert_eq!(Some(output.id), o.output);
    assert_eq!((output.format, output.rows, output.min_time_ms), (Format::Parquet, 20, T0 + 20_000));
    assert_eq!(output.codec, input.codec);
    assert_eq!(store.events(i64::MIN, i64::MAX), expected_after(20));
    assert_eq!(store.count(), 20);
    let snapshot = store.catalog.snapshot();
    let retired = snapshot.get(&input.id).unwrap();
    assert_eq!(retired.state, SegmentState::Retired);
    assert_eq!(retired.retired.as_ref().unwrap().replaced_by, vec![output.id]);
    let side = snapshot.get(&o.duplicates_segment.unwrap()).unwrap();
    assert_eq!(side.rows, 5);
    assert!(matches!(side.role, Role::Duplicates { of, .. } if of == output.id));
    let side_rows = crate::read::read_events(&store.layout, side).unwrap();
    assert!(side_rows.iter().all(|e| e.event.time_ms >= T0 + 20_000), "no expired row is kept aside");
    assert!(store.catalog.intents().unwrap().is_empty());
}

#[test]
fn a_parquet_segment_is_rewritten_retired_whole_or_left_alone() {
    let store = row_segment();
    store.rewriter("").execute(&reencode_action(&store.catalog)).unwrap();
    let parquet = store.only_live();
    assert_eq!((parquet.format, parquet.rows), (Format::Parquet, 40));
    let rewriter = store.rewriter("");

    // Nothing older than the first event: unchanged, by the statistics alone.
    let none = rewriter.remove_rows(parquet.id, &RowFilter::TimeBefore { before_ms: T0 }, "retention").unwrap();
    assert_eq!((none.action, none.rows_removed), (FilterAction::Unchanged, 0));
    assert_eq!(store.only_live().id, parquet.id);
    // A filter the statistics cannot decide and no row matches: unchanged after reading.
    let nobody = RowFilter::DistinctIds { ids: ["nobody".to_string()].into(), max_seq: u64::MAX };
    assert_eq!(rewriter.remove_rows(parquet.id, &nobody, "deletions").unwrap().action, FilterAction::Unchanged);

    let o = rewriter.remove_rows(parquet.id, &RowFilter::TimeBefore { before_ms: T0 + 35_000 }, "retention").unwrap();
    assert_eq!((o.action, o.rows_removed, o.rows_after, o.duplicates_removed), (FilterAction::Rewritten, 35, 5, 0));
    assert_eq!(store.events(i64::MIN, i64::MAX), expected_after(35));
    let output = store.only_live();
    assert_eq!(Some(output.id), o.output);
    assert_eq!(output.codec, parquet.codec, "the codec is kept");

    // Every row older than the cutoff: retired whole, no output written.
    let files = store.hot_files();
    let all = rewriter.remove_rows(output.id, &RowFilter::TimeBefore { before_ms: T0 + 40_000 }, "retention").unwrap();
    assert_eq!((all.action, all.output, all.rows_removed, all.bytes_after), (FilterAction::Retired, None, 5, 0));
    assert_eq!(store.hot_files(), files, "no file was written");
    assert!(store.catalog.snapshot().lookup("p", i64::MIN, i64::MAX).is_empty());
    let retired = store.catalog.snapshot().get(&output.id).unwrap().as_ref().clone();
    assert_eq!((retired.state, retired.retired.unwrap().replaced_by), (SegmentState::Retired, vec![]));
    assert_eq!(store.count(), 0);

    // A retired segment is a stale plan.
    let stale = rewriter.remove_rows(output.id, &RowFilter::TimeBefore { before_ms: i64::MAX }, "retention");
    assert!(matches!(stale, Err(StoreError::StalePlan(_))), "{stale:?}");
}

#[test]
fn a_segment_whose_rows_all_match_after_reading_is_retired_whole() {
    let store = row_segment();
    let input = store.only_live();
    let everyone = RowFilter::DistinctIds { ids: ["u0", "u1", "u2"].map(String::from).into(), max_seq: u64::MAX };
    let o = store.rewriter("").remove_rows(input.id, &everyone, "deletions").unwrap();
    assert_eq!((o.action, o.rows_removed, o.output), (FilterAction::Retired, 55, None));
    assert_eq!(store.count(), 0);
}

#[test]
fn a_failure_at_any_step_leaves_nothing_behind() {
    // `@2`: the side segment's step, after the output's succeeded; without: the output's own step.
    for point in ["filtered.intent", "filtered.write", "filtered.verify", "filtered.write@2", "filtered.verify@2"] {
        let store = row_segment();
        let spec = match point.split_once('@') {
            Some((p, n)) => format!("{p}=error@{n}"),
            None => format!("{point}=error"),
        };
        let input = store.only_live();
        let before: Vec<_> = store.catalog.snapshot().segments().cloned().collect();
        let files = store.hot_files();
        let err = store
            .rewriter(&spec)
            .remove_rows(input.id, &RowFilter::TimeBefore { before_ms: T0 + 20_000 }, "retention")
            .unwrap_err();
        assert!(err.to_string().contains(point.split('@').next().unwrap()), "{point}: {err}");
        let after: Vec<_> = store.catalog.snapshot().segments().cloned().collect();
        assert_eq!(before, after, "{point}: the catalog is unchanged");
        assert!(store.catalog.intents().unwrap().is_empty(), "{point}");
        assert_eq!(store.hot_files(), files, "{point}: only the input remains");
        assert_eq!(store.count(), 40, "{point}");
    }
}

#[test]
fn a_stale_plan_commits_nothing_and_removes_its_output() {
    let store = row_segment();
    let input = store.only_live();
    let files = store.hot_files();
    // Another pass retires the input between the read and the commit: here, before the rewrite reads the snapshot
    // the commit's precondition is checked against, by bumping the record's generation behind its back.
    let rewriter = store.rewriter("");
    let mut changed = (*input).clone();
    changed.sealed_at_ms = Some(T0 + 1);
    let stale_meta = input.clone();
    store.catalog.commit(vec![CatalogChange::Put(changed)]).unwrap();
    let filter = RowFilter::TimeBefore { before_ms: T0 + 20_000 };
    let err = rewriter.rewrite_without(&stale_meta, &filter, 30, false).unwrap_err();
    assert!(matches!(err, StoreError::StalePlan(_)), "{err}");
    assert_eq!(store.hot_files(), files, "the output was removed");
    assert!(store.catalog.intents().unwrap().is_empty());
    assert_eq!(store.count(), 40);
}

#[test]
fn recovery_rolls_back_what_a_crash_left() {
    let store = row_segment();
    let input = store.only_live();
    let files = store.hot_files();
    // The verify step fails and the rewriter's own rollback cannot remove the output (the disk refuses): what a
    // crash after `filtered.verify` leaves, an intent and an uncommitted file.
    let faulty = FaultyFs::new(Arc::new(OsFs), vec![FsFault::new(FsOp::Remove, FsFaultKind::Eio).on_paths(".parquet")]);
    let ctx = store.ctx("filtered.verify=error").with_fs(Arc::new(faulty));
    let rewriter = Rewriter::new(ctx, Default::default());
    let filter = RowFilter::TimeBefore { before_ms: T0 + 20_000 };
    assert!(rewriter.remove_rows(input.id, &filter, "retention").is_err());
    assert_eq!(store.catalog.intents().unwrap().len(), 1);
    assert_eq!(store.hot_files().len(), files.len() + 1, "the uncommitted output is still there");
    assert_eq!(store.count(), 40, "and invisible");

    let report = crate::recovery::recover(&store.ctx("")).unwrap();
    assert_eq!(report.rolled_back.len(), 1, "{report:?}");
    assert!(store.catalog.intents().unwrap().is_empty());
    assert_eq!(store.hot_files(), files);
    assert_eq!(store.only_live().id, input.id);
    // The rewrite runs to the end now.
    let o = store.rewriter("").remove_rows(input.id, &filter, "retention").unwrap();
    assert_eq!(o.action, FilterAction::Rewritten);
    assert_eq!(store.events(i64::MIN, i64::MAX), expected_after(20));
}

/// The read-time cutoff answers before the pass exactly what the store holds after it: a query never sees an event
/// past retention, whichever of the two removed it; row and Parquet segments, counted or scanned.
#[test]
fn a_query_with_the_cutoff_answers_as_if_the_rows_were_gone() {
    use crate::query::{execute_retained, Filter, Op};
    let store = row_segment();
    let cutoff = T0 + 20_000;
    let source = crate::read::SegmentSource::hot_only(store.layout.clone());
    let q = |from_ms: i64, group_by: GroupBy, filters: Vec<Filter>| Query {
        project: "p".into(),
        from_ms,
        to_ms: i64::MAX,
        event: None,
        filters,
        group_by,
    };
    let k1 = || vec![Filter { property: "k".into(), op: Op::Eq, value: json!(1) }];
    let answers = |store: &Store| {
        let snap = store.catalog.snapshot();
        let run = |q: &Query| execute_retained(&source, &snap, q, Some(cutoff)).unwrap();
        (
            run(&q(i64::MIN, GroupBy::None, vec![])).total,
            run(&q(i64::MIN, GroupBy::Event, vec![])).rows,
            run(&q(i64::MIN, GroupBy::None, k1())).total,
            run(&q(T0 + 30_000, GroupBy::None, vec![])).total,
            run(&Query { to_ms: cutoff, ..q(i64::MIN, GroupBy::None, vec![]) }).total,
        )
    };
    // 20 events at or after the cutoff; five of them (30..35) re-sent with k = 1; ten from 30 s on; none before.
    let want = (20, vec![(json!("E"), 20)], 5, 10, 0);
    assert_eq!(answers(&store), want, "rows, before any rewrite");
    store.rewriter("").execute(&reencode_action(&store.catalog)).unwrap();
    assert_eq!(answers(&store), want, "parquet (the count-only path), before the pass");
    let live = store.only_live();
    store.rewriter("").remove_rows(live.id, &RowFilter::TimeBefore { before_ms: cutoff }, "retention").unwrap();
    assert_eq!(answers(&store), want, "after the pass");
    assert_eq!(store.count(), 20, "and without the cutoff too");
}

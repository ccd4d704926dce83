use std::sync::Arc;

use tierd_policies::SegmentStats;

use super::*;
use crate::catalog::{CatalogChange, Retirement};
use crate::layout::day_start_ms;
use crate::testing::{row_meta, T0};
use crate::ManualClock;

const DAY: i64 = 86_400_000;

fn meta(day: i32, bytes: u64) -> crate::SegmentMeta {
    crate::SegmentMeta {
        state: SegmentState::Sealed,
        max_time_ms: day_start_ms(day) + 1000,
        rows: 10,
        bytes,
        checksum: 7,
        min_seq: 1,
        max_seq: 10,
        created_at_ms: T0,
        sealed_at_ms: Some(T0),
        ..row_meta("p", day, SegmentId::generate(T0))
    }
}

struct Setup {
    dir: tempfile::TempDir,
    catalog: Arc<Catalog>,
    clock: ManualClock,
}

fn setup(segments: &[crate::SegmentMeta]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(Catalog::open(dir.path()).unwrap());
    catalog.commit(segments.iter().cloned().map(CatalogChange::Put).collect()).unwrap();
    Setup { dir, catalog, clock: ManualClock::new(T0) }
}

fn tracker(s: &Setup, config: HeatConfig) -> HeatTracker {
    HeatTracker::open(s.catalog.clone(), Arc::new(s.clock.clone()), config).unwrap()
}

fn day_half_life() -> HeatConfig {
    HeatConfig { half_life: HalfLife::from_secs(86_400).unwrap(), ..HeatConfig::default() }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn reads_are_counted_by_source_and_decay_with_the_clock() {
    let (a, b) = (meta(100, 1000), meta(101, 1000));
    let s = setup(&[a.clone(), b.clone()]);
    let t = tracker(&s, day_half_life());
    assert_eq!(t.view(&a.id, T0), HeatView::default(), "never read");
    for _ in 0..10 {
        t.record(a.id, ReadSource::SegmentGet, 1000);
    }
    t.record(b.id, ReadSource::Lookup, 0);
    let (va, vb) = (t.view(&a.id, T0), t.view(&b.id, T0));
    assert_eq!(va.last_read_ms, Some(T0));
    // A lookup counts lookup_weight (0.1) of a read: b is 100 times cooler than a.
    assert!(close(va.reads_per_day, 100.0 * vb.reads_per_day), "{va:?} {vb:?}");
    assert!(close(va.bytes_per_day, 1000.0 * va.reads_per_day));
    assert_eq!(vb.bytes_per_day, 0.0);
    s.clock.advance_ms(DAY);
    let later = t.view(&a.id, s.clock.now_ms());
    assert!(close(later.reads_per_day, va.reads_per_day / 2.0), "one half-life later: {later:?} vs {va:?}");
    assert_eq!(later.last_read_ms, Some(T0));
}

#[test]
fn annotate_fills_planner_heat() {
    let (a, b) = (meta(100, 1000), meta(101, 1000));
    let s = setup(&[a.clone(), b.clone()]);
    let t = tracker(&s, day_half_life());
    t.record(a.id, ReadSource::Query, 500);
    let mut stats: Vec<SegmentStats> = [&a, &b].iter().map(|m| m.planner_stats()).collect();
    t.annotate(&mut stats, T0);
    let v = t.view(&a.id, T0);
    assert!(v.reads_per_day > 0.0);
    assert_eq!((stats[0].heat, stats[0].heat_bytes), (v.reads_per_day, v.bytes_per_day));
    assert_eq!((stats[1].heat, stats[1].heat_bytes), (0.0, 0.0));
}

#[test]
fn the_bound_refuses_new_segments_but_counts_tracked_ones() {
    let segs: Vec<_> = (0..4).map(|d| meta(100 + d, 10)).collect();
    let s = setup(&segs);
    let t = tracker(&s, HeatConfig { max_tracked_segments: 2, ..day_half_life() });
    assert!(t.record(segs[0].id, ReadSource::Query, 1));
    assert!(t.record(segs[1].id, ReadSource::Query, 1));
    assert!(!t.record(segs[2].id, ReadSource::Query, 1), "a third segment is refused");
    assert!(t.record(segs[0].id, ReadSource::Query, 1), "a tracked one still counts");
    assert_eq!(t.tracked(), 2);
    assert_eq!(t.view(&segs[2].id, T0), HeatView::default());
    // Garbage collection frees a slot at the next flush.
    s.catalog.commit(vec![CatalogChange::Remove(segs[1].id)]).unwrap();
    let r = t.flush().unwrap();
    assert_eq!((r.dropped, r.tracked), (1, 1));
    assert!(t.record(segs[3].id, ReadSource::Query, 1));
    assert_eq!(t.tracked(), 2);
}

#[test]
fn flush_and_reopen_round_trip() {
    let (a, b) = (meta(100, 1000), meta(101, 1000));
    let s = setup(&[a.clone(), b.clone()]);
    let before;
    {
        let t = tracker(&s, day_half_life());
        for _ in 0..3 {
            t.record(a.id, ReadSource::SegmentGet, 700);
        }
        s.clock.advance_ms(1000);
        t.record(b.id, ReadSource::Query, 50);
        let r = t.flush().unwrap();
        assert_eq!((r.written, r.tracked), (2, 2));
        assert_eq!(t.flush().unwrap().written, 0, "nothing changed, nothing written");
        // A read after the last flush is what a crash loses.
        t.record(b.id, ReadSource::Query, 50);
        before = (t.view(&a.id, s.clock.now_ms()), t.view(&b.id, s.clock.now_ms()));
    }
    // Reopen without that last flush: a's heat is whole, b's lacks the last read.
    let s2 = Setup { dir: s.dir, catalog: s.catalog, clock: s.clock };
    let t = tracker(&s2, day_half_life());
    let now = s2.clock.now_ms();
    assert_eq!(t.view(&a.id, now), before.0);
    let b_after = t.view(&b.id, now);
    assert!(close(b_after.reads_per_day * 2.0, before.1.reads_per_day), "{b_after:?} vs {:?}", before.1);
    assert_eq!(t.tracked(), 2);
}

#[test]
fn reopening_with_a_smaller_bound_loads_only_that_many() {
    let segs: Vec<_> = (0..3).map(|d| meta(100 + d, 10)).collect();
    let s = setup(&segs);
    {
        let t = tracker(&s, day_half_life());
        for m in &segs {
            t.record(m.id, ReadSource::Query, 1);
        }
        t.flush().unwrap();
    }
    let t = tracker(&s, HeatConfig { max_tracked_segments: 2, ..day_half_life() });
    assert_eq!(t.tracked(), 2);
}

#[test]
fn a_rewrite_output_inherits_its_inputs_heat_and_gc_drops_it() {
    let (a, b, cold) = (meta(100, 300), meta(100, 100), meta(101, 100));
    let s = setup(&[a.clone(), b.clone(), cold.clone()]);
    let t = tracker(&s, day_half_life());
    for _ in 0..6 {
        t.record(a.id, ReadSource::Query, 300);
    }
    for _ in 0..2 {
        t.record(b.id, ReadSource::SegmentGet, 100);
    }
    t.flush().unwrap();
    s.clock.advance_ms(5000);
    let now = s.clock.now_ms();
    let sum = t.view(&a.id, now).reads_per_day + t.view(&b.id, now).reads_per_day;
    // A compaction: a and b become out1 (3/4 of the bytes) and out2 (1/4), in one commit retiring both.
    let (out1, out2) = (meta(100, 600), meta(100, 200));
    let mut retired = Vec::new();
    for m in [&a, &b] {
        let mut r = m.clone();
        r.state = SegmentState::Retired;
        r.retired = Some(Retirement { at_ms: now, generation: 2, replaced_by: vec![out1.id, out2.id], erase: false });
        retired.push(CatalogChange::Put(r));
    }
    retired.extend([CatalogChange::Put(out1.clone()), CatalogChange::Put(out2.clone())]);
    s.catalog.commit(retired).unwrap();
    let r = t.flush().unwrap();
    assert_eq!((r.carried, r.tracked), (2, 2));
    let (v1, v2) = (t.view(&out1.id, now), t.view(&out2.id, now));
    assert!(close(v1.reads_per_day + v2.reads_per_day, sum), "{v1:?} + {v2:?} vs {sum}");
    assert!(close(v1.reads_per_day, 3.0 * v2.reads_per_day), "shared by bytes: {v1:?} {v2:?}");
    assert_eq!(v1.last_read_ms, Some(T0));
    assert_eq!(t.view(&a.id, now), HeatView::default());
    assert_eq!(t.view(&cold.id, now), HeatView::default());
    // The carried heat is persisted under the outputs' ids, not the inputs'.
    drop(t);
    let t = tracker(&s, day_half_life());
    assert!(close(t.view(&out1.id, now).reads_per_day, v1.reads_per_day));
    assert_eq!(t.view(&a.id, now), HeatView::default());
    // gc removes out2 from the catalog: its heat goes.
    s.catalog.commit(vec![CatalogChange::Remove(out2.id)]).unwrap();
    let r = t.flush().unwrap();
    assert_eq!((r.dropped, r.tracked), (1, 1));
    drop(t);
    let t = tracker(&s, day_half_life());
    assert_eq!(t.view(&out2.id, now), HeatView::default());
    assert_eq!(t.tracked(), 1);
}

#[test]
fn heat_follows_a_chain_of_rewrites_between_flushes() {
    let a = meta(100, 100);
    let s = setup(std::slice::from_ref(&a));
    let t = tracker(&s, day_half_life());
    t.record(a.id, ReadSource::Query, 100);
    let before = t.view(&a.id, T0).reads_per_day;
    // a -> b (reencode) -> c (recompress), both before the next flush.
    let (b, c) = (meta(100, 80), meta(100, 60));
    let retire = |m: &crate::SegmentMeta, by: SegmentId| {
        let mut r = m.clone();
        r.state = SegmentState::Retired;
        r.retired = Some(Retirement { at_ms: T0, generation: 1, replaced_by: vec![by], erase: false });
        CatalogChange::Put(r)
    };
    s.catalog.commit(vec![retire(&a, b.id), CatalogChange::Put(b.clone())]).unwrap();
    s.catalog.commit(vec![retire(&b, c.id), CatalogChange::Put(c.clone())]).unwrap();
    t.flush().unwrap();
    assert!(close(t.view(&c.id, T0).reads_per_day, before));
    assert_eq!(t.tracked(), 1);
}

#[test]
fn concurrent_reads_are_all_counted() {
    let segs: Vec<_> = (0..8).map(|d| meta(100 + d, 10)).collect();
    let s = setup(&segs);
    let t = Arc::new(tracker(
        &s,
        HeatConfig { half_life: HalfLife::from_secs(u64::MAX / 2000).unwrap(), ..HeatConfig::default() },
    ));
    std::thread::scope(|scope| {
        for k in 0..4 {
            let (t, segs) = (t.clone(), segs.clone());
            scope.spawn(move || {
                for i in 0..1000 {
                    t.record(segs[(i + k) % segs.len()].id, ReadSource::Query, 1);
                    if i % 250 == 0 {
                        t.flush().unwrap();
                    }
                }
            });
        }
    });
    let total: f64 = segs.iter().map(|m| t.shard(&m.id).lock().get(&m.id).unwrap().heat.reads).sum();
    assert!(close(total, 4000.0), "{total}");
}

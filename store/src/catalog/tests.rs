use std::collections::BTreeMap;

use proptest::prelude::*;

use super::schema::{KEY_GENERATION, KEY_SCHEMA, SCHEMA_VERSION};
use super::*;
use crate::error::StoreError;
use crate::layout::{day_start_ms, SegmentId};

fn meta(project: &str, day: i32, min_off: i64, max_off: i64, rows: u64) -> SegmentMeta {
    SegmentMeta {
        min_time_ms: day_start_ms(day) + min_off,
        max_time_ms: day_start_ms(day) + max_off,
        rows,
        bytes: 100 + rows,
        checksum: 7,
        min_seq: 1,
        max_seq: rows,
        created_at_ms: 1,
        ..crate::testing::row_meta(project, day, SegmentId::generate(1_700_000_000_000))
    }
}

use super::open_retrying as reopen;

#[test]
fn commits_bump_generation_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = meta("p", 20_000, 0, 1000, 10);
    let b = meta("p", 20_001, 5, 6, 2);
    {
        let c = Catalog::open(dir.path()).unwrap();
        assert_eq!(c.snapshot().generation(), 0);
        assert_eq!(c.commit(vec![CatalogChange::Put(a.clone())]).unwrap(), 1);
        let mut a2 = a.clone();
        a2.rows = 11;
        a2.state = SegmentState::Sealed;
        assert_eq!(c.commit(vec![CatalogChange::Put(a2), CatalogChange::Put(b.clone())]).unwrap(), 2);
        let s = c.snapshot();
        assert_eq!(s.get(&a.id).unwrap().created_generation, 1, "created generation is kept on update");
        assert_eq!(s.get(&a.id).unwrap().updated_generation, 2);
        assert_eq!(s.get(&b.id).unwrap().created_generation, 2);
    }
    let c = reopen(dir.path());
    let s = c.snapshot();
    assert_eq!(s.generation(), 2);
    assert_eq!(s.get(&a.id).unwrap().rows, 11);
    assert_eq!(s.get(&a.id).unwrap().state, SegmentState::Sealed);
    assert_eq!(s.segments().count(), 2);
    assert_eq!(c.commit(vec![CatalogChange::Remove(a.id)]).unwrap(), 3);
    assert!(c.snapshot().get(&a.id).is_none());
}

#[test]
fn old_snapshots_stay_consistent_after_commits() {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::open(dir.path()).unwrap();
    let a = meta("p", 1, 0, 10, 3);
    c.commit(vec![CatalogChange::Put(a.clone())]).unwrap();
    let before = c.snapshot();
    c.commit(vec![CatalogChange::Remove(a.id)]).unwrap();
    assert_eq!(before.lookup("p", 0, i64::MAX).len(), 1);
    assert!(c.snapshot().lookup("p", 0, i64::MAX).is_empty());
}

#[test]
fn lookup_prunes_by_project_day_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::open(dir.path()).unwrap();
    let d0 = meta("p", 100, 1000, 2000, 5);
    let d1 = meta("p", 101, 0, 500, 5);
    let other = meta("q", 100, 0, 86_399_999, 5);
    c.commit(vec![CatalogChange::Put(d0.clone()), CatalogChange::Put(d1.clone()), CatalogChange::Put(other)]).unwrap();
    let s = c.snapshot();
    let ids = |from: i64, to: i64| s.lookup("p", from, to).iter().map(|m| m.id).collect::<Vec<_>>();
    let day = day_start_ms(100);
    assert_eq!(ids(day, day + 86_400_000), vec![d0.id]);
    assert_eq!(ids(day + 2001, day + 86_400_000), Vec::<SegmentId>::new(), "max_time 2000 < from 2001");
    assert_eq!(ids(day + 2001, day + 86_400_000 + 1), vec![d1.id]);
    assert_eq!(ids(day + 2000, day + 86_400_000 + 1), vec![d0.id, d1.id]);
    assert_eq!(ids(day + 1999, day + 2000), vec![d0.id]);
    assert_eq!(ids(0, i64::MAX), vec![d0.id, d1.id]);
    assert!(ids(day + 10, day + 10).is_empty());
    assert!(s.lookup("nope", 0, i64::MAX).is_empty());
}

#[test]
fn leases_expire_and_do_not_outlive_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::open(dir.path()).unwrap();
    let l1 = c.grant_lease(1000, 500, 0, vec![]).unwrap();
    let l2 = c.grant_lease(1000, 5000, 0, vec![]).unwrap();
    assert_eq!(l1.expires_at_ms, 1500);
    assert_ne!(l1.id, l2.id);
    assert_eq!(c.live_leases(1499).unwrap().len(), 2);
    assert_eq!(c.live_leases(1500).unwrap().len(), 1);
    assert_eq!(c.prune_leases(2000).unwrap(), 1);
    let live = c.live_leases(2000).unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].0, l2.id);
    // In memory only: gc's restart rule (no lease trusted within one TTL of a start) covers what a restart loses.
    drop(c);
    let c = reopen(dir.path());
    assert!(c.live_leases(2000).unwrap().is_empty());
}

/// A `leases` tree written by an earlier release is never read, and the first pruning with room empties it.
#[test]
fn stored_leases_of_an_earlier_release_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("leases").unwrap();
        tree.insert("01OLD", r#"{"expires_at_ms":9999999999999,"generation":0,"segments":[]}"#.as_bytes()).unwrap();
        db.flush().unwrap();
    }
    let c = reopen(dir.path());
    assert!(c.live_leases(0).unwrap().is_empty(), "not read");
    assert_eq!(c.stored_leases.len(), 1);
    c.prune_leases(0).unwrap();
    assert!(c.stored_leases.is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Put { slot: usize, project: u8, day: i32, rows: u64, copies: u8 },
    Remove { slot: usize },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..8usize, 0..3u8, 0..4i32, 1..50u64, 0..4u8)
            .prop_map(|(slot, project, day, rows, copies)| Op::Put { slot, project, day, rows, copies }),
        2 => (0..8usize).prop_map(|slot| Op::Remove { slot }),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The catalog behaves like a map from id to record under any sequence of commits and reopens, and lookups
    /// return exactly the overlapping segments of the project.
    #[test]
    fn catalog_matches_model(ops in proptest::collection::vec(prop::collection::vec(op(), 1..4), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let ids: Vec<SegmentId> = (0..8).map(|_| SegmentId::generate(1)).collect();
        let mut model: BTreeMap<SegmentId, SegmentMeta> = BTreeMap::new();
        let mut generation = 0;
        for group in ops {
            let mut changes = Vec::new();
            let mut reopen = false;
            for op in group {
                match op {
                    Op::Put { slot, project, day, rows, copies } => {
                        let mut m = meta(&format!("p{project}"), 19_000 + day, (rows as i64) * 10, (rows as i64) * 1000, rows);
                        m.id = ids[slot];
                        // 0: hot, 1: cold, 2: both, 3: cold with a dropped hot copy not yet deleted.
                        let hot = m.locations[0].clone();
                        let cold = Location::cold(format!("segments/{}", m.id));
                        m.locations = match copies {
                            0 => vec![hot.clone()],
                            1 | 3 => vec![cold],
                            _ => vec![hot.clone(), cold],
                        };
                        if copies == 3 {
                            m.dropped.push(DroppedLocation { location: hot, at_ms: 5, generation: 1 });
                        }
                        changes.push(CatalogChange::Put(m));
                    }
                    Op::Remove { slot } => changes.push(CatalogChange::Remove(ids[slot])),
                    Op::Reopen => reopen = true,
                }
            }
            if !changes.is_empty() {
                for ch in &changes {
                    match ch {
                        CatalogChange::Put(m) => { model.insert(m.id, m.clone()); }
                        CatalogChange::Remove(id) => { model.remove(id); }
                        _ => {}
                    }
                }
                generation += 1;
                prop_assert_eq!(c.commit(changes).unwrap(), generation);
            }
            if reopen {
                drop(c);
                c = super::open_retrying(dir.path());
            }
            let s = c.snapshot();
            prop_assert_eq!(s.generation(), generation);
            let got: BTreeMap<SegmentId, (String, i32, u64)> =
                s.segments().map(|m| (m.id, (m.project.clone(), m.day, m.rows))).collect();
            let want: BTreeMap<SegmentId, (String, i32, u64)> =
                model.values().map(|m| (m.id, (m.project.clone(), m.day, m.rows))).collect();
            prop_assert_eq!(got, want);
            let hot_bytes: u64 = model.values().map(|m| m.bytes * m.all_locations().filter(|l| l.tier == Tier::Hot).count() as u64).sum();
            prop_assert_eq!(s.hot_bytes(), hot_bytes);
            for p in ["p0", "p1", "p2"] {
                let from = day_start_ms(19_001) + 100;
                let to = day_start_ms(19_002) + 20_000;
                let mut got: Vec<SegmentId> = s.lookup(p, from, to).iter().map(|m| m.id).collect();
                got.sort();
                let want: Vec<SegmentId> = model.values()
                    .filter(|m| m.project == p && m.min_time_ms < to && m.max_time_ms >= from)
                    .map(|m| m.id).collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}

/// A catalog written by schema 1 (one `tier` + `location` per segment) opens as schema 2 with the same content.
#[test]
fn schema_1_catalogs_are_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let id = SegmentId::generate(1_700_000_000_000);
    let v1 = serde_json::json!({
        "id": id, "project": "p", "day": 20_000, "state": "sealed", "tier": "hot", "format": "rows",
        "codec": "lz4", "location": format!("hot/p/{id}.rows"), "min_time_ms": 1, "max_time_ms": 2, "rows": 3,
        "bytes": 100, "checksum": 7, "min_seq": 1, "max_seq": 3, "created_at_ms": 1, "sealed_at_ms": 2,
        "created_generation": 1, "updated_generation": 1,
    });
    {
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.open_tree("meta").unwrap().insert(KEY_SCHEMA, &1u32.to_be_bytes()).unwrap();
        db.open_tree("meta").unwrap().insert(KEY_GENERATION, &1u64.to_be_bytes()).unwrap();
        db.open_tree("segments").unwrap().insert(id.to_string().as_bytes(), serde_json::to_vec(&v1).unwrap()).unwrap();
        db.flush().unwrap();
    }
    let c = reopen(dir.path());
    let m = c.snapshot().get(&id).unwrap().clone();
    assert_eq!(m.locations, vec![Location::hot(format!("hot/p/{id}.rows"))]);
    assert_eq!(
        (m.rows, m.bytes, m.state, m.placement()),
        (3, 100, SegmentState::Sealed, crate::catalog::Placement::Hot)
    );
    assert_eq!(c.snapshot().hot_bytes(), 100);
    drop(c);
    // Migrated once: a second open reads the current schema as it is.
    let c = reopen(dir.path());
    assert_eq!(c.snapshot().get(&id).unwrap().locations.len(), 1);
}

/// A schema-2 catalog keeps rewrite intents by output id and move intents in a `moves` tree: opened, both are
/// intents by location in one tree, and recovery sees every one of them.
#[test]
fn schema_2_intents_become_one_kind_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (output, moved) = (SegmentId::generate(1_700_000_000_000), SegmentId::generate(1_700_000_000_001));
    let input = SegmentId::generate(1_700_000_000_002);
    let rewrite = serde_json::json!({
        "output": output, "location": format!("hot/p/{output}.parquet"), "inputs": [input], "started_at_ms": 5,
    });
    let key = format!("segments/p/2023-11-14/{moved}.X.parquet");
    let mv = serde_json::json!({"segment": moved, "location": {"tier": "cold", "path": key}, "started_at_ms": 6});
    {
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.open_tree("meta").unwrap().insert(KEY_SCHEMA, &2u32.to_be_bytes()).unwrap();
        let intents = db.open_tree("intents").unwrap();
        intents.insert(output.to_string().as_bytes(), serde_json::to_vec(&rewrite).unwrap()).unwrap();
        let moves = db.open_tree("moves").unwrap();
        moves.insert(format!("cold:{key}").as_bytes(), serde_json::to_vec(&mv).unwrap()).unwrap();
        db.flush().unwrap();
    }
    let c = reopen(dir.path());
    let mut got = c.intents().unwrap();
    got.sort_by_key(|i| i.started_at_ms);
    let rewrite_location = Location::hot(format!("hot/p/{output}.parquet"));
    assert_eq!(
        got,
        vec![
            Intent::new(output, rewrite_location.clone(), IntentKind::Rewrite { inputs: vec![input] }, 5),
            Intent::new(moved, Location::cold(key.clone()), IntentKind::Move, 6),
        ]
    );
    // Clearing one by its location leaves the other; the migration is not repeated on the next open.
    c.commit(vec![CatalogChange::ClearIntent(rewrite_location)]).unwrap();
    drop(c);
    let c = reopen(dir.path());
    assert_eq!(c.intents().unwrap().iter().map(|i| i.segment).collect::<Vec<_>>(), vec![moved]);
}

/// A catalog newer than this tierd is refused, not misread.
#[test]
fn newer_schemas_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.open_tree("meta").unwrap().insert(KEY_SCHEMA, &(SCHEMA_VERSION + 1).to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let mut tries = 0;
    let err = loop {
        match Catalog::open(dir.path()) {
            Err(e) if tries < 100 && e.to_string().contains("could not acquire lock") => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.expect_err("a newer schema is refused"),
        }
    };
    assert!(
        matches!(err, StoreError::CatalogSchema { found, supported } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err}"
    );
}

/// A commit whose precondition fails changes nothing, so slow work never overwrites a newer record.
#[test]
fn expect_preconditions_guard_commits() {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::open(dir.path()).unwrap();
    let a = meta("p", 20_000, 0, 10, 3);
    c.commit(vec![CatalogChange::Put(a.clone())]).unwrap();
    let read = c.snapshot().get(&a.id).unwrap().updated_generation;
    let mut newer = a.clone();
    newer.rows = 4;
    c.commit(vec![CatalogChange::Put(newer)]).unwrap();
    let mut stale = a.clone();
    stale.rows = 99;
    let e = c.commit(vec![CatalogChange::Expect { id: a.id, updated_generation: read }, CatalogChange::Put(stale)]);
    assert!(matches!(e, Err(StoreError::StalePlan(_))), "{e:?}");
    assert_eq!(c.snapshot().get(&a.id).unwrap().rows, 4);
    assert_eq!(c.snapshot().generation(), 2);
    let current = c.snapshot().get(&a.id).unwrap().updated_generation;
    let mut fresh = a.clone();
    fresh.rows = 5;
    c.commit(vec![CatalogChange::Expect { id: a.id, updated_generation: current }, CatalogChange::Put(fresh)]).unwrap();
    assert_eq!(c.snapshot().get(&a.id).unwrap().rows, 5);
}

#[test]
fn repeated_lookups_share_a_lease_and_live_leases_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::open(dir.path()).unwrap();
    let grants = LeaseGrants::new(1);
    let a: SegmentId = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().unwrap();
    let l1 = grants.grant(&c, 1000, 1000, 7, vec![a]).unwrap();
    // The same segments at the same generation while half the TTL is left: the same lease, nothing written.
    assert_eq!(grants.grant(&c, 1400, 1000, 7, vec![a]).unwrap(), l1);
    assert_eq!(c.live_leases(1400).unwrap().len(), 1);
    // Less than half left: a new lease, with the full TTL.
    let l2 = grants.grant(&c, 1600, 1000, 7, vec![a]).unwrap();
    assert_ne!(l2.id, l1.id);
    assert_eq!(l2.expires_at_ms, 2600);
    // Another generation or other segments: another lease, up to the cap.
    let e = grants.grant(&c, 1600, 1000, 8, vec![a]).unwrap_err();
    assert!(e.to_string().contains("catalog.max_live_leases"), "{e}");
    assert!(matches!(e, StoreError::Backpressure(_)));
    // Once leases expire, there is room again; the refused lookup wrote nothing.
    assert_eq!(c.live_leases(1600).unwrap().len(), 2);
    grants.grant(&c, 2700, 1000, 8, vec![a]).unwrap();
}

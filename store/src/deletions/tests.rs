use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use tierd_codecs::{Event, StoredEvent};

use super::*;
use crate::catalog::open_retrying;

const LIMITS: DeletionLimits =
    DeletionLimits { max_ids_per_request: 4, max_request_bytes: 16, max_active_requests: 3, max_conditions: 2 };

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn row(seq: u64, distinct_id: &str) -> StoredEvent {
    StoredEvent {
        seq,
        event: Event {
            event: "E".into(),
            time_ms: 0,
            distinct_id: distinct_id.into(),
            insert_id: seq.to_string(),
            properties: Default::default(),
        },
    }
}

#[test]
fn refusals_name_the_limit_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = DeletionLog::open(Arc::new(Catalog::open(dir.path()).unwrap())).unwrap();
    let refused = |project: &str, list: &[&str]| log.request(project, ids(list), 0, &LIMITS).unwrap().unwrap_err();
    assert_eq!(refused("web", &[]), DeletionRefused::Empty);
    assert_eq!(refused("web", &[""]), DeletionRefused::EmptyId);
    assert_eq!(refused("web", &["a", "b", "c", "d", "e"]), DeletionRefused::TooManyIds { count: 5, max: 4 });
    assert_eq!(refused("web", &["0123456789", "abcdefgh"]), DeletionRefused::TooLarge { bytes: 18, max: 16 });
    assert_eq!(refused("web site", &["a"]).reason(), "bad_project");
    assert!(refused("web", &["a"; 0]).to_string().contains("at least one"));
    assert!(log.list().is_empty() && log.tombstones("web").is_none());
    for _ in 0..3 {
        log.request("web", ids(&["a"]), 0, &LIMITS).unwrap().unwrap();
    }
    let e = refused("web", &["a"]);
    assert_eq!(e, DeletionRefused::TooManyActive { active: 3, max: 3 });
    assert!(e.to_string().contains("deletions.max_active_requests"), "{e}");
    // A done request no longer counts.
    let first = log.list()[0].id;
    log.update(first, DeletionState::Done, DeletionProgress::default()).unwrap();
    log.request("web", ids(&["a"]), 0, &LIMITS).unwrap().unwrap();
}

#[test]
fn a_request_deletes_what_was_committed_when_it_was_accepted() {
    use crate::catalog::CatalogChange;
    let dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(Catalog::open(dir.path()).unwrap());
    let log = DeletionLog::open(catalog.clone()).unwrap();
    let r0 = log.request("web", ids(&["u1"]), 5, &LIMITS).unwrap().unwrap();
    assert_eq!(r0.max_seq, 0, "an empty catalog: nothing to delete yet");
    let m: crate::SegmentMeta = serde_json::from_value(serde_json::json!({
        "id": "01ARZ3NDEKTSV4RRFFQ69G5FA0", "project": "web", "day": 0, "state": "open", "format": "rows",
        "codec": "none", "locations": [{"tier": "hot", "path": "x"}], "min_time_ms": 0, "max_time_ms": 1,
        "rows": 7, "bytes": 100, "checksum": 0, "min_seq": 1, "max_seq": 7, "created_at_ms": 0,
    }))
    .unwrap();
    catalog.commit(vec![CatalogChange::Put(m)]).unwrap();
    let r1 = log.request("web", ids(&["u2"]), 6, &LIMITS).unwrap().unwrap();
    assert_eq!((r1.max_seq, r1.state, r1.created_at_ms), (7, DeletionState::Pending, 6));
    assert!(r0.id < r1.id, "ids sort in acceptance order");
    let f = log.tombstones("web").unwrap();
    assert!(f.matches(&row(7, "u2")) && !f.matches(&row(8, "u2")), "later events are kept");
    assert!(!f.matches(&row(1, "u1")), "u1's request saw no event");
    assert!(!f.matches(&row(1, "u3")));
    assert!(log.tombstones("other").is_none());
}

fn arb_request() -> impl Strategy<Value = (String, BTreeSet<String>, i64)> {
    (
        prop_oneof![Just("web".to_string()), Just("app".to_string())],
        proptest::collection::btree_set("[a-z0-9]{1,3}", 1..4),
        0i64..1_000_000,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Whatever requests were accepted and whatever states they were moved to: after a reopen the log holds
    /// exactly them, and the tombstones hide exactly the rows of the requests not done.
    #[test]
    fn requests_survive_a_reopen_and_tombstones_follow_the_states(
        reqs in proptest::collection::vec(arb_request(), 1..8),
        done in proptest::collection::vec(any::<bool>(), 8),
        probe in proptest::collection::vec(("[a-z0-9]{1,3}", 0u64..3), 1..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let limits = DeletionLimits { max_ids_per_request: 10, max_request_bytes: 100, max_active_requests: 100, max_conditions: 2 };
        let accepted = {
            let log = DeletionLog::open(Arc::new(Catalog::open(dir.path()).unwrap())).unwrap();
            let mut accepted: Vec<DeletionRequest> = Vec::new();
            for (i, (project, set, now)) in reqs.iter().enumerate() {
                let mut r = log.request(project, set.clone(), *now, &limits).unwrap().unwrap();
                if done[i] {
                    let p = DeletionProgress { rows_removed: i as u64, finished_at_ms: Some(*now), ..Default::default() };
                    log.update(r.id, DeletionState::Done, p.clone()).unwrap();
                    r.state = DeletionState::Done;
                    r.progress = p;
                }
                accepted.push(r);
            }
            // Listed in acceptance order, whatever the clock said.
            prop_assert!(accepted.windows(2).all(|w| w[0].id < w[1].id));
            prop_assert_eq!(log.list(), accepted.clone());
            accepted
        };
        let log = DeletionLog::open(Arc::new(open_retrying(dir.path()))).unwrap();
        prop_assert_eq!(log.list(), accepted.clone());
        for r in &accepted {
            prop_assert_eq!(log.get(r.id), Some(r.clone()));
        }
        for project in ["web", "app"] {
            let f = log.tombstones(project);
            for (id, seq) in &probe {
                let expected = accepted.iter().any(|r| {
                    r.is_active() && r.project == project && r.distinct_ids.contains(id) && *seq <= r.max_seq
                });
                let hidden = f.as_ref().is_some_and(|f| f.matches(&row(*seq, id)));
                prop_assert_eq!(hidden, expected, "project {} id {} seq {}", project, id, seq);
            }
        }
    }
}

#[test]
fn ids_round_trip_as_text() {
    let id = DeletionId::generate(1_700_000_000_000);
    assert_eq!(id.to_string().parse::<DeletionId>().unwrap(), id);
    assert_eq!(serde_json::from_value::<DeletionId>(serde_json::to_value(id).unwrap()).unwrap(), id);
    assert!("nope".parse::<DeletionId>().is_err());
    assert!(id.to_string().to_lowercase().parse::<DeletionId>().is_err(), "one spelling");
}

fn selection(event: Option<&str>, from_ms: i64, to_ms: i64, conditions: Vec<Filter>) -> EventSelection {
    EventSelection { event: event.map(str::to_string), from_ms, to_ms, conditions }
}

fn named(seq: u64, time_ms: i64, name: &str, os: &str) -> StoredEvent {
    let mut r = row(seq, "u");
    r.event.event = name.into();
    r.event.time_ms = time_ms;
    r.event.properties.insert("os".into(), serde_json::json!(os));
    r
}

#[test]
fn filtered_deletes_are_refused_clearly_and_hide_what_they_select_after_a_reopen() {
    use tierd_codecs::condition::Op;
    let limits = DeletionLimits { max_request_bytes: 1000, ..LIMITS };
    let dir = tempfile::tempdir().unwrap();
    let cond = |v: &str| Filter { property: "os".into(), op: Op::Eq, value: serde_json::json!(v) };
    {
        let log = DeletionLog::open(Arc::new(Catalog::open(dir.path()).unwrap())).unwrap();
        let refused = |s: EventSelection| log.request("web", s, 0, &limits).unwrap().unwrap_err();
        let e = refused(selection(Some("Junk"), 10, 10, vec![]));
        assert_eq!(e.reason(), "bad_filter");
        assert!(e.to_string().contains("must be before"), "{e}");
        assert!(refused(selection(None, 0, 10, vec![])).to_string().contains("retention"), "a time-only delete");
        assert!(refused(selection(Some(""), 0, 10, vec![])).to_string().contains("event must not be empty"));
        assert_eq!(
            refused(selection(Some("Junk"), 0, 10, vec![cond("a"), cond("b"), cond("c")])),
            DeletionRefused::TooManyConditions { count: 3, max: 2 }
        );
        let empty_property = Filter { property: String::new(), op: Op::Exists, value: serde_json::Value::Null };
        assert!(refused(selection(Some("Junk"), 0, 10, vec![empty_property])).to_string().contains("where[0]"));
        let long = "x".repeat(2000);
        assert_eq!(refused(selection(Some(&long), 0, 10, vec![])).reason(), "too_large");
        assert!(log.list().is_empty() && log.tombstones("web").is_none(), "nothing refused is stored");

        let r = log.request("web", selection(Some("Junk"), 100, 200, vec![cond("ios")]), 0, &limits).unwrap().unwrap();
        assert!(r.distinct_ids.is_empty() && r.events.is_some());
    }
    // The request (and so the tombstone) survives a reopen.
    let log = DeletionLog::open(Arc::new(open_retrying(dir.path()))).unwrap();
    assert_eq!(log.list().len(), 1);
    let f = log.tombstones("web").unwrap();
    assert!(f.matches(&named(0, 150, "Junk", "ios")));
    assert!(!f.matches(&named(0, 150, "Junk", "web")), "a condition that does not hold");
    assert!(!f.matches(&named(0, 150, "Good", "ios")), "another event");
    assert!(!f.matches(&named(0, 250, "Junk", "ios")), "outside the window");
    assert!(!f.matches(&named(1, 150, "Junk", "ios")), "ingested after the request (max_seq 0)");
    assert!(log.tombstones("app").is_none());
}

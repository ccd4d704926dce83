//! Property tests of the GC policy, through the public API only.
//!
//! For arbitrary catalogs (copies retired or moved at any time and generation, overlapping leases, pins, restarts,
//! side segments, cold listings with known and unknown objects, trash entries with and without times), every plan
//! must: never choose for deletion a copy that a live lease, an older pin, the grace period or a recent restart
//! holds, and choose every other copy out of service; give every copy out of service exactly one decision; not
//! depend on input order; orphan only unknown objects past the grace and keep the young ones; report exactly the
//! missing copies; expire and purge exactly what is due; and decide nothing else.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use tierd_policies::gc::{
    ColdObject, ErasedTrash, GcAction, GcDecision, GcInputs, GcPolicy, Lease, LeftService, NeededCopy, OutOfService,
    SideSegment, TrashEntry,
};

type Inputs = GcInputs<u8, String>;
type Decision = GcDecision<u8, String>;

fn time() -> impl Strategy<Value = i64> {
    // A narrow range, so that times often land exactly on a limit; and the ends, where sums must saturate.
    prop_oneof![20 => 0..=300_i64, 1 => Just(i64::MIN), 1 => Just(i64::MAX)]
}

fn wait() -> impl Strategy<Value = i64> {
    prop_oneof![10 => 0..=120_i64, 1 => Just(i64::MAX)]
}

fn policy() -> impl Strategy<Value = GcPolicy> {
    (wait(), wait(), wait(), prop_oneof![Just(0_i64), wait()]).prop_map(
        |(grace_ms, lease_ttl_ms, trash_retention_ms, erase_trash_retention_ms)| GcPolicy {
            grace_ms,
            lease_ttl_ms,
            trash_retention_ms,
            erase_trash_retention_ms,
        },
    )
}

/// Segment ids from a small pool, so that leases, copies and side segments often share them.
fn segment() -> impl Strategy<Value = u8> {
    0..12_u8
}

fn out_of_service() -> impl Strategy<Value = Vec<OutOfService<u8, String>>> {
    let copy = (
        segment(),
        0..1_000_u64,
        time(),
        0..10_u64,
        prop::option::of(prop::collection::vec(segment(), 0..3)),
        any::<bool>(),
    );
    prop::collection::vec(copy, 0..25).prop_map(|copies| {
        copies
            .into_iter()
            .enumerate()
            .map(|(i, (id, bytes, at_ms, generation, replaced_by, erase))| OutOfService {
                id,
                // Every copy has a location of its own, as in the catalog.
                location: format!("c{i}"),
                bytes,
                at_ms,
                generation,
                cause: match replaced_by {
                    Some(replaced_by) => LeftService::Retired { replaced_by },
                    None => LeftService::Moved,
                },
                erase,
            })
            .collect()
    })
}

fn leases() -> impl Strategy<Value = Vec<Lease<u8>>> {
    let lease = (0..6_u8, time(), prop::collection::vec(segment(), 0..4));
    prop::collection::vec(lease, 0..6).prop_map(|leases| {
        leases
            .into_iter()
            .map(|(id, expires_at_ms, segments)| Lease { id: format!("L{id}"), expires_at_ms, segments })
            .collect()
    })
}

fn side_segments() -> impl Strategy<Value = Vec<SideSegment<u8, String>>> {
    let side = (segment(), segment(), 0..3_usize, 0..1_000_u64, time());
    prop::collection::vec(side, 0..4).prop_map(|sides| {
        sides
            .into_iter()
            .enumerate()
            .map(|(i, (id, of, copies, bytes, keep_until_ms))| SideSegment {
                id,
                of,
                locations: (0..copies).map(|j| format!("s{i}.{j}")).collect(),
                bytes,
                keep_until_ms,
            })
            .collect()
    })
}

/// Cold keys from a small pool: the listing (unique keys), the known keys and the needed copies overlap.
fn cold_key() -> impl Strategy<Value = String> {
    (0..20_u8).prop_map(|k| format!("k{k}"))
}

/// The cold tier's listing, the known cold locations and the copies live segments need.
type ColdListing = (Vec<ColdObject<String>>, HashSet<String>, Vec<NeededCopy<u8, String>>);

fn cold() -> impl Strategy<Value = ColdListing> {
    let listed = prop::collection::hash_map(cold_key(), (0..1_000_u64, time()), 0..12).prop_map(|m| {
        m.into_iter().map(|(location, (bytes, written_at_ms))| ColdObject { location, bytes, written_at_ms }).collect()
    });
    let known = prop::collection::hash_set(cold_key(), 0..12);
    let needed = prop::collection::vec((segment(), cold_key(), 0..1_000_u64, 0..100_u64), 0..6).prop_map(|v| {
        v.into_iter().map(|(id, location, bytes, rows)| NeededCopy { id, location, bytes, rows }).collect()
    });
    (listed, known, needed)
}

fn trash() -> impl Strategy<Value = Vec<TrashEntry<String>>> {
    prop::collection::vec((0..1_000_u64, prop::option::weighted(0.8, time())), 0..6).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (bytes, since_ms))| TrashEntry { location: format!("t{i}"), bytes, since_ms })
            .collect()
    })
}

fn erased_trash() -> impl Strategy<Value = Vec<ErasedTrash<u8, String>>> {
    prop::collection::vec((segment(), 0..1_000_u64, time()), 0..6).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (id, bytes, since_ms))| ErasedTrash { id, location: format!("e{i}"), bytes, since_ms })
            .collect()
    })
}

fn inputs() -> impl Strategy<Value = Inputs> {
    let trash = (trash(), erased_trash());
    (time(), leases(), prop::option::of(0..12_u64), out_of_service(), side_segments(), cold(), trash).prop_map(
        |(
            started_at_ms,
            leases,
            oldest_pinned_generation,
            out_of_service,
            side_segments,
            cold,
            (trash, erased_trash),
        )| {
            let (cold_objects, known_cold, needed_cold) = cold;
            GcInputs {
                started_at_ms,
                leases,
                oldest_pinned_generation,
                out_of_service,
                side_segments,
                cold_objects,
                known_cold,
                needed_cold,
                trash,
                erased_trash,
            }
        },
    )
}

/// Some inputs and the same inputs with every list (and every lease's segments) shuffled.
fn inputs_and_shuffled() -> impl Strategy<Value = (Inputs, Inputs)> {
    inputs().prop_flat_map(|i| {
        let leases = i
            .leases
            .iter()
            .map(|l| {
                let l = l.clone();
                Just(l.segments.clone()).prop_shuffle().prop_map(move |segments| Lease { segments, ..l.clone() })
            })
            .collect::<Vec<_>>();
        let shuffled = (
            leases.prop_shuffle(),
            Just(i.out_of_service.clone()).prop_shuffle(),
            Just(i.side_segments.clone()).prop_shuffle(),
            Just(i.cold_objects.clone()).prop_shuffle(),
            Just(i.needed_cold.clone()).prop_shuffle(),
            Just(i.trash.clone()).prop_shuffle(),
            Just(i.erased_trash.clone()).prop_shuffle(),
        );
        let base = i.clone();
        (Just(i), shuffled).prop_map(
            move |(i, (leases, out_of_service, side_segments, cold_objects, needed, trash, erased_trash))| {
                let shuffled = GcInputs {
                    leases,
                    out_of_service,
                    side_segments,
                    cold_objects,
                    needed_cold: needed,
                    trash,
                    erased_trash,
                    ..base.clone()
                };
                (i, shuffled)
            },
        )
    })
}

/// Whether anything may still read the copy: a live lease on its segment, an older pin, the grace, a recent start.
fn held(policy: &GcPolicy, now_ms: i64, i: &Inputs, c: &OutOfService<u8, String>) -> bool {
    let leased = i.leases.iter().any(|l| l.expires_at_ms > now_ms && l.segments.contains(&c.id));
    let pinned = i.oldest_pinned_generation.is_some_and(|g| g < c.generation);
    let in_grace = now_ms < c.at_ms.saturating_add(policy.grace_ms);
    let just_started = now_ms < i.started_at_ms.saturating_add(policy.lease_ttl_ms);
    leased || pinned || in_grace || just_started
}

fn sorted(mut d: Vec<Decision>) -> Vec<Decision> {
    d.sort_by(|a, b| {
        (&a.location, a.action, &a.reason, a.id, a.bytes).cmp(&(&b.location, b.action, &b.reason, b.id, b.bytes))
    });
    d
}

/// The decisions about `location`.
fn about<'a>(d: &'a [Decision], location: &str) -> Vec<&'a Decision> {
    d.iter().filter(|d| d.location == location).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn nothing_a_reader_may_read_is_deleted_and_everything_else_is(policy in policy(), now in time(), i in inputs()) {
        let d = policy.plan(now, &i);
        for c in &i.out_of_service {
            let [decision] = about(&d, &c.location)[..] else {
                panic!("not exactly one decision for {}: {d:?}", c.location);
            };
            prop_assert_eq!((decision.id, decision.bytes), (Some(c.id), c.bytes));
            let expected = if held(&policy, now, &i, c) {
                GcAction::Keep
            } else if c.erase && policy.erase_trash_retention_ms == 0 {
                GcAction::Erase
            } else {
                GcAction::Delete
            };
            prop_assert_eq!(decision.action, expected, "{:?} at {}: {:?}", c, now, decision);
        }
        let copies: HashSet<&str> = i.out_of_service.iter().map(|c| c.location.as_str()).collect();
        for decision in d.iter().filter(|d| matches!(d.action, GcAction::Delete | GcAction::Erase)) {
            prop_assert!(copies.contains(decision.location.as_str()), "only copies out of service: {:?}", decision);
        }
    }

    #[test]
    fn input_order_does_not_change_the_decisions(policy in policy(), now in time(), (i, shuffled) in inputs_and_shuffled()) {
        prop_assert_eq!(sorted(policy.plan(now, &i)), sorted(policy.plan(now, &shuffled)));
    }

    #[test]
    fn unknown_objects_are_orphans_once_old_and_kept_while_young(policy in policy(), now in time(), i in inputs()) {
        let d = policy.plan(now, &i);
        for o in &i.cold_objects {
            let decisions = about(&d, &o.location);
            if i.known_cold.contains(&o.location) {
                prop_assert!(decisions.is_empty(), "a known object is left alone: {:?}", decisions);
                continue;
            }
            let [decision] = decisions[..] else { panic!("not exactly one decision for {}: {d:?}", o.location) };
            let old = now >= o.written_at_ms.saturating_add(policy.grace_ms);
            let expected = if old { GcAction::Orphan } else { GcAction::Keep };
            prop_assert_eq!((decision.action, decision.id, decision.bytes), (expected, None, o.bytes));
        }
        for decision in d.iter().filter(|d| d.action == GcAction::Orphan) {
            prop_assert!(!i.known_cold.contains(&decision.location), "an orphan is never a known copy: {:?}", decision);
            prop_assert!(i.cold_objects.iter().any(|o| o.location == decision.location), "{:?}", decision);
        }
    }

    #[test]
    fn exactly_the_due_and_the_missing_are_acted_on(policy in policy(), now in time(), i in inputs()) {
        let d = policy.plan(now, &i);
        let listed: HashSet<&String> = i.cold_objects.iter().map(|o| &o.location).collect();
        let missing: Vec<(u8, &str)> =
            i.needed_cold.iter().filter(|n| !listed.contains(&n.location)).map(|n| (n.id, n.location.as_str())).collect();
        let reported: Vec<(u8, &str)> = d
            .iter()
            .filter(|d| d.action == GcAction::Missing)
            .map(|d| (d.id.expect("a missing copy names its segment"), d.location.as_str()))
            .collect();
        prop_assert_eq!(&reported, &missing);

        let mut expired: HashMap<&str, u8> = HashMap::new();
        for s in i.side_segments.iter().filter(|s| now >= s.keep_until_ms) {
            expired.extend(s.locations.iter().map(|l| (l.as_str(), s.id)));
        }
        let expiring: HashMap<&str, u8> = d
            .iter()
            .filter(|d| d.action == GcAction::Expire)
            .map(|d| (d.location.as_str(), d.id.expect("an expiry names its segment")))
            .collect();
        prop_assert_eq!(&expiring, &expired);

        let due: Vec<&str> = i
            .trash
            .iter()
            .filter(|t| t.since_ms.is_some_and(|ms| now >= ms.saturating_add(policy.trash_retention_ms)))
            .map(|t| t.location.as_str())
            .collect();
        let purged: Vec<&str> =
            d.iter().filter(|d| d.action == GcAction::Purge && d.id.is_none()).map(|d| d.location.as_str()).collect();
        prop_assert_eq!(&purged, &due);

        // Erased copies in the trash: purged once the erasure retention passed, unless their batch is due anyway.
        let erased_due: Vec<(u8, &str)> = i
            .erased_trash
            .iter()
            .filter(|e| now >= e.since_ms.saturating_add(policy.erase_trash_retention_ms))
            .filter(|e| now < e.since_ms.saturating_add(policy.trash_retention_ms))
            .map(|e| (e.id, e.location.as_str()))
            .collect();
        let erased_purged: Vec<(u8, &str)> = d
            .iter()
            .filter(|d| d.action == GcAction::Purge && d.id.is_some())
            .map(|d| (d.id.expect("some"), d.location.as_str()))
            .collect();
        prop_assert_eq!(&erased_purged, &erased_due);

        let unknown = i.cold_objects.iter().filter(|o| !i.known_cold.contains(&o.location)).count();
        let expected =
            i.out_of_service.len() + expiring.len() + unknown + missing.len() + due.len() + erased_due.len();
        prop_assert_eq!(d.len(), expected, "nothing else is decided: {:?}", d);
    }
}

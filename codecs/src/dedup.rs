//! Dedup: two events are the same when project, event name, distinct_id, time (ms) and `$insert_id` are equal;
//! the copy ingested last (highest sequence) wins.

use crate::event::{Event, StoredEvent};
use crate::hash::KeyHasher;

/// A 128-bit hash of the dedup key `(project, event, distinct_id, time_ms, insert_id)`. Fields are length-prefixed
/// before hashing so that no two different keys share an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupKey(pub u128);

/// The dedup key of `event` in `project`.
pub fn dedup_key(project: &str, event: &Event) -> DedupKey {
    let mut hasher = KeyHasher::new();
    hasher
        .bytes(project.as_bytes())
        .bytes(event.event.as_bytes())
        .bytes(event.distinct_id.as_bytes())
        .i64(event.time_ms)
        .bytes(event.insert_id.as_bytes());
    DedupKey(hasher.finish())
}

/// Sorts `events` by dedup key (then by sequence) and keeps one copy per key, the one with the highest `seq`.
/// Returns how many were removed. Idempotent.
///
/// The result is in dedup-key order with one event per key, so it does not depend on the input order as long as
/// sequence numbers are unique (they are: the hot tier assigns each ingested event its own).
pub fn dedup_sorted(project: &str, events: &mut Vec<StoredEvent>) -> usize {
    let before = events.len();
    // Hash each event once, not once per comparison.
    let mut keyed: Vec<(DedupKey, StoredEvent)> = events.drain(..).map(|e| (dedup_key(project, &e.event), e)).collect();
    // Key ascending, then seq descending, so the first of each run of equal keys is the copy to keep.
    keyed.sort_by(|(ka, a), (kb, b)| ka.cmp(kb).then(b.seq.cmp(&a.seq)));
    keyed.dedup_by(|(later, _), (first, _)| later == first);
    events.extend(keyed.into_iter().map(|(_, e)| e));
    before - events.len()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Map};
    use std::collections::BTreeMap;

    use super::*;

    fn event(name: &str, distinct_id: &str, time_ms: i64, insert_id: &str) -> Event {
        Event {
            event: name.to_owned(),
            time_ms,
            distinct_id: distinct_id.to_owned(),
            insert_id: insert_id.to_owned(),
            properties: Map::new(),
        }
    }

    #[test]
    fn key_depends_on_every_field_and_nothing_else() {
        let base = event("signup", "u1", 1_700_000_000_000, "i1");
        let key = dedup_key("p", &base);
        assert_ne!(key, dedup_key("q", &base));
        assert_ne!(key, dedup_key("p", &event("login", "u1", 1_700_000_000_000, "i1")));
        assert_ne!(key, dedup_key("p", &event("signup", "u2", 1_700_000_000_000, "i1")));
        assert_ne!(key, dedup_key("p", &event("signup", "u1", 1_700_000_000_001, "i1")));
        assert_ne!(key, dedup_key("p", &event("signup", "u1", 1_700_000_000_000, "i2")));
        // Properties are not part of the key: a re-send with changed properties replaces the earlier copy.
        let mut changed = base.clone();
        changed.properties.insert("plan".to_owned(), json!("pro"));
        assert_eq!(key, dedup_key("p", &changed));
    }

    #[test]
    fn key_fields_are_length_prefixed() {
        assert_ne!(dedup_key("ab", &event("c", "", 0, "")), dedup_key("a", &event("bc", "", 0, "")));
        assert_ne!(dedup_key("p", &event("e", "ab", 0, "")), dedup_key("p", &event("e", "a", 0, "b")));
        assert_ne!(dedup_key("p", &event("e", "", 0, "x")), dedup_key("p", &event("e", "x", 0, "")));
    }

    #[test]
    fn keeps_the_highest_sequence() {
        let copy = |seq: u64, version: i64| {
            let mut e = event("signup", "u1", 1_700_000_000_000, "i1");
            e.properties.insert("version".to_owned(), json!(version));
            StoredEvent { seq, event: e }
        };
        let other = StoredEvent { seq: 5, event: event("login", "u1", 1_700_000_000_000, "i9") };
        let mut events = vec![copy(7, 1), other.clone(), copy(9, 2), copy(3, 0)];
        assert_eq!(dedup_sorted("p", &mut events), 2);
        assert_eq!(events.len(), 2);
        assert!(events.contains(&copy(9, 2)));
        assert!(events.contains(&other));
        assert_eq!(dedup_sorted("p", &mut events), 0);
    }

    #[test]
    fn empty_input() {
        let mut events = Vec::new();
        assert_eq!(dedup_sorted("p", &mut events), 0);
        assert!(events.is_empty());
    }

    /// Events drawn from a small pool of dedup keys (so copies are common), each with its own seq and a
    /// property that tells the copies apart.
    fn stored_events() -> impl Strategy<Value = Vec<StoredEvent>> {
        let identity = (0..3usize, 0..3usize, 0..3i64, 0..3usize);
        prop::collection::vec((identity, any::<i32>()), 0..40).prop_flat_map(|rows| {
            let n = rows.len() as u64;
            // Unique sequence numbers, in shuffled order.
            (Just(rows), Just((0..n).map(|s| s * 3 + 1).collect::<Vec<_>>()).prop_shuffle()).prop_map(|(rows, seqs)| {
                rows.into_iter()
                    .zip(seqs)
                    .map(|(((name, user, time, id), payload), seq)| {
                        let mut e = event(["a", "b", "ab"][name], ["", "u", "ua"][user], time, ["", "x", "y"][id]);
                        e.properties.insert("payload".to_owned(), json!(payload));
                        StoredEvent { seq, event: e }
                    })
                    .collect()
            })
        })
    }

    fn identity(e: &Event) -> (String, String, i64, String) {
        (e.event.clone(), e.distinct_id.clone(), e.time_ms, e.insert_id.clone())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn dedup_keeps_exactly_the_latest_copy_of_each_key(
            (events, shuffled) in stored_events().prop_flat_map(|e| (Just(e.clone()), Just(e).prop_shuffle()))
        ) {
            // Model: for each identity, the copy with the highest seq.
            let mut latest: BTreeMap<(String, String, i64, String), StoredEvent> = BTreeMap::new();
            for e in &events {
                let slot = latest.entry(identity(&e.event)).or_insert_with(|| e.clone());
                if e.seq > slot.seq {
                    *slot = e.clone();
                }
            }

            let mut deduped = events.clone();
            let removed = dedup_sorted("proj", &mut deduped);
            prop_assert_eq!(removed, events.len() - latest.len());
            let mut by_seq = deduped.clone();
            by_seq.sort_by_key(|e| e.seq);
            let mut expected: Vec<StoredEvent> = latest.into_values().collect();
            expected.sort_by_key(|e| e.seq);
            prop_assert_eq!(by_seq, expected);

            // Sorted by key, and the same whatever the input order.
            let keys: Vec<DedupKey> = deduped.iter().map(|e| dedup_key("proj", &e.event)).collect();
            prop_assert!(keys.windows(2).all(|w| w[0] < w[1]));
            let mut from_shuffled = shuffled;
            dedup_sorted("proj", &mut from_shuffled);
            prop_assert_eq!(&from_shuffled, &deduped);

            // Idempotent.
            let mut again = deduped.clone();
            prop_assert_eq!(dedup_sorted("proj", &mut again), 0);
            prop_assert_eq!(again, deduped);
        }
    }
}

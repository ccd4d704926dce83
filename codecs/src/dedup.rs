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
    dedup_key_of(project, &event.event, &event.distinct_id, event.time_ms, &event.insert_id)
}

/// [`dedup_key`] of an event given by its fields (one whose properties were not parsed).
pub fn dedup_key_of(project: &str, event: &str, distinct_id: &str, time_ms: i64, insert_id: &str) -> DedupKey {
    let mut hasher = KeyHasher::new();
    hasher
        .bytes(project.as_bytes())
        .bytes(event.as_bytes())
        .bytes(distinct_id.as_bytes())
        .i64(time_ms)
        .bytes(insert_id.as_bytes());
    DedupKey(hasher.finish())
}

/// Sorts `events` by dedup key (then by sequence) and keeps one copy per key, the one with the highest `seq`.
/// Returns how many were removed. Idempotent.
///
/// The result is in dedup-key order with one event per key, so it does not depend on the input order as long as
/// sequence numbers are unique (they are: the hot tier assigns each ingested event its own).
pub fn dedup_sorted(project: &str, events: &mut Vec<StoredEvent>) -> usize {
    let before = events.len();
    let mut keyed = sorted_by_key(project, events.drain(..));
    keyed.dedup_by(|(later, _), (first, _)| later == first);
    events.extend(keyed.into_iter().map(|(_, e)| e));
    before - events.len()
}

/// Dedup that loses nothing: splits `events` into the copies [`dedup_sorted`] keeps and every other copy.
///
/// `kept` is exactly what [`dedup_sorted`] leaves (dedup-key order, one event per key, the highest `seq`);
/// `removed` holds every other copy, in dedup-key order and by descending `seq` within a key. Together they are
/// the input, so the removed copies can be written to a side segment and a dedup that turns out wrong can be rolled
/// back. `dedup_split(kept)` removes nothing.
pub fn dedup_split(project: &str, events: Vec<StoredEvent>) -> (Vec<StoredEvent>, Vec<StoredEvent>) {
    let keyed = sorted_by_key(project, events);
    let mut kept: Vec<StoredEvent> = Vec::with_capacity(keyed.len());
    let mut removed = Vec::new();
    let mut last: Option<DedupKey> = None;
    for (key, event) in keyed {
        if last == Some(key) {
            removed.push(event);
        } else {
            kept.push(event);
            last = Some(key);
        }
    }
    (kept, removed)
}

/// Events with their dedup keys, sorted by key ascending, then seq descending, so the first of each run of equal
/// keys is the copy to keep. Each event is hashed once, not once per comparison.
fn sorted_by_key(project: &str, events: impl IntoIterator<Item = StoredEvent>) -> Vec<(DedupKey, StoredEvent)> {
    let mut keyed: Vec<(DedupKey, StoredEvent)> =
        events.into_iter().map(|e| (dedup_key(project, &e.event), e)).collect();
    keyed.sort_by(|(ka, a), (kb, b)| ka.cmp(kb).then(b.seq.cmp(&a.seq)));
    keyed
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

    /// One copy of the same event (one dedup key), told apart by its sequence and a `version` property.
    fn copy(seq: u64, version: i64) -> StoredEvent {
        let mut e = event("signup", "u1", 1_700_000_000_000, "i1");
        e.properties.insert("version".to_owned(), json!(version));
        StoredEvent { seq, event: e }
    }

    #[test]
    fn keeps_the_highest_sequence() {
        let other = StoredEvent { seq: 5, event: event("login", "u1", 1_700_000_000_000, "i9") };
        let mut events = vec![copy(7, 1), other.clone(), copy(9, 2), copy(3, 0)];
        assert_eq!(dedup_sorted("p", &mut events), 2);
        assert_eq!(events.len(), 2);
        assert!(events.contains(&copy(9, 2)));
        assert!(events.contains(&other));
        assert_eq!(dedup_sorted("p", &mut events), 0);
    }

    #[test]
    fn split_keeps_the_highest_sequence_and_returns_the_rest() {
        let other = StoredEvent { seq: 5, event: event("login", "u1", 1_700_000_000_000, "i9") };
        let (kept, removed) = dedup_split("p", vec![copy(7, 1), other.clone(), copy(9, 2), copy(3, 0)]);
        assert_eq!(kept.len(), 2);
        assert!(kept.contains(&copy(9, 2)) && kept.contains(&other));
        // Removed copies by descending sequence.
        assert_eq!(removed, [copy(7, 1), copy(3, 0)]);
        assert_eq!(dedup_split("p", Vec::new()), (Vec::new(), Vec::new()));
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

        #[test]
        fn split_keeps_one_copy_per_key_and_loses_nothing(
            (events, shuffled) in stored_events().prop_flat_map(|e| (Just(e.clone()), Just(e).prop_shuffle()))
        ) {
            let (kept, removed) = dedup_split("proj", events.clone());

            // `kept` is exactly what `dedup_sorted` keeps, in the same order, whatever the input order.
            let mut deduped = events.clone();
            dedup_sorted("proj", &mut deduped);
            prop_assert_eq!(&kept, &deduped);
            let (kept_shuffled, removed_shuffled) = dedup_split("proj", shuffled);
            prop_assert_eq!(&kept_shuffled, &kept);
            prop_assert_eq!(&removed_shuffled, &removed);

            // One copy per key, the highest seq: every removed copy has a kept copy of its key with a higher seq.
            let latest: BTreeMap<(String, String, i64, String), u64> =
                kept.iter().map(|e| (identity(&e.event), e.seq)).collect();
            prop_assert_eq!(latest.len(), kept.len());
            for e in &removed {
                let winner = latest.get(&identity(&e.event)).copied();
                prop_assert!(winner.is_some_and(|seq| seq > e.seq), "removed {:?} has no later kept copy", e);
            }

            // kept + removed = input, as multisets (sequences are unique).
            let mut all: Vec<StoredEvent> = kept.iter().chain(&removed).cloned().collect();
            all.sort_by_key(|e| e.seq);
            let mut input = events;
            input.sort_by_key(|e| e.seq);
            prop_assert_eq!(all, input);

            // Idempotent on `kept`.
            prop_assert_eq!(dedup_split("proj", kept.clone()), (kept, Vec::new()));
        }
    }
}

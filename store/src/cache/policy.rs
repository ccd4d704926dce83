//! The cache's eviction policy, pure: which entries to keep within a byte bound. No I/O, no clock.
//!
//! **Segmented LRU** (SLRU), weighted by bytes. An entry enters the *probation* segment; a hit on it moves it to the
//! *protected* segment (at most [`PROTECTED_SHARE`] of the bound; when it overflows, its least recently used entries
//! go back to probation's most recent end). Room is made by evicting probation's least recently used entries first,
//! and protected ones only when probation holds nothing else.
//!
//! Why SLRU: it keeps what is read *recently and more than once*. A block read once (one query over an old day, an
//! export) stays in probation and is the first to go, so a large one-off read cannot flush the blocks that queries
//! keep coming back to (footers and page indexes, `time` and `event` chunks of recent days): plain LRU would let it.
//! The alternatives cost more than they give here: 2Q needs a ghost list of evicted keys, TinyLFU a frequency sketch
//! with aging, and both are tuned for millions of small entries; this cache holds at most a few thousand 1 MiB
//! blocks per GiB, where SLRU's two lists are enough and easy to check (see the property tests).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Share of the bound the protected segment may hold (the rest is probation's, at least): 80%, as in the SLRU
/// main space of Caffeine's W-TinyLFU.
pub const PROTECTED_SHARE: f64 = 0.8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Probation,
    Protected,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    segment: Segment,
    /// Position in its segment's recency order (higher = more recent).
    tick: u64,
    bytes: u64,
}

/// What an insert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted<K> {
    /// Whether the entry is now in the cache (an entry larger than the bound, or any entry of a disabled cache, is
    /// not admitted).
    pub admitted: bool,
    /// Entries evicted to make room, least recently used first.
    pub evicted: Vec<K>,
}

/// Byte-weighted segmented LRU over keys `K`; see the module documentation.
#[derive(Debug, Clone)]
pub struct Slru<K> {
    max_bytes: u64,
    protected_max: u64,
    entries: HashMap<K, Entry>,
    probation: BTreeMap<u64, K>,
    protected: BTreeMap<u64, K>,
    probation_bytes: u64,
    protected_bytes: u64,
    tick: u64,
}

impl<K: Copy + Eq + Hash> Slru<K> {
    /// A policy holding at most `max_bytes`; 0 admits nothing.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            protected_max: (max_bytes as f64 * PROTECTED_SHARE) as u64,
            entries: HashMap::new(),
            probation: BTreeMap::new(),
            protected: BTreeMap::new(),
            probation_bytes: 0,
            protected_bytes: 0,
            tick: 0,
        }
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes of every entry; never above [`Slru::max_bytes`].
    pub fn bytes(&self) -> u64 {
        self.probation_bytes + self.protected_bytes
    }

    /// Bytes of the protected segment; never above [`PROTECTED_SHARE`] of the bound.
    pub fn protected_bytes(&self) -> u64 {
        self.protected_bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every key held, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.keys()
    }

    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Records a read of `key`: `true` (a hit) if it is cached, which moves it to the protected segment's most
    /// recent end (and may demote protected entries to probation); `false` (a miss) otherwise.
    pub fn access(&mut self, key: &K) -> bool {
        let Some(entry) = self.entries.get(key).copied() else { return false };
        self.unlink(key, entry);
        self.link(*key, Segment::Protected, entry.bytes);
        self.demote_overflow();
        true
    }

    /// Moves protected entries, least recent first, to probation's most recent end until the protected segment
    /// fits its share.
    fn demote_overflow(&mut self) {
        while self.protected_bytes > self.protected_max {
            let (_, oldest) = self.protected.pop_first().expect("protected bytes > 0 means an entry");
            let entry = self.entries[&oldest];
            self.protected_bytes -= entry.bytes;
            self.link(oldest, Segment::Probation, entry.bytes);
        }
    }

    /// Adds `key` (of `bytes` bytes) at probation's most recent end, evicting what must go to stay within the
    /// bound; the new entry itself is never evicted to make its own room. A key already cached is replaced (its
    /// segment kept, its recency refreshed).
    pub fn insert(&mut self, key: K, bytes: u64) -> Inserted<K> {
        if bytes > self.max_bytes || self.max_bytes == 0 {
            let evicted = self.remove(&key).map(|_| vec![key]).unwrap_or_default();
            return Inserted { admitted: false, evicted };
        }
        let segment = match self.entries.get(&key).copied() {
            Some(old) => {
                self.unlink(&key, old);
                old.segment
            }
            None => Segment::Probation,
        };
        self.link(key, segment, bytes);
        self.demote_overflow();
        let mut evicted = Vec::new();
        while self.bytes() > self.max_bytes {
            let victim = self
                .probation
                .values()
                .chain(self.protected.values())
                .find(|k| **k != key)
                .copied()
                .expect("the other entries hold more than the overflow: the new entry fits the bound alone");
            self.remove(&victim);
            evicted.push(victim);
        }
        Inserted { admitted: true, evicted }
    }

    /// Drops `key`; its size if it was cached.
    pub fn remove(&mut self, key: &K) -> Option<u64> {
        let entry = self.entries.get(key).copied()?;
        self.unlink(key, entry);
        Some(entry.bytes)
    }

    fn link(&mut self, key: K, segment: Segment, bytes: u64) {
        self.tick += 1;
        let tick = self.tick;
        match segment {
            Segment::Probation => {
                self.probation.insert(tick, key);
                self.probation_bytes += bytes;
            }
            Segment::Protected => {
                self.protected.insert(tick, key);
                self.protected_bytes += bytes;
            }
        }
        self.entries.insert(key, Entry { segment, tick, bytes });
    }

    fn unlink(&mut self, key: &K, entry: Entry) {
        match entry.segment {
            Segment::Probation => {
                self.probation.remove(&entry.tick);
                self.probation_bytes -= entry.bytes;
            }
            Segment::Protected => {
                self.protected.remove(&entry.tick);
                self.protected_bytes -= entry.bytes;
            }
        }
        self.entries.remove(key);
    }

    /// Checks the internal invariants (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let sum = |m: &BTreeMap<u64, K>| m.values().map(|k| self.entries[k].bytes).sum::<u64>();
        assert_eq!(sum(&self.probation), self.probation_bytes);
        assert_eq!(sum(&self.protected), self.protected_bytes);
        assert_eq!(self.probation.len() + self.protected.len(), self.entries.len());
        assert!(self.bytes() <= self.max_bytes, "{} > {}", self.bytes(), self.max_bytes);
        assert!(self.protected_bytes <= self.protected_max);
        for (tick, k) in self.probation.iter().chain(&self.protected) {
            assert_eq!(self.entries[k].tick, *tick);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u64),
        Access(u8),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (any::<u8>(), 1..400u64).prop_map(|(k, b)| Op::Insert(k % 40, b)),
            4 => any::<u8>().prop_map(|k| Op::Access(k % 40)),
            1 => any::<u8>().prop_map(|k| Op::Remove(k % 40)),
        ]
    }

    proptest! {
        /// Against a model (the set of keys inserted and neither evicted nor removed): the bound always holds,
        /// every access is a hit exactly when the model holds the key, and the policy reports every eviction.
        #[test]
        fn bounded_and_accounted(max in 0..2_000u64, ops in prop::collection::vec(op(), 1..300)) {
            let mut slru = Slru::new(max);
            let mut model: HashMap<u8, u64> = HashMap::new();
            let (mut hits, mut misses) = (0u64, 0u64);
            for op in ops {
                match op {
                    Op::Insert(k, b) => {
                        let r = slru.insert(k, b);
                        for e in &r.evicted {
                            prop_assert!(model.remove(e).is_some() || *e == k, "evicted {} it did not hold", e);
                        }
                        prop_assert_eq!(r.admitted, b <= max && max > 0);
                        if r.admitted {
                            prop_assert!(!r.evicted.contains(&k));
                            model.insert(k, b);
                        } else {
                            model.remove(&k);
                        }
                    }
                    Op::Access(k) => {
                        let hit = slru.access(&k);
                        prop_assert_eq!(hit, model.contains_key(&k));
                        if hit { hits += 1 } else { misses += 1 }
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(slru.remove(&k), model.remove(&k));
                    }
                }
                slru.check();
                prop_assert_eq!(slru.len(), model.len());
                prop_assert_eq!(slru.bytes(), model.values().sum::<u64>());
                prop_assert!(slru.bytes() <= max);
            }
            let _ = (hits, misses);
        }
    }

    /// Blocks read again survive a long run of blocks read once (a scan); under plain LRU they would not.
    #[test]
    fn a_scan_does_not_flush_the_blocks_read_twice() {
        let mut slru = Slru::new(100);
        for k in 0..5u32 {
            slru.insert(k, 10);
            assert!(slru.access(&k));
        }
        for k in 100..1_000u32 {
            slru.insert(k, 10);
        }
        for k in 0..5u32 {
            assert!(slru.access(&k), "block {k} read twice was evicted by a scan");
        }
        slru.check();
        assert_eq!(slru.bytes(), 100);
    }

    /// The protected segment is bounded too: the least recent protected entries fall back to probation and are
    /// evicted from there.
    #[test]
    fn protected_entries_fall_back_to_probation() {
        let mut slru = Slru::new(100);
        for k in 0..10u32 {
            slru.insert(k, 10);
            slru.access(&k);
        }
        assert_eq!(slru.protected_bytes(), 80);
        slru.check();
        // Two entries were demoted; new inserts evict them first (least recently used probation entries).
        let r = slru.insert(10, 10);
        assert_eq!(r.evicted, vec![0]);
        let r = slru.insert(11, 20);
        assert_eq!(r.evicted, vec![1, 10]);
        assert!(slru.contains(&2));
    }

    #[test]
    fn entries_too_big_or_a_disabled_cache_are_not_admitted() {
        let mut slru = Slru::new(100);
        assert!(!slru.insert(1u32, 101).admitted);
        assert!(slru.insert(1u32, 100).admitted);
        let r = slru.insert(2u32, 60);
        assert_eq!((r.admitted, r.evicted), (true, vec![1]));
        let mut off = Slru::new(0);
        assert!(!off.insert(1u32, 1).admitted);
        assert!(!off.access(&1));
        assert!(off.is_empty());
    }
}

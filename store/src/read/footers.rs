//! The parsed Parquet footers and page indexes of recently read segment copies, kept in memory so that a query
//! over a segment read a moment ago goes straight to the column chunks it needs.
//!
//! Why: a block read of a columnar copy (`super::blocks`) starts with the last block (the footer's length), then
//! the blocks holding the footer and the page index, each read and crc-checked, then parses them; for a selective
//! query (`event = Purchase`) over small segments that is most of the work per segment (BENCHMARKS.md, "Queries").
//!
//! What it keeps, and why that is safe: a [`ColumnarFooter`] is parsed only from blocks verified against the
//! catalog's crc32c, and a copy's bytes never change (hot files and cold objects are written create-only at fresh
//! locations, never rewritten), so a parsed footer stays that copy's. Entries are keyed by the copy's tier and
//! location plus its size and whole-copy crc32c from the catalog, so a record naming other bytes never meets an
//! old entry. The column chunks a read then needs are read and verified block by block as always: only the
//! footer's bytes are not read again.
//!
//! Bounds: at most `cache.footer_max_bytes` of footers (each counted at the parquet crate's estimate of its
//! in-memory size), least recently used first out; a footer larger than the whole bound is not kept (counted as
//! refused). 0 turns the cache off. Metrics: `tierd_footer_cache_hits_total`, `tierd_footer_cache_misses_total`,
//! `tierd_footer_cache_evictions_total`, `tierd_footer_cache_refused_total`, `tierd_footer_cache_bytes`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tierd_codecs::columnar::ColumnarFooter;

use crate::catalog::SegmentMeta;

/// What identifies the bytes of one copy: its tier and location, and the catalog's size and crc32c of them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CopyKey {
    tier: &'static str,
    location: String,
    bytes: u64,
    checksum: u32,
}

impl CopyKey {
    pub(crate) fn new(meta: &SegmentMeta, tier: &'static str, location: &str) -> Self {
        Self { tier, location: location.to_string(), bytes: meta.bytes, checksum: meta.checksum }
    }
}

/// Counts of what the cache did, for tests (the same go to the metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FooterCacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub refused: u64,
    /// Bytes held now.
    pub bytes: u64,
    /// Footers held now.
    pub entries: u64,
}

/// A bounded LRU of parsed footers; see the module documentation. Shared by every reader of a [`super::SegmentSource`].
pub struct FooterCache {
    max_bytes: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CopyKey, Entry>,
    /// Last use -> key, oldest first.
    order: BTreeMap<u64, CopyKey>,
    tick: u64,
    stats: FooterCacheStats,
}

struct Entry {
    footer: Arc<ColumnarFooter>,
    bytes: u64,
    used: u64,
}

impl FooterCache {
    /// Holds at most `max_bytes` of footers; 0: holds none (every read parses its footer).
    pub fn new(max_bytes: u64) -> Self {
        Self { max_bytes, inner: Mutex::new(Inner::default()) }
    }

    pub fn stats(&self) -> FooterCacheStats {
        self.inner.lock().stats
    }

    /// The footer of copy `key`, if held (it becomes the most recently used).
    pub(crate) fn get(&self, key: &CopyKey) -> Option<Arc<ColumnarFooter>> {
        if self.max_bytes == 0 {
            return None;
        }
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let Some(entry) = inner.entries.get_mut(key) else {
            inner.stats.misses += 1;
            metrics::counter!("tierd_footer_cache_misses_total").increment(1);
            return None;
        };
        let (old, footer) = (std::mem::replace(&mut entry.used, tick), entry.footer.clone());
        let key = inner.order.remove(&old).expect("every entry is in the order");
        inner.order.insert(tick, key);
        inner.stats.hits += 1;
        metrics::counter!("tierd_footer_cache_hits_total").increment(1);
        Some(footer)
    }

    /// Keeps `footer`, parsed from verified blocks of copy `key`, evicting the least recently used footers to stay
    /// within the bound; a footer larger than the bound is not kept.
    pub(crate) fn put(&self, key: CopyKey, footer: Arc<ColumnarFooter>) {
        if self.max_bytes == 0 {
            return;
        }
        let bytes = footer.memory_size() as u64;
        let mut inner = self.inner.lock();
        if bytes > self.max_bytes {
            inner.stats.refused += 1;
            metrics::counter!("tierd_footer_cache_refused_total").increment(1);
            return;
        }
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(old) = inner.entries.insert(key.clone(), Entry { footer, bytes, used: tick }) {
            // Two readers parsed the same footer at once: the newer one replaces it.
            inner.order.remove(&old.used);
            inner.stats.bytes -= old.bytes;
        }
        inner.order.insert(tick, key);
        inner.stats.bytes += bytes;
        while inner.stats.bytes > self.max_bytes {
            let (_, oldest) = inner.order.pop_first().expect("bytes held means entries held");
            let gone = inner.entries.remove(&oldest).expect("every key in the order is an entry");
            inner.stats.bytes -= gone.bytes;
            inner.stats.evictions += 1;
            metrics::counter!("tierd_footer_cache_evictions_total").increment(1);
        }
        inner.stats.entries = inner.entries.len() as u64;
        metrics::gauge!("tierd_footer_cache_bytes").set(inner.stats.bytes as f64);
    }
}

impl std::fmt::Debug for FooterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FooterCache").field("max_bytes", &self.max_bytes).field("stats", &self.stats()).finish()
    }
}

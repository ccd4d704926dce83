//! The catalog's database: opening it, the one commit path every change takes, and the pins of in-process readers.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use sled::transaction::{ConflictableTransactionError, Transactional};

use super::change::CatalogChange;
use super::intents::Intent;
use super::record::SegmentMeta;
use super::schema::{self, decode, encode, sled_err, transaction_err, KEY_GENERATION};
use super::snapshot::CatalogSnapshot;
use crate::clock::Stopwatch;
use crate::error::{Result, StoreError};

/// The catalog of one node: sled on disk, a snapshot in memory.
pub struct Catalog {
    db: sled::Db,
    meta: sled::Tree,
    segments: sled::Tree,
    /// Leases, in memory ([`super::leases`]).
    pub(super) leases: super::leases::LeaseTable,
    /// The `leases` tree earlier releases wrote, emptied by the first lease pruning with room on the disk.
    pub(super) stored_leases: sled::Tree,
    pub(super) intents: sled::Tree,
    write_lock: Mutex<()>,
    snapshot: ArcSwap<CatalogSnapshot>,
    pins: Arc<Mutex<std::collections::BTreeMap<u64, usize>>>,
    /// The database's directory (its file system is the one whose free space [`Catalog::check_headroom`] reads).
    dir: std::path::PathBuf,
    /// Free bytes every write to sled leaves on its disk (`catalog.min_free_bytes`; 0: no check).
    headroom: std::sync::atomic::AtomicU64,
    /// Tests: the next commit's flush fails after its transaction was applied (an ambiguous commit).
    #[cfg(test)]
    pub(crate) fail_next_commit_flush: std::sync::atomic::AtomicBool,
    /// Tests: the simulated machine the catalog's disk belongs to; its flushes count as its durable steps and fail
    /// once its power is off ([`crate::durable::PowerLossFs::watch_catalog`]).
    #[cfg(test)]
    pub(crate) power: Mutex<Option<crate::durable::PowerLossFs>>,
}

/// A snapshot held by an in-process reader; while it lives, segments retired after its generation are not deleted.
#[derive(Debug)]
pub struct Pinned {
    snapshot: Arc<CatalogSnapshot>,
    pins: Arc<Mutex<std::collections::BTreeMap<u64, usize>>>,
}

impl std::ops::Deref for Pinned {
    type Target = CatalogSnapshot;
    fn deref(&self) -> &CatalogSnapshot {
        &self.snapshot
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let mut pins = self.pins.lock();
        let g = self.snapshot.generation();
        if let Some(n) = pins.get_mut(&g) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&g);
            }
        }
    }
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("generation", &self.snapshot().generation()).finish()
    }
}

impl Catalog {
    /// Opens (or creates) the catalog in `dir` and loads it into memory; a catalog of an older schema is migrated.
    pub fn open(dir: &Path) -> Result<Self> {
        // sled 0.34 can panic on damaged files instead of failing: that is an error opening the catalog here, so
        // the daemon says what is wrong (and how to rebuild) instead of dying with a backtrace.
        let db = std::panic::catch_unwind(|| sled::Config::new().path(dir).open())
            .map_err(|panic| {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "sled panicked".into());
                StoreError::Catalog { op: "open", source: sled::Error::ReportableBug(message) }
            })?
            .map_err(sled_err("open"))?;
        let trees = schema::open(&db)?;
        let generation = match trees.meta.get(KEY_GENERATION).map_err(sled_err("read the generation"))? {
            None => 0,
            Some(v) => schema::u64_value(KEY_GENERATION, &v)?,
        };
        let mut all = Vec::new();
        for kv in trees.segments.iter() {
            let (k, v) = kv.map_err(sled_err("read segments"))?;
            all.push(decode::<SegmentMeta>("segment record", &k, &v)?);
        }
        let snapshot = CatalogSnapshot::build(generation, all);
        Ok(Self {
            db,
            meta: trees.meta,
            segments: trees.segments,
            leases: Default::default(),
            stored_leases: trees.leases,
            intents: trees.intents,
            write_lock: Mutex::new(()),
            snapshot: ArcSwap::from_pointee(snapshot),
            pins: Arc::default(),
            dir: dir.to_path_buf(),
            headroom: std::sync::atomic::AtomicU64::new(0),
            #[cfg(test)]
            fail_next_commit_flush: Default::default(),
            #[cfg(test)]
            power: Mutex::new(None),
        })
    }

    /// Keeps `bytes` free on the catalog's disk: below it, every write to sled is refused before it starts
    /// ([`Catalog::check_headroom`]). sled 0.34 keeps a failed log write as a global error that fails every later
    /// operation, so it must never meet a full disk (see ARCHITECTURE.md, "Disk full").
    pub fn set_min_free_bytes(&self, bytes: u64) {
        self.headroom.store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Fails with [`StoreError::DiskReserve`] (counted under `what`), before anything is written, when the
    /// catalog's disk has less free space than `catalog.min_free_bytes`. Every tierd write to sled calls it first.
    pub fn check_headroom(&self, what: &'static str) -> Result<()> {
        let headroom = self.headroom.load(std::sync::atomic::Ordering::Relaxed);
        crate::space::check(&self.dir, what, crate::space::CATALOG_HEADROOM, headroom, 0, "catalog.min_free_bytes")
    }

    /// The current snapshot: one generation, whole.
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.snapshot.load_full()
    }

    /// The current snapshot, pinned for the life of the returned value (see [`Pinned`]).
    pub fn pin(&self) -> Pinned {
        let mut pins = self.pins.lock();
        let snapshot = self.snapshot.load_full();
        *pins.entry(snapshot.generation()).or_default() += 1;
        Pinned { snapshot, pins: self.pins.clone() }
    }

    /// The oldest generation an in-process reader still holds.
    pub fn oldest_pinned_generation(&self) -> Option<u64> {
        self.pins.lock().keys().next().copied()
    }

    /// Records intents durably (one flush) before their copies are written.
    pub fn record_intents(&self, intents: &[Intent]) -> Result<()> {
        self.check_headroom("intent")?;
        for intent in intents {
            self.intents
                .insert(Intent::key(&intent.location).as_bytes(), encode("intent", intent)?)
                .map_err(|source| StoreError::Catalog { op: "record an intent", source })?;
        }
        self.flush()
    }

    /// Every intent not yet committed or rolled back.
    pub fn intents(&self) -> Result<Vec<Intent>> {
        let mut out = Vec::new();
        for kv in self.intents.iter() {
            let (k, v) = kv.map_err(|source| StoreError::Catalog { op: "read intents", source })?;
            out.push(decode("intent", &k, &v)?);
        }
        Ok(out)
    }

    /// Applies `changes` atomically (one sled transaction), bumps the generation, makes it durable (fsync) and
    /// publishes the new snapshot. Returns the new generation. `created_generation`/`updated_generation` of put
    /// records are filled in here.
    /// Refused ([`StoreError::DiskReserve`], nothing written) below the catalog's headroom.
    pub fn commit(&self, changes: Vec<CatalogChange>) -> Result<u64> {
        self.check_headroom("commit")?;
        let started = Stopwatch::start();
        let _guard = self.write_lock.lock();
        let current = self.snapshot.load_full();
        for c in &changes {
            if let CatalogChange::ExpectAbsent(id) = c {
                if let Some(m) = current.get(id) {
                    return Err(StoreError::StalePlan(format!(
                        "segment {id} is in the catalog (generation {})",
                        m.updated_generation
                    )));
                }
            }
            if let CatalogChange::Expect { id, updated_generation } = c {
                let found = current.get(id).map(|m| m.updated_generation);
                if found != Some(*updated_generation) {
                    return Err(StoreError::StalePlan(format!(
                        "segment {id} changed since it was read (generation {updated_generation}, now {})",
                        found.map_or("removed".to_string(), |g| g.to_string())
                    )));
                }
            }
        }
        let generation = current.generation() + 1;
        let mut changes = changes;
        for c in &mut changes {
            if let CatalogChange::Put(m) = c {
                m.created_generation = match current.get(&m.id) {
                    Some(old) => old.created_generation,
                    None => generation,
                };
                m.updated_generation = generation;
                if let Some(r) = &mut m.retired {
                    if r.generation == 0 {
                        r.generation = generation;
                    }
                }
                for d in m.dropped.iter_mut().filter(|d| d.generation == 0) {
                    d.generation = generation;
                }
            }
        }
        let mut encoded = Vec::with_capacity(changes.len());
        let mut cleared = Vec::new();
        for c in &changes {
            match c {
                CatalogChange::Put(m) => encoded.push((m.id.to_string(), Some(encode("segment record", m)?))),
                CatalogChange::Remove(id) => encoded.push((id.to_string(), None)),
                CatalogChange::ClearIntent(l) => cleared.push(Intent::key(l)),
                CatalogChange::Expect { .. } | CatalogChange::ExpectAbsent(_) => {}
            }
        }
        (&self.meta, &self.segments, &self.intents)
            .transaction(|(meta, segments, intents)| {
                for (key, value) in &encoded {
                    match value {
                        Some(v) => segments.insert(key.as_bytes(), v.as_slice())?,
                        None => segments.remove(key.as_bytes())?,
                    };
                }
                for key in &cleared {
                    intents.remove(key.as_bytes())?;
                }
                meta.insert(KEY_GENERATION, &generation.to_be_bytes())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(transaction_err("commit"))?;
        #[cfg(test)]
        if self.fail_next_commit_flush.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::Catalog {
                op: "flush",
                source: sled::Error::Io(std::io::Error::other("injected")),
            });
        }
        self.flush()?;
        let next = current.apply(generation, changes);
        self.snapshot.store(Arc::new(next));
        metrics::counter!("tierd_catalog_commits_total").increment(1);
        metrics::gauge!("tierd_catalog_generation").set(generation as f64);
        metrics::histogram!("tierd_catalog_commit_seconds").record(started.elapsed().as_secs_f64());
        Ok(generation)
    }

    /// A tree of the catalog's database that is not part of the catalog's schema (the heat tracker's counts):
    /// written outside catalog commits, made durable by [`Catalog::flush`].
    pub(crate) fn side_tree(&self, name: &'static str) -> Result<sled::Tree> {
        self.db.open_tree(name).map_err(sled_err("open a tree"))
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        #[cfg(test)]
        if let Some(power) = self.power.lock().clone() {
            return power
                .external_step(|| self.db.flush().map(drop).map_err(std::io::Error::other))
                .map_err(|e| StoreError::Catalog { op: "flush", source: sled::Error::Io(e) });
        }
        self.db.flush().map_err(sled_err("flush"))?;
        Ok(())
    }
}

//! Durable user-deletion requests (GDPR/CCPA erasure) and the read-time tombstones they imply.
//!
//! A request names a project and either 1..N distinct ids (a user deletion) or an [`EventSelection`] (a filtered
//! delete: an event name over a time window, with `where` conditions), and the highest ingest sequence committed
//! when it was accepted (`max_seq`): it removes the matching events that existed at that moment, and keeps the
//! ones sent later. It is written to the `deletions` tree of the catalog's sled database and flushed (fsync) before
//! [`DeletionLog::request`] returns, so an acknowledged request survives any crash.
//!
//! From the moment a request is stored, every request that is not `done` is a tombstone: [`DeletionLog::tombstones`]
//! gives a project's [`RowFilter`] (one `DistinctIds` per request, in an `AnyOf`), which readers apply to rows
//! before dedup, where the retention cutoff is applied. A project with no such request has no filter (`None`), so
//! its readers pay nothing: the map of tombstones is rebuilt on every change and read lock-free.
//!
//! The tree is outside the catalog's schema (it is not part of a catalog commit): like the heat tree it is opened
//! with `Catalog::side_tree`. Keys are the request ids (ULIDs, made increasing, so the listing is in acceptance
//! order), values JSON
//! [`DeletionRequest`].

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tierd_codecs::condition::Filter;
use tierd_codecs::RowFilter;
use tracing::info;

use crate::catalog::Catalog;
use crate::error::{Result, StoreError};

/// The sled tree that holds the requests.
const TREE: &str = "deletions";

/// A deletion request's identity: a ULID whose time part is the acceptance time. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeletionId(pub ulid::Ulid);

impl DeletionId {
    /// A fresh id whose time part is `now_ms`.
    pub fn generate(now_ms: i64) -> Self {
        DeletionId(ulid::Ulid::from_parts(u64::try_from(now_ms).unwrap_or(0), crate::layout::rand_u128()))
    }
}

impl fmt::Display for DeletionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for DeletionId {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        // Only the canonical uppercase form, so one request has exactly one spelling.
        if s.len() != 26 || !s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
            return Err(format!(
                "invalid deletion id {:?}: expected a ULID (26 characters)",
                s.chars().take(64).collect::<String>()
            ));
        }
        ulid::Ulid::from_string(s).map(DeletionId).map_err(|e| format!("invalid deletion id {s:?}: {e}"))
    }
}

impl Serialize for DeletionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeletionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

crate::labelled_enum! {
    /// Where a deletion request is.
    #[derive(Hash)]
    pub enum DeletionState {
        /// Accepted and durable; readers hide its events; no pass has worked on it yet.
        Pending = "pending",
        /// A pass is removing its events from storage.
        Running = "running",
        /// No copy holding its events remains: not in a live segment, a copy out of service, the trash (either
        /// tier) or the cold cache.
        Done = "done",
        /// The last pass over it failed (readers still hide its events; the next pass retries).
        Failed = "failed",
    }
}

/// What a pass has done for a request so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeletionProgress {
    pub segments_rewritten: u64,
    pub segments_retired: u64,
    pub rows_removed: u64,
    pub bytes_freed: u64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub error: Option<String>,
    /// Live segments that may still hold the rows after the last run (open, or over the run's byte limit), per
    /// tier of their copies.
    pub segments_left: TierCounts,
    /// Copies out of service (gc has not erased them yet), trash entries and cached cold blocks that may still hold
    /// the rows after the last run (see `crate::erase`).
    pub copies_left: crate::erase::Leftover,
    /// Bytes of everything left (live segments and `copies_left`).
    pub bytes_left: u64,
    /// Retired segments the pass marked for erasure.
    pub retired_marked: u64,
    /// Trash entries found holding the rows and deleted for good by the pass.
    pub trash_purged: u64,
}

/// A count per tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TierCounts {
    pub hot: u64,
    pub cold: u64,
}

/// What a filtered delete removes: events in `[from_ms, to_ms)`, of one name (any when `None`), for which every
/// condition holds (the query API's `where` language).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSelection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub from_ms: i64,
    pub to_ms: i64,
    #[serde(default, rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Filter>,
}

/// What a request deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionTarget {
    /// Every event of these distinct ids.
    Users(BTreeSet<String>),
    /// The events a filter selects.
    Events(EventSelection),
}

impl From<BTreeSet<String>> for DeletionTarget {
    fn from(ids: BTreeSet<String>) -> Self {
        DeletionTarget::Users(ids)
    }
}

impl From<EventSelection> for DeletionTarget {
    fn from(s: EventSelection) -> Self {
        DeletionTarget::Events(s)
    }
}

/// One durable deletion request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionRequest {
    pub id: DeletionId,
    pub project: String,
    /// A user deletion's ids (empty for a filtered delete).
    #[serde(default)]
    pub distinct_ids: BTreeSet<String>,
    /// A filtered delete's selection (absent for a user deletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventSelection>,
    pub created_at_ms: i64,
    /// The highest ingest sequence committed when the request was accepted: rows of these ids at or below it are
    /// deleted, later ones kept.
    pub max_seq: u64,
    pub state: DeletionState,
    #[serde(default)]
    pub progress: DeletionProgress,
}

impl DeletionRequest {
    /// The rows this request removes.
    pub fn filter(&self) -> RowFilter {
        match &self.events {
            Some(s) => RowFilter::Events {
                event: s.event.clone(),
                from_ms: s.from_ms,
                to_ms: s.to_ms,
                conditions: s.conditions.clone(),
                max_seq: self.max_seq,
            },
            None => RowFilter::DistinctIds { ids: self.distinct_ids.clone(), max_seq: self.max_seq },
        }
    }

    /// Whether readers must still hide its rows.
    pub fn is_active(&self) -> bool {
        self.state != DeletionState::Done
    }
}

/// Bounds on what one request and the set of active requests may hold (`[deletions]` in the daemon's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletionLimits {
    /// Most distinct ids in one request.
    pub max_ids_per_request: usize,
    /// Most bytes of distinct ids (their UTF-8 lengths summed) in one request.
    pub max_request_bytes: usize,
    /// Most requests not yet done: each is a tombstone every read of its project evaluates.
    pub max_active_requests: usize,
    /// Most `where` conditions in one filtered delete.
    pub max_conditions: usize,
}

/// Why a request was refused; `reason()` is the label of the refusal metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeletionRefused {
    #[error("project: {0}")]
    BadProject(String),
    #[error("nothing to delete given: name at least one distinct id (distinct_id or distinct_ids) or give a filter")]
    Empty,
    #[error("filter: {0}")]
    BadFilter(String),
    #[error("{count} where conditions in one filtered delete; at most {max} (deletions.max_conditions)")]
    TooManyConditions { count: usize, max: usize },
    #[error("distinct ids must not be empty strings")]
    EmptyId,
    #[error("{count} distinct ids in one request; at most {max} (deletions.max_ids_per_request): split the request")]
    TooManyIds { count: usize, max: usize },
    #[error(
        "{bytes} bytes of distinct ids in one request; at most {max} (deletions.max_request_bytes): split the request"
    )]
    TooLarge { bytes: usize, max: usize },
    #[error("{active} deletion requests are not done yet; at most {max} (deletions.max_active_requests): retry once the deletions pass has finished some")]
    TooManyActive { active: usize, max: usize },
}

impl DeletionRefused {
    /// A fixed label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DeletionRefused::BadProject(_) => "bad_project",
            DeletionRefused::Empty | DeletionRefused::EmptyId => "empty",
            DeletionRefused::TooManyIds { .. } => "too_many_ids",
            DeletionRefused::BadFilter(_) => "bad_filter",
            DeletionRefused::TooManyConditions { .. } => "too_many_conditions",
            DeletionRefused::TooLarge { .. } => "too_large",
            DeletionRefused::TooManyActive { .. } => "too_many_active",
        }
    }
}

/// Checks a request's project and target against `limits` (not the count of active requests). Pure.
pub fn validate(
    project: &str,
    target: &DeletionTarget,
    limits: &DeletionLimits,
) -> std::result::Result<(), DeletionRefused> {
    crate::layout::validate_project(project).map_err(DeletionRefused::BadProject)?;
    match target {
        DeletionTarget::Users(ids) => validate_ids(ids, limits),
        DeletionTarget::Events(s) => validate_selection(s, limits),
    }
}

fn validate_selection(s: &EventSelection, limits: &DeletionLimits) -> std::result::Result<(), DeletionRefused> {
    let bad = |m: String| Err(DeletionRefused::BadFilter(m));
    if s.from_ms >= s.to_ms {
        return bad(format!("from ({}) must be before to ({}); the window is [from, to)", s.from_ms, s.to_ms));
    }
    if s.event.as_deref() == Some("") {
        return bad("event must not be empty (leave it out to match any name)".into());
    }
    if s.event.is_none() && s.conditions.is_empty() {
        return bad("name an event or give a where condition; to delete everything older than a date, set a \
                    retention ([retention] in the config)"
            .into());
    }
    if s.conditions.len() > limits.max_conditions {
        return Err(DeletionRefused::TooManyConditions { count: s.conditions.len(), max: limits.max_conditions });
    }
    if let Some(i) = s.conditions.iter().position(|c| c.property.is_empty()) {
        return bad(format!("where[{i}]: property must not be empty"));
    }
    let bytes = serde_json::to_vec(s).map_or(usize::MAX, |v| v.len());
    if bytes > limits.max_request_bytes {
        return Err(DeletionRefused::TooLarge { bytes, max: limits.max_request_bytes });
    }
    Ok(())
}

fn validate_ids(ids: &BTreeSet<String>, limits: &DeletionLimits) -> std::result::Result<(), DeletionRefused> {
    if ids.is_empty() {
        return Err(DeletionRefused::Empty);
    }
    if ids.iter().any(String::is_empty) {
        return Err(DeletionRefused::EmptyId);
    }
    if ids.len() > limits.max_ids_per_request {
        return Err(DeletionRefused::TooManyIds { count: ids.len(), max: limits.max_ids_per_request });
    }
    let bytes: usize = ids.iter().map(String::len).sum();
    if bytes > limits.max_request_bytes {
        return Err(DeletionRefused::TooLarge { bytes, max: limits.max_request_bytes });
    }
    Ok(())
}

/// The tombstones readers apply: per project, the rows of every active request.
type Tombstones = HashMap<String, Arc<RowFilter>>;

/// The durable list of deletion requests, and the tombstones of the active ones.
pub struct DeletionLog {
    catalog: Arc<Catalog>,
    tree: sled::Tree,
    /// Every request, by id (bounded: done requests are small, active ones by `max_active_requests`).
    requests: Mutex<std::collections::BTreeMap<DeletionId, DeletionRequest>>,
    tombstones: ArcSwap<Tombstones>,
}

impl fmt::Debug for DeletionLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeletionLog").field("requests", &self.requests.lock().len()).finish()
    }
}

fn sled_err(op: &'static str) -> impl Fn(sled::Error) -> StoreError {
    move |source| StoreError::Catalog { op, source }
}

impl DeletionLog {
    /// Opens the log on the catalog's database and loads every request.
    pub fn open(catalog: Arc<Catalog>) -> Result<Self> {
        let tree = catalog.side_tree(TREE)?;
        let mut requests = std::collections::BTreeMap::new();
        for kv in tree.iter() {
            let (k, v) = kv.map_err(sled_err("read deletion requests"))?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let r: DeletionRequest = serde_json::from_slice(&v).map_err(|source| StoreError::CatalogDecode {
                what: "deletion request",
                key,
                source,
            })?;
            requests.insert(r.id, r);
        }
        let log = DeletionLog { catalog, tree, requests: Mutex::new(requests), tombstones: ArcSwap::default() };
        log.publish(&log.requests.lock());
        let active = log.requests.lock().values().filter(|r| r.is_active()).count();
        info!(requests = log.requests.lock().len(), active, "deletion requests loaded");
        Ok(log)
    }

    fn publish(&self, requests: &std::collections::BTreeMap<DeletionId, DeletionRequest>) {
        let mut by_project: HashMap<String, Vec<RowFilter>> = HashMap::new();
        for r in requests.values().filter(|r| r.is_active()) {
            by_project.entry(r.project.clone()).or_default().push(r.filter());
        }
        let active: usize = by_project.values().map(Vec::len).sum();
        let map: Tombstones = by_project
            .into_iter()
            .map(|(p, mut filters)| {
                let f = if filters.len() == 1 { filters.remove(0) } else { RowFilter::AnyOf { filters } };
                (p, Arc::new(f))
            })
            .collect();
        self.tombstones.store(Arc::new(map));
        metrics::gauge!("tierd_deletions_active").set(active as f64);
    }

    /// Accepts a request: validated against `limits`, given `max_seq` (the highest ingest sequence the catalog
    /// holds now), written and flushed. Only then do readers hide its rows, and only then may it be acknowledged.
    pub fn request(
        &self,
        project: &str,
        target: impl Into<DeletionTarget>,
        now_ms: i64,
        limits: &DeletionLimits,
    ) -> Result<std::result::Result<DeletionRequest, DeletionRefused>> {
        let target = target.into();
        if let Err(refused) = validate(project, &target, limits) {
            return Ok(Err(refused));
        }
        let mut requests = self.requests.lock();
        let active = requests.values().filter(|r| r.is_active()).count();
        if active >= limits.max_active_requests {
            return Ok(Err(DeletionRefused::TooManyActive { active, max: limits.max_active_requests }));
        }
        // Taken under the lock, after every acknowledged ingest: an event acknowledged before this request is at or
        // below it (the hot writer commits a group before acknowledging it).
        let max_seq = self.catalog.snapshot().max_seq().unwrap_or(0);
        // Ids sort in acceptance order, even for requests accepted in the same millisecond (or a clock set back).
        let mut id = DeletionId::generate(now_ms);
        if let Some(last) = requests.keys().next_back().filter(|last| **last >= id) {
            // (`None` only past the last of 2^80 ids in one millisecond: then the fresh random id stands.)
            id = last.0.increment().map_or(id, DeletionId);
        }
        let (distinct_ids, events) = match target {
            DeletionTarget::Users(ids) => (ids, None),
            DeletionTarget::Events(s) => (BTreeSet::new(), Some(s)),
        };
        let r = DeletionRequest {
            id,
            project: project.to_string(),
            distinct_ids,
            events,
            created_at_ms: now_ms,
            max_seq,
            state: DeletionState::Pending,
            progress: DeletionProgress::default(),
        };
        self.store(&r)?;
        requests.insert(r.id, r.clone());
        self.publish(&requests);
        metrics::counter!("tierd_deletions_accepted_total").increment(1);
        metrics::counter!("tierd_deletions_ids_total").increment(r.distinct_ids.len() as u64);
        info!(deletion = %r.id, project = %r.project, ids = r.distinct_ids.len(), filter = %r.filter(), max_seq,
            "deletion request accepted");
        Ok(Ok(r))
    }

    fn store(&self, r: &DeletionRequest) -> Result<()> {
        self.catalog.check_headroom("deletion")?;
        let value =
            serde_json::to_vec(r).map_err(|source| StoreError::CatalogEncode { what: "deletion request", source })?;
        self.tree.insert(r.id.to_string().as_bytes(), value).map_err(sled_err("write a deletion request"))?;
        self.catalog.flush()
    }

    /// Replaces a request's state and progress (a pass reporting), durably. Unknown ids are ignored.
    pub fn update(&self, id: DeletionId, state: DeletionState, progress: DeletionProgress) -> Result<()> {
        let mut requests = self.requests.lock();
        let Some(mut r) = requests.get(&id).cloned() else { return Ok(()) };
        r.state = state;
        r.progress = progress;
        self.store(&r)?;
        requests.insert(id, r);
        self.publish(&requests);
        Ok(())
    }

    /// Every request, in acceptance order.
    pub fn list(&self) -> Vec<DeletionRequest> {
        self.requests.lock().values().cloned().collect()
    }

    pub fn get(&self, id: DeletionId) -> Option<DeletionRequest> {
        self.requests.lock().get(&id).cloned()
    }

    /// The rows readers of `project` must not see (`None`: nothing to hide, the common case).
    pub fn tombstones(&self, project: &str) -> Option<Arc<RowFilter>> {
        let map = self.tombstones.load();
        if map.is_empty() {
            return None;
        }
        map.get(project).cloned()
    }
}

#[cfg(test)]
mod tests;

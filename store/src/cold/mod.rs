//! The cold tier: an object store (`file://`, `s3://`, `gs://`, `az://`, `memory://`) reached through object_store,
//! holding segment copies under keys relative to `cold.url`'s prefix.
//!
//! [`ColdStore`] is the only way tierd talks to the object store. Its requests go through a stack of wrappers,
//! each an [`ObjectStore`] forwarding every method to the next:
//!
//! ```text
//! ColdStore (keys, create-only puts, multipart, retries)
//!   -> BudgetStore   (the node's IoBudget: request and byte rates, concurrency cap)
//!   -> MetricsStore  (tierd_cold_requests_total / _request_seconds / _bytes_total)
//!   -> FaultStore    (only when faults are configured: TIERD_COLD_FAULTS)
//!   -> backend, rooted at the URL's prefix
//! ```
//!
//! Keys are never reused (every upload gets a fresh key), so correctness does not depend on the server honouring
//! create-only puts; [`ColdStore::put_new`] asks for one anyway. What each backend does with a second `put_new` of
//! a key: `memory://` and `file://` refuse it atomically (object_store's `PutMode::Create`: an in-memory check, a
//! hard link that fails if the file exists); S3 sends `If-None-Match: *` and moto 5.2.5 answers 412 (object_store
//! reports `AlreadyExists`), while some S3-compatible servers ignore the header and overwrite. A multipart upload
//! cannot be create-only through object_store 0.14 (it completes uploads unconditionally), so `put_new` looks
//! before it starts one: a check, not an atomic guarantee; keys are never reused, so it only catches mistakes.
//!
//! Transient failures (server errors, timeouts, connection errors) are retried here with exponential backoff
//! ([`ColdConfig::max_retries`]); object_store's own HTTP retries are off, so every attempt is budgeted, counted
//! (`tierd_cold_retries_total{op}`) and logged with its key. A `put_new` whose retry finds the object already
//! there counts as done: the failed attempt may have landed before its answer was lost; its answer then carries no
//! ETag, so the caller (a move) verifies the object by reading it back before committing anything that points to
//! it.

mod backend;
mod budget_store;
mod config;
mod faults;
mod metrics_store;
mod retry;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use tracing::{debug, warn};

pub use budget_store::BudgetStore;
pub use config::{ColdConfig, VerifyMode, MAX_PART_SIZE, MIN_PART_SIZE};
pub use faults::{FaultConfig, FaultCounter, FaultCounts, FaultStore};
pub use metrics_store::MetricsStore;

use crate::budget::IoBudget;
use crate::catalog::Tier;
use crate::clock::Stopwatch;
use crate::error::StoreError;

/// Parts of one multipart upload in flight at once (the IO budget's concurrency cap applies on top).
const PARTS_IN_FLIGHT: usize = 4;
/// S3's most parts in one upload.
const MAX_PARTS: u64 = 10_000;

/// What the server answered to an upload ([`ColdStore::put_new_answered`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutAnswer {
    /// The object's ETag, when the server gave one (S3 gives the MD5 of a single PUT's bytes, see
    /// [`s3_etag`](crate::verify::s3_etag)); `None` after a retry that found the object already written.
    pub e_tag: Option<String>,
    /// The part size of a multipart upload (every part this big but the last); `None` for a single PUT.
    pub part_size: Option<u64>,
}

/// One object, as listed or looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Relative to the cold tier's prefix.
    pub key: String,
    pub size: u64,
    pub last_modified_ms: i64,
    pub e_tag: Option<String>,
}

impl From<ObjectMeta> for ObjectInfo {
    fn from(meta: ObjectMeta) -> Self {
        Self {
            key: meta.location.to_string(),
            size: meta.size,
            last_modified_ms: meta.last_modified.timestamp_millis(),
            e_tag: meta.e_tag,
        }
    }
}

/// The cold tier's object store; see the module documentation. Cheap to clone and to share as `Arc`.
#[derive(Debug, Clone)]
pub struct ColdStore {
    /// Where requests go: the budgeted stack, or the unbudgeted one for [`ColdStore::foreground`].
    store: Arc<dyn ObjectStore>,
    unbudgeted: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    url: String,
    multipart_threshold: u64,
    part_size: u64,
    verify: VerifyMode,
    max_retries: u32,
    backoff: retry::Backoff,
    retries: AtomicU64,
    faults: Option<FaultCounter>,
    budget: Arc<IoBudget>,
}

impl ColdStore {
    /// Builds the object store stack for `cfg` (`data_dir` resolves the embedded default `DATA_DIR/cold`):
    /// backend -> [`FaultStore`] (only when `faults` injects anything) -> [`MetricsStore`] -> [`BudgetStore`].
    /// A bad configuration is a [`StoreError::Config`] naming the key (`cold.url`, ...). Makes no request: a
    /// server that is down shows on the first request, which retries.
    pub fn open(
        cfg: &ColdConfig,
        data_dir: &FsPath,
        budget: Arc<IoBudget>,
        faults: Option<FaultConfig>,
    ) -> Result<Self, StoreError> {
        cfg.validate()?;
        let (backend, url) = backend::build(cfg, data_dir)?;
        let (backend, fault_counter) = match faults.filter(FaultConfig::is_active) {
            Some(faults) => {
                warn!(url = %url, ?faults, "cold tier: injecting faults");
                let store = FaultStore::new(backend, faults);
                let counter = store.counts();
                (Arc::new(store) as Arc<dyn ObjectStore>, Some(counter))
            }
            None => (backend, None),
        };
        let unbudgeted: Arc<dyn ObjectStore> = Arc::new(MetricsStore::new(backend));
        let store: Arc<dyn ObjectStore> = Arc::new(BudgetStore::new(Arc::clone(&unbudgeted), Arc::clone(&budget)));
        debug!(url = %url, "cold tier opened");
        Ok(Self {
            store,
            unbudgeted,
            shared: Arc::new(Shared {
                url,
                multipart_threshold: cfg.multipart_threshold_bytes,
                part_size: cfg.part_size_bytes,
                verify: cfg.verify,
                max_retries: cfg.max_retries,
                backoff: retry::Backoff::new(Duration::from_millis(cfg.retry_backoff_ms)),
                retries: AtomicU64::new(0),
                faults: fault_counter,
                budget,
            }),
        })
    }

    /// The cold tier's URL, for logs and status (the embedded default resolved to its directory). Holds no secret.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The same store without the IO budget, for requests a query or an ingest request waits on (they must never
    /// wait behind background work). Metrics, faults and retries are unchanged.
    pub fn foreground(&self) -> ColdStore {
        ColdStore { store: Arc::clone(&self.unbudgeted), ..self.clone() }
    }

    /// How moves verify the copies they upload (`cold.verify`).
    pub fn verify_mode(&self) -> VerifyMode {
        self.shared.verify
    }

    /// The budget background requests draw from.
    pub fn budget(&self) -> &Arc<IoBudget> {
        &self.shared.budget
    }

    /// Retries made so far (all clones of this store together).
    pub fn retries(&self) -> u64 {
        self.shared.retries.load(Ordering::Relaxed)
    }

    /// Faults injected so far; `None` without fault injection.
    pub fn faults_injected(&self) -> Option<FaultCounts> {
        self.shared.faults.as_ref().map(FaultCounter::get)
    }

    /// Create-only upload of a new key (keys are never reused); see [`ColdStore::put_new_answered`].
    pub async fn put_new(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.put_new_answered(key, bytes).await.map(drop)
    }

    /// Create-only upload of a new key (keys are never reused), answering what the server said about the object
    /// ([`PutAnswer`]: its ETag, and the part size of a multipart upload). Objects of at least
    /// `cold.multipart_threshold_bytes` go up in parts (aborted on failure). Transient failures are retried;
    /// `AlreadyExists` on a retry counts as success (an earlier attempt landed; the answer then has no ETag and the
    /// caller must read the object back to know what is there). `AlreadyExists` on the first attempt is
    /// [`StoreError::ObjectExists`].
    pub async fn put_new_answered(&self, key: &str, bytes: Bytes) -> Result<PutAnswer, StoreError> {
        const OP: &str = "put_new";
        let path = self.path(OP, key)?;
        let parts = self.upload_parts(bytes.len() as u64);
        let (path, bytes) = (&path, &bytes);
        let answer = self
            .with_retries(OP, key, move |attempt| async move {
                let result = match parts {
                    Some(part_size) => self.put_multipart_once(path, bytes.clone(), part_size).await,
                    None => {
                        self.store.put_opts(path, PutPayload::from_bytes(bytes.clone()), PutMode::Create.into()).await
                    }
                };
                match result {
                    Ok(put) => Ok(PutAnswer { e_tag: put.e_tag, part_size: parts }),
                    Err(object_store::Error::AlreadyExists { .. }) if attempt > 1 => {
                        warn!(key = %path, attempt, "cold tier: put_new found its object after a failed attempt; taking it as written");
                        Ok(PutAnswer { e_tag: None, part_size: None })
                    }
                    Err(e) => Err(e),
                }
            })
            .await?;
        debug!(key, bytes = bytes.len(), multipart = parts.is_some(), e_tag = ?answer.e_tag, "cold tier: object written");
        Ok(answer)
    }

    /// How [`ColdStore::put_new_answered`] uploads `len` bytes: `None` in one PUT, `Some(part size)` in parts.
    pub fn upload_parts(&self, len: u64) -> Option<u64> {
        (len >= self.shared.multipart_threshold).then(|| self.part_size(len))
    }

    /// Whether the backend is S3, whose upload ETags are MD5s of what it received ([`crate::verify`]).
    pub fn etags_are_md5s(&self) -> bool {
        self.shared.url.starts_with("s3://")
    }

    /// The part size of a multipart upload of `len` bytes: `cold.part_size_bytes`, larger when needed to stay
    /// within S3's 10,000 parts.
    fn part_size(&self, len: u64) -> u64 {
        self.shared.part_size.max(len.div_ceil(MAX_PARTS)).min(MAX_PART_SIZE)
    }

    async fn put_multipart_once(
        &self,
        path: &Path,
        bytes: Bytes,
        part_size: u64,
    ) -> object_store::Result<object_store::PutResult> {
        match self.store.head(path).await {
            Ok(_) => {
                return Err(object_store::Error::AlreadyExists {
                    path: path.to_string(),
                    source: "the object exists (checked before starting a multipart upload)".into(),
                })
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut upload = self.store.put_multipart_opts(path, Default::default()).await?;
        let result = upload_parts(upload.as_mut(), &bytes, part_size as usize).await;
        if result.is_err() {
            if let Err(e) = upload.abort().await {
                warn!(key = %path, error = %e, "cold tier: cannot abort a failed multipart upload (the server may keep its parts)");
            }
        }
        result
    }

    /// The whole object.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path("get", key)?;
        let path = &path;
        self.with_retries("get", key, move |_| async move {
            self.store.get_opts(path, GetOptions::default()).await?.bytes().await
        })
        .await
    }

    /// Bytes `range` of the object; the range must lie within it.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let path = self.path("get_range", key)?;
        check_range("get_range", key, &range)?;
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let (path, range) = (&path, &range);
        self.with_retries("get_range", key, move |_| async move { self.store.get_range(path, range.clone()).await })
            .await
    }

    /// Several ranges of the object in one call (object_store coalesces nearby ranges into fewer requests).
    pub async fn get_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>, StoreError> {
        let path = self.path("get_ranges", key)?;
        for range in ranges {
            check_range("get_ranges", key, range)?;
        }
        if ranges.iter().all(|r| r.is_empty()) {
            return Ok(vec![Bytes::new(); ranges.len()]);
        }
        let path = &path;
        self.with_retries("get_ranges", key, move |_| async move { self.store.get_ranges(path, ranges).await }).await
    }

    /// The object's size and metadata; `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let path = self.path("head", key)?;
        let path = &path;
        self.with_retries("head", key, move |_| async move {
            match self.store.head(path).await {
                Ok(meta) => Ok(Some(ObjectInfo::from(meta))),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Deletes the object; deleting an absent object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path("delete", key)?;
        let path = &path;
        self.with_retries("delete", key, move |_| async move {
            match self.store.delete(path).await {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                other => other,
            }
        })
        .await?;
        debug!(key, "cold tier: object deleted");
        Ok(())
    }

    /// Server-side copy of `from` to `to` (overwrites `to`: S3 has no create-only copy without extra setup; keys
    /// are never reused). A missing `from` is [`StoreError::ObjectNotFound`].
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (source, target) = (self.path("copy", from)?, self.path("copy", to)?);
        let shown = format!("{from} -> {to}");
        let (source, target) = (&source, &target);
        self.with_retries("copy", &shown, move |_| async move { self.store.copy(source, target).await }).await
    }

    /// Every object under `prefix` (a whole path: `a/b` lists `a/b/...`, not `a/bc`; `""` lists everything),
    /// sorted by key; keys are relative to the cold tier's prefix.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let trimmed = prefix.trim_end_matches('/');
        let prefix_path = if trimmed.is_empty() { None } else { Some(self.path("list", trimmed)?) };
        let prefix_path = &prefix_path;
        let mut objects = self
            .with_retries("list", prefix, move |_| async move {
                self.store.list(prefix_path.as_ref()).try_collect::<Vec<ObjectMeta>>().await
            })
            .await?
            .into_iter()
            .map(ObjectInfo::from)
            .collect::<Vec<_>>();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// A key as an object_store path; it must round-trip exactly (no empty segments, no leading or trailing `/`).
    fn path(&self, op: &'static str, key: &str) -> Result<Path, StoreError> {
        let invalid =
            |message: String| StoreError::InvalidObjectKey { tier: Tier::Cold, op, key: key.to_string(), message };
        if key.is_empty() {
            return Err(invalid("empty".into()));
        }
        let path = Path::parse(key).map_err(|e| invalid(e.to_string()))?;
        if path.as_ref() != key {
            return Err(invalid("must not start or end with '/'".into()));
        }
        Ok(path)
    }

    /// Runs `request` (given the 1-based attempt number) until it succeeds, fails for good, or runs out of retries.
    async fn with_retries<T, F, Fut>(&self, op: &'static str, key: &str, mut request: F) -> Result<T, StoreError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let started = Stopwatch::start();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match request(attempt).await {
                Ok(value) => return Ok(value),
                Err(e) if retry::is_transient(&e) && attempt <= self.shared.max_retries => {
                    let delay = self.shared.backoff.delay(attempt);
                    self.shared.retries.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("tierd_cold_retries_total", "op" => op).increment(1);
                    warn!(op, key, attempt, error = %e, retry_in_ms = delay.as_millis() as u64, "cold tier request failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    let error = classify(op, key, attempt, e);
                    match &error {
                        StoreError::ObjectNotFound { .. } | StoreError::ObjectExists { .. } => debug!(%error),
                        _ => {
                            warn!(%error, elapsed_ms = started.elapsed().as_millis() as u64, "cold tier request failed")
                        }
                    }
                    return Err(error);
                }
            }
        }
    }
}

async fn upload_parts(
    upload: &mut dyn MultipartUpload,
    bytes: &Bytes,
    part_size: usize,
) -> object_store::Result<object_store::PutResult> {
    let mut in_flight = FuturesUnordered::new();
    let mut offset = 0;
    while offset < bytes.len() {
        if in_flight.len() >= PARTS_IN_FLIGHT {
            in_flight.next().await.expect("parts are in flight")?;
        }
        let end = (offset + part_size).min(bytes.len());
        // Parts are started only when there is room for them: some stores start the work when the part is created.
        in_flight.push(upload.put_part(PutPayload::from_bytes(bytes.slice(offset..end))));
        offset = end;
    }
    while let Some(part) = in_flight.next().await {
        part?;
    }
    upload.complete().await
}

fn check_range(op: &'static str, key: &str, range: &Range<u64>) -> Result<(), StoreError> {
    if range.start > range.end {
        return Err(StoreError::ObjectStore {
            tier: Tier::Cold,
            op,
            key: key.to_string(),
            attempts: 0,
            source: Box::new(object_store::Error::NotSupported {
                source: format!("range {range:?} ends before it starts").into(),
            }),
        });
    }
    Ok(())
}

fn classify(op: &'static str, key: &str, attempts: u32, e: object_store::Error) -> StoreError {
    let key = key.to_string();
    match e {
        object_store::Error::NotFound { .. } => StoreError::ObjectNotFound { tier: Tier::Cold, op, key },
        object_store::Error::AlreadyExists { .. } => StoreError::ObjectExists { tier: Tier::Cold, op, key },
        source => StoreError::ObjectStore { tier: Tier::Cold, op, key, attempts, source: Box::new(source) },
    }
}

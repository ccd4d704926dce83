//! One IO budget for all background work: rewrites, moves to and from the cold tier, cache fills and GC.
//!
//! Background work must never starve ingest and queries of disk bandwidth, object-store bandwidth or connections,
//! and must not fire everything at once (the "IO storm" of a compaction or migration backlog). So every background
//! byte and request draws from one [`IoBudget`]:
//!
//! - token buckets for object-store bytes/s, object-store requests/s and local-disk bytes/s;
//! - a semaphore capping concurrent object-store requests (a permit is held for the request's duration).
//!
//! Each bucket holds at most one second of its rate (the burst). A request bigger than the burst is not starved: it
//! waits until the bucket is full, takes what it needs and leaves the bucket in debt, which later requests repay by
//! waiting. Over any interval `T` a bucket therefore grants at most `burst + rate * T + one request`, and waiters are
//! served in the order they asked (each reserves its tokens at once and then sleeps until they are due).
//!
//! Async callers use [`IoBudget::acquire_object`] and [`IoBudget::acquire_disk`]; blocking threads (rewrites run on
//! them) use [`IoBudget::acquire_disk_blocking`]. Every wait on a limited resource is recorded in the histogram
//! `tierd_budget_wait_seconds{resource}` and in [`IoBudget::waited`]. A reservation is not given back when its
//! waiting future is dropped: the budget errs towards less background IO.
//!
//! Time is tokio's clock (`tokio::time::Instant`), so the rate tests run on paused time instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

const MIB: u64 = 1024 * 1024;

/// The `[budget]` section: limits on background IO; 0 = unlimited for each.
///
/// The defaults keep background work well below what one node can do, so that ingest and queries keep their
/// headroom while a backlog of moves or rewrites drains:
/// - `object_bytes_per_sec` = 64 MiB/s: about half of a 1 Gbit/s link and a twentieth of 10 Gbit/s; a 256 MiB segment
///   still moves in 4 s when the upload is verified by its ETag (S3), in 8 s when it must be read back (the read
///   is charged too), so a day's segments of a busy project migrate in minutes.
/// - `object_requests_per_sec` = 200: far below S3's 3,500 PUT / 5,500 GET per second per prefix (no `SlowDown`
///   throttling that would also hit foreground reads), yet enough for the few ranged reads a cold Parquet scan needs
///   per segment.
/// - `object_max_concurrent` = 8: with first-byte latencies of 20-40 ms, 8 requests in flight sustain about the 200
///   requests/s above, and a few 8 MiB multipart parts in flight fill 64 MiB/s; more connections would only queue.
/// - `disk_bytes_per_sec` = 128 MiB/s: a quarter of a SATA SSD's sequential bandwidth and a small share of an NVMe
///   drive's, leaving the hot writer's appends and fsyncs their latency.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Object-store bytes per second, uploads and downloads together.
    pub object_bytes_per_sec: u64,
    /// Object-store requests per second (every part of a multipart upload is a request).
    pub object_requests_per_sec: u64,
    /// Object-store requests in flight at once.
    pub object_max_concurrent: u32,
    /// Local disk bytes per second read or written by background work.
    pub disk_bytes_per_sec: u64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            object_bytes_per_sec: 64 * MIB,
            object_requests_per_sec: 200,
            object_max_concurrent: 8,
            disk_bytes_per_sec: 128 * MIB,
        }
    }
}

impl BudgetConfig {
    /// No limit on anything (tests, and foreground paths that must not wait).
    pub fn unlimited() -> Self {
        Self { object_bytes_per_sec: 0, object_requests_per_sec: 0, object_max_concurrent: 0, disk_bytes_per_sec: 0 }
    }
}

/// A budgeted resource, as labelled in `tierd_budget_wait_seconds{resource}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    ObjectBytes,
    ObjectRequests,
    ObjectConcurrency,
    DiskBytes,
}

impl Resource {
    pub fn label(self) -> &'static str {
        match self {
            Resource::ObjectBytes => "object_bytes",
            Resource::ObjectRequests => "object_requests",
            Resource::ObjectConcurrency => "object_concurrency",
            Resource::DiskBytes => "disk_bytes",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Total time spent waiting, per resource, since the budget was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetWaits {
    pub object_bytes: Duration,
    pub object_requests: Duration,
    pub object_concurrency: Duration,
    pub disk_bytes: Duration,
}

impl BudgetWaits {
    pub fn total(&self) -> Duration {
        self.object_bytes + self.object_requests + self.object_concurrency + self.disk_bytes
    }
}

/// The node's one IO budget. Cheap to share as `Arc`.
#[derive(Debug)]
pub struct IoBudget {
    config: BudgetConfig,
    object_bytes: Option<TokenBucket>,
    object_requests: Option<TokenBucket>,
    disk_bytes: Option<TokenBucket>,
    concurrency: Option<Arc<Semaphore>>,
    /// Nanoseconds waited, indexed by [`Resource::index`].
    waited_ns: [AtomicU64; 4],
}

/// Held for the duration of one object-store request; releases the concurrency slot when dropped.
#[derive(Debug)]
#[must_use = "the permit must be held for the request's duration"]
pub struct ObjectPermit {
    _slot: Option<OwnedSemaphorePermit>,
}

impl IoBudget {
    pub fn new(config: &BudgetConfig) -> Self {
        let bucket = |rate: u64| (rate > 0).then(|| TokenBucket::new(rate));
        Self {
            config: config.clone(),
            object_bytes: bucket(config.object_bytes_per_sec),
            object_requests: bucket(config.object_requests_per_sec),
            disk_bytes: bucket(config.disk_bytes_per_sec),
            concurrency: (config.object_max_concurrent > 0)
                .then(|| Arc::new(Semaphore::new(config.object_max_concurrent as usize))),
            waited_ns: Default::default(),
        }
    }

    pub fn unlimited() -> Self {
        Self::new(&BudgetConfig::unlimited())
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    /// Waits for one object-store request carrying `bytes` (0 when the size is not known in advance, then see
    /// [`IoBudget::charge_object_bytes`]) and for a concurrency slot. Hold the permit until the request is done.
    pub async fn acquire_object(&self, bytes: u64) -> ObjectPermit {
        let now = Instant::now();
        let requests = reserve(&self.object_requests, 1, now);
        let byte_wait = if bytes > 0 { reserve(&self.object_bytes, bytes, now) } else { None };
        let wait = requests.unwrap_or_default().max(byte_wait.unwrap_or_default());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        if let Some(w) = requests {
            self.record(Resource::ObjectRequests, w);
        }
        if let Some(w) = byte_wait {
            self.record(Resource::ObjectBytes, w);
        }
        let slot = match &self.concurrency {
            None => None,
            Some(semaphore) => {
                let start = Instant::now();
                let permit = semaphore.clone().acquire_owned().await.expect("the budget's semaphore is never closed");
                self.record(Resource::ObjectConcurrency, start.elapsed());
                Some(permit)
            }
        };
        ObjectPermit { _slot: slot }
    }

    /// Charges object-store bytes learned only from a response (a whole-object read) without waiting: the bucket
    /// goes into debt and the next requests wait for it. This keeps a response from idling while its bytes wait.
    pub fn charge_object_bytes(&self, bytes: u64) {
        if let Some(bucket) = &self.object_bytes {
            bucket.charge(bytes, Instant::now());
        }
    }

    /// Waits until `bytes` of local disk IO may proceed.
    pub async fn acquire_disk(&self, bytes: u64) {
        if let Some(wait) = reserve(&self.disk_bytes, bytes, Instant::now()) {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            self.record(Resource::DiskBytes, wait);
        }
    }

    /// [`IoBudget::acquire_disk`] for blocking threads (rewrites): sleeps the thread. Never call it on an async task.
    pub fn acquire_disk_blocking(&self, bytes: u64) {
        if let Some(wait) = reserve(&self.disk_bytes, bytes, Instant::now()) {
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            self.record(Resource::DiskBytes, wait);
        }
    }

    /// Time spent waiting so far, per resource.
    pub fn waited(&self) -> BudgetWaits {
        let get = |r: Resource| Duration::from_nanos(self.waited_ns[r.index()].load(Ordering::Relaxed));
        BudgetWaits {
            object_bytes: get(Resource::ObjectBytes),
            object_requests: get(Resource::ObjectRequests),
            object_concurrency: get(Resource::ObjectConcurrency),
            disk_bytes: get(Resource::DiskBytes),
        }
    }

    fn record(&self, resource: Resource, wait: Duration) {
        let ns = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        self.waited_ns[resource.index()].fetch_add(ns, Ordering::Relaxed);
        metrics::histogram!("tierd_budget_wait_seconds", "resource" => resource.label()).record(wait.as_secs_f64());
    }
}

fn reserve(bucket: &Option<TokenBucket>, n: u64, now: Instant) -> Option<Duration> {
    bucket.as_ref().map(|b| b.reserve(n, now))
}

/// A token bucket with debt: see the module documentation.
#[derive(Debug)]
struct TokenBucket {
    /// Tokens per second.
    rate: f64,
    /// The burst: one second of rate.
    capacity: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    /// Negative while in debt.
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    fn new(rate: u64) -> Self {
        let rate = rate as f64;
        Self { rate, capacity: rate, state: Mutex::new(BucketState { tokens: rate, at: Instant::now() }) }
    }

    /// Takes `n` tokens at `now` and returns how long the caller must wait before using them: until the bucket
    /// holds `min(n, capacity)` tokens, counting every earlier reservation.
    fn reserve(&self, n: u64, now: Instant) -> Duration {
        let mut state = self.state.lock();
        self.refill(&mut state, now);
        let need = (n as f64).min(self.capacity);
        let wait = if state.tokens >= need {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - state.tokens) / self.rate)
        };
        state.tokens -= n as f64;
        wait
    }

    /// Takes `n` tokens without waiting (possibly into debt).
    fn charge(&self, n: u64, now: Instant) {
        let mut state = self.state.lock();
        self.refill(&mut state, now);
        state.tokens -= n as f64;
    }

    fn refill(&self, state: &mut BucketState, now: Instant) {
        if now > state.at {
            let earned = now.duration_since(state.at).as_secs_f64() * self.rate;
            state.tokens = (state.tokens + earned).min(self.capacity);
            state.at = now;
        }
    }
}

#[cfg(test)]
mod tests;

//! Fault injection for the cold tier: an [`ObjectStore`] wrapper that fails, times out or slows down requests at
//! configured rates, so tests prove that every pass completes or rolls back while the object store misbehaves.
//!
//! The daemon reads the configuration from `TIERD_COLD_FAULTS`, e.g.
//! `error_rate=0.1,timeout_rate=0.01,timeout_ms=200,slow_rate=0.05,slow_ms=50,part_error_rate=0.1,seed=7`:
//!
//! - `error`: the request fails at once and never reaches the store;
//! - `timeout`: the request reaches the store (it may well have taken effect, as after a real timeout), then after
//!   `timeout_ms` the caller gets an error instead of the answer; a multipart initiation or a listing is not
//!   forwarded;
//! - `slow`: `slow_ms` of delay, then the request proceeds normally;
//! - `part_error`: a multipart part fails (in addition to the faults above, which apply to parts too).
//!
//! Draws come from a seeded generator (SplitMix64 over a request counter), so a sequential run is reproducible.
//! Injected faults are counted per store ([`FaultStore::counts`]) and in `tierd_cold_faults_injected_total{kind}`.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};
use rand_xoshiro::rand_core::{RngCore as _, SeedableRng as _};
use rand_xoshiro::SplitMix64;
use tracing::debug;

mod config;
#[cfg(test)]
mod tests;

pub use config::FaultConfig;

/// How many faults a [`FaultStore`] injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub errors: u64,
    pub timeouts: u64,
    pub slow: u64,
    pub part_errors: u64,
}

impl FaultCounts {
    /// Faults that made a request fail (slow responses succeed).
    pub fn failures(&self) -> u64 {
        self.errors + self.timeouts + self.part_errors
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Error,
    Timeout,
    Slow,
    PartError,
}

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Error => "error",
            Fault::Timeout => "timeout",
            Fault::Slow => "slow",
            Fault::PartError => "part_error",
        }
    }
}

/// The shared decision maker: configuration, dice and tallies (uploads and streams outlive the call that made them).
#[derive(Debug)]
struct Injector {
    config: FaultConfig,
    draws: AtomicU64,
    tally: [AtomicU64; 4],
}

impl Injector {
    /// A uniform draw in `[0, 1)`: output number `n` (the draw's number) of the SplitMix64 sequence seeded with
    /// the configured seed. SplitMix64's state moves by a fixed step per output, so output `n` is the next output
    /// from the state `seed + n * step`: computed from the counter alone, concurrent requests share no lock.
    fn roll(&self) -> f64 {
        /// SplitMix64's state increment (the golden ratio in 64 bits), as `rand_xoshiro::SplitMix64` adds it.
        const SPLITMIX64_STEP: u64 = 0x9E37_79B9_7F4A_7C15;
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let state = self.config.seed.wrapping_add(n.wrapping_mul(SPLITMIX64_STEP));
        let z = SplitMix64::seed_from_u64(state).next_u64();
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn draw(&self, op: &'static str, location: &str) -> Fault {
        let c = &self.config;
        let u = self.roll();
        let fault = if u < c.error_rate {
            Fault::Error
        } else if u < c.error_rate + c.timeout_rate {
            Fault::Timeout
        } else if u < c.error_rate + c.timeout_rate + c.slow_rate {
            Fault::Slow
        } else {
            Fault::None
        };
        self.note(fault, op, location);
        fault
    }

    fn draw_part(&self, location: &str) -> Fault {
        if self.config.part_error_rate > 0.0 && self.roll() < self.config.part_error_rate {
            self.note(Fault::PartError, "put_part", location);
            return Fault::PartError;
        }
        self.draw("put_part", location)
    }

    fn note(&self, fault: Fault, op: &'static str, location: &str) {
        let slot = match fault {
            Fault::None => return,
            Fault::Error => 0,
            Fault::Timeout => 1,
            Fault::Slow => 2,
            Fault::PartError => 3,
        };
        self.tally[slot].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tierd_cold_faults_injected_total", "kind" => fault.label()).increment(1);
        debug!(op, key = location, fault = fault.label(), "cold tier: injecting a fault");
    }

    fn error(&self, fault: Fault, op: &'static str, location: &str) -> object_store::Error {
        let what = match fault {
            Fault::Timeout => format!("timed out after {} ms", self.config.timeout_ms),
            _ => "failed".to_string(),
        };
        object_store::Error::Generic {
            store: "FaultStore",
            source: format!("injected fault: {op} of {location:?} {what}").into(),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    fn slow(&self) -> Duration {
        Duration::from_millis(self.config.slow_ms)
    }

    /// Runs one request under `fault`. On a timeout the request is forwarded first when `forward_on_timeout`.
    async fn run<T, F>(
        &self,
        fault: Fault,
        op: &'static str,
        location: &str,
        forward_on_timeout: bool,
        request: F,
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        match fault {
            Fault::None => request.await,
            Fault::Slow => {
                tokio::time::sleep(self.slow()).await;
                request.await
            }
            Fault::Error | Fault::PartError => Err(self.error(fault, op, location)),
            Fault::Timeout => {
                if forward_on_timeout {
                    let _lost = request.await;
                }
                tokio::time::sleep(self.timeout()).await;
                Err(self.error(fault, op, location))
            }
        }
    }

    /// A listing or deletion stream: the fault is drawn once, when the stream is first polled.
    fn stream<T: Send + 'static>(
        self: &Arc<Self>,
        op: &'static str,
        location: String,
        start: impl FnOnce() -> BoxStream<'static, Result<T>> + Send + 'static,
    ) -> BoxStream<'static, Result<T>> {
        let this = Arc::clone(self);
        stream::once(async move {
            let fault = this.draw(op, &location);
            match fault {
                Fault::None => start(),
                Fault::Slow => {
                    tokio::time::sleep(this.slow()).await;
                    start()
                }
                _ => {
                    if fault == Fault::Timeout {
                        tokio::time::sleep(this.timeout()).await;
                    }
                    stream::once(futures::future::ready(Err(this.error(fault, op, &location)))).boxed()
                }
            }
        })
        .flatten()
        .boxed()
    }
}

/// Wraps a store and injects faults into every request; see the module documentation.
#[derive(Debug)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    injector: Arc<Injector>,
}

impl FaultStore {
    pub fn new(inner: Arc<dyn ObjectStore>, config: FaultConfig) -> Self {
        Self { inner, injector: Arc::new(Injector { config, draws: AtomicU64::new(0), tally: Default::default() }) }
    }

    /// A live view of the faults injected so far.
    pub fn counts(&self) -> FaultCounter {
        FaultCounter(Arc::clone(&self.injector))
    }
}

/// Reads the tallies of a [`FaultStore`] (kept by the `ColdStore` for status and tests).
#[derive(Debug, Clone)]
pub struct FaultCounter(Arc<Injector>);

impl FaultCounter {
    pub fn get(&self) -> FaultCounts {
        let t = |i: usize| self.0.tally[i].load(Ordering::Relaxed);
        FaultCounts { errors: t(0), timeouts: t(1), slow: t(2), part_errors: t(3) }
    }
}

impl std::fmt::Display for FaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for FaultStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let fault = self.injector.draw("put", location.as_ref());
        self.injector.run(fault, "put", location.as_ref(), true, self.inner.put_opts(location, payload, opts)).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        let fault = self.injector.draw("put_multipart", location.as_ref());
        let request = self.inner.put_multipart_opts(location, opts);
        let upload = self.injector.run(fault, "put_multipart", location.as_ref(), false, request).await?;
        Ok(Box::new(FaultUpload {
            inner: upload,
            location: location.to_string(),
            injector: Arc::clone(&self.injector),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { "head" } else { "get" };
        let fault = self.injector.draw(op, location.as_ref());
        self.injector.run(fault, op, location.as_ref(), true, self.inner.get_opts(location, options)).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let fault = self.injector.draw("get_ranges", location.as_ref());
        self.injector.run(fault, "get_ranges", location.as_ref(), true, self.inner.get_ranges(location, ranges)).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let inner = Arc::clone(&self.inner);
        self.injector.stream("delete", String::new(), move || inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let (inner, prefix) = (Arc::clone(&self.inner), prefix.cloned());
        let shown = prefix.as_ref().map(|p| p.to_string()).unwrap_or_default();
        self.injector.stream("list", shown, move || inner.list(prefix.as_ref()))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        let (inner, prefix, offset) = (Arc::clone(&self.inner), prefix.cloned(), offset.clone());
        let shown = prefix.as_ref().map(|p| p.to_string()).unwrap_or_default();
        self.injector.stream("list", shown, move || inner.list_with_offset(prefix.as_ref(), &offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let shown = prefix.map(|p| p.to_string()).unwrap_or_default();
        let fault = self.injector.draw("list", &shown);
        self.injector.run(fault, "list", &shown, false, self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let fault = self.injector.draw("copy", from.as_ref());
        self.injector.run(fault, "copy", from.as_ref(), true, self.inner.copy_opts(from, to, options)).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let fault = self.injector.draw("rename", from.as_ref());
        self.injector.run(fault, "rename", from.as_ref(), true, self.inner.rename_opts(from, to, options)).await
    }
}

#[derive(Debug)]
struct FaultUpload {
    inner: Box<dyn MultipartUpload>,
    location: String,
    injector: Arc<Injector>,
}

#[async_trait]
impl MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let fault = self.injector.draw_part(&self.location);
        let part = self.inner.put_part(data);
        let (injector, location) = (Arc::clone(&self.injector), self.location.clone());
        Box::pin(async move { injector.run(fault, "put_part", &location, true, part).await })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let fault = self.injector.draw("complete_multipart", &self.location);
        let injector = Arc::clone(&self.injector);
        injector.run(fault, "complete_multipart", &self.location, true, self.inner.complete()).await
    }

    async fn abort(&mut self) -> Result<()> {
        let fault = self.injector.draw("abort_multipart", &self.location);
        let injector = Arc::clone(&self.injector);
        injector.run(fault, "abort_multipart", &self.location, true, self.inner.abort()).await
    }
}

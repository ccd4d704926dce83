//! Durable hot-tier ingest.
//!
//! Request handlers validate and encode their batch ([`IngestBatch::encode`]: partition by UTC day, compress) in
//! parallel, then hand it to the single writer thread through a bounded queue; a full queue is backpressure (the
//! caller answers 503 and nothing is written). The writer takes every request waiting in the queue as one group and:
//!
//! 1. checks capacity for each request (hot-tier byte limit, free disk) and refuses whole requests that do not fit;
//! 2. stamps ingest sequence numbers and appends one frame per (request, segment) at each segment's committed
//!    length (`pwrite`), creating new segment files as needed (`hot.create`: file + header, fsync, directory fsync);
//! 3. fsyncs every touched segment file (`hot.fsync`);
//! 4. commits the new length, row count, time range and checksum of every touched segment in one catalog
//!    transaction (`hot.commit`), which is the moment the group becomes durable and visible;
//! 5. acknowledges every request of the group.
//!
//! A crash before step 4 leaves bytes past the committed length (a torn or unacknowledged tail) or a file the
//! catalog does not know; recovery cuts the former and quarantines the latter. A batch whose events fall on several
//! days touches several segments but is committed by one transaction, so it is never half-present.
//!
//! Open segments are sealed by size, age or date; `max_open_segments` is a hard cap on open segments (and so on
//! their file descriptors): a group is committed in parts of at most that many segments, the least recently written
//! others sealed first, and a batch on more days than that is refused ([`StoreError::BatchTooWide`]). Sealing is a
//! catalog commit that marks the segment immutable.

#[cfg(test)]
mod error_path_tests;
#[cfg(test)]
mod tests;
mod writer;

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tierd_codecs::{Event, EventRow, FrameBody, RowBatch};
use tokio::sync::oneshot;

use crate::context::StoreContext;
use crate::error::{Result, StoreError};
use crate::layout::day_of_ms;

/// Tuning of the hot tier. Defaults are the daemon's defaults.
#[derive(Debug, Clone)]
pub struct HotConfig {
    /// Seal an open segment once it holds this many bytes.
    pub seal_max_bytes: u64,
    /// Seal an open segment before it would hold more than this many events, so that every sealed segment can be
    /// re-encoded within the rewrite memory budget (rewrites decode every input event). A commit group is split so
    /// that no segment passes it, except by a single request's events of one day.
    pub seal_max_rows: u64,
    /// Seal an open segment this long after it was created.
    pub seal_max_age_ms: i64,
    /// Seal by date: an open segment of UTC day D is sealed once now >= max(end of D, its creation) + this, even
    /// before `seal_max_age_ms` (see [`sealed_by_date`]).
    pub seal_lateness_ms: i64,
    /// Most open segments at once, a hard cap: the least recently written are sealed to stay under it.
    pub max_open_segments: usize,
    /// Refuse ingest (503) once the hot tier holds this many bytes; 0 = no limit.
    pub max_bytes: u64,
    /// Refuse ingest (503) when the hot directory's file system has less free space than this.
    pub min_free_bytes: u64,
    /// Requests waiting for the writer; beyond it ingest is backpressured (503).
    pub queue_batches: usize,
    /// Most requests committed as one group.
    pub group_max_batches: usize,
}

impl Default for HotConfig {
    fn default() -> Self {
        Self {
            seal_max_bytes: 64 * 1024 * 1024,
            seal_max_rows: u64::MAX,
            seal_max_age_ms: 10 * 60 * 1000,
            seal_lateness_ms: 10 * 60 * 1000,
            max_open_segments: 256,
            max_bytes: 0,
            min_free_bytes: 1024 * 1024 * 1024,
            queue_batches: 1024,
            group_max_batches: 512,
        }
    }
}

/// One part of a batch: the events of one UTC day, encoded.
#[derive(Debug, Clone)]
pub struct BatchPart {
    pub day: i32,
    pub body: FrameBody,
}

/// A validated, encoded request, ready for the writer.
#[derive(Debug, Clone)]
pub struct IngestBatch {
    pub project: String,
    pub parts: Vec<BatchPart>,
    pub events: u64,
}

impl IngestBatch {
    /// Partitions `events` by UTC day of event time (keeping their order within a day) and encodes each part.
    /// CPU work, done on the caller's thread so request handlers encode in parallel.
    pub fn encode(project: String, mut events: Vec<Event>) -> Self {
        events.sort_by_key(|e| day_of_ms(e.time_ms));
        let parts = events
            .chunk_by(|a, b| day_of_ms(a.time_ms) == day_of_ms(b.time_ms))
            .map(|day_events| BatchPart { day: day_of_ms(day_events[0].time_ms), body: FrameBody::encode(day_events) })
            .collect();
        IngestBatch { project, parts, events: events.len() as u64 }
    }

    /// As [`IngestBatch::encode`], from the validated rows of [`tierd_codecs::parse_batch_rows`] (the ingest fast
    /// path: no JSON tree is built for the properties). Produces the same frames.
    pub fn encode_rows(project: String, batch: &RowBatch) -> Self {
        let mut rows: Vec<EventRow<'_>> = batch.iter().collect();
        rows.sort_by_key(|r| day_of_ms(r.time_ms()));
        let parts = rows
            .chunk_by(|a, b| day_of_ms(a.time_ms()) == day_of_ms(b.time_ms()))
            .map(|day_rows| BatchPart { day: day_of_ms(day_rows[0].time_ms()), body: FrameBody::encode_rows(day_rows) })
            .collect();
        IngestBatch { project, parts, events: rows.len() as u64 }
    }

    /// The bytes of the frames this batch appends (what it holds in memory until acknowledged).
    pub fn frame_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.body.frame_len() as u64).sum()
    }
}

/// What the writer answers to an accepted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The catalog generation that made the batch durable and visible.
    pub generation: u64,
    pub events: u64,
}

pub(crate) enum Msg {
    Append(IngestBatch, oneshot::Sender<Result<Appended>>),
    /// Seal what is due now (by the clock) and answer.
    SealCheck(oneshot::Sender<()>),
    /// Seal every open segment, then stop.
    Shutdown(oneshot::Sender<()>),
}

/// Called if the writer hits a failure it cannot continue from (the catalog refused a commit, or the writer thread
/// panicked: a broken invariant). The daemon shuts down on it.
pub type FatalHook = Arc<dyn Fn(String) + Send + Sync>;

/// Handle to the hot tier's writer thread.
pub struct HotTier {
    tx: SyncSender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for HotTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotTier").finish_non_exhaustive()
    }
}

impl HotTier {
    /// Starts the writer. Run [`crate::recovery::recover`] first: the writer assumes no segment is open.
    pub fn start(ctx: &StoreContext, config: HotConfig, on_fatal: FatalHook) -> Result<Self> {
        let hot_dir = ctx.layout.hot_dir();
        crate::durable::ensure_dir(ctx.fs.as_ref(), &hot_dir)?;
        let (tx, rx) = sync_channel(config.queue_batches.max(1));
        let writer = writer::Writer::new(ctx.clone(), config, on_fatal.clone(), rx);
        let thread = std::thread::Builder::new()
            .name("tierd-hot-writer".into())
            .spawn(move || {
                // A panic here is a bug; requests waiting on the writer get "shutting down" (503) and the daemon
                // stops, so that recovery runs on the next start.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.run())).is_err() {
                    on_fatal("the hot writer thread panicked".into());
                }
            })
            .map_err(|e| StoreError::io(hot_dir, e))?;
        Ok(Self { tx, thread: Mutex::new(Some(thread)) })
    }

    /// Appends a batch and waits until it is durable. Errors: [`StoreError::Backpressure`] when the queue is full,
    /// [`StoreError::HotTierFull`] when it does not fit; in both cases nothing was written.
    pub async fn append(&self, batch: IngestBatch) -> Result<Appended> {
        let (tx, rx) = oneshot::channel();
        match self.tx.try_send(Msg::Append(batch, tx)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(StoreError::Backpressure("the write queue is full; retry shortly".into()))
            }
            Err(TrySendError::Disconnected(_)) => return Err(StoreError::ShuttingDown),
        }
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Seals every segment that is due by size or age at the clock's current time.
    pub async fn seal_check(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::SealCheck(tx)).map_err(|_| StoreError::ShuttingDown)?;
        rx.await.map_err(|_| StoreError::ShuttingDown)
    }

    /// Seals all open segments and stops the writer. Requests queued before are answered first.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
        let handle = self.thread.lock().take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

/// Whether an open segment of UTC day `day`, created at `created_at_ms`, is due to be sealed by date at `now_ms`:
/// once the day is over (or, for a segment a late event opened after it, once that segment exists) by
/// `lateness_ms`.
///
/// The trade-off: events of day D that arrive after the seal open a new segment of D, which compaction merges into
/// D's columnar segments; a longer lateness means fewer such stragglers but a finished day waits longer before its
/// rows are re-encoded (and can move on to colder codecs and tiers).
pub fn sealed_by_date(day: i32, created_at_ms: i64, now_ms: i64, lateness_ms: i64) -> bool {
    let end_of_day_ms = (i64::from(day) + 1).saturating_mul(86_400_000);
    now_ms >= end_of_day_ms.max(created_at_ms).saturating_add(lateness_ms)
}

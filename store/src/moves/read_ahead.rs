//! Read-ahead for a series of moves to the cold tier (a `migrate` pass, moves by hand): while one segment uploads,
//! the next one's hot copy is read and checked on a thread of its own, so that the disk read and the checksums of
//! segment N+1 overlap the upload of segment N instead of following it.
//!
//! Why this keeps every crash-safe step as it was: reading the existing copy is a move's first step, and it has no
//! durable effect and no failpoint. The next move's intent, write, verify and commit happen only when the caller
//! executes that move, after this one has committed (or failed), in the order of ARCHITECTURE.md's table; a crash
//! while a copy is being read ahead loses a buffer, nothing else. A copy read ahead is used only if the segment's
//! record is still the one it was read under (same `updated_generation`, hot copy, size and checksum: the record the
//! move's commit is then guarded by); else it is discarded and the copy read again.
//!
//! Bounds: at most one segment is read ahead at a time (the caller names only the next one), and only when its size
//! fits `limit_bytes` (`passes.migrate.read_ahead_bytes`; 0 = off): a larger segment is read in its turn, as
//! without read-ahead, and counted as refused. So a series of moves holds at most the copy being uploaded plus
//! `limit_bytes`. The read draws its disk bytes from the IO budget, as the move's own read does. The thread is
//! spawned by the mover's thread, so on Linux it inherits its (background) nice value.
//!
//! Metrics: `tierd_move_read_ahead_total{outcome}` (`started`, `used`, `refused`: over the byte limit, `discarded`:
//! read but not used), `tierd_move_read_ahead_bytes` (gauge: bytes held read ahead) and
//! `tierd_move_read_ahead_wait_seconds` (how long a move waited for its copy read ahead to be ready).

use bytes::Bytes;

use crate::catalog::{BlockChecksums, Placement, SegmentMeta, SegmentState};
use crate::clock::Stopwatch;
use crate::context::StoreContext;
use crate::error::Result;
use crate::layout::SegmentId;

/// A hot copy read and verified against the catalog (size, crc32c), with its per-block checksums: what a move to the
/// cold tier uploads.
pub(crate) struct HotCopy {
    pub bytes: Bytes,
    pub blocks: BlockChecksums,
}

/// Reads and verifies `meta`'s hot copy, drawing its bytes from the IO budget's disk bucket.
pub(crate) fn read_hot_copy(ctx: &StoreContext, meta: &SegmentMeta) -> Result<HotCopy> {
    ctx.budget().acquire_disk_blocking(meta.bytes);
    let bytes = Bytes::from(crate::read::read_committed(&ctx.layout, meta)?);
    let blocks = BlockChecksums::compute(&bytes, BlockChecksums::DEFAULT_BLOCK_SIZE);
    Ok(HotCopy { bytes, blocks })
}

/// What a [`ReadAhead`] did, for tests and reports (the same counts go to the metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadAheadStats {
    /// Copies whose read was started ahead of their move.
    pub started: u64,
    /// Copies read ahead that their move used.
    pub used: u64,
    /// Next segments not read ahead because they are larger than the limit.
    pub refused: u64,
    /// Copies read ahead and not used: the segment changed, or another move (or none) came next.
    pub discarded: u64,
}

/// The read-ahead of one series of moves: create one per pass (or batch of moves by hand), hand it to each
/// [`super::Mover::execute_then`] with the move that comes next. Dropping it waits for a read still in progress
/// and frees its buffer.
pub struct ReadAhead {
    limit_bytes: u64,
    pending: Option<Pending>,
    stats: ReadAheadStats,
}

struct Pending {
    meta: SegmentMeta,
    read: std::thread::JoinHandle<Result<HotCopy>>,
}

impl ReadAhead {
    /// Reads ahead segments of at most `limit_bytes`; 0 turns read-ahead off.
    pub fn new(limit_bytes: u64) -> Self {
        Self { limit_bytes, pending: None, stats: ReadAheadStats::default() }
    }

    /// No read-ahead: every move reads its copy in its turn.
    pub fn off() -> Self {
        Self::new(0)
    }

    pub fn stats(&self) -> ReadAheadStats {
        self.stats
    }

    /// The copy of `meta` read ahead, if there is one and it was read under this very record (the read's own error
    /// included: it is the error reading now would give). A copy read ahead for another segment or under an
    /// older record is discarded.
    pub(crate) fn take(&mut self, meta: &SegmentMeta) -> Option<Result<HotCopy>> {
        let pending = self.pending.take()?;
        if !same_copy(&pending.meta, meta) {
            self.discard(pending);
            return None;
        }
        let waited = Stopwatch::start();
        let read = join(pending.read);
        metrics::histogram!("tierd_move_read_ahead_wait_seconds").record(waited.elapsed().as_secs_f64());
        metrics::gauge!("tierd_move_read_ahead_bytes").decrement(pending.meta.bytes as f64);
        self.count("used");
        self.stats.used += 1;
        Some(read)
    }

    /// Starts reading `next`'s hot copy on a thread of its own when `next` is a move that will upload one (a
    /// sealed columnar segment with a hot copy and no cold one, going `cold` or `both`) and it fits the limit. Call
    /// once the current move holds its own bytes: at most one segment is read ahead.
    pub(crate) fn start(&mut self, ctx: &StoreContext, next: Option<(SegmentId, Placement)>) {
        if let Some(pending) = self.pending.take() {
            self.discard(pending);
        }
        let Some((id, target)) = next else { return };
        if self.limit_bytes == 0 || !matches!(target, Placement::Cold | Placement::Both) {
            return;
        }
        let Some(meta) = ctx.catalog.snapshot().get(&id).map(|m| (**m).clone()) else { return };
        let uploads = meta.state == SegmentState::Sealed
            && meta.format == crate::catalog::Format::Parquet
            && meta.hot_path().is_some()
            && meta.cold_key().is_none();
        if !uploads {
            return;
        }
        if meta.bytes > self.limit_bytes {
            tracing::debug!(segment = %id, bytes = meta.bytes, limit = self.limit_bytes, "not read ahead: too large");
            self.count("refused");
            self.stats.refused += 1;
            return;
        }
        let (thread_ctx, thread_meta) = (ctx.clone(), meta.clone());
        let spawned = std::thread::Builder::new()
            .name("tierd-read-ahead".into())
            .spawn(move || read_hot_copy(&thread_ctx, &thread_meta));
        match spawned {
            Ok(read) => {
                metrics::gauge!("tierd_move_read_ahead_bytes").increment(meta.bytes as f64);
                self.count("started");
                self.stats.started += 1;
                self.pending = Some(Pending { meta, read });
            }
            // No thread: the move reads its copy in its turn, as without read-ahead.
            Err(e) => tracing::warn!(segment = %id, error = %e, "cannot start a read-ahead thread"),
        }
    }

    fn discard(&mut self, pending: Pending) {
        // Waited for, so that no more than one copy is ever held.
        drop(join(pending.read));
        metrics::gauge!("tierd_move_read_ahead_bytes").decrement(pending.meta.bytes as f64);
        self.count("discarded");
        self.stats.discarded += 1;
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!("tierd_move_read_ahead_total", "outcome" => outcome).increment(1);
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.discard(pending);
        }
    }
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("limit_bytes", &self.limit_bytes)
            .field("pending", &self.pending.as_ref().map(|p| p.meta.id))
            .field("stats", &self.stats)
            .finish()
    }
}

/// Whether a copy read under record `read` is the copy record `now` names, with the same bytes.
fn same_copy(read: &SegmentMeta, now: &SegmentMeta) -> bool {
    read.id == now.id
        && read.updated_generation == now.updated_generation
        && read.hot_path() == now.hot_path()
        && read.bytes == now.bytes
        && read.checksum == now.checksum
}

fn join(read: std::thread::JoinHandle<Result<HotCopy>>) -> Result<HotCopy> {
    read.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

//! The hot tier's single writer thread: group commit, sealing and their crash-safe ordering (see `super`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use tierd_codecs::SegmentHeader;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use super::{Appended, FatalHook, HotConfig, IngestBatch, Msg};
use crate::catalog::{CatalogChange, Codec, Format, Role, SegmentMeta, SegmentState};
use crate::clock::Stopwatch;
use crate::context::StoreContext;
use crate::durable::{self, HotFile};
use crate::error::{Result, StoreError};
use crate::layout::{Layout, Location, SegmentId};

/// How often the writer wakes up to seal by age when no request arrives.
const IDLE_TICK: Duration = Duration::from_millis(200);

struct OpenSegment {
    /// The record as committed (or, before the first commit, as it will be).
    meta: SegmentMeta,
    file: Box<dyn HotFile>,
    path: PathBuf,
    /// Whether the catalog knows this segment yet (a new file joins the catalog with its first commit).
    in_catalog: bool,
    last_write_ms: i64,
}

type Reply = oneshot::Sender<Result<Appended>>;

/// Per touched segment of a group: the frames to append and the record as it will be after the commit.
type Staged = HashMap<(String, i32), (Vec<u8>, SegmentMeta)>;

pub(super) struct Writer {
    ctx: StoreContext,
    config: HotConfig,
    on_fatal: FatalHook,
    rx: Receiver<Msg>,
    open: HashMap<(String, i32), OpenSegment>,
    next_seq: u64,
    /// Set after a catalog failure: nothing more is accepted.
    broken: Option<String>,
}

impl Writer {
    pub(super) fn new(ctx: StoreContext, config: HotConfig, on_fatal: FatalHook, rx: Receiver<Msg>) -> Self {
        let next_seq = ctx.catalog.snapshot().max_seq().map_or(1, |s| s + 1);
        Self { ctx, config, on_fatal, rx, open: HashMap::new(), next_seq, broken: None }
    }

    pub(super) fn run(mut self) {
        info!(next_seq = self.next_seq, "hot writer started");
        self.adopt_open_segments();
        loop {
            let first = match self.rx.recv_timeout(IDLE_TICK) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut group: Vec<(IngestBatch, Reply)> = Vec::new();
            let mut seal_waiters = Vec::new();
            let mut shutdown = None;
            let mut next = first;
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Append(b, r) => group.push((b, r)),
                    Msg::SealCheck(r) => seal_waiters.push(r),
                    Msg::Shutdown(r) => {
                        shutdown = Some(r);
                        break;
                    }
                }
                if group.len() < self.config.group_max_batches {
                    next = self.rx.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
            self.seal_due();
            for w in seal_waiters {
                let _ = w.send(());
            }
            if let Some(r) = shutdown {
                // Answer what was queued behind the shutdown request, then seal everything.
                while let Ok(msg) = self.rx.try_recv() {
                    if let Msg::Append(b, reply) = msg {
                        self.commit_group(vec![(b, reply)]);
                    }
                }
                self.seal(self.open.keys().cloned().collect(), "shutdown");
                let _ = r.send(());
                break;
            }
        }
        info!("hot writer stopped");
    }

    /// Takes over the segments the catalog still has open: recovery seals every open segment, unless the disk was
    /// too full for a catalog commit, in which case it leaves them open (their tails already cut back to the
    /// committed length) for the writer, which seals them by size, age or date as usual once there is room.
    fn adopt_open_segments(&mut self) {
        let snapshot = self.ctx.catalog.snapshot();
        for meta in snapshot.segments().filter(|m| m.state == SegmentState::Open) {
            let Some(location) = meta.hot_path() else { continue };
            let opened = self.ctx.resolve(location).and_then(|path| {
                let file = self.ctx.fs.open_rw(&path).map_err(|e| StoreError::io(&path, e))?;
                Ok((path, file))
            });
            match opened {
                Ok((path, file)) => {
                    info!(segment = %meta.id, "open segment left by recovery taken over by the writer");
                    let last_write_ms = meta.created_at_ms;
                    let seg = OpenSegment { meta: (**meta).clone(), file, path, in_catalog: true, last_write_ms };
                    self.open.insert((meta.project.clone(), meta.day), seg);
                }
                Err(e) => error!(segment = %meta.id, error = %e, "cannot open a segment left open; a restart seals it"),
            }
        }
    }

    fn fatal(&mut self, message: String) {
        error!(%message, "hot writer cannot continue");
        if self.broken.is_none() {
            (self.on_fatal)(message.clone());
        }
        self.broken = Some(message);
    }

    /// Capacity check for one request; `pending` is what earlier requests of the group will add.
    fn check_capacity(&self, hot_bytes: u64, free: Option<u64>, pending: u64, size: u64) -> Result<()> {
        let cfg = &self.config;
        if cfg.max_bytes > 0 && hot_bytes + pending + size > cfg.max_bytes {
            return Err(StoreError::HotTierFull(format!(
                "the hot tier holds {} bytes and its limit (hot.max_bytes) is {} bytes",
                hot_bytes + pending,
                cfg.max_bytes
            )));
        }
        if let Some(free) = free {
            if free < cfg.min_free_bytes + pending + size {
                return Err(StoreError::HotTierFull(format!(
                    "{free} bytes free on the hot disk, below hot.min_free_bytes = {}",
                    cfg.min_free_bytes
                )));
            }
        }
        Ok(())
    }

    fn commit_group(&mut self, group: Vec<(IngestBatch, Reply)>) {
        let started = Stopwatch::start();
        if let Some(why) = &self.broken {
            for (_, reply) in group {
                let _ = reply.send(Err(StoreError::WriterStopped { reason: why.clone() }));
            }
            return;
        }
        let snapshot = self.ctx.catalog.snapshot();
        let hot_bytes = snapshot.hot_bytes();
        let free = fs4::available_space(self.ctx.layout.hot_dir()).ok();
        let mut accepted = Vec::with_capacity(group.len());
        let mut pending = 0u64;
        for (batch, reply) in group {
            let size = batch.frame_bytes();
            match self.check_capacity(hot_bytes, free, pending, size) {
                Ok(()) => {
                    pending += size;
                    accepted.push((batch, reply));
                }
                Err(e) => {
                    metrics::counter!("tierd_ingest_rejected_total", "reason" => "hot_full").increment(1);
                    let _ = reply.send(Err(e));
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        // `hot.max_open_segments` is a hard cap: a group is committed in parts of at most that many segments, and
        // room is made before each part by sealing the least recently written segments outside it.
        let max_open = self.config.max_open_segments.max(1);
        let mut parts = 0;
        let mut rest = accepted.into_iter().peekable();
        let max_rows = self.config.seal_max_rows.max(1);
        while rest.peek().is_some() {
            let mut keys: HashSet<(String, i32)> = HashSet::new();
            // Events this part appends per segment: a part ends before one of them would pass `seal_max_rows`.
            let mut rows: HashMap<(String, i32), u64> = HashMap::new();
            let mut part = Vec::new();
            while let Some((batch, _)) = rest.peek() {
                let new: Vec<_> =
                    batch.parts.iter().map(|p| (batch.project.clone(), p.day)).filter(|k| !keys.contains(k)).collect();
                if !part.is_empty() && keys.len() + new.len() > max_open {
                    break;
                }
                let too_many_rows = batch.parts.iter().any(|p| {
                    let before = rows.get(&(batch.project.clone(), p.day)).copied().unwrap_or(0);
                    before > 0 && before + u64::from(p.body.count) > max_rows
                });
                if !part.is_empty() && too_many_rows {
                    break;
                }
                for p in &batch.parts {
                    *rows.entry((batch.project.clone(), p.day)).or_default() += u64::from(p.body.count);
                }
                if part.is_empty() && new.len() > max_open {
                    // Refused by the HTTP layer's `ingest.max_days_per_request` already; the store keeps its cap.
                    let (_, reply) = rest.next().expect("peeked");
                    // Counted by the caller (the HTTP layer's `too_many_days`), as a refusal of the whole request.
                    let _ = reply.send(Err(StoreError::BatchTooWide { days: new.len(), max: max_open }));
                    continue;
                }
                keys.extend(new);
                part.push(rest.next().expect("peeked"));
            }
            if part.is_empty() {
                continue;
            }
            parts += 1;
            self.seal_full(&rows, max_rows);
            self.make_room(&keys, max_open);
            self.commit_part(part, started);
        }
        if parts > 1 {
            metrics::counter!("tierd_hot_group_splits_total").increment(1);
        }
    }

    /// Seals, in one commit, the open segments that already hold events and would pass `max_rows` with the `rows`
    /// the next part appends to them (`hot.seal_max_events`); the part then opens new ones.
    fn seal_full(&mut self, rows: &HashMap<(String, i32), u64>, max_rows: u64) {
        let full: Vec<_> = rows
            .iter()
            .filter(|(k, added)| {
                self.open.get(*k).is_some_and(|s| s.meta.rows > 0 && s.meta.rows.saturating_add(**added) > max_rows)
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !full.is_empty() {
            metrics::counter!("tierd_hot_sealed_by_events_total").increment(full.len() as u64);
            self.seal(full, "event count (hot.seal_max_events)");
        }
    }

    /// Seals, in one commit, the least recently written open segments outside `keys` so that `keys` fit under
    /// `max_open` open segments.
    fn make_room(&mut self, keys: &HashSet<(String, i32)>, max_open: usize) {
        let missing = keys.iter().filter(|k| !self.open.contains_key(*k)).count();
        let excess = (self.open.len() + missing).saturating_sub(max_open);
        if excess == 0 {
            return;
        }
        let mut others: Vec<_> =
            self.open.iter().filter(|(k, _)| !keys.contains(*k)).map(|(k, s)| (s.last_write_ms, k.clone())).collect();
        others.sort();
        let lru = others.into_iter().take(excess).map(|(_, k)| k).collect();
        self.seal(lru, "too many open segments (hot.max_open_segments)");
    }

    /// Writes and commits one part of a group (at most `hot.max_open_segments` segments) and answers its requests.
    fn commit_part(&mut self, accepted: Vec<(IngestBatch, Reply)>, started: Stopwatch) {
        // An earlier part's catalog failure stopped the writer: nothing more is written.
        if let Some(why) = &self.broken {
            for (_, reply) in accepted {
                let _ = reply.send(Err(StoreError::WriterStopped { reason: why.clone() }));
            }
            return;
        }
        let batches: Vec<&IngestBatch> = accepted.iter().map(|(b, _)| b).collect();
        match self.write_and_commit(&batches) {
            Ok(generation) => {
                let events: u64 = batches.iter().map(|b| b.events).sum();
                metrics::counter!("tierd_hot_groups_total").increment(1);
                metrics::histogram!("tierd_hot_group_batches").record(accepted.len() as f64);
                metrics::histogram!("tierd_hot_group_events").record(events as f64);
                metrics::histogram!("tierd_hot_commit_seconds").record(started.elapsed().as_secs_f64());
                for (b, reply) in accepted {
                    let _ = reply.send(Ok(Appended { generation, events: b.events }));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for (_, reply) in accepted {
                    let err = match &e {
                        StoreError::HotTierFull(m) => StoreError::HotTierFull(m.clone()),
                        StoreError::Io { path, source } => {
                            StoreError::io(path.clone(), std::io::Error::new(source.kind(), msg.clone()))
                        }
                        StoreError::WriterStopped { reason } => StoreError::WriterStopped { reason: reason.clone() },
                        _ => StoreError::WriteFailed { reason: msg.clone() },
                    };
                    let _ = reply.send(Err(err));
                }
            }
        }
    }

    /// Steps 2-4 for a group of accepted requests. On an I/O error every touched file is cut back to its committed
    /// length and nothing of the group is acknowledged.
    fn write_and_commit(&mut self, batches: &[&IngestBatch]) -> Result<u64> {
        let now = self.ctx.clock.now_ms();
        // Stage: frames per segment, and each touched segment's record as it will be after the commit.
        let mut staged: Staged = HashMap::new();
        let seq_before = self.next_seq;
        for batch in batches {
            for part in &batch.parts {
                let key = (batch.project.clone(), part.day);
                if let Err(e) = self.ensure_open(&key, now, &staged) {
                    self.next_seq = seq_before;
                    return Err(self.io_failure(e, &staged));
                }
                let entry = staged.entry(key.clone()).or_insert_with(|| (Vec::new(), self.open[&key].meta.clone()));
                let (buf, meta) = entry;
                let body = &part.body;
                let base_seq = self.next_seq;
                self.next_seq += body.count as u64;
                body.write_frame(base_seq, buf);
                if meta.rows == 0 {
                    meta.min_time_ms = body.min_time_ms;
                    meta.max_time_ms = body.max_time_ms;
                    meta.min_seq = base_seq;
                } else {
                    meta.min_time_ms = meta.min_time_ms.min(body.min_time_ms);
                    meta.max_time_ms = meta.max_time_ms.max(body.max_time_ms);
                }
                meta.max_seq = self.next_seq - 1;
                meta.rows += body.count as u64;
            }
        }
        // Write every touched segment at its committed length, then fsync each.
        let mut bytes_written = 0u64;
        for (key, (buf, meta)) in staged.iter_mut() {
            let seg = &self.open[key];
            let offset = seg.meta.bytes;
            let written = seg.file.write_all_at(buf, offset).and_then(|_| self.ctx.failpoints.hit("hot.write"));
            if let Err(e) = written {
                self.next_seq = seq_before;
                let err = StoreError::io(&seg.path, e);
                return Err(self.io_failure(err, &staged));
            }
            meta.bytes = offset + buf.len() as u64;
            meta.checksum = crc32c::crc32c_append(seg.meta.checksum, buf);
            bytes_written += buf.len() as u64;
        }
        for key in staged.keys() {
            let seg = &self.open[key];
            if let Err(e) = seg.file.sync_data().and_then(|_| self.ctx.failpoints.hit("hot.fsync")) {
                self.next_seq = seq_before;
                let err = StoreError::io(&seg.path, e);
                return Err(self.io_failure(err, &staged));
            }
            metrics::counter!("tierd_hot_fsyncs_total").increment(1);
        }
        // The commit point: one transaction for every touched segment.
        let changes = staged.values().map(|(_, m)| CatalogChange::Put(m.clone())).collect();
        let generation = match self.ctx.catalog.commit(changes) {
            Ok(g) => {
                // The group is durable; a crash here loses only the acknowledgements.
                if let Err(e) = self.ctx.failpoints.hit("hot.commit") {
                    warn!(error = %e, "failpoint after commit");
                }
                g
            }
            Err(e @ StoreError::DiskReserve(_)) => {
                // Refused by the catalog's headroom before sled was touched: nothing is committed, so the group is
                // cut back and refused like a full disk, and the writer goes on.
                self.next_seq = seq_before;
                self.cut_back(&staged);
                metrics::counter!("tierd_hot_write_errors_total", "kind" => "catalog_headroom").increment(1);
                return Err(StoreError::HotTierFull(e.to_string()));
            }
            Err(e) => {
                self.next_seq = seq_before;
                let reason = format!("commit of a write group failed: {e}");
                // The outcome is unknown: sled may have applied the transaction (a failed flush after it), in which
                // case the bytes just written are committed data. Leave them: recovery cuts whatever lies past the
                // committed length the catalog holds after the restart, and keeps what it names. Stop accepting
                // writes until then. (Cutting them here made a committed group "corrupt" after the restart.)
                self.fatal(reason.clone());
                return Err(StoreError::WriterStopped { reason });
            }
        };
        metrics::counter!("tierd_hot_bytes_written_total").increment(bytes_written);
        for (key, (_, meta)) in staged {
            let seg = self.open.get_mut(&key).expect("staged segment is open");
            seg.meta = meta;
            seg.in_catalog = true;
            seg.last_write_ms = now;
        }
        Ok(generation)
    }

    /// After a failed write: cut every touched file back to its committed length. Returns the error to report.
    fn io_failure(&self, err: StoreError, staged: &Staged) -> StoreError {
        self.cut_back(staged);
        match err {
            StoreError::Io { path, source } if durable::is_out_of_space(&source) => {
                metrics::counter!("tierd_hot_write_errors_total", "kind" => "enospc").increment(1);
                StoreError::HotTierFull(format!("no space left writing {}", path.display()))
            }
            other => {
                metrics::counter!("tierd_hot_write_errors_total", "kind" => "io").increment(1);
                warn!(error = %other, "hot write failed; the group was not acknowledged");
                other
            }
        }
    }

    /// Cuts every touched file back to its committed length.
    fn cut_back(&self, staged: &Staged) {
        for key in staged.keys() {
            let seg = &self.open[key];
            if let Err(e) = seg.file.set_len(seg.meta.bytes) {
                error!(segment = %seg.meta.id, path = %seg.path.display(), error = %e, "cannot cut back a failed write");
            }
        }
    }

    /// Step `hot.create`: a new segment file with its header, durable before anything is appended.
    /// `staged` segments are part of the group being written and are never the ones sealed to make room.
    fn ensure_open(&mut self, key: &(String, i32), now: i64, staged: &Staged) -> Result<()> {
        if self.open.contains_key(key) {
            return Ok(());
        }
        if self.open.len() >= self.config.max_open_segments.max(1) {
            let lru = self
                .open
                .iter()
                .filter(|(k, _)| !staged.contains_key(*k))
                .min_by_key(|(_, s)| s.last_write_ms)
                .map(|(k, _)| k.clone());
            if let Some(k) = lru {
                self.seal(vec![k], "too many open segments");
            }
        }
        let (project, day) = key;
        let id = SegmentId::generate(now);
        let location = Layout::hot_location(project, id);
        let path = self.ctx.resolve(&location)?;
        let header = SegmentHeader { segment_id: id.to_string(), project: project.clone(), day: *day }.encode();
        let file = durable::create_new_synced(self.ctx.fs.as_ref(), &path, &header)?;
        self.ctx.failpoints.hit("hot.create").map_err(|e| StoreError::io(&path, e))?;
        debug!(segment = %id, project = %project, day, "hot segment created");
        metrics::counter!("tierd_hot_segments_created_total").increment(1);
        let meta = SegmentMeta {
            id,
            project: project.clone(),
            day: *day,
            state: SegmentState::Open,
            format: Format::Rows,
            codec: Codec::Lz4,
            locations: vec![Location::hot(location)],
            dropped: Vec::new(),
            min_time_ms: 0,
            max_time_ms: 0,
            rows: 0,
            bytes: header.len() as u64,
            checksum: crc32c::crc32c(&header),
            min_seq: 0,
            max_seq: 0,
            created_at_ms: now,
            sealed_at_ms: None,
            created_generation: 0,
            updated_generation: 0,
            retired: None,
            blocks: None,
            placed_at_ms: None,
            role: Role::Data,
        };
        self.open.insert(key.clone(), OpenSegment { meta, file, path, in_catalog: false, last_write_ms: now });
        Ok(())
    }

    fn seal_due(&mut self) {
        let now = self.ctx.clock.now_ms();
        let cfg = &self.config;
        let due: Vec<_> = self
            .open
            .iter()
            .filter(|(_, s)| {
                s.meta.bytes >= cfg.seal_max_bytes
                    || s.meta.rows >= cfg.seal_max_rows
                    || now - s.meta.created_at_ms >= cfg.seal_max_age_ms
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !due.is_empty() {
            self.seal(due, "size or age");
        }
        let lateness_ms = self.config.seal_lateness_ms;
        let by_date: Vec<_> = self
            .open
            .iter()
            .filter(|((_, day), s)| super::sealed_by_date(*day, s.meta.created_at_ms, now, lateness_ms))
            .map(|(k, _)| k.clone())
            .collect();
        if !by_date.is_empty() {
            metrics::counter!("tierd_hot_sealed_by_date_total").increment(by_date.len() as u64);
            self.seal(by_date, "day over (hot.seal_lateness_secs)");
        }
    }

    /// Seals the given open segments in one catalog commit. A segment that never got a committed row is only a
    /// header the catalog never knew: its file is removed instead.
    fn seal(&mut self, keys: Vec<(String, i32)>, reason: &str) {
        if self.broken.is_some() {
            return;
        }
        // A seal is a catalog commit: below the catalog's headroom the segments stay open (still readable, still
        // appendable) and are sealed at a later tick once there is room; a restart's recovery seals them too.
        if let Err(e) = self.ctx.catalog.check_headroom("seal") {
            debug!(error = %e, reason, "seal deferred: no room for a catalog commit");
            return;
        }
        let now = self.ctx.clock.now_ms();
        let mut changes = Vec::new();
        let mut sealed = Vec::new();
        for key in keys {
            let Some(seg) = self.open.remove(&key) else { continue };
            if !seg.in_catalog {
                if let Err(e) = self.ctx.fs.remove_file(&seg.path) {
                    warn!(segment = %seg.meta.id, error = %e, "cannot remove an empty, uncommitted segment file");
                }
                continue;
            }
            // A failed write may have left bytes past the committed length; the sealed file is exactly `bytes`.
            if let Ok(len) = seg.file.len() {
                if len != seg.meta.bytes {
                    if let Err(e) = seg.file.set_len(seg.meta.bytes).and_then(|_| seg.file.sync_data()) {
                        error!(segment = %seg.meta.id, error = %e, "cannot cut a segment to its committed length");
                    }
                }
            }
            let mut meta = seg.meta.clone();
            meta.state = SegmentState::Sealed;
            meta.sealed_at_ms = Some(now);
            sealed.push((meta.id, meta.rows, meta.bytes));
            changes.push(CatalogChange::Put(meta));
        }
        if changes.is_empty() {
            return;
        }
        if let Err(e) = self.ctx.failpoints.hit("hot.seal") {
            warn!(error = %e, "seal skipped by failpoint; the segments stay open");
            return;
        }
        match self.ctx.catalog.commit(changes) {
            Ok(generation) => {
                metrics::counter!("tierd_hot_segments_sealed_total").increment(sealed.len() as u64);
                for (id, rows, bytes) in sealed {
                    info!(segment = %id, rows, bytes, generation, reason, "hot segment sealed");
                }
            }
            Err(e) => self.fatal(format!("commit of a seal failed: {e}")),
        }
    }
}

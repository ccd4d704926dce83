//! Moves: a segment's bytes copied between the hot directory and the cold object store.
//!
//! `migrate` (hot -> cold), `promote` (cold -> hot) and "keep on both" are one operation, [`Mover::execute`], with
//! a target placement. Every move follows the same crash-safe order (see ARCHITECTURE.md):
//!
//! 1. read the existing copy and verify it against the catalog (size, crc32c);
//! 2. `move.intent`: record the new copy's location durably in the catalog's `moves` tree;
//! 3. `move.write`: write the new copy at a fresh location (an object key or a file path never used before;
//!    create-only, fsync for files);
//! 4. `move.verify`: check the new copy: a file is read back and its size and crc32c compared; an object by the
//!    server's own checksum where it gives one (`cold.verify = "auto"`: an S3 ETag equal to the MD5 computed here,
//!    [`crate::verify`], then a HEAD for its size), else read back like a file;
//! 5. `move.commit`: ONE catalog transaction records the new copy among the segment's locations, moves the copy
//!    it replaces (if any) to `dropped`, and clears the intent; it fails, changing nothing, if the segment changed
//!    since step 1 (a concurrent rewrite retired it, another move ran).
//!
//! A series of moves (a `migrate` pass) runs through [`Mover::execute_then`], which reads the next segment's hot
//! copy ahead while this one uploads ([`ReadAhead`]): step 1 of move N+1 overlaps steps 3-4 of move N; steps 2-5 of
//! each move still run in order, one move after the other.
//!
//! The replaced copy is deleted only later, by garbage collection, after leases and the grace period. A crash
//! before step 5 leaves an intent whose copy recovery deletes ([`crate::recovery::recover`]); the old copy
//! still serves. A crash after it leaves the new state, whole. So at every instant at least one verified copy serves.

use bytes::Bytes;
use serde::Serialize;
use tracing::{info, warn};

use crate::catalog::{
    BlockChecksums, CatalogChange, DroppedLocation, Format, Intent, IntentKind, Placement, SegmentMeta, SegmentState,
};
use crate::clock::Stopwatch;
use crate::cold::VerifyMode;
use crate::context::StoreContext;
use crate::error::{Result, StoreError};
use crate::layout::{Layout, Location, SegmentId, Tier};
use crate::verify::check_copy;

mod read_ahead;

pub use read_ahead::{ReadAhead, ReadAheadStats};

/// Parses where a move should leave a segment's live copies (a [`Placement`]: `cold` to migrate, `hot` to promote,
/// `both` for a hot copy of a cold segment, for reads that must not wait for the object store), as
/// `POST /v1/admin/move` names it.
pub fn parse_target(s: &str) -> std::result::Result<Placement, String> {
    Placement::from_label(s).ok_or_else(|| format!("unknown move target {s:?}; expected cold, hot or both"))
}

/// What one move did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MoveOutcome {
    pub segment: SegmentId,
    /// Placement before and after.
    pub from: Placement,
    pub to: Placement,
    /// Bytes copied (0 when the move only dropped a copy or had nothing to do).
    pub bytes_copied: u64,
    /// The copy written, if any.
    pub new_location: Option<Location>,
    /// The copy taken out of service (deleted later by gc), if any.
    pub dropped: Option<Location>,
    /// How the new copy was checked before the commit, if one was written.
    pub verified_by: Option<VerifyMethod>,
}

crate::labelled_enum! {
    /// How a move checked the copy it wrote before its commit (the API's `verified_by`).
    pub enum VerifyMethod {
        /// The server's ETag was the MD5 of the bytes sent (the server checksummed what it received), and a HEAD
        /// found the object with its size.
        Etag = "etag",
        /// Read back whole; size and crc32c compared.
        ReadBack = "read_back",
    }
}

/// Carries out moves. Blocking: call from a blocking thread (it drives the object store through the context's
/// runtime handle).
#[derive(Debug)]
pub struct Mover {
    ctx: StoreContext,
}

impl Mover {
    pub fn new(ctx: StoreContext) -> Self {
        Self { ctx }
    }

    /// Moves segment `id` to `target`. Fails, changing nothing visible, when the segment is not a sealed segment,
    /// when a row segment is asked to go cold (the cold tier holds columnar segments only: cold reads are ranged
    /// Parquet reads), or when any step fails; the caller reports the error and goes on.
    pub fn execute(&self, id: SegmentId, target: Placement) -> Result<MoveOutcome> {
        self.execute_then(id, target, &mut ReadAhead::off(), None)
    }

    /// [`Mover::execute`], one of a series: `next` is the move the caller will execute after this one, whose hot
    /// copy `read_ahead` starts reading (when it will be uploaded and fits its limit) as soon as this move holds its
    /// own bytes; this move uses the copy read ahead for it by the previous call, if it is still the record's.
    pub fn execute_then(
        &self,
        id: SegmentId,
        target: Placement,
        read_ahead: &mut ReadAhead,
        next: Option<(SegmentId, Placement)>,
    ) -> Result<MoveOutcome> {
        let started = Stopwatch::start();
        let result = self.execute_inner(id, target, read_ahead, next);
        let outcome = match &result {
            Ok(o) if o.from == o.to => "noop",
            Ok(_) => "ok",
            Err(StoreError::StalePlan(_)) => "stale",
            Err(_) => "error",
        };
        metrics::counter!("tierd_moves_total", "to" => target.label(), "outcome" => outcome).increment(1);
        metrics::histogram!("tierd_move_seconds", "to" => target.label()).record(started.elapsed().as_secs_f64());
        if let Ok(o) = &result {
            if let Some(l) = &o.new_location {
                metrics::counter!("tierd_moved_bytes_total", "to" => l.tier.label()).increment(o.bytes_copied);
            }
        }
        if let Err(e) = &result {
            warn!(segment = %id, to = target.label(), error = %e, "move failed");
        }
        result
    }

    fn execute_inner(
        &self,
        id: SegmentId,
        target: Placement,
        read_ahead: &mut ReadAhead,
        next: Option<(SegmentId, Placement)>,
    ) -> Result<MoveOutcome> {
        let snapshot = self.ctx.catalog.snapshot();
        let meta = snapshot.get(&id).cloned().ok_or(StoreError::SegmentNotFound { id })?;
        if meta.state != SegmentState::Sealed {
            return Err(StoreError::StalePlan(format!("segment {id} is {:?}; only sealed segments move", meta.state)));
        }
        let (has_hot, has_cold) = (meta.hot_path().is_some(), meta.cold_key().is_some());
        let want_hot = matches!(target, Placement::Hot | Placement::Both);
        let want_cold = matches!(target, Placement::Cold | Placement::Both);
        if want_cold && meta.format != Format::Parquet {
            return Err(StoreError::InvalidMove(format!(
                "segment {id} is a row segment; only columnar segments go to the cold tier (run the reencode pass \
                 first)"
            )));
        }
        let from = meta.placement();
        let mut outcome = MoveOutcome {
            segment: id,
            from,
            to: from,
            bytes_copied: 0,
            new_location: None,
            dropped: None,
            verified_by: None,
        };
        if has_hot == want_hot && has_cold == want_cold {
            return Ok(outcome);
        }
        let now = self.ctx.clock.now_ms();

        // Steps 1-4: the new copy, when the target needs one.
        let new_location = if want_cold && !has_cold {
            let (location, blocks, method) = self.copy_to_cold(&meta, now, read_ahead, next)?;
            outcome.verified_by = Some(method);
            Some((location, Some(blocks)))
        } else if want_hot && !has_hot {
            read_ahead.start(&self.ctx, next);
            outcome.verified_by = Some(VerifyMethod::ReadBack);
            Some((self.copy_to_hot(&meta, now)?, None))
        } else {
            read_ahead.start(&self.ctx, next);
            None
        };

        // Step 5: one transaction.
        let mut next = (*meta).clone();
        if let Some((l, blocks)) = &new_location {
            next.locations.push(l.clone());
            if let Some(blocks) = blocks {
                next.blocks = Some(blocks.clone());
            }
        }
        let new_location = new_location.map(|(l, _)| l);
        let drop_tier = match target {
            Placement::Cold if has_hot => Some(Tier::Hot),
            Placement::Hot if has_cold => Some(Tier::Cold),
            _ => None,
        };
        if let Some(tier) = drop_tier {
            let i = next.locations.iter().position(|l| l.tier == tier).expect("the copy being dropped exists");
            let location = next.locations.remove(i);
            outcome.dropped = Some(location.clone());
            next.dropped.push(DroppedLocation { location, at_ms: now, generation: 0 });
        }
        next.locations.sort_by_key(|l| l.tier);
        next.placed_at_ms = Some(now);
        let mut changes = vec![
            CatalogChange::Expect { id, updated_generation: meta.updated_generation },
            CatalogChange::Put(next.clone()),
        ];
        if let Some(l) = &new_location {
            changes.push(CatalogChange::ClearIntent(l.clone()));
        }
        match self.ctx.catalog.commit(changes) {
            Ok(generation) => {
                if let Err(e) = self.ctx.failpoints.hit("move.commit") {
                    warn!(error = %e, "failpoint after the move commit");
                }
                outcome.to = next.placement();
                outcome.bytes_copied = if new_location.is_some() { meta.bytes } else { 0 };
                outcome.new_location = new_location;
                info!(
                    segment = %id,
                    from = outcome.from.label(),
                    to = outcome.to.label(),
                    bytes = outcome.bytes_copied,
                    generation,
                    "move committed"
                );
                Ok(outcome)
            }
            Err(e) => {
                if let (StoreError::StalePlan(_), Some(l)) = (&e, &new_location) {
                    // Nothing was committed: the new copy is known to be unreferenced.
                    self.roll_back(id, l);
                }
                // Any other failure: whether the transaction reached the disk is unknown; recovery decides from the
                // catalog (an intent still present means "not committed").
                Err(e)
            }
        }
    }

    /// Hot -> cold: read and verify the hot copy (or take the copy `read_ahead` read for it), start reading `next`'s
    /// ahead, upload this one to a fresh key, verify the upload ([`Mover::verify_upload`]). Returns the new
    /// location, the block checksums cold reads verify against, and how the upload was verified.
    fn copy_to_cold(
        &self,
        meta: &SegmentMeta,
        now: i64,
        read_ahead: &mut ReadAhead,
        next: Option<(SegmentId, Placement)>,
    ) -> Result<(Location, BlockChecksums, VerifyMethod)> {
        let ctx = &self.ctx;
        let copy = match read_ahead.take(meta) {
            Some(copy) => copy,
            None => read_ahead::read_hot_copy(ctx, meta),
        };
        // Started whether this copy is good or not: the next move does not depend on this one.
        read_ahead.start(ctx, next);
        let read_ahead::HotCopy { bytes, blocks } = copy?;
        let key = Layout::cold_key(&meta.project, meta.day, meta.id, now, meta.format.extension());
        let location = Location::cold(key);
        ctx.catalog.record_intents(&[Intent::new(meta.id, location.clone(), IntentKind::Move, now)])?;
        let result = (|| {
            let key = location.path.as_str();
            let io = |e| StoreError::io(key, e);
            ctx.failpoints.hit("move.intent").map_err(io)?;
            // On S3 the ETag check needs the MD5 of what is sent: computed on a second thread while the upload
            // runs (it costs about as much CPU time as the upload takes on a fast link).
            let parts = ctx.cold.upload_parts(bytes.len() as u64);
            let wants_md5 = ctx.cold.verify_mode() == VerifyMode::Auto && ctx.cold.etags_are_md5s();
            let (answer, expected) = std::thread::scope(|scope| {
                let md5 = wants_md5.then(|| scope.spawn(|| crate::verify::s3_etag(&bytes, parts)));
                let answer = ctx.handle.block_on(ctx.cold.put_new_answered(key, bytes.clone()));
                (answer, md5.map(|h| h.join().expect("the MD5 thread does not panic")))
            });
            let answer = answer?;
            ctx.failpoints.hit("move.write").map_err(io)?;
            let method = self.verify_upload(meta, &location, &bytes, &answer, expected)?;
            ctx.failpoints.hit("move.verify").map_err(io)?;
            Ok(method)
        })();
        match result {
            Ok(method) => Ok((location, blocks, method)),
            Err(e) => {
                self.roll_back(meta.id, &location);
                Err(e)
            }
        }
    }

    /// Checks an uploaded copy before anything points to it. With `cold.verify = "auto"` and an ETag shaped like
    /// an S3 MD5 ETag: if it equals the MD5 of the bytes sent ([`crate::verify::s3_etag`] for the upload's part
    /// size; `expected` when the caller computed it already), the server checksummed exactly these bytes, and a
    /// HEAD checks the object is there with its size (a wrong size or a missing object is an error). Any other
    /// ETag proves nothing either way, and the object is read back whole and compared (size, crc32c), as always
    /// with `cold.verify = "read_back"`.
    fn verify_upload(
        &self,
        meta: &SegmentMeta,
        location: &Location,
        bytes: &Bytes,
        answer: &crate::cold::PutAnswer,
        expected: Option<String>,
    ) -> Result<VerifyMethod> {
        let key = location.path.as_str();
        let etag = answer.e_tag.as_deref().filter(|t| crate::verify::looks_like_s3_md5(t));
        let cold = &self.ctx.cold;
        if let (VerifyMode::Auto, Some(e_tag)) = (cold.verify_mode(), etag) {
            let expected = expected.unwrap_or_else(|| crate::verify::s3_etag(bytes, answer.part_size));
            if crate::verify::etag_matches(e_tag, &expected) {
                // The ETag vouches for the bytes in memory as they were sent; these must still be the catalog's
                // (a read back would compare with the catalog directly).
                let crc = crc32c::crc32c(bytes);
                if bytes.len() as u64 != meta.bytes || crc != meta.checksum {
                    return Err(StoreError::Corrupt {
                        id: meta.id,
                        message: format!(
                            "the bytes uploaded to {key} no longer match the catalog (crc32c {crc:08x}, catalog \
                             {:08x}): changed in memory",
                            meta.checksum
                        ),
                    });
                }
                let head = self.ctx.handle.block_on(cold.head(key))?;
                let found = head.as_ref().map(|h| (h.size, h.e_tag.clone()));
                let size_ok = head.as_ref().is_some_and(|h| h.size == meta.bytes);
                let tag_ok = head
                    .as_ref()
                    .is_some_and(|h| h.e_tag.as_deref().is_none_or(|t| crate::verify::etag_matches(t, &expected)));
                if !(size_ok && tag_ok) {
                    metrics::counter!("tierd_checksum_mismatches_total", "tier" => "cold").increment(1);
                    tracing::error!(
                        segment = %meta.id,
                        key,
                        found = ?found,
                        expected_len = meta.bytes,
                        expected_etag = %expected,
                        "uploaded object is not what was sent"
                    );
                    return Err(StoreError::Corrupt {
                        id: meta.id,
                        message: format!(
                            "cold copy {key}: the upload was answered with ETag {expected} but a HEAD finds {found:?} \
                             (expected {} bytes)",
                            meta.bytes
                        ),
                    });
                }
                metrics::counter!("tierd_move_verifications_total", "method" => "etag").increment(1);
                tracing::debug!(segment = %meta.id, key, e_tag, "upload verified by its ETag");
                return Ok(VerifyMethod::Etag);
            }
            tracing::debug!(
                segment = %meta.id,
                key,
                e_tag,
                expected = %expected,
                "ETag is not the MD5 of the upload; reading back"
            );
        }
        let back = self.ctx.handle.block_on(cold.get(key))?;
        check_copy(meta, location, &back)?;
        metrics::counter!("tierd_move_verifications_total", "method" => "read_back").increment(1);
        tracing::debug!(segment = %meta.id, key, "upload verified by reading it back");
        Ok(VerifyMethod::ReadBack)
    }

    /// Cold -> hot: fetch and verify the cold copy, write it create-only at a fresh path, fsync, read it back.
    fn copy_to_hot(&self, meta: &SegmentMeta, now: i64) -> Result<Location> {
        let ctx = &self.ctx;
        let key = meta.cold_key().expect("a segment without a hot copy has a cold one");
        let bytes = ctx.handle.block_on(ctx.cold.get(key))?;
        check_copy(meta, &Location::cold(key), &bytes)?;
        let location = Location::hot(Layout::hot_copy_location(&meta.project, meta.id, now, meta.format.extension()));
        // Before the intent is recorded (checked again right before the write, which comes after the IO budget).
        ctx.check_disk_reserve("move", meta.bytes)?;
        ctx.catalog.record_intents(&[Intent::new(meta.id, location.clone(), IntentKind::Move, now)])?;
        let result = (|| {
            ctx.failpoints.hit("move.intent").map_err(|e| StoreError::io(&location.path, e))?;
            ctx.budget().acquire_disk_blocking(meta.bytes);
            write_hot_copy(ctx, meta, &location, &bytes, "move.write")?;
            ctx.failpoints.hit("move.verify").map_err(|e| StoreError::io(&location.path, e))
        })();
        match result {
            Ok(()) => Ok(location),
            Err(e) => {
                self.roll_back(meta.id, &location);
                Err(e)
            }
        }
    }

    /// Undoes an uncommitted copy ([`crate::recovery::roll_back_copy`]) and counts it.
    fn roll_back(&self, id: SegmentId, location: &Location) {
        if crate::recovery::roll_back_copy(&self.ctx, id, location) {
            metrics::counter!("tierd_move_rollbacks_total").increment(1);
        }
    }
}

/// Writes `bytes`, a copy of segment `meta`, at the fresh hot `location` ([`crate::durable::write_new_verified`]:
/// create-only, fsync of the file and of its directory, failpoint `write_point`, read back) and checks what is on
/// disk against the catalog's size and crc32c. Used by promotions and by restores from the trash.
pub(crate) fn write_hot_copy(
    ctx: &StoreContext,
    meta: &SegmentMeta,
    location: &Location,
    bytes: &[u8],
    write_point: &'static str,
) -> Result<()> {
    let path = ctx.resolve(&location.path)?;
    ctx.check_disk_reserve(if write_point.starts_with("restore") { "restore" } else { "move" }, bytes.len() as u64)?;
    let back = crate::durable::write_new_verified(ctx.fs.as_ref(), &ctx.failpoints, &path, bytes, write_point)?;
    check_copy(meta, location, &back)
}

#[cfg(test)]
mod tests;

//! Rewrites: re-encode row segments to Parquet, compact small columnar segments, recompress along the codec ladder.
//!
//! Every rewrite follows the same crash-safe order (see ARCHITECTURE.md):
//!
//! 1. read and verify the inputs (checksums), deduplicate them (the copy ingested last wins) and encode the output
//!    in memory;
//! 2. `rewrite.intent`: record the output's id and location durably in the catalog's `intents`;
//! 3. `rewrite.write`: write the output file (`create_new`, never overwriting), fsync it and its directory;
//! 4. `rewrite.verify`: read the file back from disk, compare checksum and size, and decode its row count;
//! 5. `rewrite.commit`: ONE catalog transaction adds the output, retires the inputs and clears the intent.
//!
//! Inputs are deleted only later, by garbage collection, once no lease or in-process reader can still need them
//! and the grace period has passed. A crash before step 5 leaves an intent whose output recovery deletes (it was
//! never committed, so nobody can hold it); a crash after it leaves a normal, committed state.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use tierd_codecs::columnar::{self, CodecSpec, Compression, SegmentInfo};
use tierd_codecs::StoredEvent;
use tierd_policies::{RewriteAction, RewriteKind};
use tracing::{info, warn};

use crate::catalog::{
    Catalog, CatalogChange, Codec, Format, Retirement, RewriteIntent, SegmentMeta, SegmentState, Tier,
};
use crate::clock::Clock;
use crate::error::{Result, StoreError};
use crate::failpoint::Failpoints;
use crate::layout::{Layout, SegmentId};

/// What one executed rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteOutcome {
    pub inputs: Vec<SegmentId>,
    pub outputs: Vec<SegmentId>,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub rows_before: u64,
    pub rows_after: u64,
    pub duplicates_removed: u64,
}

/// Carries out planned rewrites. One rewrite at a time per instance (the passes run them in sequence).
pub struct Rewriter {
    layout: Layout,
    catalog: Arc<Catalog>,
    clock: Arc<dyn Clock>,
    failpoints: Arc<Failpoints>,
    /// Layout knobs of every columnar output (row group size, dictionary); the compression comes from the action.
    base_spec: CodecSpec,
}

impl std::fmt::Debug for Rewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewriter").field("base_spec", &self.base_spec).finish_non_exhaustive()
    }
}

/// The columnar compression a catalog codec stands for.
pub fn compression_of(codec: Codec) -> Compression {
    match codec {
        Codec::None => Compression::None,
        Codec::Lz4 => Compression::Lz4,
        Codec::Zstd(level) => Compression::Zstd(level as i32),
    }
}

impl Rewriter {
    pub fn new(
        layout: Layout,
        catalog: Arc<Catalog>,
        clock: Arc<dyn Clock>,
        failpoints: Arc<Failpoints>,
        base_spec: CodecSpec,
    ) -> Self {
        Self { layout, catalog, clock, failpoints, base_spec }
    }

    /// Executes one planned action. Fails without changing anything visible if an input is no longer a sealed
    /// segment (the plan went stale) or any step fails; the caller reports the error and goes on.
    pub fn execute(&self, action: &RewriteAction) -> Result<RewriteOutcome> {
        let started = Instant::now();
        let kind = kind_label(action.kind);
        let result = self.execute_inner(action);
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("tierd_rewrites_total", "pass" => kind, "outcome" => outcome).increment(1);
        metrics::histogram!("tierd_rewrite_seconds", "pass" => kind).record(started.elapsed().as_secs_f64());
        if let Ok(o) = &result {
            metrics::counter!("tierd_rewrite_bytes_before_total", "pass" => kind).increment(o.bytes_before);
            metrics::counter!("tierd_rewrite_bytes_after_total", "pass" => kind).increment(o.bytes_after);
            metrics::counter!("tierd_dedup_removed_total", "project" => action.project.clone())
                .increment(o.duplicates_removed);
        }
        result
    }

    fn execute_inner(&self, action: &RewriteAction) -> Result<RewriteOutcome> {
        let codec: Codec = action
            .output_codec
            .parse()
            .map_err(|e: String| StoreError::InvalidQuery(format!("action output codec: {e}")))?;
        let snapshot = self.catalog.snapshot();
        let mut inputs: Vec<Arc<SegmentMeta>> = Vec::with_capacity(action.inputs.len());
        for id in &action.inputs {
            let id: SegmentId = id.parse().map_err(|e| StoreError::InvalidQuery(format!("{e}")))?;
            let meta = snapshot.get(&id).ok_or(StoreError::SegmentNotFound { id })?;
            if meta.state != SegmentState::Sealed || meta.project != action.project || meta.day != action.day {
                return Err(StoreError::StalePlan(format!(
                    "segment {id} is {:?} of {}/{} now; the plan expected a sealed segment of {}/{}",
                    meta.state, meta.project, meta.day, action.project, action.day
                )));
            }
            inputs.push(meta.clone());
        }
        if inputs.is_empty() {
            return Err(StoreError::StalePlan("an action without inputs".into()));
        }
        let now = self.clock.now_ms();
        let output_id = SegmentId::generate(now);
        let info = SegmentInfo { segment_id: output_id.to_string(), project: action.project.clone(), day: action.day };
        let spec = CodecSpec { compression: compression_of(codec), ..self.base_spec.clone() };
        let rows_before: u64 = inputs.iter().map(|m| m.rows).sum();
        let bytes_before: u64 = inputs.iter().map(|m| m.bytes).sum();

        // Step 1: inputs -> output bytes, in memory.
        let single_parquet = inputs.len() == 1 && inputs[0].format == Format::Parquet;
        let (bytes, kept) = if action.kind == RewriteKind::Recompress && single_parquet {
            // Recompress without re-parsing events: the columnar data is re-written as it is.
            let input = crate::read::read_committed(&self.layout, &inputs[0])?;
            let out = columnar::recompress(&input, &spec).map_err(|e| self.corrupt(&inputs[0], e))?;
            (out, None)
        } else {
            let mut events: Vec<StoredEvent> = Vec::with_capacity(rows_before as usize);
            for m in &inputs {
                events.extend(crate::read::read_events(&self.layout, m)?);
            }
            let (kept, _removed) = tierd_codecs::dedup::dedup_split(&action.project, events);
            let out = columnar::encode(&info, &kept, &spec)
                .map_err(|e| StoreError::Corrupt { id: output_id, message: format!("encode: {e}") })?;
            (out, Some(kept))
        };
        let meta_out = columnar::read_meta(&bytes)
            .map_err(|e| StoreError::Corrupt { id: output_id, message: format!("re-reading output: {e}") })?;
        let rows_after = meta_out.rows;
        let (min_seq, max_seq) = match &kept {
            Some(k) => (k.iter().map(|e| e.seq).min().unwrap_or(0), k.iter().map(|e| e.seq).max().unwrap_or(0)),
            None => (inputs[0].min_seq, inputs[0].max_seq),
        };

        // Step 2: the intent, durable before any byte of the output exists.
        let location = format!("hot/{}/{output_id}.{}", action.project, Format::Parquet.extension());
        let intent = RewriteIntent {
            output: output_id,
            location: location.clone(),
            inputs: inputs.iter().map(|m| m.id).collect(),
            started_at_ms: now,
        };
        self.catalog.record_intent(&intent)?;
        let (checksum, verified) = match self.write_and_verify(&intent, &bytes, rows_after) {
            Ok(v) => v,
            Err(e) => {
                self.roll_back(&intent);
                return Err(e);
            }
        };

        // Step 5: one transaction swaps the inputs for the output. If it fails the output is not rolled back here:
        // whether the transaction reached the disk is unknown, and recovery decides from the catalog (an intent
        // still present means "not committed").
        let output = SegmentMeta {
            id: output_id,
            project: action.project.clone(),
            day: action.day,
            state: SegmentState::Sealed,
            tier: Tier::Hot,
            format: Format::Parquet,
            codec,
            location: intent.location.clone(),
            min_time_ms: verified.min_time_ms.unwrap_or(0),
            max_time_ms: verified.max_time_ms.unwrap_or(0),
            rows: rows_after,
            bytes: bytes.len() as u64,
            checksum,
            min_seq,
            max_seq,
            created_at_ms: inputs.iter().map(|m| m.created_at_ms).min().unwrap_or(now),
            sealed_at_ms: Some(now),
            created_generation: 0,
            updated_generation: 0,
            retired: None,
        };
        let mut changes = vec![CatalogChange::Put(output), CatalogChange::ClearIntent(output_id)];
        for m in &inputs {
            let mut r = (**m).clone();
            r.state = SegmentState::Retired;
            r.retired = Some(Retirement { at_ms: now, generation: 0, replaced_by: vec![output_id] });
            changes.push(CatalogChange::Put(r));
        }
        let generation = self.catalog.commit(changes)?;
        if let Err(e) = self.failpoints.hit("rewrite.commit") {
            warn!(error = %e, "failpoint after the rewrite commit");
        }
        let outcome = RewriteOutcome {
            inputs: inputs.iter().map(|m| m.id).collect(),
            outputs: vec![output_id],
            bytes_before,
            bytes_after: bytes.len() as u64,
            rows_before,
            rows_after,
            duplicates_removed: rows_before.saturating_sub(rows_after),
        };
        info!(
            kind = kind_label(action.kind),
            output = %output_id,
            inputs = ?outcome.inputs,
            rows_before,
            rows_after,
            bytes_before,
            bytes_after = outcome.bytes_after,
            generation,
            "rewrite committed"
        );
        Ok(outcome)
    }

    /// Undoes an uncommitted rewrite: removes its output and its intent. Best effort: what is left is recovery's.
    fn roll_back(&self, intent: &RewriteIntent) {
        if let Some(path) = self.layout.resolve(&intent.location) {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!(output = %intent.output, error = %e, "cannot remove an uncommitted rewrite output"),
            }
        }
        if let Err(e) = self.catalog.commit(vec![CatalogChange::ClearIntent(intent.output)]) {
            warn!(output = %intent.output, error = %e, "cannot clear a rewrite intent; recovery will");
        }
        metrics::counter!("tierd_rewrite_rollbacks_total").increment(1);
    }

    /// Steps 3 and 4: the output on disk, durable and verified. Returns its checksum and its metadata as read back.
    fn write_and_verify(
        &self,
        intent: &RewriteIntent,
        bytes: &[u8],
        rows_after: u64,
    ) -> Result<(u32, columnar::ColumnarMeta)> {
        let output_id = intent.output;
        let path = self.layout.resolve(&intent.location).expect("relative location");
        let io = |e| StoreError::io(&path, e);
        self.failpoints.hit("rewrite.intent").map_err(io)?;

        // Step 3: write, create-only, durable.
        let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(io)?;
        file.write_all_at(bytes, 0).map_err(io)?;
        file.sync_all().map_err(io)?;
        let dir = path.parent().expect("has a parent");
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| StoreError::io(dir, e))?;
        self.failpoints.hit("rewrite.write").map_err(io)?;

        // Step 4: verify what is on disk, not what is in memory.
        let checksum = crc32c::crc32c(bytes);
        let mut on_disk = vec![0u8; bytes.len()];
        file.read_exact_at(&mut on_disk, 0).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len != bytes.len() as u64 || crc32c::crc32c(&on_disk) != checksum {
            return Err(StoreError::Corrupt {
                id: output_id,
                message: format!("written output does not read back ({len} bytes on disk, {} written)", bytes.len()),
            });
        }
        let verified = columnar::read_meta(&on_disk)
            .map_err(|e| StoreError::Corrupt { id: output_id, message: format!("verify: {e}") })?;
        if verified.rows != rows_after {
            return Err(StoreError::Corrupt {
                id: output_id,
                message: format!("verify: {} rows on disk, {rows_after} encoded", verified.rows),
            });
        }
        self.failpoints.hit("rewrite.verify").map_err(io)?;
        Ok((checksum, verified))
    }

    fn corrupt(&self, meta: &SegmentMeta, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt { id: meta.id, message: e.to_string() }
    }
}

pub fn kind_label(kind: RewriteKind) -> &'static str {
    match kind {
        RewriteKind::Reencode => "reencode",
        RewriteKind::Compact => "compact",
        RewriteKind::Recompress => "recompress",
    }
}

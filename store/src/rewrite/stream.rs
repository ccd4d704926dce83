//! The streaming rewrite: how re-encode, compact and recompress turn their inputs into an output without holding
//! them (issue 13). Memory is bounded by `rewrite.max_memory_bytes`, cut by `tierd_policies::memory::stream_limits`:
//!
//! 1. **Gather.** A columnar input sorted by (event, time) (every segment tierd writes) is a sorted stream read row
//!    group by row group ([`ParquetEvents`]); its footer's column counts go into the shredding survey. Anything
//!    else (row segments, read frame by frame; columnar segments in another order) goes into a [`SortBuffer`],
//!    counted exactly as it comes; a full buffer is sorted and spilled as a run ([`super::spill`]): an external
//!    sort.
//! 2. **Reduce.** While the sorted streams would hold more than the merge's share of the budget at once (each a row
//!    group plus a decoded batch; the buffer still in memory counts its bytes), the buffer is spilled, then the
//!    cheapest streams are merged (without dedup) into a spill file, fewer streams each time. Two streams that do
//!    not fit together refuse the rewrite ([`StoreError::RewriteTooLarge`]), before anything is written.
//! 3. **Merge.** The output's intent (and its side segment's, when dedup is lossless) is recorded, the shredding
//!    decision taken from the summed survey, and the k-way merge with dedup streams the kept events into the
//!    output and the removed copies into the side segment (created at its first copy), row group by row group.
//!    Events from a sort buffer keep their properties as the stored JSON text all the way to the writer
//!    ([`MergeEvent::Text`]); the writers encode their column chunks on `rewrite.threads` threads.
//! 4. **Finish.** Each file is made durable and verified from disk (`super::output`).
//!
//! A recompression of one columnar segment copies its record batches row group by row group into the new codec,
//! with the same columns: no event is rebuilt.

use std::sync::Arc;

use tierd_codecs::columnar::{
    self, CodecSpec, ColumnarError, EventSource, Lineage, MergeError, MergeEvent, MergeStats, SegmentInfo, ShredSurvey,
    SortBuffer, SortOrder, SortedRun,
};
use tierd_codecs::{RowFilter, StoredEvent};
use tierd_policies::memory::{self, StreamLimits};
use tierd_policies::RewriteKind;
use tracing::info;

use super::output::{FinishedOutput, OutputFile};
use super::spill::{SpillEvents, SpillFile, SpillWriter};
use super::{output_location, Rewriter, Steps, REWRITE_STEPS};
use crate::catalog::{Format, Intent, IntentKind, SegmentMeta};
use crate::error::{Result, StoreError};
use crate::layout::SegmentId;
use crate::read::ParquetEvents;

/// Events decoded at a time from each merged input (their decoded form is the largest per-event cost).
const MERGE_BATCH_ROWS: usize = 256;
/// Rows per batch of a recompression (record batches are copied, not decoded into events).
const RECOMPRESS_BATCH_ROWS: usize = 8192;

/// One output of a rewrite: where it goes and what its footer says.
pub(super) struct OutputPlan {
    pub(super) id: SegmentId,
    pub(super) info: SegmentInfo,
    pub(super) lineage: Lineage,
}

/// One streaming rewrite: what it reads, what it writes, how.
pub(super) struct Job<'a> {
    /// For the labels of refusals.
    pub(super) kind: RewriteKind,
    pub(super) inputs: &'a [Arc<SegmentMeta>],
    pub(super) spec: &'a CodecSpec,
    pub(super) output: &'a OutputPlan,
    /// Where removed copies go, when they are kept.
    pub(super) side: Option<&'a OutputPlan>,
    /// Keep one copy per event (the last ingested); without it every event read is written.
    pub(super) dedup: bool,
    /// Rows to leave out (a filtered rewrite).
    pub(super) filter: Option<&'a RowFilter>,
    pub(super) steps: &'a Steps,
}

/// What a streaming rewrite wrote, durable and verified, with the intents it was written under.
pub(super) struct Streamed {
    pub(super) intents: Vec<Intent>,
    pub(super) output: FinishedOutput,
    pub(super) side: Option<FinishedOutput>,
    /// Intents recorded for outputs that were never written (a side segment with no copy to hold).
    pub(super) unused: Vec<Intent>,
    /// Spill files written.
    pub(super) spills: u64,
}

/// A sorted stream waiting to be merged, and what it adds to the shredding survey.
enum Pending {
    /// A sorted columnar input, without the rows of the filter, when there is one.
    Parquet(Box<ParquetEvents>, Option<RowFilter>),
    Spill(Arc<SpillFile>),
    Run(SortedRun),
}

impl Pending {
    /// What merging it holds at once.
    fn cost(&self) -> u64 {
        match self {
            Pending::Parquet(p, _) => p.held_bytes() + memory::MERGE_INPUT_BYTES,
            Pending::Spill(s) => s.held_bytes() + memory::MERGE_INPUT_BYTES,
            Pending::Run(r) => r.bytes() as u64,
        }
    }

    fn into_source(self) -> Source {
        match self {
            Pending::Parquet(p, filter) => Source::Parquet(p, filter),
            Pending::Spill(s) => Source::Spill(s.events(MERGE_BATCH_ROWS)),
            Pending::Run(r) => Source::Run(r),
        }
    }
}

/// A sorted stream being merged. Columnar inputs and spill files hand out decoded events; a sorted run hands out
/// its rows' stored text, which the writer turns into columns without building their properties' maps.
enum Source {
    Parquet(Box<ParquetEvents>, Option<RowFilter>),
    Spill(SpillEvents),
    Run(SortedRun),
}

impl EventSource<StoreError, MergeEvent> for Source {
    fn next_event(&mut self) -> Result<Option<MergeEvent>> {
        let decoded = match self {
            Source::Parquet(p, None) => p.next_event()?,
            Source::Parquet(p, Some(filter)) => loop {
                match p.next_event()? {
                    Some(e) if filter.matches(&e) => continue,
                    other => break other,
                }
            },
            Source::Spill(s) => s.next_event()?,
            Source::Run(r) => return Ok(r.next_text().map(MergeEvent::Text)),
        };
        Ok(decoded.map(MergeEvent::Decoded))
    }
}

/// The inputs of a merge as sorted streams, with the survey of all of them.
struct Gathered {
    pending: Vec<(Pending, ShredSurvey)>,
    spills: usize,
}

impl Rewriter {
    /// The budget's shares for a rewrite of `inputs` (see `tierd_policies::memory::stream_limits`).
    fn limits(&self, inputs: &[Arc<SegmentMeta>], spec: &CodecSpec) -> StreamLimits {
        if let Some(limits) = self.stream_limits {
            return limits;
        }
        let rows: u64 = inputs.iter().map(|m| m.rows).sum();
        let bytes: u64 = inputs.iter().map(|m| m.bytes).sum();
        let shape = memory::WriterShape { row_group_rows: spec.row_group_rows as u64, ..self.writer_shape() };
        memory::stream_limits(self.max_memory_bytes, bytes, rows, shape)
    }

    fn too_large(&self, kind: RewriteKind, message: String) -> StoreError {
        metrics::counter!("tierd_rewrites_refused_total", "pass" => super::kind_label(kind)).increment(1);
        StoreError::RewriteTooLarge(message)
    }

    /// Re-encode, compact and filtered rewrites: steps 1 to 4 of the module documentation. Returns the finished
    /// outputs; on a failure after the intents, the outputs are rolled back before the error is returned.
    pub(super) fn merge_streaming(&self, job: &Job<'_>) -> Result<Streamed> {
        let Job { kind, inputs, spec, output, side, .. } = *job;
        let limits = self.limits(inputs, spec);
        let mut gathered = self.gather(job, &limits)?;
        self.reduce(job, &mut gathered, &limits)?;
        let mut survey = ShredSurvey::new();
        let mut sources = Vec::with_capacity(gathered.pending.len());
        for (pending, s) in gathered.pending {
            survey.merge(&s);
            sources.push(pending.into_source());
        }
        let columns = survey.plan(spec.max_property_columns);
        let spills = gathered.spills as u64;
        if spills > 0 {
            metrics::counter!("tierd_rewrite_spill_files_total", "pass" => super::kind_label(kind)).increment(spills);
            info!(output = %output.id, spills, inputs = sources.len(), "rewrite merges spilled runs");
        }

        let intents = self.record_output_intents(inputs, output, side, job.steps)?;
        let result = (|| {
            let mut out = self.create_output(&intents[0], &output.info, &output.lineage, columns.clone(), spec)?;
            let mut side_out: Option<OutputFile> = None;
            let max_run_events = (limits.merge_bytes / 8 / memory::BYTES_PER_EVENT).max(1000) as usize;
            let project = output.info.project.clone();
            let merged = columnar::merge(
                &mut sources,
                job.dedup.then_some(project.as_str()),
                max_run_events,
                &mut |e| out.push(&e),
                &mut |e| match (side, &mut side_out) {
                    (None, _) => Ok(()),
                    (Some(_), Some(s)) => s.push(&e),
                    (Some(plan), None) => {
                        let s = side_out.insert(self.create_output(
                            &intents[1],
                            &plan.info,
                            &plan.lineage,
                            columns.clone(),
                            spec,
                        )?);
                        s.push(&e)
                    }
                },
            );
            let stats: MergeStats = merged.map_err(|e| self.merge_error(kind, output.id, e))?;
            drop(sources);
            let finished = self.finish_output(out, job.steps)?;
            let side_finished = side_out.map(|s| self.finish_output(s, job.steps)).transpose()?;
            debug_assert_eq!(finished.summary.rows, stats.kept);
            Ok((finished, side_finished))
        })();
        match result {
            Ok((output, side_finished)) => {
                let (intents, unused) = match side_finished {
                    Some(_) => (intents, Vec::new()),
                    None => {
                        let mut intents = intents;
                        let unused = intents.split_off(1);
                        (intents, unused)
                    }
                };
                Ok(Streamed { intents, output, side: side_finished, unused, spills })
            }
            Err(e) => {
                self.roll_back(&intents);
                Err(e)
            }
        }
    }

    /// A recompression of one columnar segment: its record batches copied, row group by row group, into `spec`.
    pub(super) fn recompress_streaming(
        &self,
        input: &SegmentMeta,
        spec: &CodecSpec,
        output: &OutputPlan,
    ) -> Result<Streamed> {
        let mut events = self.source.parquet_events(input, RECOMPRESS_BATCH_ROWS)?;
        let limits = self.limits(std::slice::from_ref(&Arc::new(input.clone())), spec);
        let needs = events.held_bytes() + memory::MERGE_INPUT_BYTES;
        if needs > limits.merge_bytes {
            return Err(self.too_large(
                RewriteKind::Recompress,
                format!(
                    "recompressing {} holds a row group of {} bytes, more than rewrite.max_memory_bytes = {} leaves \
                     for its input ({} bytes)",
                    input.id,
                    events.input().max_row_group_bytes(),
                    self.max_memory_bytes,
                    limits.merge_bytes
                ),
            ));
        }
        let columns = events.input().columns().to_vec();
        let intents = self.record_output_intents(&[Arc::new(input.clone())], output, None, &REWRITE_STEPS)?;
        let result = (|| {
            let mut out = self.create_output(&intents[0], &output.info, &output.lineage, columns, spec)?;
            while let Some(mut group) = events.next_group_batches()? {
                let keys = group.props_keys();
                while let Some(batch) =
                    group.next_batch().map_err(|e| StoreError::Corrupt { id: input.id, message: e.to_string() })?
                {
                    out.writer()
                        .write_batch(&batch, &keys)
                        .map_err(|e| StoreError::Corrupt { id: output.id, message: format!("encode: {e}") })?;
                }
            }
            self.finish_output(out, &REWRITE_STEPS)
        })();
        match result {
            Ok(output) => Ok(Streamed { intents, output, side: None, unused: Vec::new(), spills: 0 }),
            Err(e) => {
                self.roll_back(&intents);
                Err(e)
            }
        }
    }

    /// How many of `meta`'s stored rows `filter` matches: the segment read through once, as a stream.
    pub(super) fn count_matches(&self, meta: &SegmentMeta, filter: &RowFilter) -> Result<u64> {
        let mut matched = 0;
        match meta.format {
            Format::Parquet => {
                let mut events = self.source.parquet_events(meta, MERGE_BATCH_ROWS)?;
                while let Some(e) = events.next_event()? {
                    matched += u64::from(filter.matches(&e));
                }
            }
            Format::Rows => {
                let mut frames = self.source.row_frames(meta)?;
                let corrupt = |message: String| StoreError::Corrupt { id: meta.id, message };
                while frames.next_frame(|row| {
                    matched += u64::from(filter.matches(&raw_event(&row).map_err(corrupt)?));
                    Ok(())
                })? {}
            }
        }
        Ok(matched)
    }

    /// Step 2: the intents of the output (and of its side segment), durable before any byte of them exists.
    fn record_output_intents(
        &self,
        inputs: &[Arc<SegmentMeta>],
        output: &OutputPlan,
        side: Option<&OutputPlan>,
        steps: &Steps,
    ) -> Result<Vec<Intent>> {
        let project = &output.info.project;
        let now = self.ctx.clock.now_ms();
        let input_ids: Vec<SegmentId> = inputs.iter().map(|m| m.id).collect();
        let intents: Vec<Intent> = std::iter::once(output)
            .chain(side)
            .map(|o| {
                let kind = IntentKind::Rewrite { inputs: input_ids.clone() };
                Intent::new(o.id, output_location(project, o.id), kind, now)
            })
            .collect();
        self.ctx.catalog.record_intents(&intents)?;
        for intent in &intents {
            if let Err(e) = self.ctx.failpoints.hit(steps.intent) {
                let path = self.ctx.resolve(&intent.location.path)?;
                self.roll_back(&intents);
                return Err(StoreError::io(path, e));
            }
        }
        Ok(intents)
    }

    /// Step 1: every input as a sorted stream (see the module documentation), without the filter's rows.
    fn gather(&self, job: &Job<'_>, limits: &StreamLimits) -> Result<Gathered> {
        let kind = job.kind;
        let mut gathered = Gathered { pending: Vec::new(), spills: 0 };
        let mut buffer = SortBuffer::new();
        let full = |buffer: &SortBuffer| buffer.bytes() as u64 >= limits.sort_bytes;
        let keep = |e: &StoredEvent| job.filter.is_none_or(|f| !f.matches(e));
        for meta in job.inputs {
            match meta.format {
                Format::Parquet => {
                    let mut events = self.source.parquet_events(meta, MERGE_BATCH_ROWS)?;
                    if events.input().sort() == SortOrder::EventTime {
                        let cost = events.held_bytes() + memory::MERGE_INPUT_BYTES;
                        if cost.saturating_mul(2) > limits.merge_bytes {
                            return Err(self.too_large(
                                kind,
                                format!(
                                    "{} has a row group of {} bytes: two such inputs need more than the {} bytes \
                                 rewrite.max_memory_bytes = {} leaves for a merge",
                                    meta.id,
                                    events.input().max_row_group_bytes(),
                                    limits.merge_bytes,
                                    self.max_memory_bytes
                                ),
                            ));
                        }
                        let survey = events.input().survey();
                        gathered.pending.push((Pending::Parquet(Box::new(events), job.filter.cloned()), survey));
                        continue;
                    }
                    while let Some(e) = events.next_event()? {
                        if keep(&e) {
                            buffer.push_event(&e);
                        }
                        if full(&buffer) {
                            self.spill_run(&mut buffer, &mut gathered, job)?;
                        }
                    }
                }
                Format::Rows => {
                    if limits.sort_bytes < memory::MIN_SORT_BYTES && self.stream_limits.is_none() {
                        return Err(self.too_large(
                            kind,
                            format!(
                            "re-encoding {} needs a sort buffer of at least {} bytes; rewrite.max_memory_bytes = {} \
                             leaves {}",
                            meta.id,
                            memory::MIN_SORT_BYTES,
                            self.max_memory_bytes,
                            limits.sort_bytes
                        ),
                        ));
                    }
                    let mut frames = self.source.row_frames(meta)?;
                    let corrupt = |message: String| StoreError::Corrupt { id: meta.id, message };
                    while frames.next_frame(|row| match job.filter {
                        None => buffer.push_raw(&row).map_err(corrupt),
                        Some(_) => {
                            let e = raw_event(&row).map_err(corrupt)?;
                            if keep(&e) {
                                buffer.push_event(&e);
                            }
                            Ok(())
                        }
                    })? {
                        if full(&buffer) {
                            self.spill_run(&mut buffer, &mut gathered, job)?;
                        }
                    }
                }
            }
        }
        if !buffer.is_empty() {
            let run = buffer.sort();
            let survey = run.survey().clone();
            gathered.pending.push((Pending::Run(run), survey));
        }
        Ok(gathered)
    }

    /// Sorts the buffer and writes it to a spill file.
    fn spill_run(&self, buffer: &mut SortBuffer, gathered: &mut Gathered, job: &Job<'_>) -> Result<()> {
        let run = std::mem::take(buffer).sort();
        let survey = run.survey().clone();
        let file = self.spill(vec![(Pending::Run(run), survey.clone())], survey.clone(), job, gathered)?;
        gathered.pending.push((Pending::Spill(file), survey));
        Ok(())
    }

    /// Merges `streams` (no dedup) into a new spill file shredded by `survey`.
    fn spill(
        &self,
        streams: Vec<(Pending, ShredSurvey)>,
        survey: ShredSurvey,
        job: &Job<'_>,
        gathered: &mut Gathered,
    ) -> Result<Arc<SpillFile>> {
        let output = job.output.id;
        let estimate: u64 = streams.iter().map(|(p, _)| p.cost()).sum();
        self.ctx.check_disk_reserve("rewrite", estimate)?;
        let dir = self.ctx.layout.spill_dir();
        let name = format!("{output}-{}", gathered.spills);
        gathered.spills += 1;
        let mut writer = SpillWriter::create(&dir, &name, &survey, job.spec, self.encode_threads, self.pacer())?;
        let mut sources: Vec<Source> = streams.into_iter().map(|(p, _)| p.into_source()).collect();
        columnar::merge(&mut sources, None, usize::MAX, &mut |e| writer.push(&e), &mut |_| Ok(()))
            .map_err(|e| self.merge_error(job.kind, output, e))?;
        drop(sources);
        writer.finish().map(Arc::new)
    }

    /// Step 2 of the module documentation: spills and intermediate merges until the streams fit the merge's share.
    fn reduce(&self, job: &Job<'_>, gathered: &mut Gathered, limits: &StreamLimits) -> Result<()> {
        let kind = job.kind;
        loop {
            let total: u64 = gathered.pending.iter().map(|(p, _)| p.cost()).sum();
            if total <= limits.merge_bytes || gathered.pending.len() < 2 {
                return Ok(());
            }
            if let Some(i) = gathered.pending.iter().position(|(p, _)| matches!(p, Pending::Run(_))) {
                let (run, survey) = gathered.pending.swap_remove(i);
                let file = self.spill(vec![(run, survey.clone())], survey.clone(), job, gathered)?;
                gathered.pending.push((Pending::Spill(file), survey));
                continue;
            }
            gathered.pending.sort_by_key(|(p, _)| p.cost());
            let mut take = 0;
            let mut sum = 0;
            for (p, _) in &gathered.pending {
                if sum + p.cost() > limits.merge_bytes {
                    break;
                }
                sum += p.cost();
                take += 1;
            }
            if take < 2 {
                return Err(self.too_large(
                    kind,
                    format!(
                    "two of its inputs hold {} bytes at once, more than the {} bytes rewrite.max_memory_bytes = {} \
                     leaves for a merge",
                    gathered.pending.iter().take(2).map(|(p, _)| p.cost()).sum::<u64>(),
                    limits.merge_bytes,
                    self.max_memory_bytes
                ),
                ));
            }
            let streams: Vec<_> = gathered.pending.drain(..take).collect();
            let mut survey = ShredSurvey::new();
            streams.iter().for_each(|(_, s)| survey.merge(s));
            let file = self.spill(streams, survey.clone(), job, gathered)?;
            gathered.pending.push((Pending::Spill(file), survey));
        }
    }

    fn merge_error(&self, kind: RewriteKind, output: SegmentId, e: MergeError<StoreError>) -> StoreError {
        match e {
            MergeError::Io(e) => e,
            MergeError::Merge(e @ ColumnarError::RunTooLarge { .. }) => self.too_large(kind, e.to_string()),
            MergeError::Merge(e) => StoreError::Corrupt { id: output, message: e.to_string() },
        }
    }
}

/// A raw row as an event (its properties parsed), to test a filter on.
fn raw_event(row: &tierd_codecs::rows::RawRow<'_>) -> std::result::Result<StoredEvent, String> {
    let properties = serde_json::from_str(row.properties_json)
        .map_err(|e| format!("row with seq {}: properties are not a JSON object: {e}", row.seq))?;
    let event = tierd_codecs::Event {
        event: row.event.to_owned(),
        time_ms: row.time_ms,
        distinct_id: row.distinct_id.to_owned(),
        insert_id: row.insert_id.to_owned(),
        properties,
    };
    Ok(StoredEvent { seq: row.seq, event })
}

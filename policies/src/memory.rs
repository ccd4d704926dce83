//! How much memory a rewrite holds, and how a planned rewrite is split to stay within a budget.
//!
//! Re-encode, compact and recompress stream (issue 13): they read their inputs a row group (or a row segment's
//! frame) at a time, sort unsorted events in a bounded buffer (spilling sorted runs to disk when it fills), k-way
//! merge sorted streams with the dedup on the way, and write the output row group by row group. What they hold:
//!
//! - each output being written (the data output and the side segment of removed copies): one row group of encoded
//!   pages, one record batch being built and the column dictionaries, and when it encodes on several threads
//!   (`rewrite.threads`) the [`PIPELINE_BATCHES`] batches handed to them and not yet encoded, [`writer_bytes`];
//! - each merged input: one row group's compressed bytes (its largest, from its footer) and a decoded batch,
//!   [`MERGE_INPUT_BYTES`] on top;
//! - the sort buffer of unsorted inputs, up to [`StreamLimits::sort_bytes`] (about the events' stored size).
//!
//! [`stream_limits`] cuts `rewrite.max_memory_bytes` into those parts; the rewriter merges in several levels
//! (spilling intermediate runs) when its inputs would not fit at once, so an action never needs more than two
//! inputs at a time: [`estimate`] is that floor, and only an input whose row group alone does not fit is refused.
//!
//! Filtered rewrites (retention, deletions) stream the same way, reading their one segment twice (to count the
//! matching rows, then to write the others).
//!
//! [`split_to_budget`] is pure: it cuts one planned action into parts whose estimates fit the budget, each its own
//! crash-safe rewrite of the same kind, project and day. Every input stays in exactly one part, in order. With the
//! streaming estimate a part is never cut for size (the estimate does not grow with the number of inputs), but an
//! input that alone exceeds the budget is returned as refused.

use crate::segment::{RewriteAction, RewriteKind, SegmentFormat, SegmentStats};

/// Estimated bytes of one decoded event (a `serde_json` map of its properties): measured at 3.3-3.7 KiB of peak
/// RSS per event when rewrites still decoded whole segments (BENCHMARKS.md, "Compaction target"). A merge holds the
/// events of one run of equal (event, time) decoded, at most an eighth of its share of the budget in them.
pub const BYTES_PER_EVENT: u64 = 3_700;
/// What a merged input holds besides its row group: a decoded batch of events and the Parquet reader's pages.
pub const MERGE_INPUT_BYTES: u64 = 4 << 20;
/// What an output writer holds besides its row group's pages and its batch: dictionaries, buffers.
pub const WRITER_BASE_BYTES: u64 = 8 << 20;
/// The smallest sort buffer worth having: below it, runs get so short that the merges multiply.
pub const MIN_SORT_BYTES: u64 = 16 << 20;
/// Rows of the record batch an output writer builds (`tierd_codecs::columnar`'s batch size).
const WRITER_BATCH_ROWS: u64 = 8192;
/// Record batches an output writer encoding on several threads holds besides the one it builds: those handed to
/// its threads and not yet encoded (`tierd_codecs::columnar::PIPELINE_BATCHES`; the store checks they agree).
pub const PIPELINE_BATCHES: u64 = 2;

/// How a rewrite's output writers are set up, as far as their memory goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterShape {
    /// Rows per row group of the output (`rewrite.row_group_rows`).
    pub row_group_rows: u64,
    /// Threads each writer encodes column chunks on (`rewrite.threads`; 1: the rewrite's own).
    pub encode_threads: u64,
}

impl WriterShape {
    /// Writers encoding on the rewrite's own thread.
    pub const fn sequential(row_group_rows: u64) -> Self {
        Self { row_group_rows, encode_threads: 1 }
    }
}

/// The memory of one output writer of `rows` rows that take `bytes` as input: a row group's encoded pages (counted
/// at the input's size per row, more than the output's) and a batch of decoded text (four times that), plus
/// [`PIPELINE_BATCHES`] more batches when it encodes on several threads. A row group or a batch holds at most
/// `rows` rows.
pub fn writer_bytes(bytes: u64, rows: u64, shape: WriterShape) -> u64 {
    let share =
        |n: u64| (bytes as u128 * n.min(rows) as u128).div_ceil(rows.max(1) as u128).min(u64::MAX as u128) as u64;
    let pages = share(shape.row_group_rows);
    let batches = if shape.encode_threads > 1 { 1 + PIPELINE_BATCHES } else { 1 };
    let batch = share(WRITER_BATCH_ROWS).saturating_mul(4).saturating_mul(batches);
    WRITER_BASE_BYTES.saturating_add(pages).saturating_add(batch)
}

/// How a streaming rewrite divides its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// The most the sort buffer of unsorted inputs holds before it is sorted and spilled as a run.
    pub sort_bytes: u64,
    /// The most the inputs of one merge hold together (their row groups and batches); more inputs are merged in
    /// several levels.
    pub merge_bytes: u64,
}

/// The limits of a rewrite within `max_bytes` whose inputs hold `rows` rows in `bytes`, written by writers of
/// `shape`: the merge gets what two writers (data and side outputs) leave; the sort buffer
/// three quarters of what one writer (the spill's) leaves, the rest for the allocator's slack and the sort itself.
pub fn stream_limits(max_bytes: u64, bytes: u64, rows: u64, shape: WriterShape) -> StreamLimits {
    let writer = writer_bytes(bytes, rows, shape);
    StreamLimits {
        sort_bytes: max_bytes.saturating_sub(writer) / 4 * 3,
        merge_bytes: max_bytes.saturating_sub(writer.saturating_mul(2)),
    }
}

/// About the compressed bytes of one row group of `s` written with `row_group_rows` rows.
pub fn row_group_bytes(s: &SegmentStats, row_group_rows: u64) -> u64 {
    let rows = s.rows.max(1);
    let group = rows.min(row_group_rows.max(1)) as u128;
    (s.bytes as u128 * group).div_ceil(rows as u128).min(u64::MAX as u128) as u64
}

/// The least memory streaming `inputs` as `kind` needs (see the module docs): the writers, plus two inputs'
/// row groups at once for a merge (one for a recompression of one columnar segment), or the smallest sort buffer
/// when a row segment is among them.
pub fn estimate(kind: RewriteKind, inputs: &[&SegmentStats], shape: WriterShape) -> u64 {
    let rows: u64 = inputs.iter().map(|s| s.rows).fold(0, u64::saturating_add);
    let bytes: u64 = inputs.iter().map(|s| s.bytes).fold(0, u64::saturating_add);
    let writer = writer_bytes(bytes, rows, shape);
    let row_group_rows = shape.row_group_rows;
    let largest = inputs
        .iter()
        .filter(|s| s.format == SegmentFormat::Columnar)
        .map(|s| row_group_bytes(s, row_group_rows).saturating_add(MERGE_INPUT_BYTES))
        .max()
        .unwrap_or(0);
    match (kind, inputs) {
        (RewriteKind::Recompress, [only]) if only.format == SegmentFormat::Columnar => writer.saturating_add(largest),
        _ => {
            let sort = if inputs.iter().any(|s| s.format == SegmentFormat::Rows) {
                (MIN_SORT_BYTES / 3 * 4).saturating_add(writer)
            } else {
                0
            };
            let merge = writer.saturating_mul(2).saturating_add(largest.saturating_mul(2));
            merge.max(sort)
        }
    }
}

/// What [`split_to_budget`] makes of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The parts to run, in input order (the action itself when it fits).
    pub parts: Vec<RewriteAction>,
    /// Inputs that alone exceed the budget, with their estimates: not rewritten.
    pub refused: Vec<(String, u64)>,
}

/// Cuts `action` into consecutive parts whose estimates are at most `max_bytes`. `stats` must hold every input.
pub fn split_to_budget(action: &RewriteAction, stats: &[&SegmentStats], max_bytes: u64, shape: WriterShape) -> Split {
    let by_id: std::collections::HashMap<&str, &SegmentStats> = stats.iter().map(|s| (s.id.as_str(), *s)).collect();
    let inputs: Vec<&SegmentStats> = action.inputs.iter().filter_map(|id| by_id.get(id.as_str()).copied()).collect();
    debug_assert_eq!(inputs.len(), action.inputs.len(), "stats hold every input");
    if estimate(action.kind, &inputs, shape) <= max_bytes {
        return Split { parts: vec![action.clone()], refused: Vec::new() };
    }
    let mut parts: Vec<Vec<&SegmentStats>> = Vec::new();
    let mut refused = Vec::new();
    let mut current: Vec<&SegmentStats> = Vec::new();
    for s in inputs {
        let alone = estimate(action.kind, &[s], shape);
        if alone > max_bytes {
            refused.push((s.id.clone(), alone));
            continue;
        }
        let mut with = current.clone();
        with.push(s);
        if estimate(action.kind, &with, shape) > max_bytes {
            parts.push(std::mem::take(&mut current));
            current.push(s);
        } else {
            current = with;
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    let n = parts.len();
    let parts = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let reason = format!("{} (part {} of {n}: rewrite.max_memory_bytes = {max_bytes})", action.reason, i + 1);
            RewriteAction::new(action.kind, &action.project, action.day, &p, &action.output_codec, reason)
        })
        .collect();
    Split { parts, refused }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::{col, seg, DAY};

    const RGR: WriterShape = WriterShape::sequential(65_536);

    fn action(kind: RewriteKind, stats: &[SegmentStats]) -> RewriteAction {
        let refs: Vec<&SegmentStats> = stats.iter().collect();
        RewriteAction::new(kind, "web", DAY, &refs, "zstd-3", "planned".into())
    }

    #[test]
    fn the_streaming_estimate_does_not_grow_with_the_inputs() {
        let small = |id: &str| SegmentStats { rows: 100_000, bytes: 6_000_000, ..col(id, "lz4") };
        let two: Vec<SegmentStats> = (0..2).map(|i| small(&format!("c{i}"))).collect();
        let many: Vec<SegmentStats> = (0..200).map(|i| small(&format!("c{i}"))).collect();
        fn refs(v: &[SegmentStats]) -> Vec<&SegmentStats> {
            v.iter().collect()
        }
        let e2 = estimate(RewriteKind::Compact, &refs(&two), RGR);
        assert_eq!(e2, estimate(RewriteKind::Compact, &refs(&many), RGR));
        // Two writers (60 bytes per row) and two inputs' row groups (65,536 of 100,000 rows).
        let writer = writer_bytes(12_000_000, 200_000, RGR);
        assert_eq!(e2, 2 * writer + 2 * (row_group_bytes(&two[0], RGR.row_group_rows) + MERGE_INPUT_BYTES));
        assert_eq!(row_group_bytes(&two[0], RGR.row_group_rows), 3_932_160);
        let rows = SegmentStats { rows: 1_000_000, bytes: 200_000_000, ..seg("r") };
        assert!(estimate(RewriteKind::Reencode, &[&rows], RGR) >= MIN_SORT_BYTES);
        let c = SegmentStats { rows: 10, bytes: 1000, ..col("c", "lz4") };
        assert_eq!(
            estimate(RewriteKind::Recompress, &[&c], RGR),
            writer_bytes(1000, 10, RGR) + 1000 + MERGE_INPUT_BYTES
        );
        // A writer holds no more rows than there are: a few large events do not cost a row group of them.
        assert_eq!(writer_bytes(1000, 10, RGR), WRITER_BASE_BYTES + 1000 + 4000);
    }

    #[test]
    fn encoding_threads_count_the_batches_handed_to_them() {
        let two = WriterShape { encode_threads: 2, ..RGR };
        // 100 bytes per row; a batch is 8192 rows of text counted four times.
        let batch = 8192 * 100 * 4;
        assert_eq!(writer_bytes(10_000_000, 100_000, two), writer_bytes(10_000_000, 100_000, RGR) + 2 * batch);
        assert_eq!(PIPELINE_BATCHES, 2);
        let eight = WriterShape { encode_threads: 8, ..RGR };
        assert_eq!(writer_bytes(10_000_000, 100_000, eight), writer_bytes(10_000_000, 100_000, two));
        let l1 = stream_limits(256 << 20, 200_000_000, 1_000_000, RGR);
        let l2 = stream_limits(256 << 20, 200_000_000, 1_000_000, two);
        assert!(l2.merge_bytes < l1.merge_bytes && l2.sort_bytes < l1.sort_bytes);
        let c = SegmentStats { rows: 1_000_000, bytes: 60_000_000, ..col("c", "lz4") };
        assert!(estimate(RewriteKind::Recompress, &[&c], two) > estimate(RewriteKind::Recompress, &[&c], RGR));
    }

    #[test]
    fn limits_leave_room_for_the_writers() {
        let l = stream_limits(256 << 20, 200_000_000, 1_000_000, RGR);
        let writer = writer_bytes(200_000_000, 1_000_000, RGR);
        assert_eq!(l.merge_bytes, (256 << 20) - 2 * writer);
        assert_eq!(l.sort_bytes, ((256 << 20) - writer) / 4 * 3);
        assert_eq!(stream_limits(1 << 20, 200_000_000, 1_000_000, RGR), StreamLimits { sort_bytes: 0, merge_bytes: 0 });
    }

    #[test]
    fn an_action_that_fits_is_left_alone_and_an_input_that_does_not_is_refused() {
        let mut stats: Vec<SegmentStats> =
            (0..5).map(|i| SegmentStats { rows: 100, bytes: 10_000, ..col(&format!("s{i}"), "lz4") }).collect();
        stats[3].bytes = 10_000_000_000; // one row group of ~10 GB
        let a = action(RewriteKind::Compact, &stats);
        let refs: Vec<&SegmentStats> = stats.iter().collect();
        let max = 512 << 20;
        let s = split_to_budget(&a, &refs, max, RGR);
        assert_eq!(s.refused.len(), 1);
        assert_eq!(s.refused[0].0, "s3");
        assert_eq!(s.parts.len(), 1);
        assert_eq!(s.parts[0].inputs, ["s0", "s1", "s2", "s4"]);
        assert!(s.parts[0].reason.contains("part 1 of 1") && s.parts[0].reason.contains("rewrite.max_memory_bytes"));
        stats[3].bytes = 10_000;
        let refs: Vec<&SegmentStats> = stats.iter().collect();
        let a = action(RewriteKind::Compact, &stats);
        assert_eq!(split_to_budget(&a, &refs, max, RGR).parts, vec![a.clone()]);
    }

    proptest! {
        /// Every input is in exactly one part or refused; parts fit, refused inputs alone do not; parts keep the
        /// action's kind, project, day and codec.
        #[test]
        fn parts_cover_the_inputs_and_fit(
            sizes in proptest::collection::vec((0u64..1_000_000, 0u64..2_000_000_000, any::<bool>()), 1..12),
            budget_mib in 1u64..1_024,
            threads in 1u64..4,
            kind in prop_oneof![Just(RewriteKind::Reencode), Just(RewriteKind::Compact), Just(RewriteKind::Recompress)],
        ) {
            let stats: Vec<SegmentStats> = sizes.iter().enumerate().map(|(i, (rows, bytes, rows_format))| {
                let base = if *rows_format { seg(&format!("s{i:02}")) } else { col(&format!("s{i:02}"), "lz4") };
                SegmentStats { rows: *rows, bytes: *bytes, ..base }
            }).collect();
            let a = action(kind, &stats);
            let refs: Vec<&SegmentStats> = stats.iter().collect();
            let max = budget_mib << 20;
            let shape = WriterShape { encode_threads: threads, ..RGR };
            let s = split_to_budget(&a, &refs, max, shape);
            let mut seen: Vec<String> = s.parts.iter().flat_map(|p| p.inputs.clone()).collect();
            seen.extend(s.refused.iter().map(|(id, _)| id.clone()));
            seen.sort();
            prop_assert_eq!(seen, a.inputs.clone());
            for p in &s.parts {
                let inputs: Vec<&SegmentStats> = p.inputs.iter().map(|id| refs.iter().find(|s| s.id == *id).copied().unwrap()).collect();
                prop_assert!(estimate(p.kind, &inputs, shape) <= max);
                prop_assert_eq!((p.kind, &p.project, p.day, &p.output_codec), (a.kind, &a.project, a.day, &a.output_codec));
                prop_assert_eq!(p.bytes_before, inputs.iter().map(|s| s.bytes).sum::<u64>());
            }
            for (id, est) in &s.refused {
                let s = refs.iter().find(|s| s.id == *id).unwrap();
                prop_assert!(*est > max && *est == estimate(a.kind, &[s], shape));
            }
        }
    }
}

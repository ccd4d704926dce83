//! How much memory a rewrite holds, and how a planned rewrite is split to stay within a budget.
//!
//! Rewrites decode every input event into memory before encoding the output (the streaming rewrite of a later
//! issue removes that). BENCHMARKS.md measured 3.3-3.7 KiB of peak RSS per event in a merge ("Compaction target"),
//! so a rewrite is estimated at [`BYTES_PER_EVENT`] per input row; a recompression that re-writes a columnar segment
//! as it is holds its bytes about three times (input, decoded pages, output), [`RECOMPRESS_FACTOR`].
//!
//! [`split_to_budget`] is pure: it cuts one planned action into parts whose estimates fit the budget, each its own
//! crash-safe rewrite of the same kind, project and day. Every input stays in exactly one part, in order. Dedup is
//! then physical only within a part; queries deduplicate across parts as they do across any segments of a day, so
//! answers do not change. An input that alone exceeds the budget cannot be split: it is returned as refused.

use crate::segment::{RewriteAction, RewriteKind, SegmentStats};

/// Estimated peak bytes of memory per input event of a rewrite that decodes events (measured: 3.3-3.7 KiB).
pub const BYTES_PER_EVENT: u64 = 3_700;
/// A recompression of one columnar segment holds about this many times its bytes.
pub const RECOMPRESS_FACTOR: u64 = 3;

/// The estimated peak memory of rewriting `inputs` as `kind` (`inputs` as the action lists them).
pub fn estimate(kind: RewriteKind, inputs: &[&SegmentStats]) -> u64 {
    match (kind, inputs) {
        (RewriteKind::Recompress, [only]) if only.format == crate::segment::SegmentFormat::Columnar => {
            only.bytes.saturating_mul(RECOMPRESS_FACTOR)
        }
        _ => inputs.iter().map(|s| s.rows.saturating_mul(BYTES_PER_EVENT)).fold(0, u64::saturating_add),
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
pub fn split_to_budget(action: &RewriteAction, stats: &[&SegmentStats], max_bytes: u64) -> Split {
    let by_id: std::collections::HashMap<&str, &SegmentStats> = stats.iter().map(|s| (s.id.as_str(), *s)).collect();
    let inputs: Vec<&SegmentStats> = action.inputs.iter().filter_map(|id| by_id.get(id.as_str()).copied()).collect();
    debug_assert_eq!(inputs.len(), action.inputs.len(), "stats hold every input");
    if estimate(action.kind, &inputs) <= max_bytes {
        return Split { parts: vec![action.clone()], refused: Vec::new() };
    }
    let mut parts: Vec<Vec<&SegmentStats>> = Vec::new();
    let mut refused = Vec::new();
    let mut current: Vec<&SegmentStats> = Vec::new();
    for s in inputs {
        let alone = estimate(action.kind, &[s]);
        if alone > max_bytes {
            refused.push((s.id.clone(), alone));
            continue;
        }
        let mut with = current.clone();
        with.push(s);
        if estimate(action.kind, &with) > max_bytes {
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

    fn action(kind: RewriteKind, stats: &[SegmentStats]) -> RewriteAction {
        let refs: Vec<&SegmentStats> = stats.iter().collect();
        RewriteAction::new(kind, "web", DAY, &refs, "zstd-3", "planned".into())
    }

    #[test]
    fn estimates_follow_rows_or_a_recompressed_segments_bytes() {
        let a = SegmentStats { rows: 10, ..seg("a") };
        let b = SegmentStats { rows: 20, ..seg("b") };
        assert_eq!(estimate(RewriteKind::Compact, &[&a, &b]), 30 * BYTES_PER_EVENT);
        let c = SegmentStats { bytes: 1000, ..col("c", "lz4") };
        assert_eq!(estimate(RewriteKind::Recompress, &[&c]), 3000);
        assert_eq!(estimate(RewriteKind::Recompress, &[&a]), 10 * BYTES_PER_EVENT, "rows are decoded");
    }

    #[test]
    fn an_action_that_fits_is_left_alone_and_one_that_does_not_is_cut() {
        let stats: Vec<SegmentStats> = (0..5).map(|i| SegmentStats { rows: 100, ..seg(&format!("s{i}")) }).collect();
        let a = action(RewriteKind::Reencode, &stats);
        let refs: Vec<&SegmentStats> = stats.iter().collect();
        assert_eq!(split_to_budget(&a, &refs, 500 * BYTES_PER_EVENT).parts, vec![a.clone()]);
        let s = split_to_budget(&a, &refs, 200 * BYTES_PER_EVENT);
        let parts: Vec<Vec<&str>> = s.parts.iter().map(|p| p.inputs.iter().map(String::as_str).collect()).collect();
        assert_eq!(parts, vec![vec!["s0", "s1"], vec!["s2", "s3"], vec!["s4"]]);
        assert!(s.parts[0].reason.contains("part 1 of 3") && s.parts[0].reason.contains("rewrite.max_memory_bytes"));
        let s = split_to_budget(&a, &refs, 99 * BYTES_PER_EVENT);
        assert!(s.parts.is_empty());
        assert_eq!(s.refused.len(), 5);
    }

    proptest! {
        /// Every input is in exactly one part or refused; parts fit, refused inputs alone do not; parts keep the
        /// action's kind, project, day and codec.
        #[test]
        fn parts_cover_the_inputs_and_fit(
            rows in proptest::collection::vec(0u64..1_000, 1..12),
            budget_rows in 1u64..2_000,
        ) {
            let stats: Vec<SegmentStats> =
                rows.iter().enumerate().map(|(i, r)| SegmentStats { rows: *r, ..seg(&format!("s{i:02}")) }).collect();
            let a = action(RewriteKind::Compact, &stats);
            let refs: Vec<&SegmentStats> = stats.iter().collect();
            let max = budget_rows * BYTES_PER_EVENT;
            let s = split_to_budget(&a, &refs, max);
            let mut seen: Vec<String> = s.parts.iter().flat_map(|p| p.inputs.clone()).collect();
            seen.extend(s.refused.iter().map(|(id, _)| id.clone()));
            seen.sort();
            prop_assert_eq!(seen, a.inputs.clone());
            for p in &s.parts {
                let inputs: Vec<&SegmentStats> = p.inputs.iter().map(|id| refs.iter().find(|s| s.id == *id).copied().unwrap()).collect();
                prop_assert!(estimate(p.kind, &inputs) <= max);
                prop_assert_eq!((p.kind, &p.project, p.day, &p.output_codec), (a.kind, &a.project, a.day, &a.output_codec));
                prop_assert_eq!(p.bytes_before, inputs.iter().map(|s| s.bytes).sum::<u64>());
            }
            for (id, est) in &s.refused {
                let s = refs.iter().find(|s| s.id == *id).unwrap();
                prop_assert!(*est > max && *est == estimate(a.kind, &[s]));
            }
        }
    }
}

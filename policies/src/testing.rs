//! Helpers shared by the unit tests.

use crate::segment::{Placement, RewriteAction, SegmentFormat, SegmentState, SegmentStats};

pub(crate) const MIB: u64 = 1 << 20;
pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 86_400_000;
/// 2026-01-01.
pub(crate) const DAY: i32 = 20_454;

/// A sealed 1 MiB lz4 row segment of project "web" on [`DAY`], written at 0; tests override fields with
/// `SegmentStats { bytes: .., ..seg("a") }`.
pub(crate) fn seg(id: &str) -> SegmentStats {
    SegmentStats {
        id: id.to_owned(),
        project: "web".to_owned(),
        day: DAY,
        state: SegmentState::Sealed,
        format: SegmentFormat::Rows,
        codec: "lz4".to_owned(),
        rows: 1_000,
        bytes: MIB,
        created_at_ms: 0,
        max_time_ms: 0,
        placement: Placement::Hot,
        placed_at_ms: 0,
        heat: 0.0,
        heat_bytes: 0.0,
    }
}

/// A sealed 1 MiB columnar segment with `codec`, otherwise like [`seg`].
pub(crate) fn col(id: &str, codec: &str) -> SegmentStats {
    SegmentStats { format: SegmentFormat::Columnar, codec: codec.to_owned(), ..seg(id) }
}

/// Each action's inputs, in plan order.
pub(crate) fn inputs(actions: &[RewriteAction]) -> Vec<Vec<&str>> {
    actions.iter().map(|a| a.inputs.iter().map(String::as_str).collect()).collect()
}

//! A change in a catalog commit: what [`super::Catalog::commit`] applies in one transaction.

use super::record::SegmentMeta;
use crate::layout::{Location, SegmentId};

/// One change in a catalog commit.
// Changes live in short vectors for one commit; boxing the records would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum CatalogChange {
    /// Insert or replace a segment's record.
    Put(SegmentMeta),
    Remove(SegmentId),
    /// Drop the intent for this new copy (its write committed or was rolled back).
    ClearIntent(Location),
    /// A precondition: the commit fails, changing nothing, unless the segment is still at this generation (its
    /// `updated_generation`). Work that read a record, did slow I/O and now writes the record back uses it so that
    /// a concurrent commit (a rewrite retiring the segment, another move) is never overwritten.
    Expect {
        id: SegmentId,
        updated_generation: u64,
    },
    /// A precondition: the commit fails, changing nothing, if the catalog has a record of this segment (a restore
    /// from the trash must not overwrite one).
    ExpectAbsent(SegmentId),
}

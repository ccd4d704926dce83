//! Operator bodies: running a pass now (`POST /v1/admin/passes/{name}/run`) and moving segments by hand
//! (`POST /v1/admin/move`).

use serde::{Deserialize, Serialize};
use tierd_store::catalog::Placement;

/// The passes an operator can run now, by the name the URL and `tierd pass run NAME` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassName {
    Reencode,
    Compact,
    Recompress,
    /// Hot -> cold, by the placement planner.
    Migrate,
    /// Cold -> hot, by the placement planner.
    Promote,
    /// Garbage collection.
    Gc,
}

impl PassName {
    pub const ALL: [PassName; 6] = [
        PassName::Reencode,
        PassName::Compact,
        PassName::Recompress,
        PassName::Migrate,
        PassName::Promote,
        PassName::Gc,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PassName::Reencode => "reencode",
            PassName::Compact => "compact",
            PassName::Recompress => "recompress",
            PassName::Migrate => "migrate",
            PassName::Promote => "promote",
            PassName::Gc => "gc",
        }
    }
}

impl std::fmt::Display for PassName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// A pass name that is not one of [`PassName::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pass {name:?}; passes are {}", PassName::ALL.map(PassName::label).join(", "))]
pub struct UnknownPass {
    pub name: String,
}

impl std::str::FromStr for PassName {
    type Err = UnknownPass;

    fn from_str(s: &str) -> Result<Self, UnknownPass> {
        PassName::ALL.into_iter().find(|p| p.label() == s).ok_or_else(|| UnknownPass { name: s.to_string() })
    }
}

/// Body of `POST /v1/admin/passes/{name}/run` (an empty body is the default: a real run over every project).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassRequest {
    #[serde(default)]
    pub dry_run: bool,
    pub project: Option<String>,
}

/// What one action of a pass is (or, in a dry run, would be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Rewrites, named after their pass.
    Reencode,
    Compact,
    Recompress,
    /// Moves, named after their pass.
    Migrate,
    Promote,
    /// Garbage collection (`tierd_store::gc::GcAction`): out of service and held by nothing, to the trash.
    Delete,
    /// Out of service but still held, or too young to be an orphan (listed under `kept`, with the reason).
    Keep,
    /// A side segment of duplicates whose retention ended: retired now, deleted after the grace period.
    Expire,
    /// An object the catalog does not know, older than the grace period: to the trash.
    Orphan,
    /// A trash entry past its retention: deleted for good.
    Purge,
    /// A copy a live segment needs is missing (listed under `kept`, and as an error).
    Missing,
}

impl ActionKind {
    pub fn label(self) -> &'static str {
        match self {
            ActionKind::Reencode => "reencode",
            ActionKind::Compact => "compact",
            ActionKind::Recompress => "recompress",
            ActionKind::Migrate => "migrate",
            ActionKind::Promote => "promote",
            ActionKind::Delete => "delete",
            ActionKind::Keep => "keep",
            ActionKind::Expire => "expire",
            ActionKind::Orphan => "orphan",
            ActionKind::Purge => "purge",
            ActionKind::Missing => "missing",
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One action of a pass report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionReport {
    pub kind: ActionKind,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub bytes_before: u64,
    /// `None` in a dry run (not known before the rewrite).
    pub bytes_after: Option<u64>,
    pub reason: String,
    /// Copies the rewrite's dedup removed (not in a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicates_removed: Option<u64>,
    /// The side segment keeping them, when dedup is lossless (`rewrite.keep_duplicates_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicates_segment: Option<String>,
}

/// The answer of `POST /v1/admin/passes/{name}/run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PassReport {
    pub pass: PassName,
    pub dry_run: bool,
    pub actions: Vec<ActionReport>,
    /// Segments GC keeps, with why (only for `gc`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<ActionReport>,
    pub errors: Vec<String>,
}

/// Body of `POST /v1/admin/move`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub segments: Vec<String>,
    /// `cold`, `hot` or `both` (checked by the server, which names the accepted values).
    pub to: String,
}

/// What a move by hand did with one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MoveStatus {
    Moved,
    /// Already where it should be.
    Unchanged,
    /// The move failed; `error` says why.
    Error,
}

impl MoveStatus {
    pub fn label(self) -> &'static str {
        match self {
            MoveStatus::Moved => "moved",
            MoveStatus::Unchanged => "unchanged",
            MoveStatus::Error => "error",
        }
    }
}

/// How the copy a move wrote was checked before its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifiedBy {
    /// The server's ETag, the MD5 of what it received.
    Etag,
    /// Read back whole; size and crc32c compared.
    ReadBack,
}

impl VerifiedBy {
    pub fn label(self) -> &'static str {
        match self {
            VerifiedBy::Etag => "etag",
            VerifiedBy::ReadBack => "read_back",
        }
    }
}

/// One segment's outcome in a move by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveReport {
    pub segment: String,
    pub outcome: MoveStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Placement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Placement>,
    pub bytes_copied: u64,
    /// Absent when nothing was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<VerifiedBy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer of `POST /v1/admin/move`: 200 even if some segments failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveAnswer {
    pub results: Vec<MoveReport>,
    /// Where the segments were to go.
    pub to: Placement,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_serde_names() {
        for p in PassName::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.label());
            assert_eq!(p.label().parse::<PassName>(), Ok(p));
        }
        let e = "nope".parse::<PassName>().unwrap_err().to_string();
        assert_eq!(e, "unknown pass \"nope\"; passes are reencode, compact, recompress, migrate, promote, gc");
        for k in [ActionKind::Reencode, ActionKind::Migrate, ActionKind::Delete, ActionKind::Missing] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.label());
        }
        for m in [MoveStatus::Moved, MoveStatus::Unchanged, MoveStatus::Error] {
            assert_eq!(serde_json::to_value(m).unwrap(), m.label());
        }
        for v in [VerifiedBy::Etag, VerifiedBy::ReadBack] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.label());
        }
    }
}

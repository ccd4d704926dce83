//! Operator bodies: running a pass now (`POST /v1/admin/passes/{name}/run`) and moving segments by hand
//! (`POST /v1/admin/move`).

use serde::{Deserialize, Serialize};
use tierd_store::catalog::Placement;
use tierd_store::labelled_enum;
pub use tierd_store::moves::VerifyMethod;

labelled_enum! {
    /// The passes an operator can run now, by the name the URL and `tierd pass run NAME` use.
    pub enum PassName {
        Reencode = "reencode",
        Compact = "compact",
        Recompress = "recompress",
        /// Hot -> cold, the moves the tiering planner prescribes.
        Migrate = "migrate",
        /// Cold -> hot, the moves the tiering planner prescribes.
        Promote = "promote",
        /// Garbage collection.
        Gc = "gc",
        /// Removes events past `[retention]`: retires wholly expired segments, rewrites straddling ones.
        Retention = "retention",
        /// Removes the rows of user-deletion requests from storage: rewrites or retires the segments holding them.
        Deletions = "deletions",
    }
}

/// A pass name that is not one of [`PassName::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pass {name:?}; passes are {}", PassName::ALL.iter().map(|p| p.label()).collect::<Vec<_>>().join(", "))]
pub struct UnknownPass {
    pub name: String,
}

impl std::str::FromStr for PassName {
    type Err = UnknownPass;

    fn from_str(s: &str) -> Result<Self, UnknownPass> {
        PassName::from_label(s).ok_or_else(|| UnknownPass { name: s.to_string() })
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

labelled_enum! {
    /// What one action of a pass is (or, in a dry run, would be): a rewrite or a move, named after its pass, or what
    /// garbage collection decided for one copy (`tierd_store::gc::GcAction`).
    pub enum ActionKind {
        Reencode = "reencode",
        Compact = "compact",
        Recompress = "recompress",
        Migrate = "migrate",
        Promote = "promote",
        /// To the trash.
        Delete = "delete",
        /// Still held (listed under `kept`, with the reason).
        Keep = "keep",
        /// A side segment of duplicates retired when its time was up.
        Expire = "expire",
        /// An object no record names, to the trash.
        Orphan = "orphan",
        /// A trash entry deleted for good.
        Purge = "purge",
        /// A copy that may hold rows a user deletion removes, deleted for good without the trash.
        Erase = "erase",
        /// A copy a live segment needs is not there (listed under `kept`, and as an error).
        Missing = "missing",
        /// A segment retired whole because every row was to go (retention, deletions); gc deletes it later.
        Retire = "retire",
        /// A segment rewritten without the rows that were to go (retention, deletions); the output is listed.
        Prune = "prune",
        /// A copy that failed its checksum replaced from the segment's other copy (two verified moves).
        Repair = "repair",
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

impl ActionReport {
    /// An action as planned: what it reads and why; outputs and sizes after are filled in once it is carried out.
    pub fn planned(kind: ActionKind, inputs: Vec<String>, bytes_before: u64, reason: String) -> Self {
        ActionReport {
            kind,
            inputs,
            outputs: Vec::new(),
            bytes_before,
            bytes_after: None,
            reason,
            duplicates_removed: None,
            duplicates_segment: None,
        }
    }
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
    /// Why the run stopped before its plan was done, when it was cut at `passes.max_run_secs` (not an error: the
    /// rest is the next run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
}

/// Body of `POST /v1/admin/move`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub segments: Vec<String>,
    /// `cold`, `hot` or `both` (checked by the server, which names the accepted values).
    pub to: String,
}

labelled_enum! {
    /// What a move by hand did with one segment.
    pub enum MoveStatus {
        Moved = "moved",
        /// Already where it should be.
        Unchanged = "unchanged",
        /// The move failed; `error` says why.
        Error = "error",
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
    pub verified_by: Option<VerifyMethod>,
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
    fn pass_names_parse_and_name_the_passes_when_unknown() {
        for p in PassName::ALL {
            assert_eq!(p.label().parse::<PassName>(), Ok(*p));
        }
        let e = "nope".parse::<PassName>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown pass \"nope\"; passes are reencode, compact, recompress, migrate, promote, gc, retention, deletions"
        );
    }
}

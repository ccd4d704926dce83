//! The HTTP API's request and response bodies: one set of types that the server serializes and the client commands
//! deserialize (and the other way round for requests), so that both sides agree on the wire by construction.
//!
//! These types are the wire contract. Values the store already defines with a stable serde form (segment ids,
//! tiers, placements, states, formats, codecs, locations, leases, query operators, a move's verification method, a
//! trash listing and a restore's outcome) are used as they are; what only the API says (a pass report, a move's
//! report, a catalog listing with formatted days and checksums) has its own type here, and the server converts.
//! The API's own enums are declared with [`tierd_store::labelled_enum!`], as the store's are; every enum serializes
//! to the same lowercase label the API has always sent.
//!
//! Nothing here does I/O or depends on the server or the client.

mod admin;
mod deletions;
mod ingest;
mod read;
mod status;
mod test_clock;
mod trash;

pub use admin::{
    ActionKind, ActionReport, MoveAnswer, MoveReport, MoveRequest, MoveStatus, PassName, PassReport, PassRequest,
    UnknownPass, VerifyMethod,
};
pub use deletions::{
    DeletionAccepted, DeletionBody, DeletionFilter, DeletionId, DeletionList, DeletionProgress, DeletionRequest,
    DeletionState, DeletionSummary, EventSelection,
};
pub use ingest::{ErrorBody, ImportAnswer};
pub use read::{
    Health, HeatRecord, OtherGroups, ProjectsAnswer, QueryRequest, QueryResponse, QueryRow, SegmentRecord,
    SegmentsAnswer, WhereClause,
};
pub use status::{
    ConfigStatus, PassStatus, ReloadOutcome, ReloadRecord, RunOutcome, RunRecord, RunTrigger, StatusAnswer,
};
pub use test_clock::{TestClockAnswer, TestClockRequest};
/// `GET /v1/plan` and `tierd plan --json`: the planner's own serde form is the wire form, with the count of actions
/// left out of the listing ([`PlanAnswer`]).
pub use tierd_policies::{
    RetentionAction, RetentionActionKind, RetentionPlan, TierCost, TieringAction, TieringActionKind, TieringPlan,
};

/// The answer of `GET /v1/plan` and `tierd plan --json`: the plan (every field of [`TieringPlan`] at the top level)
/// with at most `policy.max_plan_actions` actions listed; the bill, the transition cost and the break-even still
/// cover every action, and `omitted_actions` says how many were not listed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlanAnswer {
    #[serde(flatten)]
    pub plan: TieringPlan,
    #[serde(default)]
    pub omitted_actions: u64,
    /// What the retention pass would remove now, and what that saves (absent when every project keeps its events
    /// forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionAnswer>,
}

/// The `retention` block of [`PlanAnswer`]: the retention plan (every field of [`RetentionPlan`]) with at most
/// `policy.max_plan_actions` actions listed; the totals cover every action.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetentionAnswer {
    #[serde(flatten)]
    pub plan: RetentionPlan,
    #[serde(default)]
    pub omitted_actions: u64,
}
pub use trash::{RestoreAnswer, RestoreOutcome, RestoreRequest, RestoreStatus, TrashList, TrashedCopy, TrashedSegment};

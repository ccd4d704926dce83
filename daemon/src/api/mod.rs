//! The HTTP API's request and response bodies: one set of types that the server serializes and the client commands
//! deserialize (and the other way round for requests), so that both sides agree on the wire by construction.
//!
//! These types are the wire contract. Values the store already defines with a stable serde form (segment ids,
//! tiers, placements, states, formats, codecs, locations, leases, query operators) are used as they are; what the
//! store keeps only for itself (a move's target and verification method, a trash listing, a restore outcome) has
//! its own type here, and the server converts. Every enum serializes to the same lowercase label the API has
//! always sent.
//!
//! Nothing here does I/O or depends on the server or the client.

mod admin;
mod ingest;
mod labels;
mod read;
mod test_clock;
mod trash;

pub use admin::{
    ActionKind, ActionReport, MoveAnswer, MoveReport, MoveRequest, MoveStatus, PassName, PassReport, PassRequest,
    UnknownPass, VerifiedBy,
};
pub use ingest::{ErrorBody, ImportAnswer};
pub use read::{
    state_label, Health, ProjectsAnswer, QueryRequest, QueryResponse, QueryRow, SegmentRecord, SegmentsAnswer,
    WhereClause,
};
pub use test_clock::{TestClockAnswer, TestClockRequest};
pub use trash::{RestoreAnswer, RestoreRequest, RestoreResult, RestoreStatus, TrashList, TrashedCopy, TrashedSegment};

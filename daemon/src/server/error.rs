//! The server's errors below the HTTP layer: what an operator request (a pass, a move, the trash) or a blocking
//! task can fail with. `http::error` maps each variant to an HTTP status, in one place; nothing matches on text.

use tierd_store::layout::InvalidSegmentId;
use tierd_store::StoreError;

use crate::api::UnknownPass;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A pass name that is not one of `api::PassName::ALL` (404: there is no such pass resource).
    #[error(transparent)]
    UnknownPass(#[from] UnknownPass),
    /// A segment id in a request that is not a segment id (400).
    #[error("bad segment id {raw:?}: {source}")]
    BadSegmentId { raw: String, source: InvalidSegmentId },
    /// The store refused or failed (the status depends on the variant).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A task run off the async workers (a background pass, a blocking read) panicked (500). The daemon goes on.
    #[error("{task} panicked: {message}")]
    TaskPanicked { task: String, message: String },
    /// A task run off the async workers was cancelled before it answered (500).
    #[error("{task} was cancelled before it answered")]
    TaskCancelled { task: String },
}

impl ServerError {
    /// Parses a segment id of a request.
    pub fn segment_id(raw: &str) -> Result<tierd_store::SegmentId, ServerError> {
        raw.parse().map_err(|source| ServerError::BadSegmentId { raw: raw.to_string(), source })
    }

    /// A task on tokio's blocking pool that did not answer.
    pub fn joined(task: &str, e: tokio::task::JoinError) -> ServerError {
        match e.try_into_panic() {
            Ok(panic) => ServerError::panicked(task, panic),
            Err(_) => ServerError::TaskCancelled { task: task.to_string() },
        }
    }

    /// A task that panicked with `payload` (the text of `panic!`, when it has one).
    pub fn panicked(task: &str, payload: Box<dyn std::any::Any + Send>) -> ServerError {
        let message = match payload.downcast::<String>() {
            Ok(s) => *s,
            Err(payload) => payload.downcast_ref::<&str>().map_or("no message", |s| s).to_string(),
        };
        ServerError::TaskPanicked { task: task.to_string(), message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicked_or_cancelled_blocking_task_is_an_error() {
        let panicked = tokio::task::spawn_blocking(|| panic!("at {}", 3)).await.unwrap_err();
        let e = ServerError::joined("the query", panicked);
        assert_eq!(e.to_string(), "the query panicked: at 3");
        let never = tokio::spawn(std::future::pending::<()>());
        never.abort();
        let e = ServerError::joined("the query", never.await.unwrap_err());
        assert!(matches!(e, ServerError::TaskCancelled { .. }), "{e:?}");
    }
}

//! Errors of this crate: configuration that a planner or a schedule refuses.

/// A policy's configuration is invalid. Planners are validated once, when the daemon loads its configuration, so
/// that a bad setting stops the start with a message naming it instead of producing odd plans later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// `field` of the `policy` planner (`"reencode"`, `"compact"`, `"recompress"`) is wrong; `problem` says how and
    /// what to set instead.
    #[error("invalid {policy} policy: {field} {problem}")]
    InvalidConfig { policy: &'static str, field: String, problem: String },
    /// The cron expression of config key `key` (e.g. `passes.gc.schedule`) cannot be parsed or never fires.
    #[error("config key `{key}`: invalid schedule {expression:?}: {problem}")]
    InvalidSchedule { key: String, expression: String, problem: String },
}

impl PolicyError {
    /// `Ok` when the requirement `holds`, else the [`PolicyError::InvalidConfig`] that names `field` and says what
    /// to set (`problem` is only built when it is needed). Validations read as a list of requirements.
    pub(crate) fn require(
        holds: bool,
        policy: &'static str,
        field: &str,
        problem: impl FnOnce() -> String,
    ) -> Result<(), PolicyError> {
        if holds {
            Ok(())
        } else {
            Err(PolicyError::invalid(policy, field, problem()))
        }
    }

    pub(crate) fn invalid(policy: &'static str, field: impl Into<String>, problem: impl Into<String>) -> PolicyError {
        PolicyError::InvalidConfig { policy, field: field.into(), problem: problem.into() }
    }
}

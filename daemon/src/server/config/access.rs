//! `[[access_tokens]]`: the bearer tokens of the query and admin API, each with a role.
//!
//! - `role = "query"`: `/v1/query`, catalog lookups, segment reads, `/v1/status` and `/v1/plan`; with `projects`,
//!   only those projects' queries, lookups and segments.
//! - `role = "admin"`: all of that, and passes, moves, the trash, deletions and reload.
//!
//! A token is given inline (`token`), in a file (`token_file`, its first line) or in an environment variable
//! (`token_env`), read at start; compared in constant time, never logged. Listening on loopback, the daemon also
//! writes an admin token to `DATA_DIR/admin.token` on first start (0600), which whoever may read the data directory
//! uses. `http.metrics_need_token`: `/metrics` and `/healthz` then need a token too (any role).

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;
use tierd_store::layout::validate_project;

use super::projects::{Secret, SecretSource};

/// What a token may do. An admin token may do everything a query token may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Query,
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Query => "query",
            Role::Admin => "admin",
        }
    }
}

/// One `[[access_tokens]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AccessTokenConfig {
    /// Names the token in logs and errors (the token itself never is).
    pub name: String,
    pub role: Role,
    /// Query tokens only: the projects it may read (empty: all).
    #[serde(default)]
    pub projects: Vec<String>,
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub token_env: Option<String>,
}

impl AccessTokenConfig {
    pub fn token_source(&self) -> SecretSource<'_> {
        SecretSource { secret: self.token.as_ref(), file: self.token_file.as_deref(), env: self.token_env.as_deref() }
    }
}

/// The checks of `[[access_tokens]]`: (key, what is wrong).
pub(super) fn validate(tokens: &[AccessTokenConfig]) -> Result<(), (&'static str, String)> {
    let mut names = BTreeSet::new();
    for t in tokens {
        if t.name.is_empty() || t.name.len() > 64 || t.name.chars().any(char::is_control) {
            return Err(("access_tokens.name", "a token's name must be 1 to 64 characters".into()));
        }
        if !names.insert(t.name.as_str()) {
            return Err(("access_tokens.name", format!("token {:?} is listed twice", t.name)));
        }
        let given = [t.token.is_some(), t.token_file.is_some(), t.token_env.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err((
                "access_tokens.token",
                format!("token {:?}: give one of token, token_file and token_env", t.name),
            ));
        }
        if t.role == Role::Admin && !t.projects.is_empty() {
            return Err((
                "access_tokens.projects",
                format!("token {:?}: projects limits query tokens only; an admin token acts on every project", t.name),
            ));
        }
        for p in &t.projects {
            validate_project(p).map_err(|e| ("access_tokens.projects", format!("token {:?}: {e}", t.name)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, role: Role, projects: &[&str]) -> AccessTokenConfig {
        AccessTokenConfig {
            name: name.into(),
            role,
            projects: projects.iter().map(|p| p.to_string()).collect(),
            token: Some(Secret::new(format!("{name}-token"))),
            token_file: None,
            token_env: None,
        }
    }

    #[test]
    fn tokens_are_checked() {
        assert!(validate(&[token("grafana", Role::Query, &["web"]), token("ops", Role::Admin, &[])]).is_ok());
        let cases = [
            (vec![token("a", Role::Query, &[]), token("a", Role::Admin, &[])], "twice"),
            (vec![token("a", Role::Admin, &["web"])], "query tokens only"),
            (vec![token("a", Role::Query, &["a/b"])], "character"),
            (vec![AccessTokenConfig { token: None, ..token("a", Role::Query, &[]) }], "give one of"),
            (vec![AccessTokenConfig { token_env: Some("V".into()), ..token("a", Role::Query, &[]) }], "give one of"),
        ];
        for (tokens, needle) in cases {
            let (_, message) = validate(&tokens).unwrap_err();
            assert!(message.contains(needle), "{message}");
            assert!(!message.contains("-token"), "never quoted: {message}");
        }
        let parsed: Vec<AccessTokenConfig> =
            toml::from_str::<toml::Table>("t = [{ name = \"g\", role = \"query\", token_env = \"G\" }]").unwrap()["t"]
                .clone()
                .try_into()
                .unwrap();
        assert_eq!(parsed[0].role, Role::Query);
    }
}

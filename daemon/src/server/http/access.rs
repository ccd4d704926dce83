//! Who may read and operate: bearer tokens with a role (`[[access_tokens]]`, and `DATA_DIR/admin.token` on
//! loopback), checked by one middleware per group of routes.
//!
//! - query routes (`/v1/query`, catalog lookups, segment reads, `/v1/status`, `/v1/plan`): a query or admin token;
//!   a query token limited to some projects reaches only theirs (`scope`);
//! - admin routes (`/v1/admin/...`): an admin token;
//! - `/metrics` and `/healthz`: open, or any token with `http.metrics_need_token`.
//!
//! A missing or unknown token is a 401 (`WWW-Authenticate: Bearer`), a known one without the role or the project a
//! 403. Tokens are compared in constant time (every configured one, whichever matches), and never logged.

mod admin_file;
mod scope;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

pub use admin_file::{admin_token, ADMIN_TOKEN_FILE};

use super::error::ApiError;
use super::state::AppState;
use crate::server::config::{AccessTokenConfig, Role, Secret};

/// The bearer challenge of a 401.
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"tierd\"";

/// Every token the daemon accepts.
#[derive(Debug, Default)]
pub struct AccessTokens {
    keys: Vec<AccessKey>,
    /// `http.metrics_need_token`.
    pub metrics_need_token: bool,
}

#[derive(Debug)]
struct AccessKey {
    name: String,
    token: Secret,
    role: Role,
    /// `None`: every project.
    projects: Option<BTreeSet<String>>,
}

/// What a request's token grants: put on the request for the handlers' middleware to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's name (`admin.token` for the file's).
    pub name: String,
    pub role: Role,
    pub projects: Option<BTreeSet<String>>,
}

impl Grant {
    /// Whether the grant reaches `project`.
    pub fn reaches(&self, project: &str) -> bool {
        self.projects.as_ref().is_none_or(|p| p.contains(project))
    }
}

impl AccessTokens {
    /// The tokens of `configured`, read from the config, files or the environment (`env`), and the admin token of
    /// the data directory, if any.
    pub fn resolve(
        configured: &[AccessTokenConfig],
        admin_file_token: Option<Secret>,
        metrics_need_token: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, (&'static str, String)> {
        let mut keys = Vec::new();
        for t in configured {
            let token = t
                .token_source()
                .resolve(&format!("access token {:?}", t.name), env)
                .map_err(|e| ("access_tokens.token", e))?
                .ok_or(("access_tokens.token", format!("access token {:?} has no token", t.name)))?;
            let projects = (!t.projects.is_empty()).then(|| t.projects.iter().cloned().collect());
            keys.push(AccessKey { name: t.name.clone(), token, role: t.role, projects });
        }
        if let Some(token) = admin_file_token {
            keys.push(AccessKey { name: ADMIN_TOKEN_FILE.into(), token, role: Role::Admin, projects: None });
        }
        Ok(Self { keys, metrics_need_token })
    }

    /// Only the given admin token (tests).
    pub fn admin_only(token: &str) -> Self {
        let key =
            AccessKey { name: "test".into(), token: Secret::new(token.into()), role: Role::Admin, projects: None };
        Self { keys: vec![key], metrics_need_token: false }
    }

    /// Whether any token is configured (not counting the data directory's admin token).
    pub fn configured(&self) -> bool {
        self.keys.iter().any(|k| k.name != ADMIN_TOKEN_FILE)
    }

    /// What the bearer token of `headers` grants, if it has `role`.
    pub fn authorize(&self, headers: &HeaderMap, role: Role) -> Result<Grant, ApiError> {
        let presented = bearer(headers)?;
        let matches: Vec<bool> =
            self.keys.iter().map(|k| bool::from(k.token.expose().as_bytes().ct_eq(presented.as_bytes()))).collect();
        let Some(key) = matches.iter().position(|m| *m).map(|i| &self.keys[i]) else {
            return Err(unauthorized("unknown bearer token"));
        };
        if key.role < role {
            return Err(forbidden(format!(
                "token {:?} has role {}; this needs role {}",
                key.name,
                key.role.name(),
                role.name()
            )));
        }
        Ok(Grant { name: key.name.clone(), role: key.role, projects: key.projects.clone() })
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "this needs a bearer token (Authorization: Bearer TOKEN): one of [[access_tokens]], or on loopback the \
             one in DATA_DIR/admin.token",
        ));
    };
    let text = value.to_str().unwrap_or("");
    match text.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim().to_owned())
        }
        _ => Err(unauthorized("the Authorization header is not a bearer token (Authorization: Bearer TOKEN)")),
    }
}

/// The middleware of a group of routes that needs `role`: refuses the request, or puts its [`Grant`] on it and,
/// for a grant limited to some projects, checks the request's project (`scope`).
pub async fn require(state: Arc<AppState>, role: Role, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let metrics_route = path == "/metrics" || path == "/healthz";
    if metrics_route && !state.access.metrics_need_token {
        return next.run(req).await;
    }
    let grant = match state.access.authorize(req.headers(), role) {
        Ok(grant) => grant,
        Err(e) => {
            metrics::counter!("tierd_http_refused_total", "reason" => e.reason()).increment(1);
            return e.into_response();
        }
    };
    // The probes hold no project's data: any token opens them.
    if grant.projects.is_some() && !metrics_route {
        req = match scope::check(&state, &grant, req).await {
            Ok(req) => req,
            Err(e) => {
                metrics::counter!("tierd_http_refused_total", "reason" => e.reason()).increment(1);
                return e.into_response();
            }
        };
    }
    req.extensions_mut().insert(grant);
    next.run(req).await
}

fn unauthorized(message: &str) -> ApiError {
    let mut e = ApiError::new(StatusCode::UNAUTHORIZED, message).with_reason("unauthorized");
    e.challenge = Some(BEARER_CHALLENGE);
    e
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, message).with_reason("forbidden")
}

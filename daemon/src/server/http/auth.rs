//! Who may write: the credentials of `/import`, with the same words as Mixpanel's so that its clients need no change.
//!
//! - The project secret as the HTTP Basic user name (the password is ignored; clients send it empty): old clients,
//!   the SDKs' `api_secret`.
//! - A service account's `username:secret` with `?project_id=` (the project's `id`, or its name): new clients, the
//!   SDKs' `ServiceAccountCredentials`.
//!
//! Once any project has a secret or a service account, every `/import` needs one of them, and the credential names
//! the project written to; before that, `/import` stays open as before. A missing, malformed or wrong credential is
//! a 401 (with `WWW-Authenticate`), a right one for another project a 403; both before the body is read, so nothing
//! of the batch is ever written. Secrets are compared in constant time (`subtle`), and never logged or quoted.

use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::server::config::{ProjectConfig, Secret};

/// The `/import` credentials of every project, with their secrets read.
#[derive(Debug, Default)]
pub struct Credentials {
    projects: Vec<ProjectKeys>,
}

#[derive(Debug)]
struct ProjectKeys {
    name: String,
    id: Option<String>,
    secret: Option<Secret>,
    accounts: Vec<(String, Secret)>,
}

/// What the challenge of a 401 on `/import` says.
pub const IMPORT_CHALLENGE: &str = "Basic realm=\"tierd /import\"";

impl Credentials {
    /// The credentials of `projects`, their secrets read from the config, files or the environment (`env`).
    /// Errors name the key and the project, never the secret.
    pub fn resolve(
        projects: &[ProjectConfig],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, (&'static str, String)> {
        let mut out = Vec::new();
        for p in projects {
            let what = format!("project {:?}", p.name);
            let secret = p.secret_source().resolve(&what, env).map_err(|e| ("projects.secret", e))?;
            if secret.as_ref().is_some_and(|s| s.expose().contains(':')) {
                // It is the Basic user name, which ends at the first ':'.
                return Err(("projects.secret", format!("{what}: the secret must not contain ':'")));
            }
            let mut accounts = Vec::new();
            for a in &p.service_accounts {
                let what = format!("service account {:?} of project {:?}", a.username, p.name);
                let secret =
                    a.secret_source().resolve(&what, env).map_err(|e| ("projects.service_accounts.secret", e))?;
                let secret = secret.ok_or(("projects.service_accounts.secret", format!("{what} has no secret")))?;
                accounts.push((a.username.clone(), secret));
            }
            out.push(ProjectKeys { name: p.name.clone(), id: p.id.clone(), secret, accounts });
        }
        Ok(Self { projects: out })
    }

    /// Whether `/import` needs a credential: once any project has one.
    pub fn import_needs_credentials(&self) -> bool {
        self.projects.iter().any(|p| p.secret.is_some() || !p.accounts.is_empty())
    }

    /// The project an `/import` request's credential names; `None` while `/import` needs none. `project_id` is the
    /// request's `?project_id=`.
    pub fn import_project(&self, headers: &HeaderMap, project_id: Option<&str>) -> Result<Option<String>, ApiError> {
        if !self.import_needs_credentials() {
            return Ok(None);
        }
        let (user, password) = basic(headers)?;
        match project_id {
            Some(id) => {
                let project = self.projects.iter().find(|p| p.id.as_deref() == Some(id) || p.name == id);
                if let Some(p) = project.filter(|p| account_matches(p, &user, &password)) {
                    return Ok(Some(p.name.clone()));
                }
                if self.projects.iter().any(|p| account_matches(p, &user, &password)) {
                    return Err(forbidden(format!(
                        "this service account may not write to project_id {id:?}; use the project_id of one of its \
                         projects"
                    )));
                }
                Err(unauthorized("wrong service account user name or secret (or unknown project_id)"))
            }
            None => {
                // Every project's secret is compared, whichever matches.
                let matches: Vec<bool> = self
                    .projects
                    .iter()
                    .map(|p| {
                        p.secret.as_ref().is_some_and(|s| bool::from(s.expose().as_bytes().ct_eq(user.as_bytes())))
                    })
                    .collect();
                if let Some(p) = matches.iter().position(|m| *m).map(|i| &self.projects[i]) {
                    return Ok(Some(p.name.clone()));
                }
                if self.projects.iter().any(|p| account_matches(p, &user, &password)) {
                    return Err(unauthorized("a service account must name its project with ?project_id="));
                }
                Err(unauthorized("wrong project secret"))
            }
        }
    }
}

/// Whether `user:password` is one of `p`'s service accounts (every account compared).
fn account_matches(p: &ProjectKeys, user: &str, password: &str) -> bool {
    p.accounts.iter().fold(false, |found, (u, s)| {
        let same = u.as_bytes().ct_eq(user.as_bytes()) & s.expose().as_bytes().ct_eq(password.as_bytes());
        found | bool::from(same)
    })
}

/// The user name and password of an HTTP Basic `Authorization` header.
fn basic(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "/import needs a credential: HTTP Basic with the project secret as the user name, or a service account \
             (user name and secret) with ?project_id=",
        ));
    };
    let malformed = || unauthorized("the Authorization header is not HTTP Basic (Basic base64(user:password))");
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = text.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (user, password) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
    Ok((user.to_owned(), password.to_owned()))
}

fn unauthorized(message: &str) -> ApiError {
    let mut e = ApiError::new(StatusCode::UNAUTHORIZED, message).with_reason("unauthorized");
    e.challenge = Some(IMPORT_CHALLENGE);
    e
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, message).with_reason("forbidden")
}

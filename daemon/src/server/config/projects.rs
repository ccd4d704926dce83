//! `[[projects]]`: the projects Mixpanel clients write to, with the credentials those clients already carry.
//!
//! - `token`: what the SDKs are initialised with, and what their events carry in `properties.token`. `/track` finds
//!   an event's project by it; `/import` too when no credential or `project` names one. A token routes events; it is
//!   no secret (web pages carry it).
//! - `secret` (the project secret, sent by old clients as the HTTP Basic user name) and `service_accounts` (user name
//!   and secret, with `?project_id=`, sent by new clients): the credentials of `/import`. Once any project has one,
//!   every `/import` needs one, and the credential names the project.
//! - Each secret is given inline (`secret`), in a file (`secret_file`, its first line) or in an environment variable
//!   (`secret_env`); never logged, never quoted back in an error.
//!
//! Without `[[projects]]`, every write goes to the `project` parameter's project, else `default`, as before. Read at
//! start-up (a reload that changes `[[projects]]` is refused).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tierd_store::layout::validate_project;

/// A secret from the config: compared, never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where a secret comes from: inline (`secret`), a file (`secret_file`, its first line) or an environment variable
/// (`secret_env`): one of them, or none.
#[derive(Debug, Clone, Copy)]
pub struct SecretSource<'a> {
    pub secret: Option<&'a Secret>,
    pub file: Option<&'a Path>,
    pub env: Option<&'a str>,
}

impl SecretSource<'_> {
    /// Whether a secret is configured at all.
    pub fn is_set(&self) -> bool {
        self.secret.is_some() || self.file.is_some() || self.env.is_some()
    }

    /// The secret, read from its file or variable (`env` looks variables up). `what` names it in errors, which
    /// never quote the secret.
    pub fn resolve(&self, what: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Secret>, String> {
        let given = [self.secret.is_some(), self.file.is_some(), self.env.is_some()];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(format!("{what}: give one of secret, secret_file and secret_env"));
        }
        let value = if let Some(s) = self.secret {
            s.0.clone()
        } else if let Some(path) = self.file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{what}: cannot read secret_file {}: {e}", path.display()))?;
            text.lines().next().unwrap_or("").to_owned()
        } else if let Some(var) = self.env {
            env(var).ok_or_else(|| format!("{what}: the environment variable {var} (secret_env) is not set"))?
        } else {
            return Ok(None);
        };
        if value.is_empty() || value.len() > 1024 || value.chars().any(char::is_control) {
            return Err(format!("{what}: the secret must be 1 to 1024 characters, none of them control ones"));
        }
        Ok(Some(Secret(value)))
    }
}

/// A service account of a project: `/import` with HTTP Basic `username:secret` and `?project_id=`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountConfig {
    pub username: String,
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_env: Option<String>,
}

impl ServiceAccountConfig {
    pub fn secret_source(&self) -> SecretSource<'_> {
        SecretSource {
            secret: self.secret.as_ref(),
            file: self.secret_file.as_deref(),
            env: self.secret_env.as_deref(),
        }
    }
}

/// One `[[projects]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// The project's name, as in `/v1/query` and the catalog.
    pub name: String,
    /// The token its events carry in `properties.token`.
    pub token: String,
    /// The `project_id` its service accounts' clients send (Mixpanel's numeric id, say); the name is accepted too.
    #[serde(default)]
    pub id: Option<String>,
    /// The project secret (the HTTP Basic user name of old clients on `/import`), or where to read it.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountConfig>,
}

impl ProjectConfig {
    /// A project with a token and no credentials.
    pub fn new(name: &str, token: &str) -> Self {
        Self {
            name: name.into(),
            token: token.into(),
            id: None,
            secret: None,
            secret_file: None,
            secret_env: None,
            service_accounts: Vec::new(),
        }
    }

    pub fn secret_source(&self) -> SecretSource<'_> {
        SecretSource {
            secret: self.secret.as_ref(),
            file: self.secret_file.as_deref(),
            env: self.secret_env.as_deref(),
        }
    }
}

/// Token -> project name.
pub fn tokens(projects: &[ProjectConfig]) -> BTreeMap<String, String> {
    projects.iter().map(|p| (p.token.clone(), p.name.clone())).collect()
}

/// The checks of `[[projects]]`: (key, what is wrong). Tokens are not quoted back.
pub(super) fn validate(projects: &[ProjectConfig]) -> Result<(), (&'static str, String)> {
    let mut names = BTreeMap::new();
    let mut tokens: BTreeMap<&str, &str> = BTreeMap::new();
    for p in projects {
        validate_project(&p.name).map_err(|e| ("projects.name", e))?;
        if names.insert(p.name.as_str(), ()).is_some() {
            return Err(("projects.name", format!("project {:?} is listed twice", p.name)));
        }
        if p.token.is_empty() || p.token.len() > 255 || p.token.chars().any(char::is_control) {
            return Err((
                "projects.token",
                format!("the token of project {:?} must be 1 to 255 characters, none of them control ones", p.name),
            ));
        }
        if let Some(other) = tokens.insert(p.token.as_str(), p.name.as_str()) {
            return Err(("projects.token", format!("projects {other:?} and {:?} have the same token", p.name)));
        }
        check_source(p.secret_source(), "projects.secret", &format!("project {:?}", p.name))?;
        let mut usernames = BTreeMap::new();
        for account in &p.service_accounts {
            let u = &account.username;
            if u.is_empty() || u.len() > 255 || u.contains(':') || u.chars().any(char::is_control) {
                return Err((
                    "projects.service_accounts.username",
                    format!("a service account of project {:?} has a user name that is empty, over 255 characters, or has a ':' or a control character", p.name),
                ));
            }
            if usernames.insert(u.as_str(), ()).is_some() {
                return Err((
                    "projects.service_accounts.username",
                    format!("service account {u:?} is listed twice in project {:?}", p.name),
                ));
            }
            let what = format!("service account {u:?} of project {:?}", p.name);
            check_source(account.secret_source(), "projects.service_accounts.secret", &what)?;
            if !account.secret_source().is_set() {
                return Err((
                    "projects.service_accounts.secret",
                    format!("{what} has no secret, secret_file or secret_env"),
                ));
            }
        }
    }
    // `?project_id=` names a project by its id or its name: each must name one project.
    let mut ids: BTreeMap<&str, &str> = projects.iter().map(|p| (p.name.as_str(), p.name.as_str())).collect();
    for p in projects {
        if let Some(id) = &p.id {
            if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) {
                return Err(("projects.id", format!("the id of project {:?} must be 1 to 64 characters", p.name)));
            }
            if let Some(other) = ids.insert(id.as_str(), p.name.as_str()).filter(|o| *o != p.name) {
                return Err(("projects.id", format!("id {id:?} of project {:?} also names project {other:?}", p.name)));
            }
        }
    }
    Ok(())
}

/// At most one of `secret`, `secret_file`, `secret_env`.
fn check_source(source: SecretSource<'_>, key: &'static str, what: &str) -> Result<(), (&'static str, String)> {
    let given = [source.secret.is_some(), source.file.is_some(), source.env.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err((key, format!("{what}: give one of secret, secret_file and secret_env")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, token: &str) -> ProjectConfig {
        ProjectConfig::new(name, token)
    }

    fn account(username: &str, secret: Option<&str>) -> ServiceAccountConfig {
        ServiceAccountConfig {
            username: username.into(),
            secret: secret.map(|s| Secret::new(s.into())),
            secret_file: None,
            secret_env: None,
        }
    }

    #[test]
    fn names_and_tokens_are_checked_and_unique() {
        assert!(validate(&[p("web", "t1"), p("app", "t2")]).is_ok());
        assert_eq!(tokens(&[p("web", "t1"), p("app", "t2")])["t2"], "app");
        let cases = [
            (vec![p("a/b", "t")], "projects.name", "character"),
            (vec![p("web", "t1"), p("web", "t2")], "projects.name", "twice"),
            (vec![p("web", "")], "projects.token", "1 to 255"),
            (vec![p("web", "a\nb")], "projects.token", "control"),
            (vec![p("web", "secret"), p("app", "secret")], "projects.token", "same token"),
            (
                vec![ProjectConfig {
                    secret: Some(Secret::new("secret".into())),
                    secret_env: Some("V".into()),
                    ..p("web", "t")
                }],
                "projects.secret",
                "give one of",
            ),
            (
                vec![ProjectConfig { service_accounts: vec![account("a:b", Some("secret"))], ..p("web", "t") }],
                "projects.service_accounts.username",
                "':'",
            ),
            (
                vec![ProjectConfig {
                    service_accounts: vec![account("sa", Some("secret")), account("sa", Some("secret"))],
                    ..p("web", "t")
                }],
                "projects.service_accounts.username",
                "twice",
            ),
            (
                vec![ProjectConfig { service_accounts: vec![account("sa", None)], ..p("web", "t") }],
                "projects.service_accounts.secret",
                "no secret",
            ),
            (
                vec![p("web", "t1"), ProjectConfig { id: Some("web".into()), ..p("app", "t2") }],
                "projects.id",
                "also names",
            ),
        ];
        for (projects, key, needle) in cases {
            let (k, message) = validate(&projects).unwrap_err();
            assert_eq!(k, key, "{projects:?}");
            assert!(message.contains(needle), "{message}");
            assert!(!message.contains("\"secret\""), "a secret or token is never quoted back: {message}");
        }
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn secrets_come_inline_from_a_file_or_the_environment_and_are_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "from-file\nignored\n").unwrap();
        let env = |v: &str| (v == "TIERD_TEST_SECRET").then(|| "from-env".to_owned());
        let inline = Secret::new("inline".into());
        let cases = [
            (SecretSource { secret: Some(&inline), file: None, env: None }, "inline"),
            (SecretSource { secret: None, file: Some(&file), env: None }, "from-file"),
            (SecretSource { secret: None, file: None, env: Some("TIERD_TEST_SECRET") }, "from-env"),
        ];
        for (source, expected) in cases {
            let secret = source.resolve("x", &env).unwrap().unwrap();
            assert_eq!(secret.expose(), expected);
            assert_eq!(format!("{secret:?}"), "Secret(..)");
        }
        let none = SecretSource { secret: None, file: None, env: None };
        assert!(none.resolve("x", &env).unwrap().is_none());
        let missing = SecretSource { secret: None, file: None, env: Some("UNSET") };
        assert!(missing.resolve("project \"web\"", &env).unwrap_err().contains("UNSET"));
        let nofile = dir.path().join("nope");
        let err = SecretSource { secret: None, file: Some(&nofile), env: None }.resolve("x", &env).unwrap_err();
        assert!(err.contains("cannot read secret_file"), "{err}");
        std::fs::write(&file, "\n").unwrap();
        let err = SecretSource { secret: None, file: Some(&file), env: None }.resolve("x", &env).unwrap_err();
        assert!(err.contains("1 to 1024"), "{err}");
    }
}

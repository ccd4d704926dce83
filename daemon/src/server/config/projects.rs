//! `[[projects]]`: the projects Mixpanel clients write to, each with the token its events carry in
//! `properties.token` (the token the SDKs are initialised with). `/track` finds an event's project by its token;
//! `/import` by its `project` parameter, else the same way. Without `[[projects]]`, every write goes to the
//! `project` parameter's project, else `default`, as before.
//!
//! A token routes events; it is no secret (web pages carry it). Secrets and service accounts for `/import` come with
//! the credentials of a later release. Read at start-up (a reload that changes `[[projects]]` is refused).

use std::collections::BTreeMap;

use serde::Deserialize;
use tierd_store::layout::validate_project;

/// One `[[projects]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// The project's name, as in `/v1/query` and the catalog.
    pub name: String,
    /// The token its events carry in `properties.token`.
    pub token: String,
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
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, token: &str) -> ProjectConfig {
        ProjectConfig { name: name.into(), token: token.into() }
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
        ];
        for (projects, key, needle) in cases {
            let (k, message) = validate(&projects).unwrap_err();
            assert_eq!(k, key, "{projects:?}");
            assert!(message.contains(needle), "{message}");
            assert!(!message.contains("secret"), "a token is never quoted back: {message}");
        }
    }
}

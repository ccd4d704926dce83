//! `/import`'s credentials: each path (project secret, service account with `project_id`) with the right
//! credential, a wrong one, a missing one and another project's; a refused batch leaves nothing behind.

use base64::Engine;

use super::mixpanel::{app_config, b64, count_in, pct};
use super::*;
use crate::server::config::{Config, ProjectConfig, Secret, ServiceAccountConfig};

const FORM: &str = "application/x-www-form-urlencoded";

fn project(name: &str, token: &str, secret: &str, accounts: &[(&str, &str)], id: Option<&str>) -> ProjectConfig {
    ProjectConfig {
        id: id.map(str::to_owned),
        secret: Some(Secret::new(secret.into())),
        service_accounts: accounts
            .iter()
            .map(|(u, s)| ServiceAccountConfig {
                username: (*u).into(),
                secret: Some(Secret::new((*s).into())),
                secret_file: None,
                secret_env: None,
            })
            .collect(),
        ..ProjectConfig::new(name, token)
    }
}

fn app_with_credentials() -> App {
    let projects = vec![
        project("web", "tok-web", "web-secret", &[("sa-web", "sa-web-pw"), ("sa-both", "both-pw")], Some("1001")),
        project("app", "tok-app", "app-secret", &[("sa-both", "both-pw")], None),
    ];
    app_config(Config { projects, ..Config::default() })
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn import(uri: &str, authorization: Option<&str>, id: &str) -> Request<Body> {
    let body = json!([{"event": "e", "properties": {"time": T0_MS, "distinct_id": "u", "$insert_id": id}}]);
    let mut b = Request::post(uri).header("content-type", "application/json");
    if let Some(a) = authorization {
        b = b.header("authorization", a);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

async fn counts(app: &App) -> (u64, u64, u64) {
    (count_in(app, "web", json!([])).await, count_in(app, "app", json!([])).await, total(app).await)
}

#[tokio::test]
async fn right_credentials_write_to_their_project() {
    let app = app_with_credentials();
    let oks = [
        ("/import", basic("web-secret", ""), "web"),
        ("/import", basic("app-secret", "ignored"), "app"),
        ("/import?project_id=1001", basic("sa-web", "sa-web-pw"), "web"),
        ("/import?project_id=web", basic("sa-web", "sa-web-pw"), "web"),
        ("/import?project_id=app", basic("sa-both", "both-pw"), "app"),
        ("/import?project=web", basic("web-secret", ""), "web"),
    ];
    for (i, (uri, auth, project)) in oks.iter().enumerate() {
        let (s, _, v) = call(&app, import(uri, Some(auth), &format!("ok-{i}"))).await;
        assert_eq!(s, StatusCode::OK, "{uri} as {project}: {v}");
    }
    assert_eq!(counts(&app).await, (4, 2, 0));
}

#[tokio::test]
async fn wrong_missing_and_other_projects_credentials_are_refused_and_write_nothing() {
    let app = app_with_credentials();
    let refused: Vec<(&str, Option<String>, StatusCode, &str)> = vec![
        ("/import", None, StatusCode::UNAUTHORIZED, "needs a credential"),
        ("/import", Some(basic("nope", "")), StatusCode::UNAUTHORIZED, "wrong project secret"),
        ("/import", Some("Bearer web-secret".into()), StatusCode::UNAUTHORIZED, "not HTTP Basic"),
        ("/import", Some("Basic !!!".into()), StatusCode::UNAUTHORIZED, "not HTTP Basic"),
        // The token routes /track events; it is no /import credential.
        ("/import", Some(basic("tok-web", "")), StatusCode::UNAUTHORIZED, "wrong project secret"),
        ("/import?project_id=1001", Some(basic("sa-web", "wrong")), StatusCode::UNAUTHORIZED, "wrong service account"),
        ("/import?project_id=1001", Some(basic("web-secret", "")), StatusCode::UNAUTHORIZED, "wrong service account"),
        ("/import?project_id=9999", Some(basic("sa-web", "sa-web-pw")), StatusCode::FORBIDDEN, "may not write"),
        ("/import", Some(basic("sa-web", "sa-web-pw")), StatusCode::UNAUTHORIZED, "?project_id="),
        ("/import?project_id=app", Some(basic("sa-web", "sa-web-pw")), StatusCode::FORBIDDEN, "may not write"),
        ("/import?project=app", Some(basic("web-secret", "")), StatusCode::FORBIDDEN, "not \"app\"'s"),
    ];
    for (uri, auth, status, needle) in refused {
        let (s, headers, v) = call(&app, import(uri, auth.as_deref(), "refused")).await;
        assert_eq!(s, status, "{uri} {auth:?}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{uri} {auth:?}: {msg:?} should mention {needle:?}");
        assert!(!msg.contains("secret\"") && !msg.contains("pw"), "no secret is quoted back: {msg}");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(headers["www-authenticate"], crate::server::http::auth::IMPORT_CHALLENGE);
        }
    }
    // The SDK's form dialect: the same refusal, as status 0.
    let form = format!("data={}&verbose=1", pct(&b64(r#"{"event":"e","properties":{"time":1}}"#)));
    let (s, _, v) = call(&app, post("/import", Some(FORM), form)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["status"], json!(0), "{v}");
    assert_eq!(counts(&app).await, (0, 0, 0), "nothing of a refused batch is written");
    // /track needs no secret: its events carry their token.
    let event = json!({"event": "t", "properties": {"token": "tok-app", "distinct_id": "u"}});
    let (s, _, v) = call(&app, post("/track", Some(FORM), format!("data={}", pct(&event.to_string())))).await;
    assert_eq!((s, v), (StatusCode::OK, json!(1)));
    assert_eq!(counts(&app).await, (0, 1, 0));
}

#[tokio::test]
async fn without_secrets_import_stays_open() {
    let projects =
        vec![ProjectConfig { secret: None, service_accounts: Vec::new(), ..project("web", "t", "x", &[], None) }];
    let app = app_config(Config { projects, ..Config::default() });
    let (s, _, v) = call(&app, import("/import?project=web", None, "open")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(count_in(&app, "web", json!([])).await, 1);
}

//! Bearer tokens on the query and admin API: the right token, a wrong one, a missing one, a wrong role and a wrong
//! project; an action refused does nothing. These apps use the daemon's own router (no test token added).

use super::*;
use crate::server::config::{AccessTokenConfig, Config, Role, Secret};
use crate::server::http::access::{AccessTokens, BEARER_CHALLENGE};

fn token(name: &str, role: Role, projects: &[&str]) -> AccessTokenConfig {
    AccessTokenConfig {
        name: name.into(),
        role,
        projects: projects.iter().map(|p| p.to_string()).collect(),
        token: Some(Secret::new(format!("{name}-secret-token"))),
        token_file: None,
        token_env: None,
    }
}

fn app_with_tokens(metrics_need_token: bool) -> App {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let (ctx, budget) = store_context(dir.path(), clock);
    let hot = Arc::new(HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap());
    let config = Config::default();
    let mut state = app_state_with(&ctx, budget, hot, BatchLimits::default(), &config);
    let tokens = [
        token("ops", Role::Admin, &[]),
        token("grafana", Role::Query, &[]),
        token("web-reader", Role::Query, &["web"]),
    ];
    let access = AccessTokens::resolve(&tokens, None, metrics_need_token, &|_| None).unwrap();
    Arc::get_mut(&mut state).expect("the only handle").access = Arc::new(access);
    App { _dir: dir, router: crate::server::http::router(state, None) }
}

fn as_token(mut req: Request<Body>, name: Option<&str>) -> Request<Body> {
    if let Some(name) = name {
        req.headers_mut().insert("authorization", format!("Bearer {name}-secret-token").parse().unwrap());
    }
    req
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn query(project: Option<&str>) -> Request<Body> {
    let mut q = json!({"from": 0, "to": i64::MAX});
    if let Some(p) = project {
        q["project"] = json!(p);
    }
    post("/v1/query", Some("application/json"), q.to_string())
}

async fn seed(app: &App) -> (String, String) {
    let mut ids = Vec::new();
    for project in ["web", "app"] {
        let (s, _, v) =
            call(app, post(&format!("/import?project={project}"), Some("application/json"), events(2))).await;
        assert_eq!(s, StatusCode::OK, "ingest needs no bearer token: {v}");
        let (_, _, v) = call(app, as_token(get(&format!("/v1/catalog/segments?project={project}")), Some("ops"))).await;
        ids.push(v["segments"][0]["id"].as_str().unwrap().to_owned());
    }
    (ids[0].clone(), ids[1].clone())
}

#[tokio::test]
async fn tokens_open_their_roles_routes_and_no_others() {
    let app = app_with_tokens(false);
    let (web_segment, app_segment) = seed(&app).await;
    let gc = || post("/v1/admin/passes/gc/run", Some("application/json"), "{}");
    let delete = || {
        post("/v1/admin/deletions", Some("application/json"), json!({"project": "web", "distinct_id": "0"}).to_string())
    };
    let cases: Vec<(Request<Body>, Option<&str>, StatusCode)> = vec![
        (query(Some("web")), None, StatusCode::UNAUTHORIZED),
        (query(Some("web")), Some("nobody"), StatusCode::UNAUTHORIZED),
        (gc(), None, StatusCode::UNAUTHORIZED),
        (query(Some("web")), Some("grafana"), StatusCode::OK),
        (query(Some("app")), Some("ops"), StatusCode::OK),
        (get("/v1/status"), Some("grafana"), StatusCode::OK),
        (get("/v1/plan"), Some("grafana"), StatusCode::OK),
        (get("/v1/catalog/projects"), Some("grafana"), StatusCode::OK),
        (gc(), Some("grafana"), StatusCode::FORBIDDEN),
        (delete(), Some("grafana"), StatusCode::FORBIDDEN),
        (get("/v1/admin/trash"), Some("web-reader"), StatusCode::FORBIDDEN),
        (gc(), Some("ops"), StatusCode::OK),
        // A token limited to project web.
        (query(Some("web")), Some("web-reader"), StatusCode::OK),
        (query(Some("app")), Some("web-reader"), StatusCode::FORBIDDEN),
        (query(None), Some("web-reader"), StatusCode::FORBIDDEN),
        (get("/v1/catalog/segments?project=web"), Some("web-reader"), StatusCode::OK),
        (get("/v1/catalog/segments?project=app"), Some("web-reader"), StatusCode::FORBIDDEN),
        (get("/v1/catalog/segments"), Some("web-reader"), StatusCode::FORBIDDEN),
        (get(&format!("/v1/segments/{web_segment}")), Some("web-reader"), StatusCode::OK),
        (get(&format!("/v1/segments/{app_segment}")), Some("web-reader"), StatusCode::FORBIDDEN),
        (get("/v1/catalog/projects"), Some("web-reader"), StatusCode::FORBIDDEN),
        (get("/v1/status"), Some("web-reader"), StatusCode::FORBIDDEN),
        // Open probes (this app has no metrics recorder: /metrics is a 404 here, but not a refusal).
        (get("/healthz"), None, StatusCode::OK),
        (get("/metrics"), None, StatusCode::NOT_FOUND),
    ];
    for (req, name, status) in cases {
        let what = format!("{} {} as {name:?}", req.method(), req.uri());
        let resp = app.router.clone().oneshot(as_token(req, name)).await.unwrap();
        assert_eq!(resp.status(), status, "{what}");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(resp.headers()["www-authenticate"], BEARER_CHALLENGE, "{what}");
        }
        if status.is_client_error() {
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            let msg = v["error"].as_str().unwrap();
            assert!(!msg.contains("secret-token"), "no token is quoted back: {msg}");
        }
    }
    // The refused deletion did nothing.
    let (_, _, v) = call(&app, as_token(get("/v1/admin/deletions"), Some("ops"))).await;
    assert_eq!(v["deletions"], json!([]), "{v}");
}

#[tokio::test]
async fn probes_need_a_token_when_configured() {
    let app = app_with_tokens(true);
    for (uri, served) in [("/metrics", StatusCode::NOT_FOUND), ("/healthz", StatusCode::OK)] {
        let (s, _, _) = call(&app, get(uri)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
        let (s, _, _) = call(&app, as_token(get(uri), Some("web-reader"))).await;
        assert_eq!(s, served, "{uri}: any token opens it");
    }
}

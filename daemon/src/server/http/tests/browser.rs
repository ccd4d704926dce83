//! Browser safety on a loopback daemon: a page's requests (an `Origin`, a rebound `Host`, a form or plain-text
//! `POST` to admin and query routes) are refused before any handler runs, and run nothing.

use super::mixpanel::{app_config, count_in};
use super::*;
use crate::server::config::{Config, HttpSection};

fn with_headers(mut req: Request<Body>, headers: &[(&'static str, &str)]) -> Request<Body> {
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    req
}

fn app_allowing(origins: &[&str]) -> App {
    let http =
        HttpSection { allowed_origins: origins.iter().map(|o| o.to_string()).collect(), ..HttpSection::default() };
    app_config(Config { http, ..Config::default() })
}

#[tokio::test]
async fn pages_cannot_drive_a_loopback_daemon() {
    let app = app_allowing(&["https://shop.example"]);
    let import = || post("/import", Some("application/json"), events(2));
    let run_gc = || post("/v1/admin/passes/gc/run", Some("application/json"), "{}");
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (with_headers(import(), &[("origin", "https://evil.example")]), StatusCode::FORBIDDEN, "http.allowed_origins"),
        (with_headers(run_gc(), &[("origin", "null")]), StatusCode::FORBIDDEN, "http.allowed_origins"),
        (with_headers(import(), &[("host", "rebound.example:7070")]), StatusCode::FORBIDDEN, "http.allowed_hosts"),
        (with_headers(run_gc(), &[("host", "rebound.example")]), StatusCode::FORBIDDEN, "http.allowed_hosts"),
        // What a page may send without a preflight: forms and plain text.
        (
            post("/v1/admin/passes/gc/run", Some("application/x-www-form-urlencoded"), "{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
        (
            post("/v1/admin/move", Some("text/plain"), r#"{"segments":[],"to":"cold"}"#),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
        (post("/v1/admin/config/reload", None, ""), StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json"),
        (
            post("/v1/query", Some("text/plain"), json!({"from": 0, "to": 1}).to_string()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "application/json",
        ),
    ];
    for (req, status, needle) in cases {
        let what = format!("{} {} {:?}", req.method(), req.uri(), req.headers());
        let (s, headers, v) = call(&app, req).await;
        assert_eq!(s, status, "{what}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{what}: {v}");
        assert!(headers.get("access-control-allow-origin").is_none(), "{what}");
    }
    assert_eq!(total(&app).await, 0, "nothing of a refused request was written");
    // Tools and SDKs send no Origin; loopback names are fine.
    let ok = with_headers(import(), &[("host", "127.0.0.1:7070")]);
    assert_eq!(call(&app, ok).await.0, StatusCode::OK);
    let ok = with_headers(import(), &[("host", "localhost")]);
    assert_eq!(call(&app, ok).await.0, StatusCode::OK);
    // A listed origin (a browser SDK on the operator's site) may write, and read its answer.
    let event = json!({"event": "e", "properties": {"distinct_id": "b"}});
    let track = post(
        "/track",
        Some("application/x-www-form-urlencoded"),
        format!("data={}", super::mixpanel::pct(&event.to_string())),
    );
    let (s, headers, v) = call(&app, with_headers(track, &[("origin", "https://shop.example")])).await;
    assert_eq!((s, v), (StatusCode::OK, json!(1)));
    assert_eq!(headers["access-control-allow-origin"], "https://shop.example");
    // The same two events twice (deduplicated), and the page's one.
    assert_eq!(count_in(&app, "default", json!([])).await, 3);
}

#[tokio::test]
async fn reads_and_json_posts_are_served_as_before() {
    let app = app_allowing(&[]);
    let (s, _, v) = call(&app, Request::get("/v1/status").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, v) =
        call(&app, post("/v1/query", Some("application/json; charset=utf-8"), json!({"from": 0, "to": 1}).to_string()))
            .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

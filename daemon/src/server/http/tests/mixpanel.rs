//! Mixpanel's ingestion API as its SDKs call it: `/import` with a form or a query `data`, `strict=0`, `/track`, and
//! the profile endpoints. Each refused request is checked for its status, its answer and for having written nothing.

use base64::Engine;
use std::net::SocketAddr;

use axum::extract::ConnectInfo;

use super::*;
use crate::server::config::{Config, IngestConfig, ProjectConfig};

const FORM: &str = "application/x-www-form-urlencoded";

pub(super) fn app_config(config: Config) -> App {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0_MS));
    let (ctx, budget) = store_context(dir.path(), clock);
    let hot = Arc::new(HotTier::start(&ctx, HotConfig::default(), Arc::new(|_| {})).unwrap());
    let state = app_state_with(&ctx, budget, hot, config.ingest.batch_limits(), &config);
    App { _dir: dir, router: router(state, None) }
}

pub(super) fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// `text` percent-encoded for a form or a query (every byte but unreserved ones).
pub(super) fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Events of `n` distinct ids in the shape the SDKs send (`token`, no `$insert_id`; `time` only if `with_time`).
fn sdk_events(n: usize, with_time: bool) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut p = json!({"token": "tok", "distinct_id": format!("u{i}"), "mp_lib": "test", "n": i});
            if with_time {
                p["time"] = json!(T0_MS / 1000 + i as i64);
            }
            json!({"event": "E", "properties": p})
        })
        .collect()
}

async fn count(app: &App, filters: Value) -> u64 {
    count_in(app, "default", filters).await
}

pub(super) async fn count_in(app: &App, project: &str, filters: Value) -> u64 {
    let q = json!({"project": project, "from": 0, "to": i64::MAX, "where": filters});
    let (s, _, v) = call(app, post("/v1/query", Some("application/json"), q.to_string())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["total"].as_u64().unwrap()
}

#[tokio::test]
async fn import_takes_data_from_a_form_or_the_query_plain_or_base64() {
    let app = app(BatchLimits::default());
    let array = serde_json::to_string(&sdk_events(3, true)).unwrap();
    // The Python SDK: form with JSON data, verbose=1 and ip=0 in the form.
    let body = format!("data={}&verbose=1&ip=0&api_key=k", pct(&array));
    let (s, _, v) = call(&app, post("/import", Some(FORM), body)).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": 1, "error": null})));
    assert_eq!(total(&app).await, 3);
    // The Node SDK's import_batch: base64 in the form without percent-encoding (its `+` arrive as spaces), verbose
    // in the query; without verbose the answer is exactly `1`.
    let events = sdk_events(6, true)[3..].to_vec();
    // Make sure the `+` case is exercised: vary a property until the encoding has one.
    let encoded = (0..64)
        .map(|pad| {
            let mut padded = events.clone();
            padded[0]["properties"]["pad"] = json!("~".repeat(pad));
            b64(&serde_json::to_string(&padded).unwrap())
        })
        .find(|e| e.contains('+'))
        .expect("an encoding with a '+'");
    let resp = app.router.clone().oneshot(post("/import?ip=0&verbose=0", Some(FORM), format!("data={encoded}")));
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(axum::body::to_bytes(resp.into_body(), 64).await.unwrap(), "1");
    assert_eq!(total(&app).await, 6);
    // The Node SDK's import: one event, base64, in a GET query.
    let one = json!({"event": "single", "properties": {"time": T0_MS, "token": "tok", "distinct_id": "g"}});
    let (s, _, v) = call(&app, get(&format!("/import?data={}&verbose=1", pct(&b64(&one.to_string()))))).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": 1, "error": null})));
    // A single plain event in a form, and the same again: deduplicated (same derived $insert_id).
    for _ in 0..2 {
        let (s, _, v) = call(&app, post("/import", Some(FORM), format!("data={}", pct(&one.to_string())))).await;
        assert_eq!((s, v), (StatusCode::OK, json!(1)));
    }
    // 3 + 3 + the single event once.
    assert_eq!(total(&app).await, 7);
}

#[tokio::test]
async fn strict_0_imports_the_valid_records_and_lists_the_others() {
    let app = app(BatchLimits::default());
    let body = json!([
        {"event": "ok", "properties": {"time": 1_767_225_600, "$insert_id": "a"}},
        {"event": "", "properties": {"time": 1_767_225_600, "$insert_id": "b"}},
        {"event": "ok", "properties": {"time": 1_767_225_601, "$insert_id": "c"}},
        {"event": "no time", "properties": {"$insert_id": "d"}},
    ])
    .to_string();
    // strict=1 (and the default): refused whole.
    for uri in ["/import", "/import?strict=1"] {
        let (s, _, v) = call(&app, post(uri, Some("application/json"), body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["failed_records"].as_array().unwrap().len(), 2, "{v}");
        assert!(v.get("num_records_imported").is_none(), "{v}");
    }
    assert_eq!(total(&app).await, 0);
    let (s, _, v) = call(&app, post("/import?strict=0", Some("application/json"), body.clone())).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a partial success is Mixpanel's 400: {v}");
    assert_eq!(v["code"], json!(400));
    assert_eq!(v["num_records_imported"], json!(2), "{v}");
    let failed: Vec<(u64, &str)> = v["failed_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["$insert_id"].as_str().unwrap()))
        .collect();
    assert_eq!(failed, [(1, "b"), (3, "d")]);
    assert!(v["error"].as_str().unwrap().contains("2 of the batch's 4 records are invalid"), "{v}");
    assert_eq!(total(&app).await, 2);
    // The same in the data dialect: status 0, with the records and the count.
    let form = format!("data={}&strict=0&verbose=1", pct(&body.replace("\"a\"", "\"a2\"").replace("\"c\"", "\"c2\"")));
    let (s, _, v) = call(&app, post("/import", Some(FORM), form)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!((v["status"].clone(), v["num_records_imported"].clone()), (json!(0), json!(2)), "{v}");
    assert_eq!(v["failed_records"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(total(&app).await, 4);
}

#[tokio::test]
async fn track_fills_in_the_time_and_the_insert_id_and_answers_as_asked() {
    let app = app(BatchLimits::default());
    // The Node SDK's track: one event without time or $insert_id, base64 in a GET query, verbose=0.
    let one = json!({"event": "view", "properties": {"token": "tok", "distinct_id": "u1", "page": "/"}});
    let uri = format!("/track?ip=0&verbose=0&data={}", pct(&b64(&one.to_string())));
    let (s, _, v) = call(&app, get(&uri)).await;
    assert_eq!((s, v), (StatusCode::OK, json!(1)));
    // Stored at the receive time (the manual clock's T0), not at the wall clock's.
    let at_t0 = json!({"project": "default", "from": T0_MS, "to": T0_MS + 1});
    let (_, _, v) = call(&app, post("/v1/query", Some("application/json"), at_t0.to_string())).await;
    assert_eq!(v["total"], json!(1), "{v}");
    // Sent again (a retry): the same derived $insert_id, counted once.
    let (s, _, _) = call(&app, get(&uri)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(total(&app).await, 1);
    // The Python SDK's track: a form with a JSON array with times, verbose=1.
    let array = serde_json::to_string(&sdk_events(50, true)).unwrap();
    let (s, _, v) = call(&app, post("/track", Some(FORM), format!("data={}&verbose=1&ip=0", pct(&array)))).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": 1, "error": null})));
    // A JSON body, as Mixpanel's HTTP reference shows it: the first event again (the same event, counted once),
    // and a new one.
    let (s, _, v) = call(&app, post("/track?verbose=1", Some("application/json"), one.to_string())).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": 1, "error": null})));
    let body = json!([{"event": "json body", "properties": {"distinct_id": "j"}}]).to_string();
    let (s, _, v) = call(&app, post("/track?verbose=1", Some("application/json"), body)).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": 1, "error": null})));
    assert_eq!(total(&app).await, 52);
}

#[tokio::test]
async fn track_keeps_the_client_address_only_where_configured_and_asked() {
    for keep in [false, true] {
        let app = app_config(Config {
            ingest: IngestConfig { keep_client_ip: keep, ..IngestConfig::default() },
            ..Config::default()
        });
        for (ip, name) in [("1", "asked"), ("0", "not asked")] {
            let event = json!({"event": name, "properties": {"distinct_id": "u"}});
            let uri = format!("/track?ip={ip}&data={}", pct(&event.to_string()));
            let mut req = get(&uri);
            req.extensions_mut().insert(ConnectInfo("10.1.2.3:5555".parse::<SocketAddr>().unwrap()));
            let (s, _, v) = call(&app, req).await;
            assert_eq!((s, v), (StatusCode::OK, json!(1)));
        }
        let with_ip = count(&app, json!([{"property": "ip", "op": "eq", "value": "10.1.2.3"}])).await;
        assert_eq!(with_ip, u64::from(keep), "keep_client_ip = {keep}");
        assert_eq!(total(&app).await, 2);
    }
}

#[tokio::test]
async fn bad_requests_are_refused_in_their_dialect_and_write_nothing() {
    let app = app_config(Config {
        ingest: IngestConfig { max_bytes_per_request: 65536, ..IngestConfig::default() },
        ..Config::default()
    });
    let form = |uri: &str, body: String| post(uri, Some(FORM), body);
    let fifty_one = pct(&serde_json::to_string(&sdk_events(51, true)).unwrap());
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (form("/import", "data=%%%garbage%%%&verbose=1".into()), StatusCode::BAD_REQUEST, "base64"),
        (form("/track", format!("data={}&verbose=1", pct("!!not base64!!"))), StatusCode::BAD_REQUEST, "base64"),
        (form("/track", format!("data={}&verbose=1", b64("42"))), StatusCode::BAD_REQUEST, "a JSON number"),
        (form("/import", "verbose=1&ip=0".into()), StatusCode::BAD_REQUEST, "data parameter"),
        (form("/track", "data=&verbose=1".into()), StatusCode::BAD_REQUEST, "empty"),
        (get("/track?verbose=1"), StatusCode::BAD_REQUEST, "data parameter"),
        (get("/import?verbose=1"), StatusCode::BAD_REQUEST, "data parameter"),
        (form("/track", format!("data={fifty_one}&verbose=1")), StatusCode::PAYLOAD_TOO_LARGE, "max_events_per_track"),
        (form("/track", format!("data={}&verbose=1", "x".repeat(70_000))), StatusCode::PAYLOAD_TOO_LARGE, "65536"),
        (post("/track?verbose=1", Some("application/xml"), "<e/>"), StatusCode::BAD_REQUEST, "Content-Type"),
        (post("/track?verbose=1", Some("multipart/form-data"), "--x"), StatusCode::BAD_REQUEST, "Content-Type"),
        (form("/import", "data=%5B%5D&strict=2&verbose=1".into()), StatusCode::BAD_REQUEST, "strict must be 0 or 1"),
        (post("/track?verbose=1&data=%5B%5D", Some("application/json"), "[]"), StatusCode::BAD_REQUEST, "not both"),
        (
            form("/track", format!("data={}&verbose=1", pct(r#"{"event":"a","properties":{}},{"event":"b"}"#))),
            StatusCode::BAD_REQUEST,
            "malformed JSON",
        ),
        (
            form("/track", format!("data={}&verbose=1", pct(r#"[{"event":"a","properties":{"time":"x"}}]"#))),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            form("/track", format!("data={}&verbose=1&project=a%2Fb", pct("[]"))),
            StatusCode::BAD_REQUEST,
            "project name",
        ),
    ];
    for (req, status, needle) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (s, _, v) = call(&app, req).await;
        assert_eq!(s, status, "{what}: {v}");
        assert_eq!(v["status"], json!(0), "{what}: {v}");
        let msg = v["error"].as_str().unwrap_or_else(|| panic!("{what}: {v}"));
        assert!(msg.contains(needle), "{what}: {msg:?} should mention {needle:?}");
    }
    // /import without `data` answers in its JSON shape.
    let (s, _, v) = call(&app, post("/import?verbose=1", Some("multipart/form-data"), "--x")).await;
    assert_eq!((s, v["code"].clone()), (StatusCode::BAD_REQUEST, json!(400)), "{v}");
    assert!(v["error"].as_str().unwrap().contains("application/x-www-form-urlencoded"), "{v}");
    // Without verbose the answer is `0`, with the same status.
    let (s, _, v) = call(&app, form("/track", "data=%%%".into())).await;
    assert_eq!((s, v), (StatusCode::BAD_REQUEST, json!(0)));
    // A form not read (over the limit) may have held verbose=1: the answer is the verbose one.
    let (s, _, v) = call(&app, form("/import", format!("ip=0&data={}", "x".repeat(70_000)))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["status"], json!(0), "{v}");
    assert_eq!(total(&app).await, 0, "nothing of a refused request is written");
}

#[tokio::test]
async fn profile_updates_are_refused_never_stored_never_404() {
    let app = app(BatchLimits::default());
    let update = pct(&b64(&json!({"$token": "tok", "$distinct_id": "u", "$set": {"a": 1}}).to_string()));
    for uri in ["/engage", "/groups"] {
        for req in [post(uri, Some(FORM), format!("data={update}&verbose=1")), get(&format!("{uri}?data={update}"))] {
            let (s, _, v) = call(&app, req).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(v, json!({"status": 0, "error": "tierd stores events, not profiles"}));
        }
    }
    assert_eq!(total(&app).await, 0);
}

#[tokio::test]
async fn with_projects_events_find_their_project_by_token() {
    let projects = vec![ProjectConfig::new("web", "tok-web"), ProjectConfig::new("app", "tok-app")];
    let app = app_config(Config { projects, ..Config::default() });
    let with_token = |token: &str, id: &str| json!({"event": "e", "properties": {"token": token, "distinct_id": id}});
    let track = |events: Value, query: &str| {
        let uri = format!("/track?verbose=1{query}");
        post(&uri, Some(FORM), format!("data={}", pct(&b64(&events.to_string()))))
    };
    let (s, _, v) = call(&app, track(json!([with_token("tok-web", "a"), with_token("tok-web", "b")]), "")).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": 1, "error": null})));
    let (s, _, v) = call(&app, track(with_token("tok-app", "c"), "")).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": 1, "error": null})));
    let refused = [
        (track(with_token("nope", "x"), ""), StatusCode::UNAUTHORIZED, "not the token of any project"),
        (
            track(json!({"event": "e", "properties": {"distinct_id": "x"}}), ""),
            StatusCode::UNAUTHORIZED,
            "no properties.token",
        ),
        (track(json!({"event": "e", "properties": {"token": 5}}), ""), StatusCode::UNAUTHORIZED, "no properties.token"),
        (
            track(json!([with_token("tok-web", "x"), with_token("tok-app", "y")]), ""),
            StatusCode::BAD_REQUEST,
            "different projects",
        ),
        (track(with_token("tok-web", "x"), "&project=app"), StatusCode::BAD_REQUEST, "project \"web\""),
    ];
    for (req, status, needle) in refused {
        let what = req.uri().to_string();
        let (s, _, v) = call(&app, req).await;
        assert_eq!(s, status, "{what}: {v}");
        assert_eq!(v["status"], json!(0), "{v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{what}: {v} should mention {needle:?}");
    }
    // /import: by its project parameter when given (its credentials come later), else by token.
    let events = json!([{"event": "i", "properties": {"token": "tok-web", "time": T0_MS, "distinct_id": "i"}}]);
    let (s, _, v) = call(&app, post("/import", Some(FORM), format!("data={}", pct(&events.to_string())))).await;
    assert_eq!((s, v), (StatusCode::OK, json!(1)));
    let (s, _, v) = call(&app, post("/import?project=app", Some("application/json"), events.to_string())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(count_in(&app, "web", json!([])).await, 3);
    assert_eq!(count_in(&app, "app", json!([])).await, 2);
    assert_eq!(total(&app).await, 0, "nothing went to the default project");
}

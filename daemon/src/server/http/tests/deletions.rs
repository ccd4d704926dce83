//! `POST /v1/admin/deletions` and its listings, and the tombstones every reader applies from the moment a request
//! is acknowledged: queries, NDJSON segment reads, the catalog listing's `deleted_rows`.

use super::*;

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Events of distinct ids `ids`, one each, at T0 + `offset_s` seconds.
fn events_of(ids: &[&str], offset_s: i64) -> String {
    let v: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"event": "E", "properties": {"time": T0_MS / 1000 + offset_s + i as i64, "distinct_id": id,
                "$insert_id": format!("{id}-{offset_s}-{i}")}})
        })
        .collect();
    serde_json::to_string(&v).unwrap()
}

async fn ndjson_ids(app: &App) -> Vec<String> {
    let (_, _, v) = call(app, get("/v1/catalog/segments?project=default")).await;
    let mut ids = Vec::new();
    for seg in v["segments"].as_array().unwrap() {
        let resp =
            app.router.clone().oneshot(get(&format!("/v1/segments/{}?format=ndjson", seg["id"].as_str().unwrap())));
        let bytes = axum::body::to_bytes(resp.await.unwrap().into_body(), usize::MAX).await.unwrap();
        for line in std::str::from_utf8(&bytes).unwrap().lines() {
            let e: Value = serde_json::from_str(line).unwrap();
            ids.push(e["properties"]["distinct_id"].as_str().unwrap().to_string());
        }
    }
    ids.sort();
    ids
}

#[tokio::test]
async fn a_deleted_users_events_disappear_at_once_and_later_ones_are_kept() {
    let app = app(BatchLimits::default());
    let (s, _, v) = call(&app, post("/import", None, events_of(&["a", "b", "b", "c", "d"], 0))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(total(&app).await, 5);
    let (_, _, listing) = call(&app, get("/v1/catalog/segments?project=default")).await;
    assert!(listing.get("deleted_rows").is_none(), "no deletion: nothing for readers to apply {listing}");

    let body = json!({"project": "default", "distinct_ids": ["b", "d", "never-seen"]});
    let (s, _, v) = call(&app, post("/v1/admin/deletions", Some("application/json"), body.to_string())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "pending");
    assert_eq!(v["max_seq"], 5, "the five events ingested so far");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(total(&app).await, 2, "b's two events and d's are gone from answers at once");
    assert_eq!(ndjson_ids(&app).await, ["a", "c"]);
    let (_, _, listing) = call(&app, get("/v1/catalog/segments?project=default")).await;
    assert_eq!(listing["deleted_rows"]["kind"], "distinct_ids", "{listing}");
    assert_eq!(listing["deleted_rows"]["max_seq"], 5);
    let raw =
        app.router.clone().oneshot(get(&format!("/v1/segments/{}", listing["segments"][0]["id"].as_str().unwrap())));
    assert!(raw.await.unwrap().headers().contains_key("x-tierd-deleted-rows"), "raw bytes still hold the rows");

    // b comes back after the request: kept. A single distinct_id works too; another project is untouched.
    call(&app, post("/import", None, events_of(&["b"], 100))).await;
    assert_eq!(total(&app).await, 3);
    assert_eq!(ndjson_ids(&app).await, ["a", "b", "c"]);
    let (s, _, v) =
        call(&app, post("/v1/admin/deletions", Some("application/json"), r#"{"project":"default","distinct_id":"a"}"#))
            .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(total(&app).await, 2);

    let (s, _, v) = call(&app, get("/v1/admin/deletions")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let listed = v["deletions"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!((listed[0]["id"].as_str().unwrap(), &listed[0]["distinct_ids"]), (id.as_str(), &json!(3)));
    let (s, _, v) = call(&app, get(&format!("/v1/admin/deletions/{id}"))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["distinct_ids"], json!(["b", "d", "never-seen"]));
    assert_eq!(
        (&v["project"], &v["state"], &v["created_at_ms"]),
        (&json!("default"), &json!("pending"), &json!(T0_MS))
    );
    let (s, _, _) = call(&app, get("/v1/admin/deletions/01ARZ3NDEKTSV4RRFFQ69G5FAV")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = call(&app, get("/v1/admin/deletions/nope")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_deletion_requests_are_refused_with_a_reason_and_store_nothing() {
    let app = app(BatchLimits::default());
    let many: Vec<String> = (0..2001).map(|i| format!("u{i}")).collect();
    let cases = [
        (json!({"project": "default"}).to_string(), "at least one"),
        (json!({"project": "default", "distinct_ids": []}).to_string(), "at least one"),
        (json!({"project": "default", "distinct_id": ""}).to_string(), "empty"),
        (json!({"project": "default", "distinct_id": "a", "distinct_ids": ["b"]}).to_string(), "not several"),
        (
            json!({"project": "default", "distinct_id": "a", "filter": {"event": "E", "from": 0, "to": 1}}).to_string(),
            "not several",
        ),
        (json!({"project": "default", "filter": {"event": "E", "from": 5, "to": 5}}).to_string(), "must be before"),
        (json!({"project": "default", "filter": {"from": 0, "to": 5}}).to_string(), "retention"),
        (
            json!({"project": "default", "filter": {"event": "E", "from": 0, "to": 5,
            "where": [{"property": "os", "op": "like", "value": "x"}]}})
            .to_string(),
            "unknown variant",
        ),
        (
            json!({"project": "default", "filter": {"event": "E", "from": 0, "to": 5,
            "where": [{"property": "", "op": "exists"}]}})
            .to_string(),
            "where[0]: property must not be empty",
        ),
        (
            json!({"project": "default", "filter": {"event": "E", "from": 0, "to": 5,
            "where": vec![json!({"property": "os", "op": "exists"}); 17]}})
            .to_string(),
            "deletions.max_conditions",
        ),
        (json!({"project": "default", "filter": {"event": "E", "to": 5}}).to_string(), "missing field `from`"),
        (json!({"project": "a/b", "distinct_id": "a"}).to_string(), "project"),
        (json!({"project": "default", "user": "a"}).to_string(), "unknown field"),
        ("{".to_string(), "bad deletion request"),
        (json!({"project": "default", "distinct_ids": many}).to_string(), "deletions.max_ids_per_request"),
        (json!({"project": "default", "distinct_id": "x".repeat(300_000)}).to_string(), "deletions.max_request_bytes"),
    ];
    for (body, needle) in cases {
        let (s, _, v) = call(&app, post("/v1/admin/deletions", Some("application/json"), body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{}: {v}", &body[..body.len().min(80)]);
        assert!(v["error"].as_str().unwrap().contains(needle), "{needle}: {v}");
    }
    let (_, _, v) = call(&app, get("/v1/admin/deletions")).await;
    assert_eq!(v, json!({"deletions": []}));
}

/// Events `(name, offset_s, os)` of distinct id `u`.
fn named_events(list: &[(&str, i64, &str)]) -> String {
    let v: Vec<Value> = list
        .iter()
        .enumerate()
        .map(|(i, (name, offset_s, os))| {
            json!({"event": name, "properties": {"time": T0_MS / 1000 + offset_s, "distinct_id": "u", "os": os,
                "$insert_id": format!("n{i}-{offset_s}")}})
        })
        .collect();
    serde_json::to_string(&v).unwrap()
}

#[tokio::test]
async fn a_filtered_delete_hides_one_events_window_where_its_conditions_hold() {
    let app = app(BatchLimits::default());
    let events = named_events(&[
        ("Junk", 10, "ios"),
        ("Junk", 20, "ios"),
        ("Junk", 20, "web"),
        ("Junk", 100, "ios"),
        ("Good", 20, "ios"),
    ]);
    let (s, _, v) = call(&app, post("/import", None, events)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(total(&app).await, 5);
    let body = json!({"project": "default", "filter": {"event": "Junk", "from": T0_MS, "to": T0_MS + 50_000,
        "where": [{"property": "os", "op": "eq", "value": "ios"}]}});
    let (s, _, v) = call(&app, post("/v1/admin/deletions", Some("application/json"), body.to_string())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // Gone at once: the two ios Junk events inside the window. Junk on web, Junk after the window, Good: kept.
    assert_eq!(total(&app).await, 3);
    let (_, _, listing) = call(&app, get("/v1/catalog/segments?project=default")).await;
    assert_eq!(listing["deleted_rows"]["kind"], "events", "{listing}");
    // Sent again after the request: kept.
    call(&app, post("/import", None, named_events(&[("Junk", 30, "ios")]))).await;
    assert_eq!(total(&app).await, 4);
    let (_, _, v) = call(&app, get(&format!("/v1/admin/deletions/{id}"))).await;
    assert_eq!(v["events"]["event"], "Junk", "{v}");
    assert_eq!(v["events"]["where"][0]["property"], "os", "{v}");
    let (_, _, v) = call(&app, get("/v1/admin/deletions")).await;
    assert_eq!(v["deletions"][0]["distinct_ids"], 0, "{v}");
    assert_eq!(v["deletions"][0]["events"]["from_ms"], T0_MS, "{v}");
}

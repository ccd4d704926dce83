//! Rejected requests: every kind of bad import (nothing of the batch becomes visible), request limits (413),
//! a full hot tier (503 + Retry-After), bad queries.

use super::*;

/// One rejected request: what is sent and what must come back.
struct BadCase {
    name: &'static str,
    project: Option<String>,
    body: Vec<u8>,
    headers: Vec<(&'static str, &'static str)>,
    needles: &'static [&'static str],
    /// `(index, field, message needles)` of every invalid record (field `None`: not checked; the record's message
    /// must contain one of the needles, case-insensitively); empty when the request as a whole is bad.
    failed: Vec<(usize, Option<&'static str>, &'static [&'static str])>,
    /// Exact status expected; `None` for "any 4xx" (cases the contract does not pin).
    status: Option<u16>,
}

#[test]
fn bad_imports_are_rejected_whole() {
    let dir = TestDir::new("bad");
    let d = Daemon::start(&dir.data_dir(), None);
    let t = DAY0 * 86_400 + 600;
    let valid = |case: &str, i: usize| {
        ev(
            "Valid",
            json!({"time": t + i as i64, "distinct_id": "u", "$insert_id": format!("{case}-{i}"), "case": case}),
        )
    };
    // A batch of 6 records where `bad` replaces the records at the given indices.
    let batch = |case: &str, bad: &[(usize, Value)]| -> Vec<u8> {
        let mut v: Vec<Value> = (0..6).map(|i| valid(case, i)).collect();
        for (i, b) in bad {
            v[*i] = b.clone();
        }
        array_body(&v)
    };
    let rec = |case: &str, i: usize, props: Value| -> Value {
        let mut p = json!({"time": t, "distinct_id": "u", "$insert_id": format!("{case}-{i}"), "case": case});
        for (k, v) in props.as_object().unwrap() {
            if v.is_null() {
                p.as_object_mut().unwrap().remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        p
    };
    let json_ct = vec![("content-type", "application/json")];
    let invalid = |name: &'static str,
                   idx: usize,
                   record: Value,
                   field: &'static str,
                   record_needles: &'static [&'static str]| BadCase {
        name,
        project: Some("bad".into()),
        body: batch(name, &[(idx, record)]),
        headers: vec![("content-type", "application/json")],
        needles: &[],
        failed: vec![(idx, Some(field), record_needles)],
        status: Some(400),
    };
    let whole = |name: &'static str,
                 project: Option<String>,
                 body: Vec<u8>,
                 headers: Vec<(&'static str, &'static str)>,
                 needles: &'static [&'static str]| BadCase {
        name,
        project,
        body,
        headers,
        needles,
        failed: vec![],
        status: Some(400),
    };
    let bad_p = Some("bad".to_string());
    let long_id = "x".repeat(129);
    let mut cases = vec![
        whole(
            "malformed-json",
            bad_p.clone(),
            br#"[{"event":"Valid","properties":{"time":1710720000,"case":"malformed-json"}},"#.to_vec(),
            json_ct.clone(),
            &["json"],
        ),
        whole(
            "content-type-xml",
            bad_p.clone(),
            batch("content-type-xml", &[]),
            vec![("content-type", "application/xml")],
            &["content-type", "content type"],
        ),
        whole("empty-body", bad_p.clone(), vec![], json_ct.clone(), &["empty"]),
        invalid(
            "event-missing",
            2,
            json!({"properties": rec("event-missing", 2, json!({}))}),
            "event",
            &["missing", "required"],
        ),
        invalid("event-empty", 0, ev("", rec("event-empty", 0, json!({}))), "event", &["empty"]),
        invalid("event-256-bytes", 5, ev(&"é".repeat(128), rec("event-256-bytes", 5, json!({}))), "event", &["255"]),
        invalid(
            "event-number",
            1,
            json!({"event": 5, "properties": rec("event-number", 1, json!({}))}),
            "event",
            &["string"],
        ),
        invalid("properties-missing", 3, json!({"event": "Valid"}), "properties", &["missing", "required"]),
        invalid("properties-array", 3, json!({"event": "Valid", "properties": [1, 2]}), "properties", &["object"]),
        invalid(
            "time-missing",
            4,
            ev("Valid", rec("time-missing", 4, json!({"time": null}))),
            "properties.time",
            &["missing", "required"],
        ),
        invalid(
            "time-string",
            4,
            ev("Valid", rec("time-string", 4, json!({"time": "1710720000"}))),
            "properties.time",
            &["number"],
        ),
        invalid(
            "time-bool",
            0,
            ev("Valid", rec("time-bool", 0, json!({"time": true}))),
            "properties.time",
            &["number"],
        ),
        invalid(
            "distinct-id-bool",
            2,
            ev("Valid", rec("distinct-id-bool", 2, json!({"distinct_id": true}))),
            "properties.distinct_id",
            &["string", "number"],
        ),
        invalid(
            "distinct-id-object",
            2,
            ev("Valid", rec("distinct-id-object", 2, json!({"distinct_id": {"a": 1}}))),
            "properties.distinct_id",
            &["string", "number"],
        ),
        invalid(
            "insert-id-129-bytes",
            1,
            ev("Valid", rec("insert-id-129-bytes", 1, json!({"$insert_id": long_id}))),
            "properties.$insert_id",
            &["128"],
        ),
        invalid(
            "insert-id-number",
            1,
            ev("Valid", rec("insert-id-number", 1, json!({"$insert_id": 5}))),
            "properties.$insert_id",
            &["string"],
        ),
        BadCase {
            name: "two-invalid",
            project: bad_p.clone(),
            body: batch(
                "two-invalid",
                &[
                    (1, json!({"properties": rec("two-invalid", 1, json!({}))})),
                    (4, ev("Valid", rec("two-invalid", 4, json!({"time": null})))),
                ],
            ),
            headers: json_ct.clone(),
            needles: &[],
            failed: vec![
                (1, Some("event"), &["missing", "required"]),
                (4, Some("properties.time"), &["missing", "required"]),
            ],
            status: Some(400),
        },
        BadCase {
            name: "record-not-object",
            project: bad_p.clone(),
            body: batch("record-not-object", &[(0, json!(5))]),
            headers: json_ct.clone(),
            needles: &[],
            failed: vec![(0, None, &["object"])],
            status: Some(400),
        },
        BadCase {
            name: "ndjson-bad-line",
            project: bad_p.clone(),
            body: [
                ndjson_body(&[valid("ndjson-bad-line", 0)]),
                b"{\"event\": nope}\n".to_vec(),
                ndjson_body(&[valid("ndjson-bad-line", 2)]),
            ]
            .concat(),
            headers: vec![("content-type", "application/x-ndjson")],
            needles: &[],
            failed: vec![],
            status: Some(400),
        },
        BadCase {
            name: "gzip-header-plain-body",
            project: bad_p.clone(),
            body: batch("gzip-header-plain-body", &[]),
            headers: vec![("content-type", "application/json"), ("content-encoding", "gzip")],
            needles: &[],
            failed: vec![],
            status: None,
        },
        whole(
            "gzip-of-malformed",
            bad_p.clone(),
            gzip(b"[{\"event\":"),
            vec![("content-type", "application/json"), ("content-encoding", "gzip")],
            &["json"],
        ),
    ];
    for (name, p) in [
        ("project-empty", ""),
        ("project-slash", "a/b"),
        ("project-dot", "a.b"),
        ("project-space", "a b"),
        ("project-umlaut", "ümlaut"),
    ] {
        cases.push(whole(name, Some(p.to_string()), batch(name, &[]), json_ct.clone(), &["project"]));
    }
    cases.push(whole(
        "project-65-chars",
        Some("p".repeat(65)),
        batch("project-65-chars", &[]),
        json_ct.clone(),
        &["project"],
    ));

    // A baseline so "nothing changed" is checked against data, not against an empty store.
    let baseline: Vec<Value> = (0..20).map(|i| valid("baseline", i)).collect();
    d.import_ok("bad", &baseline);
    let (total0, rows0) = (total(&d, "bad"), catalog_rows(&d, "bad"));
    assert_eq!(total0, 20);

    for c in &cases {
        let r = d.post_import(c.project.as_deref(), c.body.clone(), &c.headers);
        let what = format!("case {}", c.name);
        match c.status {
            Some(s) => assert_error(&r, s, c.needles, &what),
            None => {
                assert!((400..500).contains(&r.status), "{what}: expected a 4xx, got {}: {}", r.status, r.text());
                assert_error_shape(&r, &what);
            }
        }
        if !c.failed.is_empty() {
            let fr = r.json["failed_records"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: no failed_records in {}", r.text()));
            let got: BTreeMap<u64, &Value> = fr.iter().map(|f| (f["index"].as_u64().unwrap_or(u64::MAX), f)).collect();
            assert_eq!(
                got.keys().copied().collect::<Vec<_>>(),
                c.failed.iter().map(|(i, ..)| *i as u64).collect::<Vec<_>>(),
                "{what}: failed_records indices; body {}",
                r.text()
            );
            for (i, field, record_needles) in &c.failed {
                let f = got[&(*i as u64)];
                if let Some(field) = field {
                    assert_eq!(f["field"], *field, "{what}: failed record {i} field; body {}", r.text());
                }
                let msg = f["message"].as_str().unwrap_or("").to_lowercase();
                assert!(
                    record_needles.iter().any(|n| msg.contains(n)),
                    "{what}: failed record {i}'s message should mention one of {record_needles:?}: {f}"
                );
                // A record whose $insert_id was usable is named by it.
                let sent: Value = serde_json::from_slice::<Vec<Value>>(&c.body).unwrap()[*i].clone();
                if let Some(id) = sent.get("properties").and_then(|p| p.get("$insert_id")).and_then(Value::as_str) {
                    if id.len() <= 128 {
                        assert_eq!(f["$insert_id"], id, "{what}: failed record {i} $insert_id; body {}", r.text());
                    }
                }
            }
        }
        // Nothing of the batch is visible.
        assert_eq!(total(&d, "bad"), total0, "{what}: query total changed after a rejected batch");
        assert_eq!(catalog_rows(&d, "bad"), rows0, "{what}: catalog rows changed after a rejected batch");
        let q = json!({"project": "bad", "from": 0, "to": FAR_FUTURE_MS, "where": [{"property": "case", "op": "eq", "value": c.name}]});
        assert_eq!(d.query(&q)["total"], 0, "{what}: events of the rejected batch are visible");
    }
    let projects = d.projects();
    assert_eq!(projects, vec!["bad".to_string()], "rejected batches must not create projects");
}

#[test]
fn configured_limits_answer_413() {
    let dir = TestDir::new("limits");
    let d =
        Daemon::start(&dir.data_dir(), Some("[ingest]\nmax_events_per_request = 100\nmax_bytes_per_request = 65536\n"));
    let t = DAY0 * 86_400;
    let events = |tag: &str, n: usize, pad: usize| -> Vec<Value> {
        (0..n).map(|i| ev("E", json!({"time": t + i as i64, "distinct_id": "u", "$insert_id": format!("{tag}-{i}"), "tag": tag, "pad": "x".repeat(pad)}))).collect()
    };
    let json_ct = [("content-type", "application/json")];
    let gz = [("content-type", "application/json"), ("content-encoding", "gzip")];
    let over = [
        ("101 events", array_body(&events("e101", 101, 0)), &json_ct[..], "100"),
        (
            "101 events ndjson",
            ndjson_body(&events("n101", 101, 0)),
            &[("content-type", "application/x-ndjson")][..],
            "100",
        ),
        ("101 events gzip", gzip(&array_body(&events("g101", 101, 0))), &gz[..], "100"),
        ("~80 KiB body", array_body(&events("big", 40, 2000)), &json_ct[..], "65536"),
        // Small on the wire, over the limit once decompressed: the limit is on uncompressed bytes.
        ("~80 KiB gzip body", gzip(&array_body(&events("gzbig", 40, 2000))), &gz[..], "65536"),
    ];
    for (what, body, headers, limit) in over {
        let r = d.post_import(Some("lim"), body, headers);
        assert_error(&r, 413, &[limit], what);
    }
    assert_eq!(total(&d, "lim"), 0, "nothing of an over-limit request may be written");
    // At the limits: accepted.
    d.import_ok("lim", &events("ok100", 100, 0));
    let r = d.post_import(Some("lim"), gzip(&array_body(&events("okgz", 20, 2000))), &gz);
    assert_import_ok(&r, 20, "20 events of 2 KB, ~41 KiB uncompressed");
    assert_eq!(total(&d, "lim"), 120);
}

#[test]
fn default_limits_answer_413() {
    let dir = TestDir::new("deflimits");
    let d = Daemon::start(&dir.data_dir(), None);
    let t = DAY0 * 86_400;
    let tiny: Vec<Value> =
        (0..2001).map(|i| ev("E", json!({"time": t, "distinct_id": "u", "$insert_id": format!("t{i}")}))).collect();
    let r = d.post_import(Some("dl"), array_body(&tiny), &[("content-type", "application/json")]);
    assert_error(&r, 413, &["2000"], "2001 events with default limits");
    // 1000 events of ~10.3 KiB each: over 10 MiB.
    let big: Vec<Value> = (0..1000)
        .map(|i| {
            ev("E", json!({"time": t, "distinct_id": "u", "$insert_id": format!("b{i}"), "pad": "y".repeat(10_600)}))
        })
        .collect();
    let body = array_body(&big);
    assert!(body.len() > 10 * 1024 * 1024);
    let r = d.post_import(Some("dl"), body, &[("content-type", "application/json")]);
    assert_error(&r, 413, &["10485760", "10 MiB", "10MiB"], "10.1 MiB body with default limits");
    assert_eq!(total(&d, "dl"), 0);
    d.import_ok("dl", &tiny[..2000]);
    assert_eq!(total(&d, "dl"), 2000);
    // Just under 10 MiB is accepted (no smaller limit hides in the HTTP stack).
    let body = array_body(&big[..950]);
    assert!(body.len() > 9 * 1024 * 1024 && body.len() < 10 * 1024 * 1024, "{}", body.len());
    let r = d.post_import(Some("dl"), body, &[("content-type", "application/json")]);
    assert_import_ok(&r, 950, "950 events, ~9.7 MiB");
    assert_eq!(total(&d, "dl"), 2950);
}

/// `[hot] max_bytes`, exactly: ingest is refused (503 + Retry-After) from the first batch whose frames would take
/// the hot tier past the limit. The expected outcome of every batch is computed before anything is sent, from the
/// sizes alone: each batch's frame bytes (the same encoding the daemon does, `IngestBatch::encode_rows`) and the
/// header of each new segment (one per UTC day: the test takes under the 10 minutes after which a late day's
/// segment is sealed); a batch is refused when the bytes held plus its frames exceed the limit.
#[test]
fn full_hot_tier_answers_503_with_retry_after() {
    const MAX_BYTES: u64 = 20_000;
    let dir = TestDir::new("full");
    let d = Daemon::start(&dir.data_dir(), Some(&format!("[hot]\nmax_bytes = {MAX_BYTES}\n")));
    let mut g = EventGen::new(seed(0xF011_0001), DAY0, 2);
    let batches: Vec<Vec<Value>> = (0..60)
        .map(|n| {
            let mut batch = g.events(40);
            for e in &mut batch {
                // Incompressible-ish padding, so the hot tier grows by roughly the body size.
                let pad: String = (0..100).map(|_| (b'a' + (g.rng.random_range(0..26u8))) as char).collect();
                e["properties"]["pad"] = json!(pad);
                e["properties"]["n"] = json!(n);
            }
            batch
        })
        .collect();
    // The prediction, from the sizes.
    let limits = tierd_codecs::BatchLimits::default();
    let header = |day: i32| {
        let id = "0".repeat(26);
        tierd_codecs::SegmentHeader { segment_id: id, project: "full".into(), day }.encode().len() as u64
    };
    let (mut held, mut days, mut expected) = (0u64, BTreeSet::new(), Vec::new());
    for batch in &batches {
        let rows = tierd_codecs::parse_batch_rows(&array_body(batch), &limits).unwrap();
        let encoded = tierd_store::hot::IngestBatch::encode_rows("full".into(), &rows);
        let accepted = held + encoded.frame_bytes() <= MAX_BYTES;
        if accepted {
            held += encoded.frame_bytes();
            for part in encoded.parts.iter().filter(|p| days.insert(p.day)) {
                held += header(part.day);
            }
        }
        expected.push(accepted);
    }
    let first_refused = expected.iter().position(|a| !a).expect("60 batches of ~6 KB overflow 20000 bytes");
    assert!(first_refused > 0, "the first batch alone fits");

    let mut m = Model::new();
    let mut got = Vec::new();
    for (n, batch) in batches.iter().enumerate() {
        let r = send(&d, "full", batch, Encoding::Array);
        match r.status {
            200 => {
                assert_import_ok(&r, batch.len(), &format!("batch {n}"));
                m.ack("full", batch);
            }
            503 => {
                assert_error(&r, 503, &["hot.max_bytes"], &format!("batch {n}"));
                let retry = r.header("retry-after").unwrap_or_else(|| panic!("batch {n}: 503 without Retry-After"));
                assert!(retry.trim().parse::<u64>().is_ok(), "batch {n}: Retry-After {retry:?} is not delay-seconds");
            }
            s => panic!("batch {n}: expected 200 or 503, got {s}: {}", r.text()),
        }
        got.push(r.status == 200);
    }
    println!("first refused: batch {first_refused}; {held} bytes held of {MAX_BYTES}");
    assert_eq!(got.iter().position(|a| !a), Some(first_refused), "the first refused batch");
    assert_eq!(got, expected, "accepted (true) or refused, batch by batch");
    // The bytes the catalog holds are the prediction's.
    let segments = d.segments("full", None, None);
    let bytes: u64 = segments["segments"].as_array().unwrap().iter().map(|s| s["bytes"].as_u64().unwrap()).sum();
    assert_eq!(bytes, held, "hot bytes the catalog holds");
    // Refused batches left nothing behind; accepted ones are all there.
    assert_model(&d, &m, &json!({"project": "full", "from": 0, "to": FAR_FUTURE_MS, "group_by": "properties.n"}));
    check_catalog_matches_disk(&d).unwrap_or_else(|e| panic!("catalog vs hot directory:\n{e}"));
}

#[test]
fn bad_queries_are_400() {
    let dir = TestDir::new("badq");
    let d = Daemon::start(&dir.data_dir(), None);
    d.import_ok("bq", &[ev("A", json!({"time": DAY0 * 86_400, "distinct_id": "u", "$insert_id": "1"}))]);
    let ok = json!({"project": "bq", "from": 0, "to": FAR_FUTURE_MS});
    assert_eq!(d.query(&ok)["total"], 1);
    let with = |k: &str, v: Value| {
        let mut q = ok.clone();
        q[k] = v;
        q
    };
    let cases = [
        ("unknown op", with("where", json!([{"property": "$os", "op": "like", "value": "i"}])), &["op"][..]),
        ("from == to", with("from", json!(FAR_FUTURE_MS)), &["from", "to"][..]),
        ("from > to", json!({"project": "bq", "from": 2_000, "to": 1_000}), &["from", "to"][..]),
        ("bad project", with("project", json!("a/b")), &["project"][..]),
        ("bad group_by", with("group_by", json!("foo")), &["group_by", "group"][..]),
        ("empty group_by property", with("group_by", json!("properties.")), &["group_by", "group"][..]),
    ];
    for (what, q, needles) in cases {
        let r = d.post_json("/v1/query", &q);
        assert_error(&r, 400, needles, &format!("query {what}: {q}"));
    }
    let url = format!("{}/v1/query", d.url());
    let r = tierd_tests::daemon::http_client()
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "malformed query JSON");
}

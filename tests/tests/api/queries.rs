//! Queries against the independent model over a generated stream with duplicates across several days.

use super::*;

#[test]
fn queries_match_the_model_with_duplicates_across_days() {
    let seed = seed(0x0DE_D0B5);
    let dir = TestDir::new("query");
    let d = Daemon::start(&dir.data_dir(), None);
    let mut g = EventGen::new(seed, DAY0, 4);
    let mut m = Model::new();
    let p = "q";
    let events: Vec<Value> = (0..1200).map(|_| g.event()).collect();
    for batch in g.batches(events.clone(), 150) {
        let enc = g.encoding();
        send_ok(&d, &mut m, p, &batch, enc);
    }
    // Re-sends: exact copies, changed copies (last wins: $os always changes), same insert id at another time
    // (a different event), and a batch that carries two copies of one event (the later in the request wins).
    let mut resend = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match i % 10 {
            0 => resend.push(e.clone()),
            3 | 7 => resend.push(g.changed_copy(e)),
            5 => {
                let mut other = e.clone();
                let t = tierd_tests::mp::time_ms(&e["properties"]["time"]);
                other["properties"]["time"] = json!(t + 1);
                resend.push(other);
            }
            _ => {}
        }
    }
    for batch in g.batches(resend, 100) {
        let enc = g.encoding();
        send_ok(&d, &mut m, p, &batch, enc);
    }
    let first = g.changed_copy(&events[1]);
    let second = g.changed_copy(&first);
    send_ok(&d, &mut m, p, &[first, second.clone()], Encoding::Array);
    // The same events in a second project: projects never mix.
    send_ok(&d, &mut m, "q2", &events[..300], Encoding::Array);

    // The last copy wins, checked directly as well as through the model.
    let id1 = events[1]["properties"]["$insert_id"].as_str().unwrap();
    let got = d.query(&json!({"project": p, "from": 0, "to": FAR_FUTURE_MS, "group_by": "properties.$os",
                              "where": [{"property": "$insert_id", "op": "eq", "value": id1}]}));
    assert_eq!(got["total"], 1, "{got}");
    assert_eq!(got["rows"][0]["key"], second["properties"]["$os"], "the last copy's $os must win: {got}");

    let day = |k: i64| (DAY0 + k) * MS_PER_DAY;
    let all = |extra: Value| {
        let mut q = json!({"project": p, "from": 0, "to": FAR_FUTURE_MS});
        q.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        q
    };
    let w = |prop: &str, op: &str, value: Value| {
        if op == "exists" {
            json!({"where": [{"property": prop, "op": op}]})
        } else {
            json!({"where": [{"property": prop, "op": op, "value": value}]})
        }
    };
    let meta1 = json!({"tags": ["a", 1], "depth": {"x": 1, "ok": true, "nil": null}, "note": "ünïcödé ✓ \"q\""});
    let mut queries = vec![
        all(json!({})),
        json!({"project": "q2", "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"}),
        all(json!({"group_by": "event"})),
        all(json!({"group_by": "properties.$os"})),
        all(json!({"group_by": "properties.plan"})),
        all(json!({"group_by": "properties.price"})),
        all(json!({"group_by": "properties.meta"})),
        all(json!({"group_by": "properties.flag"})),
        all(json!({"group_by": "properties.distinct_id"})),
        all(json!({"event": "Purchase"})),
        all(json!({"event": "Purchase", "group_by": "properties.$os"})),
        all(json!({"event": "NoSuchEvent", "group_by": "event"})),
        all(w("$os", "eq", json!("iOS"))),
        all(w("$os", "neq", json!("iOS"))),
        all(w("$os", "exists", Value::Null)),
        all(w("plan", "exists", Value::Null)),
        all(w("plan", "neq", json!("pro"))),
        all(w("meta", "exists", Value::Null)),
        all(w("meta", "eq", meta1)),
        all(w("price", "lt", json!(50))),
        all(w("price", "lte", json!(50))),
        all(w("price", "gt", json!(50.5))),
        all(w("price", "gte", json!(12.25))),
        all(w("price", "eq", json!(12))),
        all(w("price", "eq", json!("12"))),
        all(w("price", "lt", json!("5"))),
        all(w("price", "gte", json!(100))),
        all(w("qty", "eq", json!(3.0))),
        all(w("qty", "eq", json!(3))),
        all(w("qty", "neq", json!(3))),
        all(w("flag", "eq", json!(true))),
        all(w("resent", "exists", Value::Null)),
        all(w("distinct_id", "eq", json!("1003"))),
        all(w("distinct_id", "lt", json!("user_10"))),
        all(w("distinct_id", "gte", json!("user_"))),
        all(w("$insert_id", "eq", json!("ins-00042"))),
        all(w("$insert_id", "lt", json!("ins-00100"))),
        all(w("time", "gte", json!(day(2)))),
        all(json!({"where": [{"property": "time", "op": "gte", "value": day(1) + 43_200_000},
                              {"property": "time", "op": "lt", "value": day(2) + 1}], "group_by": "event"})),
        all(json!({"event": "View", "where": [{"property": "$os", "op": "eq", "value": "Android"},
                                               {"property": "price", "op": "lte", "value": 30}], "group_by": "properties.plan"})),
    ];
    for k in 0..4 {
        queries.push(json!({"project": p, "from": day(k), "to": day(k + 1), "group_by": "properties.$os"}));
    }
    queries.push(json!({"project": p, "from": day(0) + 21_600_123, "to": day(2) + 61_200_000, "group_by": "event"}));
    queries.push(json!({"project": p, "from": day(-5), "to": day(0)}));
    // 1 ms windows at sampled event times: from is inclusive, to exclusive.
    for e in m.live(p).into_iter().step_by(97) {
        queries.push(json!({"project": p, "from": e.time_ms, "to": e.time_ms + 1, "group_by": "event"}));
        queries.push(json!({"project": p, "from": e.time_ms - 1, "to": e.time_ms}));
    }
    for q in &queries {
        assert_model(&d, &m, q);
    }
    // A sanity check on the model itself: the duplicates really are duplicates.
    let copies = m.copies(p).count() as u64;
    let live = m.answer(&all(json!({}))).total;
    assert!(live < copies && live > 1200, "model: {copies} copies, {live} live");

    // A one-day query scans no more segments than the catalog lists for that day.
    let cat_day1 = segment_list(&d, p, Some(day(1)), Some(day(2))).len() as u64;
    let got = d.query(&json!({"project": p, "from": day(1), "to": day(2)}));
    let scanned = got["segments_scanned"].as_u64().unwrap_or_else(|| panic!("segments_scanned: {got}"));
    assert!(
        scanned >= 1 && scanned <= cat_day1,
        "one-day query scanned {scanned} segments; the catalog lists {cat_day1} for that day"
    );
    assert!(got["bytes_scanned"].as_u64().is_some_and(|b| b > 0), "bytes_scanned: {got}");
}

//! Accepted ingest: every encoding, time unit and id form; insert-id-less re-sends; visibility; metrics.

use super::*;

#[test]
fn ingest_accepts_every_encoding_time_unit_and_id_form() {
    let dir = TestDir::new("ingest");
    let d = Daemon::start(&dir.data_dir(), None);
    let mut m = Model::new();
    let base = DAY0 * MS_PER_DAY + 3_600_000; // 01:00 UTC, a whole second
    for (k, enc) in Encoding::ALL.into_iter().enumerate() {
        let id = |s: &str| format!("{s}-{k}");
        let b = base + k as i64 * 60_000;
        let events = vec![
            ev("TimeSec", json!({"time": b / 1000, "distinct_id": "u1", "$insert_id": id("sec")})),
            ev(
                "TimeFloatSec",
                json!({"time": (b + 500) as f64 / 1000.0, "distinct_id": "u1", "$insert_id": id("fsec")}),
            ),
            ev(
                "TimeFloatSec",
                json!({"time": (b + 125) as f64 / 1000.0, "distinct_id": "u1", "$insert_id": id("fsec2")}),
            ),
            ev("TimeMs", json!({"time": b + 123, "distinct_id": "u1", "$insert_id": id("ms")})),
            ev("TimeFloatMs", json!({"time": (b + 7) as f64, "distinct_id": "u1", "$insert_id": id("fms")})),
            // The unit boundary: 1e11 is ms (1973), 1e11 - 1 is seconds (year 5138).
            ev("Boundary", json!({"time": 100_000_000_000i64, "distinct_id": "u1", "$insert_id": id("b-ms")})),
            ev("Boundary", json!({"time": 99_999_999_999i64, "distinct_id": "u1", "$insert_id": id("b-sec")})),
            ev("NumId", json!({"time": b / 1000, "distinct_id": 42, "$insert_id": id("num")})),
            ev("NoDistinctId", json!({"time": b + 9, "$insert_id": id("nodid"), "k": k})),
        ];
        send_ok(&d, &mut m, "ing", &events, enc);
    }
    // Positive boundaries: a 255-byte event name of 2-byte characters, a 128-byte insert id, a 64-char project.
    let name255 = format!("{}a", "é".repeat(127));
    assert_eq!(name255.len(), 255);
    let id128 = "i".repeat(128);
    let edge = vec![ev(&name255, json!({"time": base / 1000, "distinct_id": "edge", "$insert_id": id128}))];
    send_ok(&d, &mut m, "ing", &edge, Encoding::Array);
    let long_project = "P".repeat(64);
    send_ok(&d, &mut m, &long_project, &edge, Encoding::Array);
    assert_eq!(total(&d, &long_project), 1, "64-character project name");

    // Without ?project= the events go to project `default`.
    let dflt = vec![
        ev("Dflt", json!({"time": base / 1000, "distinct_id": "d", "$insert_id": "d1"})),
        ev("Dflt", json!({"time": base / 1000, "distinct_id": "d", "$insert_id": "d2"})),
    ];
    let r = d.post_import(None, array_body(&dflt), &[]);
    assert_import_ok(&r, 2, "import without a project");
    m.ack("default", &dflt);
    assert_model(&d, &m, &json!({"project": "default", "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"}));
    let projects: BTreeSet<String> = d.projects().into_iter().collect();
    assert_eq!(projects, BTreeSet::from(["default".to_string(), "ing".to_string(), long_project.clone()]));

    // Every copy sits at exactly its time in ms: a 1 ms window around it finds it.
    for e in m.copies("ing").collect::<Vec<_>>() {
        let q = json!({"project": "ing", "from": e.time_ms, "to": e.time_ms + 1,
                       "where": [{"property": "$insert_id", "op": "eq", "value": e.insert_id}]});
        let got = d.query(&q);
        assert_eq!(
            got["total"], 1,
            "event {} sent with time {} must be stored at {} ms: {got}",
            e.raw, e.raw["properties"]["time"], e.time_ms
        );
    }
    let q = json!({"project": "ing", "from": 0, "to": FAR_FUTURE_MS, "where": [{"property": "distinct_id", "op": "eq", "value": "42"}]});
    assert_eq!(d.query(&q)["total"], Encoding::ALL.len(), "numeric distinct_id 42 is stored as \"42\"");
    assert_model(&d, &m, &json!({"project": "ing", "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"}));

    // Read back: times in ms, distinct_id 42 as "42".
    let lines = project_ndjson(&d, "ing");
    let by_id: BTreeMap<String, &Value> =
        lines.iter().map(|l| (l["properties"]["$insert_id"].as_str().unwrap_or("").to_string(), l)).collect();
    for e in m.copies("ing") {
        let id = e.insert_id.as_deref().unwrap();
        let line = by_id.get(id).unwrap_or_else(|| panic!("event {id} missing from the segments' NDJSON"));
        assert_eq!(line["properties"]["time"].as_i64(), Some(e.time_ms), "time in ms for {id}: {line}");
        if e.raw["properties"].get("distinct_id").is_some() {
            assert_eq!(line["properties"]["distinct_id"], json!(e.distinct_id), "distinct_id for {id}: {line}");
        }
    }
}

#[test]
fn absent_insert_id_exact_resend_is_counted_once() {
    let dir = TestDir::new("noid");
    let d = Daemon::start(&dir.data_dir(), None);
    let t = DAY0 * MS_PER_DAY + 7_200_000;
    let events: Vec<Value> = (0..5)
        .map(|i| {
            ev(
                EVENT_NAMES[i],
                json!({"time": t + i as i64, "distinct_id": format!("u{i}"), "n": i, "deep": {"a": [i]}}),
            )
        })
        .chain([ev("NoDid", json!({"time": t}))])
        .collect();
    let mut m = Model::new();
    send_ok(&d, &mut m, "noid", &events, Encoding::Array);
    send_ok(&d, &mut m, "noid", &events, Encoding::Array);
    send_ok(&d, &mut m, "noid", &events, Encoding::Ndjson);
    assert_eq!(total(&d, "noid"), 6, "an exact re-send without $insert_id is the same event");
    // A record differing in one other property is a different event.
    let mut other = events[0].clone();
    other["properties"]["n"] = json!(100);
    send_ok(&d, &mut m, "noid", &[other], Encoding::Array);
    assert_eq!(total(&d, "noid"), 7);
    assert_model(&d, &m, &json!({"project": "noid", "from": 0, "to": FAR_FUTURE_MS, "group_by": "event"}));
    assert_eq!(catalog_rows(&d, "noid"), 19, "every acknowledged copy is stored (3 x 6 + 1)");

    // The derived insert ids: present, <= 128 bytes, equal for the copies of one record, different otherwise.
    let lines = project_ndjson(&d, "noid");
    assert_eq!(lines.len(), 19);
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for l in &lines {
        let id = l["properties"]["$insert_id"].as_str().unwrap_or_else(|| panic!("no derived $insert_id: {l}"));
        assert!(!id.is_empty() && id.len() <= 128, "derived $insert_id {id:?}");
        let mut content = l.clone();
        content["properties"].as_object_mut().unwrap().remove("$insert_id");
        ids.entry(canon(&content)).or_default().insert(id.to_string());
    }
    assert_eq!(ids.len(), 7, "7 distinct records came back: {ids:#?}");
    for (content, set) in &ids {
        assert_eq!(set.len(), 1, "copies of {content} got different derived ids {set:?}");
    }
    let distinct: BTreeSet<&String> = ids.values().flatten().collect();
    assert_eq!(distinct.len(), 7, "different records must get different derived ids: {ids:#?}");
}

#[test]
fn acknowledged_events_are_queryable_within_one_second() {
    let dir = TestDir::new("visible");
    let d = Daemon::start(&dir.data_dir(), None);
    let mut g = EventGen::new(seed(0x515_1B1E), DAY0, 2);
    let mut m = Model::new();
    for round in 0..5 {
        let batch: Vec<Value> = (0..50).map(|_| g.event()).collect();
        send_ok(&d, &mut m, "vis", &batch, Encoding::Array);
        let acked = Instant::now();
        let want = m.answer(&all_time("vis")).total;
        loop {
            let got = total(&d, "vis");
            if got == want {
                break;
            }
            assert!(
                acked.elapsed() < Duration::from_secs(1),
                "round {round}: {want} events acknowledged, only {got} visible after 1 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn metrics_count_ingested_events() {
    let dir = TestDir::new("metrics");
    let d = Daemon::start(&dir.data_dir(), None);
    let metric = |d: &Daemon| -> f64 {
        let r = d.get("/metrics");
        assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
        let text = r.text();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("tierd_ingest_events_total ") || l.starts_with("tierd_ingest_events_total{"))
            .collect();
        lines
            .iter()
            .map(|l| {
                let value =
                    l.rsplit_once('}').map(|(_, v)| v).unwrap_or_else(|| &l["tierd_ingest_events_total".len()..]);
                value
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or_else(|| panic!("bad metric line {l:?}"))
            })
            .sum()
    };
    let mut g = EventGen::new(seed(0x3E7_0001), DAY0, 2);
    let mut sent = 0;
    for (project, n) in [("m1", 10), ("m2", 20), ("m1", 7)] {
        let batch: Vec<Value> = (0..n).map(|_| g.event()).collect();
        d.import_ok(project, &batch);
        sent += n;
    }
    let r = d.get("/metrics");
    assert!(
        r.text().contains("tierd_ingest_events_total"),
        "metrics must include tierd_ingest_events_total:\n{}",
        r.text()
    );
    assert_eq!(metric(&d), sent as f64, "tierd_ingest_events_total (summed over labels) after {sent} events");
}

use std::io::{Cursor, Read as _};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::client::test_server::{Reply, TestServer};

fn ok(n: u64) -> Reply {
    Reply::json(200, &format!(r#"{{"code":200,"status":"OK","num_records_imported":{n}}}"#))
}

fn args(url: &str, batch_size: u64) -> ImportArgs {
    ImportArgs {
        file: "-".into(),
        project: Some("p 1".to_owned()),
        url: url.to_owned(),
        batch_size,
        gzip: false,
        service_account: None,
        project_id: None,
        secret: None,
    }
}

fn body_lines(body: &[u8]) -> Vec<String> {
    String::from_utf8(body.to_vec()).unwrap().lines().map(str::to_owned).collect()
}

// ---- batching -------------------------------------------------------------------------------------------------

fn batch_all(events: &[(u64, Vec<u8>)], max_events: usize, max_bytes: usize) -> Result<Vec<Batch>, ImportError> {
    let mut batcher = Batcher::new(max_events, max_bytes);
    let mut out = Vec::new();
    for (line, event) in events {
        out.extend(batcher.push(*line, event, *line)?);
    }
    out.extend(batcher.finish());
    Ok(out)
}

#[test]
fn batches_are_cut_by_count() {
    let events: Vec<_> = (1..=5).map(|i| (i, format!("{{\"n\":{i}}}").into_bytes())).collect();
    let batches = batch_all(&events, 2, MAX_BATCH_BYTES).unwrap();
    let lines: Vec<_> = batches.iter().map(|b| b.lines.clone()).collect();
    assert_eq!(lines, vec![vec![1, 2], vec![3, 4], vec![5]]);
    assert_eq!(batches[0].body, b"{\"n\":1}\n{\"n\":2}\n");
    assert_eq!(batches[2].line_range(), 5..=5);
}

#[test]
fn batches_are_cut_by_bytes_including_newlines() {
    let events: Vec<_> = (1..=5).map(|i| (i * 10, vec![b'1'; 10])).collect();
    // 11 bytes per event: 3 fit in 33 bytes, not in 32.
    let sizes = |max| batch_all(&events, 100, max).unwrap().iter().map(Batch::len).collect::<Vec<_>>();
    assert_eq!(sizes(33), vec![3, 2]);
    assert_eq!(sizes(32), vec![2, 2, 1]);
    assert_eq!(sizes(11), vec![1, 1, 1, 1, 1]);
}

#[test]
fn an_event_larger_than_a_request_is_an_error_naming_its_line() {
    let events = vec![(1, vec![b'1'; 5]), (7, vec![b'1'; 20])];
    match batch_all(&events, 100, 20) {
        Err(ImportError::EventTooLarge { line: 7, bytes: 21, limit: 20 }) => {}
        other => panic!("{other:?}"),
    }
}

proptest! {
    #[test]
    fn batching_keeps_every_event_in_order_within_limits(
        sizes in prop::collection::vec(1usize..50, 0..200),
        max_events in 1usize..20,
        max_bytes in 51usize..400,
    ) {
        let events: Vec<_> = sizes.iter().enumerate().map(|(i, &n)| (i as u64 + 1, vec![b'7'; n])).collect();
        let batches = batch_all(&events, max_events, max_bytes).unwrap();
        let mut all_lines: Vec<u64> = Vec::new();
        let mut all_body: Vec<u8> = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            prop_assert!(!b.is_empty());
            prop_assert!(b.len() <= max_events);
            prop_assert!(b.body.len() <= max_bytes);
            // A batch is only cut when the next event would not fit.
            if let Some(next) = batches.get(i + 1) {
                let next_size = events[next.lines[0] as usize - 1].1.len() + 1;
                prop_assert!(b.len() == max_events || b.body.len() + next_size > max_bytes);
            }
            all_lines.extend(&b.lines);
            all_body.extend(&b.body);
        }
        prop_assert_eq!(all_lines, (1..=events.len() as u64).collect::<Vec<_>>());
        let expected: Vec<u8> = events.iter().flat_map(|(_, e)| e.iter().copied().chain([b'\n'])).collect();
        prop_assert_eq!(all_body, expected);
    }
}

// ---- JSON arrays ----------------------------------------------------------------------------------------------

#[test]
fn array_elements_are_compacted_and_keep_their_start_line() {
    let input = b"\xEF\xBB\xBF\n[\n  {\n    \"event\": \"A B\",\n    \"properties\": {\"x\": [1, 2]}\n  },\n  {\"event\":\"C\"}\n]\n";
    let elements = split_json_array(input).unwrap();
    let got: Vec<_> = elements.iter().map(|e| (e.line, String::from_utf8(e.json.clone()).unwrap())).collect();
    assert_eq!(
        got,
        vec![(3, r#"{"event":"A B","properties":{"x":[1,2]}}"#.to_owned()), (7, r#"{"event":"C"}"#.to_owned())]
    );
}

#[test]
fn array_strings_may_hold_brackets_commas_and_escaped_quotes() {
    let input = br#"[{"e":"a,]}[{ \"q\" \\"}, "x y" ,7]"#;
    let elements = split_json_array(input).unwrap();
    let json: Vec<_> = elements.iter().map(|e| String::from_utf8(e.json.clone()).unwrap()).collect();
    assert_eq!(json, vec![r#"{"e":"a,]}[{ \"q\" \\"}"#, r#""x y""#, "7"]);
    for element in &elements {
        serde_json::from_slice::<Value>(&element.json).unwrap();
    }
}

#[test]
fn compacting_never_joins_two_tokens() {
    let elements = split_json_array(b"[1 2, tr ue]").unwrap();
    assert_eq!(elements[0].json, b"1 2");
    assert_eq!(elements[1].json, b"tr ue");
    assert!(serde_json::from_slice::<Value>(&elements[0].json).is_err());
}

#[test]
fn empty_arrays_are_fine() {
    assert!(split_json_array(b"[]").unwrap().is_empty());
    assert!(split_json_array(b"  [ \n ]  \n").unwrap().is_empty());
}

#[test]
fn malformed_arrays_are_reported_with_their_line() {
    let line_of = |input: &[u8]| match split_json_array(input) {
        Err(ImportError::MalformedArray { line, .. }) => line,
        other => panic!("{other:?}"),
    };
    assert_eq!(line_of(b"[1,\n2,\n]"), 3);
    assert_eq!(line_of(b"[1,,2]"), 1);
    assert_eq!(line_of(b"[1]\n\nx"), 3);
    assert_eq!(line_of(b"[1,\n\"open"), 2);
    assert_eq!(line_of(b"\n{\"a\":1}"), 2);
}

// ---- failed records, retries ----------------------------------------------------------------------------------

#[test]
fn failed_record_indexes_become_file_lines() {
    let mut response = json!({
        "code": 400,
        "error": "some data points were rejected",
        "failed_records": [
            {"index": 0, "$insert_id": "a", "field": "properties.time", "message": "missing"},
            {"index": 2, "message": "bad"},
            {"index": 9, "message": "out of range index stays as is"}
        ]
    });
    annotate_failed_records(&mut response, &[4, 5, 9]);
    let lines: Vec<_> = response["failed_records"].as_array().unwrap().iter().map(|r| r.get("line").cloned()).collect();
    assert_eq!(lines, vec![Some(json!(4)), Some(json!(9)), None]);
    assert_eq!(response["failed_records"][0]["index"], 0);

    let mut plain = json!({"error": "too large"});
    annotate_failed_records(&mut plain, &[1]);
    assert_eq!(plain, json!({"error": "too large"}));
}

#[test]
fn retry_after_is_delta_seconds() {
    assert_eq!(parse_retry_after("5"), Some(Duration::from_secs(5)));
    assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    assert_eq!(parse_retry_after("-1"), None);
}

#[test]
fn retry_policy_honours_retry_after_backs_off_and_gives_up() {
    let policy = import_retry_policy();
    let s = Duration::from_secs;
    assert_eq!(policy.next_wait(1, s(0), Some(s(7)), 0.0), Some(s(7)));
    // The daemon's Retry-After wins over the backoff cap, but not over the deadline.
    assert_eq!(policy.next_wait(1, s(0), Some(s(120)), 0.0), Some(s(120)));
    assert_eq!(policy.next_wait(1, s(590), Some(s(120)), 0.0), Some(s(10)));
    let backoff: Vec<_> =
        (1..=7).map(|attempt| policy.next_wait(attempt, s(0), None, 0.0).unwrap().as_secs()).collect();
    assert_eq!(backoff, vec![1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(policy.next_wait(100, s(600), Some(s(1)), 0.0), None);
    assert_eq!(policy.next_wait(1, s(601), None, 0.0), None);
}

// ---- against a scripted daemon --------------------------------------------------------------------------------

#[test]
fn ndjson_is_sent_in_batches_with_file_lines_skipped_blank() {
    let server = TestServer::start(vec![ok(2), ok(2), ok(1)]);
    let input =
        "\n{\"event\":\"a\"}\r\n{\"event\":\"b\"}\n\n   \n{\"event\":\"c\"}\n{\"event\":\"d\"}\n{\"event\":\"e\"}";
    let mut importer = Importer::new(&args(&server.url, 2)).unwrap();
    let report = importer.import(Cursor::new(input), "test input").unwrap();
    assert_eq!((report.events, report.batches, report.input_bytes), (5, 3, input.len() as u64));
    let received = server.received();
    assert_eq!(received.len(), 3);
    for request in &received {
        assert_eq!(request.method, "POST");
        assert_eq!(request.target, "/import?project=p+1");
        assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
        assert_eq!(request.header("content-encoding"), None);
    }
    assert_eq!(body_lines(&received[0].body), vec![r#"{"event":"a"}"#, r#"{"event":"b"}"#]);
    assert_eq!(body_lines(&received[2].body), vec![r#"{"event":"e"}"#]);
}

#[test]
fn gzip_bodies_decompress_to_the_same_ndjson() {
    let server = TestServer::start(vec![ok(2)]);
    let mut importer = Importer::new(&ImportArgs { gzip: true, ..args(&server.url, 10) }).unwrap();
    importer.import(Cursor::new("{\"a\":1}\n{\"a\":2}\n"), "test input").unwrap();
    let request = &server.received()[0];
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&request.body[..]).read_to_string(&mut plain).unwrap();
    assert_eq!(plain, "{\"a\":1}\n{\"a\":2}\n");
}

#[test]
fn credentials_go_in_http_basic_and_the_credential_names_the_project() {
    use base64::Engine as _;
    let basic = |user: &str, password: &str| {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    };
    // A service account: user name and secret, ?project_id=, no ?project= unless asked for.
    let server = TestServer::start(vec![ok(1)]);
    let account = ImportArgs {
        project: None,
        service_account: Some("sa-web".into()),
        project_id: Some("1001".into()),
        secret: Some("sa-pw".into()),
        ..args(&server.url, 10)
    };
    Importer::new(&account).unwrap().import(Cursor::new("{\"a\":1}\n"), "test input").unwrap();
    let request = &server.received()[0];
    assert_eq!(request.target, "/import?project_id=1001");
    assert_eq!(request.header("authorization"), Some(basic("sa-web", "sa-pw").as_str()));

    // The project secret as the user name, empty password; an explicit --project is still sent.
    let server = TestServer::start(vec![ok(1)]);
    let legacy = ImportArgs { secret: Some("web-secret".into()), ..args(&server.url, 10) };
    Importer::new(&legacy).unwrap().import(Cursor::new("{\"a\":1}\n"), "test input").unwrap();
    let request = &server.received()[0];
    assert_eq!(request.target, "/import?project=p+1");
    assert_eq!(request.header("authorization"), Some(basic("web-secret", "").as_str()));

    // No credential: no header, and the default project.
    let server = TestServer::start(vec![ok(1)]);
    Importer::new(&ImportArgs { project: None, ..args(&server.url, 10) })
        .unwrap()
        .import(Cursor::new("{\"a\":1}\n"), "test input")
        .unwrap();
    let request = &server.received()[0];
    assert_eq!(request.target, "/import?project=default");
    assert_eq!(request.header("authorization"), None);

    // A service account without its secret: a setup error naming the variable, nothing sent.
    let e = Importer::new(&ImportArgs { secret: None, ..account }).err().expect("refused").to_string();
    assert!(e.contains(SECRET_ENV), "{e}");
}

#[test]
fn a_503_is_retried_with_the_same_batch() {
    let busy = Reply::json(503, r#"{"error":"ingest queue full"}"#).with_header("Retry-After", "0");
    let server = TestServer::start(vec![busy, ok(2)]);
    let mut importer = Importer::new(&args(&server.url, 10)).unwrap();
    let report = importer.import(Cursor::new("{\"a\":1}\n{\"a\":2}\n"), "test input").unwrap();
    assert_eq!(report.events, 2);
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].body, received[1].body);
}

#[test]
fn a_daemon_that_stays_unavailable_is_given_up_on() {
    let busy = Reply::json(503, r#"{"error":"busy"}"#).with_header("Retry-After", "0");
    let server = TestServer::start(vec![ok(1), busy]);
    let policy = RetryPolicy { give_up_after: Some(Duration::ZERO), cap: Duration::ZERO, ..import_retry_policy() };
    let mut importer = Importer::new(&args(&server.url, 1)).unwrap().with_retry_policy(policy);
    let err = importer.import(Cursor::new("{\"a\":1}\n{\"a\":2}\n"), "test input").unwrap_err();
    match &err {
        ImportError::GaveUp { lines, imported_before: 1, .. } => assert_eq!(lines, &(2..=2)),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("503"), "{err}");
    server.received();
}

#[test]
fn a_rejected_batch_stops_the_import_and_names_the_file_lines() {
    let rejection = r#"{"code":400,"status":"Bad Request","error":"1 record failed validation",
        "failed_records":[{"index":1,"$insert_id":"x","field":"properties.time","message":"time is missing"}]}"#;
    let server = TestServer::start(vec![ok(2), Reply::json(400, rejection)]);
    let input = "{\"n\":1}\n{\"n\":2}\n\n{\"n\":3}\n# not json\n{\"n\":5}\n";
    let mut importer = Importer::new(&args(&server.url, 2)).unwrap();
    let err = importer.import(Cursor::new(input), "test input").unwrap_err();
    let message = err.to_string();
    match err {
        ImportError::Rejected { status, lines, imported_before, response, .. } => {
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(lines, 4..=5);
            assert_eq!(imported_before, 2);
            let response: Value = serde_json::from_str(&response).unwrap();
            assert_eq!(response["failed_records"][0]["line"], 5);
        }
        other => panic!("{other:?}"),
    }
    assert!(message.contains("1 record failed validation") && message.contains("2 events"), "{message}");
    assert_eq!(server.received().len(), 2, "nothing is sent after a rejected batch");
}

#[test]
fn other_server_errors_stop_the_import() {
    let server = TestServer::start(vec![Reply::json(500, r#"{"error":"catalog unavailable"}"#)]);
    let mut importer = Importer::new(&args(&server.url, 2)).unwrap();
    let err = importer.import(Cursor::new("{}\n"), "test input").unwrap_err();
    assert!(matches!(err, ImportError::Server { imported_before: 0, .. }), "{err:?}");
    assert!(err.to_string().contains("catalog unavailable"));
    server.received();
}

#[test]
fn a_json_array_file_is_sent_as_ndjson() {
    let server = TestServer::start(vec![ok(1), ok(1)]);
    let input = "\n\n[\n {\"event\": \"a\"},\n {\"event\": \"b\"}\n]\n";
    let mut importer = Importer::new(&args(&server.url, 1)).unwrap();
    let report = importer.import(Cursor::new(input), "test input").unwrap();
    assert_eq!(report.events, 2);
    let received = server.received();
    assert_eq!(body_lines(&received[0].body), vec![r#"{"event":"a"}"#]);
    assert_eq!(body_lines(&received[1].body), vec![r#"{"event":"b"}"#]);
}

#[test]
fn array_lines_count_from_the_top_of_the_file() {
    let rejection = r#"{"error":"bad","failed_records":[{"index":0}]}"#;
    let server = TestServer::start(vec![Reply::json(400, rejection)]);
    let mut importer = Importer::new(&args(&server.url, 10)).unwrap();
    let err = importer.import(Cursor::new("\n\n[\n\n {\"event\": 1}]"), "test input").unwrap_err();
    match err {
        ImportError::Rejected { lines, response, .. } => {
            assert_eq!(lines, 5..=5);
            assert!(response.contains("\"line\": 5"), "{response}");
        }
        other => panic!("{other:?}"),
    }
    server.received();
}

#[test]
fn no_daemon_means_a_clear_message_and_nothing_imported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut importer = Importer::new(&args(&format!("http://127.0.0.1:{port}"), 10)).unwrap();
    let err = importer.import(Cursor::new("{}\n"), "test input").unwrap_err();
    assert!(matches!(err, ImportError::Unreachable { imported_before: 0, .. }), "{err:?}");
    assert!(err.to_string().contains("tierd serve"), "{err}");
}

#[test]
fn empty_input_imports_nothing() {
    let mut importer = Importer::new(&args("http://127.0.0.1:9", 10)).unwrap();
    let report = importer.import(Cursor::new("\n  \n"), "test input").unwrap();
    assert_eq!((report.events, report.batches), (0, 0));
}

use serde_json::{json, Value};

use super::*;
use crate::api::QueryRow;
use crate::client::test_server::{Reply, TestServer};

const JAN_1_2026_MS: i64 = 1_767_225_600_000;

fn clause(property: &str, op: Op, value: Option<Value>) -> WhereClause {
    WhereClause { property: property.to_owned(), op, value }
}

#[test]
fn times_are_dates_rfc3339_or_milliseconds() {
    assert_eq!(parse_time("2026-01-01"), Ok(JAN_1_2026_MS));
    assert_eq!(parse_time("2026-01-08"), Ok(JAN_1_2026_MS + 7 * 86_400_000));
    assert_eq!(parse_time("2026-01-01T00:00:01Z"), Ok(JAN_1_2026_MS + 1_000));
    assert_eq!(parse_time("2026-01-01T02:00:00.250+02:00"), Ok(JAN_1_2026_MS + 250));
    assert_eq!(parse_time("1767225600000"), Ok(JAN_1_2026_MS));
    assert_eq!(parse_time(" 0 "), Ok(0));
    assert_eq!(parse_time("-86400000"), Ok(-86_400_000));
    for bad in ["", "-", "2026-13-01", "2026-1-1x", "yesterday", "2026-01-01 00:00", "99999999999999999999"] {
        assert_eq!(parse_time(bad), Err(QueryError::Time(bad.to_owned())), "{bad:?}");
    }
}

#[test]
fn every_operator_is_accepted_as_symbol_and_word() {
    let cases = [
        (["=", "eq"], Op::Eq),
        (["!=", "neq"], Op::Neq),
        (["<", "lt"], Op::Lt),
        (["<=", "lte"], Op::Lte),
        ([">", "gt"], Op::Gt),
        ([">=", "gte"], Op::Gte),
    ];
    for (tokens, op) in cases {
        for token in tokens {
            assert_eq!(parse_where(&format!("price {token} 10")), Ok(clause("price", op, Some(json!(10)))), "{token}");
        }
    }
    assert_eq!(parse_where("$os EQ iOS"), Ok(clause("$os", Op::Eq, Some(json!("iOS")))));
    assert_eq!(parse_where("$os == iOS"), Ok(clause("$os", Op::Eq, Some(json!("iOS")))));
    assert_eq!(parse_where("$city exists"), Ok(clause("$city", Op::Exists, None)));
}

#[test]
fn operators_travel_by_the_names_the_api_parses() {
    let names = [
        (Op::Eq, "eq"),
        (Op::Neq, "neq"),
        (Op::Lt, "lt"),
        (Op::Lte, "lte"),
        (Op::Gt, "gt"),
        (Op::Gte, "gte"),
        (Op::Exists, "exists"),
    ];
    for (op, name) in names {
        assert_eq!(serde_json::to_value(op).unwrap(), json!(name));
        assert_eq!(serde_json::from_value::<Op>(json!(name)).unwrap(), op);
        // The HTTP API parses the op with `FromStr`.
        assert_eq!(name.parse::<Op>(), Ok(op));
        assert_eq!(op_from_token(name), Some(op));
    }
}

#[test]
fn values_are_json_when_they_parse_and_strings_otherwise() {
    let value = |s: &str| parse_where(&format!("p = {s}")).unwrap().value.unwrap();
    assert_eq!(value("12.5"), json!(12.5));
    assert_eq!(value("-3"), json!(-3));
    assert_eq!(value("true"), json!(true));
    assert_eq!(value("null"), json!(null));
    assert_eq!(value(r#""42""#), json!("42"));
    assert_eq!(value(r#""two  spaces""#), json!("two  spaces"));
    assert_eq!(value("Mac OS X"), json!("Mac OS X"));
    assert_eq!(value("'iOS'"), json!("iOS"));
    assert_eq!(value("iOS"), json!("iOS"));
}

#[test]
fn property_names_may_have_spaces_and_operators_may_be_unspaced() {
    assert_eq!(
        parse_where("Product Name = Classic Mug"),
        Ok(clause("Product Name", Op::Eq, Some(json!("Classic Mug"))))
    );
    assert_eq!(parse_where("$os=iOS"), Ok(clause("$os", Op::Eq, Some(json!("iOS")))));
    assert_eq!(parse_where("price>=9.99"), Ok(clause("price", Op::Gte, Some(json!(9.99)))));
    assert_eq!(parse_where("a!=b"), Ok(clause("a", Op::Neq, Some(json!("b")))));
    assert_eq!(parse_where("n <3"), Ok(clause("n", Op::Lt, Some(json!(3)))));
    // The first operator splits: the rest is the value.
    assert_eq!(parse_where("url = /a?b=c"), Ok(clause("url", Op::Eq, Some(json!("/a?b=c")))));
}

#[test]
fn malformed_filters_say_what_is_wrong() {
    let reason = |s: &str| match parse_where(s) {
        Err(QueryError::Where { reason, .. }) => reason,
        other => panic!("{s:?} gave {other:?}"),
    };
    assert_eq!(reason("$os iOS"), "no operator");
    assert_eq!(reason("$os ="), "missing value");
    assert_eq!(reason("= iOS"), "missing property name");
    assert_eq!(reason("$os exists yes"), "`exists` takes no value");
    assert_eq!(reason(""), "no operator");
    assert!(parse_where("x y").unwrap_err().to_string().contains("PROP OP VALUE"));
}

#[test]
fn group_by_is_event_or_a_property() {
    assert_eq!(parse_group_by("event"), Ok("event".to_owned()));
    assert_eq!(parse_group_by("properties.$os"), Ok("properties.$os".to_owned()));
    for bad in ["$os", "properties.", "events", ""] {
        assert!(parse_group_by(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_request_body_has_the_api_shape() {
    let request = QueryRequest {
        project: Some("P".to_owned()),
        from: 1,
        to: 2,
        event: Some("Purchase".to_owned()),
        filters: vec![clause("$os", Op::Eq, Some(json!("iOS"))), clause("$city", Op::Exists, None)],
        group_by: Some("event".to_owned()),
        limit: None,
    };
    assert_eq!(
        serde_json::to_value(&request).unwrap(),
        json!({
            "project": "P", "from": 1, "to": 2, "event": "Purchase",
            "where": [{"property": "$os", "op": "eq", "value": "iOS"}, {"property": "$city", "op": "exists"}],
            "group_by": "event"
        })
    );
    let bare = QueryRequest { event: None, filters: vec![], group_by: None, ..request };
    assert_eq!(serde_json::to_value(&bare).unwrap(), json!({"project": "P", "from": 1, "to": 2, "where": []}));
}

fn response(total: u64, rows: &[(Value, u64)]) -> QueryResponse {
    QueryResponse {
        total,
        rows: rows.iter().map(|(key, count)| QueryRow { key: key.clone(), count: *count }).collect(),
        segments_scanned: 3,
        bytes_scanned: 5 * 1024 * 1024 + 1,
        other: None,
    }
}

#[test]
fn the_table_is_aligned_with_shares() {
    let table = format_table(
        &response(12_000, &[(json!("Page View"), 9_000), (json!(42), 2_999), (json!(null), 1), (json!(true), 0)]),
        "event",
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["event", "count", "share"]);
    assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), ["Page", "View", "9,000", "75.0%"]);
    assert_eq!(lines[2].split_whitespace().collect::<Vec<_>>(), ["42", "2,999", "25.0%"]);
    assert_eq!(lines[3].split_whitespace().collect::<Vec<_>>(), ["(null)", "1", "0.0%"]);
    assert_eq!(lines[4].split_whitespace().collect::<Vec<_>>(), ["true", "0", "0.0%"]);
    // Every row is as wide as the header, and the count and share columns end at the same places.
    let header = lines[0];
    for row in &lines[1..5] {
        assert_eq!(row.len(), header.len(), "{row:?}");
    }
    let count_end = header.find("count").unwrap() + "count".len();
    for row in &lines[1..5] {
        assert!(row.as_bytes()[count_end - 1].is_ascii_digit(), "count column misaligned: {row:?}");
        assert!(row.ends_with('%'));
    }
    assert_eq!(lines[5], "");
    assert_eq!(lines[6], "total 12,000 events; 3 segments scanned, 5.0 MiB (5,242,881 bytes) scanned");
}

#[test]
fn the_table_handles_odd_keys_and_zero_totals() {
    let table = format_table(&response(0, &[(json!(""), 0), (json!("a\nb"), 0), (json!("Zürich"), 0)]), "key");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].starts_with("\"\" "));
    assert!(lines[2].starts_with("\"a\\nb\""));
    assert!(lines[3].starts_with("Zürich"));
    assert!(lines[1..4].iter().all(|l| l.ends_with(" -")));
    assert_eq!(lines[1].chars().count(), lines[3].chars().count());
}

#[test]
fn without_rows_only_the_summary_is_printed() {
    let table = format_table(
        &QueryResponse { total: 5, rows: vec![], segments_scanned: 1, bytes_scanned: 10, other: None },
        "key",
    );
    assert_eq!(table, "total 5 events; 1 segments scanned, 10 bytes scanned\n");
}

fn args(url: &str) -> QueryArgs {
    QueryArgs {
        project: "P".to_owned(),
        from: JAN_1_2026_MS,
        to: JAN_1_2026_MS + 86_400_000,
        event: None,
        filters: vec![parse_where("$os = iOS").unwrap()],
        group_by: Some("event".to_owned()),
        limit: None,
        url: url.to_owned(),
        json: false,
    }
}

#[test]
fn a_query_posts_the_request_and_prints_a_table() {
    let answer = r#"{"total":3,"rows":[{"key":"Login","count":2},{"key":"Search","count":1}],"segments_scanned":1,"bytes_scanned":100}"#;
    let server = TestServer::start(vec![Reply::json(200, answer)]);
    let args = args(&server.url);
    let out = execute_query(&args).unwrap();
    assert!(out.contains("Login") && out.contains("66.7%") && out.contains("total 3 events"), "{out}");
    let received = server.received();
    assert_eq!((received[0].method.as_str(), received[0].target.as_str()), ("POST", "/v1/query"));
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body, serde_json::to_value(QueryRequest::from_args(&args)).unwrap());
}

#[test]
fn json_output_is_the_daemons_answer_unchanged() {
    let answer = r#"{"total":3, "rows":[], "extra":{"kept":true}}"#;
    let server = TestServer::start(vec![Reply::json(200, answer)]);
    let out = execute_query(&QueryArgs { json: true, ..args(&server.url) }).unwrap();
    assert_eq!(out, format!("{answer}\n"));
    server.received();
}

#[test]
fn an_error_answer_shows_the_daemons_message() {
    let server = TestServer::start(vec![Reply::json(400, r#"{"error":"unknown project P"}"#)]);
    let err = execute_query(&args(&server.url)).unwrap_err().to_string();
    assert!(err.contains("400 Bad Request") && err.contains("unknown project P"), "{err}");
    server.received();
}

#[test]
fn no_daemon_says_how_to_start_one() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let err = execute_query(&args(&format!("http://127.0.0.1:{port}"))).unwrap_err().to_string();
    assert!(err.contains("no tierd daemon answers") && err.contains("tierd serve"), "{err}");
}

#[test]
fn an_empty_range_is_refused_before_sending() {
    let err = execute_query(&QueryArgs { to: JAN_1_2026_MS, ..args("http://127.0.0.1:9") }).unwrap_err();
    assert!(err.to_string().contains("exclusive"));
}

#[test]
fn the_command_line_parses_into_a_request() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: QueryArgs,
    }
    let cli = Cli::try_parse_from([
        "query",
        "--project",
        "P",
        "--from",
        "2026-01-01",
        "--to",
        "1767312000000",
        "--where",
        "$os = iOS",
        "--where",
        "price>10",
        "--group-by",
        "properties.$city",
        "--url",
        "http://h:1",
    ])
    .unwrap();
    let request = QueryRequest::from_args(&cli.args);
    assert_eq!((request.from, request.to), (JAN_1_2026_MS, JAN_1_2026_MS + 86_400_000));
    assert_eq!(request.filters.len(), 2);
    assert_eq!(request.group_by.as_deref(), Some("properties.$city"));
    assert!(Cli::try_parse_from(["query", "--from", "x", "--to", "2026-01-02"]).is_err());
    assert!(Cli::try_parse_from(["query", "--from", "2026-01-01", "--to", "2026-01-02", "--where", "a b"]).is_err());
}

//! The fast path must agree with the reference implementation on every body: same events (so same derived ids and
//! same frames) when the reference accepts, the reference's own error otherwise.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;
use crate::event::{parse_batch, parse_batch_reference, parse_batch_rows, BatchError, Event, MAX_TIME_MS};
use crate::rows::FrameBody;
use crate::testing::{importable_event, json_value, number, text};

const LIMITS: BatchLimits = BatchLimits::MIXPANEL;

/// Checks every public entry point against the reference on `body`, and returns whether the fast path took it.
fn check_agrees(body: &[u8], limits: &BatchLimits) -> Result<bool, TestCaseError> {
    let reference = parse_batch_reference(body, limits);
    let fast = parse_rows(body, limits);
    if let Ok(rows) = &fast {
        let events = reference.as_ref().map_err(|e| {
            TestCaseError::fail(format!("fast path accepted a body the reference rejects ({e}): {body:?}"))
        })?;
        prop_assert_eq!(rows, &RowBatch::from_events(events), "body {:?}", String::from_utf8_lossy(body));
        prop_assert_eq!(&rows.to_events(), events);
        let row_refs: Vec<_> = rows.iter().collect();
        prop_assert_eq!(FrameBody::encode_rows(&row_refs), FrameBody::encode(events));
    }
    prop_assert_eq!(parse_batch(body, limits), reference.clone());
    prop_assert_eq!(parse_batch_rows(body, limits), reference.map(|events| RowBatch::from_events(&events)));
    Ok(fast.is_ok())
}

fn body_of(records: &[String], ndjson: bool) -> Vec<u8> {
    if ndjson {
        records.iter().map(|r| format!("{r}\n")).collect::<String>().into_bytes()
    } else {
        format!("[{}]", records.join(",")).into_bytes()
    }
}

/// A record as the importable `event` would be sent, with `$insert_id` dropped when `derive` (so it is derived).
fn record_value(event: &Event, derive: bool) -> Value {
    let mut record = event.to_mixpanel_json();
    if derive {
        record["properties"].as_object_mut().expect("an object").remove("$insert_id");
    }
    record
}

/// One change that makes a record invalid, or valid in a less common way.
#[derive(Debug, Clone)]
enum Change {
    Event(Option<Value>),
    Properties(Option<Value>),
    /// Sets (or with `None` removes) a property.
    Property(&'static str, Option<Value>),
    TopLevel(String, Value),
    Record(Value),
}

fn change() -> impl Strategy<Value = Change> {
    let lifted = prop::sample::select(vec!["time", "distinct_id", "$insert_id"]);
    let special = prop_oneof![
        Just(json!(null)),
        Just(json!("")),
        Just(json!(-1)),
        Just(json!(-0.0)),
        Just(json!(1e11)),
        Just(json!(99_999_999_999i64)),
        Just(json!(1_700_000_000.123_4)),
        Just(json!(MAX_TIME_MS)),
        Just(json!(MAX_TIME_MS + 1)),
        Just(json!(u64::MAX)),
        Just(json!("x".repeat(128))),
        Just(json!("x".repeat(129))),
        Just(json!("é".repeat(128))),
        Just(json!("d".repeat(256))),
        (0i64..MAX_TIME_MS).prop_map(|t| json!(t)),
        (0f64..2e12).prop_map(|t| json!(t)),
        number().prop_map(Value::Number),
        json_value(),
    ];
    prop_oneof![
        1 => prop::option::of(prop_oneof![json_value(), text().prop_map(Value::String)]).prop_map(Change::Event),
        1 => prop::option::of(json_value()).prop_map(Change::Properties),
        3 => (lifted, prop::option::of(special)).prop_map(|(key, value)| Change::Property(key, value)),
        1 => ("[a-z]{1,6}", json_value()).prop_map(|(key, value)| Change::TopLevel(key, value)),
        1 => json_value().prop_map(Change::Record),
    ]
}

fn apply(record: &mut Value, change: Change) {
    if let Change::Record(value) = change {
        *record = value;
        return;
    }
    let Some(object) = record.as_object_mut() else { return };
    let set = |map: &mut Map<String, Value>, key: &str, value: Option<Value>| match value {
        Some(value) => drop(map.insert(key.to_owned(), value)),
        None => drop(map.remove(key)),
    };
    match change {
        Change::Event(value) => set(object, "event", value),
        Change::Properties(value) => set(object, "properties", value),
        Change::Property(key, value) => {
            if let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) {
                set(properties, key, value);
            }
        }
        Change::TopLevel(key, value) => set(object, &key, Some(value)),
        Change::Record(_) => unreachable!("handled above"),
    }
}

/// Edits of a record's text that a `Value` cannot express.
#[derive(Debug, Clone)]
enum TextEdit {
    /// Repeats a key: `"key":value,` inserted just after the opening brace of the record or of its properties.
    RepeatKey {
        in_properties: bool,
        key: &'static str,
        value: String,
    },
    /// Writes a lifted key with an escape (`"\u0074ime"`), which is the same key once decoded.
    EscapeKey(&'static str),
    Pretty,
}

fn text_edit() -> impl Strategy<Value = TextEdit> {
    let key = prop::sample::select(vec!["event", "properties", "time", "distinct_id", "$insert_id", "other"]);
    let value =
        prop_oneof![Just("1".to_owned()), Just("\"x\"".to_owned()), Just("{}".to_owned()), Just("null".to_owned())];
    prop_oneof![
        (any::<bool>(), key.clone(), value).prop_map(|(in_properties, key, value)| TextEdit::RepeatKey {
            in_properties,
            key,
            value
        }),
        key.prop_map(TextEdit::EscapeKey),
        Just(TextEdit::Pretty),
    ]
}

fn record_text(record: &Value, edit: Option<TextEdit>) -> String {
    let compact = serde_json::to_string(record).expect("a Value serializes");
    match edit {
        None => compact,
        Some(TextEdit::Pretty) => serde_json::to_string_pretty(record).expect("a Value serializes").replace('\n', " "),
        Some(TextEdit::RepeatKey { in_properties, key, value }) => {
            let anchor = if in_properties { "\"properties\":{" } else { "{" };
            match compact.find(anchor) {
                Some(at) => {
                    let at = at + anchor.len();
                    format!("{}\"{key}\":{value},{}", &compact[..at], &compact[at..])
                }
                None => compact,
            }
        }
        Some(TextEdit::EscapeKey(key)) => {
            let escaped = format!("\"\\u{:04x}{}\"", key.as_bytes()[0], &key[1..]);
            compact.replacen(&format!("\"{key}\""), &escaped, 1)
        }
    }
}

/// A batch of records, most of them valid, some changed or edited.
fn records() -> impl Strategy<Value = Vec<String>> {
    let record = (
        importable_event(),
        any::<bool>(),
        prop::collection::vec(change(), 0..3),
        prop::option::weighted(0.2, text_edit()),
    )
        .prop_map(|(event, derive, changes, edit)| {
            let mut record = record_value(&event, derive);
            for change in changes {
                apply(&mut record, change);
            }
            record_text(&record, edit)
        });
    prop::collection::vec(record, 0..6)
}

/// A body (array or NDJSON) and the limits to parse it with (mostly generous, now and then just too small).
fn body() -> impl Strategy<Value = (Vec<u8>, BatchLimits)> {
    (records(), any::<bool>(), 0..8u8).prop_map(|(records, ndjson, squeeze)| {
        let body = body_of(&records, ndjson);
        let limits = match squeeze {
            0 => BatchLimits { max_events: records.len().saturating_sub(1), ..LIMITS },
            1 => BatchLimits { max_bytes: body.len().saturating_sub(1), ..LIMITS },
            _ => LIMITS,
        };
        (body, limits)
    })
}

/// Up to three single-byte edits of `body` (any byte: the body may stop being UTF-8).
fn mutated_body() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![prop::sample::select(b"\"\\{}[],:0123456789-.e \n\r\tnul".to_vec()), any::<u8>(),];
    (body(), prop::collection::vec((0..3u8, any::<prop::sample::Index>(), byte), 1..4)).prop_map(
        |((mut body, _), edits)| {
            for (kind, at, byte) in edits {
                let at = at.index(body.len() + 1);
                match kind {
                    0 => body.insert(at, byte),
                    _ if at == body.len() => {}
                    1 => drop(body.remove(at)),
                    _ => body[at] = byte,
                }
            }
            body
        },
    )
}

/// Writes JSON text for a value in styles serde_json never writes, each choice taken from `choices` in turn:
/// whitespace (space, tab, CR, and LF outside NDJSON) around every token, each character of a string plain or
/// escaped (`\uXXXX` in either case, surrogate pairs, the short escapes, `\/`), floats in exponent form, object
/// entries in either order, and now and then a repeated key (before the kept entry, which serde_json keeps as
/// the value, or after it, which changes the record) or a lone surrogate (which serde_json refuses).
struct Styler<'c> {
    choices: &'c [u8],
    next: usize,
    ndjson: bool,
    /// Whether the text may read back as another value than the one written (a repeat after, a lone surrogate).
    changed: bool,
}

impl Styler<'_> {
    fn pick(&mut self, n: u8) -> u8 {
        let c = self.choices.get(self.next % self.choices.len().max(1)).copied().unwrap_or(0);
        self.next += 1;
        c % n
    }

    fn space(&mut self, out: &mut String) {
        let blanks: &[&str] =
            if self.ndjson { &["", "", " ", "\t", "\r", " \t "] } else { &["", "", " ", "\n", "\r\n\t", "\t "] };
        out.push_str(blanks[self.pick(blanks.len() as u8) as usize]);
    }

    fn string(&mut self, text: &str, out: &mut String) {
        out.push('"');
        for c in text.chars() {
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '/' => Some("\\/"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                _ => None,
            };
            let plain = c >= ' ' && c != '"' && c != '\\';
            match (self.pick(4), short) {
                (0, _) if plain => out.push(c),
                (0 | 1, Some(short)) => out.push_str(short),
                (1, None) if plain => out.push(c),
                (upper, _) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&if upper == 3 { format!("\\u{unit:04X}") } else { format!("\\u{unit:04x}") });
                    }
                }
            }
        }
        if self.pick(64) == 0 {
            out.push_str("\\ud834"); // a lone leading surrogate
            self.changed = true;
        }
        out.push('"');
    }

    fn value(&mut self, value: &Value, out: &mut String) {
        self.space(out);
        match value {
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or_default();
                match self.pick(4) {
                    0 => out.push_str(&format!("{f:e}")),
                    1 => out.push_str(&format!("{f:E}").replace('E', "E+").replace("E+-", "E-")),
                    _ => out.push_str(&n.to_string()),
                }
            }
            Value::String(text) => self.string(text, out),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.value(item, out);
                }
                self.space(out);
                out.push(']');
            }
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                if self.pick(2) == 0 {
                    entries.reverse();
                }
                out.push('{');
                let mut first = true;
                let mut entry = |styler: &mut Self, key: &str, value: &Value, out: &mut String| {
                    if !std::mem::take(&mut first) {
                        out.push(',');
                    }
                    styler.space(out);
                    styler.string(key, out);
                    styler.space(out);
                    out.push(':');
                    styler.value(value, out);
                };
                for (key, value) in entries {
                    let repeat = self.pick(16);
                    if repeat == 0 {
                        entry(self, key, &json!(["an earlier copy"]), out);
                    }
                    entry(self, key, value, out);
                    if repeat == 1 {
                        entry(self, key, &json!(null), out);
                        self.changed = true;
                    }
                }
                self.space(out);
                out.push('}');
            }
            other => out.push_str(&other.to_string()),
        }
        self.space(out);
    }
}

/// Records (valid ones, some changed as in [`records`]) written in every style of [`Styler`], as an array or NDJSON.
fn styled_body() -> impl Strategy<Value = (Vec<u8>, Vec<Value>, bool, bool)> {
    // Characters with escapes of their own, control characters, and non-ASCII of 2, 3 and 4 bytes.
    let odd = "[/\\\\\"\\u{0}-\\u{1f}\\u{7f}é€😀a ]{0,12}";
    let record = (importable_event(), any::<bool>(), prop::collection::vec(change(), 0..2), odd).prop_map(
        |(event, derive, changes, odd)| {
            let mut record = record_value(&event, derive);
            record["properties"][&odd] = Value::String(odd.clone());
            for change in changes {
                apply(&mut record, change);
            }
            record
        },
    );
    (prop::collection::vec(record, 1..5), any::<bool>(), prop::collection::vec(any::<u8>(), 1..64)).prop_map(
        |(records, ndjson, choices)| {
            let mut styler = Styler { choices: &choices, next: 0, ndjson, changed: false };
            let texts: Vec<String> = records
                .iter()
                .map(|record| {
                    let mut text = String::new();
                    styler.value(record, &mut text);
                    text
                })
                .collect();
            let unchanged = !styler.changed;
            (body_of(&texts, ndjson), records, ndjson, unchanged)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Valid bodies in the shapes SDKs send always take the fast path, and give the reference's events.
    #[test]
    fn valid_bodies_take_the_fast_path(
        events in prop::collection::vec((importable_event(), any::<bool>()), 1..8),
        ndjson in any::<bool>(),
        pretty in any::<bool>(),
    ) {
        let records: Vec<String> = events
            .iter()
            .map(|(event, derive)| {
                let record = record_value(event, *derive);
                if pretty { serde_json::to_string_pretty(&record).unwrap().replace('\n', "\r\n ") } else { record.to_string() }
            })
            .collect();
        let body = if ndjson && pretty {
            // A pretty record spans lines, which NDJSON does not allow; keep one record per line.
            body_of(&records.iter().map(|r| r.replace("\r\n", " ")).collect::<Vec<_>>(), true)
        } else {
            body_of(&records, ndjson)
        };
        prop_assert!(check_agrees(&body, &LIMITS)?, "the fast path gave up on a valid body: {}", String::from_utf8_lossy(&body));
    }

    #[test]
    fn agrees_with_the_reference_on_changed_records((body, limits) in body()) {
        check_agrees(&body, &limits)?;
    }

    #[test]
    fn agrees_with_the_reference_on_malformed_bodies(body in mutated_body()) {
        check_agrees(&body, &LIMITS)?;
    }

    /// Differential against serde_json on text it writes no such way: odd escapes, unicode, floats in every
    /// form, whitespace everywhere, keys in another order and repeated, nested properties. The fast path and the
    /// reference (serde_json) give the same events or the same refusal; and the text reads back as the records
    /// written (unless a repeat or a lone surrogate changed them), so the styles are what the test claims.
    #[test]
    fn agrees_with_the_reference_on_styled_records((body, records, ndjson, unchanged) in styled_body()) {
        check_agrees(&body, &LIMITS)?;
        if unchanged {
            let read: Vec<Value> = if !ndjson {
                serde_json::from_slice(&body).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&body))))?
            } else {
                body.split(|b| *b == b'\n').filter(|l| l.iter().any(|b| !b" \t\r".contains(b)))
                    .map(serde_json::from_slice).collect::<Result<_, _>>()
                    .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&body))))?
            };
            prop_assert_eq!(read, records);
        }
    }
}

#[test]
fn edge_cases_agree() {
    let cases: &[&str] = &[
        "",
        "  \n ",
        "[]",
        " [ ] ",
        "[] x",
        "[1]",
        "[{}]",
        "{}",
        "\u{feff}[]",
        "[{\"event\":\"e\",\"properties\":{\"time\":1}}]",
        "{\"event\":\"e\",\"properties\":{\"time\":1}}\r\n\n  \n{\"event\":\"e\",\"properties\":{\"time\":2}}",
        "{\"event\":\"e\",\"properties\":{\"time\":1}} {\"event\":\"e\",\"properties\":{\"time\":1}}",
        "{\"event\":\"e\",\n\"properties\":{\"time\":1}}",
        "[{\"event\":\"e\",\"properties\":{\"time\":1e2}}]",
        "[{\"event\":\"e\",\"properties\":{\"time\":-0}}]",
        "[{\"event\":\"e\",\"properties\":{\"time\":1,\"time\":2}}]",
        "[{\"event\":\"e\",\"event\":\"f\",\"properties\":{\"time\":1}}]",
        "[{\"event\":\"e\",\"properties\":{\"time\":1,\"distinct_id\":1.50,\"x\":1.50}}]",
        "[{\"event\":\"e\",\"properties\":{\"time\":1,\"distinct_id\":-0}}]",
        "[{\"event\":\"e\",\"properties\":{\"time\":1,\"distinct_id\":\"\\u00e9\\n\"}}]",
        "[{\"event\":\"\\u00e9\",\"properties\":{\"time\":1,\"$insert_id\":\"\\u00e9\"}}]",
        "[{\"event\":\"e\",\"properties\":{\"time\":1,\"\\u0074ime\":2}}]",
        "[{\"event\":\"e\",\"properties\":{\"time\":1,\"x\":1e400}}]",
        "[{\"event\":\"e\",\"properties\":{\"time\":1},\"token\":1e400}]",
        "[{\"event\":\"e\",\"properties\":{\"time\":1},\"token\":\"\\ud800\"}]",
        "[{\"event\":\"e\",\"properties\":{\"time\":1,\"x\":\"\\ud800\"}}]",
        "[{\"event\":\"e\",\"properties\":{\"time\":1,\"$insert_id\":null,\"distinct_id\":null}}]",
    ];
    for body in cases {
        check_agrees(body.as_bytes(), &LIMITS).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    }
    let deep = |depth: usize| {
        format!("[{{\"event\":\"e\",\"properties\":{{\"time\":1,\"x\":{}{}}}}}]", "[".repeat(depth), "]".repeat(depth))
    };
    for depth in [90, 97, 98, 120, 124, 125, 126, 200] {
        check_agrees(deep(depth).as_bytes(), &LIMITS).unwrap_or_else(|e| panic!("depth {depth}: {e}"));
    }
    // Invalid UTF-8 inside a string.
    check_agrees(b"[{\"event\":\"\xff\",\"properties\":{\"time\":1}}]", &LIMITS).unwrap();
}

#[test]
fn derived_ids_match_derive_insert_id() {
    let body = br#"{"event":"signup","properties":{"time":1700000000,"distinct_id":"u1","plan":"pro","n":[1,2.50]}}"#;
    let rows = parse_rows(body, &LIMITS).expect("the fast path handles this body");
    let row = rows.get(0).expect("one row");
    let properties = json!({"plan": "pro", "n": [1, 2.5]});
    let expected =
        crate::derive_insert_id("signup", "u1", 1_700_000_000_000, properties.as_object().expect("an object"));
    assert_eq!(row.insert_id(), expected);
    assert_eq!(row.properties_json(), r#"{"n":[1,2.5],"plan":"pro"}"#);
}

#[test]
fn limits_are_left_to_the_reference() {
    let record = r#"{"event":"e","properties":{"time":1}}"#;
    let body = format!("[{record},{record}]");
    let two = BatchLimits { max_events: 2, max_bytes: body.len(), ..LIMITS };
    assert_eq!(parse_rows(body.as_bytes(), &two).map(|rows| rows.len()), Ok(2));
    assert_eq!(parse_rows(body.as_bytes(), &BatchLimits { max_events: 1, ..two }), Err(GiveUp));
    assert_eq!(parse_rows(body.as_bytes(), &BatchLimits { max_bytes: body.len() - 1, ..two }), Err(GiveUp));
    assert_eq!(
        parse_batch_rows(body.as_bytes(), &BatchLimits { max_events: 1, ..two }),
        Err(BatchError::TooManyEvents { limit: 1, got: 2 })
    );
}

//! Rows pushed with their properties as JSON text ([`ColumnarWriter::push_text`], what a re-encode's sort buffer
//! hands the writer) give the same bytes as the same rows parsed into events ([`ColumnarWriter::push`]), whatever
//! the properties: every kind of value, keys out of order or twice, escapes, numbers at the edges of the types.

use std::sync::Arc;

use proptest::prelude::*;

use super::super::text_row::StoredText;
use super::super::*;
use super::{info, spec};
use crate::event::StoredEvent;
use crate::testing::segment_events;

fn text_of(e: &StoredEvent, json: &str) -> StoredText {
    let text = format!("{}{}{json}", e.event.distinct_id, e.event.insert_id);
    let len = |s: &str| u32::try_from(s.len()).unwrap();
    StoredText::new(
        e.seq,
        e.event.time_ms,
        Arc::from(e.event.event.as_str()),
        text.into_boxed_str(),
        len(&e.event.distinct_id),
        len(&e.event.insert_id),
    )
}

/// The segment of `rows` (events with their properties' JSON text) written both ways; `None` when the texts do
/// not all parse (then both ways must refuse).
fn both_ways(rows: &[(StoredEvent, String)], spec: &CodecSpec, threads: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let parsed: Vec<StoredEvent> = rows
        .iter()
        .map(|(e, json)| {
            let properties = serde_json::from_str(json).ok()?;
            Some(StoredEvent { seq: e.seq, event: crate::Event { properties, ..e.event.clone() } })
        })
        .collect::<Option<_>>()?;
    let columns = shred::plan(&parsed, spec.max_property_columns);
    let new = || {
        ColumnarWriter::with_threads(Vec::new(), &info(), None, columns.clone(), spec, SortOrder::EventTime, threads)
            .unwrap()
    };
    let (mut events, mut texts) = (new(), new());
    for i in sort_permutation(&parsed, SortOrder::EventTime) {
        events.push(&parsed[i]).unwrap();
        texts.push_text(&text_of(&rows[i].0, &rows[i].1)).unwrap();
    }
    Some((events.finish().unwrap().0, texts.finish().unwrap().0))
}

/// JSON object texts the canonical writer would not produce, and edge values.
fn odd_json() -> impl Strategy<Value = String> {
    let value = prop::sample::select(vec![
        "1",
        "-1",
        "-0",
        "0.0",
        "-0.0",
        "1e3",
        "1E-7",
        "12345678901234567890",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "1.7976931348623157e308",
        "true",
        "false",
        "null",
        "\"\"",
        "\"a\\\"b\\u00e9\\n\"",
        "\"\\ud83d\\ude00\"",
        "[]",
        "{}",
        "[1,{\"a\":null}]",
        "{\"z\":1,\"a\":[true]}",
        "\"plain\"",
        "0.1",
        "3.0",
    ]);
    let key = prop::sample::select(vec!["s", "i", "f", "b", "j", "n", "a\\\"k", "\\u0073", "zz", ""]);
    prop::collection::vec((key, value), 0..7).prop_map(|pairs| {
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\" : {v}")).collect();
        format!(" {{ {} }} ", body.join(" , "))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn text_rows_encode_like_parsed_events(
        events in segment_events(120),
        rg in 1..50usize,
        threads in 1..3usize,
        max_columns in prop_oneof![0..3usize, Just(DEFAULT_MAX_PROPERTY_COLUMNS)],
    ) {
        let spec = CodecSpec { max_property_columns: max_columns, ..spec(Compression::Lz4, rg) };
        let rows: Vec<(StoredEvent, String)> =
            events.iter().map(|e| (e.clone(), serde_json::to_string(&e.event.properties).unwrap())).collect();
        let (parsed, text) = both_ways(&rows, &spec, threads).expect("canonical JSON parses");
        prop_assert_eq!(parsed, text);
    }

    #[test]
    fn odd_json_texts_encode_like_parsed_events(
        events in segment_events(40),
        texts in prop::collection::vec(odd_json(), 40),
        rg in 1..20usize,
    ) {
        let rows: Vec<(StoredEvent, String)> =
            events.iter().zip(texts).map(|(e, json)| (e.clone(), json)).collect();
        if let Some((parsed, text)) = both_ways(&rows, &spec(Compression::None, rg), 1) {
            prop_assert_eq!(parsed, text);
        }
    }
}

#[test]
fn text_that_is_not_an_object_is_refused_and_nothing_is_written() {
    let e = super::stored(1, "a", 5, serde_json::json!({}));
    let mut w = ColumnarWriter::new(Vec::new(), &info(), None, Vec::new(), &CodecSpec::default(), SortOrder::EventTime)
        .unwrap();
    for bad in ["[1]", "{\"a\":", "{} x", "nul", ""] {
        let err = w.push_text(&text_of(&e, bad)).unwrap_err().to_string();
        assert!(err.contains("seq 1") && err.contains("not a JSON object"), "{err}");
    }
    assert_eq!(w.summary().rows, 0);
    w.push_text(&text_of(&e, "{\"k\":1}")).unwrap();
    let (bytes, summary) = w.finish().unwrap();
    assert_eq!(summary.rows, 1);
    assert_eq!(decode(&bytes).unwrap().1[0].event.properties["k"], serde_json::json!(1));
}

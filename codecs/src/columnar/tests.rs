use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::{KeyValue, PageIndexPolicy};
use parquet::file::properties::WriterProperties;
use serde_json::{json, Map, Value};

use super::layout::KEY_VERSION;
use super::*;
use crate::event::{Event, StoredEvent};

mod counts;
mod parallel;
mod properties;
mod ranged;
mod scans;
mod stream;
mod text_rows;

pub(super) fn info() -> SegmentInfo {
    SegmentInfo { segment_id: "01JTESTSEGMENT0000000000000".to_owned(), project: "proj".to_owned(), day: 19_700 }
}

pub(super) fn stored(seq: u64, name: &str, time_ms: i64, properties: Value) -> StoredEvent {
    let Value::Object(properties) = properties else { panic!("properties must be an object") };
    StoredEvent {
        seq,
        event: Event {
            event: name.to_owned(),
            time_ms,
            distinct_id: format!("user{}", seq % 5),
            insert_id: format!("id{seq}"),
            properties,
        },
    }
}

/// Events in an exactly comparable form: sorted by seq, each as its `Debug` text, which tells integers from floats,
/// `-0.0` from `0.0` and `null` from absent (unlike `PartialEq` on JSON numbers, for which `-0.0 == 0.0`).
pub(super) fn exact(events: &[StoredEvent]) -> Vec<String> {
    let mut events: Vec<&StoredEvent> = events.iter().collect();
    events.sort_by_key(|e| e.seq);
    events.iter().map(|e| format!("{e:?}")).collect()
}

pub(super) fn spec(compression: Compression, row_group_rows: usize) -> CodecSpec {
    CodecSpec { compression, row_group_rows, dictionary: true, ..CodecSpec::default() }
}

/// Encodes with the default spec, decodes, checks the info and returns the events.
fn roundtrip(events: &[StoredEvent]) -> Vec<StoredEvent> {
    let bytes = encode(&info(), events, &CodecSpec::default()).expect("encode");
    let (decoded_info, decoded) = decode(&bytes).expect("decode");
    assert_eq!(decoded_info, info());
    assert_eq!(exact(&decoded), exact(events));
    decoded
}

fn column<'a>(meta: &'a ColumnarMeta, key: &str) -> Option<&'a ShreddedColumn> {
    meta.columns.iter().find(|c| c.key == key)
}

#[test]
fn shreds_keys_that_a_64th_of_the_rows_carry_with_one_type() {
    let events: Vec<StoredEvent> = (0..128u64)
        .map(|i| {
            let mut p = Map::new();
            p.insert("everywhere".into(), json!(format!("v{i}")));
            if i % 64 == 0 {
                // 2 of 128 rows: exactly 1/64.
                p.insert("a64th".into(), json!(i));
            }
            if i == 5 {
                p.insert("few".into(), json!(true));
            }
            if i < 4 {
                // Four kinds, one row each: no kind reaches 1/64 of the rows.
                p.insert("mixed".into(), [json!("s"), json!(1), json!(1.5), json!(false)][i as usize].clone());
            }
            p.insert("nested".into(), if i % 2 == 0 { json!({"a": [i]}) } else { json!([1, "x"]) });
            p.insert("always_null".into(), Value::Null);
            p.insert("big".into(), json!(u64::MAX - i));
            p.insert("float".into(), json!(i as f64 + 0.25));
            stored(i, "e", 1_000 + i as i64, Value::Object(p))
        })
        .collect();
    roundtrip(&events);
    let meta = read_meta(&encode(&info(), &events, &CodecSpec::default()).unwrap()).unwrap();
    let kinds: Vec<(&str, ColumnKind)> = meta.columns.iter().map(|c| (c.key.as_str(), c.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("a64th", ColumnKind::Int64),
            ("everywhere", ColumnKind::Utf8),
            ("float", ColumnKind::Float64),
            ("nested", ColumnKind::Json),
        ]
    );
    assert!(meta.columns.iter().all(|c| c.column == format!("p.{}", c.key)));
    assert_eq!(meta.props_keys, ["always_null", "big", "few", "mixed"]);
}

#[test]
fn a_key_whose_type_varies_gets_the_majority_column_and_the_rest_spills() {
    // 128 rows, of which the first carry `k` with these values (the rest carry no `k`).
    let rows = |values: &[Value]| -> Vec<StoredEvent> {
        (0..128u64)
            .map(|i| match values.get(i as usize) {
                Some(v) => stored(i, "e", 10, json!({ "k": v })),
                None => stored(i, "e", 10, json!({})),
            })
            .collect()
    };
    let values = [json!("a"), json!(4), json!(null), json!(5.5), json!({"x": 1}), json!(true)];
    let events = rows(&values);
    roundtrip(&events);
    let meta = read_meta(&encode(&info(), &events, &CodecSpec::default()).unwrap()).unwrap();
    // One row of each kind is less than 1/64 of 128 rows: no column.
    assert_eq!(meta.columns, []);
    let events = rows(&[&values[..], &[json!("d")]].concat());
    roundtrip(&events);
    let meta = read_meta(&encode(&info(), &events, &CodecSpec::default()).unwrap()).unwrap();
    // Two strings of 128 rows: a Utf8 column; the number, null, float, object and boolean spill to _props.
    assert_eq!(column(&meta, "k").map(|c| c.kind), Some(ColumnKind::Utf8));
    assert_eq!(meta.props_keys, ["k"]);
}

#[test]
fn null_and_absent_stay_distinct() {
    let events = vec![
        stored(1, "e", 1, json!({"k": "v", "other": 1})),
        stored(2, "e", 2, json!({"k": null, "other": 2})),
        stored(3, "e", 3, json!({"other": 3})),
        stored(4, "e", 4, json!({"k": "w", "other": 4})),
    ];
    let decoded = roundtrip(&events);
    let by_seq = |seq: u64| decoded.iter().find(|e| e.seq == seq).unwrap().event.properties.clone();
    assert_eq!(by_seq(2).get("k"), Some(&Value::Null));
    assert_eq!(by_seq(3).get("k"), None);
    let meta = read_meta(&encode(&info(), &events, &CodecSpec::default()).unwrap()).unwrap();
    assert_eq!(column(&meta, "k").map(|c| c.kind), Some(ColumnKind::Utf8));
    // Only the explicit null needed `_props`.
    assert_eq!(meta.props_keys, ["k"]);
}

#[test]
fn values_that_do_not_fit_their_column_spill_and_keep_their_type() {
    let values = [
        json!(1),
        json!(2),
        json!(3),
        json!(4),
        json!(5),
        json!(1.0),                 // a float in an Int64 column
        json!(i64::MAX as u64 + 1), // above i64::MAX
        json!(u64::MAX),
        json!("7"), // a string
        json!(null),
    ];
    let events: Vec<StoredEvent> =
        values.iter().enumerate().map(|(i, v)| stored(i as u64, "e", 5, json!({ "n": v }))).collect();
    let decoded = roundtrip(&events);
    assert_eq!(decoded.len(), values.len());
    let meta = read_meta(&encode(&info(), &events, &CodecSpec::default()).unwrap()).unwrap();
    assert_eq!(column(&meta, "n").map(|c| c.kind), Some(ColumnKind::Int64));

    // Integers in a Float64 column spill too: they would come back as floats.
    let floats = [json!(0.5), json!(-0.0), json!(1e300), json!(5e-324), json!(f64::MAX), json!(3), json!(-3)];
    let events: Vec<StoredEvent> =
        floats.iter().enumerate().map(|(i, v)| stored(i as u64, "e", 5, json!({ "f": v }))).collect();
    let decoded = roundtrip(&events);
    let meta = read_meta(&encode(&info(), &events, &CodecSpec::default()).unwrap()).unwrap();
    assert_eq!(column(&meta, "f").map(|c| c.kind), Some(ColumnKind::Float64));
    let texts: Vec<String> = decoded.iter().map(|e| e.event.properties["f"].to_string()).collect();
    assert!(texts.contains(&"-0.0".to_owned()) && texts.contains(&"3".to_owned()) && texts.contains(&"-3".to_owned()));
}

#[test]
fn integers_keep_their_exact_representation() {
    let values = [json!(i64::MIN), json!(i64::MAX), json!(0), json!(-1), json!(i64::MAX as u64), json!(u64::MAX)];
    let events: Vec<StoredEvent> = values
        .iter()
        .enumerate()
        .map(|(i, v)| stored(i as u64, "e", 5, json!({ "n": v, "nested": [v, {"v": v}] })))
        .collect();
    let decoded = roundtrip(&events);
    for e in decoded {
        let original = &events.iter().find(|o| o.seq == e.seq).unwrap().event.properties;
        assert_eq!(e.event.properties["n"].to_string(), original["n"].to_string());
        assert_eq!(e.event.properties["nested"].to_string(), original["nested"].to_string());
    }
}

#[test]
fn extreme_sequences_and_times_round_trip() {
    let seqs = [0, 1, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX - 1, u64::MAX];
    let times = [i64::MIN, -1, 0, 1, i64::MAX - 1, i64::MAX];
    let events: Vec<StoredEvent> =
        seqs.iter().zip(times).map(|(&seq, time)| stored(seq, "e", time, json!({}))).collect();
    for order in SortOrder::ALL {
        let (_, decoded) = decode(&encode_with_order(&info(), &events, &CodecSpec::default(), order).unwrap()).unwrap();
        assert_eq!(exact(&decoded), exact(&events));
    }
}

#[test]
fn unicode_empty_and_huge_strings() {
    let huge = "ü".repeat(600_000) + "\u{1F600}";
    let events = vec![
        StoredEvent {
            seq: 1,
            event: Event {
                event: "Ünïcödé \u{1F680} \"quoted\" \\ \n".to_owned(),
                time_ms: -5,
                distinct_id: String::new(),
                insert_id: String::new(),
                properties: Map::new(),
            },
        },
        StoredEvent {
            seq: 2,
            event: Event {
                event: String::new(),
                time_ms: i64::MAX,
                distinct_id: huge.clone(),
                insert_id: "\u{0}\u{7f}".to_owned(),
                properties: [
                    ("".to_owned(), json!("")),
                    ("p.x".to_owned(), json!(huge)),
                    ("a.b".to_owned(), json!("dotted")),
                    ("_props".to_owned(), json!("not the remainder")),
                    ("time".to_owned(), json!("not the time")),
                    ("\u{1F600}".to_owned(), json!("\u{0}")),
                ]
                .into_iter()
                .collect(),
            },
        },
        stored(
            3,
            "e",
            i64::MIN,
            json!({"": "x", "p.x": "y", "a.b": "z", "_props": "w", "time": "t", "\u{1F600}": "s"}),
        ),
    ];
    roundtrip(&events);
    let meta = read_meta(&encode(&info(), &events, &CodecSpec::default()).unwrap()).unwrap();
    let names: Vec<&str> = meta.columns.iter().map(|c| c.column.as_str()).collect();
    assert_eq!(names, ["p.", "p._props", "p.a.b", "p.p.x", "p.time", "p.\u{1F600}"]);
    assert_eq!(meta.time, Some(TimeRange { min_ms: i64::MIN, max_ms: i64::MAX }));
}

#[test]
fn metadata_describes_the_segment() {
    let events: Vec<StoredEvent> = (0..250u64)
        .map(|i| stored(i, ["a", "b"][i as usize % 2], 100 + i as i64, json!({"k": i, "r": null})))
        .collect();
    let spec =
        CodecSpec { compression: Compression::Zstd(7), row_group_rows: 100, dictionary: false, ..CodecSpec::default() };
    let bytes = encode(&info(), &events, &spec).unwrap();
    let meta = read_meta(&bytes).unwrap();
    assert_eq!(
        meta,
        ColumnarMeta {
            info: info(),
            format_version: layout::FORMAT_VERSION,
            rows: 250,
            time: Some(TimeRange { min_ms: 100, max_ms: 349 }),
            spec: spec.clone(),
            sort: SortOrder::DEFAULT,
            row_groups: 3,
            columns: vec![ShreddedColumn { key: "k".into(), column: "p.k".into(), kind: ColumnKind::Int64 }],
            props_keys: vec!["r".into()],
            lineage: None,
        }
    );

    // Statistics and the page index exist for every column chunk.
    let loaded = ArrowReaderMetadata::load(
        &Bytes::from(bytes),
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required),
    )
    .unwrap();
    let parquet = loaded.metadata();
    for (g, group) in parquet.row_groups().iter().enumerate() {
        let index = parquet.page_index_for_row_group(g);
        for c in 0..group.num_columns() {
            assert!(group.column(c).statistics().is_some(), "row group {g} column {c} has statistics");
            assert!(index.column_index(c).is_some(), "row group {g} column {c} has a column index");
            assert!(index.offset_index(c).is_some(), "row group {g} column {c} has an offset index");
        }
    }
    let kv = parquet.file_metadata().key_value_metadata().unwrap();
    let get = |key: &str| kv.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone());
    assert_eq!(get("tierd.columnar.version").as_deref(), Some("1"));
    assert_eq!(get("tierd.segment_id"), Some(info().segment_id));
    assert_eq!(get("tierd.project").as_deref(), Some("proj"));
    assert_eq!(get("tierd.day").as_deref(), Some("19700"));
    assert_eq!(get("tierd.props_keys").as_deref(), Some(r#"["r"]"#));
}

#[test]
fn an_empty_segment_is_a_valid_file() {
    let bytes = encode(&info(), &[], &CodecSpec::default()).unwrap();
    assert_eq!(decode(&bytes).unwrap(), (info(), vec![]));
    let meta = read_meta(&bytes).unwrap();
    assert_eq!((meta.rows, meta.row_groups, meta.time), (0, 0, None));
    assert_eq!(meta.spec, CodecSpec::default());
    let req = ScanRequest { from_ms: i64::MIN, to_ms: i64::MAX, event: None, properties: None };
    let stats = scan(Bytes::from(bytes.clone()), &req, |_| panic!("no events")).unwrap();
    assert_eq!(stats, ScanStats { row_groups: 0, row_groups_read: 0, rows_read: 0 });
    assert_eq!(decode(&recompress(&bytes, &spec(Compression::Zstd(3), 10)).unwrap()).unwrap(), (info(), vec![]));
}

#[test]
fn compression_parses_and_displays() {
    for (text, parsed) in [
        ("none", Compression::None),
        ("lz4", Compression::Lz4),
        ("LZ4", Compression::Lz4),
        ("zstd", Compression::Zstd(3)),
        ("zstd-3", Compression::Zstd(3)),
        ("zstd(19)", Compression::Zstd(19)),
        ("ZSTD-1", Compression::Zstd(1)),
        ("zstd-22", Compression::Zstd(22)),
        ("zstd-007", Compression::Zstd(7)),
    ] {
        assert_eq!(text.parse::<Compression>(), Ok(parsed), "{text}");
        assert_eq!(parsed.to_string().parse::<Compression>(), Ok(parsed));
    }
    assert_eq!(Compression::Zstd(19).to_string(), "zstd-19");
    assert_eq!(Compression::None.to_string(), "none");
    assert_eq!(Compression::Lz4.to_string(), "lz4");
    for level in ZSTD_LEVELS {
        assert_eq!(Compression::Zstd(level).to_string().parse(), Ok(Compression::Zstd(level)));
    }

    let error = |text: &str| text.parse::<Compression>().unwrap_err();
    assert_eq!(error("zstd-0"), CodecSpecError::ZstdLevelOutOfRange { level: 0 });
    assert_eq!(error("zstd(23)"), CodecSpecError::ZstdLevelOutOfRange { level: 23 });
    assert_eq!(error("zstd-99999999999"), CodecSpecError::ZstdLevelOutOfRange { level: i32::MAX });
    for bad_level in ["zstd-", "zstd-x", "zstd--3", "zstd-+3", "zstd()", "zstd(3 )"] {
        assert_eq!(error(bad_level), CodecSpecError::BadZstdLevel { given: bad_level.to_owned() }, "{bad_level}");
    }
    for unknown in ["", "gzip", "snappy", "zstd3", "zstd(3", "lz4_raw", " lz4"] {
        assert_eq!(error(unknown), CodecSpecError::UnknownCompression { given: unknown.to_owned() }, "{unknown}");
    }
    let message = error("zstd-30").to_string();
    assert!(message.contains("30") && message.contains("1") && message.contains("22"), "{message}");
    let message = error("brotli").to_string();
    assert!(message.contains("brotli") && message.contains("zstd-<level>"), "{message}");
}

#[test]
fn codec_spec_validates_and_serializes_as_strings() {
    assert_eq!(
        CodecSpec::default(),
        CodecSpec { compression: Compression::Lz4, row_group_rows: 65_536, dictionary: true, ..CodecSpec::default() }
    );
    assert_eq!(CodecSpec::default().validate(), Ok(()));
    let zero_rows = CodecSpec { row_group_rows: 0, ..CodecSpec::default() };
    assert_eq!(zero_rows.validate(), Err(CodecSpecError::RowGroupRows { got: 0, max: MAX_ROW_GROUP_ROWS }));
    assert!(zero_rows.validate().unwrap_err().to_string().contains("row_group_rows"));
    let too_many = CodecSpec { row_group_rows: MAX_ROW_GROUP_ROWS + 1, ..CodecSpec::default() };
    assert!(too_many.validate().is_err());
    let bad_level = CodecSpec { compression: Compression::Zstd(0), ..CodecSpec::default() };
    assert_eq!(bad_level.validate(), Err(CodecSpecError::ZstdLevelOutOfRange { level: 0 }));
    assert!(matches!(encode(&info(), &[], &bad_level), Err(ColumnarError::InvalidSpec(_))));
    assert!(matches!(encode(&info(), &[], &zero_rows), Err(ColumnarError::InvalidSpec(_))));

    let spec = CodecSpec {
        compression: Compression::Zstd(19),
        row_group_rows: 1000,
        dictionary: false,
        ..CodecSpec::default()
    };
    let text = serde_json::to_string(&spec).unwrap();
    assert_eq!(
        text,
        r#"{"compression":"zstd-19","row_group_rows":1000,"dictionary":false,"max_property_columns":256}"#
    );
    assert_eq!(serde_json::from_str::<CodecSpec>(&text).unwrap(), spec);
    let partial: CodecSpec = serde_json::from_str(r#"{"compression":"zstd(5)"}"#).unwrap();
    assert_eq!(partial, CodecSpec { compression: Compression::Zstd(5), ..CodecSpec::default() });
    let error = |json: &str| serde_json::from_str::<CodecSpec>(json).unwrap_err().to_string();
    assert!(error(r#"{"compression":"zstd-0"}"#).contains("out of range"));
    assert!(error(r#"{"compression":"gzip"}"#).contains("gzip"));
    assert!(error(r#"{"row_group_rows":0}"#).contains("row_group_rows"));
    assert!(error(r#"{"rows":10}"#).contains("rows"));
    assert_eq!(serde_json::to_string(&Compression::Lz4).unwrap(), r#""lz4""#);
}

/// 3 names x 4 hours, 40 events each, sorted (event, time) into row groups of 40 rows: one name and hour per group.
pub(super) fn hourly_events() -> Vec<StoredEvent> {
    let mut events = Vec::new();
    for (n, name) in ["click", "purchase", "view"].iter().enumerate() {
        for hour in 0..4i64 {
            for i in 0..40i64 {
                let seq = (n as i64 * 1000 + hour * 100 + i) as u64;
                let time = hour * 3_600_000 + i * 60_000;
                let spill = if i == 7 { json!("spilled") } else { json!(i) };
                events.push(stored(
                    seq,
                    name,
                    time,
                    // `rare` has a value in 3 of the 480 rows (under 1/64: no column), `null` in the others.
                    json!({"amount": i, "often": spill, "rare": (i == 3 && hour == 0).then_some(1)}),
                ));
            }
        }
    }
    events
}

#[test]
fn recompress_keeps_content_and_metadata() {
    let events = hourly_events();
    let original = encode(&info(), &events, &spec(Compression::Lz4, 100)).unwrap();
    let target = CodecSpec {
        compression: Compression::Zstd(19),
        row_group_rows: 250,
        dictionary: false,
        ..CodecSpec::default()
    };
    let rewritten = recompress(&original, &target).unwrap();
    let (before, after) = (decode(&original).unwrap(), decode(&rewritten).unwrap());
    assert_eq!(after.0, before.0);
    // Same rows in the same order, exactly.
    let debug = |events: &[StoredEvent]| events.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>();
    assert_eq!(debug(&after.1), debug(&before.1));

    let (meta_before, meta_after) = (read_meta(&original).unwrap(), read_meta(&rewritten).unwrap());
    assert_eq!(meta_after.spec, target);
    assert_eq!(meta_after.row_groups, 2);
    assert_eq!(meta_before.row_groups, 5);
    let comparable = |m: ColumnarMeta| (m.info, m.rows, m.time, m.sort, m.columns, m.props_keys);
    assert_eq!(comparable(meta_after), comparable(meta_before));
    assert!(matches!(recompress(&original, &spec(Compression::Zstd(23), 10)), Err(ColumnarError::InvalidSpec(_))));
    assert!(matches!(recompress(b"not parquet", &CodecSpec::default()), Err(ColumnarError::NotParquet { .. })));
}

#[test]
fn lineage_is_recorded_in_the_footer_and_survives_a_recompress_into_a_new_segment() {
    let events = hourly_events();
    let lineage = Lineage {
        inputs: vec!["01JINPUTA00000000000000000".into(), "01JINPUTB00000000000000000".into()],
        role: LineageRole::Duplicates { of: "01JOUTPUT00000000000000000".into(), keep_until_ms: 42 },
        erase_inputs: true,
        created_at_ms: 7,
    };
    let written = encode_with_lineage(&info(), &lineage, &events, &spec(Compression::Lz4, 100)).unwrap();
    assert_eq!(read_meta(&written).unwrap().lineage.as_ref(), Some(&lineage));
    // Files written without one (every file before lineage existed) read as None.
    let plain = encode(&info(), &events, &spec(Compression::Lz4, 100)).unwrap();
    assert_eq!(read_meta(&plain).unwrap().lineage, None);
    // A plain recompress keeps the input's footer, lineage included.
    let again = recompress(&written, &spec(Compression::Zstd(3), 100)).unwrap();
    assert_eq!(read_meta(&again).unwrap().lineage.as_ref(), Some(&lineage));
    // recompress_as names the output and records its own lineage; the rows are the same.
    let out_info = SegmentInfo { segment_id: "01JOUTPUT00000000000000000".into(), ..info() };
    let out_lineage = Lineage { inputs: vec![info().segment_id], created_at_ms: 7, ..Lineage::default() };
    let out = recompress_as(&plain, &out_info, &out_lineage, &spec(Compression::Zstd(19), 100)).unwrap();
    let meta = read_meta(&out).unwrap();
    assert_eq!((meta.info, meta.lineage), (out_info, Some(out_lineage)));
    assert_eq!(exact(&decode(&out).unwrap().1), exact(&events));
    // A damaged lineage is a corrupt footer, not an absent one.
    let mut bad = written.clone();
    let at = bad.windows(8).position(|w| w == b"\"inputs\"").expect("the lineage JSON is in the footer");
    bad[at + 1] = b'X';
    assert!(matches!(read_meta(&bad), Err(ColumnarError::Corrupt { .. })), "{:?}", read_meta(&bad));
}

#[test]
fn foreign_and_damaged_files_are_refused_with_a_reason() {
    assert!(matches!(decode(b""), Err(ColumnarError::NotParquet { .. })));
    assert!(matches!(read_meta(b"PAR1garbagePAR1"), Err(ColumnarError::NotParquet { .. })));

    let plain = |key_values: Option<Vec<KeyValue>>| {
        let batch = RecordBatch::try_from_iter([("x", Arc::new(UInt64Array::from(vec![1u64])) as ArrayRef)]).unwrap();
        let props = WriterProperties::builder().set_key_value_metadata(key_values).build();
        let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.into_inner().unwrap()
    };
    let error = decode(&plain(None)).unwrap_err();
    assert!(matches!(&error, ColumnarError::NotColumnar { reason } if reason.contains(KEY_VERSION)), "{error}");
    let future = plain(Some(vec![KeyValue::new(KEY_VERSION.to_owned(), "2".to_owned())]));
    for error in [decode(&future).unwrap_err(), read_meta(&future).unwrap_err()] {
        assert!(matches!(&error, ColumnarError::UnsupportedVersion { found, supported: 1 } if found == "2"), "{error}");
    }
    let current = plain(Some(vec![KeyValue::new(KEY_VERSION.to_owned(), "1".to_owned())]));
    let error = read_meta(&current).unwrap_err();
    assert!(
        matches!(&error, ColumnarError::Corrupt { message, .. } if message.contains("tierd.segment_id")),
        "{error}"
    );

    // A segment cut short.
    let bytes = encode(&info(), &hourly_events(), &CodecSpec::default()).unwrap();
    assert!(decode(&bytes[..bytes.len() - 10]).is_err());
    assert!(read_meta(&bytes[..bytes.len() / 2]).is_err());
}

#[test]
fn sort_orders_give_the_same_content_in_their_own_order() {
    let events = hourly_events();
    for order in SortOrder::ALL {
        let bytes = encode_with_order(&info(), &events, &CodecSpec::default(), order).unwrap();
        let (_, decoded) = decode(&bytes).unwrap();
        assert_eq!(exact(&decoded), exact(&events));
        let permutation = sort_permutation(&events, order);
        let expected: Vec<u64> = permutation.iter().map(|&i| events[i].seq).collect();
        assert_eq!(decoded.iter().map(|e| e.seq).collect::<Vec<_>>(), expected, "{order}");
        assert_eq!(read_meta(&bytes).unwrap().sort, order);
        assert_eq!(order.to_string().parse::<SortOrder>(), Ok(order));
    }
    // (event, time): names ascending, times ascending within a name.
    let (_, decoded) = decode(&encode(&info(), &events, &CodecSpec::default()).unwrap()).unwrap();
    let keys: Vec<(String, i64)> = decoded.iter().map(|e| (e.event.event.clone(), e.event.time_ms)).collect();
    assert!(keys.windows(2).all(|w| w[0] <= w[1]));
}

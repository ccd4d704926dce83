//! Scans: row group and page pruning, projection, and when `_props` is read.

use std::sync::Arc;

use arrow_array::builder::{StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch, TimestampMillisecondArray, UInt64Array};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use serde_json::{json, Map};

use super::super::layout::{Layout, PROPS_COLUMN};
use super::super::*;
use super::{exact, hourly_events, info, spec, stored};
use crate::event::StoredEvent;

#[test]
fn scan_prunes_row_groups_by_time_and_event() {
    let events = hourly_events();
    let bytes = Bytes::from(encode(&info(), &events, &spec(Compression::Lz4, 40)).unwrap());
    let run = |req: &ScanRequest| {
        let mut got = Vec::new();
        let stats = scan(bytes.clone(), req, |e| got.push(e)).unwrap();
        (got, stats)
    };
    let hour = |h: i64| (h * 3_600_000, (h + 1) * 3_600_000);

    let (from, to) = hour(2);
    let (got, stats) = run(&ScanRequest { from_ms: from, to_ms: to, event: Some("purchase".into()), properties: None });
    assert_eq!(got.len(), 40);
    assert!(got.iter().all(|e| e.event.event == "purchase" && (from..to).contains(&e.event.time_ms)));
    assert_eq!(stats, ScanStats { row_groups: 12, row_groups_read: 1, rows_read: 40 });

    let (got, stats) = run(&ScanRequest { from_ms: from, to_ms: to, event: None, properties: None });
    assert_eq!(got.len(), 120);
    assert_eq!((stats.row_groups_read, stats.rows_read), (3, 120));

    let (got, stats) = run(&ScanRequest { from_ms: 0, to_ms: i64::MAX, event: Some("none".into()), properties: None });
    assert_eq!((got.len(), stats.row_groups_read, stats.rows_read), (0, 0, 0));

    let (got, stats) = run(&ScanRequest { from_ms: 5, to_ms: 5, event: None, properties: None });
    assert_eq!((got.len(), stats.row_groups_read), (0, 0));

    // Half an hour: the group is read, only its matching rows are delivered.
    let (got, _) = run(&ScanRequest { from_ms: 0, to_ms: 1_800_000, event: Some("view".into()), properties: None });
    assert_eq!(got.len(), 30);
}

#[test]
fn scan_prunes_pages_inside_a_row_group() {
    // One row group of 60,000 rows, pages of at most layout::PAGE_ROWS rows.
    let events: Vec<StoredEvent> = (0..60_000u64).map(|i| stored(i, "e", i as i64 * 1000, json!({}))).collect();
    let bytes = Bytes::from(encode(&info(), &events, &spec(Compression::Lz4, 65_536)).unwrap());
    let req = ScanRequest { from_ms: 30_000_000, to_ms: 30_001_000, event: Some("e".into()), properties: Some(vec![]) };
    let mut got = Vec::new();
    let stats = scan(bytes, &req, |e| got.push(e.seq)).unwrap();
    assert_eq!(got, [30_000]);
    assert_eq!(stats.row_groups_read, 1);
    assert!(stats.rows_read <= layout::PAGE_ROWS as u64 * 2, "read {} rows", stats.rows_read);
}

/// With zstd, every column but `time` and `event` has pages of `layout::ZSTD_PAGE_ROWS` rows; `time` and `event`
/// keep `layout::PAGE_ROWS`, so scans still prune pages by them; with LZ4 every column has `PAGE_ROWS`. Either way
/// the segment decodes to the same events and a narrow scan answers the same.
#[test]
fn zstd_segments_have_big_pages_but_for_time_and_event() {
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    use parquet::file::metadata::PageIndexPolicy;

    let events: Vec<StoredEvent> = (0..60_000u64)
        .map(|i| stored(i, ["a", "b"][(i % 2) as usize], i as i64 * 1000, json!({"k": i % 7, "s": format!("v{i}")})))
        .collect();
    let pages = |bytes: &Bytes| -> Vec<(String, usize)> {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let loaded = ArrowReaderMetadata::load(bytes, options).unwrap();
        let parquet = loaded.metadata();
        assert_eq!(parquet.num_row_groups(), 1);
        let index = parquet.page_index_for_row_group(0);
        let group = parquet.row_group(0);
        (0..group.num_columns())
            .map(|c| (group.column(c).column_path().string(), index.page_locations(c).unwrap().len()))
            .collect()
    };
    let req = ScanRequest { from_ms: 30_000_000, to_ms: 30_002_000, event: Some("a".into()), properties: None };
    let mut answers = Vec::new();
    for compression in [Compression::Lz4, Compression::Zstd(3)] {
        let bytes = Bytes::from(encode(&info(), &events, &spec(compression, 65_536)).unwrap());
        let (_, decoded) = decode(&bytes).unwrap();
        assert_eq!(exact(&decoded), exact(&events), "{compression}");
        let small = 60_000usize.div_ceil(layout::PAGE_ROWS);
        for (column, n) in pages(&bytes) {
            let expected = match (compression, column.as_str()) {
                (Compression::Zstd(_), "time" | "event") | (Compression::Lz4, _) => small,
                (Compression::Zstd(_), _) => 60_000usize.div_ceil(layout::ZSTD_PAGE_ROWS),
                (Compression::None, _) => unreachable!(),
            };
            assert_eq!(n, expected, "{compression}: pages of {column}");
        }
        let mut got = Vec::new();
        let stats = scan(bytes, &req, |e| got.push(e)).unwrap();
        assert!(stats.rows_read <= layout::PAGE_ROWS as u64 * 2, "{compression}: read {} rows", stats.rows_read);
        answers.push(exact(&got));
    }
    let expected: Vec<StoredEvent> = events[30_000..30_002].iter().filter(|e| e.event.event == "a").cloned().collect();
    assert_eq!(answers, [exact(&expected), exact(&expected)]);
}

/// Many pages in several row groups, names interleaved in time: row group and page pruning by both time and
/// event, checked against the straightforward filter for many windows.
#[test]
fn pruned_scans_match_the_filter_across_pages_and_row_groups() {
    let mut state = 0x5EED_u64;
    let mut next = move |n: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let names = ["a", "b", "c", "d", "e"];
    let events: Vec<StoredEvent> = (0..30_000u64)
        .map(|seq| {
            // Skewed names, so some names fill pages alone and others share them.
            let name = names[(next(100) * next(100) / 2000) as usize];
            stored(seq, name, next(86_400) as i64 * 1000, json!({"v": seq}))
        })
        .collect();
    let bytes = Bytes::from(encode(&info(), &events, &spec(Compression::Lz4, 10_000)).unwrap());
    let mut pruned_rows = 0;
    for _ in 0..40 {
        let from = next(90_000) as i64 * 1000 - 2_000_000;
        let to = from + next(20_000) as i64 * 1000;
        let event = (next(4) > 0).then(|| names[next(5) as usize].to_owned());
        let req = ScanRequest { from_ms: from, to_ms: to, event: event.clone(), properties: Some(vec![]) };
        let mut got = Vec::new();
        let stats = scan(bytes.clone(), &req, |e| got.push(e.seq)).unwrap();
        got.sort_unstable();
        let expected: Vec<u64> = events
            .iter()
            .filter(|e| (from..to).contains(&e.event.time_ms))
            .filter(|e| event.as_ref().is_none_or(|name| &e.event.event == name))
            .map(|e| e.seq)
            .collect();
        assert_eq!(got, expected, "{req:?}");
        assert_eq!(stats.row_groups, 3);
        pruned_rows += 30_000 - stats.rows_read;
    }
    assert!(pruned_rows > 40 * 15_000, "pruning skipped only {pruned_rows} rows in 40 scans");
}

#[test]
fn scan_returns_only_the_requested_properties() {
    let events = hourly_events();
    let bytes = Bytes::from(encode(&info(), &events, &spec(Compression::Lz4, 1000)).unwrap());
    let meta = read_meta(&bytes).unwrap();
    assert_eq!(meta.columns.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(), ["amount", "often"]);
    assert_eq!(meta.props_keys, ["often", "rare"]);
    let scan_keys = |keys: Option<Vec<&str>>| {
        let req = ScanRequest {
            from_ms: 0,
            to_ms: 3_600_000,
            event: Some("click".into()),
            properties: keys.map(|k| k.into_iter().map(str::to_owned).collect()),
        };
        let mut got = Vec::new();
        scan(bytes.clone(), &req, |e| got.push(e)).unwrap();
        got.sort_by_key(|e| e.seq);
        got
    };
    let expected = |keys: &[&str]| -> Vec<StoredEvent> {
        let mut expected: Vec<StoredEvent> = events
            .iter()
            .filter(|e| e.event.event == "click" && e.event.time_ms < 3_600_000)
            .cloned()
            .map(|mut e| {
                e.event.properties.retain(|k, _| keys.contains(&k.as_str()));
                e
            })
            .collect();
        expected.sort_by_key(|e| e.seq);
        expected
    };
    assert_eq!(exact(&scan_keys(None)), exact(&expected(&["amount", "often", "rare"])));
    assert_eq!(exact(&scan_keys(Some(vec![]))), exact(&expected(&[])));
    assert_eq!(exact(&scan_keys(Some(vec!["amount"]))), exact(&expected(&["amount"])));
    assert_eq!(exact(&scan_keys(Some(vec!["often", "missing"]))), exact(&expected(&["often"])));
    assert_eq!(exact(&scan_keys(Some(vec!["rare"]))), exact(&expected(&["rare"])));
}

/// A segment whose `_props` column holds text that is not JSON: a scan that reads `_props` fails on it, so a scan
/// that succeeds did not read it.
#[test]
fn scan_reads_props_only_when_a_requested_key_can_be_there() {
    let columns = vec![
        ShreddedColumn { key: "a".into(), column: "p.a".into(), kind: ColumnKind::Utf8 },
        ShreddedColumn { key: "b".into(), column: "p.b".into(), kind: ColumnKind::Utf8 },
    ];
    let layout = Layout {
        info: info(),
        spec: CodecSpec::default(),
        sort: SortOrder::DEFAULT,
        columns,
        props_keys: ["b".to_owned()].into_iter().collect(),
        props_valued_keys: None,
        lineage: None,
    };
    let strings = |values: &[Option<&str>]| -> ArrayRef {
        let mut builder = StringBuilder::new();
        values.iter().for_each(|v| builder.append_option(*v));
        Arc::new(builder.finish())
    };
    let mut names = StringDictionaryBuilder::<Int32Type>::new();
    names.append_value("e");
    let batch = RecordBatch::try_new(
        Layout::schema(&layout.columns),
        vec![
            Arc::new(TimestampMillisecondArray::from(vec![7]).with_timezone("UTC")),
            Arc::new(names.finish()),
            strings(&[Some("u")]),
            strings(&[Some("i")]),
            Arc::new(UInt64Array::from(vec![1])),
            strings(&[Some("va")]),
            strings(&[None]),
            strings(&[Some("this is not JSON")]),
        ],
    )
    .unwrap();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(layout.writer_properties())).unwrap();
    writer.write(&batch).unwrap();
    for kv in layout.props_keys_key_values() {
        writer.append_key_value_metadata(kv);
    }
    let bytes = Bytes::from(writer.into_inner().unwrap());

    let req = |keys: Option<Vec<&str>>| ScanRequest {
        from_ms: 0,
        to_ms: 10,
        event: None,
        properties: keys.map(|k| k.into_iter().map(str::to_owned).collect()),
    };
    let mut got = Vec::new();
    scan(bytes.clone(), &req(Some(vec!["a", "not_anywhere"])), |e| got.push(e)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event.properties, [("a".to_owned(), json!("va"))].into_iter().collect::<Map<_, _>>());
    for reads_props in [Some(vec!["b"]), Some(vec!["a", "b"]), None] {
        let error = scan(bytes.clone(), &req(reads_props.clone()), |_| {}).unwrap_err();
        assert!(matches!(&error, ColumnarError::Corrupt { message, .. } if message.contains(PROPS_COLUMN)), "{error}");
    }
    assert!(matches!(decode(&bytes), Err(ColumnarError::Corrupt { .. })));
}

#[test]
fn range_intersection() {
    let ranges = |pairs: &[(usize, usize)]| pairs.iter().map(|&(a, b)| a..b).collect::<Vec<_>>();
    let intersect = |a: &[(usize, usize)], b: &[(usize, usize)]| select::intersect(&ranges(a), &ranges(b));
    assert_eq!(intersect(&[(0, 10)], &[(2, 4), (6, 12)]), ranges(&[(2, 4), (6, 10)]));
    assert_eq!(intersect(&[(0, 3), (5, 8)], &[(2, 6)]), ranges(&[(2, 3), (5, 6)]));
    assert_eq!(intersect(&[(0, 3)], &[(3, 6)]), ranges(&[]));
    assert_eq!(intersect(&[], &[(3, 6)]), ranges(&[]));
}

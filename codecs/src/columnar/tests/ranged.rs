//! Ranged reads ([`ColumnarFooter`]): planned from the tail, the footer and the page index alone, then run over a
//! reader that holds only the planned byte ranges, they deliver exactly what a scan of the whole file delivers.

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::json;

use super::super::*;
use super::{exact, info, stored};
use crate::event::StoredEvent;

/// A file of which only some byte ranges are known; reading anything else is an error.
struct Partial {
    len: u64,
    ranges: Vec<(Range<u64>, Bytes)>,
}

impl Partial {
    fn new(file: &Bytes, ranges: &[Range<u64>]) -> Self {
        let ranges = merge_ranges(ranges.to_vec())
            .into_iter()
            .map(|r| (r.clone(), file.slice(r.start as usize..r.end as usize)))
            .collect();
        Partial { len: file.len() as u64, ranges }
    }

    fn find(&self, start: u64, len: u64) -> parquet::errors::Result<Bytes> {
        self.ranges
            .iter()
            .find(|(r, _)| r.start <= start && start + len <= r.end)
            .map(|(r, b)| b.slice((start - r.start) as usize..(start - r.start + len) as usize))
            .ok_or_else(|| parquet::errors::ParquetError::General(format!("bytes {start}+{len} were not fetched")))
    }
}

impl Length for Partial {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Partial {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let (r, _) = self
            .ranges
            .iter()
            .find(|(r, _)| r.start <= start && start < r.end)
            .ok_or_else(|| parquet::errors::ParquetError::General(format!("byte {start} was not fetched")))?;
        Ok(bytes::Buf::reader(self.find(start, r.end - start)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.find(start, length as u64)
    }
}

/// The planning steps a cold reader takes: tail, footer, page index. Returns the footer and the ranges read.
fn plan(file: &Bytes) -> (ColumnarFooter, Vec<Range<u64>>) {
    let len = file.len() as u64;
    let tail = &file[(len - FOOTER_TAIL_LEN) as usize..];
    let footer = footer_range(len, tail).unwrap();
    let index = page_index_range(&file[footer.start as usize..]).unwrap().expect("tierd writes a page index");
    assert!(index.end <= footer.start, "the page index lies before the footer");
    let known = vec![index, footer];
    (ColumnarFooter::load(&Partial::new(file, &known)).unwrap(), known)
}

fn events(n: u64) -> Vec<StoredEvent> {
    (0..n)
        .map(|seq| {
            let name = ["a", "b", "c", "d"][(seq * seq % 7 % 4) as usize];
            let mut props = json!({"v": seq, "s": format!("{:x}", seq.wrapping_mul(0x9e37_79b9_7f4a_7c15))});
            if seq % 3 == 0 {
                // Spills to `_props`: mixed types under one key.
                props["odd"] = if seq % 2 == 0 { json!("text") } else { json!(1.5) };
            }
            stored(seq, name, (seq as i64 * 7_919) % 86_400_000, props)
        })
        .collect()
}

fn scan_all(file: Bytes, req: &ScanRequest) -> (Vec<String>, ScanStats) {
    let mut out = Vec::new();
    let stats = scan(file, req, |e| out.push(e)).unwrap();
    (exact(&out), stats)
}

/// Scans and counts through the planned ranges only; checks them against whole-file reads; returns the bytes the
/// scan and the count planned (footer and page index included).
fn check(file: &Bytes, req: &ScanRequest) -> Result<(u64, u64), TestCaseError> {
    let (footer, known) = plan(file);
    let scan_ranges = footer.scan_ranges(req);
    let reader = Partial::new(file, &[known.clone(), scan_ranges.clone()].concat());
    let mut got = Vec::new();
    let stats = footer.scan(reader, req, |e| got.push(e)).unwrap();
    let (expected, expected_stats) = scan_all(file.clone(), req);
    prop_assert_eq!(exact(&got), expected, "{:?}", req);
    prop_assert_eq!(stats, expected_stats);

    let (footer, _) = plan(file);
    let count_ranges = footer.count_ranges(req);
    let reader = Partial::new(file, &[known.clone(), count_ranges.clone()].concat());
    let counts = footer.count_by_event(reader, req).unwrap();
    prop_assert_eq!(counts, count_by_event(file.clone(), req).unwrap());

    let size =
        |ranges: &[Range<u64>]| merge_ranges([&known[..], ranges].concat()).iter().map(|r| r.end - r.start).sum();
    Ok((size(&scan_ranges), size(&count_ranges)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn ranged_reads_deliver_what_whole_file_reads_deliver(
        n in 2_000..8_000u64,
        row_group_rows in 700..3_000usize,
        requests in prop::collection::vec(
            (
                (-1_000i64..90_000, 0..40_000i64),
                prop::option::of(prop::sample::select(vec!["a", "b", "c", "d", "zzz"])),
                prop::option::of(prop::sample::subsequence(vec!["v", "s", "odd", "missing"], 0..4)),
            ),
            6,
        ),
    ) {
        let spec = CodecSpec { compression: Compression::Lz4, row_group_rows, dictionary: true, ..CodecSpec::default() };
        let file = Bytes::from(encode(&info(), &events(n), &spec).unwrap());
        for ((from, len), event, properties) in requests {
            let req = ScanRequest {
                from_ms: from * 1000,
                to_ms: (from + len) * 1000,
                event: event.map(str::to_owned),
                properties: properties.map(|p| p.into_iter().map(str::to_owned).collect()),
            };
            check(&file, &req)?;
        }
    }
}

/// A narrow count reads a small part of the file; reading every property reads most of it.
#[test]
fn narrow_requests_plan_few_bytes() {
    let spec =
        CodecSpec { compression: Compression::Lz4, row_group_rows: 2_000, dictionary: true, ..CodecSpec::default() };
    let file = Bytes::from(encode(&info(), &events(20_000), &spec).unwrap());
    let len = file.len() as u64;
    let narrow = ScanRequest { from_ms: 0, to_ms: 3_600_000, event: Some("a".into()), properties: Some(vec![]) };
    let (scan_bytes, count_bytes) = check(&file, &narrow).unwrap();
    assert!(count_bytes * 4 < len, "a narrow count plans {count_bytes} of {len} bytes");
    assert!(scan_bytes * 2 < len, "a narrow scan plans {scan_bytes} of {len} bytes");
    let everything = ScanRequest { from_ms: i64::MIN, to_ms: i64::MAX, event: None, properties: None };
    let (all_bytes, _) = check(&file, &everything).unwrap();
    assert!(all_bytes > len * 9 / 10, "everything plans {all_bytes} of {len} bytes");
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    scan(file.clone(), &everything, |e| *by_name.entry(e.event.event).or_default() += 1).unwrap();
    assert_eq!(by_name.values().sum::<u64>(), 20_000);
}

/// A reader missing a planned range makes the read fail; it never yields a wrong answer.
#[test]
fn a_missing_range_is_an_error() {
    let spec =
        CodecSpec { compression: Compression::Lz4, row_group_rows: 2_000, dictionary: true, ..CodecSpec::default() };
    let file = Bytes::from(encode(&info(), &events(6_000), &spec).unwrap());
    let req = ScanRequest { from_ms: i64::MIN, to_ms: i64::MAX, event: None, properties: None };
    let (footer, known) = plan(&file);
    let mut ranges = footer.count_ranges(&req);
    ranges.remove(ranges.len() / 2);
    let reader = Partial::new(&file, &[known, ranges].concat());
    let e = footer.count_by_event(reader, &req).unwrap_err();
    assert!(e.to_string().contains("were not fetched"), "{e}");
}

#[test]
fn footer_tails_that_are_not_parquet() {
    assert!(matches!(footer_range(100, b"12345678"), Err(ColumnarError::NotParquet { .. })));
    assert!(matches!(footer_range(100, b"PAR1"), Err(ColumnarError::NotParquet { .. })));
    // A footer longer than the file.
    let mut tail = 1_000u32.to_le_bytes().to_vec();
    tail.extend_from_slice(b"PAR1");
    assert!(matches!(footer_range(100, &tail), Err(ColumnarError::NotParquet { .. })));
    assert_eq!(footer_range(1_100, &tail).unwrap(), 92..1_100);
    assert_eq!(merge_ranges(vec![5..7, 0..2, 2..3, 6..9, 4..4]), vec![0..3, 5..9]);
}

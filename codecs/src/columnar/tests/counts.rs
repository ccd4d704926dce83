//! Count-only scans ([`count_by_event`]) against counting what [`scan`] delivers, over segments with several row
//! groups of several pages each, and over the ways the `event` column's dictionary can change between batches.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::json;

use super::super::*;
use super::{info, spec, stored};
use crate::event::StoredEvent;

/// Counts per name of the events `scan` delivers for `req`, and its stats.
fn scan_counts(bytes: &Bytes, req: &ScanRequest) -> (Vec<(String, u64)>, ScanStats) {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let stats = scan(bytes.clone(), req, |e| *counts.entry(e.event.event).or_default() += 1).unwrap();
    (counts.into_iter().collect(), stats)
}

/// `count_by_event` equals counting `scan`'s events, with the same stats, and (as a check on `scan_counts` itself)
/// equals counting the events that match the request directly.
fn check(bytes: &Bytes, events: &[StoredEvent], req: &ScanRequest) -> Result<ScanStats, TestCaseError> {
    let (counts, stats) = count_by_event(bytes.clone(), req).unwrap();
    let (expected, scan_stats) = scan_counts(bytes, req);
    prop_assert_eq!(&counts, &expected, "{:?}", req);
    prop_assert_eq!(stats, scan_stats, "{:?}", req);
    let mut direct: BTreeMap<String, u64> = BTreeMap::new();
    for e in events.iter().filter(|e| req.from_ms <= e.event.time_ms && e.event.time_ms < req.to_ms) {
        if req.event.as_ref().is_none_or(|name| &e.event.event == name) {
            *direct.entry(e.event.event.clone()).or_default() += 1;
        }
    }
    prop_assert_eq!(counts, direct.into_iter().collect::<Vec<_>>());
    Ok(stats)
}

/// `n` events over one day (times in whole seconds), named from `names` with a skew (some names fill pages alone,
/// others share them), from a fixed generator seeded with `seed`.
fn day_of_events(seed: u64, n: usize, names: usize) -> Vec<StoredEvent> {
    let mut state = seed | 1;
    let mut next = move |bound: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % bound
    };
    (0..n as u64)
        .map(|seq| {
            let name = (next(names as u64) * next(names as u64)) / names as u64;
            stored(seq, &format!("ev{name}"), next(86_400) as i64 * 1000, json!({"v": seq}))
        })
        .collect()
}

fn any_window() -> impl Strategy<Value = ScanRequest> {
    let window = prop_oneof![
        4 => (-3_600i64..90_000, 0..30_000i64).prop_map(|(from, len)| (from * 1000, (from + len) * 1000)),
        1 => (0..86_400i64).prop_map(|s| (s * 1000, s * 1000 + 1)),
        1 => Just((i64::MIN, i64::MAX)),
        1 => (0..86_400_000i64).prop_map(|t| (t, t)),
    ];
    let event = prop_oneof![2 => Just(None), 3 => (0..14usize).prop_map(|n| Some(format!("ev{n}")))];
    (window, event).prop_map(|((from_ms, to_ms), event)| ScanRequest { from_ms, to_ms, event, properties: None })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    /// Segments of 3,000 to 12,000 events in row groups of 1,500 to 6,000 rows: several row groups of one to three
    /// pages each, pruned by time and by event statistics, with and without a dictionary.
    #[test]
    fn count_by_event_equals_counting_the_scanned_events(
        seed in any::<u64>(),
        n in 3_000..12_000usize,
        names in 1..12usize,
        row_group_rows in 1_500..6_000usize,
        dictionary in any::<bool>(),
        compression in prop::sample::select(vec![Compression::None, Compression::Lz4, Compression::Zstd(1)]),
        requests in prop::collection::vec(any_window(), 12),
    ) {
        let events = day_of_events(seed, n, names);
        let spec = CodecSpec { compression, row_group_rows, dictionary, ..CodecSpec::default() };
        let bytes = Bytes::from(encode(&info(), &events, &spec).unwrap());
        for req in &requests {
            let stats = check(&bytes, &events, req)?;
            prop_assert_eq!(stats.row_groups, n.div_ceil(row_group_rows));
        }
    }
}

/// Pruning is the scan's: a narrow window of one name reads a fraction of the rows, and the counts still match.
#[test]
fn count_by_event_prunes_row_groups_and_pages_like_scan() {
    let events = day_of_events(7, 40_000, 6);
    let bytes = Bytes::from(encode(&info(), &events, &spec(Compression::Lz4, 10_000)).unwrap());
    let req = ScanRequest { from_ms: 3_600_000, to_ms: 7_200_000, event: Some("ev0".into()), properties: None };
    let stats = check(&bytes, &events, &req).unwrap();
    assert_eq!(stats.row_groups, 4);
    assert!(stats.rows_read < 10_000, "read {} rows", stats.rows_read);
    let everything = ScanRequest { from_ms: i64::MIN, to_ms: i64::MAX, event: None, properties: None };
    let (counts, stats) = count_by_event(bytes.clone(), &everything).unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 40_000);
    assert_eq!((stats.row_groups_read, stats.rows_read), (4, 40_000));
    let nothing = ScanRequest { from_ms: 5, to_ms: 5, event: None, properties: None };
    assert_eq!(count_by_event(bytes, &nothing).unwrap(), (vec![], ScanStats { row_groups: 4, ..ScanStats::default() }));
}

/// Names too many for one dictionary page: the writer falls back to plain encoding inside the column chunk, so the
/// reader's dictionary changes between batches of one chunk. Without a dictionary it changes with every batch.
#[test]
fn count_by_event_follows_changing_dictionaries() {
    let long = "x".repeat(100);
    let events: Vec<StoredEvent> = (0..30_000u64)
        .map(|seq| {
            let name = if seq % 3 == 0 { "common".to_owned() } else { format!("{long}{}", seq % 12_000) };
            stored(seq, &name, (seq as i64 * 7_919) % 86_400_000, json!({}))
        })
        .collect();
    for dictionary in [true, false] {
        let spec =
            CodecSpec { compression: Compression::Lz4, row_group_rows: 30_000, dictionary, ..CodecSpec::default() };
        let bytes = Bytes::from(encode(&info(), &events, &spec).unwrap());
        for (from_ms, to_ms, event) in [
            (i64::MIN, i64::MAX, None),
            (10_000_000, 50_000_000, None),
            (0, 86_400_000, Some("common")),
            (0, 86_400_000, Some(&*format!("{long}5"))),
        ] {
            let req = ScanRequest { from_ms, to_ms, event: event.map(str::to_owned), properties: None };
            check(&bytes, &events, &req).unwrap();
        }
    }
}

#[test]
fn count_by_event_of_an_empty_segment_and_of_foreign_bytes() {
    let bytes = Bytes::from(encode(&info(), &[], &CodecSpec::default()).unwrap());
    let req = ScanRequest { from_ms: i64::MIN, to_ms: i64::MAX, event: None, properties: None };
    assert_eq!(count_by_event(bytes, &req).unwrap(), (vec![], ScanStats::default()));
    assert!(matches!(count_by_event(Bytes::from_static(b"not parquet"), &req), Err(ColumnarError::NotParquet { .. })));
}

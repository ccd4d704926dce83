//! Property tests of the columnar codec: round trips for every codec, recompression, and scans against the
//! straightforward filter of the decoded events.

use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use super::super::*;
use super::{exact, info};
use crate::event::StoredEvent;
use crate::testing::segment_events;

fn any_compression() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        Just(Compression::Zstd(1)),
        Just(Compression::Zstd(19))
    ]
}

fn any_spec() -> impl Strategy<Value = CodecSpec> {
    // Small column caps too: whatever is not shredded must come back from `_props`.
    (any_compression(), 1..40usize, any::<bool>(), prop_oneof![0..4usize, Just(DEFAULT_MAX_PROPERTY_COLUMNS)]).prop_map(
        |(compression, row_group_rows, dictionary, max_property_columns)| CodecSpec {
            compression,
            row_group_rows,
            dictionary,
            max_property_columns,
        },
    )
}

/// A scan request over the times and names [`segment_events`] favours, with a property subset drawn from its keys,
/// keys that only random properties may have, and a key no event has.
fn any_request() -> impl Strategy<Value = ScanRequest> {
    let window = prop_oneof![
        3 => (-5..1005i64, 0..700i64).prop_map(|(from, len)| (from, from.saturating_add(len))),
        1 => (any::<i64>(), any::<i64>()),
        1 => Just((i64::MIN, i64::MAX)),
    ];
    let event = prop_oneof![2 => Just(None), 3 => prop::sample::select(vec!["a", "b", "ab", "zz"]).prop_map(|n| Some(n.to_owned()))];
    let keys = ["s", "i", "f", "b", "j", "n", "mixed", "", "absent"];
    let properties = prop_oneof![
        1 => Just(None),
        3 => prop::sample::subsequence(keys.to_vec(), 0..=keys.len())
            .prop_map(|k| Some(k.into_iter().map(str::to_owned).collect())),
    ];
    (window, event, properties).prop_map(|((from_ms, to_ms), event, properties)| ScanRequest {
        from_ms,
        to_ms,
        event,
        properties,
    })
}

/// The generated segments do exercise shredding: columns of every kind, and values spilling from them.
#[test]
fn generated_segments_have_columns_of_every_kind_and_spills() {
    let mut runner = TestRunner::deterministic();
    let strategy = segment_events(48);
    let (mut kinds, mut spilling_columns, mut segments_with_columns) = (BTreeSet::new(), 0, 0);
    for _ in 0..64 {
        let events = strategy.new_tree(&mut runner).unwrap().current();
        let meta = read_meta(&encode(&info(), &events, &CodecSpec::default()).unwrap()).unwrap();
        kinds.extend(meta.columns.iter().map(|c| c.kind));
        spilling_columns += meta.columns.iter().filter(|c| meta.props_keys.contains(&c.key)).count();
        segments_with_columns += usize::from(!meta.columns.is_empty());
    }
    assert_eq!(kinds.len(), 5, "kinds seen: {kinds:?}");
    assert!(spilling_columns >= 32, "only {spilling_columns} shredded columns had spilled values");
    assert!(segments_with_columns >= 48, "only {segments_with_columns} of 64 segments had shredded columns");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_codec_round_trips_exactly(events in segment_events(48), row_group_rows in 1..64usize) {
        let expected = exact(&events);
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd(1), Compression::Zstd(19)] {
            for dictionary in [true, false] {
                let spec = CodecSpec { compression, row_group_rows, dictionary, ..CodecSpec::default() };
                let bytes = encode(&info(), &events, &spec).unwrap();
                let (decoded_info, decoded) = decode(&bytes).unwrap();
                prop_assert_eq!(decoded_info, info());
                prop_assert_eq!(exact(&decoded), expected.clone(), "{}", compression);
                let meta = read_meta(&bytes).unwrap();
                prop_assert_eq!(meta.rows, events.len() as u64);
                prop_assert_eq!(&meta.spec, &spec);
                prop_assert_eq!(meta.time.map(|t| t.min_ms), events.iter().map(|e| e.event.time_ms).min());
                prop_assert_eq!(meta.time.map(|t| t.max_ms), events.iter().map(|e| e.event.time_ms).max());
            }
        }
    }

    #[test]
    fn recompress_preserves_content(events in segment_events(48), from in any_spec(), to in any_spec()) {
        let original = encode(&info(), &events, &from).unwrap();
        let rewritten = recompress(&original, &to).unwrap();
        let (before_info, before) = decode(&original).unwrap();
        let (after_info, after) = decode(&rewritten).unwrap();
        prop_assert_eq!(after_info, before_info);
        let debug = |events: &[StoredEvent]| events.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>();
        prop_assert_eq!(debug(&after), debug(&before));
        let meta = read_meta(&rewritten).unwrap();
        prop_assert_eq!(&meta.spec, &to);
        prop_assert_eq!(meta.row_groups, events.len().div_ceil(to.row_group_rows));
    }

    #[test]
    fn scan_equals_filtering_the_decoded_events(
        events in segment_events(48),
        spec in any_spec(),
        req in any_request(),
    ) {
        let bytes = encode(&info(), &events, &spec).unwrap();
        let mut got = Vec::new();
        let stats = scan(Bytes::from(bytes.clone()), &req, |e| got.push(e)).unwrap();

        let (_, decoded) = decode(&bytes).unwrap();
        let expected: Vec<StoredEvent> = decoded
            .into_iter()
            .filter(|e| req.from_ms <= e.event.time_ms && e.event.time_ms < req.to_ms)
            .filter(|e| req.event.as_ref().is_none_or(|name| &e.event.event == name))
            .map(|mut e| {
                if let Some(keys) = &req.properties {
                    e.event.properties.retain(|k, _| keys.contains(k));
                }
                e
            })
            .collect();
        prop_assert_eq!(exact(&got), exact(&expected));
        prop_assert_eq!(stats.row_groups, events.len().div_ceil(spec.row_group_rows));
        prop_assert!(stats.row_groups_read <= stats.row_groups);
        prop_assert!(stats.rows_read >= got.len() as u64 && stats.rows_read <= events.len() as u64);
    }

    #[test]
    fn count_by_event_equals_counting_the_scan(
        events in segment_events(48),
        spec in any_spec(),
        req in any_request(),
    ) {
        let bytes = Bytes::from(encode(&info(), &events, &spec).unwrap());
        let mut expected: std::collections::BTreeMap<String, u64> = Default::default();
        let scan_stats = scan(bytes.clone(), &req, |e| *expected.entry(e.event.event).or_default() += 1).unwrap();
        let (counts, stats) = count_by_event(bytes, &req).unwrap();
        prop_assert_eq!(counts, expected.into_iter().collect::<Vec<_>>());
        prop_assert_eq!(stats, scan_stats);
    }
}

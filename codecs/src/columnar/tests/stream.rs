//! The streaming path against the in-memory one: a k-way merge of sorted inputs (columnar segments read row group
//! by row group, sorted runs of unsorted events) with dedup, written by [`ColumnarWriter`], decodes to exactly the
//! events [`crate::dedup_split`] keeps and removes, whatever the inputs' shredding, row groups and duplicates.

use bytes::Bytes;
use proptest::prelude::*;

use super::super::*;
use super::{exact, info, spec};
use crate::event::StoredEvent;
use crate::testing::segment_events;

/// Several inputs of one day: `events` cut into `parts`, plus copies of some events (other seq, maybe other
/// properties) in other inputs: re-sends the merge must deduplicate across inputs.
fn inputs() -> impl Strategy<Value = Vec<Vec<StoredEvent>>> {
    (
        segment_events(40),
        1..5usize,
        prop::collection::vec((any::<prop::sample::Index>(), 0..5usize, any::<bool>()), 0..12),
    )
        .prop_map(|(events, parts, copies)| {
            let mut inputs: Vec<Vec<StoredEvent>> = vec![Vec::new(); parts];
            let mut next_seq = events.iter().map(|e| e.seq).max().unwrap_or(0) + 1;
            for (i, e) in events.iter().enumerate() {
                inputs[i % parts].push(e.clone());
            }
            if !events.is_empty() {
                for (pick, to, change) in copies {
                    let mut copy = pick.get(&events).clone();
                    copy.seq = next_seq;
                    next_seq += 1;
                    if change {
                        copy.event.properties.insert("resent".into(), serde_json::json!(copy.seq));
                    }
                    inputs[to % parts].push(copy);
                }
            }
            inputs
        })
}

/// Writes the merge of `sources` (surveyed by `survey`) through the streaming writer: the kept and the removed.
fn stream_merge<S: EventSource<ColumnarError>>(
    sources: &mut [S],
    survey: &ShredSurvey,
    spec: &CodecSpec,
) -> (Vec<u8>, Vec<u8>, MergeStats) {
    let columns = survey.plan(spec.max_property_columns);
    let new = |columns| ColumnarWriter::new(Vec::new(), &info(), None, columns, spec, SortOrder::EventTime).unwrap();
    let (mut kept, mut removed) = (new(columns.clone()), new(columns));
    let stats = merge(sources, Some("proj"), usize::MAX, &mut |e| kept.push(&e), &mut |e| removed.push(&e))
        .map_err(|e| format!("{e:?}"))
        .unwrap();
    (kept.finish().unwrap().0, removed.finish().unwrap().0, stats)
}

fn check_against_memory(
    all: Vec<StoredEvent>,
    kept: &[u8],
    removed: &[u8],
    stats: MergeStats,
    survey: &ShredSurvey,
    spec: &CodecSpec,
) -> Result<(), TestCaseError> {
    let (want_kept, want_removed) = crate::dedup_split("proj", all);
    let (_, got_kept) = decode(kept).unwrap();
    let (_, got_removed) = decode(removed).unwrap();
    prop_assert_eq!(exact(&got_kept), exact(&want_kept));
    prop_assert_eq!(exact(&got_removed), exact(&want_removed));
    prop_assert_eq!((stats.kept, stats.removed), (want_kept.len() as u64, want_removed.len() as u64));
    // Sorted by (event, time, seq), as the footer says.
    let key = |e: &StoredEvent| (e.event.event.clone(), e.event.time_ms, e.seq);
    prop_assert!(got_kept.windows(2).all(|w| key(&w[0]) <= key(&w[1])));
    prop_assert!(got_removed.windows(2).all(|w| key(&w[0]) <= key(&w[1])));
    let meta = read_meta(kept).unwrap();
    prop_assert_eq!(meta.sort, SortOrder::EventTime);
    prop_assert_eq!(meta.columns, survey.plan(spec.max_property_columns));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Columnar inputs (each shredded its own way, several row groups) read row group by row group.
    #[test]
    fn merging_columnar_inputs_equals_the_in_memory_dedup(
        inputs in inputs(),
        rg in 1..7usize,
        batch_rows in 1..9usize,
        max_columns in prop_oneof![0..3usize, Just(DEFAULT_MAX_PROPERTY_COLUMNS)],
    ) {
        let out_spec = CodecSpec { max_property_columns: max_columns, ..spec(Compression::Lz4, rg + 1) };
        let files: Vec<Bytes> = inputs.iter().map(|events| {
            Bytes::from(encode(&info(), events, &spec(Compression::Zstd(1), rg)).unwrap())
        }).collect();
        let mut sources: Vec<SegmentEvents<Bytes>> =
            files.iter().map(|b| SegmentEvents::new(b.clone(), batch_rows).unwrap()).collect();
        let mut survey = ShredSurvey::new();
        for s in &sources {
            prop_assert!(s.input().row_groups() == s.input().rows().div_ceil(rg as u64) as usize);
            survey.merge(&s.input().survey());
        }
        prop_assert_eq!(survey.rows(), inputs.iter().map(|i| i.len() as u64).sum::<u64>());
        let (kept, removed, stats) = stream_merge(&mut sources, &survey, &out_spec);
        check_against_memory(inputs.concat(), &kept, &removed, stats, &survey, &out_spec)?;
    }

    /// Unsorted inputs sorted in memory ([`SortBuffer`]), as a re-encode of row segments does, its runs merged.
    #[test]
    fn merging_sorted_runs_equals_the_in_memory_dedup(inputs in inputs(), raw in any::<bool>()) {
        let mut survey = ShredSurvey::new();
        let mut runs: Vec<SortedRun> = inputs.iter().map(|events| {
            let mut buffer = SortBuffer::new();
            for e in events {
                if raw {
                    let json = serde_json::to_string(&e.event.properties).unwrap();
                    let row = crate::rows::RawRow {
                        seq: e.seq,
                        time_ms: e.event.time_ms,
                        event: &e.event.event,
                        distinct_id: &e.event.distinct_id,
                        insert_id: &e.event.insert_id,
                        properties_json: &json,
                    };
                    buffer.push_raw(&row).unwrap();
                } else {
                    buffer.push_event(e);
                }
            }
            let run = buffer.sort();
            survey.merge(run.survey());
            run
        }).collect();
        // The survey of the runs is exact: the in-memory encoder's own decision for the same rows.
        let all = inputs.concat();
        let out_spec = spec(Compression::Lz4, 5);
        prop_assert_eq!(survey.plan(out_spec.max_property_columns), shred::plan(&all, out_spec.max_property_columns));
        let (kept, removed, stats) = stream_merge(&mut runs, &survey, &out_spec);
        check_against_memory(all, &kept, &removed, stats, &survey, &out_spec)?;
    }
}

#[test]
fn the_writer_refuses_rows_out_of_order_and_a_run_past_its_bound_fails_the_merge() {
    let e = |seq, name: &str, time| super::stored(seq, name, time, serde_json::json!({}));
    let mut w = ColumnarWriter::new(Vec::new(), &info(), None, Vec::new(), &CodecSpec::default(), SortOrder::EventTime)
        .unwrap();
    w.push(&e(5, "b", 10)).unwrap();
    w.push(&e(6, "b", 10)).unwrap();
    let err = w.push(&e(1, "a", 99)).unwrap_err().to_string();
    assert!(err.contains("out of event,time order"), "{err}");

    let mut buffer = SortBuffer::new();
    for seq in 0..5 {
        buffer.push_event(&e(seq, "a", 7));
    }
    let mut runs = [buffer.sort()];
    let r = merge(&mut runs, Some("p"), 3, &mut |_: StoredEvent| Ok::<(), ColumnarError>(()), &mut |_| Ok(()));
    assert!(matches!(r, Err(MergeError::Merge(ColumnarError::RunTooLarge { events: 4, .. }))), "{r:?}");
}

//! Encoding column chunks on several threads ([`ColumnarWriter::with_threads`]) writes the same bytes as on the
//! caller's thread, and as Parquet's own `ArrowWriter` (which [`recompress`] still writes through), whatever the
//! events, row group size, batch size, compression and number of threads.

use bytes::Bytes;
use proptest::prelude::*;

use super::super::*;
use super::{info, spec};
use crate::event::StoredEvent;
use crate::testing::segment_events;

/// `events` pushed in order through a writer with `threads` threads.
fn pushed(events: &[StoredEvent], spec: &CodecSpec, threads: usize) -> Vec<u8> {
    let columns = shred::plan(events, spec.max_property_columns);
    let mut w =
        ColumnarWriter::with_threads(Vec::new(), &info(), None, columns, spec, SortOrder::EventTime, threads).unwrap();
    assert_eq!(w.threads(), threads.max(1));
    for i in sort_permutation(events, SortOrder::EventTime) {
        w.push(&events[i]).unwrap();
    }
    w.finish().unwrap().0
}

/// The record batches of `bytes`, `batch_rows` at a time per row group, copied into a segment of `spec` (as a
/// recompression does) by a writer with `threads` threads.
fn copied(bytes: &Bytes, spec: &CodecSpec, batch_rows: usize, threads: usize) -> Vec<u8> {
    let input = ColumnarInput::open(bytes).unwrap();
    let columns = input.columns().to_vec();
    let mut w =
        ColumnarWriter::with_threads(Vec::new(), input.info(), None, columns, spec, input.sort(), threads).unwrap();
    for g in 0..input.row_groups() {
        let mut batches = input.row_group_batches(g, bytes.clone(), batch_rows).unwrap();
        let keys = batches.props_keys();
        while let Some(batch) = batches.next_batch().unwrap() {
            w.write_batch(&batch, &keys).unwrap();
        }
    }
    w.finish().unwrap().0
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![Just(Compression::Lz4), Just(Compression::Zstd(1)), Just(Compression::None)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Events pushed one by one (a rewrite's merge): same bytes on 1 thread or several.
    #[test]
    fn pushed_events_encode_to_the_same_bytes_on_any_number_of_threads(
        events in segment_events(300),
        rg in 1..70usize,
        threads in 2..6usize,
        compression in compression(),
        max_columns in prop_oneof![0..3usize, Just(DEFAULT_MAX_PROPERTY_COLUMNS)],
    ) {
        let spec = CodecSpec { max_property_columns: max_columns, ..spec(compression, rg) };
        let one = pushed(&events, &spec, 1);
        prop_assert_eq!(&pushed(&events, &spec, threads), &one);
        // And the segment is what `encode` (the in-memory writer) makes of the events.
        prop_assert_eq!(&encode(&info(), &events, &spec).unwrap(), &one);
    }

    /// Record batches copied (a recompression), many per row group: same bytes on 1 thread or several; with one
    /// batch of the whole input, the same bytes as `recompress`, which writes through Parquet's `ArrowWriter`.
    #[test]
    fn copied_batches_encode_to_the_same_bytes_on_any_number_of_threads_and_as_arrow_writer(
        events in segment_events(300),
        rg in 1..70usize,
        batch_rows in 1..40usize,
        threads in 2..6usize,
        compression in compression(),
    ) {
        let input = Bytes::from(encode(&info(), &events, &spec(Compression::Lz4, 1024)).unwrap());
        let out = spec(compression, rg);
        let one = copied(&input, &out, batch_rows, 1);
        prop_assert_eq!(&copied(&input, &out, batch_rows, threads), &one);
        let (_, back) = decode(&one).unwrap();
        prop_assert_eq!(super::exact(&back), super::exact(&events));
        let reference = recompress(&input, &out).unwrap();
        prop_assert_eq!(&copied(&input, &out, 8192, threads), &reference);
        prop_assert_eq!(&copied(&input, &out, 8192, 1), &reference);
    }
}

/// A writer dropped half way (a rewrite rolled back) stops its threads; nothing hangs or leaks.
#[test]
fn a_writer_dropped_mid_segment_stops_its_threads() {
    let events: Vec<StoredEvent> =
        (0..5000).map(|i| super::stored(i, "e", i as i64, serde_json::json!({"k": i, "s": "x".repeat(40)}))).collect();
    for _ in 0..20 {
        let spec = spec(Compression::Zstd(3), 1000);
        let columns = shred::plan(&events, spec.max_property_columns);
        let mut w =
            ColumnarWriter::with_threads(Vec::new(), &info(), None, columns, &spec, SortOrder::EventTime, 3).unwrap();
        for e in &events[..2500] {
            w.push(e).unwrap();
        }
        drop(w);
    }
}

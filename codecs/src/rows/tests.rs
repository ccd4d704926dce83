use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::json;

use super::*;
use crate::testing::any_event;

fn event(time_ms: i64, name: &str) -> Event {
    Event {
        event: name.to_owned(),
        time_ms,
        distinct_id: "u1".to_owned(),
        insert_id: format!("{name}-{time_ms}"),
        properties: json!({"k": [1, "two", null], "f": 0.5}).as_object().unwrap().clone(),
    }
}

/// Frames for `parts` with consecutive sequences from `base_seq`: the bytes, each frame's end offset, and the
/// stored events a reader must get back.
fn write_parts(parts: &[Vec<Event>], base_seq: u64) -> (Vec<u8>, Vec<usize>, Vec<StoredEvent>) {
    let (mut bytes, mut ends, mut expected) = (Vec::new(), Vec::new(), Vec::new());
    let mut seq = base_seq;
    for part in parts {
        let body = FrameBody::encode(part);
        let before = bytes.len();
        body.write_frame(seq, &mut bytes);
        assert_eq!(bytes.len() - before, body.frame_len());
        ends.push(bytes.len());
        for event in part {
            expected.push(StoredEvent { seq, event: event.clone() });
            seq = seq.wrapping_add(1);
        }
    }
    (bytes, ends, expected)
}

/// What `valid_prefix` must report for the first `frames` frames, computed from the events, not the bytes.
fn expected_prefix(parts: &[Vec<Event>], ends: &[usize], base_seq: u64, frames: usize) -> ValidPrefix {
    let events: Vec<&Event> = parts[..frames].iter().flatten().collect();
    let rows = events.len() as u64;
    ValidPrefix {
        len: if frames == 0 { 0 } else { ends[frames - 1] as u64 },
        frames: frames as u64,
        rows,
        time: events
            .iter()
            .map(|e| e.time_ms)
            .min()
            .zip(events.iter().map(|e| e.time_ms).max())
            .map(|(min_ms, max_ms)| TimeRange { min_ms, max_ms }),
        max_seq: (rows > 0).then(|| base_seq + rows - 1),
    }
}

fn offset_of(error: &RowsError) -> u64 {
    match error {
        RowsError::Truncated { offset } | RowsError::Checksum { offset, .. } | RowsError::Corrupt { offset, .. } => {
            *offset
        }
        other => panic!("not a frame error: {other:?}"),
    }
}

/// A frame with a valid checksum around `rows` (uncompressed row bytes) as given.
fn frame_with_rows(base_seq: u64, count: u32, min: i64, max: i64, rows: &[u8]) -> Vec<u8> {
    let body =
        FrameBody { count, min_time_ms: min, max_time_ms: max, compressed: lz4_flex::compress_prepend_size(rows) };
    let mut out = Vec::new();
    body.write_frame(base_seq, &mut out);
    out
}

// --- segment header ---

fn header() -> SegmentHeader {
    SegmentHeader { segment_id: "01J0000000000000000000000".into(), project: "shop ✓".into(), day: 19_700 }
}

#[test]
fn header_layout_and_round_trip() {
    let encoded = header().encode();
    let json = serde_json::to_vec(&header()).unwrap();
    assert_eq!(&encoded[..8], FILE_MAGIC);
    assert_eq!(&encoded[8..10], &1u16.to_le_bytes());
    assert_eq!(&encoded[10..14], &(json.len() as u32).to_le_bytes());
    assert_eq!(&encoded[14..14 + json.len()], &json[..]);
    let crc = crc32c::crc32c(&encoded[..14 + json.len()]);
    assert_eq!(&encoded[14 + json.len()..], &crc.to_le_bytes());

    let mut file = encoded.clone();
    file.extend_from_slice(b"frames follow");
    assert_eq!(SegmentHeader::decode(&file).unwrap(), (header(), encoded.len()));
}

#[test]
fn header_with_bad_magic() {
    let mut encoded = header().encode();
    encoded[0] = b'X';
    assert!(matches!(SegmentHeader::decode(&encoded), Err(RowsError::BadMagic)));
    assert!(matches!(SegmentHeader::decode(b"PAR1"), Err(RowsError::BadMagic)));
}

#[test]
fn header_with_another_version() {
    let mut encoded = header().encode();
    encoded[8..10].copy_from_slice(&2u16.to_le_bytes());
    assert!(matches!(SegmentHeader::decode(&encoded), Err(RowsError::UnsupportedVersion(2))));
}

#[test]
fn header_cut_short_is_bad_at_every_length() {
    let encoded = header().encode();
    for len in 0..encoded.len() {
        match SegmentHeader::decode(&encoded[..len]) {
            Err(RowsError::BadHeader(message)) => {
                assert!(message.contains("truncated"), "{len}: {message}")
            }
            other => panic!("{len}: {other:?}"),
        }
    }
}

#[test]
fn header_with_any_byte_flipped_is_rejected() {
    let encoded = header().encode();
    for i in 0..encoded.len() {
        let mut damaged = encoded.clone();
        damaged[i] ^= 0x40;
        assert!(SegmentHeader::decode(&damaged).is_err(), "flip at {i} accepted");
    }
    let mut damaged = encoded.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let Err(RowsError::BadHeader(message)) = SegmentHeader::decode(&damaged) else { panic!("expected BadHeader") };
    assert!(message.contains("checksum"), "{message}");
}

#[test]
fn header_with_valid_checksum_but_bad_json() {
    let json = br#"{"segment_id": "s"}"#;
    let mut bytes = FILE_MAGIC.to_vec();
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(json);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let Err(RowsError::BadHeader(message)) = SegmentHeader::decode(&bytes) else { panic!("expected BadHeader") };
    assert!(message.contains("invalid header JSON"), "{message}");
}

// --- frames ---

#[test]
fn frame_layout_matches_the_documented_format() {
    let events = [event(1_700_000_000_500, "b"), event(1_700_000_000_100, "a")];
    let body = FrameBody::encode(&events);
    assert_eq!((body.count, body.min_time_ms, body.max_time_ms), (2, 1_700_000_000_100, 1_700_000_000_500));
    let mut frame = Vec::new();
    body.write_frame(77, &mut frame);

    let u32_le = |at: usize| u32::from_le_bytes(frame[at..at + 4].try_into().unwrap());
    let i64_le = |at: usize| i64::from_le_bytes(frame[at..at + 8].try_into().unwrap());
    assert_eq!(u32_le(0) as usize, frame.len() - 8);
    assert_eq!(u32_le(4), crc32c::crc32c(&frame[8..]));
    assert_eq!(u64::from_le_bytes(frame[8..16].try_into().unwrap()), 77);
    assert_eq!(u32_le(16), 2);
    assert_eq!(i64_le(20), 1_700_000_000_100);
    assert_eq!(i64_le(28), 1_700_000_000_500);

    let mut expected_rows = Vec::new();
    for e in &events {
        expected_rows.extend_from_slice(&e.time_ms.to_le_bytes());
        let properties = serde_json::to_vec(&e.properties).unwrap();
        for s in [e.event.as_bytes(), e.distinct_id.as_bytes(), e.insert_id.as_bytes(), &properties] {
            expected_rows.extend_from_slice(&(s.len() as u32).to_le_bytes());
            expected_rows.extend_from_slice(s);
        }
    }
    assert_eq!(lz4_flex::decompress_size_prepended(&frame[36..]).unwrap(), expected_rows);
}

#[test]
fn frames_decode_with_their_sequences() {
    let parts = vec![vec![event(10, "a"), event(12, "b")], vec![event(11, "c")]];
    let (bytes, _, expected) = write_parts(&parts, 100);
    let decoded = decode_frames(&bytes, 14).unwrap();
    assert_eq!(decoded.iter().map(|e| e.seq).collect::<Vec<_>>(), [100, 101, 102]);
    assert_eq!(decoded, expected);
    assert_eq!(
        valid_prefix(&bytes),
        ValidPrefix {
            len: bytes.len() as u64,
            frames: 2,
            rows: 3,
            time: Some(TimeRange { min_ms: 10, max_ms: 12 }),
            max_seq: Some(102)
        }
    );
}

#[test]
fn empty_region() {
    assert_eq!(valid_prefix(&[]), ValidPrefix::default());
    assert_eq!(decode_frames(&[], 0).unwrap(), vec![]);
}

#[test]
fn a_frame_of_no_events_is_well_formed() {
    let (bytes, _, _) = write_parts(&[vec![], vec![event(5, "a")]], 7);
    assert_eq!(decode_frames(&bytes, 0).unwrap(), vec![StoredEvent { seq: 7, event: event(5, "a") }]);
    let prefix = valid_prefix(&bytes);
    assert_eq!(
        (prefix.frames, prefix.rows, prefix.max_seq, prefix.time),
        (2, 1, Some(7), Some(TimeRange { min_ms: 5, max_ms: 5 }))
    );
}

#[test]
fn highly_compressible_rows_round_trip() {
    // lz4 compresses this close to its maximum ratio; the decoder's expansion bound must allow it.
    let mut e = event(1, "a");
    e.properties.insert("blob".into(), json!("a".repeat(4 << 20)));
    let body = FrameBody::encode(std::slice::from_ref(&e));
    assert!(body.compressed.len() * 200 < 4 << 20, "compressed to {}", body.compressed.len());
    let mut bytes = Vec::new();
    body.write_frame(0, &mut bytes);
    assert_eq!(decode_frames(&bytes, 0).unwrap(), vec![StoredEvent { seq: 0, event: e }]);
}

#[test]
fn errors_carry_the_file_offset_of_the_frame() {
    let parts = vec![vec![event(1, "a")], vec![event(2, "b")]];
    let (mut bytes, ends, _) = write_parts(&parts, 0);
    let second = ends[0];

    let error = decode_frames(&bytes[..bytes.len() - 1], 1000).unwrap_err();
    assert!(matches!(error, RowsError::Truncated { offset } if offset == 1000 + second as u64), "{error:?}");
    let error = decode_frames(&bytes[..second + 3], 1000).unwrap_err();
    assert!(matches!(error, RowsError::Truncated { offset } if offset == 1000 + second as u64), "{error:?}");

    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let error = decode_frames(&bytes, 1000).unwrap_err();
    let RowsError::Checksum { offset, stored, computed } = error else { panic!("{error:?}") };
    assert_eq!(offset, 1000 + second as u64);
    assert_ne!(stored, computed);
    assert!(RowsError::Checksum { offset, stored, computed }.to_string().contains(&format!("offset {offset}")));
}

#[test]
fn frame_shorter_than_its_header_is_corrupt() {
    let meta = [0u8; 10];
    let mut bytes = (meta.len() as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(&crc32c::crc32c(&meta).to_le_bytes());
    bytes.extend_from_slice(&meta);
    assert!(matches!(decode_frames(&bytes, 0), Err(RowsError::Corrupt { offset: 0, .. })));
    assert_eq!(valid_prefix(&bytes), ValidPrefix::default());
}

#[test]
fn checksum_valid_frames_with_bad_bodies_are_corrupt() {
    let mut row = Vec::new();
    row.extend_from_slice(&5i64.to_le_bytes());
    for s in [&b"e"[..], b"d", b"i", b"{}"] {
        row.extend_from_slice(&(s.len() as u32).to_le_bytes());
        row.extend_from_slice(s);
    }
    let corrupt_message = |frame: &[u8]| match decode_frames(frame, 0) {
        Err(RowsError::Corrupt { offset: 0, message }) => {
            assert_eq!(valid_prefix(frame), ValidPrefix::default(), "{message}");
            message
        }
        other => panic!("expected Corrupt, got {other:?}"),
    };
    // The control: this frame is fine.
    assert_eq!(decode_frames(&frame_with_rows(0, 1, 5, 5, &row), 0).unwrap().len(), 1);

    assert!(corrupt_message(&frame_with_rows(0, 2, 5, 5, &row)).contains("row 1: cut short"));
    assert!(corrupt_message(&frame_with_rows(0, 1, 6, 9, &row)).contains("outside the frame's range 6..=9"));
    assert!(corrupt_message(&frame_with_rows(0, 0, 5, 5, &row)).contains("bytes after the last of 0 rows"));
    assert!(corrupt_message(&frame_with_rows(u64::MAX, 2, 5, 5, &row)).contains("overflows"));
    let mut bad_json = row.clone();
    let last = bad_json.len() - 1;
    bad_json[last] = b']';
    assert!(corrupt_message(&frame_with_rows(0, 1, 5, 5, &bad_json)).contains("properties are not a JSON object"));
    let mut bad_utf8 = row.clone();
    bad_utf8[12] = 0xff; // the event name
    assert!(corrupt_message(&frame_with_rows(0, 1, 5, 5, &bad_utf8)).contains("event is not UTF-8"));

    let mut raw = FrameBody { count: 1, min_time_ms: 5, max_time_ms: 5, compressed: vec![1, 2] };
    let mut frame = Vec::new();
    raw.write_frame(0, &mut frame);
    assert!(corrupt_message(&frame).contains("shorter than its 4-byte size prefix"));
    raw.compressed = [u32::MAX.to_le_bytes().as_slice(), &[0x10, b'x']].concat();
    frame.clear();
    raw.write_frame(0, &mut frame);
    assert!(corrupt_message(&frame).contains("claims 4294967295 uncompressed bytes"));
    raw.compressed = [100u32.to_le_bytes().as_slice(), &[0x10, b'x']].concat();
    frame.clear();
    raw.write_frame(0, &mut frame);
    assert!(corrupt_message(&frame).contains("decompress"));
}

#[test]
fn last_sequence_may_be_u64_max() {
    let parts = vec![vec![event(1, "a"), event(2, "b")]];
    let (bytes, _, _) = write_parts(&parts, u64::MAX - 1);
    assert_eq!(valid_prefix(&bytes).max_seq, Some(u64::MAX));
}

#[test]
fn skipped_frames_are_not_decompressed() {
    // The second frame has a valid checksum but a body that does not decompress: only reading it fails.
    let garbage = FrameBody { count: 1, min_time_ms: 50, max_time_ms: 60, compressed: vec![9, 0, 0, 0, 0xff] };
    let (mut bytes, _, _) = write_parts(&[vec![event(10, "a")]], 0);
    garbage.write_frame(1, &mut bytes);
    bytes.extend_from_slice(&write_parts(&[vec![event(70, "c")]], 2).0);

    let mut seen = Vec::new();
    let mut asked = Vec::new();
    for_each_event(
        &bytes,
        0,
        |min, max| {
            asked.push((min, max));
            !(min <= 60 && max >= 50)
        },
        |e| seen.push(e.seq),
    )
    .unwrap();
    assert_eq!(asked, [(10, 10), (50, 60), (70, 70)]);
    assert_eq!(seen, [0, 2]);
    assert!(matches!(for_each_event(&bytes, 0, |_, _| true, |_| ()), Err(RowsError::Corrupt { .. })));
}

#[test]
fn skipped_frames_still_have_their_checksum_verified() {
    let (mut bytes, _, _) = write_parts(&[vec![event(10, "a")]], 0);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert!(matches!(for_each_event(&bytes, 0, |_, _| false, |_| ()), Err(RowsError::Checksum { .. })));
}

/// Frames of one to three events each; events are kept small so that many damage points run quickly.
fn parts() -> impl Strategy<Value = Vec<Vec<Event>>> {
    prop::collection::vec(prop::collection::vec(any_event(), 1..4), 1..5)
}

#[derive(Debug, Clone)]
enum Damage {
    Truncate(Index),
    Flip(Index, u8),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn events_round_trip_through_frames(
        parts in parts(),
        base_seq in 0..=u64::MAX - 64,
        base_offset in 0u64..1 << 40,
        window in (any::<i64>(), any::<i64>()),
    ) {
        let (bytes, ends, expected) = write_parts(&parts, base_seq);
        prop_assert_eq!(&decode_frames(&bytes, base_offset).unwrap(), &expected);
        prop_assert_eq!(valid_prefix(&bytes), expected_prefix(&parts, &ends, base_seq, parts.len()));

        // Skipping by time keeps exactly the frames whose range meets the window.
        let (from, to) = (window.0.min(window.1), window.0.max(window.1));
        let mut kept = Vec::new();
        for_each_event(&bytes, base_offset, |min, max| min <= to && max >= from, |e| kept.push(e)).unwrap();
        let mut want = Vec::new();
        let mut rest = expected.as_slice();
        for part in &parts {
            let (frame, tail) = rest.split_at(part.len());
            rest = tail;
            let min = part.iter().map(|e| e.time_ms).min().unwrap();
            let max = part.iter().map(|e| e.time_ms).max().unwrap();
            if min <= to && max >= from {
                want.extend_from_slice(frame);
            }
        }
        prop_assert_eq!(kept, want);
    }

    #[test]
    fn valid_prefix_stops_at_the_first_damaged_frame(
        parts in parts(),
        base_seq in 0..=u64::MAX - 64,
        damage in prop_oneof![
            any::<Index>().prop_map(Damage::Truncate),
            (any::<Index>(), 1..=255u8).prop_map(|(at, xor)| Damage::Flip(at, xor)),
        ],
    ) {
        let (mut bytes, ends, expected) = write_parts(&parts, base_seq);
        // `at` is the first damaged byte; a truncation at a frame boundary damages no frame.
        let at = match damage {
            Damage::Truncate(at) => {
                let at = at.index(bytes.len() + 1);
                bytes.truncate(at);
                at
            }
            Damage::Flip(at, xor) => {
                let at = at.index(bytes.len());
                bytes[at] ^= xor;
                at
            }
        };
        let intact = ends.iter().take_while(|end| **end <= at).count();
        let prefix = valid_prefix(&bytes);
        prop_assert_eq!(prefix, expected_prefix(&parts, &ends, base_seq, intact));

        let rows = prefix.rows as usize;
        prop_assert_eq!(&decode_frames(&bytes[..prefix.len as usize], 0).unwrap(), &expected[..rows]);
        let damaged_frame_start = if intact == 0 { 0 } else { ends[intact - 1] };
        match decode_frames(&bytes, 3) {
            Ok(events) => {
                prop_assert_eq!(bytes.len(), damaged_frame_start, "only a cut at a frame boundary decodes");
                prop_assert_eq!(&events, &expected[..rows]);
            }
            Err(error) => prop_assert_eq!(offset_of(&error), 3 + damaged_frame_start as u64),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let prefix = valid_prefix(&bytes);
        let decoded = decode_frames(&bytes[..prefix.len as usize], 0).unwrap();
        prop_assert_eq!(decoded.len() as u64, prefix.rows);
        let _ = decode_frames(&bytes, 0);
        let _ = SegmentHeader::decode(&bytes);
    }

    /// Frames whose checksum is right but whose body is anything: the decoder must reject or accept without
    /// panicking, and `valid_prefix` must agree with `decode_frames`.
    #[test]
    fn checksum_valid_garbage_bodies_never_panic(
        count in prop_oneof![0u32..4, any::<u32>()],
        size in prop_oneof![0u32..200, any::<u32>()],
        block in prop::collection::vec(any::<u8>(), 0..256),
        base_seq in any::<u64>(),
        min in any::<i64>(),
        max in any::<i64>(),
    ) {
        let compressed = [size.to_le_bytes().as_slice(), &block].concat();
        let mut bytes = Vec::new();
        FrameBody { count, min_time_ms: min, max_time_ms: max, compressed }.write_frame(base_seq, &mut bytes);
        let prefix = valid_prefix(&bytes);
        match decode_frames(&bytes, 0) {
            Ok(events) => {
                prop_assert_eq!(prefix.frames, 1);
                prop_assert_eq!(events.len() as u64, prefix.rows);
            }
            Err(_) => prop_assert_eq!(prefix, ValidPrefix::default()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Rows of a `RowBatch` encode to exactly the frame `encode` builds from the same events, and decode back to them.
    #[test]
    fn row_batches_encode_like_events(events in prop::collection::vec(any_event(), 0..8), base_seq in 0..=u64::MAX - 8) {
        let batch = crate::RowBatch::from_events(&events);
        prop_assert_eq!(batch.len(), events.len());
        prop_assert_eq!(&batch.to_events(), &events);
        let rows: Vec<_> = batch.iter().collect();
        let body = FrameBody::encode_rows(&rows);
        prop_assert_eq!(&body, &FrameBody::encode(&events));
        let mut bytes = Vec::new();
        body.write_frame(base_seq, &mut bytes);
        let decoded: Vec<Event> = decode_frames(&bytes, 0).unwrap().into_iter().map(|s| s.event).collect();
        prop_assert_eq!(decoded, events);
    }
}

//! Rows of a frame without their properties parsed: what a rewrite that re-sorts a row segment holds in memory.
//!
//! A row's properties are stored as canonical JSON text; [`RawFrameReader`] hands them out as that text (checked to
//! be UTF-8, not parsed), so a reader can keep a row in about its stored size instead of a `serde_json` map several
//! times larger. Frames are verified exactly as [`super::for_each_event`] verifies them (length, checksum, body,
//! row count, time range); a row whose properties are not a JSON object is found when they are parsed.

use super::{decompress, read_frame, u32_at, RowReader, RowsError, FRAME_PREFIX_LEN, HEADER_FIXED_LEN};

/// One row of a frame, borrowed from the decompressed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRow<'a> {
    pub seq: u64,
    pub time_ms: i64,
    pub event: &'a str,
    pub distinct_id: &'a str,
    pub insert_id: &'a str,
    /// The properties as stored: canonical JSON text of an object (not checked here).
    pub properties_json: &'a str,
}

/// Bytes at the start of every frame that say how long it is (length and checksum).
pub const FRAME_HEADER_LEN: usize = FRAME_PREFIX_LEN;

/// The whole length of the frame whose first [`FRAME_HEADER_LEN`] bytes are `header` (as the length field says; the
/// frame itself is verified when read).
pub fn frame_len(header: &[u8; FRAME_HEADER_LEN]) -> usize {
    FRAME_PREFIX_LEN + u32_at(header, 0) as usize
}

/// Bytes at the start of a row segment that say how long its header is.
pub const HEADER_PREFIX_LEN: usize = HEADER_FIXED_LEN;

/// The whole length of the header whose first [`HEADER_PREFIX_LEN`] bytes are `prefix` (as its length field says;
/// [`super::SegmentHeader::decode`] checks the rest).
pub fn header_len(prefix: &[u8; HEADER_PREFIX_LEN]) -> usize {
    HEADER_FIXED_LEN + u32_at(prefix, 10) as usize + 4
}

/// Reads whole frames one at a time, reusing its decompression buffer.
#[derive(Debug, Default)]
pub struct RawFrameReader {
    scratch: Vec<u8>,
}

impl RawFrameReader {
    /// Verifies the frame that `frame` holds exactly (it starts at file offset `offset`, for errors) and calls `f`
    /// for each of its rows, in order.
    pub fn read(&mut self, frame: &[u8], offset: u64, mut f: impl FnMut(RawRow<'_>)) -> Result<(), RowsError> {
        let (view, end) = read_frame(frame, 0, offset)?;
        let corrupt = |message: String| RowsError::Corrupt { offset, message };
        if end != frame.len() {
            return Err(corrupt(format!("{} bytes after the frame", frame.len() - end)));
        }
        decompress(&view, &mut self.scratch)?;
        let mut reader = RowReader { rest: &self.scratch };
        for i in 0..view.count {
            let row = reader.raw_row().map_err(|problem| corrupt(format!("row {i}: {problem}")))?;
            let (time_ms, event, distinct_id, insert_id, properties_json) = row;
            if time_ms < view.min_time_ms || time_ms > view.max_time_ms {
                return Err(corrupt(format!(
                    "row {i}: time {time_ms} is outside the frame's range {}..={}",
                    view.min_time_ms, view.max_time_ms
                )));
            }
            // `read_frame` checked that base_seq + count - 1 does not overflow.
            let seq = view.base_seq + u64::from(i);
            f(RawRow { seq, time_ms, event, distinct_id, insert_id, properties_json });
        }
        if !reader.rest.is_empty() {
            return Err(corrupt(format!("{} bytes after the last of {} rows", reader.rest.len(), view.count)));
        }
        Ok(())
    }
}

/// A row's fields: time, event, distinct_id, insert_id, properties JSON text.
type RawFields<'a> = (i64, &'a str, &'a str, &'a str, &'a str);

impl<'a> RowReader<'a> {
    fn raw_row(&mut self) -> Result<RawFields<'a>, String> {
        let time_ms = i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        let text =
            |bytes: &'a [u8], field: &str| std::str::from_utf8(bytes).map_err(|e| format!("{field} is not UTF-8: {e}"));
        let event = text(self.str_bytes()?, "event")?;
        let distinct_id = text(self.str_bytes()?, "distinct_id")?;
        let insert_id = text(self.str_bytes()?, "insert_id")?;
        let properties = text(self.str_bytes()?, "properties")?;
        Ok((time_ms, event, distinct_id, insert_id, properties))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::Event;
    use crate::rows::{decode_frames, FrameBody};

    #[test]
    fn raw_rows_are_the_decoded_events_text() {
        let events: Vec<Event> = (0..5)
            .map(|i| Event {
                event: format!("e{}", i % 2),
                time_ms: 1000 + i,
                distinct_id: format!("u{i}"),
                insert_id: format!("i{i}"),
                properties: json!({"a": i, "b": "x\"y"}).as_object().unwrap().clone(),
            })
            .collect();
        let mut bytes = Vec::new();
        FrameBody::encode(&events).write_frame(40, &mut bytes);
        FrameBody::encode(&events[..2]).write_frame(50, &mut bytes);
        let decoded = decode_frames(&bytes, 0).unwrap();
        let mut raw = Vec::new();
        let mut reader = RawFrameReader::default();
        let mut at = 0;
        while at < bytes.len() {
            let len = frame_len(bytes[at..at + FRAME_HEADER_LEN].try_into().unwrap());
            reader
                .read(&bytes[at..at + len], at as u64, |r| {
                    let properties = serde_json::from_str(r.properties_json).unwrap();
                    let event = Event {
                        event: r.event.into(),
                        time_ms: r.time_ms,
                        distinct_id: r.distinct_id.into(),
                        insert_id: r.insert_id.into(),
                        properties,
                    };
                    raw.push(crate::StoredEvent { seq: r.seq, event });
                })
                .unwrap();
            at += len;
        }
        assert_eq!(raw, decoded);
        // A damaged frame is refused like `decode_frames` refuses it.
        let mut damaged = bytes.clone();
        damaged[20] ^= 1;
        let len = frame_len(damaged[..FRAME_HEADER_LEN].try_into().unwrap());
        assert!(matches!(reader.read(&damaged[..len], 0, |_| {}), Err(RowsError::Checksum { .. })));
        assert!(reader.read(&bytes[..len + 1], 0, |_| {}).is_err(), "trailing bytes");
    }
}

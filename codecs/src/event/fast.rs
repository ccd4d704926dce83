//! The fast path of [`super::parse_batch`]: validates a request body and writes its events as rows (canonical
//! properties JSON, see [`crate::json`]) in one pass, without a `serde_json::Value` per record.
//!
//! It only ever *accepts*: for a body it returns rows only when the reference implementation
//! ([`super::parse_batch_reference`]) accepts the body and gives exactly these events. On anything else (an invalid record,
//! malformed JSON, a limit exceeded, or input it does not handle exactly, such as duplicate keys) it returns
//! [`GiveUp`] and the caller runs the reference implementation, which decides and words the error. So error
//! messages, fields and indexes come from one place, and this module only has to agree with it on valid batches.

use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Number, Value};

use super::row_batch::{RowBatch, RowSpans};
use super::{
    insert_id_hasher, parse_time, BatchLimits, MAX_DISTINCT_ID_BYTES, MAX_EVENT_NAME_BYTES, MAX_INSERT_ID_BYTES,
};
use crate::hash::StreamedField;
use crate::json::{Canonicalizer, Cursor, EntryFilter, GiveUp};

/// The body's events as rows, or [`GiveUp`] when the reference implementation must decide.
pub(super) fn parse_rows(body: &[u8], limits: &BatchLimits) -> Result<RowBatch, GiveUp> {
    if body.len() > limits.max_bytes {
        return Err(GiveUp);
    }
    // Every string of a valid body is UTF-8 and everything outside strings is ASCII, so a valid body is UTF-8.
    let text = std::str::from_utf8(body).map_err(|_| GiveUp)?;
    let mut parser = Parser::with_capacity(body.len());
    let mut cursor = Cursor::new(text);
    match cursor.peek().ok_or(GiveUp)? {
        b'[' => {
            cursor.expect(b'[')?;
            if !cursor.eat(b']') {
                loop {
                    parser.record(&mut cursor, 2, limits)?;
                    if cursor.eat(b']') {
                        break;
                    }
                    cursor.expect(b',')?;
                }
            }
            if cursor.peek().is_some() {
                return Err(GiveUp);
            }
        }
        _ => {
            for line in text.split('\n') {
                let mut cursor = Cursor::new(line);
                if cursor.peek().is_none() {
                    continue; // a blank line
                }
                parser.record(&mut cursor, 1, limits)?;
                if cursor.peek().is_some() {
                    return Err(GiveUp);
                }
            }
        }
    }
    Ok(parser.finish())
}

/// Builds a [`RowBatch`]; its buffers are reused from record to record.
struct Parser {
    canonicalizer: Canonicalizer,
    /// The batch text being written: each record's properties go here directly, its other strings after them.
    text: String,
    rows: Vec<RowSpans>,
    /// The current record's decoded strings.
    key: String,
    event: String,
    distinct_id: String,
    insert_id: String,
    /// Top-level record values that are not stored still have to be valid JSON.
    ignored: String,
}

impl Parser {
    fn with_capacity(body_len: usize) -> Self {
        Self {
            canonicalizer: Canonicalizer::default(),
            // Canonical properties are rarely longer than their input (only escapes and some floats grow), and
            // derived ids add 32 bytes per record: a little slack saves a reallocation of the whole buffer.
            text: String::with_capacity(body_len + body_len / 8),
            rows: Vec::new(),
            key: String::new(),
            event: String::new(),
            distinct_id: String::new(),
            insert_id: String::new(),
            ignored: String::new(),
        }
    }

    fn finish(self) -> RowBatch {
        RowBatch::from_parts(self.text, self.rows)
    }

    /// Reads one record (an object at nesting level `depth`) and appends its row.
    fn record(&mut self, cursor: &mut Cursor<'_>, depth: usize, limits: &BatchLimits) -> Result<(), GiveUp> {
        // Checked before the record is read, as the reference checks the count before any record.
        if self.rows.len() == limits.max_events {
            return Err(GiveUp);
        }
        let mut event = false;
        let mut properties = None;
        let mut lifted = Lifted::new(&mut self.distinct_id, &mut self.insert_id, limits);
        cursor.peek();
        let start = cursor.pos();
        cursor.object_entries(|cursor, raw_key| {
            let key = match raw_key.unescaped() {
                Some(key) => key,
                None => {
                    self.key.clear();
                    raw_key.decode_into(&mut self.key);
                    &self.key
                }
            };
            match key {
                // A repeated key is left to the reference (serde_json keeps the last one).
                "event" if !event => {
                    event = true;
                    self.event.clear();
                    cursor.string()?.decode_into(&mut self.event);
                }
                "properties" if properties.is_none() => {
                    if cursor.peek() != Some(b'{') {
                        return Err(GiveUp);
                    }
                    let start = self.text.len();
                    self.canonicalizer.object(cursor, &mut self.text, depth + 1, &mut lifted)?;
                    properties = Some(start..self.text.len());
                }
                "event" | "properties" => return Err(GiveUp),
                _ => {
                    self.ignored.clear();
                    self.canonicalizer.value(cursor, &mut self.ignored, depth)?;
                }
            }
            Ok(())
        })?;
        // Per-event limits: the reference words the error.
        if cursor.pos() - start > limits.max_event_bytes || lifted.keys > limits.max_properties {
            return Err(GiveUp);
        }

        let properties_json = properties.ok_or(GiveUp)?;
        if !event || self.event.is_empty() || self.event.len() > MAX_EVENT_NAME_BYTES {
            return Err(GiveUp);
        }
        let time_ms = parse_time(Some(&Value::Number(lifted.time.ok_or(GiveUp)?))).map_err(|_| GiveUp)?;
        if lifted.distinct_id.len() > MAX_DISTINCT_ID_BYTES {
            return Err(GiveUp);
        }
        let given_insert_id = lifted.insert_id_given;

        let event = push(&mut self.text, &self.event);
        let distinct_id = push(&mut self.text, &self.distinct_id);
        let insert_id = if given_insert_id {
            if self.insert_id.is_empty() || self.insert_id.len() > MAX_INSERT_ID_BYTES {
                return Err(GiveUp);
            }
            push(&mut self.text, &self.insert_id)
        } else {
            // The same hash as `derive_insert_id` over the same canonical JSON bytes, without a `Map`.
            let mut hasher = insert_id_hasher(&self.event, &self.distinct_id, time_ms);
            let mut field = StreamedField::new(&mut hasher);
            field.write_all(self.text[properties_json.clone()].as_bytes()).map_err(|_| GiveUp)?;
            field.finish();
            let start = self.text.len();
            write!(self.text, "{:032x}", hasher.finish()).map_err(|_| GiveUp)?;
            start..self.text.len()
        };
        self.rows.push(RowSpans { time_ms, event, distinct_id, insert_id, properties_json });
        Ok(())
    }
}

fn push(text: &mut String, s: &str) -> std::ops::Range<usize> {
    let start = text.len();
    text.push_str(s);
    start..text.len()
}

/// Takes `time`, `distinct_id` and `$insert_id` out of the properties object while it is canonicalized.
struct Lifted<'s> {
    /// `None` while absent; the reference rejects any `time` that is not a number.
    time: Option<Number>,
    /// As stored: empty when absent or null.
    distinct_id: &'s mut String,
    seen_distinct_id: bool,
    /// Meaningful when `insert_id_given`.
    insert_id: &'s mut String,
    insert_id_given: bool,
    seen_insert_id: bool,
    /// Keys of the properties object seen (repeats counted: a repeated key makes the fast path give up anyway).
    keys: usize,
    max_name_bytes: usize,
}

impl<'s> Lifted<'s> {
    fn new(distinct_id: &'s mut String, insert_id: &'s mut String, limits: &BatchLimits) -> Self {
        distinct_id.clear();
        insert_id.clear();
        Self {
            time: None,
            distinct_id,
            seen_distinct_id: false,
            insert_id,
            insert_id_given: false,
            seen_insert_id: false,
            keys: 0,
            max_name_bytes: limits.max_property_name_bytes,
        }
    }
}

impl<'a> EntryFilter<'a> for Lifted<'_> {
    fn take(&mut self, key: &str, cursor: &mut Cursor<'a>) -> Result<bool, GiveUp> {
        self.keys += 1;
        if key.len() > self.max_name_bytes {
            return Err(GiveUp);
        }
        let next = cursor.peek().ok_or(GiveUp)?;
        let is_number = matches!(next, b'-' | b'0'..=b'9');
        match key {
            "time" => {
                if self.time.is_some() || !is_number {
                    return Err(GiveUp);
                }
                self.time = Some(cursor.number()?.to_number()?);
            }
            "distinct_id" => {
                if std::mem::replace(&mut self.seen_distinct_id, true) {
                    return Err(GiveUp);
                }
                match next {
                    b'"' => cursor.string()?.decode_into(self.distinct_id),
                    b'n' => cursor.literal("null")?,
                    // A number is stored as its JSON text as serde_json writes it (`Number`'s `Display`).
                    _ if is_number => {
                        let number = cursor.number()?.to_number()?;
                        write!(self.distinct_id, "{number}").map_err(|_| GiveUp)?;
                    }
                    _ => return Err(GiveUp),
                }
            }
            "$insert_id" => {
                if std::mem::replace(&mut self.seen_insert_id, true) {
                    return Err(GiveUp);
                }
                match next {
                    b'"' => {
                        cursor.string()?.decode_into(self.insert_id);
                        self.insert_id_given = true;
                    }
                    b'n' => cursor.literal("null")?,
                    _ => return Err(GiveUp),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests;

//! Accumulating events into Arrow record batches of a segment's schema: the one place an event becomes a row of
//! the columnar format (the in-memory encoder and the streaming writer both write through it).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch, TimestampMillisecondArray, UInt64Array};
use arrow_schema::SchemaRef;

use super::read::BATCH_ROWS;
use super::shred::{ColumnKind, PropertyBuilder, ShreddedColumn};
use super::text_row::{PropsText, StoredText};
use crate::event::StoredEvent;

/// A record batch is cut when its text (all string columns together) reaches this many bytes, whatever its row
/// count. Arrow string arrays address their bytes with `i32` offsets, so a batch must stay far below 2 GiB in each
/// string column; one event can add at most a request's worth (10 MiB) past the cut.
pub(crate) const BATCH_TEXT_BYTES: usize = 64 << 20;

/// Accumulates the rows of one record batch.
pub(crate) struct BatchBuilder {
    schema: SchemaRef,
    /// Shredded key -> its position in `columns`.
    shredded: HashMap<String, usize>,
    /// The shredded keys, in column order; `keys_sorted` when that is key order (as `ShredSurvey::plan` gives
    /// them), so that a row's properties, in key order too, are matched to their columns in one walk.
    keys: Vec<String>,
    keys_sorted: bool,
    kinds: Vec<ColumnKind>,
    time: Vec<i64>,
    event: StringDictionaryBuilder<Int32Type>,
    distinct_id: StringBuilder,
    insert_id: StringBuilder,
    seq: Vec<u64>,
    properties: Vec<PropertyBuilder>,
    remainder: StringBuilder,
    pub(crate) rows: usize,
    pub(crate) text_bytes: usize,
    /// Per row: whether each shredded column got its value (scratch, all `false` between rows).
    filled: Vec<bool>,
    /// Per row: the `_props` JSON text being built (scratch).
    json: Vec<u8>,
}

impl BatchBuilder {
    pub(crate) fn new(schema: SchemaRef, columns: &[ShreddedColumn]) -> Self {
        Self {
            schema,
            shredded: columns.iter().enumerate().map(|(i, c)| (c.key.clone(), i)).collect(),
            keys: columns.iter().map(|c| c.key.clone()).collect(),
            keys_sorted: columns.windows(2).all(|w| w[0].key < w[1].key),
            kinds: columns.iter().map(|c| c.kind).collect(),
            time: Vec::with_capacity(BATCH_ROWS),
            event: StringDictionaryBuilder::new(),
            distinct_id: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16),
            insert_id: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 32),
            seq: Vec::with_capacity(BATCH_ROWS),
            properties: columns.iter().map(|c| PropertyBuilder::new(c.kind, BATCH_ROWS)).collect(),
            remainder: StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 64),
            rows: 0,
            text_bytes: 0,
            filled: vec![false; columns.len()],
            json: Vec::new(),
        }
    }

    /// Whether the batch should be written out now.
    pub(crate) fn is_full(&self) -> bool {
        self.rows >= BATCH_ROWS || self.text_bytes >= BATCH_TEXT_BYTES
    }

    /// Appends one event; every key written to `_props` is added to `props_keys` (and to `valued_keys`, when it is
    /// kept, with a value other than `null`).
    pub(crate) fn push(
        &mut self,
        stored: &StoredEvent,
        props_keys: &mut BTreeSet<String>,
        valued_keys: &mut Option<BTreeSet<String>>,
    ) {
        let event = &stored.event;
        self.time.push(event.time_ms);
        self.event.append_value(&event.event);
        self.distinct_id.append_value(&event.distinct_id);
        self.insert_id.append_value(&event.insert_id);
        self.seq.push(stored.seq);
        self.text_bytes += event.event.len() + event.distinct_id.len() + event.insert_id.len();

        self.json.clear();
        let mut column = 0;
        for (key, value) in &event.properties {
            if let Some(i) = self.column_of(key, &mut column) {
                if ColumnKind::of(value) == Some(self.kinds[i]) {
                    self.text_bytes += self.properties[i].append(Some(value));
                    self.filled[i] = true;
                    continue;
                }
            }
            // `properties` is sorted by key, so this is canonical JSON, as the row format stores it.
            self.json.push(if self.json.is_empty() { b'{' } else { b',' });
            serde_json::to_writer(&mut self.json, key).expect("writing JSON into a Vec cannot fail");
            self.json.push(b':');
            serde_json::to_writer(&mut self.json, value).expect("writing JSON into a Vec cannot fail");
            if !props_keys.contains(key) {
                props_keys.insert(key.clone());
            }
            if let Some(valued) = valued_keys.as_mut().filter(|v| !value.is_null() && !v.contains(key)) {
                valued.insert(key.clone());
            }
        }
        self.end_row();
    }

    /// The shredded column of `key`, if any. Keys must come in increasing order within a row, `cursor` (0 at the
    /// row's start) carrying where the walk over the sorted columns stands.
    fn column_of(&self, key: &str, cursor: &mut usize) -> Option<usize> {
        if !self.keys_sorted {
            return self.shredded.get(key).copied();
        }
        while *cursor < self.keys.len() && self.keys[*cursor].as_str() < key {
            *cursor += 1;
        }
        (*cursor < self.keys.len() && self.keys[*cursor] == key).then_some(*cursor)
    }

    /// The shredded columns a row left empty get a null, `_props` its JSON (or null), and the row is counted.
    fn end_row(&mut self) {
        for (builder, filled) in self.properties.iter_mut().zip(&mut self.filled) {
            if !std::mem::take(filled) {
                builder.append(None);
            }
        }
        if self.json.is_empty() {
            self.remainder.append_null();
        } else {
            self.json.push(b'}');
            self.remainder.append_value(std::str::from_utf8(&self.json).expect("serde_json writes UTF-8"));
            self.text_bytes += self.json.len();
        }
        self.rows += 1;
    }

    /// Appends one event whose properties are JSON text, as [`BatchBuilder::push`] appends the same event parsed
    /// (see [`super::text_row`]). Text that is not a JSON object is an error, and nothing is appended.
    pub(crate) fn push_text(
        &mut self,
        row: &StoredText,
        props_keys: &mut BTreeSet<String>,
        valued_keys: &mut Option<BTreeSet<String>>,
    ) -> Result<(), String> {
        let props = PropsText::parse(row.properties_json())
            .map_err(|e| format!("row with seq {}: properties are not a JSON object: {e}", row.seq))?;
        let (distinct_id, insert_id) = (row.distinct_id(), row.insert_id());
        self.time.push(row.time_ms);
        self.event.append_value(&*row.event);
        self.distinct_id.append_value(distinct_id);
        self.insert_id.append_value(insert_id);
        self.seq.push(row.seq);
        self.text_bytes += row.event.len() + distinct_id.len() + insert_id.len();

        self.json.clear();
        let mut column = 0;
        for (key, value) in &props.pairs {
            let key = key.as_ref();
            if let Some(i) = self.column_of(key, &mut column) {
                if value.kind() == Some(self.kinds[i]) {
                    self.text_bytes += self.properties[i].append_scalar(value);
                    self.filled[i] = true;
                    continue;
                }
            }
            self.json.push(if self.json.is_empty() { b'{' } else { b',' });
            serde_json::to_writer(&mut self.json, key).expect("writing JSON into a Vec cannot fail");
            self.json.push(b':');
            value.write_json(&mut self.json);
            if !props_keys.contains(key) {
                props_keys.insert(key.to_owned());
            }
            let is_null = matches!(value, super::text_row::Scalar::Null);
            if let Some(valued) = valued_keys.as_mut().filter(|v| !is_null && !v.contains(key)) {
                valued.insert(key.to_owned());
            }
        }
        self.end_row();
        Ok(())
    }

    /// The batch of the rows pushed since the last `finish`; the builder is empty again afterwards.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let time = TimestampMillisecondArray::from(std::mem::take(&mut self.time)).with_timezone("UTC");
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(time),
            Arc::new(self.event.finish()),
            Arc::new(self.distinct_id.finish()),
            Arc::new(self.insert_id.finish()),
            Arc::new(UInt64Array::from(std::mem::take(&mut self.seq))),
        ];
        arrays.extend(self.properties.iter_mut().map(PropertyBuilder::finish));
        arrays.push(Arc::new(self.remainder.finish()));
        self.rows = 0;
        self.text_bytes = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}

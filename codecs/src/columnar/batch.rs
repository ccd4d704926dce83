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
        for (key, value) in &event.properties {
            if let Some(&i) = self.shredded.get(key.as_str()) {
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

//! Shredding: which properties of a segment get a typed column of their own, and how a value goes in and out of
//! such a column without changing its JSON type.
//!
//! The decision is made per segment from its data: a key gets a column (named [`property_column_name`]) when at
//! least 1/64 of the segment's rows carry it with one and the same [`ColumnKind`] of value (the kind most rows
//! carry; ties between kinds go to the first in the order Utf8, Int64, Float64, Boolean, Json). Everything that
//! does not get, or does not fit, a column goes to the JSON remainder `_props`, so shredding can never lose or
//! alter a value.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow_schema::DataType;
use serde_json::{Number, Value};

use crate::event::StoredEvent;

/// Prefix of every shredded property column: property `k` is column `p.k`.
///
/// No fixed column name (`time`, `event`, `distinct_id`, `$insert_id`, `seq`, `_props`) starts with `p.`, so a
/// property column never collides with a fixed one, and the prefix is the same for every key, so two distinct keys
/// always get two distinct names. Any key is allowed as is (empty, dotted, any unicode): a column name is one Parquet
/// path element, never split at dots.
pub const PROPERTY_COLUMN_PREFIX: &str = "p.";

/// The column of a shredded property.
pub fn property_column_name(key: &str) -> String {
    format!("{PROPERTY_COLUMN_PREFIX}{key}")
}

/// A key gets its own column when at least `1 / MIN_SHARE_DIVISOR` (1/64) of the segment's rows carry it with one
/// and the same [`ColumnKind`] of value.
///
/// Why 1/64: a key left to `_props` costs its name and JSON punctuation in every row that carries it, and a scan of
/// it parses JSON; a column costs its footer entry, statistics and page index per row group, and next to nothing for
/// the rows without a value (their definition levels are runs). Rows are sorted by event, so a key that only some
/// event types carry (a purchase's `cart`, a search's `query`) has its values together and its nulls in long runs.
/// Measured with `cargo run -p tierd-codecs --release --example bytes_probe` on one day of the generated stream
/// (118,937 events, 40 event names, event-specific keys), the GH Archive hour and the Wikipedia edits, bytes/event
/// (zstd-19 with the pages of [`super::layout::ZSTD_PAGE_ROWS`]; lz4 on the generated day):
///
/// | keys that get a column | generated day, lz4 | generated day | GH Archive | Wikipedia |
/// |---|---|---|---|---|
/// | carried by at least half the rows (before) | 73.19 | 37.91 | 37.01 | 51.40 |
/// | **carried by at least 1/64 of the rows** | 61.44 | 35.80 | 37.00 | 51.85 |
///
/// The generated stream's event-specific keys (about 65 of them) leave `_props` (6.65 -> 0.48 B/event at zstd-19).
/// Wikipedia loses a little: its location keys (`cityName`, `regionName`, ...), present in a few percent of the
/// rows and always together, cost more as five sparse columns than as one repeated `_props` text. Shredding every
/// key (with a 16 KiB dictionary page bound) was no smaller than 1/64 on the generated day (37.11 vs 37.10).
///
/// The rule still bounds the width of the file: a segment has at most 64 times as many property columns as its events
/// have properties on average, and never more than [`super::CodecSpec::max_property_columns`]. Rarer keys stay in
/// `_props`; a scan that wants them reads `_props` only for the row groups it keeps.
pub(crate) const MIN_SHARE_DIVISOR: u64 = 64;

/// The Arrow type of a shredded property column, chosen so that every value stored in it reads back as the same
/// JSON value (same type, same number representation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    /// JSON strings.
    Utf8,
    /// JSON integers that fit an `i64` (a `u64` above `i64::MAX` does not, and stays in `_props`).
    Int64,
    /// JSON numbers with a fraction or exponent (serde_json floats); an integer never goes here, it would read back
    /// as a float.
    Float64,
    Boolean,
    /// Objects and arrays, as their JSON text.
    Json,
}

impl ColumnKind {
    /// Every kind, in the order that breaks ties in [`plan`].
    pub(crate) const ALL: [ColumnKind; 5] =
        [ColumnKind::Utf8, ColumnKind::Int64, ColumnKind::Float64, ColumnKind::Boolean, ColumnKind::Json];

    /// The kind of column `value` can be stored in and read back from unchanged; `None` for `null` and integers
    /// above `i64::MAX`, which only `_props` can hold.
    pub(crate) fn of(value: &Value) -> Option<ColumnKind> {
        match value {
            Value::Null => None,
            Value::Bool(_) => Some(ColumnKind::Boolean),
            Value::Number(n) if n.is_f64() => Some(ColumnKind::Float64),
            Value::Number(n) => n.as_i64().map(|_| ColumnKind::Int64),
            Value::String(_) => Some(ColumnKind::Utf8),
            Value::Array(_) | Value::Object(_) => Some(ColumnKind::Json),
        }
    }

    pub(crate) fn data_type(self) -> DataType {
        match self {
            ColumnKind::Utf8 | ColumnKind::Json => DataType::Utf8,
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Boolean => DataType::Boolean,
        }
    }
}

/// One shredded property: its key, its column and the column's kind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShreddedColumn {
    pub key: String,
    /// Always [`property_column_name`] of `key`; stored so a reader needs no naming rule to find the column.
    pub column: String,
    pub kind: ColumnKind,
}

/// Decides the shredded columns of a segment: see [`MIN_SHARE_DIVISOR`]. A key's column has the kind most of its
/// rows carry; ties between kinds go to the first in [`ColumnKind::ALL`]. The result is sorted by key, and depends
/// only on the multiset of events, not on their order. At most `max_columns` columns: the keys
/// carried by the most rows first, ties by key (the rest stay in `_props`).
pub(crate) fn plan(events: &[StoredEvent], max_columns: usize) -> Vec<ShreddedColumn> {
    let mut survey = super::ShredSurvey::new();
    events.iter().for_each(|stored| survey.add_event(&stored.event));
    survey.plan(max_columns)
}

/// Builds one shredded column of a record batch.
pub(crate) enum PropertyBuilder {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Json(StringBuilder),
}

impl PropertyBuilder {
    pub(crate) fn new(kind: ColumnKind, rows: usize) -> Self {
        match kind {
            ColumnKind::Utf8 => PropertyBuilder::Utf8(StringBuilder::with_capacity(rows, rows * 8)),
            ColumnKind::Int64 => PropertyBuilder::Int64(Int64Builder::with_capacity(rows)),
            ColumnKind::Float64 => PropertyBuilder::Float64(Float64Builder::with_capacity(rows)),
            ColumnKind::Boolean => PropertyBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            ColumnKind::Json => PropertyBuilder::Json(StringBuilder::with_capacity(rows, rows * 32)),
        }
    }

    /// Appends `value`, which must be of this column's kind (the caller checked with [`ColumnKind::of`]), or null.
    /// Returns the bytes of text appended, so the caller can bound a batch's size.
    pub(crate) fn append(&mut self, value: Option<&Value>) -> usize {
        match (self, value) {
            (PropertyBuilder::Utf8(b), Some(Value::String(s))) => {
                b.append_value(s);
                s.len()
            }
            (PropertyBuilder::Int64(b), Some(Value::Number(n))) => {
                b.append_option(n.as_i64());
                8
            }
            (PropertyBuilder::Float64(b), Some(Value::Number(n))) => {
                b.append_option(n.as_f64());
                8
            }
            (PropertyBuilder::Boolean(b), Some(Value::Bool(v))) => {
                b.append_value(*v);
                1
            }
            (PropertyBuilder::Json(b), Some(value @ (Value::Array(_) | Value::Object(_)))) => {
                let text = serde_json::to_string(value).expect("a JSON value always serializes");
                b.append_value(&text);
                text.len()
            }
            (builder, other) => {
                debug_assert!(other.is_none(), "a value of another kind reached a shredded column");
                builder.append_null();
                0
            }
        }
    }

    /// [`PropertyBuilder::append`] of a value read from JSON text, which must be of this column's kind.
    pub(crate) fn append_scalar(&mut self, value: &super::text_row::Scalar<'_>) -> usize {
        use super::text_row::Scalar;
        match (self, value) {
            (PropertyBuilder::Utf8(b), Scalar::Str(s)) => {
                b.append_value(s);
                s.len()
            }
            (PropertyBuilder::Int64(b), Scalar::I64(i)) => {
                b.append_value(*i);
                8
            }
            (PropertyBuilder::Int64(b), Scalar::U64(u)) => {
                b.append_option(i64::try_from(*u).ok());
                8
            }
            (PropertyBuilder::Float64(b), Scalar::F64(f)) => {
                b.append_value(*f);
                8
            }
            (PropertyBuilder::Boolean(b), Scalar::Bool(v)) => {
                b.append_value(*v);
                1
            }
            (PropertyBuilder::Json(b), Scalar::Nested(value)) => {
                let text = serde_json::to_string(value).expect("a JSON value always serializes");
                b.append_value(&text);
                text.len()
            }
            (builder, _) => {
                debug_assert!(false, "a value of another kind reached a shredded column");
                builder.append_null();
                0
            }
        }
    }

    fn append_null(&mut self) {
        match self {
            PropertyBuilder::Utf8(b) | PropertyBuilder::Json(b) => b.append_null(),
            PropertyBuilder::Int64(b) => b.append_null(),
            PropertyBuilder::Float64(b) => b.append_null(),
            PropertyBuilder::Boolean(b) => b.append_null(),
        }
    }

    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            PropertyBuilder::Utf8(b) | PropertyBuilder::Json(b) => Arc::new(b.finish()),
            PropertyBuilder::Int64(b) => Arc::new(b.finish()),
            PropertyBuilder::Float64(b) => Arc::new(b.finish()),
            PropertyBuilder::Boolean(b) => Arc::new(b.finish()),
        }
    }
}

/// Reads values back out of one shredded column of a record batch.
pub(crate) enum PropertyReader<'a> {
    Utf8(&'a StringArray),
    Int64(&'a Int64Array),
    Float64(&'a Float64Array),
    Boolean(&'a BooleanArray),
    Json(&'a StringArray),
}

impl<'a> PropertyReader<'a> {
    /// The reader of `array` as a column of `kind`, or `None` if the array has another type.
    pub(crate) fn new(kind: ColumnKind, array: &'a dyn Array) -> Option<Self> {
        let any = array.as_any();
        Some(match kind {
            ColumnKind::Utf8 => PropertyReader::Utf8(any.downcast_ref()?),
            ColumnKind::Int64 => PropertyReader::Int64(any.downcast_ref()?),
            ColumnKind::Float64 => PropertyReader::Float64(any.downcast_ref()?),
            ColumnKind::Boolean => PropertyReader::Boolean(any.downcast_ref()?),
            ColumnKind::Json => PropertyReader::Json(any.downcast_ref()?),
        })
    }

    /// The value at `row`, `Ok(None)` when the row has none in this column; `Err` describes a value that cannot
    /// have been written by [`PropertyBuilder`] (a non-finite float, JSON text that does not parse or is not an
    /// object or array).
    pub(crate) fn value(&self, row: usize) -> Result<Option<Value>, String> {
        let array: &dyn Array = match self {
            PropertyReader::Utf8(a) | PropertyReader::Json(a) => *a,
            PropertyReader::Int64(a) => *a,
            PropertyReader::Float64(a) => *a,
            PropertyReader::Boolean(a) => *a,
        };
        if array.is_null(row) {
            return Ok(None);
        }
        let value = match self {
            PropertyReader::Utf8(a) => Value::String(a.value(row).to_owned()),
            PropertyReader::Int64(a) => Value::Number(a.value(row).into()),
            PropertyReader::Float64(a) => {
                let f = a.value(row);
                Value::Number(Number::from_f64(f).ok_or_else(|| format!("float {f} is not a JSON number"))?)
            }
            PropertyReader::Boolean(a) => Value::Bool(a.value(row)),
            PropertyReader::Json(a) => match serde_json::from_str(a.value(row)) {
                Ok(value @ (Value::Array(_) | Value::Object(_))) => value,
                Ok(_) => return Err("JSON column holds a value that is not an object or an array".to_owned()),
                Err(e) => return Err(format!("JSON column holds invalid JSON: {e}")),
            },
        };
        Ok(Some(value))
    }
}

#[cfg(test)]
mod cap_tests {
    use serde_json::json;

    use super::*;
    use crate::event::Event;

    fn stored(properties: serde_json::Value) -> StoredEvent {
        let event = Event {
            event: "e".into(),
            time_ms: 0,
            distinct_id: String::new(),
            insert_id: "i".into(),
            properties: properties.as_object().unwrap().clone(),
        };
        StoredEvent { seq: 1, event }
    }

    #[test]
    fn the_column_cap_keeps_the_most_common_keys_then_by_key() {
        let events = vec![
            stored(json!({"a": 1, "b": 1, "c": 1, "d": 1})),
            stored(json!({"b": 2, "c": 2, "d": 2})),
            stored(json!({"c": 3, "d": 3})),
            stored(json!({"a": 4, "c": 4, "d": 4})),
        ];
        let keys = |max| plan(&events, max).into_iter().map(|c| c.key).collect::<Vec<_>>();
        assert_eq!(keys(usize::MAX), ["a", "b", "c", "d"]);
        assert_eq!(keys(3), ["a", "c", "d"]); // c, d: 4 rows; a, b: 2 rows each, a first by key
        assert_eq!(keys(1), ["c"]);
        assert!(keys(0).is_empty());
        let mut reversed = events.clone();
        reversed.reverse();
        assert_eq!(plan(&reversed, 3), plan(&events, 3));
    }
}

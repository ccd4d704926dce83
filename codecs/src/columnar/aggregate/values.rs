//! Where a key's values are in a columnar segment ([`KeyPlan`], once per segment) and in one record batch
//! ([`Source`], once per batch), and how one row's value is found without building the event.
//!
//! A property's value is in its shredded column when the column holds one for the row; otherwise in `_props` when
//! the key is there (a value that did not fit the column, an explicit `null`, a key without a column); otherwise the
//! row does not have the property. That is exactly where [`super::super::read::BatchRows`] finds it (a value in both
//! places is corruption there; here the column's value is taken). Where only the difference between `null` and
//! missing is at stake and the footer says the key spilled only as `null`, `_props` is not read at all.

use std::fmt;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_buffer::NullBuffer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::{Number, Value};

use super::super::layout::{Layout, DISTINCT_ID_INDEX, FIRST_PROPERTY_INDEX, INSERT_ID_INDEX, TIME_INDEX};
use super::super::shred::ColumnKind;

/// Where one key's values are in a segment.
#[derive(Debug, Clone)]
pub(super) enum KeyPlan {
    /// The lifted `time` (ms), never null.
    Time,
    /// A lifted string: `distinct_id` or `$insert_id` (the column's index), never null.
    Text(usize),
    Property(PropertyPlan),
}

#[derive(Debug, Clone)]
pub(super) struct PropertyPlan {
    key: String,
    /// The key as it appears in `_props` text (serde_json's string, quotes included; `_props` is serde_json's
    /// text of the remainder, see `write.rs`): a row whose `_props` lacks it does not have the key there.
    needle: String,
    /// The shredded column (its schema index and kind), if the key has one.
    pub(super) column: Option<(usize, ColumnKind)>,
    /// Whether `_props` is read for the key: it may hold a value there that the reader tells from a missing one.
    pub(super) spills: bool,
}

impl KeyPlan {
    /// Where `key` (a property name, or a lifted field as [`crate::condition::property`] names them) is in
    /// segments of `layout`, for a reader to which a `null` value is the same as a missing one unless
    /// `null_matters`. `_props` is read only when the footer says the key occurs there (with a value other than
    /// `null`, unless `null_matters`): a row without a value in the column is otherwise a row without the key.
    pub(super) fn new(layout: &Layout, key: &str, null_matters: bool) -> Self {
        match key {
            "time" => KeyPlan::Time,
            "distinct_id" => KeyPlan::Text(DISTINCT_ID_INDEX),
            "$insert_id" => KeyPlan::Text(INSERT_ID_INDEX),
            _ => KeyPlan::Property(PropertyPlan {
                key: key.to_owned(),
                needle: serde_json::to_string(key).expect("a string always serializes"),
                column: layout
                    .columns
                    .iter()
                    .position(|c| c.key == key)
                    .map(|i| (FIRST_PROPERTY_INDEX + i, layout.columns[i].kind)),
                spills: match null_matters {
                    true => layout.props_keys.contains(key),
                    false => layout.props_may_hold_value(key),
                },
            }),
        }
    }

    /// The schema indexes of the columns this key is read from (`props` is the index of `_props`).
    pub(super) fn roots(&self, props: usize) -> Vec<usize> {
        match self {
            KeyPlan::Time => vec![TIME_INDEX],
            KeyPlan::Text(index) => vec![*index],
            KeyPlan::Property(p) => p.column.iter().map(|(i, _)| *i).chain(p.spills.then_some(props)).collect(),
        }
    }

    /// The key's arrays in `batch` (which holds the columns of [`KeyPlan::roots`] by their names in `schema`).
    pub(super) fn bind<'a>(&'a self, batch: &'a RecordBatch, names: &ColumnNames<'_>) -> Result<Source<'a>, String> {
        let column = |index: usize| {
            let name = names.names[index];
            batch.column_by_name(name).ok_or_else(|| format!("column {name:?} was not read"))
        };
        let wrong =
            |index: usize| format!("column {:?} does not have the type its footer describes", names.names[index]);
        Ok(match self {
            KeyPlan::Time => Source::Time(
                column(TIME_INDEX)?
                    .as_primitive_opt::<TimestampMillisecondType>()
                    .ok_or_else(|| wrong(TIME_INDEX))?
                    .values(),
            ),
            // A lifted string is a string column that always holds a value (perhaps read as a dictionary).
            KeyPlan::Text(index) => Source::Property {
                typed: Some(Typed::new(column(*index)?, ColumnKind::Utf8).ok_or_else(|| wrong(*index))?),
                spill: None,
            },
            KeyPlan::Property(plan) => {
                let typed = match plan.column {
                    None => None,
                    Some((index, kind)) => Some(Typed::new(column(index)?, kind).ok_or_else(|| wrong(index))?),
                };
                let props = match plan.spills {
                    false => None,
                    true => Some(column(names.props)?.as_string_opt::<i32>().ok_or_else(|| wrong(names.props))?),
                };
                Source::Property { typed, spill: props.map(|props| Spill { props, plan }) }
            }
        })
    }
}

/// The column names of a segment's schema by index, and the index of `_props`.
pub(super) struct ColumnNames<'a> {
    names: Vec<&'a str>,
    props: usize,
}

impl<'a> ColumnNames<'a> {
    pub(super) fn new(schema: &'a arrow_schema::Schema, layout: &Layout) -> Self {
        ColumnNames { names: schema.fields().iter().map(|f| f.name().as_str()).collect(), props: layout.props_index() }
    }
}

/// A shredded column of one batch, by kind. A `Utf8` column may have been read as a dictionary (keys per row, each
/// distinct value once).
pub(super) enum Typed<'a> {
    Utf8(&'a StringArray),
    Dict {
        keys: &'a Int32Array,
        values: &'a StringArray,
        dictionary: &'a ArrayRef,
    },
    Int64(&'a Int64Array),
    Float64(&'a Float64Array),
    Boolean(&'a BooleanArray),
    /// Objects and arrays as JSON text.
    Json(&'a StringArray),
}

impl<'a> Typed<'a> {
    fn new(array: &'a ArrayRef, kind: ColumnKind) -> Option<Self> {
        Some(match kind {
            ColumnKind::Utf8 => match array.as_dictionary_opt::<Int32Type>() {
                Some(dict) => Typed::Dict {
                    keys: dict.keys(),
                    values: dict.values().as_string_opt::<i32>()?,
                    dictionary: dict.values(),
                },
                None => Typed::Utf8(array.as_string_opt::<i32>()?),
            },
            ColumnKind::Int64 => Typed::Int64(array.as_primitive_opt()?),
            ColumnKind::Float64 => Typed::Float64(array.as_primitive_opt()?),
            ColumnKind::Boolean => Typed::Boolean(array.as_boolean_opt()?),
            ColumnKind::Json => Typed::Json(array.as_string_opt::<i32>()?),
        })
    }

    /// Rows without a value in the column (`None`: every row has one).
    pub(super) fn nulls(&self) -> Option<&'a NullBuffer> {
        let nulls = match *self {
            Typed::Utf8(a) | Typed::Json(a) => a.nulls(),
            Typed::Dict { keys, .. } => keys.nulls(),
            Typed::Int64(a) => a.nulls(),
            Typed::Float64(a) => a.nulls(),
            Typed::Boolean(a) => a.nulls(),
        };
        nulls.filter(|n| n.null_count() > 0)
    }

    /// The value at `row`, which has one (see [`Typed::nulls`]). Fails as `PropertyReader::value` does on a value
    /// tierd cannot have written.
    pub(super) fn value(&self, row: usize) -> Result<Value, String> {
        Ok(match self {
            Typed::Utf8(a) => Value::String(a.value(row).to_owned()),
            Typed::Dict { keys, values, .. } => Value::String(dict_value(keys, values, row)?.to_owned()),
            Typed::Int64(a) => Value::Number(a.value(row).into()),
            Typed::Float64(a) => float_value(a.value(row))?,
            Typed::Boolean(a) => Value::Bool(a.value(row)),
            Typed::Json(a) => json_value(a.value(row))?,
        })
    }
}

/// The string of dictionary row `row`.
pub(super) fn dict_value<'a>(keys: &Int32Array, values: &'a StringArray, row: usize) -> Result<&'a str, String> {
    let key = keys.value(row);
    usize::try_from(key)
        .ok()
        .filter(|k| *k < values.len())
        .map(|k| values.value(k))
        .ok_or_else(|| format!("dictionary key {key} is outside its dictionary of {}", values.len()))
}

pub(super) fn float_value(f: f64) -> Result<Value, String> {
    Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("float {f} is not a JSON number"))
}

/// A value of a `Json` column: an object or an array.
pub(super) fn json_value(text: &str) -> Result<Value, String> {
    match serde_json::from_str(text) {
        Ok(value @ (Value::Array(_) | Value::Object(_))) => Ok(value),
        Ok(_) => Err("JSON column holds a value that is not an object or an array".to_owned()),
        Err(e) => Err(format!("JSON column holds invalid JSON: {e}")),
    }
}

/// One key's arrays in one batch: `time`, or a column (a lifted string, or a property's shredded column) and the
/// `_props` to look in where the column holds no value.
pub(super) enum Source<'a> {
    Time(&'a [i64]),
    Property { typed: Option<Typed<'a>>, spill: Option<Spill<'a>> },
}

impl Source<'_> {
    /// The value of the key at `row` (`None`: the row does not have it): the lifted field, the column's value, or
    /// the one in `_props`.
    pub(super) fn value(&self, row: usize) -> Result<Option<Value>, String> {
        match self {
            Source::Time(values) => Ok(Some(Value::from(values[row]))),
            Source::Property { typed, spill } => {
                if let Some(typed) = typed.as_ref().filter(|t| t.nulls().is_none_or(|n| n.is_valid(row))) {
                    return typed.value(row).map(Some);
                }
                match spill {
                    Some(spill) => spill.value(row),
                    None => Ok(None),
                }
            }
        }
    }
}

/// The `_props` of one batch, for one key.
pub(super) struct Spill<'a> {
    props: &'a StringArray,
    plan: &'a PropertyPlan,
}

impl Spill<'_> {
    /// The key's value in row `row`'s `_props`, if it is there. Fails as `BatchRows::event` does on `_props` that
    /// is not a JSON object.
    pub(super) fn value(&self, row: usize) -> Result<Option<Value>, String> {
        if self.props.is_null(row) {
            return Ok(None);
        }
        let text = self.props.value(row);
        // Most rows that spill, spill other keys: a substring search rules them out without parsing.
        if !text.contains(&self.plan.needle) {
            return Ok(None);
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let found = FindKey(&self.plan.key)
            .deserialize(&mut de)
            .and_then(|found| de.end().map(|()| found))
            .map_err(|e| format!("_props is not a JSON object: {e}"))?;
        Ok(found)
    }
}

/// Deserializes a JSON object keeping only the value of one key (the last one, as `serde_json::Map` keeps it),
/// skipping every other value without building it.
struct FindKey<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for FindKey<'_> {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FindKey<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(is_key) = map.next_key_seed(IsKey(self.0))? {
            if is_key {
                found = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Deserializes an object key into whether it is the wanted one, without allocating it.
struct IsKey<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for IsKey<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsKey<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

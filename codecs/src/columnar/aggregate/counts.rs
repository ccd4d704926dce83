//! Counting the rows of a mask per group key, by the key's native type, turning keys into JSON values once per
//! group rather than once per row.
//!
//! The key of a row is what [`crate::condition::GroupBy::key`] gives for its event: the event name, or the
//! property's value (`null` when the row does not have it). Keys are counted in one map per type (strings,
//! integers, floats by their bits, booleans, JSON text of objects and arrays) and, for values found in `_props`
//! or missing, by their JSON text. A string column read as a dictionary is counted per dictionary key and its
//! counts turned into strings when the dictionary changes (at a new row group, or every batch for pages written
//! without a dictionary), as `count_by_event` does for event names.

use std::collections::HashMap;

use arrow_array::{Array, ArrayRef, Int32Array, StringArray};
use serde_json::Value;

use super::values::{float_value, json_value, Source, Typed};
use crate::hash::Xxh3State;

type Map<K, V> = HashMap<K, V, Xxh3State>;

/// Per group key, how many rows.
#[derive(Debug, Default)]
pub(super) struct GroupCounts {
    total: u64,
    strings: Map<String, u64>,
    integers: Map<i64, u64>,
    /// By the float's bits: two floats are one group exactly when their JSON text is the same (`0.0` and `-0.0`
    /// are two).
    floats: Map<u64, u64>,
    booleans: [u64; 2],
    /// Objects and arrays, by their text in the column.
    json: Map<String, u64>,
    /// Values from `_props`, and `null` for rows without the key, by JSON text.
    other: Map<String, (Value, u64)>,
    /// The dictionary being counted per key: its values (held, so that its allocation cannot be reused by another
    /// one while it is compared by address), and the count of each key.
    dictionary: Option<(ArrayRef, Vec<u64>)>,
    /// Bytes of the keys' text held in the maps.
    key_bytes: u64,
}

impl GroupCounts {
    /// Rows counted without a group key (a query not grouped).
    pub(super) fn add_total(&mut self, mask: &[bool]) {
        self.total += mask.iter().map(|m| u64::from(*m)).sum::<u64>();
    }

    /// Counts the rows of `mask` per string of a dictionary array (`keys` into `values`, which `dictionary` holds);
    /// rows without a key are counted by `other(row)`.
    pub(super) fn add_dictionary(
        &mut self,
        mask: &[bool],
        keys: &Int32Array,
        values: &StringArray,
        dictionary: &ArrayRef,
        mut other: impl FnMut(usize) -> Result<Option<Value>, String>,
    ) -> Result<(), String> {
        if !self.dictionary.as_ref().is_some_and(|(current, _)| std::sync::Arc::ptr_eq(current, dictionary)) {
            self.flush_dictionary()?;
            self.dictionary = Some((dictionary.clone(), vec![0; values.len()]));
        }
        let Some((_, per_key)) = self.dictionary.as_mut() else { unreachable!("set just above") };
        let nulls = keys.nulls().filter(|n| n.null_count() > 0);
        let mut missing = Vec::new();
        for (row, (&m, &key)) in mask.iter().zip(keys.values()).enumerate() {
            if !m {
                continue;
            }
            if nulls.is_some_and(|n| n.is_null(row)) {
                missing.push(row);
                continue;
            }
            match usize::try_from(key).ok().and_then(|k| per_key.get_mut(k)) {
                Some(count) => *count += 1,
                None => return Err(format!("dictionary key {key} is outside its dictionary of {}", per_key.len())),
            }
        }
        for row in missing {
            self.add_value(other(row)?);
        }
        Ok(())
    }

    /// Adds the current dictionary's counts to the string keys.
    fn flush_dictionary(&mut self) -> Result<(), String> {
        let Some((values, per_key)) = self.dictionary.take() else { return Ok(()) };
        let values = values.as_any().downcast_ref::<StringArray>().ok_or("a dictionary without string values")?;
        for (key, count) in per_key.into_iter().enumerate().filter(|(_, count)| *count > 0) {
            // As the reference reads a dictionary value (`TypedDictionaryArray::value`): a null one reads as "".
            self.add_string(values.value(key), count);
        }
        Ok(())
    }

    fn add_string(&mut self, s: &str, count: u64) {
        match self.strings.get_mut(s) {
            Some(n) => *n += count,
            None => {
                self.key_bytes += s.len() as u64;
                self.strings.insert(s.to_owned(), count);
            }
        }
    }

    /// Counts one row whose key is `value` (`None`: the row does not have the property, key `null`).
    fn add_value(&mut self, value: Option<Value>) {
        let value = value.unwrap_or(Value::Null);
        let text = value.to_string();
        match self.other.get_mut(&text) {
            Some((_, n)) => *n += 1,
            None => {
                self.key_bytes += text.len() as u64;
                self.other.insert(text, (value, 1));
            }
        }
    }

    /// Counts the rows of `mask` by their value of `source`.
    pub(super) fn add(&mut self, mask: &[bool], source: &Source<'_>) -> Result<(), String> {
        let rows = || mask.iter().enumerate().filter(|(_, m)| **m).map(|(row, _)| row);
        match source {
            Source::Time(values) => {
                for row in rows() {
                    self.add_integer(values[row]);
                }
            }
            Source::Property { typed: None, .. } => {
                for row in rows() {
                    self.add_value(source.value(row)?);
                }
            }
            Source::Property { typed: Some(Typed::Dict { keys, values, dictionary }), .. } => {
                self.add_dictionary(mask, keys, values, dictionary, |row| source.value(row))?;
            }
            Source::Property { typed: Some(typed), .. } => {
                let nulls = typed.nulls();
                for row in rows() {
                    if nulls.is_some_and(|n| n.is_null(row)) {
                        self.add_value(source.value(row)?);
                        continue;
                    }
                    match typed {
                        Typed::Utf8(a) => self.add_string(a.value(row), 1),
                        Typed::Int64(a) => self.add_integer(a.value(row)),
                        Typed::Float64(a) => {
                            let f = a.value(row);
                            float_value(f)?;
                            let bits = f.to_bits();
                            if !self.floats.contains_key(&bits) {
                                self.key_bytes += 8;
                            }
                            *self.floats.entry(bits).or_default() += 1;
                        }
                        Typed::Boolean(a) => self.booleans[usize::from(a.value(row))] += 1,
                        Typed::Json(a) => {
                            let text = a.value(row);
                            match self.json.get_mut(text) {
                                Some(n) => *n += 1,
                                None => {
                                    self.key_bytes += text.len() as u64;
                                    self.json.insert(text.to_owned(), 1);
                                }
                            }
                        }
                        Typed::Dict { .. } => unreachable!("matched above"),
                    }
                }
            }
        }
        Ok(())
    }

    fn add_integer(&mut self, x: i64) {
        if !self.integers.contains_key(&x) {
            self.key_bytes += 8;
        }
        *self.integers.entry(x).or_default() += 1;
    }

    /// Groups so far (those of the dictionary being counted are not among them until it is flushed).
    pub(super) fn groups(&self) -> usize {
        self.strings.len()
            + self.integers.len()
            + self.floats.len()
            + self.booleans.iter().filter(|n| **n > 0).count()
            + self.json.len()
            + self.other.len()
    }

    pub(super) fn key_bytes(&self) -> u64 {
        self.key_bytes
    }

    /// Flushes the dictionary being counted.
    pub(super) fn flush(&mut self) -> Result<(), String> {
        self.flush_dictionary()
    }

    /// The total (without grouping) or the counts per key; each count is above zero. A key may come more than once
    /// only from a file where a value that fits its column was stored in `_props` (tierd never writes one); the
    /// caller adds up the counts of equal keys.
    pub(super) fn finish(mut self, grouped: bool) -> Result<Vec<(Value, u64)>, String> {
        self.flush_dictionary()?;
        if !grouped {
            return Ok(if self.total > 0 { vec![(Value::Null, self.total)] } else { Vec::new() });
        }
        let mut rows: Vec<(Value, u64)> = Vec::with_capacity(self.groups());
        rows.extend(self.strings.into_iter().map(|(s, n)| (Value::String(s), n)));
        rows.extend(self.integers.into_iter().map(|(x, n)| (Value::from(x), n)));
        for (bits, n) in self.floats {
            rows.push((float_value(f64::from_bits(bits))?, n));
        }
        rows.extend(
            self.booleans.into_iter().enumerate().filter(|(_, n)| *n > 0).map(|(b, n)| (Value::Bool(b == 1), n)),
        );
        for (text, n) in self.json {
            rows.push((json_value(&text)?, n));
        }
        rows.extend(self.other.into_values());
        Ok(rows)
    }
}

//! How many rows carry each property key with each kind of value: what the shredding decision ([`super::shred`])
//! is made from, gathered without holding the events.
//!
//! A [`ShredSurvey`] counts, per key and [`ColumnKind`], the rows that carry the key with a value of that kind,
//! and the rows in all. It is filled from whatever a rewrite has at hand: decoded events ([`ShredSurvey::add_event`]),
//! the stored JSON text of a row's properties ([`ShredSurvey::add_properties_json`], parsed without building a
//! `serde_json::Value`), or a columnar segment's footer ([`super::ColumnarInput::survey`]); surveys of several
//! inputs add up ([`ShredSurvey::merge`]). [`ShredSurvey::plan`] applies the one rule of [`super::shred`].
//!
//! # The rule for merged outputs
//!
//! Counted from the events themselves (a row segment, a run of events in memory), the counts are exact and the
//! decision is the in-memory encoder's. Counted from a columnar input's footer, a key counts the rows whose value sits
//! in its `p.<key>` column (the column chunks' non-null counts, exact); values of the input that spilled to `_props`
//! (a key the input did not shred, a value of another kind than its column) are not counted, since counting them
//! would mean parsing `_props`. So a merged output shreds a key when the inputs' columns of one kind hold it in at
//! least 1/64 of all input rows. Duplicates are counted as they are stored (the decision comes before dedup), so
//! a key carried by exactly 1/64 of the rows after dedup may stay in `_props`, and the reverse. Answers never depend on
//! it: a value that does not fit its column goes to `_props`, whatever the decision.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::shred::{property_column_name, ColumnKind, ShreddedColumn, MIN_SHARE_DIVISOR};
use crate::event::Event;
use crate::hash::Xxh3State;

/// Rows, and rows per (key, kind); see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShredSurvey {
    rows: u64,
    /// Looked up for every key of every row surveyed: xxh3, several times faster than SipHash on short keys, seeded
    /// at random per map as the query engine's maps are.
    counts: HashMap<String, [u64; ColumnKind::ALL.len()], Xxh3State>,
}

impl ShredSurvey {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows counted.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Counts one event's properties.
    pub fn add_event(&mut self, event: &Event) {
        self.rows += 1;
        for (key, value) in &event.properties {
            if let Some(kind) = ColumnKind::of(value) {
                self.count(key, kind, 1);
            }
        }
    }

    /// Counts one row whose properties are the JSON object `json` (as the row format stores them), without
    /// building a `serde_json::Value`: the kind of each value is told by the same parser, so it is the kind
    /// [`ColumnKind::of`] gives the parsed value. Text that is not a JSON object is an error and counts nothing.
    pub fn add_properties_json(&mut self, json: &str) -> Result<(), String> {
        let mut found: Vec<(Cow<'_, str>, ColumnKind)> = Vec::new();
        let mut de = serde_json::Deserializer::from_str(json);
        de.deserialize_map(TopLevel(&mut found)).map_err(|e| format!("properties are not a JSON object: {e}"))?;
        de.end().map_err(|e| format!("properties are not a JSON object: {e}"))?;
        self.rows += 1;
        for (key, kind) in found {
            self.count(&key, kind, 1);
        }
        Ok(())
    }

    /// Adds rows without properties (a footer's rows; its columns are counted with [`ShredSurvey::count`]).
    pub(crate) fn add_rows(&mut self, rows: u64) {
        self.rows += rows;
    }

    pub(crate) fn count(&mut self, key: &str, kind: ColumnKind, n: u64) {
        if n == 0 {
            return;
        }
        match self.counts.get_mut(key) {
            Some(c) => c[kind as usize] += n,
            None => {
                let mut c = [0; ColumnKind::ALL.len()];
                c[kind as usize] = n;
                self.counts.insert(key.to_owned(), c);
            }
        }
    }

    /// Adds another survey's counts (another input of the same output).
    pub fn merge(&mut self, other: &ShredSurvey) {
        self.rows += other.rows;
        for (key, counts) in &other.counts {
            for kind in ColumnKind::ALL {
                self.count(key, kind, counts[kind as usize]);
            }
        }
    }

    /// The shredded columns: a key gets one when at least 1/64 of the rows carry it with one kind (the kind most
    /// rows carry; ties between kinds go to the first in the order Utf8, Int64, Float64, Boolean, Json); at most
    /// `max_columns`, the keys carried by the most rows first, ties by key. Sorted by key.
    pub fn plan(&self, max_columns: usize) -> Vec<ShreddedColumn> {
        let mut candidates: Vec<(u64, ShreddedColumn)> = self
            .counts
            .iter()
            .filter_map(|(key, counts)| {
                // `max_by_key` keeps the last maximum; iterate in reverse so the first kind wins a tie.
                let (kind, count) =
                    ColumnKind::ALL.iter().rev().map(|k| (*k, counts[*k as usize])).max_by_key(|(_, c)| *c)?;
                (count > 0 && count.saturating_mul(MIN_SHARE_DIVISOR) >= self.rows)
                    .then(|| (count, ShreddedColumn { key: key.clone(), column: property_column_name(key), kind }))
            })
            .collect();
        if candidates.len() > max_columns {
            candidates.sort_by(|(a_count, a), (b_count, b)| b_count.cmp(a_count).then_with(|| a.key.cmp(&b.key)));
            candidates.truncate(max_columns);
        }
        let mut columns: Vec<ShreddedColumn> = candidates.into_iter().map(|(_, column)| column).collect();
        columns.sort_by(|a, b| a.key.cmp(&b.key));
        columns
    }
}

/// Visits the top-level object, recording each key with the kind of its value (`null` and `u64` above `i64::MAX`
/// record nothing, as [`ColumnKind::of`] gives them none).
struct TopLevel<'a, 'de>(&'a mut Vec<(Cow<'de, str>, ColumnKind)>);

impl<'de> Visitor<'de> for TopLevel<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if let Some(kind) = map.next_value_seed(KindSeed)? {
                self.0.push((key, kind));
            }
        }
        Ok(())
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// The kind of one value, its contents skipped.
struct KindSeed;

impl<'de> DeserializeSeed<'de> for KindSeed {
    type Value = Option<ColumnKind>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KindSeed {
    type Value = Option<ColumnKind>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(ColumnKind::Boolean))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some(ColumnKind::Int64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).is_ok().then_some(ColumnKind::Int64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // `serde_json::Value` makes a non-finite float `null` (JSON text never holds one).
        Ok(v.is_finite().then_some(ColumnKind::Float64))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some(ColumnKind::Utf8))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some(ColumnKind::Json))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Some(ColumnKind::Json))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing::any_event;

    proptest! {
        /// Counting the stored JSON text gives the counts of the parsed events, and so the same columns.
        #[test]
        fn text_and_events_count_alike(events in prop::collection::vec(any_event(), 0..24), max in 0..8usize) {
            let (mut from_events, mut from_text) = (ShredSurvey::new(), ShredSurvey::new());
            for e in &events {
                from_events.add_event(e);
                from_text.add_properties_json(&serde_json::to_string(&e.properties).unwrap()).unwrap();
            }
            prop_assert_eq!(&from_text, &from_events);
            prop_assert_eq!(from_text.plan(max), from_events.plan(max));
            let (a, b) = events.split_at(events.len() / 2);
            let mut halves = ShredSurvey::new();
            for part in [a, b] {
                let mut s = ShredSurvey::new();
                part.iter().for_each(|e| s.add_event(e));
                halves.merge(&s);
            }
            prop_assert_eq!(halves, from_events);
        }
    }

    #[test]
    fn text_that_is_not_an_object_is_refused() {
        let mut s = ShredSurvey::new();
        for bad in ["[1]", "1", "{\"a\":", "{} x", "nul"] {
            assert!(s.add_properties_json(bad).is_err(), "{bad}");
        }
        assert_eq!(s.rows(), 0);
        s.add_properties_json(r#"{"a\"b":1,"n":null,"big":18446744073709551615,"f":1.0,"o":{"x":[1]}}"#).unwrap();
        let cols = s.plan(10);
        let got: Vec<(&str, ColumnKind)> = cols.iter().map(|c| (c.key.as_str(), c.kind)).collect();
        assert_eq!(got, [("a\"b", ColumnKind::Int64), ("f", ColumnKind::Float64), ("o", ColumnKind::Json)]);
    }
}

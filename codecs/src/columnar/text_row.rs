//! Events that travel through a rewrite with their properties still JSON text (issue 13, rewrite speed).
//!
//! A re-encode reads row segments, whose rows hold their properties as canonical JSON text, and writes columns. It
//! used to parse each row's properties into a `serde_json::Map` (a B-tree of owned keys and values) between the sort
//! buffer and the writer, only for the writer to walk it once and drop it: most of a re-encode's time went to
//! building and freeing those maps. [`StoredText`] carries the text instead, and the writer walks it directly
//! ([`PropsText`]): keys and plain strings borrowed from the text, numbers, booleans and nulls read in place, only
//! nested objects and arrays built as values (their column holds their JSON text as `serde_json` writes it).
//!
//! What the writer makes of a [`StoredText`] is exactly what it makes of the same row parsed into a
//! [`StoredEvent`] (same columns, same `_props` text, same `_props` keys): the values are read by the same parser
//! with the same number rules, duplicate keys keep the last value as a map does, keys are taken in the map's (byte)
//! order. `tests/text_rows.rs` checks it byte for byte on generated events.
//!
//! [`MergeEvent`] is what the k-way merge of a rewrite moves: a decoded event (from a columnar input) or a stored
//! text (from a sort buffer).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Number, Value};

use super::merge::MergeItem;
use super::shred::ColumnKind;
use crate::dedup::{dedup_key, dedup_key_of, DedupKey};
use crate::event::{Event, StoredEvent};

/// An event as a row segment stores it: its fields, and its properties as JSON text (an object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredText {
    pub seq: u64,
    pub time_ms: i64,
    /// The event name, shared by every event of that name in the run it came from.
    pub event: Arc<str>,
    /// `distinct_id`, `$insert_id` and the properties' JSON text, one after the other.
    text: Box<str>,
    distinct_id_len: u32,
    insert_id_len: u32,
}

impl StoredText {
    /// `text` must hold `distinct_id_len` bytes of `distinct_id`, then `insert_id_len` of `$insert_id`, then the
    /// properties' JSON, each split on a character boundary.
    pub(crate) fn new(
        seq: u64,
        time_ms: i64,
        event: Arc<str>,
        text: Box<str>,
        distinct_id_len: u32,
        insert_id_len: u32,
    ) -> Self {
        debug_assert!(text.is_char_boundary(distinct_id_len as usize));
        debug_assert!(text.is_char_boundary((distinct_id_len + insert_id_len) as usize));
        Self { seq, time_ms, event, text, distinct_id_len, insert_id_len }
    }

    pub fn distinct_id(&self) -> &str {
        &self.text[..self.distinct_id_len as usize]
    }

    pub fn insert_id(&self) -> &str {
        let start = self.distinct_id_len as usize;
        &self.text[start..start + self.insert_id_len as usize]
    }

    pub fn properties_json(&self) -> &str {
        &self.text[(self.distinct_id_len + self.insert_id_len) as usize..]
    }

    /// The event with its properties parsed; an error when they are not a JSON object.
    pub fn to_event(&self) -> Result<StoredEvent, String> {
        let properties = serde_json::from_str(self.properties_json())
            .map_err(|e| format!("row with seq {}: properties are not a JSON object: {e}", self.seq))?;
        let event = Event {
            event: self.event.to_string(),
            time_ms: self.time_ms,
            distinct_id: self.distinct_id().to_owned(),
            insert_id: self.insert_id().to_owned(),
            properties,
        };
        Ok(StoredEvent { seq: self.seq, event })
    }
}

/// What a rewrite's merge moves: an event decoded from a columnar input, or one with its properties as text.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeEvent {
    Decoded(StoredEvent),
    Text(StoredText),
}

impl MergeEvent {
    pub fn name(&self) -> &str {
        match self {
            MergeEvent::Decoded(e) => &e.event.event,
            MergeEvent::Text(t) => &t.event,
        }
    }

    pub fn time_ms(&self) -> i64 {
        match self {
            MergeEvent::Decoded(e) => e.event.time_ms,
            MergeEvent::Text(t) => t.time_ms,
        }
    }

    pub fn seq(&self) -> u64 {
        match self {
            MergeEvent::Decoded(e) => e.seq,
            MergeEvent::Text(t) => t.seq,
        }
    }

    pub fn distinct_id(&self) -> &str {
        match self {
            MergeEvent::Decoded(e) => &e.event.distinct_id,
            MergeEvent::Text(t) => t.distinct_id(),
        }
    }

    /// The event with its properties parsed.
    pub fn into_event(self) -> Result<StoredEvent, String> {
        match self {
            MergeEvent::Decoded(e) => Ok(e),
            MergeEvent::Text(t) => t.to_event(),
        }
    }
}

impl From<StoredEvent> for MergeEvent {
    fn from(e: StoredEvent) -> Self {
        MergeEvent::Decoded(e)
    }
}

impl MergeItem for MergeEvent {
    fn name(&self) -> &str {
        MergeEvent::name(self)
    }

    fn time_ms(&self) -> i64 {
        MergeEvent::time_ms(self)
    }

    fn seq(&self) -> u64 {
        MergeEvent::seq(self)
    }

    fn dedup_key(&self, project: &str) -> DedupKey {
        match self {
            MergeEvent::Decoded(e) => dedup_key(project, &e.event),
            MergeEvent::Text(t) => dedup_key_of(project, &t.event, t.distinct_id(), t.time_ms, t.insert_id()),
        }
    }
}

/// One property value read from JSON text, as `serde_json::Value` would hold it.
#[derive(Debug)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    /// Finite (a non-finite float is `Null`, as `serde_json::Value` makes it).
    F64(f64),
    Str(Cow<'a, str>),
    /// An object or an array.
    Nested(Value),
}

impl Scalar<'_> {
    /// [`ColumnKind::of`] the value.
    pub(crate) fn kind(&self) -> Option<ColumnKind> {
        match self {
            Scalar::Null => None,
            Scalar::Bool(_) => Some(ColumnKind::Boolean),
            Scalar::I64(_) => Some(ColumnKind::Int64),
            Scalar::U64(u) => i64::try_from(*u).is_ok().then_some(ColumnKind::Int64),
            Scalar::F64(_) => Some(ColumnKind::Float64),
            Scalar::Str(_) => Some(ColumnKind::Utf8),
            Scalar::Nested(_) => Some(ColumnKind::Json),
        }
    }

    /// Appends the value's JSON text as `serde_json` writes the `Value`.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let written = match self {
            Scalar::Null => {
                out.extend_from_slice(b"null");
                Ok(())
            }
            Scalar::Bool(b) => serde_json::to_writer(&mut *out, b),
            Scalar::I64(i) => serde_json::to_writer(&mut *out, &Number::from(*i)),
            Scalar::U64(u) => serde_json::to_writer(&mut *out, &Number::from(*u)),
            Scalar::F64(f) => {
                serde_json::to_writer(&mut *out, &Number::from_f64(*f).expect("a finite float is a JSON number"))
            }
            Scalar::Str(s) => serde_json::to_writer(&mut *out, s.as_ref()),
            Scalar::Nested(v) => serde_json::to_writer(&mut *out, v),
        };
        written.expect("writing JSON into a Vec cannot fail");
    }
}

/// The top-level properties of one row's JSON text, in key order, one value per key (the last, as a map keeps).
pub(crate) struct PropsText<'a> {
    pub(crate) pairs: Vec<(Cow<'a, str>, Scalar<'a>)>,
}

impl<'a> PropsText<'a> {
    /// Reads `json`, which must be a JSON object.
    pub(crate) fn parse(json: &'a str) -> Result<Self, serde_json::Error> {
        // Room for a typical event's properties at once (Mixpanel's SDKs send a dozen or two).
        let mut pairs = Vec::with_capacity(32);
        let mut de = serde_json::Deserializer::from_str(json);
        de.deserialize_map(Pairs(&mut pairs))?;
        de.end()?;
        if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            // Not in key order, or a key twice: order them as a map does, the last value of a key winning.
            pairs.reverse();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs.dedup_by(|later, first| later.0 == first.0);
        }
        Ok(Self { pairs })
    }
}

struct Pairs<'p, 'de>(&'p mut Vec<(Cow<'de, str>, Scalar<'de>)>);

impl<'de> Visitor<'de> for Pairs<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(StrSeed)? {
            let value = map.next_value_seed(ScalarSeed)?;
            self.0.push((key, value));
        }
        Ok(())
    }
}

/// A string, borrowed from the text when it has no escapes.
struct StrSeed;

impl<'de> DeserializeSeed<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// One value, read through the same visitor calls `serde_json::Value` is built from.
struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::I64(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(if v.is_finite() { Scalar::F64(v) } else { Scalar::Null })
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Scalar::Nested)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Scalar::Nested)
    }
}

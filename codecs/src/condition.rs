//! Conditions on one event's properties (`property op value`): the `where` language of queries and of filtered
//! deletes, and the group key of queries ([`GroupBy`]). Pure, so that a query (the store's reference engine), the
//! columnar grouped counts (`crate::columnar::count_groups`) and a deletion's [`crate::RowFilter`] evaluate the same
//! words the same way.

use std::cmp::Ordering;

use serde_json::Value;

use crate::event::Event;

/// A comparison in a filter. Serde and [`std::str::FromStr`] use the same names, the ones the query API accepts:
/// `eq`, `neq`, `lt`, `lte`, `gt`, `gte`, `exists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Exists,
}

impl std::str::FromStr for Op {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "eq" => Op::Eq,
            "neq" => Op::Neq,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "exists" => Op::Exists,
            other => return Err(format!("unknown op {other:?}; expected one of eq, neq, lt, lte, gt, gte, exists")),
        })
    }
}

/// `property op value`. `property` names an event property, or one of the lifted fields `distinct_id`,
/// `$insert_id` and `time` (ms).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub property: String,
    pub op: Op,
    pub value: Value,
}

/// A property of an event, including the lifted fields.
pub fn property<'a>(e: &'a Event, name: &str, scratch: &'a mut Option<Value>) -> Option<&'a Value> {
    match name {
        "distinct_id" => Some(&*scratch.insert(Value::String(e.distinct_id.clone()))),
        "$insert_id" => Some(&*scratch.insert(Value::String(e.insert_id.clone()))),
        "time" => Some(&*scratch.insert(Value::from(e.time_ms))),
        _ => e.properties.get(name),
    }
}

/// Numeric comparison that is exact for integers and falls back to f64 otherwise.
fn cmp_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    let int = |n: &serde_json::Number| n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
    match (int(a), int(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y) == Some(Ordering::Equal),
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp_numbers(x, y),
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        _ => None,
    }
}

impl Filter {
    pub fn matches(&self, e: &Event) -> bool {
        let mut scratch = None;
        self.matches_value(property(e, &self.property, &mut scratch))
    }

    /// Whether an event whose property has value `v` (`None`: the event does not have it) meets the condition:
    /// what [`Filter::matches`] decides once it found the value. Readers that find values without building events
    /// (`crate::columnar`'s grouped counts) decide through here, so both agree.
    pub fn matches_value(&self, v: Option<&Value>) -> bool {
        match self.op {
            Op::Exists => matches!(v, Some(v) if !v.is_null()),
            Op::Eq => v.is_some_and(|v| values_equal(v, &self.value)),
            Op::Neq => !v.is_some_and(|v| values_equal(v, &self.value)),
            Op::Lt => v.and_then(|v| order(v, &self.value)) == Some(Ordering::Less),
            Op::Lte => matches!(v.and_then(|v| order(v, &self.value)), Some(Ordering::Less | Ordering::Equal)),
            Op::Gt => v.and_then(|v| order(v, &self.value)) == Some(Ordering::Greater),
            Op::Gte => matches!(v.and_then(|v| order(v, &self.value)), Some(Ordering::Greater | Ordering::Equal)),
        }
    }
}

/// What a query's counts are grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    None,
    Event,
    /// A property (or a lifted field: `distinct_id`, `$insert_id`, `time`), as [`property`] finds it.
    Property(String),
}

impl GroupBy {
    /// Parses `"event"` or `"properties.NAME"`.
    pub fn parse(s: Option<&str>) -> std::result::Result<Self, String> {
        match s {
            None => Ok(GroupBy::None),
            Some("event") => Ok(GroupBy::Event),
            Some(p) => match p.strip_prefix("properties.") {
                Some(name) if !name.is_empty() => Ok(GroupBy::Property(name.to_string())),
                _ => Err(format!("group_by {p:?} must be \"event\" or \"properties.NAME\"")),
            },
        }
    }

    /// The group of event `e`: `null` for every event without grouping, and for an event whose property is
    /// missing or `null` (the two are one group).
    pub fn key(&self, e: &Event) -> Value {
        match self {
            GroupBy::None => Value::Null,
            GroupBy::Event => Value::String(e.event.clone()),
            GroupBy::Property(name) => {
                let mut scratch = None;
                property(e, name, &mut scratch).cloned().unwrap_or(Value::Null)
            }
        }
    }
}

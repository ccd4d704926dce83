//! The independent model: which events were acknowledged, in which order, and what a query must answer.
//!
//! Semantics, straight from the contract:
//! - an event is `(project, event, distinct_id, time_ms, $insert_id)`; the copy acknowledged last wins and its
//!   properties are the ones filters and `group_by` see;
//! - an absent `$insert_id` is derived from the content, so only an *exact* re-send is a duplicate. The model keys
//!   such events by their canonical raw JSON; tests never send two different records without an insert id that
//!   would agree on every other key field;
//! - `time` is seconds below 1e11 and ms at or above it; `distinct_id` numbers become their decimal text;
//! - filters: eq/neq compare JSON values (numbers numerically), lt/lte/gt/gte compare numbers with numbers and
//!   strings with strings (byte order), anything else is false; neq is !eq; exists is present and not null;
//! - retention: a project given a cutoff ([`Model::set_retention_cutoff`]) answers only events at or after it;
//! - user deletions ([`Model::delete_users`]): the copies of those distinct ids acknowledged before the request are
//!   gone (as if never sent: an older copy never wins again), copies acknowledged after it are kept;
//! - filtered deletes ([`Model::delete_events`]): the same, for the copies of one event name (any, when none) in a
//!   time window for which every `where` filter holds.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::mp::{canon, time_ms};

/// One acknowledged copy of an event, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEvent {
    pub project: String,
    pub event: String,
    pub distinct_id: String,
    pub time_ms: i64,
    /// `None` when the request had no `$insert_id` (the daemon derives one the model cannot predict).
    pub insert_id: Option<String>,
    /// Every property except `time`, `distinct_id` and `$insert_id`.
    pub props: Map<String, Value>,
    /// The record as sent.
    pub raw: Value,
}

impl ModelEvent {
    /// Normalizes a record that the test knows to be valid.
    pub fn from_request(project: &str, raw: &Value) -> ModelEvent {
        let event = raw["event"].as_str().expect("valid record has an event name").to_string();
        let mut props = raw["properties"].as_object().expect("valid record has properties").clone();
        let time_ms = time_ms(&props.remove("time").expect("valid record has a time"));
        let distinct_id = match props.remove("distinct_id") {
            None => String::new(),
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => panic!("test sent an invalid distinct_id {other} as valid"),
        };
        let insert_id = props.remove("$insert_id").map(|v| v.as_str().expect("insert id is a string").to_string());
        ModelEvent { project: project.to_string(), event, distinct_id, time_ms, insert_id, props, raw: raw.clone() }
    }

    fn dedup_key(&self) -> (String, String, String, i64, String) {
        let id = match &self.insert_id {
            Some(id) => format!("id:{id}"),
            None => format!("derived:{}", canon(&self.raw)),
        };
        (self.project.clone(), self.event.clone(), self.distinct_id.clone(), self.time_ms, id)
    }

    /// The value a filter or `group_by` sees for `name`: a property, or `distinct_id`, `$insert_id`, `time`.
    pub fn property(&self, name: &str) -> Option<Value> {
        match name {
            "distinct_id" => Some(Value::String(self.distinct_id.clone())),
            "$insert_id" => Some(Value::String(
                self.insert_id.clone().expect("a test filtered on a derived $insert_id the model cannot know"),
            )),
            "time" => Some(Value::from(self.time_ms)),
            _ => self.props.get(name).cloned(),
        }
    }
}

/// A query answer: the total and the group counts keyed by the canonical JSON text of the group key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub total: u64,
    pub groups: BTreeMap<String, u64>,
}

/// Every acknowledged copy, in acknowledgement order, and the winning copy per dedup key.
#[derive(Debug, Default)]
pub struct Model {
    copies: Vec<ModelEvent>,
    latest: HashMap<(String, String, String, i64, String), usize>,
    /// Per project: events before this time (ms) are past retention and never answered.
    cutoffs: HashMap<String, i64>,
    /// Deletion requests: (project, distinct ids, number of copies acknowledged when it was accepted).
    deletions: Vec<(String, std::collections::BTreeSet<String>, usize)>,
    /// Filtered deletes: (project, the request's `filter` JSON, number of copies acknowledged when it was accepted).
    filtered: Vec<(String, Value, usize)>,
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// Records a batch that the daemon acknowledged (200), in request order.
    pub fn ack(&mut self, project: &str, events: &[Value]) {
        for raw in events {
            let e = ModelEvent::from_request(project, raw);
            let key = e.dedup_key();
            self.copies.push(e);
            self.latest.insert(key, self.copies.len() - 1);
        }
    }

    /// Every acknowledged copy of `project` (duplicates included), in acknowledgement order.
    pub fn copies<'a>(&'a self, project: &'a str) -> impl Iterator<Item = &'a ModelEvent> + 'a {
        self.copies.iter().filter(move |e| e.project == project)
    }

    /// A deletion request the daemon acknowledged for `ids` of `project`: every copy of theirs acknowledged so far
    /// is deleted; later ones are kept.
    pub fn delete_users(&mut self, project: &str, ids: &[&str]) {
        let ids = ids.iter().map(|s| s.to_string()).collect();
        self.deletions.push((project.to_string(), ids, self.copies.len()));
    }

    /// A filtered delete the daemon acknowledged for `project`, with the body's `filter`
    /// (`{"event"?, "from", "to", "where"?}`): every copy it selects acknowledged so far is deleted.
    pub fn delete_events(&mut self, project: &str, filter: &Value) {
        self.filtered.push((project.to_string(), filter.clone(), self.copies.len()));
    }

    /// Whether the `i`-th acknowledged copy is deleted by a user deletion or a filtered delete.
    pub fn deleted(&self, i: usize) -> bool {
        let e = &self.copies[i];
        let selected = |f: &Value| {
            let (from, to) = (f["from"].as_i64().unwrap(), f["to"].as_i64().unwrap());
            e.time_ms >= from
                && e.time_ms < to
                && f.get("event").and_then(Value::as_str).is_none_or(|name| name == e.event)
                && f.get("where").and_then(Value::as_array).is_none_or(|w| w.iter().all(|c| filter_matches(e, c)))
        };
        self.deletions.iter().any(|(p, ids, acked)| i < *acked && *p == e.project && ids.contains(&e.distinct_id))
            || self.filtered.iter().any(|(p, f, acked)| i < *acked && *p == e.project && selected(f))
    }

    /// Every acknowledged copy of `project` that no user deletion removed, in acknowledgement order.
    pub fn kept_copies<'a>(&'a self, project: &'a str) -> impl Iterator<Item = &'a ModelEvent> + 'a {
        (0..self.copies.len())
            .filter(move |&i| self.copies[i].project == project && !self.deleted(i))
            .map(|i| &self.copies[i])
    }

    /// The deduplicated events of `project` (the last copy of each that no deletion removed).
    pub fn live(&self, project: &str) -> Vec<&ModelEvent> {
        if !self.deletions.is_empty() || !self.filtered.is_empty() {
            let mut latest = HashMap::new();
            for i in (0..self.copies.len()).filter(|&i| self.copies[i].project == project && !self.deleted(i)) {
                latest.insert(self.copies[i].dedup_key(), i);
            }
            let mut idx: Vec<usize> = latest.into_values().collect();
            idx.sort_unstable();
            return idx.into_iter().map(|i| &self.copies[i]).collect();
        }
        let mut idx: Vec<usize> = self.latest.iter().filter(|((p, ..), _)| p == project).map(|(_, &i)| i).collect();
        idx.sort_unstable();
        idx.into_iter().map(|i| &self.copies[i]).collect()
    }

    /// Events of `project` before `cutoff_ms` are past retention from now on (`None`: kept forever).
    pub fn set_retention_cutoff(&mut self, project: &str, cutoff_ms: Option<i64>) {
        match cutoff_ms {
            Some(c) => self.cutoffs.insert(project.to_string(), c),
            None => self.cutoffs.remove(project),
        };
    }

    /// Whether `e` is past its project's retention.
    pub fn expired(&self, e: &ModelEvent) -> bool {
        self.cutoffs.get(&e.project).is_some_and(|c| e.time_ms < *c)
    }

    /// What `POST /v1/query` must answer for `q` (same JSON as sent to the daemon).
    pub fn answer(&self, q: &Value) -> Answer {
        let project = q.get("project").and_then(Value::as_str).unwrap_or("default");
        let from = q["from"].as_i64().expect("model queries carry from");
        let to = q["to"].as_i64().expect("model queries carry to");
        let event = q.get("event").and_then(Value::as_str);
        let filters: Vec<&Value> =
            q.get("where").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
        let group_by = q.get("group_by").and_then(Value::as_str);
        let mut ans = Answer::default();
        for e in self.live(project) {
            if e.time_ms < from || e.time_ms >= to || self.expired(e) {
                continue;
            }
            if event.is_some_and(|name| name != e.event) {
                continue;
            }
            if !filters.iter().all(|f| filter_matches(e, f)) {
                continue;
            }
            ans.total += 1;
            if let Some(g) = group_by {
                let key = if g == "event" {
                    Value::String(e.event.clone())
                } else {
                    let name = g.strip_prefix("properties.").expect("model group_by is event or properties.X");
                    e.property(name).unwrap_or(Value::Null)
                };
                *ans.groups.entry(canon(&key)).or_default() += 1;
            }
        }
        ans
    }
}

fn filter_matches(e: &ModelEvent, f: &Value) -> bool {
    let name = f["property"].as_str().expect("filter has a property");
    let op = f["op"].as_str().expect("filter has an op");
    let got = e.property(name);
    let want = f.get("value").unwrap_or(&Value::Null);
    match op {
        "exists" => got.is_some_and(|v| !v.is_null()),
        "eq" => got.is_some_and(|v| json_eq(&v, want)),
        "neq" => !got.is_some_and(|v| json_eq(&v, want)),
        "lt" | "lte" | "gt" | "gte" => {
            let Some(v) = got else { return false };
            let ord = match (&v, want) {
                (Value::Number(a), Value::Number(b)) => a.as_f64().unwrap().partial_cmp(&b.as_f64().unwrap()),
                (Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
                _ => None,
            };
            let Some(ord) = ord else { return false };
            match op {
                "lt" => ord.is_lt(),
                "lte" => ord.is_le(),
                "gt" => ord.is_gt(),
                _ => ord.is_ge(),
            }
        }
        other => panic!("model does not know op {other}"),
    }
}

/// JSON equality with numbers compared numerically (3 == 3.0), recursively.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Compares a daemon query response with the model's answer. Returns a readable explanation of every difference,
/// including violations of the row order (count desc, then key; key order is only checked between string keys,
/// the one case the contract makes unambiguous).
pub fn check_answer(q: &Value, got: &Value, want: &Answer) -> Result<(), String> {
    let mut errs = String::new();
    if got["total"].as_u64() != Some(want.total) {
        let _ = writeln!(errs, "total: expected {}, got {}", want.total, got["total"]);
    }
    let Some(rows) = got["rows"].as_array() else {
        return Err(format!("query {q}\nresponse has no rows array: {got}"));
    };
    let mut got_groups: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows {
        let key = canon(r.get("key").unwrap_or(&Value::String("<missing key field>".into())));
        let count = r["count"].as_u64().unwrap_or(u64::MAX);
        if got_groups.insert(key.clone(), count).is_some() {
            let _ = writeln!(errs, "group key {key} appears twice");
        }
    }
    if q.get("group_by").is_none() && !rows.is_empty() {
        let _ = writeln!(errs, "rows must be empty without group_by, got {} rows", rows.len());
    }
    for (k, &c) in &want.groups {
        match got_groups.get(k) {
            None => {
                let _ = writeln!(errs, "group {k}: expected {c}, missing");
            }
            Some(&g) if g != c => {
                let _ = writeln!(errs, "group {k}: expected {c}, got {g}");
            }
            _ => {}
        }
    }
    for (k, g) in &got_groups {
        if !want.groups.contains_key(k) {
            let _ = writeln!(errs, "group {k}: expected none, got {g}");
        }
    }
    for w in rows.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let (ca, cb) = (a["count"].as_u64().unwrap_or(0), b["count"].as_u64().unwrap_or(0));
        if ca < cb {
            let _ = writeln!(errs, "rows not sorted by count desc: {a} before {b}");
        } else if ca == cb {
            if let (Some(ka), Some(kb)) = (a["key"].as_str(), b["key"].as_str()) {
                if ka.as_bytes() > kb.as_bytes() {
                    let _ = writeln!(errs, "rows with equal count not sorted by key: {a} before {b}");
                }
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("query {q}\n{errs}response: {got}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(name: &str, did: Value, time: Value, id: Option<&str>, extra: Value) -> Value {
        let mut p = extra.as_object().cloned().unwrap_or_default();
        p.insert("time".into(), time);
        p.insert("distinct_id".into(), did);
        if let Some(id) = id {
            p.insert("$insert_id".into(), json!(id));
        }
        json!({"event": name, "properties": p})
    }

    #[test]
    fn last_copy_wins_across_time_units_and_id_types() {
        let mut m = Model::new();
        m.ack("p", &[ev("A", json!(42), json!(1_700_000_000), Some("x"), json!({"$os": "iOS"}))]);
        m.ack("p", &[ev("A", json!("42"), json!(1_700_000_000_000i64), Some("x"), json!({"$os": "Android"}))]);
        m.ack("p", &[ev("A", json!("42"), json!(1_700_000_000_001i64), Some("x"), json!({"$os": "iOS"}))]);
        let q = json!({"project": "p", "from": 0, "to": 2_000_000_000_000i64, "group_by": "properties.$os"});
        let a = m.answer(&q);
        assert_eq!(a.total, 2);
        assert_eq!(a.groups.get("\"Android\""), Some(&1));
        assert_eq!(a.groups.get("\"iOS\""), Some(&1));
    }

    #[test]
    fn filter_ops_follow_the_contract() {
        let mut m = Model::new();
        m.ack(
            "p",
            &[
                ev("A", json!("u1"), json!(1_700_000_000), Some("1"), json!({"n": 3, "s": "b"})),
                ev("A", json!("u2"), json!(1_700_000_000), Some("2"), json!({"n": 3.0, "s": 5})),
                ev("A", json!("u3"), json!(1_700_000_000), Some("3"), json!({"n": "3", "s": null})),
                ev("A", json!("u4"), json!(1_700_000_000), Some("4"), json!({})),
            ],
        );
        let count = |prop: &str, op: &str, v: Value| {
            m.answer(&json!({"project": "p", "from": 0, "to": i64::MAX, "where": [{"property": prop, "op": op, "value": v}]}))
                .total
        };
        assert_eq!(count("n", "eq", json!(3)), 2);
        assert_eq!(count("n", "neq", json!(3)), 2);
        assert_eq!(count("n", "gte", json!(3)), 2);
        assert_eq!(count("n", "lt", json!("4")), 1);
        assert_eq!(count("s", "gt", json!("a")), 1);
        assert_eq!(count("s", "exists", Value::Null), 2);
        assert_eq!(count("distinct_id", "lte", json!("u2")), 2);
    }

    #[test]
    fn a_retention_cutoff_hides_older_events_of_its_project_only() {
        let mut m = Model::new();
        let t = 1_700_000_000_000i64;
        m.ack(
            "p",
            &[
                ev("A", json!("u"), json!(t), Some("1"), json!({})),
                ev("A", json!("u"), json!(t + 10), Some("2"), json!({})),
            ],
        );
        m.ack("q", &[ev("A", json!("u"), json!(t), Some("1"), json!({}))]);
        let all = |p: &str| json!({"project": p, "from": 0, "to": i64::MAX});
        m.set_retention_cutoff("p", Some(t + 1));
        assert_eq!((m.answer(&all("p")).total, m.answer(&all("q")).total), (1, 1));
        m.set_retention_cutoff("p", None);
        assert_eq!(m.answer(&all("p")).total, 2);
    }
}

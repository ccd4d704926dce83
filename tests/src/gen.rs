//! A small deterministic generator of Mixpanel-shaped events for the end-to-end tests (independent of `tierd gen`).
//!
//! It varies everything the contract lets vary: time as int seconds, float seconds (exact binary fractions only),
//! int ms and float ms; `distinct_id` as string or number; properties that are missing, null, numbers of both
//! kinds, numeric strings, booleans and nested objects/arrays; request bodies as JSON array or NDJSON, gzip or not,
//! with each accepted Content-Type (or none).

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::mp::{array_body, gzip, ndjson_body, time_ms, MS_PER_DAY};

pub const EVENT_NAMES: [&str; 5] = ["Signup", "Purchase", "View", "Share", "Logout"];
pub const OSES: [&str; 4] = ["iOS", "Android", "Windows", "Linux"];
pub const PLANS: [&str; 3] = ["free", "pro", "team"];

pub struct EventGen {
    pub rng: StdRng,
    next: u64,
    /// First UTC day (days since epoch) of generated event times.
    pub day0: i64,
    /// Number of days event times spread over.
    pub days: i64,
}

impl EventGen {
    pub fn new(seed: u64, day0: i64, days: i64) -> EventGen {
        EventGen { rng: StdRng::seed_from_u64(seed), next: 0, day0, days }
    }

    /// A fresh event with a unique `$insert_id` (`ins-NNNNN`; every 50th is exactly 128 bytes long).
    pub fn event(&mut self) -> Value {
        let i = self.next;
        self.next += 1;
        let r = &mut self.rng;
        let day = self.day0 + r.random_range(0..self.days);
        let ms = day * MS_PER_DAY + r.random_range(0..MS_PER_DAY);
        let insert_id = if i % 50 == 49 { format!("{:-<128}", format!("ins-{i:05}")) } else { format!("ins-{i:05}") };
        let k: u32 = r.random_range(0..25);
        let did = if r.random_bool(0.15) { json!(1000 + k) } else { json!(format!("user_{k:02}")) };
        let mut p = Map::new();
        p.insert("seq".into(), json!(i));
        if r.random_bool(0.9) {
            p.insert("$os".into(), json!(*OSES.choose(r).unwrap()));
        }
        match r.random_range(0..20) {
            0..10 => {
                p.insert("price".into(), json!(r.random_range(0..100)));
            }
            10..15 => {
                let frac = *[0.25, 0.5, 0.75].choose(r).unwrap();
                p.insert("price".into(), json!(r.random_range(0..100) as f64 + frac));
            }
            15..17 => {
                p.insert("price".into(), json!(r.random_range(0..100).to_string()));
            }
            _ => {}
        }
        match r.random_range(0..5) {
            0 | 1 => {
                p.insert("plan".into(), json!(*PLANS.choose(r).unwrap()));
            }
            2 => {
                p.insert("plan".into(), Value::Null);
            }
            _ => {}
        }
        match r.random_range(0..6) {
            0 => {
                p.insert("qty".into(), json!(3));
            }
            1 => {
                p.insert("qty".into(), json!(3.0));
            }
            2 => {
                p.insert("qty".into(), json!(7));
            }
            _ => {}
        }
        if r.random_bool(0.3) {
            let t = r.random_range(0..3);
            p.insert(
                "meta".into(),
                json!({"tags": ["a", t], "depth": {"x": t, "ok": t == 1, "nil": null}, "note": "ünïcödé ✓ \"q\""}),
            );
        }
        p.insert("flag".into(), json!(r.random_bool(0.5)));
        p.insert("distinct_id".into(), did);
        p.insert("$insert_id".into(), json!(insert_id));
        let time = time_repr(r, ms);
        p.insert("time".into(), time);
        json!({"event": *EVENT_NAMES.choose(r).unwrap(), "properties": p})
    }

    /// `n` fresh events.
    pub fn events(&mut self, n: usize) -> Vec<Value> {
        (0..n).map(|_| self.event()).collect()
    }

    /// A copy with the same dedup key (event, distinct_id, time ms, insert id) but changed properties (`$os` always
    /// changes), sent with a possibly different representation of the time and of a numeric-looking distinct_id.
    pub fn changed_copy(&mut self, orig: &Value) -> Value {
        let r = &mut self.rng;
        let mut e = orig.clone();
        let p = e["properties"].as_object_mut().unwrap();
        let ms = time_ms(&p["time"]);
        p.insert("time".into(), time_repr(r, ms));
        let did = match &p["distinct_id"] {
            Value::Number(n) => Value::String(n.to_string()),
            Value::String(s) if s.parse::<u32>().is_ok() => json!(s.parse::<u32>().unwrap()),
            other => other.clone(),
        };
        p.insert("distinct_id".into(), did);
        let old_os = p.get("$os").and_then(Value::as_str).unwrap_or("").to_string();
        let new_os = OSES.iter().copied().filter(|o| *o != old_os).collect::<Vec<_>>();
        p.insert("$os".into(), json!(*new_os.choose(r).unwrap()));
        if r.random_bool(0.5) {
            p.insert("price".into(), json!(r.random_range(100..200)));
        }
        if r.random_bool(0.3) {
            p.remove("plan");
        }
        p.insert("resent".into(), json!(true));
        e
    }

    /// Splits `events` into batches of 1..=max events, in order.
    pub fn batches(&mut self, events: Vec<Value>, max: usize) -> Vec<Vec<Value>> {
        let mut out = Vec::new();
        let mut it = events.into_iter().peekable();
        while it.peek().is_some() {
            let n = self.rng.random_range(1..=max);
            out.push(it.by_ref().take(n).collect());
        }
        out
    }

    pub fn encoding(&mut self) -> Encoding {
        *Encoding::ALL.choose(&mut self.rng).unwrap()
    }
}

/// A time in ms as one of the contract's accepted representations. Int seconds only when exact; float seconds only
/// with an exact binary fraction, so rounding and truncation agree.
fn time_repr(r: &mut StdRng, ms: i64) -> Value {
    let sub = ms % 1000;
    match r.random_range(0..4) {
        0 if sub == 0 => json!(ms / 1000),
        1 if [0, 125, 250, 375, 500, 625, 750, 875].contains(&sub) => json!(ms as f64 / 1000.0),
        3 => json!(ms as f64),
        _ => json!(ms),
    }
}

/// How a batch is put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// JSON array, `Content-Type: application/json`.
    Array,
    /// JSON array, no Content-Type.
    ArrayNoType,
    /// NDJSON, `application/x-ndjson`.
    Ndjson,
    /// NDJSON, `text/plain`.
    NdjsonText,
    /// gzip of a JSON array, `application/json` + `Content-Encoding: gzip`.
    GzipArray,
    /// gzip of NDJSON, `application/x-ndjson` + `Content-Encoding: gzip`.
    GzipNdjson,
}

impl Encoding {
    pub const ALL: [Encoding; 6] = [
        Encoding::Array,
        Encoding::ArrayNoType,
        Encoding::Ndjson,
        Encoding::NdjsonText,
        Encoding::GzipArray,
        Encoding::GzipNdjson,
    ];

    pub fn encode(self, events: &[Value]) -> (Vec<u8>, Vec<(&'static str, &'static str)>) {
        match self {
            Encoding::Array => (array_body(events), vec![("content-type", "application/json")]),
            Encoding::ArrayNoType => (array_body(events), vec![]),
            Encoding::Ndjson => (ndjson_body(events), vec![("content-type", "application/x-ndjson")]),
            Encoding::NdjsonText => (ndjson_body(events), vec![("content-type", "text/plain")]),
            Encoding::GzipArray => {
                (gzip(&array_body(events)), vec![("content-type", "application/json"), ("content-encoding", "gzip")])
            }
            Encoding::GzipNdjson => (
                gzip(&ndjson_body(events)),
                vec![("content-type", "application/x-ndjson"), ("content-encoding", "gzip")],
            ),
        }
    }
}

/// Re-sends of every `every`-th event (from the first) with `properties.v = 2`: the same dedup key (event,
/// distinct_id, time, insert id) with a changed property, so dedup keeps the later copy and re-encode moves the
/// earlier one to a side segment.
pub fn resent_with_v2(events: &[Value], every: usize) -> Vec<Value> {
    events
        .iter()
        .step_by(every)
        .map(|e| {
            let mut e = e.clone();
            e["properties"]["v"] = json!(2);
            e
        })
        .collect()
}

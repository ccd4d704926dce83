//! Times the ingest hot path of the codecs crate on a realistic body, given both as a JSON array and as NDJSON, for
//! both ways through it, validation and frame encoding timed separately:
//!
//! - [`parse_batch`] then [`FrameBody::encode`]: events with properties as a `serde_json::Map`;
//! - [`parse_batch_rows`] then [`FrameBody::encode_rows`]: rows with properties as canonical JSON text (the same
//!   frames, byte for byte; checked here before timing).
//!
//! Run with `cargo run -p tierd-codecs --release --example parse_bench [events] [runs] [only]`, where `only` keeps
//! the measurements whose name contains it (e.g. `rows`, to profile one path).
//!
//! The body has 2000 events of about 575 bytes each (printed), shaped like what Mixpanel SDKs send: keys in insertion
//! order, typed properties (strings, integers, floats, booleans, nulls), a nested cart object with an array of
//! objects, a string array, non-ASCII and escaped text, times in seconds, milliseconds and float seconds, numeric
//! and string `distinct_id`s, and a `$insert_id` on most events (the rest get a derived one). It is generated from a
//! fixed seed, so runs are comparable. Each figure is the median of `runs` timed passes (after one warm-up pass),
//! per event; a parse pass includes dropping its result, as the daemon drops it after encoding.
//!
//! (The crate itself never reads a clock; a benchmark has to.)

#![allow(clippy::disallowed_methods)] // a benchmark measures wall time itself (codecs has no clock)

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tierd_codecs::{parse_batch, parse_batch_rows, BatchLimits, EventRow, FrameBody};

#[path = "common/rng.rs"]
#[allow(dead_code, reason = "this benchmark uses only some of the shared generator's draws")]
mod rng;
use rng::Rng;

const EVENTS: [&str; 8] =
    ["Page View", "Button Click", "Add To Cart", "Purchase", "Search", "Sign Up", "Video Play", "Settings Changed"];
const CITIES: [(&str, &str, &str); 6] = [
    ("San Francisco", "California", "US"),
    ("São Paulo", "São Paulo", "BR"),
    ("Paris", "Île-de-France", "FR"),
    ("Tokyo", "東京都", "JP"),
    ("London", "England", "GB"),
    ("Bengaluru", "Karnataka", "IN"),
];
const BROWSERS: [&str; 4] = ["Chrome", "Firefox", "Safari", "Edge"];
const PAGES: [&str; 6] = ["/", "/pricing", "/docs/getting-started", "/cart", "/checkout", "/search?q=running+shoes"];

/// One record as JSON text.
fn record(rng: &mut Rng, i: usize) -> String {
    let base_ms: i64 = 1_700_000_000_000 + i as i64 * 1_337;
    let time = match rng.below(4) {
        0 => json!(base_ms / 1000),
        1 => json!(base_ms as f64 / 1000.0),
        _ => json!(base_ms),
    };
    let distinct_id = match rng.below(10) {
        0 => json!(rng.below(1_000_000)),
        1..=6 => json!(format!("u_{:06}", rng.below(100_000))),
        _ => json!(format!("$device:{}-{}", rng.hex(8), rng.hex(12))),
    };
    let (city, region, _) = rng.pick(&CITIES);
    let mut p: Vec<(&str, Value)> = vec![("time", time), ("distinct_id", distinct_id)];
    if rng.chance(85) {
        p.push(("$insert_id", json!(rng.hex(32))));
    }
    p.push(("$os", json!(rng.pick(&["Windows", "Mac OS X", "iOS", "Android"]))));
    p.push(("$browser", json!(rng.pick(&BROWSERS))));
    p.push(("$browser_version", json!(118 + rng.below(14))));
    p.push(("$screen_width", json!(rng.pick(&[1920, 1440, 390, 412]))));
    p.push(("$screen_height", json!(rng.pick(&[1080, 900, 844, 915]))));
    p.push(("$city", if rng.chance(5) { Value::Null } else { json!(city) }));
    p.push(("$region", json!(region)));
    let page = rng.pick(&PAGES);
    p.push(("$current_url", json!(format!("https://shop.example.com{page}"))));
    p.push(("$referrer", json!(rng.pick(&["https://www.google.com/", "$direct"]))));
    p.push(("page_title", json!(format!("Shop \u{2013} \"{}\"", &page[1..]))));
    p.push(("$wifi", json!(rng.chance(70))));
    p.push(("coupon", Value::Null));
    let items: Vec<Value> = (0..if rng.chance(25) { 2 } else { 1 })
        .map(|_| {
            json!({
                "product_id": format!("sku_{:05}", rng.below(480)),
                "price": (rng.below(30_000) as f64) / 100.0 + 0.99,
                "quantity": 1 + rng.below(3),
            })
        })
        .collect();
    let count = items.len();
    p.push(("cart", json!({"items": items, "item_count": count, "total": 59.97})));
    p.push(("tags", json!(["summer", "sale", rng.pick(&["new", "returning"])])));
    let mut properties = String::from("{");
    for (i, (key, value)) in p.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(properties, "{sep}{}:{value}", Value::from(*key));
    }
    properties.push('}');
    format!("{{\"event\":{},\"properties\":{properties}}}", Value::from(rng.pick(&EVENTS)))
}

/// Median wall time of `runs` passes of `f` (after one warm-up pass).
fn median<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    black_box(f());
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn per_event_us(total: Duration, events: usize) -> f64 {
    total.as_secs_f64() * 1e6 / events as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(2000, |a| a.parse().expect("events: a number"));
    let runs: usize = args.next().map_or(31, |a| a.parse().expect("runs: a number"));
    // Only the measurements whose name contains this (e.g. `rows`), to profile one path.
    let only = args.next().unwrap_or_default();

    let mut rng = Rng::new(0x7133_D5EE_D000_0001);
    let records: Vec<String> = (0..n).map(|i| record(&mut rng, i)).collect();
    let array = format!("[{}]", records.join(",")).into_bytes();
    let ndjson = records.iter().map(|r| format!("{r}\n")).collect::<String>().into_bytes();
    let limits = BatchLimits { max_events: n, ..BatchLimits::MIXPANEL };

    println!(
        "{n} events, {:.0} bytes/event (array body {} bytes, NDJSON body {} bytes); median of {runs} runs",
        array.len() as f64 / n as f64,
        array.len(),
        ndjson.len()
    );
    println!("first event: {}", records[0]);
    for (name, body) in [("array", &array), ("ndjson", &ndjson)] {
        let events = parse_batch(body, &limits).expect("the benchmark body is valid");
        assert_eq!(events.len(), n);
        let rows = parse_batch_rows(body, &limits).expect("the benchmark body is valid");
        let row_refs: Vec<EventRow<'_>> = rows.iter().collect();
        assert_eq!(FrameBody::encode_rows(&row_refs), FrameBody::encode(&events), "both paths give the same frame");

        let label = format!("{name} parse_batch + encode");
        if label.contains(&only) {
            let parse = median(runs, || parse_batch(black_box(body), &limits));
            let encode = median(runs, || FrameBody::encode(black_box(&events)));
            report(&label, body.len(), n, parse, encode);
        }
        let label = format!("{name} parse_batch_rows + encode_rows");
        if label.contains(&only) {
            let parse = median(runs, || parse_batch_rows(black_box(body), &limits));
            let encode = median(runs, || FrameBody::encode_rows(&black_box(&rows).iter().collect::<Vec<_>>()));
            report(&label, body.len(), n, parse, encode);
        }
    }
}

fn report(name: &str, body_len: usize, n: usize, parse: Duration, encode: Duration) {
    println!(
        "{name:>38}: parse {:6.3} µs/event  encode {:6.3} µs/event  total {:6.3} µs/event  ({:4.0} MB/s parse)",
        per_event_us(parse, n),
        per_event_us(encode, n),
        per_event_us(parse + encode, n),
        body_len as f64 / parse.as_secs_f64() / 1e6,
    );
}

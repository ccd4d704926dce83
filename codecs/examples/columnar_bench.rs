//! Measures the columnar format's choices on realistic events: the sort order inside a segment, the rows per row
//! group, and the compression, by bytes per event and by the speed of the scans tierd runs most.
//!
//! Run with `cargo run -p tierd-codecs --release --example columnar_bench -- [--events N] [--runs R]
//! [--only sort|rows|codec|columns] [--out FILE]` (defaults: 400,000 events, 5 runs, every section). With `--out`, the
//! segment written with the default spec is also saved to FILE, for checking it with other Parquet readers (e.g.
//! DuckDB).
//!
//! The events are one UTC day of one project, generated from a fixed seed, shaped like what Mixpanel SDKs send
//! (about 500 bytes each as `/import` JSON, printed): 40 event names with Zipf-like frequencies, 50,000 users with
//! Zipf-like activity, each with stable device and location properties (OS, browser, screen, city, ...), a daily
//! traffic curve, event-specific properties (cart items on purchases, search queries, video positions, ...), some
//! nulls and a property whose type varies. Sequence numbers follow arrival order: time order with some late events.
//!
//! Scans (each a [`scan`] of the segment from memory, counting matches, no properties requested; the median of
//! `runs` passes over all the queries of a kind, divided by their number):
//! - *open*: a scan with an empty window, i.e. the fixed cost of reading the footer and page index;
//! - *1h one event*: count of one event name in a one-hour window; 24 windows x 3 names (the most frequent, the
//!   10th and the 30th);
//! - *1d one event*: count of one event name over the whole day; the same 3 names;
//! - *1h all*: count of all events in a one-hour window; 24 windows;
//! - *decode*: the whole segment back to events, per event.
//!
//! Section `columns` shows where the bytes go: compressed bytes per event of each column, per sort order.
//!
//! Every count is checked against the generated events, and the default encoding is checked to decode back to
//! exactly the generated events. (The crate itself never reads a clock; a benchmark has to.)

#![allow(clippy::disallowed_methods)] // a benchmark measures wall time itself (codecs has no clock)

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parquet::file::metadata::ParquetMetaDataReader;
use serde_json::{json, Map, Value};
use tierd_codecs::columnar::{
    decode, encode_with_order, read_meta, scan, CodecSpec, Compression, ScanRequest, SegmentInfo, SortOrder,
};
use tierd_codecs::{Event, StoredEvent};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

const EVENT_NAMES: [&str; 40] = [
    "Page View",
    "Button Click",
    "Screen View",
    "Search",
    "Add To Cart",
    "Product Viewed",
    "Session Start",
    "Video Play",
    "Scroll",
    "Form Submit",
    "Purchase",
    "Sign Up",
    "Login",
    "Logout",
    "Share",
    "Like",
    "Comment",
    "Notification Opened",
    "Settings Changed",
    "Checkout Started",
    "Coupon Applied",
    "Remove From Cart",
    "Wishlist Add",
    "Review Submitted",
    "Subscription Started",
    "Subscription Cancelled",
    "Invite Sent",
    "Profile Updated",
    "Password Reset",
    "Error Shown",
    "Video Complete",
    "Download",
    "Upload",
    "Filter Applied",
    "Sort Changed",
    "Tab Switched",
    "App Backgrounded",
    "App Foregrounded",
    "Experiment Viewed",
    "Survey Answered",
];
const CITIES: [(&str, &str, &str); 8] = [
    ("San Francisco", "California", "US"),
    ("New York", "New York", "US"),
    ("São Paulo", "São Paulo", "BR"),
    ("Paris", "Île-de-France", "FR"),
    ("Tokyo", "東京都", "JP"),
    ("London", "England", "GB"),
    ("Bengaluru", "Karnataka", "IN"),
    ("Berlin", "Berlin", "DE"),
];
const DEVICES: [(&str, &str, i64, i64); 6] = [
    ("Windows", "Chrome", 1920, 1080),
    ("Mac OS X", "Safari", 1440, 900),
    ("Mac OS X", "Chrome", 1680, 1050),
    ("iOS", "Mobile Safari", 390, 844),
    ("Android", "Chrome", 412, 915),
    ("Linux", "Firefox", 1920, 1200),
];
const PAGES: [&str; 8] =
    ["/", "/pricing", "/docs/getting-started", "/cart", "/checkout", "/search", "/product/running-shoes", "/blog"];

/// A user's stable properties.
struct User {
    distinct_id: String,
    device: (&'static str, &'static str, i64, i64),
    browser_version: i64,
    city: (&'static str, &'static str, &'static str),
    plan: &'static str,
    app_version: &'static str,
    experiment: Value,
    segment: &'static str,
    session_seed: u64,
}

fn users(rng: &mut Rng, n: usize) -> Vec<User> {
    (0..n)
        .map(|i| User {
            distinct_id: if rng.chance(70) { format!("u_{i:06}") } else { format!("$device:{}", rng.hex(16)) },
            device: rng.pick(&DEVICES),
            browser_version: 110 + rng.below(20) as i64,
            city: rng.pick(&CITIES),
            plan: rng.pick(&["free", "free", "free", "pro", "team"]),
            app_version: rng.pick(&["3.2.0", "3.2.1", "3.3.0"]),
            // A property whose type varies between users: mostly an integer group, sometimes a label.
            experiment: if rng.chance(80) { json!(rng.below(4)) } else { json!(rng.pick(&["control", "variant"])) },
            segment: rng.pick(&["new", "returning"]),
            session_seed: rng.next(),
        })
        .collect()
}

fn event(rng: &mut Rng, users: &[User], day_start_ms: i64) -> Event {
    let user = &users[rng.zipf(users.len())];
    let name = EVENT_NAMES[rng.zipf(EVENT_NAMES.len())];
    // Daily traffic curve: more events in the (UTC) afternoon and evening.
    let time_ms = loop {
        let t = rng.below(86_400_000) as i64;
        let hour = t as f64 / 3_600_000.0;
        let weight = 0.55 + 0.45 * ((hour - 16.0) / 24.0 * std::f64::consts::TAU).cos();
        if rng.unit() < weight {
            break day_start_ms + t;
        }
    };
    let (os, browser, width, height) = user.device;
    let (city, region, country) = user.city;
    let page = rng.pick(&PAGES);
    let mut p = Map::new();
    p.insert("$os".into(), json!(os));
    p.insert("$browser".into(), json!(browser));
    p.insert("$browser_version".into(), json!(user.browser_version));
    p.insert("$screen_width".into(), json!(width));
    p.insert("$screen_height".into(), json!(height));
    p.insert("$city".into(), if rng.chance(5) { Value::Null } else { json!(city) });
    p.insert("$region".into(), json!(region));
    p.insert("mp_country_code".into(), json!(country));
    p.insert("$current_url".into(), json!(format!("https://shop.example.com{page}")));
    p.insert("$referrer".into(), json!(rng.pick(&["https://www.google.com/", "$direct", "https://t.co/x"])));
    p.insert("app_version".into(), json!(user.app_version));
    p.insert("plan".into(), json!(user.plan));
    p.insert("experiment_group".into(), user.experiment.clone());
    p.insert("$wifi".into(), json!(rng.chance(70)));
    // A user's session changes every few hours of the day.
    p.insert(
        "session_id".into(),
        json!(format!("{:012x}", (user.session_seed + (time_ms / 10_800_000) as u64) & 0xffff_ffff_ffff)),
    );
    p.insert("tags".into(), json!(["sale", user.segment]));
    match name {
        "Purchase" | "Checkout Started" | "Add To Cart" | "Remove From Cart" => {
            let items: Vec<Value> = (0..1 + rng.below(3))
                .map(|_| {
                    json!({
                        "product_id": format!("sku_{:05}", rng.zipf(5000)),
                        "price": (rng.below(30_000) as f64) / 100.0 + 0.99,
                        "quantity": 1 + rng.below(3),
                    })
                })
                .collect();
            p.insert("revenue".into(), json!((rng.below(50_000) as f64) / 100.0 + 0.5));
            p.insert("currency".into(), json!(rng.pick(&["USD", "EUR", "BRL"])));
            p.insert("cart".into(), json!({"items": items}));
            p.insert("coupon".into(), if rng.chance(90) { Value::Null } else { json!("SUMMER10") });
        }
        "Search" | "Filter Applied" => {
            p.insert("query".into(), json!(rng.pick(&["running shoes", "socks", "rain jacket", "trail", "sale"])));
            p.insert("results".into(), json!(rng.below(200)));
        }
        "Video Play" | "Video Complete" => {
            p.insert("video_id".into(), json!(format!("vid_{}", rng.zipf(300))));
            p.insert("position_s".into(), json!(rng.below(6000) as f64 / 10.0));
        }
        "Button Click" => {
            p.insert("button".into(), json!(rng.pick(&["buy", "menu", "close", "next", "back"])));
        }
        _ => {}
    }
    let insert_id = rng.hex(32);
    Event { event: name.to_owned(), time_ms, distinct_id: user.distinct_id.clone(), insert_id, properties: p }
}

/// One day of events with sequence numbers in arrival order (time order, 2% of events arriving up to an hour late).
fn generate(n: usize, day_start_ms: i64) -> Vec<StoredEvent> {
    let mut rng = Rng::new(0xC011_0AA2_5EED_0001);
    let users = users(&mut rng, 50_000);
    let mut events: Vec<(i64, Event)> = (0..n)
        .map(|_| {
            let e = event(&mut rng, &users, day_start_ms);
            let late = if rng.chance(2) { rng.below(3_600_000) as i64 } else { 0 };
            (e.time_ms + late, e)
        })
        .collect();
    events.sort_by_key(|(arrival, _)| *arrival);
    events.into_iter().enumerate().map(|(i, (_, event))| StoredEvent { seq: 1_000 + i as u64, event }).collect()
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

/// Queries as (from, to, event); `expected` counts by (window start, event) for one-hour and whole-day windows.
struct Queries {
    open: Vec<(i64, i64, Option<String>)>,
    one_event: Vec<(i64, i64, Option<String>)>,
    day_one_event: Vec<(i64, i64, Option<String>)>,
    all: Vec<(i64, i64, Option<String>)>,
    expected: HashMap<(i64, Option<String>), u64>,
}

fn queries(events: &[StoredEvent], day_start_ms: i64) -> Queries {
    let names = [EVENT_NAMES[0], EVENT_NAMES[9], EVENT_NAMES[29]];
    let hours: Vec<(i64, i64)> =
        (0..24).map(|h| (day_start_ms + h * 3_600_000, day_start_ms + (h + 1) * 3_600_000)).collect();
    let mut expected = HashMap::new();
    for e in events {
        let hour = day_start_ms + (e.event.time_ms - day_start_ms) / 3_600_000 * 3_600_000;
        *expected.entry((hour, None)).or_insert(0) += 1;
        *expected.entry((hour, Some(e.event.event.clone()))).or_insert(0) += 1;
        // Whole-day windows are keyed one ms before the day, so they never collide with the first hour.
        *expected.entry((day_start_ms - 1, Some(e.event.event.clone()))).or_insert(0) += 1;
    }
    let day = |n: &str| (day_start_ms - 1, day_start_ms + 86_400_000, Some(n.to_owned()));
    Queries {
        open: vec![(day_start_ms, day_start_ms, None); 24],
        one_event: hours.iter().flat_map(|&(from, to)| names.map(|n| (from, to, Some(n.to_owned())))).collect(),
        day_one_event: names.iter().map(|n| day(n)).collect(),
        all: hours.into_iter().map(|(from, to)| (from, to, None)).collect(),
        expected,
    }
}

/// Runs every query once, checking counts; returns (row groups read, rows read) summed over the queries.
fn run(
    bytes: &Bytes,
    queries: &[(i64, i64, Option<String>)],
    expected: &HashMap<(i64, Option<String>), u64>,
) -> (usize, u64) {
    let (mut groups, mut rows) = (0, 0);
    for (from, to, event) in queries {
        let req = ScanRequest { from_ms: *from, to_ms: *to, event: event.clone(), properties: Some(Vec::new()) };
        let mut count = 0u64;
        let stats = scan(bytes.clone(), &req, |_| count += 1).expect("scan");
        if from < to {
            assert_eq!(count, expected.get(&(*from, event.clone())).copied().unwrap_or(0), "count of {req:?}");
        }
        groups += stats.row_groups_read;
        rows += stats.rows_read;
    }
    (groups, rows)
}

struct Measured {
    bytes_per_event: f64,
    encode_us_per_event: f64,
    /// Per kind of query: (µs per query, rows read per query).
    open: (f64, f64),
    one_event: (f64, f64),
    day_one_event: (f64, f64),
    all: (f64, f64),
    decode_us_per_event: f64,
    row_groups: usize,
}

fn measure(
    events: &[StoredEvent],
    q: &Queries,
    info: &SegmentInfo,
    spec: &CodecSpec,
    order: SortOrder,
    runs: usize,
) -> Measured {
    let n = events.len();
    let start = Instant::now();
    let encoded = encode_with_order(info, events, spec, order).expect("encode");
    let encode = start.elapsed();
    let bytes = Bytes::from(encoded);
    let timed = |queries: &[(i64, i64, Option<String>)]| {
        let (_, rows) = run(&bytes, queries, &q.expected);
        let time = median(runs, || run(&bytes, queries, &q.expected));
        (time.as_secs_f64() * 1e6 / queries.len() as f64, rows as f64 / queries.len() as f64)
    };
    let decode_time = median(runs.min(3), || decode(&bytes).expect("decode").1.len());
    Measured {
        bytes_per_event: bytes.len() as f64 / n as f64,
        encode_us_per_event: encode.as_secs_f64() * 1e6 / n as f64,
        open: timed(&q.open),
        one_event: timed(&q.one_event),
        day_one_event: timed(&q.day_one_event),
        all: timed(&q.all),
        decode_us_per_event: decode_time.as_secs_f64() * 1e6 / n as f64,
        row_groups: read_meta(&bytes).expect("read_meta").row_groups,
    }
}

fn header() {
    println!("| config | row groups | bytes/event | encode µs/event | open µs | 1h one event µs (rows read) | 1d one event µs (rows read) | 1h all µs (rows read) | decode µs/event |");
    println!("|---|---|---|---|---|---|---|---|---|");
}

fn report(label: &str, m: &Measured) {
    let query = |(us, rows): (f64, f64)| format!("{us:.0} ({rows:.0})");
    println!(
        "| {label} | {} | {:.1} | {:.2} | {:.0} | {} | {} | {} | {:.2} |",
        m.row_groups,
        m.bytes_per_event,
        m.encode_us_per_event,
        m.open.0,
        query(m.one_event),
        query(m.day_one_event),
        query(m.all),
        m.decode_us_per_event
    );
}

/// Compressed bytes per event of each column, for each sort order (default spec).
fn column_sizes(events: &[StoredEvent], info: &SegmentInfo) {
    let n = events.len() as f64;
    let mut sizes: Vec<(String, Vec<f64>)> = Vec::new();
    for (o, order) in SortOrder::ALL.into_iter().enumerate() {
        let bytes = Bytes::from(encode_with_order(info, events, &CodecSpec::default(), order).expect("encode"));
        let metadata = ParquetMetaDataReader::new().parse_and_finish(&bytes).expect("footer");
        for group in metadata.row_groups() {
            for chunk in group.columns() {
                let name = chunk.column_path().string();
                let slot = match sizes.iter().position(|(n, _)| *n == name) {
                    Some(i) => i,
                    None => {
                        sizes.push((name, vec![0.0; SortOrder::ALL.len()]));
                        sizes.len() - 1
                    }
                };
                sizes[slot].1[o] += chunk.compressed_size() as f64 / n;
            }
        }
    }
    sizes.sort_by(|a, b| b.1[0].total_cmp(&a.1[0]));
    println!("\n## Compressed bytes per event by column ({:?})\n", CodecSpec::default());
    println!("| column | {} |", SortOrder::ALL.map(|o| o.to_string()).join(" | "));
    println!("|---|---|---|---|");
    for (name, per_order) in &sizes {
        println!("| {name} | {} |", per_order.iter().map(|b| format!("{b:.2}")).collect::<Vec<_>>().join(" | "));
    }
}

fn main() {
    let (mut n, mut runs, mut only, mut out) = (400_000usize, 5usize, String::new(), None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--events" => n = value.parse().expect("--events: a number"),
            "--runs" => runs = value.parse().expect("--runs: a number"),
            "--only" => only = value,
            "--out" => out = Some(value),
            other => panic!("unknown flag {other}; see the example's doc comment"),
        }
    }

    let day = 19_700; // 2023-12-09
    let day_start_ms = i64::from(day) * 86_400_000;
    let events = generate(n, day_start_ms);
    let json_bytes: usize = events.iter().map(|e| e.event.to_mixpanel_json().to_string().len()).sum();
    println!("{n} events, {:.0} bytes/event as /import JSON; median of {runs} runs", json_bytes as f64 / n as f64);
    println!("first event: {}", events[0].event.to_mixpanel_json());
    let info = SegmentInfo { segment_id: "01HBENCH000000000000000000".into(), project: "bench".into(), day };
    let q = queries(&events, day_start_ms);

    // The default spec decodes back to exactly the generated events.
    let default = CodecSpec::default();
    let encoded = tierd_codecs::columnar::encode(&info, &events, &default).expect("encode");
    let (_, mut decoded) = decode(&encoded).expect("decode");
    decoded.sort_by_key(|e| e.seq);
    assert!(decoded == events, "the default encoding round-trips");
    let meta = read_meta(&encoded).expect("read_meta");
    println!(
        "default spec {:?}: {} shredded columns: {}; keys in _props: {}",
        default,
        meta.columns.len(),
        meta.columns.iter().map(|c| format!("{} ({:?})", c.key, c.kind)).collect::<Vec<_>>().join(", "),
        meta.props_keys.join(", ")
    );
    if let Some(path) = out {
        std::fs::write(&path, &encoded).expect("write the segment");
        println!("wrote {path} ({} bytes)", encoded.len());
        let mut counts: HashMap<&str, usize> = HashMap::new();
        events.iter().for_each(|e| *counts.entry(e.event.event.as_str()).or_default() += 1);
        let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = counts.iter().take(5).map(|(name, n)| format!("{name}: {n}")).collect();
        println!("events by name (to compare with other readers): {}, ...", top.join(", "));
    }

    if only.is_empty() || only == "sort" {
        println!("\n## Sort order (64K rows per row group)\n");
        header();
        for compression in [Compression::Lz4, Compression::Zstd(3)] {
            for order in SortOrder::ALL {
                let spec = CodecSpec { compression, row_group_rows: 65_536, dictionary: true, ..CodecSpec::default() };
                report(&format!("{compression}, {order}"), &measure(&events, &q, &info, &spec, order, runs));
            }
        }
    }
    if only.is_empty() || only == "rows" {
        println!("\n## Rows per row group (sort {}, lz4)\n", SortOrder::DEFAULT);
        header();
        for rows in [8_192, 16_384, 32_768, 65_536, 131_072, 262_144, 1_048_576] {
            let spec = CodecSpec {
                compression: Compression::Lz4,
                row_group_rows: rows,
                dictionary: true,
                ..CodecSpec::default()
            };
            report(&format!("{rows} rows"), &measure(&events, &q, &info, &spec, SortOrder::DEFAULT, runs));
        }
    }
    if only.is_empty() || only == "columns" {
        column_sizes(&events, &info);
    }
    if only.is_empty() || only == "codec" {
        println!("\n## Compression and dictionaries (sort {}, 64K rows)\n", SortOrder::DEFAULT);
        header();
        for compression in
            [Compression::None, Compression::Lz4, Compression::Zstd(1), Compression::Zstd(3), Compression::Zstd(19)]
        {
            for dictionary in [true, false] {
                let spec = CodecSpec { compression, row_group_rows: 65_536, dictionary, ..CodecSpec::default() };
                let label = format!("{compression}, dictionary {}", if dictionary { "on" } else { "off" });
                report(&label, &measure(&events, &q, &info, &spec, SortOrder::DEFAULT, runs));
            }
        }
    }
}

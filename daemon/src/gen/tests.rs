use std::collections::{HashMap, HashSet};

use rand::{RngCore as _, SeedableRng as _};
use serde_json::Value;

use super::config::{DAY_MS, HOUR_MS};
use super::diurnal::DiurnalClock;
use super::rng::{mix, Draw, StreamRng};
use super::*;

fn ndjson(config: &GenConfig) -> Vec<u8> {
    let mut out = Vec::new();
    Generator::new(config.clone()).unwrap().write_ndjson(&mut out).unwrap();
    out
}

fn lines(bytes: &[u8]) -> Vec<&str> {
    std::str::from_utf8(bytes).unwrap().lines().collect()
}

fn props(line: &str) -> serde_json::Map<String, Value> {
    let v: Value = serde_json::from_str(line).unwrap();
    v["properties"].as_object().unwrap().clone()
}

#[test]
fn same_seed_gives_identical_bytes() {
    let config = GenConfig::new(20_000, 3, 7);
    assert_eq!(ndjson(&config), ndjson(&config));
}

#[test]
fn different_seeds_give_different_streams() {
    let a = ndjson(&GenConfig::new(2_000, 3, 1));
    let b = ndjson(&GenConfig::new(2_000, 3, 2));
    let a_ids: HashSet<_> = lines(&a).iter().map(|l| props(l)["$insert_id"].clone()).collect();
    let b_ids: HashSet<_> = lines(&b).iter().map(|l| props(l)["$insert_id"].clone()).collect();
    assert!(a_ids.is_disjoint(&b_ids));
    assert_ne!(a, b);
}

#[test]
fn emits_exactly_the_requested_lines_and_unique_count() {
    for (events, dup_rate) in [(0, 0.02), (1, 0.5), (2, 0.5), (7, 0.3), (1_000, 0.0), (5_000, 0.5), (12_345, 0.02)] {
        let config = GenConfig { dup_rate, ..GenConfig::new(events, 2, 3) };
        let out = ndjson(&config);
        let lines = lines(&out);
        assert_eq!(lines.len() as u64, events, "events={events} dup_rate={dup_rate}");
        let ids: HashSet<_> = lines.iter().map(|l| props(l)["$insert_id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids.len() as u64, config.unique_events(), "events={events} dup_rate={dup_rate}");
        assert_eq!(config.unique_events() + config.duplicate_events(), events);
    }
}

#[test]
fn duplicates_match_the_rate_and_are_byte_identical_later_copies() {
    let config = GenConfig { dup_rate: 0.05, ..GenConfig::new(40_000, 5, 11) };
    let out = ndjson(&config);
    let mut first: HashMap<String, &str> = HashMap::new();
    let mut duplicates = 0u64;
    for line in lines(&out) {
        let id = props(line)["$insert_id"].as_str().unwrap().to_owned();
        match first.get(&id) {
            Some(original) => {
                assert_eq!(*original, line, "a re-send must be byte-identical to its original");
                duplicates += 1;
            }
            None => {
                first.insert(id, line);
            }
        }
    }
    assert_eq!(duplicates, config.duplicate_events());
    let rate = duplicates as f64 / config.events as f64;
    assert!((rate - 0.05).abs() < 0.001, "duplicate rate {rate}");
}

#[test]
fn every_line_is_a_mixpanel_event() {
    let out = ndjson(&GenConfig::new(20_000, 2, 5));
    for line in lines(&out) {
        let v: Value = serde_json::from_str(line).unwrap();
        let obj = v.as_object().unwrap();
        assert!(obj["event"].is_string(), "{line}");
        let p = obj["properties"].as_object().unwrap();
        assert!(p["time"].is_i64(), "{line}");
        assert!(!p["distinct_id"].as_str().unwrap().is_empty(), "{line}");
        let id = p["$insert_id"].as_str().unwrap();
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
        assert!(p["$session_id"].is_string(), "{line}");
        assert!(p["$os"].is_string(), "{line}");
    }
}

#[test]
fn times_stay_in_the_window_and_only_late_events_and_duplicates_go_back() {
    let config = GenConfig { late_rate: 0.03, ..GenConfig::new(60_000, 4, 9) };
    let window = config.window();
    let mut generator = Generator::new(config.clone()).unwrap();
    let mut newest_on_time = i64::MIN;
    let mut late = 0u64;
    while let Some(Emission { kind, event }) = generator.next_emission() {
        let t = event.time_ms();
        assert!(window.contains(&t), "{t} outside {window:?}");
        match kind {
            EmissionKind::OnTime => {
                assert!(t >= newest_on_time, "on-time events out of order");
                newest_on_time = t;
            }
            EmissionKind::Late => {
                assert!(t <= newest_on_time - HOUR_MS, "a late event must be at least an hour behind");
                late += 1;
            }
            EmissionKind::Duplicate => {}
        }
    }
    let rate = late as f64 / config.unique_events() as f64;
    assert!((0.02..0.04).contains(&rate), "late rate {rate}");
    assert_eq!(generator.summary().late, late);
}

#[test]
fn late_events_show_in_the_bytes_as_out_of_order() {
    // Seen from outside: lines more than an hour behind the newest line so far are late arrivals (or re-sends of
    // them); with no late rate there are none, because duplicates come back within 30 minutes of stream time.
    let count_behind = |late_rate: f64| {
        let config = GenConfig { late_rate, ..GenConfig::new(30_000, 3, 4) };
        let mut newest = i64::MIN;
        let mut behind = 0;
        for line in lines(&ndjson(&config)) {
            let t = props(line)["time"].as_i64().unwrap();
            if t < newest.saturating_sub(HOUR_MS) {
                behind += 1;
            }
            newest = newest.max(t);
        }
        behind
    };
    assert_eq!(count_behind(0.0), 0);
    assert!(count_behind(0.05) > 1_000);
}

#[test]
fn users_keep_their_platform_and_city() {
    let out = ndjson(&GenConfig::new(20_000, 3, 8));
    let mut seen: HashMap<String, (Value, Value)> = HashMap::new();
    for line in lines(&out) {
        let p = props(line);
        let key = p["distinct_id"].as_str().unwrap().to_owned();
        let traits = (p["$os"].clone(), p["$city"].clone());
        assert_eq!(seen.entry(key).or_insert_with(|| traits.clone()), &traits);
    }
    assert!(seen.len() > 100, "only {} users", seen.len());
}

#[test]
fn activity_is_heavy_tailed_and_follows_the_day() {
    let out = ndjson(&GenConfig { dup_rate: 0.0, late_rate: 0.0, ..GenConfig::new(50_000, 7, 2) });
    let mut per_user: HashMap<String, u64> = HashMap::new();
    let mut per_hour = [0u64; 24];
    let mut per_name: HashMap<String, u64> = HashMap::new();
    for line in lines(&out) {
        let v: Value = serde_json::from_str(line).unwrap();
        *per_user.entry(v["properties"]["distinct_id"].as_str().unwrap().to_owned()).or_default() += 1;
        per_hour[(v["properties"]["time"].as_i64().unwrap().rem_euclid(DAY_MS) / HOUR_MS) as usize] += 1;
        *per_name.entry(v["event"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let mut counts: Vec<u64> = per_user.values().copied().collect();
    counts.sort_unstable();
    let median = counts[counts.len() / 2];
    assert!(counts[counts.len() - 1] > 20 * median, "busiest {} vs median {median}", counts[counts.len() - 1]);
    // The curve is lowest at 08:00 UTC and highest at 20:00 UTC.
    assert!(per_hour[20] > 2 * per_hour[8], "20:00 {} vs 08:00 {}", per_hour[20], per_hour[8]);
    assert!(per_name.len() >= 25, "only {} event names", per_name.len());
    let top = per_name.iter().max_by_key(|(_, &c)| c).unwrap().0;
    assert!(top == "Page View" || top == "Screen View", "most frequent is {top}");
}

#[test]
fn properties_are_typed_per_event() {
    let out = ndjson(&GenConfig::new(30_000, 2, 6));
    let (mut purchases, mut carts, mut nulls, mut arrays) = (0, 0, 0, 0);
    for line in lines(&out) {
        let v: Value = serde_json::from_str(line).unwrap();
        let p = &v["properties"];
        match v["event"].as_str().unwrap() {
            "Purchase" => {
                purchases += 1;
                assert!(p["revenue"].is_f64(), "{line}");
                assert!(p["is_first_purchase"].is_boolean(), "{line}");
                let items = p["cart"]["items"].as_array().unwrap();
                assert!(!items.is_empty());
                let sum: f64 =
                    items.iter().map(|i| i["price"].as_f64().unwrap() * i["quantity"].as_f64().unwrap()).sum();
                assert!((sum - p["cart"]["total"].as_f64().unwrap()).abs() < 0.01, "{line}");
                assert_eq!(p["revenue"], p["cart"]["total"]);
            }
            "Add To Cart" => {
                carts += 1;
                assert!(p["price"].is_f64() && p["quantity"].is_u64(), "{line}");
            }
            _ => {}
        }
        let obj = p.as_object().unwrap();
        nulls += obj.values().filter(|x| x.is_null()).count();
        arrays += obj.values().filter(|x| x.is_array()).count();
    }
    assert!(purchases > 0 && carts > 0 && nulls > 0 && arrays > 0);
}

#[test]
fn project_token_is_written_unless_projects_free() {
    let with = ndjson(&GenConfig::new(100, 1, 1));
    let without = ndjson(&GenConfig { project_token: false, ..GenConfig::new(100, 1, 1) });
    let tokens: HashSet<_> = lines(&with).iter().map(|l| props(l)["token"].clone()).collect();
    assert_eq!(tokens.len(), 1);
    assert!(tokens.iter().next().unwrap().is_string());
    assert!(lines(&without).iter().all(|l| !props(l).contains_key("token")));
}

#[test]
fn iterator_and_writer_give_the_same_events() {
    let config = GenConfig::new(3_000, 2, 12);
    let generator = Generator::new(config.clone()).unwrap();
    assert_eq!(generator.len(), 3_000);
    let values: Vec<Value> = generator.into_values().collect();
    let parsed: Vec<Value> = lines(&ndjson(&config)).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(values, parsed);
}

#[test]
fn summary_counts_what_was_written() {
    let config = GenConfig { late_rate: 0.05, ..GenConfig::new(10_000, 2, 13) };
    let mut out = Vec::new();
    let summary = Generator::new(config.clone()).unwrap().write_ndjson(&mut out).unwrap();
    assert_eq!(summary.events, 10_000);
    assert_eq!(summary.unique, config.unique_events());
    assert_eq!(summary.duplicates, config.duplicate_events());
    assert_eq!(summary.bytes, out.len() as u64);
    assert!(summary.late > 0);
}

#[test]
fn rejects_impossible_configs() {
    assert!(matches!(Generator::new(GenConfig::new(10, 0, 1)), Err(GenConfigError::NoDays)));
    let dup = GenConfig { dup_rate: 0.6, ..GenConfig::new(10, 1, 1) };
    assert!(matches!(Generator::new(dup), Err(GenConfigError::DupRate(_))));
    let late = GenConfig { late_rate: f64::NAN, ..GenConfig::new(10, 1, 1) };
    assert!(matches!(Generator::new(late), Err(GenConfigError::LateRate(_))));
}

#[test]
fn cli_start_date_is_utc_midnight() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GenArgs,
    }
    let cli = Cli::try_parse_from(["gen", "--events", "5", "--start", "2026-02-01", "--projects-free"]).unwrap();
    let config = cli.args.config();
    assert_eq!(config.start_ms, DEFAULT_START_MS + 31 * DAY_MS);
    assert_eq!((config.events, config.days, config.project_token), (5, 7, false));
    assert!(Cli::try_parse_from(["gen", "--events", "5", "--start", "2026-02-30"]).is_err());
}

#[test]
fn xoshiro_matches_the_reference_vector() {
    // First outputs of the reference xoshiro256++ from state {1, 2, 3, 4}.
    let state: Vec<u8> = [1u64, 2, 3, 4].iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut rng = StreamRng::from_seed(state.try_into().unwrap());
    let expected = [41943041, 58720359, 3588806011781223, 3591011842654386, 9228616714210784205];
    for e in expected {
        assert_eq!(rng.next_u64(), e);
    }
}

#[test]
fn a_seed_expands_through_splitmix64() {
    // The stream of seed 1 as the generator drew it when xoshiro256++ and its SplitMix64 seeding were written out
    // here (state = four SplitMix64 outputs from state 1): a seed keeps meaning the same stream.
    let mut rng = StreamRng::seed_from_u64(1);
    let expected = [14971601782005023387, 13781649495232077965, 1847458086238483744, 13765271635752736470];
    for e in expected {
        assert_eq!(rng.next_u64(), e);
    }
}

#[test]
fn draws_follow_the_splitmix64_reference_vector() {
    // First outputs of the reference splitmix64.c from state 1477776061723855037.
    let mut d = Draw::new(1477776061723855037);
    for e in [1985237415132408290, 2979275885539914483, 13511426838097143398] {
        assert_eq!(d.next(), e);
    }
    // `mix` is one step from the mixed state.
    assert_eq!(mix(1477776061723855037, 0), 1985237415132408290);
}

#[test]
fn diurnal_clock_is_monotone_and_inside_the_window() {
    let clock = DiurnalClock::new(DEFAULT_START_MS, 3);
    assert_eq!(clock.time_at(0.0), DEFAULT_START_MS);
    let mut last = i64::MIN;
    for i in 0..=1_000 {
        let t = clock.time_at(i as f64 / 1_000.0);
        assert!(t >= last && t < clock.end_ms());
        last = t;
    }
}

//! Fuzz target: the configuration file (`daemon/src/server/config.rs`, TOML), read by `Config::from_toml` as
//! `tierd serve` and a reload read it, then turned into everything start-up builds from it.
//!
//! Properties, beyond "no panic":
//! - a refused file is a parse error naming the file, or a validation error naming a key, and the same text is
//!   refused the same way again;
//! - an accepted config validates again, equals itself parsed again, and a reload to itself changes nothing;
//! - everything derived from an accepted config is usable: the planners, the tiering policy and the prices
//!   validate, the heat settings are valid, the ingest limits and the in-flight budget hold one request at its
//!   largest, and the start-up objects (`IngestGate`, `IoBudget`, `QueryGate`) are built without a panic;
//! - every schedule answers "when next" after a few times (1970, now-ish, 2100) without running away: the next
//!   fire is later than now and is a fire time, its jitter is within bounds and the run starts before the
//!   following fire.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tierd_daemon::server::config::{Config, ConfigError};
use tierd_daemon::server::http::{IngestGate, QueryGate};
use tierd_policies::RewritePlanner;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let origin = Path::new("fuzz.toml");
    let config = match Config::from_toml(text, origin) {
        Ok(config) => config,
        Err(error) => {
            match &error {
                ConfigError::Parse { path, message } => {
                    assert_eq!(path, origin);
                    assert!(!message.is_empty());
                }
                ConfigError::Invalid { key, message } => assert!(!key.is_empty() && !message.is_empty()),
                other => panic!("reading a config text failed other than by parsing or validating: {other}"),
            }
            let again = Config::from_toml(text, origin).expect_err("the same text was refused once");
            assert_eq!(again.to_string(), error.to_string());
            return;
        }
    };
    config.validate().expect("an accepted config validates again");
    assert_eq!(Config::from_toml(text, origin).expect("accepted once"), config);
    assert!(config.restart_only_changes(&config).is_empty());

    config.reencode_planner().validate().expect("validated");
    config.compact_planner().validate().expect("validated");
    config.recompress_planner().validate().expect("validated");
    config.tiering_policy().validate().expect("validated");
    config.prices().validate().expect("validated");
    config.heat_config().expect("validated");
    let hot = config.hot_config();
    assert!(hot.seal_max_age_ms > 0 && hot.seal_lateness_ms >= 0 && hot.max_open_segments >= 1);
    let gc = config.gc_config();
    assert!(gc.grace_ms >= 0 && gc.lease_ttl_ms > 0 && gc.trash_retention_ms >= 0 && gc.erase_trash_retention_ms >= 0);
    let _ = config.deletions.limits();
    let _ = (config.http.header_read_timeout(), config.http.body_read_timeout(), config.http.send_timeout());

    let ingest = &config.ingest;
    let limits = ingest.batch_limits();
    assert!(limits.max_events >= 1 && limits.max_bytes >= 1024 && limits.max_properties >= 3);
    let days = ingest.max_days(config.hot.max_open_segments);
    assert!(days >= 1 && days <= config.hot.max_open_segments && days <= ingest.max_days_per_request);
    assert!(ingest.max_raw_bytes() >= limits.max_bytes, "a gzip body of the largest allowed size could not be read");
    assert!(ingest.max_request_weight() >= ingest.max_raw_bytes() + 2 * limits.max_bytes);
    assert!(ingest.inflight_budget() >= ingest.max_request_weight());
    let gate = IngestGate::new(ingest, config.hot.max_open_segments);
    assert_eq!((gate.max_days, gate.max_raw_bytes), (days, ingest.max_raw_bytes()));
    let _ = QueryGate::new(config.query.max_total_memory_bytes);
    let _ = tierd_store::IoBudget::new(&config.budget);

    let jitter = config.schedule_jitter_ms();
    assert!(jitter >= 0);
    for (name, schedule) in config.schedules().expect("validated") {
        for now in [0, 1_764_000_000_000, 4_102_444_800_000] {
            let Some(run) = schedule.next_run(name, now, jitter) else { continue };
            assert!(run.fire_ms > now, "{name}: next fire {} is not after {now}", run.fire_ms);
            assert!(
                schedule.fires_at(run.fire_ms),
                "{name}: {} is not a fire time of {:?}",
                run.fire_ms,
                schedule.expression()
            );
            assert!((0..=jitter.max(0)).contains(&run.jitter_ms), "{name}: jitter {} over {jitter}", run.jitter_ms);
            if let Some(following) = schedule.next_fire_after(run.fire_ms) {
                assert!(following > run.fire_ms);
                assert!(run.jitter_ms == 0 || run.at_ms() < following, "{name}: the run starts after the next fire");
            }
        }
    }
});

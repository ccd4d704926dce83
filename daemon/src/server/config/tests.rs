use super::*;

fn parse(s: &str) -> Result<Config, ConfigError> {
    Config::from_toml(s, Path::new("t.toml"))
}

#[test]
fn empty_file_is_the_embedded_default() {
    assert_eq!(parse("").unwrap(), Config::default());
    assert!(Config::default().validate().is_ok());
}

#[test]
fn example_file_parses_to_the_defaults() {
    let text = include_str!("../../../../tierd.example.toml");
    assert_eq!(parse(text).unwrap(), Config::default(), "tierd.example.toml must show the defaults");
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    let e = parse("[hot]\nseal_max_age = 3\n").unwrap_err().to_string();
    assert!(e.contains("seal_max_age"), "{e}");
    let e = parse("[ingest]\nmax_events_per_request = \"many\"\n").unwrap_err().to_string();
    assert!(e.contains("max_events_per_request"), "{e}");
    let e = parse("listen = \"nowhere\"\n").unwrap_err().to_string();
    assert!(e.contains("`listen`"), "{e}");
    let e = parse("[hot]\nseal_max_age_secs = 0\n").unwrap_err().to_string();
    assert!(e.contains("hot.seal_max_age_secs"), "{e}");
}

#[test]
fn pass_settings_are_validated_by_name() {
    let e = parse("[passes.reencode]\ncodec = \"zstd-40\"\n").unwrap_err().to_string();
    assert!(e.contains("passes.reencode.codec"), "{e}");
    let e = parse("[passes]\nnice = 20\n").unwrap_err().to_string();
    assert!(e.contains("passes.nice"), "{e}");
    assert_eq!(parse("[passes]\nnice = 0\n").unwrap().passes.nice, 0);
    let e = parse("[passes.compact]\nmin_inputs = 1\n").unwrap_err().to_string();
    assert!(e.contains("passes.compact") && e.contains("min_inputs"), "{e}");
    let e = parse("[[passes.recompress.ladder]]\nmin_age_secs = 5\ncodec = \"zstd-3\"\n[[passes.recompress.ladder]]\nmin_age_secs = 5\ncodec = \"zstd-9\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("passes.recompress"), "{e}");
    let ok = parse("[[passes.recompress.ladder]]\nmin_age_secs = 60\ncodec = \"zstd-1\"\n").unwrap();
    assert_eq!(ok.recompress_planner().ladder[0].min_age_ms, 60_000);
}

#[test]
fn cold_and_budget_sections() {
    let c = parse("[cold]\nurl = \"s3://bucket/prefix\"\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n[budget]\nobject_max_concurrent = 0\n").unwrap();
    assert_eq!(c.cold.url, "s3://bucket/prefix");
    assert_eq!(c.cold.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(c.budget.object_max_concurrent, 0);
    assert_eq!(c.budget.object_bytes_per_sec, BudgetConfig::default().object_bytes_per_sec);
    let e = parse("[cold]\nurl = \"ftp://x/y\"\n").unwrap_err().to_string();
    assert!(e.contains("`cold.url`") && e.contains("ftp://x/y"), "{e}");
    let e = parse("[cold]\nurl = \"s3://b/p\"\nendpoint = \"http://127.0.0.1:9000\"\n").unwrap_err().to_string();
    assert!(e.contains("`cold.endpoint`") && e.contains("allow_http"), "{e}");
    let e = parse("[cold]\npart_size_bytes = 1\n").unwrap_err().to_string();
    assert!(e.contains("`cold.part_size_bytes`"), "{e}");
    let e = parse("[cold]\nurl_typo = \"memory://\"\n").unwrap_err().to_string();
    assert!(e.contains("url_typo"), "{e}");
    let e = parse("[budget]\ndisk_bytes = 5\n").unwrap_err().to_string();
    assert!(e.contains("disk_bytes"), "{e}");
    let c = parse("[passes.migrate]\nread_ahead_bytes = 0\n[cache]\nfooter_max_bytes = 5\n").unwrap();
    assert_eq!((c.passes.migrate.read_ahead_bytes, c.cache.footer_max_bytes), (0, 5));
    assert_eq!(Config::default().passes.migrate.read_ahead_bytes, 256 << 20);
}

#[test]
fn cold_verify_is_auto_or_read_back() {
    use tierd_store::cold::VerifyMode;
    assert_eq!(parse("").unwrap().cold.verify, VerifyMode::Auto);
    assert_eq!(parse("[cold]\nverify = \"read_back\"\n").unwrap().cold.verify, VerifyMode::ReadBack);
    assert_eq!(parse("[cold]\nverify = \"auto\"\n").unwrap().cold.verify, VerifyMode::Auto);
    let e = parse("[cold]\nverify = \"etag\"\n").unwrap_err().to_string();
    assert!(e.contains("verify") && e.contains("read_back"), "{e}");
}

#[test]
fn values_reach_the_hot_tier() {
    let c = parse("[hot]\nseal_max_age_secs = 2\nmax_bytes = 5\n[ingest]\nqueue_batches = 3\n").unwrap();
    let h = c.hot_config();
    assert_eq!(h.seal_max_age_ms, 2000);
    assert_eq!(h.max_bytes, 5);
    assert_eq!(h.queue_batches, 3);
}

#[test]
fn heat_settings_are_validated_by_name() {
    for (toml, key) in [
        ("[heat]\nhalf_life_secs = 0\n", "heat.half_life_secs"),
        ("[heat]\nmax_tracked_segments = 0\n", "heat.max_tracked_segments"),
        ("[heat]\nlookup_weight = 1.5\n", "heat.lookup_weight"),
        ("[heat]\nlookup_weight = -0.1\n", "heat.lookup_weight"),
        ("[heat]\nhalf_life = 3\n", "half_life"),
    ] {
        let e = parse(toml).unwrap_err().to_string();
        assert!(e.contains(key), "{toml}: {e}");
    }
    let ok = parse("[heat]\nhalf_life_secs = 3600\nmax_tracked_segments = 5\nlookup_weight = 0\n").unwrap();
    let h = ok.heat_config().unwrap();
    assert_eq!((h.half_life.ms(), h.max_tracked_segments, h.lookup_weight), (3_600_000, 5, 0.0));
}

#[test]
fn every_pass_has_a_default_schedule_and_bad_ones_name_their_key() {
    let all = Config::default().schedules().unwrap();
    let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["reencode", "compact", "recompress", "migrate", "promote", "gc", "retention", "deletions", "heat"]
    );
    assert!(all.iter().all(|(_, s)| s.is_enabled()), "a bare `tierd serve` runs every pass");
    let c = parse("[passes.gc]\nschedule = \"\"\n[passes.promote]\nschedule = \"*/3 * * * * *\"\n").unwrap();
    let s: std::collections::BTreeMap<_, _> = c.schedules().unwrap().into_iter().collect();
    assert!(!s["gc"].is_enabled());
    assert_eq!(s["promote"].expression(), "*/3 * * * * *");
    assert!(s["heat"].is_enabled(), "a section given with other keys keeps the default schedule");
    for (section, key) in [("passes.compact", "passes.compact.schedule"), ("passes.heat", "passes.heat.schedule")] {
        let e = parse(&format!("[{section}]\nschedule = \"*/5 * * * *\"\n")).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("6 or 7"), "{e}");
    }
}

#[test]
fn restart_only_keys_are_named_and_pass_settings_are_not() {
    let old = Config::default();
    let mut new = old.clone();
    new.passes.reencode.schedule = "* * * * * *".into();
    new.passes.compact.target_bytes = 1 << 20;
    new.gc.grace_secs = 1;
    assert!(old.restart_only_changes(&new).is_empty());
    new.hot.seal_lateness_secs = 1;
    new.listen = "127.0.0.1:1".into();
    new.cold.url = "memory://".into();
    assert_eq!(old.restart_only_changes(&new), ["listen", "hot", "cold"]);
}

#[test]
fn a_plan_must_be_allowed_to_list_something() {
    let e = parse("[policy]\nmax_plan_actions = 0\n").unwrap_err().to_string();
    assert!(e.contains("policy.max_plan_actions"), "{e}");
    assert_eq!(parse("[policy]\nmax_plan_actions = 3\n").unwrap().policy.max_plan_actions, 3);
}

#[test]
fn retention_keys_are_read_and_validated_by_name() {
    let c = parse("[retention]\ndefault_days = 30\n[retention.projects]\nweb = 90\nkeep = 0\n").unwrap();
    assert_eq!((c.retention.days("web"), c.retention.days("keep"), c.retention.days("other")), (90, 0, 30));
    assert_eq!(Config::default().retention.days("any"), 0, "forever by default");
    let e = parse("[retention]\ndefault_dayz = 3\n").unwrap_err().to_string();
    assert!(e.contains("default_dayz"), "{e}");
    let e = parse("[retention]\ndefault_days = -1\n").unwrap_err().to_string();
    assert!(e.contains("default_days"), "{e}");
    let e = parse("[retention.projects]\n\"web site\" = 3\n").unwrap_err().to_string();
    assert!(e.contains("`retention`") && e.contains("projects.web site"), "{e}");
    let e = parse("[passes.retention]\nmax_rewrite_bytes_per_pass = 0\n").unwrap_err().to_string();
    assert!(e.contains("passes.retention.max_rewrite_bytes_per_pass"), "{e}");
    let e = parse("[passes.retention]\nschedule = \"nope\"\n").unwrap_err().to_string();
    assert!(e.contains("passes.retention.schedule"), "{e}");
    let mut new = Config::default();
    new.retention.default_days = 7;
    assert!(Config::default().restart_only_changes(&new).is_empty(), "retention changes with a reload");
}

#[test]
fn ingest_bounds_are_validated_and_combined_with_the_hot_cap() {
    let e = parse("[ingest]\nmax_event_bytes = 10\n").unwrap_err().to_string();
    assert!(e.contains("ingest.max_event_bytes") && e.contains("at least 64"), "{e}");
    let e = parse("[ingest]\nmax_days_per_request = 0\n").unwrap_err().to_string();
    assert!(e.contains("ingest.max_days_per_request"), "{e}");
    let e = parse("[ingest]\nmax_inflight_bytes = 1000\n").unwrap_err().to_string();
    assert!(e.contains("ingest.max_inflight_bytes"), "{e}");
    // A config lowering only the open segments stays valid: the smaller cap applies to a request's days.
    let c = parse("[hot]\nmax_open_segments = 4\n").unwrap();
    assert_eq!(c.ingest.max_days(c.hot.max_open_segments), 4);
    assert_eq!(Config::default().ingest.max_days(256), 64);
    // A config raising only the request size stays valid: the budget takes at least one request at its largest.
    let c = parse("[ingest]\nmax_bytes_per_request = 104857600\n").unwrap();
    assert!(c.ingest.inflight_budget() >= c.ingest.max_request_weight());
    assert!(c.ingest.max_request_weight() > 3 * 100 * 1024 * 1024);
    let limits = c.ingest.batch_limits();
    assert_eq!((limits.max_properties, limits.max_event_bytes, limits.max_property_name_bytes), (255, 1 << 20, 255));
    // At most 1 GiB: a request at its largest fits the in-flight gate's u32 count of bytes, and the weights do not
    // overflow (a fuzzed config with i64::MAX here passed validation, then overflowed max_request_weight).
    let c = parse("[ingest]\nmax_bytes_per_request = 1073741824\n").unwrap();
    assert!(c.ingest.max_request_weight() <= u32::MAX as usize);
    for too_large in ["1073741825", "9223372036854775807"] {
        let e = parse(&format!("[ingest]\nmax_bytes_per_request = {too_large}\n")).unwrap_err().to_string();
        assert!(e.contains("ingest.max_bytes_per_request") && e.contains("at most 1073741824"), "{e}");
    }
    let c = parse("[rewrite]\nmax_property_columns = 8\n").unwrap();
    assert_eq!(c.rewrite.max_property_columns, 8);
}

/// `rewrite.threads`: both cores by default, 1 to 64, a clear error otherwise.
#[test]
fn rewrite_threads_are_bounded() {
    assert_eq!(parse("").unwrap().rewrite.threads, 2);
    assert_eq!(parse("[rewrite]\nthreads = 1\n").unwrap().rewrite.threads, 1);
    assert_eq!(parse("[rewrite]\nthreads = 64\n").unwrap().rewrite.threads, 64);
    for bad in ["0", "65"] {
        let e = parse(&format!("[rewrite]\nthreads = {bad}\n")).unwrap_err().to_string();
        assert!(e.contains("rewrite.threads") && e.contains("1 to 64"), "{e}");
    }
}

#[test]
fn the_catalog_headroom_is_the_smallest_reserve() {
    let e = parse("[hot]\nmin_free_bytes = 1000\n[catalog]\nmin_free_bytes = 1001\n").unwrap_err().to_string();
    assert!(e.contains("catalog.min_free_bytes") && e.contains("hot.min_free_bytes"), "{e}");
    let c = parse("[hot]\nmin_free_bytes = 1000\n[catalog]\nmin_free_bytes = 1000\n").unwrap();
    assert_eq!(c.catalog.min_free_bytes, 1000);
    assert_eq!(parse("").unwrap().catalog.min_free_bytes, 64 * 1024 * 1024);
}

/// `hot.seal_max_events`: no cap by default (rewrites stream, whatever a segment's events); a value given is the cap.
#[test]
fn segments_have_no_event_cap_unless_one_is_given() {
    let c = parse("").unwrap();
    assert_eq!(c.hot_config().seal_max_rows, u64::MAX);
    assert_eq!(c.rewrite.max_memory_bytes, 256 << 20);
    let c = parse("[hot]\nseal_max_events = 10000\n").unwrap();
    assert_eq!(c.hot_config().seal_max_rows, 10_000);
    // A small budget is accepted: rewrites it cannot hold are refused one by one, by name.
    assert!(parse("[rewrite]\nmax_memory_bytes = 1000000\n").is_ok());
}

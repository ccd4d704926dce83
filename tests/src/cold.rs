//! The cold-tier tests' common ground: a stream with re-sends re-encoded to columnar segments on a daemon whose cold
//! tier is the embedded `file://` one or a real S3-compatible server, the queries every stage is checked with, and
//! the check that the catalog, the hot directory and the bucket agree. Used by `cold_tier.rs` and `cold_faults.rs`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::daemon::{http_client, Daemon, TestDir};
use crate::disk::{check_catalog_matches_cold, check_catalog_matches_disk, cold_files};
use crate::gen::EventGen;
use crate::model::{check_answer, Model};
use crate::mp::FAR_FUTURE_MS;
use crate::policy;
use crate::s3::MotoServer;

pub const DAY0: i64 = 19_800;
pub const P: &str = "cold";
pub const PREFIX: &str = "tierd/node-a";

/// Where the cold tier lives: the embedded `file://DATA_DIR/cold`, or a real S3-compatible server.
pub enum Backend {
    File,
    Moto(MotoServer),
}

impl Backend {
    pub fn cold_section(&self) -> String {
        match self {
            Backend::File => String::new(),
            Backend::Moto(m) => format!(
                "[cold]\nurl = \"{}\"\nendpoint = \"{}\"\nregion = \"{}\"\naccess_key_id = \"{}\"\n\
                 secret_access_key = \"{}\"\nallow_http = true\nretry_backoff_ms = 10\n",
                m.url(PREFIX),
                m.endpoint(),
                MotoServer::REGION,
                MotoServer::ACCESS_KEY_ID,
                MotoServer::SECRET_ACCESS_KEY
            ),
        }
    }

    /// Every object of the cold tier (keys relative to its prefix) with its size.
    pub fn objects(&self, d: &Daemon) -> BTreeMap<String, u64> {
        match self {
            Backend::File => cold_files(&d.data_dir().join("cold")),
            Backend::Moto(m) => m
                .list_objects(&format!("{PREFIX}/"))
                .into_iter()
                .map(|(k, size)| (k.strip_prefix(&format!("{PREFIX}/")).unwrap().to_string(), size))
                .collect(),
        }
    }
}

/// gc deletes nothing within this long of a start; tests wait it out on the daemon's test clock.
pub const LEASE_TTL_SECS: u64 = 60;

/// `policy`: [`policy::ALL_COLD`] sends every columnar segment cold; [`policy::ALL_HOT`] brings every cold one back.
pub fn config(backend: &Backend, policy: &str) -> String {
    format!(
        "[catalog]\nlease_ttl_secs = {LEASE_TTL_SECS}\n[gc]\ngrace_secs = 0\ntrash_retention_secs = 3600\n\
         [passes.reencode]\nmin_age_secs = 0\n{policy}{}",
        backend.cold_section()
    )
}

/// 3,000 generated events over four days plus 150 re-sends with changed properties, acknowledged into the model.
pub fn ingest(d: &Daemon, m: &mut Model) {
    let mut g = EventGen::new(7, DAY0, 4);
    let events = g.events(3_000);
    let resent: Vec<Value> = events.iter().step_by(20).map(|e| g.changed_copy(e)).collect();
    for chunk in events.chunks(500).chain(resent.chunks(500)) {
        d.import_ok(P, chunk);
        m.ack(P, chunk);
    }
}

pub fn queries() -> Vec<Value> {
    let all = |extra: Value| {
        let mut q = json!({"project": P, "from": 0, "to": FAR_FUTURE_MS});
        q.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        q
    };
    let day = |k: i64| (DAY0 + k) * 86_400_000;
    vec![
        all(json!({})),
        all(json!({"group_by": "event"})),
        all(json!({"group_by": "properties.$os"})),
        all(json!({"event": "Purchase", "group_by": "properties.plan"})),
        all(json!({"where": [{"property": "price", "op": "gte", "value": 12.25}], "group_by": "event"})),
        json!({"project": P, "from": day(1) + 3_600_000, "to": day(2), "group_by": "event"}),
    ]
}

pub fn check_all(d: &Daemon, m: &Model, stage: &str) {
    for q in queries() {
        let got = d.query(&q);
        if let Err(e) = check_answer(&q, &got, &m.answer(&q)) {
            panic!("after {stage}: {e}\n{}", d.log_tail(30));
        }
    }
}

pub fn check_storage(d: &Daemon, backend: &Backend, stage: &str) {
    check_catalog_matches_disk(d).unwrap_or_else(|e| panic!("after {stage}: hot: {e}\n{}", d.log_tail(30)));
    let objects = backend.objects(d);
    check_catalog_matches_cold(d, &objects).unwrap_or_else(|e| panic!("after {stage}: cold: {e}\n{}", d.log_tail(30)));
}

pub fn pass(d: &Daemon, name: &str) -> Value {
    let r = d.post_json(&format!("/v1/admin/passes/{name}/run"), &json!({}));
    assert_eq!(r.status, 200, "pass {name}: {}", r.text());
    assert_eq!(r.json["errors"], json!([]), "pass {name}: {}\n{}", r.text(), d.log_tail(30));
    r.json
}

/// Pass that may die at a failpoint: `None` when the connection broke.
pub fn pass_may_die(d: &Daemon, name: &str) -> Option<Value> {
    let url = format!("{}/v1/admin/passes/{name}/run", d.url());
    let r = http_client().post(url).json(&json!({})).send().ok()?;
    r.json().ok()
}

pub fn placements(d: &Daemon) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in d.segments(P, None, None)["segments"].as_array().unwrap() {
        *out.entry(s["tier"].as_str().unwrap().to_string()).or_default() += 1;
    }
    out
}

/// Waits out the lease TTL after a start on the test clock, so gc may delete; first checks that gc would delete
/// nothing before.
pub fn after_lease_ttl(d: &mut Daemon) {
    d.assert_gc_waits();
    d.advance_clock(LEASE_TTL_SECS * 1_000);
}

/// A daemon with the stream ingested, sealed and re-encoded to columnar segments (all hot).
pub fn columnar(dir: &TestDir, backend: &Backend) -> (Daemon, Model) {
    let mut d = Daemon::start(&dir.data_dir(), Some(&config(backend, policy::ALL_COLD)));
    let mut m = Model::new();
    ingest(&d, &mut m);
    d.stop();
    d.restart();
    pass(&d, "reencode");
    assert!(placements(&d).keys().all(|t| t == "hot"));
    (d, m)
}

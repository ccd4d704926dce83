//! Issue 12, "Disk full anywhere", on the real binary over a really full file system: the data directory is a
//! 48 MiB tmpfs mounted by the test (the suite runs as root; without permission to mount it says so loudly and
//! skips). The daemon is filled by ingest until ingest is refused, then by a ballast file until the file system
//! answers ENOSPC; at each stage every answer is a clear JSON 503 or a success (never a 500, never a lost ack),
//! every pass refuses or skips cleanly, the daemon stays up and queries equal the model of acknowledged events. A
//! kill -9 on the full disk restarts and serves reads; once space is back, ingest and passes resume without a
//! restart.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tierd_tests::daemon::{Daemon, Resp, TestDir};
use tierd_tests::disk::check_catalog_matches_disk;
use tierd_tests::model::{check_answer, Model};
use tierd_tests::mp::array_body;

const MIB: u64 = 1024 * 1024;
/// 2026-01-01: events are old enough for every pass to have work.
const DAY0_MS: i64 = 1_767_225_600_000;
const INGEST_RESERVE: u64 = 8 * MIB;
const BACKGROUND_MARGIN: u64 = 4 * MIB;
const CATALOG_HEADROOM: u64 = 2 * MIB;

/// A tmpfs mounted for the test, unmounted when dropped (before its directory is removed).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`) at `dir`; `None`, said loudly, where mounting is not permitted.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "\n!!!!! SKIPPED: cannot mount a tmpfs ({}): {} -- the disk-full tests need root (CI runs them \
                     as root, see RELIABILITY.md) !!!!!\n",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("\n!!!!! SKIPPED: cannot run mount: {e} -- the disk-full tests need root !!!!!\n");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a daemon still shutting down must not keep the mount (and the test's directory) alive.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Bytes available on the file system of `dir` (`df`).
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df").args(["-B1", "--output=avail"]).arg(dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("df: {text}"))
}

fn config(cold: &Path) -> String {
    format!(
        "[hot]\nmin_free_bytes = {INGEST_RESERVE}\nseal_max_bytes = 1048576\nseal_max_age_secs = 3600\n\
         [passes]\ndisk_reserve_bytes = {BACKGROUND_MARGIN}\n[passes.reencode]\nmin_age_secs = 0\n\
         [catalog]\nmin_free_bytes = {CATALOG_HEADROOM}\nlease_ttl_secs = 1\n\
         [gc]\ngrace_secs = 0\ntrash_retention_secs = 0\n[cache]\nmax_bytes = 4194304\n\
         [cold]\nurl = \"file://{}\"\n",
        cold.display()
    )
}

/// `n` events of about 700 bytes each (hard to compress), ids `tag-0..n`, spread over the first days of 2026.
fn batch(rng: &mut rand::rngs::StdRng, tag: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let pad: String = (0..600).map(|_| (b'a' + rng.random_range(0..26u8)) as char).collect();
            let time = DAY0_MS + (i as i64 % 3) * 86_400_000 + i as i64;
            json!({"event": "E", "properties": {"time": time, "distinct_id": format!("u{}", i % 5), "$insert_id": format!("{tag}-{i}"), "tag": tag, "pad": pad}})
        })
        .collect()
}

fn post(d: &Daemon, events: &[Value]) -> Resp {
    d.post_import(Some("p"), array_body(events), &[("content-type", "application/json")])
}

/// A refusal for lack of space: a JSON 503 with Retry-After that names the limit.
fn assert_refused_for_space(r: &Resp, what: &str, needles: &[&str]) {
    assert_eq!(r.status, 503, "{what}: expected 503, got {}: {}", r.status, r.text());
    assert_eq!(r.json["code"], 503, "{what}: {}", r.text());
    let error = r.json["error"].as_str().unwrap_or_else(|| panic!("{what}: no error message: {}", r.text()));
    assert!(needles.iter().any(|n| error.contains(n)), "{what}: {error:?} names none of {needles:?}");
    let retry = r.header("retry-after").unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
    assert!(retry.parse::<u64>().is_ok(), "{what}: Retry-After {retry:?}");
}

fn assert_model(d: &Daemon, m: &Model, what: &str) {
    for q in [
        json!({"project": "p", "from": 0, "to": i64::MAX}),
        json!({"project": "p", "from": 0, "to": i64::MAX, "group_by": "properties.tag"}),
    ] {
        let got = d.query(&q);
        if let Err(e) = check_answer(&q, &got, &m.answer(&q)) {
            panic!("{what}: query {q} differs from the model of acknowledged events:\n{e}");
        }
    }
}

/// Runs every pass: each answers 200 and either succeeds or reports only refusals for lack of space. Returns the
/// errors of each pass.
fn run_every_pass(d: &Daemon, what: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for pass in ["reencode", "compact", "recompress", "migrate", "promote", "retention", "deletions", "gc"] {
        let r = d.post_json(&format!("/v1/admin/passes/{pass}/run"), &json!({}));
        assert_eq!(r.status, 200, "{what}: pass {pass}: {}", r.text());
        let errors: Vec<String> =
            r.json["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect();
        for e in &errors {
            assert!(e.contains("disk reserve"), "{what}: pass {pass} failed for another reason than space: {e}");
        }
        out.push((pass.to_string(), errors));
    }
    assert_eq!(d.get("/healthz").status, 200, "{what}: /healthz after the passes");
    out
}

/// The sum of `tierd_disk_refusals_total` over the label sets holding every one of `labels`.
fn refusals(d: &Daemon, labels: &[&str]) -> f64 {
    let metrics = d.get("/metrics").text();
    metrics
        .lines()
        .filter(|l| l.starts_with("tierd_disk_refusals_total{") && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn errors_of<'a>(passes: &'a [(String, Vec<String>)], pass: &str) -> &'a [String] {
    &passes.iter().find(|(p, _)| p == pass).unwrap().1
}

/// Writes zeros to `path` until the file system answers ENOSPC; returns the bytes written.
fn fill_with_ballast(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let mut written = 0u64;
    for chunk in [MIB as usize, 4096, 1] {
        let buf = vec![0u8; chunk];
        loop {
            match f.write(&buf) {
                Ok(n) if n > 0 => written += n as u64,
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("ballast: {e}"),
            }
        }
    }
    let _ = f.sync_all();
    written
}

#[test]
fn a_full_disk_refuses_cleanly_survives_a_restart_and_resumes_when_space_comes_back() {
    let dir = TestDir::new("disk-full");
    let data = dir.data_dir();
    let Some(_mount) = Tmpfs::mount(&data, "48m") else { return };
    let cold = dir.path().join("cold");
    std::fs::create_dir_all(&cold).unwrap();
    // Part of the disk is taken before ingest starts, to be given back at the end.
    let room_taker = data.join("room-taker");
    std::fs::write(&room_taker, vec![7u8; 24 * MIB as usize]).unwrap();
    let mut d = Daemon::start(&data, Some(&config(&cold)));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xD15C_F011);
    let mut m = Model::new();

    // 1. Ingest until ingest is refused for lack of space: a clear 503, never a 500; the acknowledged batches are all
    //    there and nothing of the refused ones.
    let mut refused = 0;
    for n in 0..200 {
        let events = batch(&mut rng, &format!("a{n}"), 500);
        let r = post(&d, &events);
        match r.status {
            200 => {
                assert_eq!(r.json["num_records_imported"], 500, "{}", r.text());
                m.ack("p", &events);
            }
            503 => {
                assert_refused_for_space(&r, &format!("batch {n}"), &["hot.min_free_bytes"]);
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
            s => panic!("batch {n}: expected 200 or 503, got {s}: {}", r.text()),
        }
    }
    assert_eq!(refused, 3, "ingest was never refused on a 48 MiB disk");
    let free = free_bytes(&data);
    let acked = m.copies("p").count();
    println!("ingest refused with {free} bytes free, after {acked} acknowledged events");
    assert!(free < INGEST_RESERVE + MIB, "refused with {free} bytes free, well above hot.min_free_bytes");
    assert!(free >= CATALOG_HEADROOM, "ingest let the disk fall under the catalog's headroom: {free} bytes free");
    assert_model(&d, &m, "ingest refused");

    // Every pass while ingest is refused: the ones that write to the hot disk refuse at the background reserve.
    let passes = run_every_pass(&d, "ingest refused");
    let reencode = errors_of(&passes, "reencode");
    assert!(!reencode.is_empty(), "sealed row segments were there to re-encode: the rewrite must have been refused");
    assert!(refusals(&d, &["reason=\"background_reserve\"", "what=\"rewrite\""]) >= 1.0);
    assert_model(&d, &m, "passes while ingest is refused");
    check_catalog_matches_disk(&d).unwrap_or_else(|e| panic!("catalog vs hot directory:\n{e}"));

    // 2. A ballast file takes the rest: the file system itself is full (ENOSPC).
    let ballast = data.join("ballast");
    let ballast_bytes = fill_with_ballast(&ballast);
    assert_eq!(free_bytes(&data), 0, "the ballast ({ballast_bytes} bytes) left room");
    let events = batch(&mut rng, "full", 10);
    assert_refused_for_space(&post(&d, &events), "ingest on a full disk", &["hot.min_free_bytes"]);
    let deletion = d.post_json("/v1/admin/deletions", &json!({"project": "p", "distinct_id": "u1"}));
    assert_refused_for_space(&deletion, "a deletion request", &["catalog.min_free_bytes"]);
    let passes = run_every_pass(&d, "disk full");
    assert!(
        errors_of(&passes, "gc").iter().any(|e| e.contains("catalog.min_free_bytes")),
        "gc below the catalog's headroom says so: {passes:?}"
    );
    // sled's flusher ticks every 500 ms and housekeeping flushes heat: nothing of it may bring the daemon down.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(d.get("/healthz").status, 200, "the daemon stays up on a full disk\n{}", d.log_tail(30));
    // A lookup needs a new lease now (the last one, 1 s long, is past half its life, so it is not reused); leases
    // are held in memory, so query nodes still find their segments on a full disk.
    let lookup = d.get("/v1/catalog/segments?project=p");
    assert_eq!(lookup.status, 200, "a lookup on a full disk: {}", lookup.text());
    assert!(lookup.json["lease"]["id"].is_string(), "with a lease: {}", lookup.text());
    assert_model(&d, &m, "disk full");
    // The deletion request and gc at least.
    assert!(refusals(&d, &["reason=\"catalog_headroom\""]) >= 2.0);

    // 3. kill -9 on the full disk, and a restart on it: it comes up and serves reads equal to the model.
    d.kill9();
    assert_eq!(free_bytes(&data), 0, "still full before the restart");
    d.restart();
    assert_eq!(d.get("/healthz").status, 200);
    assert_model(&d, &m, "restarted on a full disk");
    assert_refused_for_space(&post(&d, &events), "ingest after the restart on a full disk", &["hot.min_free_bytes"]);

    // 4. Space comes back (both ballast files go): lookups, ingest and the passes resume without a restart.
    std::fs::remove_file(&ballast).unwrap();
    std::fs::remove_file(&room_taker).unwrap();
    println!("free bytes once the ballast went: {}", free_bytes(&data));
    let listing = d.get("/v1/catalog/segments?project=p");
    assert_eq!(listing.status, 200, "lookups are served again: {}", listing.text());
    let events = batch(&mut rng, "back", 500);
    let r = post(&d, &events);
    assert_eq!(r.status, 200, "ingest resumes without a restart: {}", r.text());
    m.ack("p", &events);
    let reencode = d.pass_ok("reencode");
    assert!(!reencode["actions"].as_array().unwrap().is_empty(), "the refused rewrites go ahead: {reencode}");
    d.pass_ok("gc");
    assert_model(&d, &m, "space back");
    check_catalog_matches_disk(&d).unwrap_or_else(|e| panic!("catalog vs hot directory:\n{e}"));
    d.stop();
}

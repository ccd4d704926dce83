//! User deletions and trash restores in the every-pass crash test (the module documentation of `crash.rs` states
//! the model): the deleter and the restorer threads, what they saw, and what a verification concludes from it.
//!
//! Both obey the writers' protocol ([`Shared::begin`], [`Shared::end`]): they only send while a daemon is up, and
//! a kill leaves their request unanswered (in flight), as it does a writer's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tierd_tests::daemon::{http_client, http_client_with_timeout, Daemon};
use tierd_tests::mp::FAR_FUTURE_MS;

use super::{BatchInfo, Known, Ledger, Shared};

/// A deletion request for one batch.
#[derive(Debug, Clone)]
pub struct Deletion {
    pub batch: BatchInfo,
    /// The kill/restart cycle during which the request was sent.
    pub cycle: usize,
}

/// What the deleter and the restorer saw since the last verification (and a few totals).
#[derive(Default)]
pub struct MixLedger {
    /// Batches a verification found fully present and that no deletion named yet: the deleter picks from these.
    pub deletable: Vec<(String, BatchInfo)>,
    /// Deletions answered 200, not verified yet.
    pub acked: BTreeMap<String, Deletion>,
    /// Deletions sent with no 200 (the kill, or another status): the daemon may or may not hold them.
    pub inflight: BTreeMap<String, Deletion>,
    pub deletions_sent: usize,
    pub deletions_acked: usize,
    /// Per project, the rows of the segments restored, or maybe restored (the request got no answer): each such row
    /// may be stored twice for a while, in the restored segment or what rewrites made of it, and in the segments
    /// that replaced it, until a compaction merges the two.
    pub restored_rows: BTreeMap<String, u64>,
    pub restores: RestoreCounts,
}

/// What the restores did, counted per segment named (requests for the first two).
#[derive(Debug, Clone, Default)]
pub struct RestoreCounts {
    /// Restore requests sent (one segment, or a whole gc batch).
    pub requests: usize,
    pub whole_batches: usize,
    /// Trash listings that offered nothing to restore.
    pub nothing_to_restore: usize,
    /// Back in service (`restored`).
    pub restored: usize,
    pub restored_rows: u64,
    /// Records of erased segments, refused as not restorable (the documented outcome).
    pub refused_erased: usize,
    /// In the catalog again, or gone from the trash since the listing (`in_catalog`, `not_in_batch`, 404).
    pub raced: usize,
    /// Requests with no answer (the kill).
    pub unanswered: usize,
}

/// What verifications established about deletions.
#[derive(Default)]
pub struct MixKnown {
    /// Batches whose deletion the daemon holds (acknowledged, or in flight at a kill and listed after it): no event
    /// of theirs may be answered again.
    pub deleted: BTreeMap<String, Deletion>,
    /// In-flight deletions the restarted daemon listed (so carried out), and those it did not (so lost).
    pub inflight_applied: usize,
    pub inflight_lost: usize,
    /// Requests not `done` and `done` at the last verification.
    pub not_done: usize,
    pub done: usize,
    /// Project checks where the catalog held more rows than the query counted, and the largest such excess.
    pub excess_seen: usize,
    pub max_excess: u64,
}

/// Sends a filtered deletion of one random verified batch every 200-400 ms while a daemon is up.
pub fn deleter(seed: u64, shared: Arc<Shared>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xDE1E_7E5E_EDDE_1E7E);
    let client = http_client();
    loop {
        thread::sleep(Duration::from_millis(rng.random_range(200..=400)));
        let Some((url, cycle)) = shared.begin() else { return };
        let picked = {
            let mut l = shared.ledger();
            if l.mix.deletable.is_empty() {
                None
            } else {
                let i = rng.random_range(0..l.mix.deletable.len());
                let (batch, info) = l.mix.deletable.swap_remove(i);
                let del = Deletion { batch: info, cycle };
                l.mix.inflight.insert(batch.clone(), del.clone());
                l.mix.deletions_sent += 1;
                Some((batch, del))
            }
        };
        if let Some((batch, del)) = picked {
            let only_batch = json!([{"property": "batch", "op": "eq", "value": batch}]);
            let body = json!({
                "project": del.batch.project,
                "filter": {"from": 0, "to": FAR_FUTURE_MS, "where": only_batch},
            });
            let res = client.post(format!("{url}/v1/admin/deletions")).json(&body).send();
            let mut l = shared.ledger();
            match res {
                Ok(r) if r.status().as_u16() == 200 => {
                    // The status line is the acknowledgement; the body is checked when it can be read.
                    let answer: Option<Value> = r.bytes().ok().and_then(|b| serde_json::from_slice(&b).ok());
                    if let Some(a) = answer.filter(|a| {
                        a["state"] != "pending" || a["id"].as_str().is_none() || a["max_seq"].as_u64().is_none()
                    }) {
                        l.fatal.push(format!("deletion of batch {batch}: 200 with body {a}"));
                    }
                    l.mix.inflight.remove(&batch);
                    l.mix.acked.insert(batch, del);
                    l.mix.deletions_acked += 1;
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    l.answered(status, format!("deletion of batch {batch}: {status} {}", r.text().unwrap_or_default()));
                }
                Err(_) => {} // the kill: stays in flight
            }
        }
        shared.end();
    }
}

/// Every 300-1200 ms while a daemon is up: lists the trash and asks to restore one segment (half the time one whose
/// saved record is marked erased, when the newest records hold one) or, one time in four, a whole small gc batch
/// ([`Pick::Any`]).
pub fn restorer(seed: u64, shared: Arc<Shared>, data_dir: PathBuf) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7E57_0DE5_7A5B_0001);
    let client = http_client();
    loop {
        thread::sleep(Duration::from_millis(rng.random_range(300..=1200)));
        let Some((url, _cycle)) = shared.begin() else { return };
        restore_once(&client, &url, &data_dir, &mut rng, &shared, Pick::Any);
        shared.end();
    }
}

/// One listed trash record.
struct Listed {
    batch_ms: i64,
    id: String,
    project: String,
    rows: u64,
    /// Not in the catalog, with a copy still in the trash.
    restorable: bool,
}

/// A trash record a restore request may touch.
struct Named {
    project: String,
    rows: u64,
    /// Whether its saved record is marked erased ([`record_erased`]).
    erased: Option<bool>,
}

impl Named {
    fn of(s: &Listed, data_dir: &Path) -> (String, Named) {
        let erased = record_erased(data_dir, s.batch_ms, &s.id);
        (s.id.clone(), Named { project: s.project.clone(), rows: s.rows, erased })
    }
}

/// Whether the trash's saved record of `id` in batch `batch_ms` is marked erased (`retired.erase`: its copies may
/// hold rows a user deletion removed); `None` when it cannot be read (gc purged it meanwhile). Read from the data
/// directory (`trash/<ms>/records/<id>.json`, ARCHITECTURE.md), not from the daemon's answers.
fn record_erased(data_dir: &Path, batch_ms: i64, id: &str) -> Option<bool> {
    let path = data_dir.join("trash").join(batch_ms.to_string()).join("records").join(format!("{id}.json"));
    let record: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    Some(record["retired"]["erase"] == true)
}

/// What [`restore_once`] asks to restore (when the trash offers it; else any restorable segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// One of the others at random: a whole batch one time in four, else one segment, erased or not.
    Any,
    /// Every record of one small gc batch (at most 8 records).
    WholeBatch,
    /// One segment whose saved record is marked erased (refused as not restorable).
    Erased,
    /// One segment whose saved record is not (restored).
    NotErased,
}

/// `GET /v1/admin/trash`; `None` when there is no answer (the kill).
fn list_trash(client: &reqwest::blocking::Client, url: &str, shared: &Shared) -> Option<Vec<Listed>> {
    let listing: Value = match client.get(format!("{url}/v1/admin/trash")).send() {
        Ok(r) if r.status().as_u16() == 200 => r.json().ok()?, // (a body cut by the kill: no answer)
        Ok(r) => {
            let status = r.status().as_u16();
            shared.ledger().other_status.push(format!("trash listing: {status} {}", r.text().unwrap_or_default()));
            return None;
        }
        Err(_) => return None,
    };
    let listed = listing["segments"].as_array().map(Vec::as_slice).unwrap_or_default();
    Some(
        listed
            .iter()
            .map(|s| Listed {
                batch_ms: s["batch_ms"].as_i64().unwrap_or(-1),
                id: s["id"].as_str().unwrap_or_default().to_string(),
                project: s["project"].as_str().unwrap_or_default().to_string(),
                rows: s["rows"].as_u64().unwrap_or(0),
                restorable: s["in_catalog"] == false
                    && s["copies"].as_array().is_some_and(|c| c.iter().any(|c| c["present"] == true)),
            })
            .collect(),
    )
}

/// Lists the trash and asks to restore what `pick` says, recording what it named and checking the answer against
/// the saved records.
pub fn restore_once(
    client: &reqwest::blocking::Client,
    url: &str,
    data_dir: &Path,
    rng: &mut StdRng,
    shared: &Shared,
    pick: Pick,
) {
    let Some(listed) = list_trash(client, url, shared) else { return };
    let restorable: Vec<&Listed> = listed.iter().filter(|s| s.restorable).collect();
    if restorable.is_empty() {
        shared.ledger().mix.restores.nothing_to_restore += 1;
        return;
    }
    let small_batches: Vec<i64> = {
        let mut per_batch: BTreeMap<i64, usize> = BTreeMap::new();
        for s in &listed {
            *per_batch.entry(s.batch_ms).or_default() += 1;
        }
        let with_restorable: BTreeSet<i64> = restorable.iter().map(|s| s.batch_ms).collect();
        per_batch.into_iter().filter(|(b, n)| *n <= 8 && with_restorable.contains(b)).map(|(b, _)| b).collect()
    };
    let pick = match pick {
        Pick::Any if !small_batches.is_empty() && rng.random_bool(0.25) => Pick::WholeBatch,
        Pick::Any if rng.random_bool(0.5) => Pick::Erased,
        Pick::Any => Pick::NotErased,
        other => other,
    };
    if pick == Pick::WholeBatch && !small_batches.is_empty() {
        let batch_ms = small_batches[rng.random_range(0..small_batches.len())];
        let records = listed.iter().filter(|s| s.batch_ms == batch_ms).map(|s| Named::of(s, data_dir)).collect();
        send_restore(client, url, batch_ms, Vec::new(), records, shared);
        return;
    }
    let found = if pick == Pick::Erased {
        // Erased records are recent (their copies go after `deletions.trash_retention_secs`): look among the newest.
        restorable.iter().rev().take(64).find(|s| record_erased(data_dir, s.batch_ms, &s.id) == Some(true))
    } else {
        (0..16)
            .map(|_| &restorable[rng.random_range(0..restorable.len())])
            .find(|s| record_erased(data_dir, s.batch_ms, &s.id) == Some(false))
    };
    let s = found.copied().unwrap_or_else(|| restorable[rng.random_range(0..restorable.len())]);
    send_restore(client, url, s.batch_ms, vec![s.id.clone()], BTreeMap::from([Named::of(s, data_dir)]), shared);
}

/// Asks to restore `named` of trash batch `batch_ms` (the whole batch when empty), given every record the request
/// may touch, and checks the answer against the records' erase marks. The rows of each record that came back (or
/// may have: no answer) count towards its project's [`MixLedger::restored_rows`].
fn send_restore(
    client: &reqwest::blocking::Client,
    url: &str,
    batch_ms: i64,
    named: Vec<String>,
    records: BTreeMap<String, Named>,
    shared: &Shared,
) {
    {
        let mut l = shared.ledger();
        l.mix.restores.requests += 1;
        l.mix.restores.whole_batches += usize::from(named.is_empty());
    }
    let what =
        if named.is_empty() { format!("whole trash batch {batch_ms}") } else { format!("{named:?} of {batch_ms}") };
    let res = client
        .post(format!("{url}/v1/admin/trash/restore"))
        .json(&json!({"batch_ms": batch_ms, "segments": named}))
        .send();
    let mut l = shared.ledger();
    let answer = match res {
        Ok(r) if r.status().as_u16() == 404 => {
            // gc or the deletions pass purged the batch since the listing.
            l.mix.restores.raced += records.len();
            return;
        }
        Ok(r) => {
            let status = r.status().as_u16();
            r.bytes().ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()).map(|a| (status, a))
        }
        Err(_) => None,
    };
    let Some((status, answer)) = answer else {
        // No answer (the kill): every record not refused by its erase mark may be back.
        l.mix.restores.unanswered += 1;
        for n in records.values().filter(|n| n.erased != Some(true)) {
            *l.mix.restored_rows.entry(n.project.clone()).or_default() += n.rows;
        }
        return;
    };
    if status != 200 {
        let what = format!("restore of {what}: {status} {answer}");
        if (400..500).contains(&status) {
            l.fatal.push(what);
        } else {
            l.other_status.push(what);
        }
        return;
    }
    for res in answer["results"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let seg = res["segment"].as_str().unwrap_or_default();
        let outcome = res["outcome"].as_str().unwrap_or_default();
        let not_restorable = outcome == "error" && res["error"].as_str().is_some_and(|e| e.contains("not restorable"));
        let record = records.get(seg);
        match (outcome, record.and_then(|n| n.erased)) {
            ("restored", Some(true)) => l.fatal.push(format!(
                "restore of {what}: segment {seg}, whose saved record is marked erased, was restored: {res}"
            )),
            ("restored", _) => {
                let (project, rows) = record.map_or(("?", 0), |n| (n.project.as_str(), n.rows));
                l.mix.restores.restored += 1;
                l.mix.restores.restored_rows += rows;
                *l.mix.restored_rows.entry(project.to_string()).or_default() += rows;
            }
            ("in_catalog" | "not_in_batch", _) => l.mix.restores.raced += 1,
            (_, Some(true)) if not_restorable => l.mix.restores.refused_erased += 1,
            (_, Some(true)) => l.fatal.push(format!(
                "restore of {what}: segment {seg}, whose saved record is marked erased, answered {res} instead of \
                 the refusal 'not restorable'"
            )),
            (_, Some(false)) if not_restorable => l.fatal.push(format!(
                "restore of {what}: segment {seg} refused as erased, but its saved record is not marked so: {res}"
            )),
            _ => l.other_status.push(format!("restore of {what}: segment {seg}: {res}")),
        }
    }
}

/// The batch a listed deletion request names (`events.where = [batch eq X]`), if it is one of this test's.
fn listed_batch(r: &Value) -> Option<String> {
    let w = r["events"]["where"].as_array()?;
    match w.as_slice() {
        [c] if c["property"] == "batch" && c["op"] == "eq" => c["value"].as_str().map(str::to_string),
        _ => None,
    }
}

/// Resolves the deletions against `GET /v1/admin/deletions` (each request durable once acknowledged; an
/// unacknowledged one is carried out exactly when the daemon lists it), moves deleted batches from
/// `known.present` to `known.mix.deleted`, and returns, per project, the events of deleted batches whose request is
/// not `done` (their rows may still be stored, hidden from readers).
pub fn resolve_deletions(d: &Daemon, l: &mut Ledger, known: &mut Known, errs: &mut String) -> BTreeMap<String, u64> {
    let r = d.get("/v1/admin/deletions");
    if r.status != 200 {
        let _ = writeln!(errs, "GET /v1/admin/deletions answered {}: {}", r.status, r.text());
        return BTreeMap::new();
    }
    // batch -> (project, state)
    let mut listed: BTreeMap<String, (String, String)> = BTreeMap::new();
    for req in r.json["deletions"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let project = req["project"].as_str().unwrap_or_default().to_string();
        let state = req["state"].as_str().unwrap_or_default().to_string();
        match listed_batch(req) {
            Some(b) => {
                if listed.insert(b.clone(), (project, state)).is_some() {
                    let _ = writeln!(errs, "batch {b}: two deletion requests listed (the test sends one per batch)");
                }
            }
            None => {
                let _ = writeln!(errs, "a deletion request this test did not send: {req}");
            }
        }
    }
    let mix = &mut l.mix;
    for (b, del) in std::mem::take(&mut mix.acked) {
        if !listed.contains_key(&b) {
            let _ = writeln!(errs, "acknowledged deletion of batch {b} (sent in cycle {}) is not listed", del.cycle);
        }
        known.mix.deleted.insert(b, del);
    }
    for (b, del) in std::mem::take(&mut mix.inflight) {
        if listed.contains_key(&b) {
            known.mix.inflight_applied += 1;
            known.mix.deleted.insert(b, del);
        } else {
            // Never held: the batch stays (and must stay) whole; it is not offered for deletion again.
            known.mix.inflight_lost += 1;
        }
    }
    let mut hidden: BTreeMap<String, u64> = BTreeMap::new();
    for (b, del) in &known.mix.deleted {
        known.present.remove(b);
        match listed.get(b) {
            None => {
                let _ = writeln!(
                    errs,
                    "deletion of batch {b} (sent in cycle {}) was held earlier and is no longer listed",
                    del.cycle
                );
            }
            Some((p, _)) if p != del.batch.project => {
                let _ = writeln!(errs, "deletion of batch {b} is listed in project {p}, sent in {}", del.batch.project);
            }
            Some((_, state)) if state == "done" => {}
            Some(_) => *hidden.entry(del.batch.project.to_string()).or_default() += del.batch.size,
        }
    }
    for b in listed.keys().filter(|b| !known.mix.deleted.contains_key(*b)) {
        let _ = writeln!(errs, "batch {b}: a deletion request is listed that the test never sent");
    }
    known.mix.done = listed.values().filter(|(_, s)| s == "done").count();
    known.mix.not_done = listed.len() - known.mix.done;
    hidden
}

/// Whether every deletion request the daemon lists is `done`.
fn all_done(d: &Daemon) -> bool {
    let r = d.get("/v1/admin/deletions");
    assert_eq!(r.status, 200, "GET /v1/admin/deletions answered {}: {}", r.status, r.text());
    r.json["deletions"].as_array().map(Vec::as_slice).unwrap_or_default().iter().all(|r| r["state"] == "done")
}

/// Runs pass `name` by hand and returns how many actions it reported; panics unless it answers 200 with no error.
/// The client waits up to ten minutes: over a whole run's data a pass takes longer than the harness's 60 s timeout
/// allows on a slow machine.
fn run_pass(d: &Daemon, name: &str) -> usize {
    let r = http_client_with_timeout(Duration::from_secs(600))
        .post(format!("{}/v1/admin/passes/{name}/run", d.url()))
        .json(&json!({}))
        .send()
        .unwrap_or_else(|e| panic!("pass {name}: {e}\n{}", d.log_tail(40)));
    let status = r.status().as_u16();
    let report: Value = r.json().unwrap_or_else(|e| panic!("pass {name}: reading the report: {e}"));
    assert_eq!(status, 200, "pass {name}: {report}");
    assert_eq!(report["errors"], json!([]), "pass {name}: {report}\n{}", d.log_tail(30));
    report["actions"].as_array().map_or(0, Vec::len)
}

/// After the last verification (schedules off): runs the deletions pass and gc by hand, moving the clock past
/// leases, grace and the erasure retention (`erased_trash_secs`) between them, until every request is `done`:
/// nothing may hold a deleted row any more, and readers stop hiding them. Returns the rounds it took; panics after
/// eight.
pub fn carry_out_deletions(d: &mut Daemon, erased_trash_secs: u64) -> usize {
    for round in 1..=8 {
        let t = std::time::Instant::now();
        let actions = run_pass(d, "deletions");
        println!("deletions pass by hand: {actions} actions, {:.1} s", t.elapsed().as_secs_f64());
        if all_done(d) {
            return round;
        }
        d.advance_clock((erased_trash_secs + 2) * 1000);
        let t = std::time::Instant::now();
        let actions = run_pass(d, "gc");
        println!("gc by hand: {actions} actions, {:.1} s", t.elapsed().as_secs_f64());
    }
    let r = d.get("/v1/admin/deletions");
    panic!("deletion requests not done after 8 rounds of the deletions pass and gc: {}", r.text());
}

/// Asks to restore every batch the trash holds, whole (after [`carry_out_deletions`]: no entry may hold a deleted
/// row, so nothing deleted may come back); the answers are checked as the restorer's are. Returns the batches.
pub fn restore_all(d: &Daemon, data_dir: &Path, shared: &Shared) -> usize {
    let client = http_client();
    let listed = list_trash(&client, d.url(), shared).expect("GET /v1/admin/trash answers");
    let batches: BTreeSet<i64> = listed.iter().map(|s| s.batch_ms).collect();
    for &batch_ms in &batches {
        let records = listed.iter().filter(|s| s.batch_ms == batch_ms).map(|s| Named::of(s, data_dir)).collect();
        send_restore(&client, d.url(), batch_ms, Vec::new(), records, shared);
    }
    batches.len()
}

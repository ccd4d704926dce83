//! Crashes where a step undoes itself, and in moves asked for by hand, on the real daemon (`file://` cold tier).
//!
//! A step that fails at run time rolls its new copy back at once: the copy is deleted, then its intent cleared
//! (`recovery::roll_back_copy`). Here the step is made to fail (a failpoint that answers an I/O error) and the real
//! process killed between the two (`rollback.clear`, a failpoint that exits like `kill -9`), for a move to the cold
//! tier, a move back to the hot disk, a restore from the trash and a rewrite. After each restart: the answers equal
//! the model, the catalog, the hot directory and the bucket agree (recovery cleared the intent whose copy was
//! already gone), and the work, run again, finishes. Then a promote by hand (`POST /v1/admin/move` to `hot`) is
//! killed at each of its steps.

use std::time::Duration;

use serde_json::{json, Value};
use tierd_tests::cold::{
    check_all, check_storage, columnar, config, ingest, pass, pass_may_die, placements, Backend, LEASE_TTL_SECS, P,
};
use tierd_tests::daemon::{http_client, Daemon, TestDir};
use tierd_tests::model::Model;
use tierd_tests::policy;

/// Starts the daemon with `failpoints`, runs `action` (which must die: the connection breaks), and expects the
/// failpoint's exit status; then restarts without failpoints and checks answers and storage.
fn dies_then_recovers(d: &mut Daemon, m: &Model, failpoints: &str, what: &str, action: impl FnOnce(&Daemon) -> bool) {
    d.set_failpoints(Some(failpoints));
    d.restart();
    assert!(action(d), "{what} must die at {failpoints}\n{}", d.log_tail(30));
    let status = d.wait_for_exit(Duration::from_secs(30)).expect("the daemon exits at the failpoint");
    assert_eq!(status.code(), Some(101), "{what}: {status}\n{}", d.log_tail(30));
    assert!(d.log_tail(60).contains("failpoint rollback.clear hit"), "{what}: died elsewhere\n{}", d.log_tail(30));
    d.set_failpoints(None);
    d.restart();
    check_all(d, m, &format!("{what}: restart after a crash in its rollback"));
    check_storage(d, &Backend::File, &format!("{what}: recovery after a crash in its rollback"));
}

/// `POST path body`; true when the connection broke (the daemon died answering).
fn post_dies(d: &Daemon, path: &str, body: &Value) -> bool {
    http_client().post(format!("{}{path}", d.url())).json(body).send().and_then(|r| r.text()).is_err()
}

fn ids(d: &Daemon) -> Vec<String> {
    d.segments(P, None, None)["segments"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().into()).collect()
}

#[test]
fn a_crash_in_the_rollback_of_a_failed_migration() {
    let dir = TestDir::new("rollback-migrate");
    let (mut d, m) = columnar(&dir, &Backend::File);
    dies_then_recovers(&mut d, &m, "move.verify=error,rollback.clear=exit", "migrate", |d| {
        pass_may_die(d, "migrate").is_none()
    });
    assert!(placements(&d).keys().all(|t| t == "hot"), "the failed move left the segment hot: {:?}", placements(&d));
    pass(&d, "migrate");
    assert_eq!(placements(&d).keys().collect::<Vec<_>>(), vec!["cold"], "{:?}", placements(&d));
    check_all(&d, &m, "migrate after the crash");
    check_storage(&d, &Backend::File, "migrate after the crash");
}

#[test]
fn a_crash_in_the_rollback_of_a_failed_move_back_to_the_hot_disk() {
    let dir = TestDir::new("rollback-move-hot");
    let (mut d, m) = columnar(&dir, &Backend::File);
    pass(&d, "migrate");
    let id = ids(&d)[0].clone();
    dies_then_recovers(&mut d, &m, "move.verify=error,rollback.clear=exit", "a move to hot", |d| {
        post_dies(d, "/v1/admin/move", &json!({"segments": [id], "to": "hot"}))
    });
    assert_eq!(placements(&d).keys().collect::<Vec<_>>(), vec!["cold"], "{:?}", placements(&d));
    let r = d.post_json("/v1/admin/move", &json!({"segments": [id], "to": "hot"}));
    assert_eq!(r.json["results"][0]["outcome"], "moved", "{}", r.text());
    assert_eq!(placements(&d).get("hot"), Some(&1), "{:?}", placements(&d));
    check_all(&d, &m, "the move after the crash");
    check_storage(&d, &Backend::File, "the move after the crash");
}

#[test]
fn a_crash_in_the_rollback_of_a_failed_rewrite() {
    let dir = TestDir::new("rollback-rewrite");
    let backend = Backend::File;
    let mut d = Daemon::start(&dir.data_dir(), Some(&config(&backend, policy::ALL_COLD)));
    let mut m = Model::new();
    ingest(&d, &mut m);
    d.stop();
    d.restart(); // seals the row segments
    let rows = d.segments(P, None, None)["segments"].as_array().unwrap().len();
    dies_then_recovers(&mut d, &m, "rewrite.verify=error,rollback.clear=exit", "reencode", |d| {
        pass_may_die(d, "reencode").is_none()
    });
    let after = d.segments(P, None, None)["segments"].clone();
    assert_eq!(after.as_array().unwrap().len(), rows, "nothing was replaced: {after}");
    assert!(after.as_array().unwrap().iter().all(|s| s["format"] == "rows"), "{after}");
    pass(&d, "reencode");
    let after = d.segments(P, None, None)["segments"].clone();
    assert!(after.as_array().unwrap().iter().all(|s| s["format"] != "rows"), "all re-encoded: {after}");
    check_all(&d, &m, "reencode after the crash");
    check_storage(&d, &backend, "reencode after the crash");
}

#[test]
fn a_crash_in_the_rollback_of_a_failed_restore() {
    let dir = TestDir::new("rollback-restore");
    let (mut d, m) = columnar(&dir, &Backend::File);
    d.advance_clock(LEASE_TTL_SECS * 1_000);
    pass(&d, "gc");
    let trashed = d.get("/v1/admin/trash").json["segments"].clone();
    let batch = trashed[0]["batch_ms"].as_i64().unwrap_or_else(|| panic!("gc trashed the row segments: {trashed}"));
    dies_then_recovers(&mut d, &m, "restore.write=error,rollback.clear=exit", "a restore", |d| {
        post_dies(d, "/v1/admin/trash/restore", &json!({"batch_ms": batch}))
    });
    let after = d.get("/v1/admin/trash").json;
    assert!(after["segments"].as_array().unwrap().iter().all(|s| s["in_catalog"] == false), "{after}");
    assert!(after["segments"].as_array().unwrap().iter().all(|s| s["copies"][0]["present"] == true), "{after}");
    let r = d.post_json("/v1/admin/trash/restore", &json!({"batch_ms": batch}));
    assert_eq!(r.status, 200, "{}", r.text());
    let outcomes = r.json["results"].as_array().unwrap();
    assert!(!outcomes.is_empty() && outcomes.iter().all(|o| o["outcome"] == "restored"), "{}", r.text());
    check_all(&d, &m, "restore after the crash");
    check_storage(&d, &Backend::File, "restore after the crash");
}

/// A promote by hand (`POST /v1/admin/move`, `to: hot`) killed at each of its steps: before the commit the segment
/// stays cold and the half-made hot copy is gone after recovery; after it the segment is hot. Either way, asked
/// again, the move finishes, and one gc past the lease TTL leaves exactly the catalog's copies.
#[test]
fn crashes_at_every_step_of_a_promote_by_hand() {
    let dir = TestDir::new("promote-by-hand");
    let (mut d, m) = columnar(&dir, &Backend::File);
    pass(&d, "migrate");
    let ids = ids(&d);
    let points = ["move.intent", "move.write", "move.verify", "move.commit"];
    assert!(ids.len() >= points.len(), "a segment per crash point: {ids:?}");
    for (point, id) in points.into_iter().zip(&ids) {
        d.set_failpoints(Some(&format!("{point}=exit")));
        d.restart();
        assert!(post_dies(&d, "/v1/admin/move", &json!({"segments": [id], "to": "hot"})), "must die at {point}");
        let status = d.wait_for_exit(Duration::from_secs(30)).expect("the daemon exits at the failpoint");
        assert_eq!(status.code(), Some(101), "{point}: {status}\n{}", d.log_tail(30));
        d.set_failpoints(None);
        d.restart();
        check_all(&d, &m, &format!("a crash at {point}"));
        check_storage(&d, &Backend::File, &format!("recovery after a crash at {point}"));
        let listed = d.segments(P, None, None)["segments"].clone();
        let seg = listed.as_array().unwrap().iter().find(|s| s["id"] == id.as_str()).expect("the segment is live");
        let want = if point == "move.commit" { "hot" } else { "cold" };
        assert_eq!(seg["tier"], want, "after a crash at {point}: {seg}");
        let r = d.post_json("/v1/admin/move", &json!({"segments": [id], "to": "hot"}));
        let want = if point == "move.commit" { "unchanged" } else { "moved" };
        assert_eq!(r.json["results"][0]["outcome"], want, "{point}: {}", r.text());
        check_all(&d, &m, &format!("the move after a crash at {point}"));
    }
    assert_eq!(placements(&d).get("hot"), Some(&points.len()), "{:?}", placements(&d));
    d.advance_clock(LEASE_TTL_SECS * 1_000);
    pass(&d, "gc");
    check_all(&d, &m, "gc after the promotes");
    check_storage(&d, &Backend::File, "gc after the promotes");
}

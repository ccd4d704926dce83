//! Filtered deletes and the deletion commands end to end, on the real daemon and the real `tierd` CLI: a broken
//! release's `Junk` events (those with `release = 2.3.1`, in a window of days) are deleted with
//! `tierd delete-events`, from Parquet segments migrated cold and from late row segments still hot. From the
//! acknowledgement, answers equal the model without them; `Junk` events of the same release sent afterwards, other
//! releases, other names, days outside the window and another project are kept. The `deletions` pass removes them
//! from every live segment (waiting for the open one) and gc erases the copies it retired, `tierd deletions
//! list|show` report the progress, and
//! `tierd delete-user --wait` follows a user deletion until it is done (or gives up after `--timeout-secs`).

use std::process::{Output, Stdio};

use serde_json::{json, Value};
use tierd_tests::daemon::{cli_command, Daemon, TestDir};
use tierd_tests::erasure::{assert_cache_only_live, finish_deletion, stored_rows};
use tierd_tests::model::{check_answer, Model};
use tierd_tests::mp::FAR_FUTURE_MS;
use tierd_tests::policy;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;
const PROJECTS: [&str; 2] = ["web", "app"];

fn config() -> String {
    format!("[gc]\ngrace_secs = 0\n[passes.reencode]\nmin_age_secs = 0\n{}", policy::ALL_COLD)
}

/// The `n`-th event at `time_ms`: names cycle view/Junk/buy, releases 2.3.1/2.3.0, users u0..u3.
fn event(project: &str, time_ms: i64, n: i64) -> Value {
    let names = ["view", "Junk", "buy"];
    json!({"event": names[(n % 3) as usize], "properties": {
        "time": time_ms, "distinct_id": format!("u{}", n % 4), "$insert_id": format!("{project}-{time_ms}-{n}"),
        "release": if n % 2 == 0 { "2.3.1" } else { "2.3.0" },
    }})
}

fn check_answers(d: &Daemon, m: &Model, stage: &str) {
    for p in PROJECTS {
        let all = |extra: Value| {
            let mut q = json!({"project": p, "from": 0, "to": FAR_FUTURE_MS});
            q.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            q
        };
        for q in [
            all(json!({})),
            all(json!({"group_by": "event"})),
            all(json!({"event": "Junk", "group_by": "properties.release"})),
            all(json!({"where": [{"property": "release", "op": "eq", "value": "2.3.1"}], "group_by": "event"})),
        ] {
            if let Err(e) = check_answer(&q, &d.query(&q), &m.answer(&q)) {
                panic!("{stage}: {e}\n{}", d.log_tail(30));
            }
        }
    }
}

/// The `$insert_id`s of every row NDJSON reads give for the live segments of web, data and side, that the
/// request's filter selects, sorted: readers must see exactly the ones the model keeps.
fn check_reads(d: &Daemon, m: &Model, filter: &Value, stage: &str) {
    let (from, to) = (filter["from"].as_i64().unwrap(), filter["to"].as_i64().unwrap());
    let selected =
        |name: &str, time_ms: i64, release: &str| name == "Junk" && release == "2.3.1" && (from..to).contains(&time_ms);
    let mut seen = Vec::new();
    for which in ["", "duplicates=true"] {
        let r = d.get(&format!("/v1/catalog/segments?project=web&{which}"));
        for s in r.json["segments"].as_array().unwrap().iter().filter(|s| s["state"] != "retired") {
            let r = d.get(&format!("/v1/segments/{}?format=ndjson", s["id"].as_str().unwrap()));
            assert_eq!(r.status, 200, "{}", r.text());
            for line in r.text().lines() {
                let e: Value = serde_json::from_str(line).unwrap();
                let p = &e["properties"];
                if selected(e["event"].as_str().unwrap(), p["time"].as_i64().unwrap(), p["release"].as_str().unwrap()) {
                    seen.push(p["$insert_id"].as_str().unwrap().to_string());
                }
            }
        }
    }
    seen.sort();
    let mut kept: Vec<String> = m
        .kept_copies("web")
        .filter(|e| selected(&e.event, e.time_ms, e.props["release"].as_str().unwrap()))
        .map(|e| e.insert_id.clone().unwrap())
        .collect();
    kept.sort();
    assert_eq!(seen, kept, "{stage}: NDJSON reads of the selected events");
}

/// The files (any tier, trash and quarantine included) that still hold an event the filtered delete selects,
/// ingested up to `max_seq`.
fn junk_left(d: &Daemon, max_seq: u64, filter: &Value) -> Vec<String> {
    let (from_ms, to_ms) = (filter["from"].as_i64().unwrap(), filter["to"].as_i64().unwrap());
    let mut files = Vec::new();
    for (project, file, rows) in stored_rows(d.data_dir()) {
        let holds = rows.iter().any(|r| {
            let e = &r.event;
            r.seq <= max_seq
                && e.event == "Junk"
                && (from_ms..to_ms).contains(&e.time_ms)
                && e.properties.get("release") == Some(&json!("2.3.1"))
        });
        if project == "web" && holds {
            files.push(file);
        }
    }
    files
}

/// Runs the CLI against the daemon.
fn cli(d: &Daemon, args: &[&str]) -> Output {
    cli_command().args(args).env("TIERD_URL", d.url()).output().expect("run the tierd CLI")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "CLI failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn a_filtered_delete_leaves_answers_at_once_and_storage_after_the_pass() {
    let dir = TestDir::new("deletions-filtered");
    let mut d = Daemon::start(&dir.data_dir(), Some(&config()));
    let now = d.advance_clock(1);
    let first_day = now.div_euclid(DAY) - 4;
    let mut m = Model::new();
    for p in PROJECTS {
        let events: Vec<Value> =
            (0..3 * 24).map(|n| event(p, (first_day + n / 24) * DAY + (n % 24) * HOUR + HOUR / 2, n)).collect();
        d.send(&mut m, p, &events);
    }
    d.stop();
    d.restart(); // seals
    d.pass_ok("reencode");
    d.pass_ok("migrate");
    for p in PROJECTS {
        // Late events of the second day, in an open row segment.
        let late: Vec<Value> = (0..12).map(|n| event(p, (first_day + 1) * DAY + n * HOUR + 17, 200 + n)).collect();
        d.send(&mut m, p, &late);
    }
    check_answers(&d, &m, "before any deletion");

    // The junk of release 2.3.1 from the second day on, in web only.
    let filter = json!({"event": "Junk", "from": (first_day + 1) * DAY, "to": now,
        "where": [{"property": "release", "op": "eq", "value": "2.3.1"}]});
    let junk = |m: &Model| m.answer(&json!({"project": "web", "from": 0, "to": FAR_FUTURE_MS, "event": "Junk"})).total;
    let before = junk(&m);
    let (from, to_arg) = (((first_day + 1) * DAY).to_string(), now.to_string());
    let out = stdout(&cli(
        &d,
        &[
            "delete-events",
            "--project",
            "web",
            "--event",
            "Junk",
            "--from",
            &from,
            "--to",
            &to_arg,
            "--where",
            "release = 2.3.1",
            "--json",
        ],
    ));
    let accepted: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(accepted["state"], "pending", "{out}");
    let id = accepted["id"].as_str().unwrap().to_string();
    m.delete_events("web", &filter);
    let max_seq = accepted["max_seq"].as_u64().unwrap();
    assert!(!junk_left(&d, max_seq, &filter).is_empty(), "the file check finds the junk before the pass: it can fail");
    assert!(junk(&m) < before && junk(&m) > 0, "some junk goes, some stays: the test can fail");
    check_answers(&d, &m, "right after the request");
    check_reads(&d, &m, &filter, "right after the request");
    assert_eq!(d.segments("web", None, None)["deleted_rows"]["kind"], "events");

    // The same release sends the same junk again after the request: kept (a deletion removes what existed).
    let again: Vec<Value> =
        (0..6).map(|n| event("web", (first_day + 2) * DAY + n * HOUR + 99, 1000 + 3 * n + 1)).collect();
    d.send(&mut m, "web", &again);
    check_answers(&d, &m, "after new junk");
    check_reads(&d, &m, &filter, "after new junk");

    // The pass waits for the open segment; the listing says so.
    d.pass_ok("deletions");
    let listed = stdout(&cli(&d, &["deletions", "list"]));
    assert!(listed.contains(&id) && listed.contains("running") && listed.contains("events Junk in"), "{listed}");
    check_answers(&d, &m, "after a pass that had to wait");

    // A user deletion in app, followed with --wait: it gives up after its timeout while no pass runs, and says so.
    let o = cli(&d, &["delete-user", "--project", "app", "--distinct-id", "u2", "--wait", "--timeout-secs", "1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("still pending") && err.contains("tierd deletions show"), "{err}");
    let user_id = d.get("/v1/admin/deletions").json["deletions"][1]["id"].as_str().unwrap().to_string();
    m.delete_users("app", &["u2"]);
    check_answers(&d, &m, "after the user deletion");

    // A restart seals the open segments; a follower started now sees the next run finish both requests.
    d.kill9();
    d.restart();
    let follower = cli_command()
        .args(["delete-user", "--project", "app", "--distinct-id", "u3", "--wait", "--timeout-secs", "120"])
        .env("TIERD_URL", d.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    d.wait_for("the follower's request", || {
        d.get("/v1/admin/deletions").json["deletions"].as_array().unwrap().len() == 3
    });
    m.delete_users("app", &["u3"]);
    // The pass rewrites what is left, then gc erases the copies it retired (after the lease TTL): done.
    let ids: Vec<String> = d.get("/v1/admin/deletions").json["deletions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        finish_deletion(&mut d, id, 301_000, 4);
    }
    let o = follower.wait_with_output().unwrap();
    let followed = stdout(&o);
    assert!(followed.contains("accepted") && followed.contains("done"), "{followed}");
    for r in d.get("/v1/admin/deletions").json["deletions"].as_array().unwrap() {
        assert_eq!(r["state"], "done", "{r}");
    }
    let shown = stdout(&cli(&d, &["deletions", "show", &id]));
    assert!(
        shown.contains("done") && shown.contains("where release eq \"2.3.1\"") && shown.contains("finished at"),
        "{shown}"
    );
    let shown = stdout(&cli(&d, &["deletions", "show", &user_id]));
    assert!(shown.contains("distinct ids: u2"), "{shown}");
    assert!(d.segments("web", None, None).get("deleted_rows").is_none(), "no tombstone once done");
    check_answers(&d, &m, "after the deletions are done");
    check_reads(&d, &m, &filter, "after the deletions are done");
    // Complete in bytes: no file on either tier (live, trash, quarantine, the cold bucket) holds a selected event
    // from before the request, and every cached block belongs to a live cold copy.
    let max_seq = accepted["max_seq"].as_u64().unwrap();
    assert_eq!(junk_left(&d, max_seq, &filter), Vec::<String>::new(), "files still holding deleted junk");
    assert_cache_only_live(&d, "at done");
    let e = String::from_utf8_lossy(&cli(&d, &["deletions", "show", "nope"]).stderr).to_string();
    assert!(e.contains("invalid deletion id"), "{e}");
}

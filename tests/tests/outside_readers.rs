//! Outside readers: DuckDB and pyarrow each read every column of tierd's Parquet segments unchanged (the `time`
//! timestamp, the lifted columns, the shredded `p.*` columns by the footer's `tierd.columns`, the `_props` JSON), and
//! the events each reads, deduplicated by its own rows (the copy with the highest `seq` wins), are exactly the
//! model's, property by property. The day holds several Parquet segments whose rows re-send each other's events, so this is also
//! query-time dedup across segments, checked end to end against tierd's own answers.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{json, Value};
use tierd_tests::daemon::{Daemon, TestDir};
use tierd_tests::gen::EventGen;
use tierd_tests::model::{check_answer, json_eq, Model};
use tierd_tests::mp::FAR_FUTURE_MS;

/// 2026-01-01, in days since the epoch.
const DAY0: i64 = 20_454;

/// Every row of the given Parquet files as DuckDB reads it, rebuilt into an event.
const READ_ALL: &str = r#"
import duckdb, json, sys
out = []
for f in json.loads(sys.argv[1]):
    kv = {bytes(k).decode(): bytes(v).decode() for k, v in duckdb.sql(f"select key, value from parquet_kv_metadata('{f}')").fetchall()}
    columns = json.loads(kv["tierd.columns"])
    types = dict(duckdb.sql(f"select name, type from parquet_schema('{f}')").fetchall())
    rel = duckdb.sql(f"select epoch_ms(time) as time_ms, typeof(time) as time_type, * exclude (time) from read_parquet('{f}')")
    names = rel.columns
    for row in rel.fetchall():
        r = dict(zip(names, row))
        props = {}
        for c in columns:
            v = r[c["column"]]
            if v is not None:
                props[c["key"]] = json.loads(v) if c["kind"] == "json" else v
        if r.get("_props") is not None:
            props.update(json.loads(r["_props"]))
        out.append({"event": r["event"], "distinct_id": r["distinct_id"], "insert_id": r["$insert_id"],
                    "seq": r["seq"], "time_ms": r["time_ms"], "time_type": r["time_type"], "props": props})
print(json.dumps(out))
"#;

/// The same with pyarrow: the footer's key-value metadata through `ParquetFile`, the rows through `read_table`.
const READ_ALL_PYARROW: &str = r#"
import json, sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
out = []
for f in json.loads(sys.argv[1]):
    pf = pq.ParquetFile(f)
    kv = {k.decode(): v.decode() for k, v in pf.metadata.metadata.items()}
    columns = json.loads(kv["tierd.columns"])
    t = pf.read()
    time_type = str(t.schema.field("time").type)
    times = pc.cast(t.column("time"), pa.int64()).to_pylist()
    cols = {name: t.column(name).to_pylist() for name in t.column_names if name != "time"}
    for i in range(t.num_rows):
        props = {}
        for c in columns:
            v = cols[c["column"]][i]
            if v is not None:
                props[c["key"]] = json.loads(v) if c["kind"] == "json" else v
        if cols["_props"][i] is not None:
            props.update(json.loads(cols["_props"][i]))
        out.append({"event": cols["event"][i], "distinct_id": cols["distinct_id"][i], "insert_id": cols["$insert_id"][i],
                    "seq": cols["seq"][i], "time_ms": times[i], "time_type": time_type, "props": props})
print(json.dumps(out))
"#;

/// Every row of `project`'s segments as the Python `script` reads them.
fn outside_rows(d: &Daemon, project: &str, reader: &str, script: &str) -> Vec<Value> {
    let listed = d.segments(project, None, None);
    let files: Vec<String> = listed["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["format"], "parquet", "{s}");
            d.data_dir().join(s["location"].as_str().unwrap()).to_string_lossy().into_owned()
        })
        .collect();
    let out = Command::new("python3")
        .args(["-c", script, &serde_json::to_string(&files).unwrap()])
        .output()
        .expect("python3 runs (`tests/run` installs duckdb and pyarrow)");
    assert!(
        out.status.success(),
        "{reader} failed (run the suite with `tests/run`, which installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `rows` as one outside reader read them, deduplicated by the contract (per (event, distinct_id, time,
/// `$insert_id`), the highest seq), are exactly the model's live events, property by property.
fn check_rows(reader: &str, rows: &[Value], m: &Model) {
    let mut winners: BTreeMap<(String, String, i64, String), &Value> = BTreeMap::new();
    for r in rows {
        let key = (
            r["event"].as_str().unwrap().to_string(),
            r["distinct_id"].as_str().unwrap().to_string(),
            r["time_ms"].as_i64().unwrap(),
            r["insert_id"].as_str().unwrap().to_string(),
        );
        let newer = winners.get(&key).is_none_or(|w| w["seq"].as_u64() < r["seq"].as_u64());
        if newer {
            winners.insert(key, r);
        }
    }
    assert!(rows.len() > winners.len(), "{reader}: the segments hold re-sent copies: the dedup is tested");
    let live = m.live("p");
    assert_eq!(winners.len(), live.len(), "events {reader} reads vs the model");
    for e in live {
        let key = (e.event.clone(), e.distinct_id.clone(), e.time_ms, e.insert_id.clone().unwrap());
        let w = winners.get(&key).unwrap_or_else(|| panic!("{reader} has no {key:?}"));
        let want = Value::Object(e.props.clone());
        assert!(json_eq(&w["props"], &want), "{key:?}: {reader} read {} but the model has {want}", w["props"]);
    }
}

fn import(d: &Daemon, m: &mut Model, events: &[Value]) {
    for chunk in events.chunks(500) {
        d.import_ok("p", chunk);
        m.ack("p", chunk);
    }
}

#[test]
fn duckdb_and_pyarrow_read_every_column_and_their_deduplicated_events_are_the_models() {
    let dir = TestDir::new("outside-readers");
    let mut d = Daemon::start(&dir.data_dir(), Some("[passes.reencode]\nmin_age_secs = 0\n"));
    let mut m = Model::new();
    let mut g = EventGen::new(0x0DD_BA11, DAY0, 3);
    let first = g.events(1500);
    import(&d, &mut m, &first);
    d.stop();
    d.restart(); // seals
    assert_eq!(d.post_json("/v1/admin/passes/reencode/run", &json!({})).json["errors"], json!([]));
    // A second round on the same days: new events and changed re-sends of the first round's, in new segments.
    let mut second = g.events(500);
    second.extend(first.iter().step_by(5).map(|e| g.changed_copy(e)).collect::<Vec<_>>());
    import(&d, &mut m, &second);
    d.stop();
    d.restart();
    assert_eq!(d.post_json("/v1/admin/passes/reencode/run", &json!({})).json["errors"], json!([]));
    let segments = d.segments("p", None, None)["segments"].as_array().unwrap().len();
    assert!(segments >= 6, "two Parquet segments per day: {segments}");

    for (reader, script, time_type) in
        [("DuckDB", READ_ALL, "TIMESTAMP WITH TIME ZONE"), ("pyarrow", READ_ALL_PYARROW, "timestamp[ms, tz=UTC]")]
    {
        let rows = outside_rows(&d, "p", reader, script);
        assert!(rows.iter().all(|r| r["time_type"] == time_type), "{reader}: {}", rows[0]);
        check_rows(reader, &rows, &m);
    }
    // And tierd's own answers over the same segments agree with the model (dedup across segments of a day).
    for q in [
        json!({"project": "p", "from": 0, "to": FAR_FUTURE_MS}),
        json!({"project": "p", "from": 0, "to": FAR_FUTURE_MS, "group_by": "properties.$os"}),
        json!({"project": "p", "from": 0, "to": FAR_FUTURE_MS, "group_by": "properties.resent"}),
    ] {
        check_answer(&q, &d.query(&q), &m.answer(&q)).unwrap();
    }
}

//! The recorded access log `tierd simulate --access-log FILE` replays: one JSON object per line (NDJSON).
//!
//! ```text
//! {"time_ms":1762041600000,"project":"web","day":"2026-11-01","bytes":52428800}
//! {"time_ms":1762128000000,"project":"web","day":"2026-11-01","bytes":1048576,"op":"read"}
//! {"time_ms":1762128000000,"project":"web","day":"2026-11-02","bytes":734003200,"op":"write"}
//! ```
//!
//! - `time_ms`: when (milliseconds since 1970-01-01 UTC); lines may come in any order.
//! - `project`, `day` (`YYYY-MM-DD`, UTC): the data read or written.
//! - `bytes`: for a read, the bytes it read; for a write, the (project, day)'s size once sealed; both as stored in
//!   the ingest codec (lz4 columnar).
//! - `op`: `"read"` (the default) or `"write"`: the (project, day) was sealed at `time_ms`.
//!
//! A (project, day) that is read but never written is taken to have been sealed at the end of its day (or at its
//! first read, if that is earlier), with the size of its largest read: a log of reads alone is enough. Empty lines
//! and lines starting with `#` are skipped. The simulated window runs from the midnight before the first line to
//! the midnight after the last. Errors name the line (1-based) and what is wrong with it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::workload::{civil_from_days, days_from_civil, Read, Workload, Write, DAY_MS};

/// A line of an access log that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access log line {line}: {problem}")]
pub struct AccessLogError {
    /// 1-based.
    pub line: usize,
    pub problem: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    #[default]
    Read,
    Write,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    time_ms: i64,
    project: String,
    day: String,
    bytes: u64,
    #[serde(default, skip_serializing_if = "is_read")]
    op: Op,
}

fn is_read(op: &Op) -> bool {
    *op == Op::Read
}

/// `YYYY-MM-DD` of a day since 1970-01-01.
pub fn format_day(day: i32) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of `YYYY-MM-DD`.
pub fn parse_day(s: &str) -> Option<i32> {
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    days_from_civil(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// Parses an access log; see the [module docs](self).
pub fn parse(text: &str) -> Result<Workload, AccessLogError> {
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let err = |problem: String| AccessLogError { line, problem };
        let l: Line = serde_json::from_str(raw).map_err(|e| {
            err(format!("{e}; expected {{\"time_ms\":N,\"project\":\"..\",\"day\":\"YYYY-MM-DD\",\"bytes\":N}}"))
        })?;
        let day = parse_day(&l.day).ok_or_else(|| err(format!("day {:?} is not a date YYYY-MM-DD", l.day)))?;
        if l.project.is_empty() {
            return Err(err("project is empty".into()));
        }
        if l.time_ms < 0 {
            return Err(err(format!("time_ms {} is before 1970", l.time_ms)));
        }
        match l.op {
            Op::Read => reads.push(Read { time_ms: l.time_ms, project: l.project, day, bytes: l.bytes }),
            Op::Write => {
                if l.time_ms < i64::from(day) * DAY_MS {
                    return Err(err(format!("writes day {} at time_ms {}, before the day began", l.day, l.time_ms)));
                }
                writes.push(Write { time_ms: l.time_ms, project: l.project, day, bytes: l.bytes });
            }
        }
    }
    if writes.is_empty() && reads.is_empty() {
        return Err(AccessLogError { line: 0, problem: "the log has no lines".into() });
    }
    // Days read but never written: sealed at their end (or first read), as big as their largest read.
    let written: std::collections::HashSet<(String, i32)> = writes.iter().map(|w| (w.project.clone(), w.day)).collect();
    let mut implied: BTreeMap<(String, i32), (i64, u64)> = BTreeMap::new();
    for r in reads.iter().filter(|r| !written.contains(&(r.project.clone(), r.day))) {
        let e = implied.entry((r.project.clone(), r.day)).or_insert(((i64::from(r.day) + 1) * DAY_MS, 0));
        e.0 = e.0.min(r.time_ms);
        e.1 = e.1.max(r.bytes);
    }
    writes.extend(implied.into_iter().map(|((project, day), (time_ms, bytes))| Write { time_ms, project, day, bytes }));
    writes.sort_by_key(|w| w.time_ms);
    reads.sort_by_key(|r| r.time_ms);
    let first = writes.iter().map(|w| w.time_ms).chain(reads.iter().map(|r| r.time_ms)).min().unwrap_or(0);
    let last = writes.iter().map(|w| w.time_ms).chain(reads.iter().map(|r| r.time_ms)).max().unwrap_or(0);
    let start_ms = first.div_euclid(DAY_MS) * DAY_MS;
    let end_ms = (last.div_euclid(DAY_MS) + 1) * DAY_MS;
    Ok(Workload { start_ms, measure_from_ms: start_ms, end_ms, writes, reads })
}

/// Writes `workload` as an access log that [`parse`] reads back into the same writes and reads.
pub fn format(workload: &Workload) -> String {
    let mut out = String::new();
    let lines = workload
        .writes
        .iter()
        .map(|w| (w.time_ms, &w.project, w.day, w.bytes, Op::Write))
        .chain(workload.reads.iter().map(|r| (r.time_ms, &r.project, r.day, r.bytes, Op::Read)));
    for (time_ms, project, day, bytes, op) in lines {
        let line = Line { time_ms, project: project.clone(), day: format_day(day), bytes, op };
        out.push_str(&serde_json::to_string(&line).expect("a line serializes"));
        out.push('\n');
    }
    out
}

//! `tierd query`: count deduplicated events through a running daemon's query API and show the result.
//!
//! The command line is turned into a [`QueryRequest`] by pure parsers ([`parse_time`], [`parse_where`],
//! [`parse_group_by`]) that reject bad input with a message naming the accepted forms before any request is made;
//! the answer is shown by [`format_table`] or, with `--json`, exactly as the daemon sent it.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, NaiveDate};
use serde_json::Value;
use tierd_store::query::Op;

use super::daemon::{endpoint, http_client, server_message, token_hint, unreachable_message, DEFAULT_URL};
use crate::api::{QueryRequest, QueryResponse, WhereClause};

/// `tierd query`.
#[derive(Debug, Clone, clap::Args)]
pub struct QueryArgs {
    /// Project to query.
    #[arg(long, default_value = "default")]
    pub project: String,
    /// Start of the time range (inclusive): YYYY-MM-DD (UTC midnight), RFC 3339, or epoch milliseconds.
    #[arg(long, value_parser = parse_time)]
    pub from: i64,
    /// End of the time range (exclusive), in the same forms as --from.
    #[arg(long, value_parser = parse_time)]
    pub to: i64,
    /// Count only events with this name.
    #[arg(long)]
    pub event: Option<String>,
    /// Property filter `PROP OP VALUE` (OP: = != < <= > >= or eq neq lt lte gt gte) or `PROP exists`; repeatable,
    /// all must hold. VALUE is JSON if it parses as JSON (5, true, null, "a b"), else a plain string.
    #[arg(long = "where", value_name = "FILTER", value_parser = parse_where)]
    pub filters: Vec<WhereClause>,
    /// Count per `event` or per `properties.NAME`.
    #[arg(long, value_parser = parse_group_by)]
    pub group_by: Option<String>,
    /// Show only the N largest groups; the rest are summed in one `(N others)` row.
    #[arg(long, requires = "group_by")]
    pub limit: Option<usize>,
    /// Base URL of the daemon.
    #[arg(long, env = "TIERD_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Print the daemon's JSON answer unchanged.
    #[arg(long)]
    pub json: bool,
}

/// A command-line value `tierd query` cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error("`{0}` is not a time: use a date (2026-01-01, UTC midnight), RFC 3339 (2026-01-01T12:00:00Z) or epoch milliseconds")]
    Time(String),
    #[error("`{input}`: {reason}; write `PROP OP VALUE` (OP is one of = != < <= > >= eq neq lt lte gt gte) or `PROP exists`")]
    Where { input: String, reason: &'static str },
    #[error("--group-by `{0}`: use `event` or `properties.NAME` (for example properties.$os)")]
    GroupBy(String),
}

/// The operator a command-line token names, if any (`=`, `==`, `eq`, ...; words in any case).
fn op_from_token(token: &str) -> Option<Op> {
    Some(match token.to_ascii_lowercase().as_str() {
        "=" | "==" | "eq" => Op::Eq,
        "!=" | "neq" => Op::Neq,
        "<" | "lt" => Op::Lt,
        "<=" | "lte" => Op::Lte,
        ">" | "gt" => Op::Gt,
        ">=" | "gte" => Op::Gte,
        "exists" => Op::Exists,
        _ => return None,
    })
}

impl QueryRequest {
    /// The request `tierd query` sends.
    pub fn from_args(args: &QueryArgs) -> Self {
        Self {
            project: Some(args.project.clone()),
            from: args.from,
            to: args.to,
            event: args.event.clone(),
            filters: args.filters.clone(),
            group_by: args.group_by.clone(),
            limit: args.limit,
        }
    }
}

/// Parses a time bound: epoch milliseconds (an integer), a date `YYYY-MM-DD` (UTC midnight) or an RFC 3339
/// timestamp; returns epoch milliseconds.
pub fn parse_time(input: &str) -> Result<i64, QueryError> {
    let s = input.trim();
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| QueryError::Time(input.to_owned()));
    }
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
        return Ok(midnight.and_utc().timestamp_millis());
    }
    DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_millis()).map_err(|_| QueryError::Time(input.to_owned()))
}

/// Parses `PROP OP VALUE` or `PROP exists`.
///
/// The operator is the first whitespace-separated token after the first one that names an operator, so property
/// names and values may contain spaces (`Product Name = Blue Mug`); without spaces around it, the first of
/// `!= <= >= == = < >` splits the filter (`$os=iOS`). The value is JSON if it parses as JSON, else the text as
/// typed; SQL-style single quotes around it are removed (`'iOS'` means "iOS").
pub fn parse_where(input: &str) -> Result<WhereClause, QueryError> {
    let err = |reason| QueryError::Where { input: input.to_owned(), reason };
    let s = input.trim();
    let (property, op, value) = split_spaced(s).or_else(|| split_compact(s)).ok_or_else(|| err("no operator"))?;
    let (property, value) = (property.trim(), value.trim());
    if property.is_empty() {
        return Err(err("missing property name"));
    }
    let value = match (op, value.is_empty()) {
        (Op::Exists, true) => None,
        (Op::Exists, false) => return Err(err("`exists` takes no value")),
        (_, true) => return Err(err("missing value")),
        (_, false) => Some(parse_value(value)),
    };
    Ok(WhereClause { property: property.to_owned(), op, value })
}

fn split_spaced(s: &str) -> Option<(&str, Op, &str)> {
    let mut tokens = s.split_whitespace().skip(1);
    tokens.find_map(|token| {
        let op = op_from_token(token)?;
        // `token` is a subslice of `s`: its offset tells where the property ends and the value starts.
        let start = token.as_ptr() as usize - s.as_ptr() as usize;
        Some((&s[..start], op, &s[start + token.len()..]))
    })
}

fn split_compact(s: &str) -> Option<(&str, Op, &str)> {
    let start = s.find(['!', '<', '>', '='])?;
    let rest = &s[start..];
    let symbol = ["!=", "<=", ">=", "==", "=", "<", ">"].into_iter().find(|sym| rest.starts_with(sym))?;
    Some((&s[..start], op_from_token(symbol)?, &rest[symbol.len()..]))
}

fn parse_value(text: &str) -> Value {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return value;
    }
    let unquoted = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')).unwrap_or(text);
    Value::String(unquoted.to_owned())
}

/// Accepts `event` or `properties.NAME`.
pub fn parse_group_by(input: &str) -> Result<String, QueryError> {
    let s = input.trim();
    match s.strip_prefix("properties.") {
        Some(name) if !name.is_empty() => Ok(s.to_owned()),
        None if s == "event" => Ok(s.to_owned()),
        _ => Err(QueryError::GroupBy(input.to_owned())),
    }
}

/// The result as an aligned table (key, count, share of the total) followed by a line with the total and what was
/// scanned. `key_header` names the first column (the `--group-by` value). Without rows, only the summary line.
pub fn format_table(response: &QueryResponse, key_header: &str) -> String {
    let mut out = String::new();
    if !response.rows.is_empty() {
        let mut rows: Vec<(String, String, String)> = response
            .rows
            .iter()
            .map(|row| (display_key(&row.key), group_digits(row.count), share(row.count, response.total)))
            .collect();
        if let Some(o) = &response.other {
            let label = format!("({} others)", group_digits(o.groups));
            rows.push((label, group_digits(o.count), share(o.count, response.total)));
        }
        let width = |header: &str, column: &dyn Fn(&(String, String, String)) -> &str| {
            rows.iter().map(|r| column(r).chars().count()).chain([header.chars().count()]).max().unwrap_or(0)
        };
        let key_w = width(key_header, &|r| &r.0);
        let count_w = width("count", &|r| &r.1);
        let share_w = width("share", &|r| &r.2);
        let mut line = |key: &str, count: &str, share: &str| {
            let pad = key_w - key.chars().count();
            let _ = writeln!(out, "{key}{:pad$}  {count:>count_w$}  {share:>share_w$}", "");
        };
        line(key_header, "count", "share");
        for (key, count, share) in &rows {
            line(key, count, share);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "total {} events; {} segments scanned, {} scanned",
        group_digits(response.total),
        group_digits(response.segments_scanned),
        human_bytes(response.bytes_scanned)
    );
    out
}

fn display_key(key: &Value) -> String {
    match key {
        Value::Null => "(null)".to_owned(),
        Value::String(s) if s.is_empty() => "\"\"".to_owned(),
        // Keep a key with a newline or tab from breaking the table.
        Value::String(s) if s.chars().any(char::is_control) => format!("{s:?}"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn share(count: u64, total: u64) -> String {
    if total == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", count as f64 * 100.0 / total as f64)
    }
}

/// `1234567` as `1,234,567`.
fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let head = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        r => r,
    };
    let mut out = digits[..head].to_owned();
    for group in digits.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).expect("ASCII digits"));
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({} bytes)", UNITS[unit], group_digits(n))
}

/// Runs `tierd query` and prints the result.
pub fn run_query(args: QueryArgs) -> anyhow::Result<()> {
    print!("{}", execute_query(&args)?);
    Ok(())
}

/// Sends the query and returns what `tierd query` prints: the table, or with `--json` the daemon's answer as sent
/// (plus a final newline if it had none).
pub fn execute_query(args: &QueryArgs) -> anyhow::Result<String> {
    if args.from >= args.to {
        anyhow::bail!("--from ({}) must be before --to ({}); --to is exclusive", args.from, args.to);
    }
    let url = endpoint(&args.url, "/v1/query").map_err(anyhow::Error::msg)?;
    let client = http_client(&args.url, Duration::from_secs(300))?;
    let response = client
        .post(url)
        .json(&QueryRequest::from_args(args))
        .send()
        .map_err(|e| anyhow::anyhow!(unreachable_message(&args.url, &e)))?;
    let status = response.status();
    let mut body = response.text().map_err(|e| anyhow::anyhow!("reading the daemon's answer: {e}"))?;
    if !status.is_success() {
        anyhow::bail!("query failed, the daemon answered {status}: {}{}", server_message(&body), token_hint(status));
    }
    if args.json {
        if !body.ends_with('\n') {
            body.push('\n');
        }
        return Ok(body);
    }
    let parsed: QueryResponse = serde_json::from_str(&body)
        .map_err(|e| anyhow::anyhow!("the daemon's answer is not a query result ({e}): {}", server_message(&body)))?;
    Ok(format_table(&parsed, args.group_by.as_deref().unwrap_or("key")))
}

#[cfg(test)]
mod tests;

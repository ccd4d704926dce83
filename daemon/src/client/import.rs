//! `tierd import FILE`: send a file of events to a running daemon in bounded batches.
//!
//! The file is NDJSON (read line by line, never whole) or one JSON array (read whole, split into elements by
//! [`split_json_array`], which keeps each element's line). [`Batcher`] cuts the events into request bodies of at
//! most `--batch-size` events and [`MAX_BATCH_BYTES`] bytes and remembers the file line of every event, so when the
//! daemon rejects a batch its `failed_records[].index` can be shown as a line of the file
//! ([`annotate_failed_records`]). Batches go one at a time, in file order: when a batch fails, every event before
//! its first line has been imported. Re-sending a batch after a 503 or a timeout is safe because the daemon
//! deduplicates on `$insert_id`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal as _, Write as _};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;
use tierd_policies::RetryPolicy;

use super::daemon::{endpoint, http_client, server_message, unreachable_message, DEFAULT_URL};
use crate::api::ImportAnswer;
use tierd_store::clock::Stopwatch;

mod array;
mod error;

pub use array::{split_json_array, ArrayElement};
pub use error::ImportError;

/// The most bytes one request body may hold (uncompressed), whatever `--batch-size` says.
pub const MAX_BATCH_BYTES: usize = 10 * 1024 * 1024;

/// `tierd import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// NDJSON (one event per line) or JSON array file of Mixpanel events; `-` reads stdin.
    pub file: PathBuf,
    /// Project to import into (`?project=`). Default: the project of the credential, else `default`.
    #[arg(long)]
    pub project: Option<String>,
    /// Base URL of the daemon.
    #[arg(long, env = "TIERD_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Most events per request (requests are also capped at 10 MiB).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// Gzip request bodies (sent with `Content-Encoding: gzip`).
    #[arg(long)]
    pub gzip: bool,
    /// Authenticate as this service account (HTTP Basic, with `--project-id`); its secret is read from the
    /// environment variable TIERD_IMPORT_SECRET, never from the command line. Without it, TIERD_IMPORT_SECRET (when
    /// set) is sent as the project secret, as Mixpanel's older clients do.
    #[arg(long, requires = "project_id")]
    pub service_account: Option<String>,
    /// The project id (or name) the service account writes to (`?project_id=`).
    #[arg(long, requires = "service_account")]
    pub project_id: Option<String>,
    /// The secret (TIERD_IMPORT_SECRET, filled in by `tierd import`); never printed.
    #[arg(skip)]
    pub secret: Option<String>,
}

/// The environment variable `tierd import` reads the `/import` secret from.
pub const SECRET_ENV: &str = "TIERD_IMPORT_SECRET";

/// How an import authenticates: HTTP Basic user name and password.
fn basic_credential(args: &ImportArgs) -> Result<Option<(String, String)>, ImportError> {
    match (&args.service_account, &args.secret) {
        (Some(user), Some(secret)) => Ok(Some((user.clone(), secret.clone()))),
        (Some(user), None) => Err(ImportError::Setup(format!(
            "--service-account {user:?} needs its secret: set the environment variable {SECRET_ENV}"
        ))),
        // The project secret is the user name, with an empty password (as Mixpanel's SDKs send api_secret).
        (None, Some(secret)) => Ok(Some((secret.clone(), String::new()))),
        (None, None) => Ok(None),
    }
}

/// One request body and where its events came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// NDJSON: one event per line, each line ending in `\n`.
    pub body: Vec<u8>,
    /// The file line each event starts on (1-based), in body order: `failed_records[].index` indexes this.
    pub lines: Vec<u64>,
    /// Input bytes consumed up to the end of the batch's last event (drives the progress bar).
    pub input_end: u64,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// First and last file line of the batch.
    pub fn line_range(&self) -> RangeInclusive<u64> {
        let first = self.lines.first().copied().unwrap_or(0);
        first..=self.lines.last().copied().unwrap_or(first)
    }
}

/// Cuts a stream of events into batches of at most `max_events` events and `max_bytes` body bytes.
#[derive(Debug)]
pub struct Batcher {
    max_events: usize,
    max_bytes: usize,
    current: Batch,
}

impl Batcher {
    pub fn new(max_events: usize, max_bytes: usize) -> Self {
        Self { max_events: max_events.max(1), max_bytes, current: Batch::default() }
    }

    /// Adds one event (compact JSON without the newline) that starts on file line `line`; `input_end` is the input
    /// offset just past it. Returns the previous batch when this event does not fit in it; an event that could not
    /// fit even in an empty batch is an error.
    pub fn push(&mut self, line: u64, event: &[u8], input_end: u64) -> Result<Option<Batch>, ImportError> {
        let size = event.len() + 1;
        if size > self.max_bytes {
            return Err(ImportError::EventTooLarge { line, bytes: size, limit: self.max_bytes });
        }
        let full = !self.current.is_empty()
            && (self.current.len() >= self.max_events || self.current.body.len() + size > self.max_bytes);
        let done = full.then(|| std::mem::take(&mut self.current));
        self.current.body.extend_from_slice(event);
        self.current.body.push(b'\n');
        self.current.lines.push(line);
        self.current.input_end = input_end;
        Ok(done)
    }

    /// The last, partly filled batch, if any event is left.
    pub fn finish(self) -> Option<Batch> {
        (!self.current.is_empty()).then_some(self.current)
    }
}

/// Adds `"line": <file line>` to every `failed_records[]` entry of a daemon error response whose `index` points into
/// the batch.
pub fn annotate_failed_records(response: &mut Value, lines: &[u64]) {
    let Some(records) = response.get_mut("failed_records").and_then(Value::as_array_mut) else {
        return;
    };
    for record in records.iter_mut().filter_map(Value::as_object_mut) {
        let line = record.get("index").and_then(Value::as_u64).and_then(|i| lines.get(usize::try_from(i).ok()?));
        if let Some(&line) = line {
            record.insert("line".to_owned(), Value::from(line));
        }
    }
}

/// `Retry-After` in its delta-seconds form; the HTTP-date form is not used by tierd and gives `None`.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// How `tierd import` re-sends one batch while the daemon is unavailable: waits double from 1 s up to 30 s (the
/// daemon's `Retry-After` wins over that), for at most 10 minutes from the batch's first attempt. No jitter: one
/// importer sends one batch at a time.
pub fn import_retry_policy() -> RetryPolicy {
    RetryPolicy {
        first: Duration::from_secs(1),
        cap: Duration::from_secs(30),
        jitter: 0.0,
        give_up_after: Some(Duration::from_secs(600)),
    }
}

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ImportReport {
    /// Events the daemon reported as imported (`num_records_imported`, summed).
    pub events: u64,
    pub batches: u64,
    /// Input bytes read.
    pub input_bytes: u64,
    pub elapsed: Duration,
}

impl ImportReport {
    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        }
    }
}

/// Sends batches to one daemon, one at a time, and keeps count.
pub struct Importer {
    client: reqwest::blocking::Client,
    /// HTTP Basic user name and password of every request.
    credential: Option<(String, String)>,
    base: String,
    url: reqwest::Url,
    gzip: bool,
    max_events: usize,
    policy: RetryPolicy,
    progress: ProgressBar,
    imported: u64,
    batches: u64,
}

impl Importer {
    pub fn new(args: &ImportArgs) -> Result<Self, ImportError> {
        let mut url = endpoint(&args.url, "/import").map_err(ImportError::Setup)?;
        let credential = basic_credential(args)?;
        // With a credential the daemon knows the project; a `?project=` would only have to agree with it.
        match (&args.project, &credential) {
            (Some(project), _) => url.query_pairs_mut().append_pair("project", project),
            (None, None) => url.query_pairs_mut().append_pair("project", "default"),
            (None, Some(_)) => &mut url.query_pairs_mut(),
        };
        if let Some(id) = &args.project_id {
            url.query_pairs_mut().append_pair("project_id", id);
        }
        let client = http_client(&args.url, Duration::from_secs(300)).map_err(|e| ImportError::Setup(e.to_string()))?;
        Ok(Self {
            client,
            credential,
            base: args.url.clone(),
            url,
            gzip: args.gzip,
            max_events: usize::try_from(args.batch_size).unwrap_or(usize::MAX),
            policy: import_retry_policy(),
            progress: ProgressBar::hidden(),
            imported: 0,
            batches: 0,
        })
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Reports progress (input bytes as position, imported events as message) on `progress`.
    pub fn with_progress(mut self, progress: ProgressBar) -> Self {
        self.progress = progress;
        self
    }

    /// Imports every event `input` holds: a JSON array if its first non-blank byte is `[`, else NDJSON.
    pub fn import<R: BufRead>(&mut self, mut input: R, what: &str) -> Result<ImportReport, ImportError> {
        let started = Stopwatch::start();
        let read_error = |imported_before, source| ImportError::Read { what: what.to_owned(), imported_before, source };
        let (is_array, skipped_lines, skipped_bytes) = sniff(&mut input).map_err(|e| read_error(0, e))?;
        let mut batcher = Batcher::new(self.max_events, MAX_BATCH_BYTES);
        let mut input_bytes = skipped_bytes;
        if is_array {
            let mut whole = Vec::new();
            input.read_to_end(&mut whole).map_err(|e| read_error(0, e))?;
            input_bytes += whole.len() as u64;
            for element in split_json_array(&whole)? {
                let line = element.line + skipped_lines;
                if let Some(batch) = batcher.push(line, &element.json, skipped_bytes + element.end as u64)? {
                    self.send(&batch)?;
                }
            }
        } else {
            let mut line = skipped_lines;
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let n = input.read_until(b'\n', &mut buf).map_err(|e| read_error(self.imported, e))?;
                if n == 0 {
                    break;
                }
                line += 1;
                input_bytes += n as u64;
                let event = buf.trim_ascii();
                if event.is_empty() {
                    continue;
                }
                if let Some(batch) = batcher.push(line, event, input_bytes)? {
                    self.send(&batch)?;
                }
            }
        }
        if let Some(batch) = batcher.finish() {
            self.send(&batch)?;
        }
        Ok(ImportReport { events: self.imported, batches: self.batches, input_bytes, elapsed: started.elapsed() })
    }

    /// Sends one batch, retrying while the daemon is unavailable (503/429, or unreachable after an earlier batch
    /// went through: a restart) within the retry policy.
    fn send(&mut self, batch: &Batch) -> Result<(), ImportError> {
        let body = if self.gzip { gzip(&batch.body) } else { batch.body.clone() };
        let lines = batch.line_range();
        let started = Stopwatch::start();
        let mut attempt = 0;
        loop {
            let mut request = self.client.post(self.url.clone()).header(CONTENT_TYPE, "application/x-ndjson");
            if self.gzip {
                request = request.header(CONTENT_ENCODING, "gzip");
            }
            if let Some((user, password)) = &self.credential {
                request = request.basic_auth(user, Some(password));
            }
            let (reason, retry_after) = match request.body(body.clone()).send() {
                Ok(response) => {
                    let status = response.status();
                    let retry_after =
                        response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
                    let text = response.text().unwrap_or_default();
                    if status.is_success() {
                        self.accepted(batch, &text);
                        return Ok(());
                    }
                    if !matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS) {
                        return Err(self.failed(status, &text, batch));
                    }
                    (format!("the daemon answered {status}"), retry_after)
                }
                Err(e) if self.batches == 0 || !(e.is_connect() || e.is_timeout()) => {
                    return Err(ImportError::Unreachable {
                        message: unreachable_message(&self.base, &e),
                        imported_before: self.imported,
                    });
                }
                Err(e) => (unreachable_message(&self.base, &e), None),
            };
            attempt += 1;
            let Some(wait) = self.policy.next_wait(attempt, started.elapsed(), retry_after, 0.0) else {
                return Err(ImportError::GaveUp {
                    last: reason,
                    waited: started.elapsed(),
                    lines,
                    imported_before: self.imported,
                });
            };
            self.note(&format!(
                "{reason}; retrying lines {}-{} in {:.0} s",
                lines.start(),
                lines.end(),
                wait.as_secs_f64()
            ));
            std::thread::sleep(wait);
        }
    }

    fn accepted(&mut self, batch: &Batch, body: &str) {
        let imported =
            serde_json::from_str::<ImportAnswer>(body).map_or(batch.len() as u64, |answer| answer.num_records_imported);
        self.imported += imported;
        self.batches += 1;
        self.progress.set_position(batch.input_end);
        self.progress.set_message(format!("{} events", self.imported));
    }

    fn failed(&self, status: StatusCode, body: &str, batch: &Batch) -> ImportError {
        let message = server_message(body);
        let lines = batch.line_range();
        if !matches!(status, StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE) {
            return ImportError::Server { status, message, lines, imported_before: self.imported };
        }
        let response = match serde_json::from_str::<Value>(body) {
            Ok(mut value) => {
                annotate_failed_records(&mut value, &batch.lines);
                serde_json::to_string_pretty(&value).unwrap_or_else(|_| body.to_owned())
            }
            Err(_) => body.to_owned(),
        };
        ImportError::Rejected { status, message, response, lines, imported_before: self.imported }
    }

    fn note(&self, message: &str) {
        if self.progress.is_hidden() {
            eprintln!("tierd import: {message}");
        } else {
            self.progress.println(message);
        }
    }
}

/// Tells a JSON array from NDJSON by the first non-blank byte, consuming a BOM and leading whitespace; returns
/// (is array, newlines consumed, bytes consumed).
fn sniff<R: BufRead>(input: &mut R) -> io::Result<(bool, u64, u64)> {
    let (mut lines, mut bytes) = (0u64, 0u64);
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok((false, lines, bytes));
        }
        let bom = if bytes == 0 && buf.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        let blank = buf[bom..].iter().take_while(|b| b.is_ascii_whitespace()).count();
        lines += buf[bom..bom + blank].iter().filter(|&&b| b == b'\n').count() as u64;
        let first = buf.get(bom + blank).copied();
        input.consume(bom + blank);
        bytes += (bom + blank) as u64;
        if let Some(first) = first {
            return Ok((first == b'[', lines, bytes));
        }
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder.write_all(body).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

fn progress_bar(total_bytes: Option<u64>) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total_bytes {
        Some(total) => (
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} [{elapsed_precise}] {bytes} ({bytes_per_sec}) {msg}",
        ),
    };
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar.set_message("0 events");
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs `tierd import`; prints `imported N events in T s (R events/s)` on success.
pub fn run_import(mut args: ImportArgs) -> anyhow::Result<()> {
    args.secret = std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty());
    let stdin = args.file.as_os_str() == "-";
    let (input, what, total): (Box<dyn BufRead>, String, Option<u64>) = if stdin {
        (Box::new(io::stdin().lock()), "stdin".to_owned(), None)
    } else {
        let file = File::open(&args.file).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", args.file.display()))?;
        let total = file.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 20, file)), args.file.display().to_string(), total)
    };
    let progress = progress_bar(total);
    let mut importer = Importer::new(&args)?.with_progress(progress.clone());
    let result = importer.import(input, &what);
    progress.finish_and_clear();
    match result {
        Ok(report) => {
            println!(
                "imported {} events in {:.1} s ({:.0} events/s)",
                report.events,
                report.elapsed.as_secs_f64(),
                report.events_per_second()
            );
            Ok(())
        }
        Err(e) => {
            if let ImportError::Rejected { response, .. } = &e {
                eprintln!("{response}");
            }
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests;

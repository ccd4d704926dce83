//! The one ingest pipeline of every write endpoint (`/import`, `/track`): where a request's events are, the
//! in-flight byte gate, gzip, validation, the day limit, encoding and the durable append. The endpoints differ only
//! in what they hand it ([`Endpoint`]) and in how they word the answer.
//!
//! Where the events are:
//! - the body, as JSON (an array) or NDJSON, `Content-Type` JSON-like or absent (`/import` as before);
//! - a form-encoded body's `data` field (`application/x-www-form-urlencoded`, as Mixpanel's SDKs post);
//! - the query's `data` parameter (`GET`, or a `POST` with no body, as the Node SDK's single events).
//!
//! `data` holds JSON or base64-encoded JSON, one event or an array ([`tierd_codecs::decode_data`]). Whatever the
//! form, the request is acknowledged only once its batch is durable, the limits of `[ingest]` apply to the body as
//! received (after gzip), and a refused request writes nothing.

pub mod params;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, StatusCode};
use bytes::Bytes;
use serde_json::{Map, Value};
use tierd_codecs::{
    decode_data, parse_batch_rows_with, BatchError, BatchLimits, DataError, ParseOptions, RecordDefaults, RecordError,
    RowBatch,
};
use tierd_store::clock::Stopwatch;
use tierd_store::hot::IngestBatch;
use tierd_store::layout::{day_of_ms, validate_project};

use super::error::ApiError;
use super::state::AppState;
use crate::server::error::ServerError;
pub use params::Params;

/// Which endpoint ingests, and so what the pipeline fills in and how many events a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/import`: every record carries its own time.
    Import,
    /// `/track`: a record without a time is given the receive time, `ip=1` may add the client's address, and a
    /// request carries at most `ingest.max_events_per_track_request` events.
    Track,
}

/// One ingest request as the handlers received it.
pub struct IngestRequest {
    pub endpoint: Endpoint,
    /// `GET`: no body, the events are the query's `data`.
    pub get: bool,
    /// The raw query string.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Body,
    /// The client's address, when the server loop knows it.
    pub client: Option<IpAddr>,
}

impl IngestRequest {
    /// `request` for `endpoint`; the client's address is the `ConnectInfo` the server loop puts on each request.
    pub fn new(endpoint: Endpoint, request: axum::extract::Request) -> Self {
        let (parts, body) = request.into_parts();
        let client = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Self {
            endpoint,
            get: parts.method == Method::GET || parts.method == Method::HEAD,
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers,
            body,
            client,
        }
    }
}

/// What became of an ingest request.
pub struct Outcome {
    /// The events came from a `data` parameter (form or query): the answer is in Mixpanel's `data` dialect.
    pub data_dialect: bool,
    /// Whether the client asked for a verbose answer; `None` when that is unknown (a form body not read, where
    /// `verbose` may be): a client that cannot be told then gets the verbose answer, which carries the error.
    pub verbose: Option<bool>,
    pub result: Result<Ingested, ApiError>,
}

/// A request whose batch is durable.
#[derive(Debug)]
pub struct Ingested {
    pub project: String,
    /// Events written (durable, acknowledged).
    pub imported: u64,
    /// Records left out because they were invalid (`strict=0` only).
    pub rejected: Vec<RecordError>,
}

/// Where a request's events are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Body,
    Form,
    Query,
}

const EVENT_TYPES: &[&str] = &["application/json", "application/x-ndjson", "application/jsonl", "text/plain"];
const FORM_TYPE: &str = "application/x-www-form-urlencoded";

/// Runs `req` through the pipeline, with its metrics.
pub async fn ingest(state: &AppState, req: IngestRequest) -> Outcome {
    let started = Stopwatch::start();
    let mut params = Params::default();
    let data_dialect = req.get || mime(&req.headers).as_deref() == Some(FORM_TYPE);
    let query_read = params.read(req.query.as_deref().unwrap_or("").as_bytes());
    let mut outcome = match query_read {
        Ok(()) => {
            let data_dialect = data_dialect || params.data.is_some();
            let (params, source, result) = run(state, req, params).await;
            let form_unread = source == Some(Source::Form) && !params.form_read;
            let verbose = params.verbose.or(if form_unread { None } else { Some(false) });
            Outcome { data_dialect, verbose, result }
        }
        Err(e) => Outcome { verbose: params.verbose, data_dialect, result: Err(e) },
    };
    match &mut outcome.result {
        Ok(done) => {
            metrics::counter!("tierd_ingest_events_total", "project" => done.project.clone()).increment(done.imported);
            metrics::counter!("tierd_ingest_batches_total").increment(1);
            metrics::histogram!("tierd_ingest_ack_seconds").record(started.elapsed().as_secs_f64());
            if !done.rejected.is_empty() {
                metrics::counter!("tierd_ingest_dropped_records_total", "project" => done.project.clone())
                    .increment(done.rejected.len() as u64);
            }
        }
        Err(e) => metrics::counter!("tierd_ingest_rejected_total", "reason" => e.reason()).increment(1),
    }
    outcome
}

/// The pipeline; also returns where the events were, once known.
async fn run(
    state: &AppState,
    req: IngestRequest,
    params: Params,
) -> (Params, Option<Source>, Result<Ingested, ApiError>) {
    let received_ms = state.clock.now_ms();
    let IngestRequest { endpoint, get, query: _, headers, body, client } = req;
    let source = match source(get, &headers, &params) {
        Ok(source) => source,
        Err(e) => return (params, None, Err(e)),
    };
    let gzip = match content_encoding(&headers) {
        Ok(gzip) => gzip,
        Err(e) => return (params, Some(source), Err(e)),
    };
    // Credentials before the body: a refused writer costs no read, no decode, and writes nothing.
    let credited = match endpoint {
        Endpoint::Import => state.credentials.import_project(&headers, params.project_id.as_deref()),
        Endpoint::Track => Ok(None),
    };
    let credited = match credited {
        Ok(project) => project,
        Err(e) => return (params, Some(source), Err(e)),
    };
    let read = read_body(state, &headers, body, (source, gzip), params.data.as_ref().map_or(0, Vec::len)).await;
    let (bytes, held) = match read {
        Ok(read) => read,
        Err(e) => return (params, Some(source), Err(e)),
    };
    let n_bytes = bytes.len() as u64;
    let settings = Settings {
        endpoint,
        limits: state.limits,
        max_days: state.ingest.max_days,
        max_track_events: state.track.max_events,
        tokens: state.track.tokens.clone(),
        credited,
        client_ip: client.filter(|_| state.track.keep_client_ip),
        received_ms,
    };
    let work = tokio::task::spawn_blocking(move || {
        let mut held = held;
        let mut params = params;
        let result = prepare(bytes, source, &mut params, &settings, &mut held);
        (params, result.map(|(project, batch, rejected)| (project, batch, rejected, held)))
    });
    let (params, prepared) = match work.await {
        Ok(done) => done,
        // The parameters went with the panicked task: answer with those of the query alone.
        Err(e) => return (Params::default(), Some(source), Err(ServerError::joined("ingest", e).into())),
    };
    let (project, batch, rejected, held) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => return (params, Some(source), Err(e)),
    };
    let result = state.hot.append(batch).await.map_err(ApiError::from);
    drop(held);
    if result.is_ok() {
        metrics::counter!("tierd_ingest_bytes_total").increment(n_bytes);
    }
    (params, Some(source), result.map(|appended| Ingested { project, imported: appended.events, rejected }))
}

/// What `prepare` needs of the state, owned (it runs on a blocking thread).
struct Settings {
    endpoint: Endpoint,
    limits: BatchLimits,
    max_days: usize,
    max_track_events: usize,
    /// Token -> project (`[[projects]]`).
    tokens: Arc<BTreeMap<String, String>>,
    /// The project the request's credential names (`/import` once credentials are configured).
    credited: Option<String>,
    client_ip: Option<IpAddr>,
    received_ms: i64,
}

/// The events of a read body, validated and encoded: CPU work of up to a few hundred milliseconds, on a blocking
/// thread. Reads the form's parameters into `params`.
fn prepare(
    bytes: Bytes,
    source: Source,
    params: &mut Params,
    settings: &Settings,
    held: &mut super::ingest_gate::Held,
) -> Result<(String, IngestBatch, Vec<RecordError>), ApiError> {
    let events = match source {
        Source::Body => bytes,
        Source::Query => Bytes::from(decode_data(params.data.take().unwrap_or_default()).map_err(data_error)?),
        Source::Form => {
            params.read(&bytes)?;
            params.form_read = true;
            drop(bytes);
            let data = params.data.take().ok_or_else(missing_data)?;
            Bytes::from(decode_data(data).map_err(data_error)?)
        }
    };
    if let Some(project) = &params.project {
        validate_project(project).map_err(ApiError::bad_request)?;
    }
    let mut limits = settings.limits;
    let mut defaults = RecordDefaults::default();
    if settings.endpoint == Endpoint::Track {
        limits.max_events = limits.max_events.min(settings.max_track_events);
        defaults.time_ms = Some(settings.received_ms);
        if let (Some(true), Some(ip)) = (params.ip, settings.client_ip) {
            let ip = ip.to_canonical().to_string();
            defaults.properties = Map::from_iter([("ip".to_owned(), Value::String(ip))]);
        }
    }
    let options = ParseOptions { strict: params.strict.unwrap_or(true), defaults };
    let parsed = parse_batch_rows_with(&events, &limits, &options).map_err(|e| batch_error(e, settings))?;
    check_days(&parsed.rows, settings.max_days)?;
    let project = project_of(&parsed.rows, params.project.as_deref(), settings)?;
    let batch = IngestBatch::encode_rows(project.clone(), &parsed.rows);
    drop(parsed.rows);
    drop(events);
    // Until the writer acknowledges, the request holds its encoded frames.
    held.shrink_to(batch.frame_bytes() as usize);
    Ok((project, batch, parsed.rejected))
}

/// The project `rows` are written to. With a credential (`/import`, see `auth`): the credential's (a `project`
/// parameter naming another is a 403). Without `[[projects]]`: the `project` parameter, else `default`. With them:
/// on `/import` the parameter if given; otherwise (and always on `/track`) the project whose token the events carry
/// in `properties.token`: every event must carry a known one (else 401) and one request's events must share their
/// project; a `project` parameter on `/track` must name that project.
fn project_of(rows: &RowBatch, asked: Option<&str>, settings: &Settings) -> Result<String, ApiError> {
    if let Some(credited) = &settings.credited {
        return match asked {
            Some(a) if a != credited => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("the credential is project {credited:?}'s, not {a:?}'s; leave the project parameter out"),
            )
            .with_reason("forbidden")),
            _ => Ok(credited.clone()),
        };
    }
    let by_param = || asked.unwrap_or("default").to_owned();
    if settings.tokens.is_empty() || (settings.endpoint == Endpoint::Import && asked.is_some()) {
        return Ok(by_param());
    }
    let unauthorized = |what: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("{what}; each event must carry its project's token in properties.token (see [[projects]])"),
        )
        .with_reason("unknown_token")
    };
    let mut found: Option<&str> = None;
    for row in rows.iter() {
        let token = token_of(row.properties_json()).ok_or_else(|| unauthorized("an event has no properties.token"))?;
        let project = settings
            .tokens
            .get(&token)
            .ok_or_else(|| unauthorized("an event's properties.token is not the token of any project"))?;
        match found {
            Some(p) if p != project => {
                return Err(ApiError::bad_request(
                    "the events of one request carry the tokens of different projects; send each project's events \
                     in their own requests",
                )
                .with_reason("mixed_projects"))
            }
            _ => found = Some(project),
        }
    }
    match (found, asked) {
        (Some(p), Some(a)) if p != a => Err(ApiError::bad_request(format!(
            "the events' token is project {p:?}'s, not {a:?}'s; leave the project parameter out on /track"
        ))),
        (Some(p), _) => Ok(p.to_owned()),
        // No events: nothing is written, to whichever project.
        (None, _) => Ok(by_param()),
    }
}

/// `properties.token` of a row, when it is a string.
fn token_of(properties_json: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Token {
        token: Option<Value>,
    }
    match serde_json::from_str::<Token>(properties_json).ok()?.token? {
        Value::String(token) => Some(token),
        _ => None,
    }
}

/// Where the events of `req` are; refuses a content type that holds none.
fn source(get: bool, headers: &HeaderMap, params: &Params) -> Result<Source, ApiError> {
    if get {
        return if params.data.is_some() { Ok(Source::Query) } else { Err(missing_data()) };
    }
    match mime(headers) {
        Some(m) if m == FORM_TYPE => Ok(Source::Form),
        Some(m) if !EVENT_TYPES.contains(&m.as_str()) => {
            let text = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("?");
            Err(ApiError::bad_request(format!(
                "unsupported Content-Type {text:?}; send application/json (an array of events), application/x-ndjson, \
                 or application/x-www-form-urlencoded with the events in data"
            )))
        }
        _ if params.data.is_some() => Ok(Source::Query),
        _ => Ok(Source::Body),
    }
}

fn mime(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?;
    Some(v.to_str().unwrap_or("?").split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// Whether the body is gzip-compressed.
fn content_encoding(headers: &HeaderMap) -> Result<bool, ApiError> {
    match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(e) if e.is_empty() || e == "identity" => Ok(false),
        Some(e) if e == "gzip" || e == "x-gzip" => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "unsupported Content-Encoding {other:?}; send the body plain or gzip-compressed"
        ))),
    }
}

/// Holds the request's bytes under `ingest.max_inflight_bytes` (see `ingest_gate`), reads the body and decodes its
/// gzip. `data_len`: the size of the query's `data`, which the request also decodes and parses.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    (source, gzip): (Source, bool),
    data_len: usize,
) -> Result<(Bytes, super::ingest_gate::Held), ApiError> {
    let limit = state.limits.max_bytes;
    let too_large = move || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is over the limit of {limit} bytes (uncompressed) per request"),
        )
        .with_reason("too_large")
    };
    let gate = &state.ingest;
    if source == Source::Query {
        // The events are in the query (already in memory): decoding them takes at most their size again, and the
        // rows' text what a body of that size would. A body besides them would be a second, ambiguous batch.
        let held = gate.hold(parse_weight(data_len)).await?;
        let raw = axum::body::to_bytes(body, 0).await.map_err(|_| {
            ApiError::bad_request("send the events either in the body or in the data parameter, not both")
        })?;
        return Ok((raw, held));
    }
    let raw_limit = if gzip { gate.max_raw_bytes } else { limit };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<usize>().ok());
    // The most this request will need, taken once (a request never waits while holding), then given back step by
    // step. A body declared over the limit is still read up to it before the 413: answering before reading anything
    // makes clients that are still sending see a reset connection instead of the answer. A form's `data` is decoded
    // from the form (the two together at most twice the body), then from base64 (smaller): within what parsing a
    // body of that size holds.
    let raw_weight = declared.unwrap_or(raw_limit).min(raw_limit);
    let mut held = gate.hold(raw_weight + parse_weight(if gzip { limit } else { raw_weight })).await?;
    let raw = axum::body::to_bytes(body, raw_limit).await.map_err(|_| too_large())?;
    if !gzip {
        held.shrink_to(parse_weight(raw.len()));
        return Ok((raw, held));
    }
    held.shrink_to(raw.len() + parse_weight(limit));
    let decoded = tokio::task::spawn_blocking(move || {
        let out = gunzip(&raw, limit).map_err(|e| e.unwrap_or_else(too_large))?;
        drop(raw);
        held.shrink_to(parse_weight(out.len()));
        Ok::<_, ApiError>((Bytes::from(out), held))
    });
    decoded.await.map_err(|e| ApiError::from(ServerError::joined("ingest", e)))?
}

/// What parsing a decoded body of `len` bytes holds: the body, and the rows' text the parse writes beside it
/// (reserved up front at the body's size and an eighth).
fn parse_weight(len: usize) -> usize {
    2 * len + len / 8
}

/// Decodes a gzip body of at most `limit` decoded bytes. `Err(None)`: over the limit; `Err(Some)`: not gzip.
/// Public (re-exported by [`super`]) for the ingest fuzz target (`tests/fuzz`), which decodes bodies as this handler does.
pub fn gunzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, Option<ApiError>> {
    // The trailer's ISIZE (decoded size mod 2^32 of the last member) sizes the buffer: a hint only, capped by the
    // limit, so a body that decodes to 10 MB takes 10 MB rather than the 16 MB of a doubling buffer.
    let hint =
        raw.len().checked_sub(4).map_or(0, |at| u32::from_le_bytes(raw[at..].try_into().expect("four bytes")) as usize);
    let mut out = Vec::with_capacity(hint.min(limit + 1));
    let mut decoder = flate2::read::MultiGzDecoder::new(raw).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| Some(ApiError::bad_request(format!("body is not valid gzip: {e}"))))?;
    if out.len() > limit {
        return Err(None);
    }
    Ok(out)
}

/// Refuses a request whose events fall on more than `max_days` UTC days (`ingest.max_days_per_request`): each day
/// is a segment file to create, fsync and keep open.
fn check_days(rows: &RowBatch, max_days: usize) -> Result<(), ApiError> {
    let days: BTreeSet<i32> = rows.iter().map(|r| day_of_ms(r.time_ms())).collect();
    if days.len() > max_days {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request has events on {} different UTC days, over the limit of {max_days} days per request \
                 (ingest.max_days_per_request); send events sorted by time, or split the request by day",
                days.len()
            ),
        )
        .with_reason("too_many_days"));
    }
    Ok(())
}

fn missing_data() -> ApiError {
    ApiError::bad_request("no events: send them in the data parameter (form field or query), as JSON or base64")
        .with_reason("missing_data")
}

fn data_error(e: DataError) -> ApiError {
    ApiError::bad_request(e.to_string()).with_reason("bad_data")
}

fn batch_error(e: BatchError, settings: &Settings) -> ApiError {
    match e {
        BatchError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).with_reason("too_large")
        }
        BatchError::TooManyEvents { limit, .. }
            if settings.endpoint == Endpoint::Track && limit == settings.max_track_events =>
        {
            let message = format!("{e} on /track (ingest.max_events_per_track_request); send more through /import");
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message).with_reason("too_many_events")
        }
        BatchError::TooManyEvents { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).with_reason("too_many_events")
        }
        BatchError::Invalid(records) => {
            let mut err = ApiError::bad_request(BatchError::Invalid(records.clone()).to_string());
            // A per-event limit names the reason (the first record refused by one), else any invalid record.
            err.reason_label = Some(records.iter().find_map(|r| r.limit()).unwrap_or("invalid_records"));
            err.failed_records = Some(records);
            err
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

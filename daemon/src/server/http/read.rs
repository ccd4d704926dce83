//! The read side: catalog lookups with leases, segment reads, queries, metrics and health.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use tierd_store::catalog::SegmentMeta;
use tierd_store::layout::{format_day, validate_project};
use tierd_store::query::{execute_limited, GroupBy, Hidden, Op, QueryLimits, QueryMemory};
use tierd_store::{SegmentId, StoreError};
use tokio::sync::mpsc;

use super::error::{parse_body, ApiError};
use super::json::SortedJson;
use super::state::AppState;
use crate::api::{
    Health, HeatRecord, OtherGroups, ProjectsAnswer, QueryRequest, QueryResponse, QueryRow, SegmentRecord,
    SegmentsAnswer,
};
use crate::server::error::ServerError;
use crate::server::retention::read_cutoff;
use tierd_store::clock::Stopwatch;

/// Chunk size of streamed segment bodies.
const CHUNK: usize = 1 << 20;

#[derive(Debug, Deserialize)]
pub struct SegmentsParams {
    project: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    /// Also list retired segments (replaced, not yet deleted): for operators and consistency checks.
    #[serde(default)]
    include_retired: bool,
    /// List the side segments of removed duplicates (live and retired) instead of event segments.
    #[serde(default)]
    duplicates: bool,
}

fn segment_record(m: &SegmentMeta, heat: &tierd_store::HeatTracker, now_ms: i64) -> SegmentRecord {
    let h = heat.view(&m.id, now_ms);
    SegmentRecord {
        id: m.id,
        project: m.project.clone(),
        day: format_day(m.day),
        state: m.state,
        tier: m.placement(),
        format: m.format,
        codec: m.codec,
        location: m.locations.first().map(|l| l.path.clone()),
        locations: m.locations.clone(),
        dropped: m.dropped.clone(),
        min_time_ms: m.min_time_ms,
        max_time_ms: m.max_time_ms,
        rows: m.rows,
        bytes: m.bytes,
        checksum: format!("crc32c:{:08x}", m.checksum),
        created_generation: m.created_generation,
        role: m.role,
        heat: HeatRecord {
            reads_per_day: h.reads_per_day,
            bytes_per_day: h.bytes_per_day,
            last_read_ms: h.last_read_ms,
        },
    }
}

/// `GET /v1/catalog/segments?project=P&from=MS&to=MS`: the segments that may hold events in `[from, to)`, from one
/// catalog generation, with a lease that keeps them readable.
pub async fn catalog_segments(
    State(state): State<Arc<AppState>>,
    p: Result<Query<SegmentsParams>, QueryRejection>,
) -> Result<SortedJson<SegmentsAnswer>, ApiError> {
    let Query(p) = p.map_err(ApiError::from_rejection)?;
    let project = p.project.unwrap_or_else(|| "default".into());
    validate_project(&project).map_err(ApiError::bad_request)?;
    let (from, to) = (p.from.unwrap_or(i64::MIN), p.to.unwrap_or(i64::MAX));
    if from >= to {
        return Err(ApiError::bad_request(format!("from ({from}) must be before to ({to}); the window is [from, to)")));
    }
    let snapshot = state.catalog.snapshot();
    // Segments holding only events past the project's retention are never returned to readers (the operators'
    // listings of retired and side segments show what is stored, as it is).
    let cutoff = read_cutoff(state.passes.current().config(), &project, state.clock.now_ms());
    let segments = if p.duplicates {
        snapshot.lookup_duplicates(&project, from, to)
    } else if p.include_retired {
        snapshot.lookup_including_retired(&project, from, to)
    } else {
        snapshot.lookup(&project, cutoff.map_or(from, |c| from.max(c)), to)
    };
    let lease = state.leases.grant(
        &state.catalog,
        state.clock.now_ms(),
        state.lease_ttl_ms,
        snapshot.generation(),
        segments.iter().map(|m| m.id).collect(),
    )?;
    metrics::counter!("tierd_catalog_lookups_total").increment(1);
    // A lookup is a query node's intent to read: each segment returned counts `heat.lookup_weight` of a read. The
    // records show the heat as it was before this lookup.
    let now = state.clock.now_ms();
    let records = segments.iter().map(|m| segment_record(m, &state.heat, now)).collect();
    state.heat.record_all(segments.iter().map(|m| (m.id, 0)), tierd_store::ReadSource::Lookup);
    // Rows of deletion requests not carried out yet: a reader of the segments' bytes skips them (tombstones).
    let deleted_rows = state.deletions.tombstones(&project).map(|f| (*f).clone());
    Ok(SortedJson(SegmentsAnswer {
        generation: snapshot.generation(),
        lease,
        segments: records,
        retention_cutoff_ms: cutoff,
        deleted_rows,
    }))
}

pub async fn catalog_projects(State(state): State<Arc<AppState>>) -> SortedJson<ProjectsAnswer> {
    let snapshot = state.catalog.snapshot();
    SortedJson(ProjectsAnswer { generation: snapshot.generation(), projects: snapshot.projects().cloned().collect() })
}

#[derive(Debug, Deserialize)]
pub struct SegmentParams {
    format: Option<String>,
}

/// `GET /v1/segments/{id}[?format=ndjson]`: the stored bytes, or the events as Mixpanel NDJSON.
pub async fn segment(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    p: Result<Query<SegmentParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = p.map_err(ApiError::from_rejection)?;
    let id: SegmentId =
        id.parse().map_err(|e: tierd_store::layout::InvalidSegmentId| ApiError::bad_request(e.to_string()))?;
    let pinned = state.catalog.pin();
    let meta = pinned.get(&id).cloned().ok_or(StoreError::SegmentNotFound { id })?;
    let ndjson = match p.format.as_deref() {
        None | Some("raw") => false,
        Some("ndjson") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!("unknown format {other:?}; use raw (default) or ndjson")))
        }
    };
    // Events past the project's retention are never served: a segment holding nothing else is not found, NDJSON skips
    // older rows, and the raw bytes of a straddling segment carry the cutoff for the reader to apply.
    let cutoff = read_cutoff(state.passes.current().config(), &meta.project, state.clock.now_ms());
    if let Some(c) = cutoff.filter(|c| meta.rows > 0 && meta.max_time_ms < *c) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("segment {id} holds only events past the retention of project {} (before {c} ms)", meta.project),
        ));
    }
    // Open before answering so a missing file or object is an error status, not a broken body. NDJSON decodes the
    // whole segment, so its bytes are read (and verified) whole first.
    // Rows of deletion requests not carried out yet are never served either (NDJSON skips them; raw bytes carry a
    // header saying the reader must apply the catalog listing's `deleted_rows`).
    let deleted = state.deletions.tombstones(&meta.project);
    let reads = state.reads.clone();
    let m = meta.clone();
    let opened = tokio::task::spawn_blocking(move || {
        if ndjson {
            reads.read_committed(&m).map(Opened::Whole)
        } else {
            reads.open_raw(&m).map(|raw| Opened::Raw(Box::new(raw)))
        }
    })
    .await
    .map_err(|e| ServerError::joined("opening the segment", e))??;
    // Counted once the segment is opened: the bytes it serves (raw) or decodes (NDJSON) are its stored bytes.
    state.heat.record(meta.id, tierd_store::ReadSource::SegmentGet, meta.bytes);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    // A client that takes no chunk for `http.send_timeout_ms` is abandoned: the sender stops (releasing the pin)
    // and the body ends in an error, never in a clean end that would look complete.
    let tx =
        ChunkSender { tx, timeout: state.passes.current().config().http.send_timeout(), abandoned: Default::default() };
    let abandoned = tx.abandoned.clone();
    let m = meta.clone();
    // The streaming task holds the pin: the segment stays until the body is sent.
    match opened {
        Opened::Whole(bytes) => {
            let deleted = deleted.clone();
            tokio::task::spawn_blocking(move || stream_ndjson(&m, bytes, cutoff, deleted.as_deref(), tx, pinned))
        }
        Opened::Raw(raw) => tokio::task::spawn_blocking(move || stream_raw(*raw, tx, pinned)),
    };
    let stream = futures::stream::unfold(Some(rx), move |rx| {
        let abandoned = abandoned.clone();
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(item) => Some((item, Some(rx))),
                None if abandoned.load(Ordering::Relaxed) => {
                    Some((Err(std::io::Error::other("the client took too long to read (http.send_timeout_ms)")), None))
                }
                None => None,
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    let headers = resp.headers_mut();
    let content_type = if ndjson { "application/x-ndjson" } else { meta.format.content_type() };
    headers.insert(header::CONTENT_TYPE, content_type.parse().expect("static"));
    if !ndjson {
        headers.insert(header::CONTENT_LENGTH, meta.bytes.into());
        headers.insert("x-tierd-checksum", format!("crc32c:{:08x}", meta.checksum).parse().expect("hex"));
    }
    headers.insert("x-tierd-rows", meta.rows.into());
    if let Some(c) = cutoff {
        headers.insert("x-tierd-retention-cutoff-ms", c.into());
    }
    if deleted.is_some() && !ndjson {
        headers.insert("x-tierd-deleted-rows", "see deleted_rows of GET /v1/catalog/segments".parse().expect("static"));
    }
    Ok(resp)
}

/// Streams the stored bytes chunk by chunk, each verified before it is sent (a hot copy's crc32c is checked before
/// its last chunk, a cold copy's block by block); on a mismatch the body is aborted, so a client never receives a
/// complete body of bad data.
fn stream_raw(mut raw: tierd_store::read::RawSegment, tx: ChunkSender, _pin: tierd_store::catalog::Pinned) {
    loop {
        match raw.next_chunk() {
            Ok(Some(chunk)) => {
                if !tx.send(Ok(chunk), raw.meta().id) {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                tracing::error!(segment = %raw.meta().id, error = %e, "segment read failed while streaming; body aborted");
                tx.send(Err(std::io::Error::other(e.to_string())), raw.meta().id);
                return;
            }
        }
    }
}

/// The sending side of a streamed body, from a blocking thread, with the client's time to take each chunk bounded.
pub(super) struct ChunkSender {
    pub(super) tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    pub(super) timeout: std::time::Duration,
    /// Set when the client was too slow (the body then ends in an error).
    pub(super) abandoned: Arc<AtomicBool>,
}

impl ChunkSender {
    /// Sends one chunk; `false` when the streaming must stop (the client went away or took too long).
    pub(super) fn send(&self, item: Result<Bytes, std::io::Error>, segment: SegmentId) -> bool {
        let handle = tokio::runtime::Handle::current();
        match handle.block_on(tokio::time::timeout(self.timeout, self.tx.send(item))) {
            Ok(sent) => sent.is_ok(),
            Err(_) => {
                self.abandoned.store(true, Ordering::Relaxed);
                metrics::counter!("tierd_segment_send_timeouts_total").increment(1);
                tracing::warn!(%segment, timeout_ms = self.timeout.as_millis() as u64,
                    "segment read abandoned: the client took no data for http.send_timeout_ms; pin released");
                false
            }
        }
    }
}

/// A segment opened for `GET /v1/segments/{id}`.
enum Opened {
    /// Verified whole (NDJSON).
    Whole(Bytes),
    /// Streamed chunk by chunk, verified as it goes (raw).
    Raw(Box<tierd_store::read::RawSegment>),
}

fn stream_ndjson(
    meta: &SegmentMeta,
    bytes: Bytes,
    cutoff: Option<i64>,
    deleted: Option<&tierd_codecs::RowFilter>,
    tx: ChunkSender,
    _pin: tierd_store::catalog::Pinned,
) {
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    // Set once the client went away: stop decoding.
    let closed = std::cell::Cell::new(false);
    let req =
        tierd_codecs::columnar::ScanRequest { from_ms: cutoff.unwrap_or(i64::MIN), ..tierd_store::read::everything() };
    let result = tierd_store::read::scan(meta, bytes, &req, |e| {
        if closed.get() || deleted.is_some_and(|f| f.matches(&e)) {
            return;
        }
        serde_json::to_writer(&mut buf, &e.event.to_mixpanel_json()).expect("JSON to memory");
        buf.push(b'\n');
        if buf.len() >= CHUNK {
            closed.set(!tx.send(Ok(Bytes::from(std::mem::take(&mut buf))), meta.id));
        }
    });
    match result {
        Ok(()) if !buf.is_empty() => {
            tx.send(Ok(Bytes::from(buf)), meta.id);
        }
        Ok(()) => {}
        Err(e) => {
            tx.send(Err(std::io::Error::other(e.to_string())), meta.id);
        }
    }
}

/// Turns a query request into the store's query. A filter with an unknown operator or no property is named by its
/// index (`where[1]: ...`), as the API has always done. Public (re-exported by [`super`]) for the query fuzz target
/// (`tests/fuzz`).
pub fn parse_query(body: &[u8]) -> Result<(tierd_store::query::Query, Option<usize>), ApiError> {
    let q: QueryRequest = parse_body(body, "bad query").map_err(|e| unknown_op(body).unwrap_or(e))?;
    let mut filters = Vec::with_capacity(q.filters.len());
    for (i, f) in q.filters.into_iter().enumerate() {
        if f.property.is_empty() {
            return Err(ApiError::bad_request(format!("where[{i}]: property must not be empty")));
        }
        filters.push(f.into_filter());
    }
    let group_by = GroupBy::parse(q.group_by.as_deref()).map_err(ApiError::bad_request)?;
    if q.limit == Some(0) {
        return Err(ApiError::bad_request("limit must be at least 1".to_string()));
    }
    let query = tierd_store::query::Query {
        project: q.project.unwrap_or_else(|| "default".into()),
        from_ms: q.from,
        to_ms: q.to,
        event: q.event,
        filters,
        group_by,
    };
    Ok((query, q.limit))
}

/// When a query body did not parse because a filter's `op` is text but no operator: that filter's error, or the
/// error of an earlier filter without a property (filters are checked in order, the operator first).
fn unknown_op(body: &[u8]) -> Option<ApiError> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let filters = value["where"].as_array()?;
    let op = |f: &Value| f["op"].as_str().map(str::parse::<Op>);
    let bad = filters.iter().position(|f| matches!(op(f), Some(Err(_))))?;
    if let Some(i) = filters[..bad].iter().position(|f| f["property"] == "") {
        return Some(ApiError::bad_request(format!("where[{i}]: property must not be empty")));
    }
    let Some(Err(e)) = op(&filters[bad]) else { return None };
    Some(ApiError::bad_request(format!("where[{bad}]: {e}")))
}

/// `POST /v1/query`: counts of deduplicated events, within `[query]`'s bounds: at most `max_concurrent` at once
/// (503 + Retry-After beyond, never queued), stopped past `timeout_ms` (503) or when the client goes away, and
/// refused (413) past `max_conditions`, `max_groups` or `max_memory_bytes`, or (503) when the queries running
/// together hold `max_total_memory_bytes`. Refusals are counted in `tierd_query_refused_total{reason}`.
pub async fn query(State(state): State<Arc<AppState>>, body: Bytes) -> Result<SortedJson<QueryResponse>, ApiError> {
    let started = Stopwatch::start();
    let config = state.passes.current().config().query.clone();
    let (q, limit) = parse_query(&body)?;
    if q.filters.len() > config.max_conditions {
        return Err(refused(
            "conditions",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} where conditions; at most {} (query.max_conditions)", q.filters.len(), config.max_conditions),
        ));
    }
    let Some(slot) = state.queries.enter(config.max_concurrent) else {
        let mut e = refused(
            "concurrency",
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} queries are running (query.max_concurrent): retry shortly", config.max_concurrent),
        );
        e.retry_after_secs = Some(1);
        return Err(e);
    };
    // Pinned: garbage collection keeps every segment this snapshot lists until the query is done.
    let snapshot = state.catalog.pin();
    let reads = state.reads.clone();
    // Events past the project's retention are never counted, even before the retention pass removed them.
    let cutoff = read_cutoff(state.passes.current().config(), &q.project, state.clock.now_ms());
    // And rows of deletion requests not carried out yet are dropped before dedup (`None`, nothing to do, mostly).
    let deleted = state.deletions.tombstones(&q.project);
    // Set when this handler ends early (timeout, or the client went away and the request future was dropped): the
    // query stops at its next row and frees what it held.
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let cancel = stop.0.clone();
    let gate = state.queries.clone();
    let timeout_ms = config.timeout_ms;
    let task = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let reason = format!("stopped: it ran past query.timeout_ms = {timeout_ms}, or its client went away");
        let limits = QueryLimits {
            max_memory_bytes: config.max_memory_bytes,
            max_groups: config.max_groups,
            shared: Some(&gate.memory),
            cancel: Some(&cancel),
            cancel_reason: &reason,
            threads: config.threads,
        };
        gate.memory.set_limit(config.max_total_memory_bytes);
        let hidden = Hidden { before_ms: cutoff, rows: deleted.as_deref() };
        let r = execute_limited(&reads, &snapshot, &q, &hidden, &limits);
        metrics::gauge!("tierd_query_memory_bytes").set(gate.memory.used() as f64);
        if let Err(e) = &r {
            if let Some(reason) = refusal_reason(e) {
                metrics::counter!("tierd_query_refused_total", "reason" => reason).increment(1);
            }
            if matches!(e, StoreError::QueryCancelled(_)) {
                gate.stopped.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    });
    let result = match tokio::time::timeout(std::time::Duration::from_millis(timeout_ms), task).await {
        Ok(joined) => {
            joined.map_err(|e| ServerError::joined("the query", e)).and_then(|r| r.map_err(ServerError::from))
        }
        Err(_) => {
            stop.0.store(true, Ordering::Relaxed);
            Err(ServerError::from(StoreError::QueryCancelled(format!(
                "it ran past query.timeout_ms = {timeout_ms}: narrow the window or the filters"
            ))))
        }
    };
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("tierd_query_total", "outcome" => outcome).increment(1);
    metrics::histogram!("tierd_query_seconds").record(started.elapsed().as_secs_f64());
    let r = result?;
    state.heat.record_all(r.segments_read.iter().copied(), tierd_store::ReadSource::Query);
    let mut rows: Vec<QueryRow> = r.rows.into_iter().map(|(key, count)| QueryRow { key, count }).collect();
    let other = limit.filter(|k| *k < rows.len()).map(|k| {
        let rest = rows.split_off(k);
        OtherGroups { groups: rest.len() as u64, count: rest.iter().map(|r| r.count).sum() }
    });
    Ok(SortedJson(QueryResponse {
        total: r.total,
        rows,
        segments_scanned: r.segments_scanned,
        bytes_scanned: r.bytes_scanned,
        other,
    }))
}

/// Sets the flag when dropped: the query's handler went away (finished, timed out, or its client disconnected).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The `reason` label of a query the store stopped at a bound (`None`: not a refusal).
fn refusal_reason(e: &StoreError) -> Option<&'static str> {
    match e {
        StoreError::QueryTooLarge(m) if m.contains("query.max_groups") => Some("groups"),
        StoreError::QueryTooLarge(_) => Some("memory"),
        StoreError::QueryBusy(_) => Some("total_memory"),
        StoreError::QueryCancelled(_) => Some("stopped"),
        _ => None,
    }
}

/// A refused query: counted by reason, answered with `status`.
fn refused(reason: &'static str, status: StatusCode, message: String) -> ApiError {
    metrics::counter!("tierd_query_refused_total", "reason" => reason).increment(1);
    ApiError::new(status, message)
}

/// What bounds every query of this process together: how many run, and the memory they hold.
#[derive(Debug)]
pub struct QueryGate {
    running: AtomicUsize,
    pub memory: QueryMemory,
    /// Queries stopped from outside (timeout, client gone) since start.
    pub stopped: std::sync::atomic::AtomicU64,
}

impl QueryGate {
    pub fn new(max_total_memory_bytes: u64) -> Self {
        QueryGate {
            running: AtomicUsize::new(0),
            memory: QueryMemory::new(max_total_memory_bytes),
            stopped: Default::default(),
        }
    }

    /// A slot for one more query, if fewer than `max` run; released when the slot is dropped.
    pub fn enter(self: &Arc<Self>, max: usize) -> Option<QuerySlot> {
        self.running.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok().map(|n| {
            metrics::gauge!("tierd_queries_running").set((n + 1) as f64);
            QuerySlot(self.clone())
        })
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }
}

/// One running query's place in the [`QueryGate`].
pub struct QuerySlot(Arc<QueryGate>);

impl Drop for QuerySlot {
    fn drop(&mut self) {
        let left = self.0.running.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!("tierd_queries_running").set(left as f64);
        metrics::gauge!("tierd_query_memory_bytes").set(self.0.memory.used() as f64);
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match &state.metrics {
        Some(h) => {
            crate::server::metrics::publish_catalog(&state.catalog.snapshot());
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response()
        }
        None => ApiError::new(StatusCode::NOT_FOUND, "metrics are not enabled in this process").into_response(),
    }
}

pub async fn healthz(State(state): State<Arc<AppState>>) -> SortedJson<Health> {
    SortedJson(Health { generation: state.catalog.snapshot().generation(), status: "ok".into() })
}

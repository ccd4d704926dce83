//! Every object-store request as a metric: an [`ObjectStore`] wrapper recording, per request,
//! `tierd_cold_requests_total{op,outcome}` and `tierd_cold_request_seconds{op}`, and the bytes moved in
//! `tierd_cold_bytes_total{direction}` (`read` from the store, `write` to it).
//!
//! It sits below the IO budget, so budget waits are not counted as request latency, and above fault injection, so
//! injected faults show as failed requests. A read's latency is its time to the response (the body then streams);
//! its bytes are counted as they stream. A listing or a deletion stream is one request, recorded when it ends.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

use crate::clock::Stopwatch;

/// The `outcome` label of a request's result.
pub fn outcome<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(object_store::Error::NotFound { .. }) => "not_found",
        Err(object_store::Error::AlreadyExists { .. }) => "already_exists",
        Err(object_store::Error::Precondition { .. }) => "precondition",
        Err(object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }) => "denied",
        Err(_) => "error",
    }
}

fn record<T>(op: &'static str, started: Stopwatch, result: &Result<T>) {
    metrics::counter!("tierd_cold_requests_total", "op" => op, "outcome" => outcome(result)).increment(1);
    metrics::histogram!("tierd_cold_request_seconds", "op" => op).record(started.elapsed().as_secs_f64());
}

fn bytes_read(n: u64) {
    metrics::counter!("tierd_cold_bytes_total", "direction" => "read").increment(n);
}

fn bytes_written(n: u64) {
    metrics::counter!("tierd_cold_bytes_total", "direction" => "write").increment(n);
}

/// Wraps a store and records every request; see the module documentation.
#[derive(Debug)]
pub struct MetricsStore {
    inner: Arc<dyn ObjectStore>,
}

impl MetricsStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }
}

impl std::fmt::Display for MetricsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetricsStore({})", self.inner)
    }
}

/// Records one streamed request (a listing, a deletion) when the stream ends or is dropped.
struct StreamRequest {
    op: &'static str,
    started: Stopwatch,
    failed: bool,
}

impl Drop for StreamRequest {
    fn drop(&mut self) {
        let result: Result<()> = match self.failed {
            false => Ok(()),
            true => Err(object_store::Error::Generic { store: "MetricsStore", source: "stream failed".into() }),
        };
        record(self.op, self.started, &result);
    }
}

fn recorded_stream<T: Send + 'static>(
    op: &'static str,
    inner: BoxStream<'static, Result<T>>,
) -> BoxStream<'static, Result<T>> {
    let mut request = StreamRequest { op, started: Stopwatch::start(), failed: false };
    inner
        .map(move |item| {
            // Capture the whole guard (not just its field) so that it is recorded when the stream goes away.
            let request = &mut request;
            if item.is_err() {
                request.failed = true;
            }
            item
        })
        .boxed()
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for MetricsStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let (started, len) = (Stopwatch::start(), payload.content_length() as u64);
        let result = self.inner.put_opts(location, payload, opts).await;
        record("put", started, &result);
        if result.is_ok() {
            bytes_written(len);
        }
        result
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        let started = Stopwatch::start();
        let result = self.inner.put_multipart_opts(location, opts).await;
        record("put_multipart", started, &result);
        Ok(Box::new(MetricsUpload { inner: result? }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { "head" } else { "get" };
        let started = Stopwatch::start();
        let result = self.inner.get_opts(location, options).await;
        record(op, started, &result);
        let mut r = result?;
        if op == "get" {
            r.payload = match r.payload {
                GetResultPayload::Stream(s) => GetResultPayload::Stream(
                    s.map(|chunk| {
                        if let Ok(bytes) = &chunk {
                            bytes_read(bytes.len() as u64);
                        }
                        chunk
                    })
                    .boxed(),
                ),
                file @ GetResultPayload::File(..) => {
                    bytes_read(r.range.end - r.range.start);
                    file
                }
            };
        }
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let started = Stopwatch::start();
        let result = self.inner.get_ranges(location, ranges).await;
        record("get_ranges", started, &result);
        if let Ok(parts) = &result {
            bytes_read(parts.iter().map(|b| b.len() as u64).sum());
        }
        result
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        recorded_stream("delete", self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        recorded_stream("list", self.inner.list(prefix))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        recorded_stream("list", self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let started = Stopwatch::start();
        let result = self.inner.list_with_delimiter(prefix).await;
        record("list", started, &result);
        result
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let started = Stopwatch::start();
        let result = self.inner.copy_opts(from, to, options).await;
        record("copy", started, &result);
        result
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let started = Stopwatch::start();
        let result = self.inner.rename_opts(from, to, options).await;
        record("rename", started, &result);
        result
    }
}

#[derive(Debug)]
struct MetricsUpload {
    inner: Box<dyn MultipartUpload>,
}

#[async_trait]
impl MultipartUpload for MetricsUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let len = data.content_length() as u64;
        let part = self.inner.put_part(data);
        Box::pin(async move {
            let started = Stopwatch::start();
            let result = part.await;
            record("put_part", started, &result);
            if result.is_ok() {
                bytes_written(len);
            }
            result
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let started = Stopwatch::start();
        let result = self.inner.complete().await;
        record("complete_multipart", started, &result);
        result
    }

    async fn abort(&mut self) -> Result<()> {
        let started = Stopwatch::start();
        let result = self.inner.abort().await;
        record("abort_multipart", started, &result);
        result
    }
}

//! The server loop: hyper's HTTP/1 connections over the router, with the bounds `axum::serve` does not offer.
//! - **Connections** (`http.max_connections`): one permit per open connection; past the limit a new connection gets
//!   a fixed 503 JSON answer (`Retry-After: 1`) and is closed, counted in `tierd_http_connections_refused_total`.
//! - **Headers** (`http.header_read_timeout_ms`): hyper closes a connection whose request headers do not arrive in
//!   time, the defence against clients that open connections and trickle headers (slowloris).
//! - **Bodies** (`http.body_read_timeout_ms`): [`DeadlineBody`] fails a body not received whole in time; the
//!   handler's extractor then answers 408 and uses nothing of it.
//!
//! - **TLS** (`http.tls_cert_file`): with an acceptor ([`super::tls`]), each connection first completes its
//!   handshake within the header timeout, or is closed (`tierd_http_tls_handshake_failures_total`).
//!
//! Shutdown: the accept loop stops at once; each connection finishes its request in flight (hyper's graceful
//! shutdown) and the loop returns when all have.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use http_body::Frame;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::error::ApiError;
use crate::server::config::HttpSection;

/// Serves `app` on `listener` until `shutdown`, within `limits`; over TLS with `tls`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpSection,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    warn!(error = %e, "cannot accept a connection");
                    metrics::counter!("tierd_http_accept_errors_total").increment(1);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("tierd_http_connections_refused_total").increment(1);
            debug!(%peer, max = limits.max_connections, "connection refused (http.max_connections)");
            refuse(stream, limits.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        metrics::gauge!("tierd_http_connections").set((limits.max_connections - permits.available_permits()) as f64);
        let (app, shutdown, tls) = (app.clone(), shutdown.clone(), tls.clone());
        let header_timeout = limits.header_read_timeout();
        let gauge = permits.clone();
        let max = limits.max_connections;
        connections.spawn(async move {
            let result = match tls {
                None => serve_connection(stream, app, peer, header_timeout, shutdown).await,
                Some(tls) => match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(stream, app, peer, header_timeout, shutdown).await,
                    Ok(Err(e)) => Err(handshake_failed(peer, e.to_string())),
                    Err(_) => Err(handshake_failed(peer, format!("not done within {header_timeout:?}"))),
                },
            };
            if let Err(e) = result {
                debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
            metrics::gauge!("tierd_http_connections").set((max - gauge.available_permits()) as f64);
        });
    }
    connections.close();
    connections.wait().await;
}

/// Serves HTTP/1 requests on one connection (plain or TLS) until it closes or `shutdown`, when the request in
/// flight is finished first.
async fn serve_connection<I>(
    io: I,
    app: Router,
    peer: SocketAddr,
    header_timeout: Duration,
    shutdown: CancellationToken,
) -> Result<(), axum::BoxError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Each request knows its client's address (`ConnectInfo`), which `/track?ip=1` may record.
    let service = TowerToHyperService::new(tower::util::MapRequest::new(app, move |mut req: Request<_>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    }));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    result.map_err(Into::into)
}

/// Counts a TLS handshake that failed or timed out; the error to log.
fn handshake_failed(peer: SocketAddr, why: String) -> axum::BoxError {
    metrics::counter!("tierd_http_tls_handshake_failures_total").increment(1);
    format!("TLS handshake with {peer} failed: {why}").into()
}

/// Answers a connection over the limit with a fixed 503, best effort (never waits on the client), and closes it.
fn refuse(stream: TcpStream, max: usize) {
    let body = format!(
        "{{\"code\":503,\"error\":\"{max} connections are open (http.max_connections): retry shortly\",\
         \"status\":\"Service Unavailable\"}}"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// The router's middleware that puts every request body under `http.body_read_timeout_ms`: a request whose body
/// did not arrive in time is answered 408 (JSON), whatever its handler made of the failed read.
pub async fn body_deadline(timeout: Duration, req: Request, next: axum::middleware::Next) -> Response {
    let timed_out = Arc::new(AtomicBool::new(false));
    let flag = timed_out.clone();
    let resp = next.run(req.map(|body| Body::new(DeadlineBody::new(body, timeout, flag)))).await;
    if timed_out.load(Ordering::Relaxed) {
        let e = BodyTimeout(timeout.as_millis());
        return ApiError::new(StatusCode::REQUEST_TIMEOUT, e.to_string()).into_response();
    }
    resp
}

/// A request body that fails once its deadline passes before it is received whole.
pub struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    /// Set when the deadline passed.
    timed_out: Arc<AtomicBool>,
}

impl DeadlineBody {
    pub fn new(inner: Body, timeout: Duration, timed_out: Arc<AtomicBool>) -> Self {
        DeadlineBody { inner, deadline: Box::pin(tokio::time::sleep(timeout)), timeout, timed_out }
    }
}

/// The error of a body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {0} ms (http.body_read_timeout_ms)")]
pub struct BodyTimeout(u128);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            metrics::counter!("tierd_http_body_timeouts_total").increment(1);
            self.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimeout(self.timeout.as_millis()).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

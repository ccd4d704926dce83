//! Browser safety: what keeps a web page open on the operator's machine from driving a daemon it can reach.
//!
//! - `Origin`: browsers send it on cross-site requests (and on every `POST`); tools and SDKs do not. A request
//!   carrying an origin not listed in `http.allowed_origins` is refused (403) before any handler runs. A listed
//!   origin gets `Access-Control-Allow-Origin` (a browser SDK posting to `/track` can read its answer).
//! - `Host`: listening on loopback, a request addressed to any other name than `localhost`, a loopback address or
//!   one of `http.allowed_hosts` is refused (403), so a DNS name rebound to 127.0.0.1 gives a page nothing.
//! - Admin and query `POST`s need `Content-Type: application/json` (415): a page can only send that after a CORS
//!   preflight, which tierd never grants (it answers no `OPTIONS`). Form-encoded and plain-text posts, which a page
//!   can send without asking, never reach those handlers, whatever their body says.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::server::config::HttpSection;

/// The allowed origins and hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    origins: Vec<String>,
    hosts: Vec<String>,
    /// Listening on loopback: `Host` is checked even with no `allowed_hosts`.
    loopback: bool,
}

impl Guard {
    /// The guard of a daemon listening on `listen` with `http`.
    pub fn new(http: &HttpSection, listen: &str) -> Self {
        let loopback = listen.parse::<SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
        Self {
            origins: http.allowed_origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect(),
            hosts: http.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            loopback,
        }
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| *o == origin.trim_end_matches('/').to_ascii_lowercase())
    }

    fn host_allowed(&self, host: &str) -> bool {
        if !self.loopback && self.hosts.is_empty() {
            return true;
        }
        let name = host_name(host).to_ascii_lowercase();
        let loopback_name = name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        (self.loopback && loopback_name) || self.hosts.contains(&name)
    }
}

/// The name of a `Host` value, without its port (`[::1]:7070` -> `::1`).
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The router's middleware: refuses requests from origins and to hosts that are not allowed.
pub async fn check(guard: Arc<Guard>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    if let Some(origin) = &origin {
        if !origin.to_str().is_ok_and(|o| guard.origin_allowed(o)) {
            let shown = String::from_utf8_lossy(origin.as_bytes()).chars().take(100).collect::<String>();
            return refuse(
                "origin",
                format!(
                    "requests from web pages are refused (Origin {shown:?}); list the page's origin in \
                     http.allowed_origins to allow it"
                ),
            );
        }
    }
    if let Some(host) = req.headers().get(header::HOST) {
        if !host.to_str().is_ok_and(|h| guard.host_allowed(h)) {
            let shown = String::from_utf8_lossy(host.as_bytes()).chars().take(100).collect::<String>();
            return refuse(
                "host",
                format!(
                    "requests addressed to {shown:?} are refused; this daemon answers to localhost and loopback \
                     addresses, and to the names in http.allowed_hosts"
                ),
            );
        }
    }
    let mut resp = next.run(req).await;
    if let Some(origin) = origin {
        resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        resp.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

/// The middleware of admin and query routes: a `POST` (anything but `GET` and `HEAD`) must be JSON.
pub async fn json_only(req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    let mime = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    if mime.as_deref() == Some("application/json") {
        return next.run(req).await;
    }
    metrics::counter!("tierd_http_refused_total", "reason" => "content_type").increment(1);
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("{} {} needs Content-Type: application/json", req.method(), req.uri().path()),
    )
    .into_response()
}

fn refuse(reason: &'static str, message: String) -> Response {
    metrics::counter!("tierd_http_refused_total", "reason" => reason).increment(1);
    ApiError::new(StatusCode::FORBIDDEN, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(listen: &str, origins: &[&str], hosts: &[&str]) -> Guard {
        let http = HttpSection {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            ..HttpSection::default()
        };
        Guard::new(&http, listen)
    }

    #[test]
    fn hosts_on_loopback_and_elsewhere() {
        let g = guard("127.0.0.1:7070", &[], &["tierd.internal"]);
        for ok in ["127.0.0.1:7070", "localhost", "LOCALHOST:1", "[::1]:7070", "127.8.9.10", "tierd.internal:7070"] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for refused in ["evil.example:7070", "rebound.example", "10.0.0.1:7070", "[::2]:7070", ""] {
            assert!(!g.host_allowed(refused), "{refused}");
        }
        assert!(guard("0.0.0.0:7070", &[], &[]).host_allowed("anything.example"), "no list off loopback: any");
        assert!(!guard("0.0.0.0:7070", &[], &["a.example"]).host_allowed("b.example"));
    }

    #[test]
    fn origins_must_be_listed() {
        let g = guard("127.0.0.1:7070", &["https://shop.example/"], &[]);
        assert!(g.origin_allowed("https://shop.example"));
        assert!(g.origin_allowed("HTTPS://SHOP.EXAMPLE"));
        for refused in ["https://evil.example", "http://shop.example", "null", "https://shop.example:8443"] {
            assert!(!g.origin_allowed(refused), "{refused}");
        }
    }
}

//! `[http]`: the HTTP server's own bounds, against clients that hold connections without finishing requests
//! (slowloris), trickle bodies, or stop reading answers. Read at start-up (a restart applies changes).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[http]`: connections, and how long the server waits on a client.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Most open connections. Past it, a new connection is answered 503 (Retry-After: 1) and closed.
    pub max_connections: usize,
    /// A request's headers must arrive within this many milliseconds of the connection waiting for them (new
    /// connections and keep-alive ones alike), else the connection is closed.
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive whole within this many milliseconds of its headers, else the request fails
    /// (408) and nothing of it is used.
    pub body_read_timeout_ms: u64,
    /// A streamed answer (`GET /v1/segments/{id}`) whose client takes no chunk for this many milliseconds is
    /// abandoned: the body is cut and the segment's pin released, so garbage collection is not held up.
    pub send_timeout_ms: u64,
    /// Origins (`scheme://host[:port]`) of the web pages allowed to call tierd, e.g. a site whose browser SDK posts
    /// to `/track`. A request carrying any other `Origin` (a browser's) is refused with a 403, so a page open on
    /// the operator's machine cannot drive a loopback daemon. Admin and query `POST`s also need
    /// `Content-Type: application/json`, which a page cannot send without a preflight that tierd never grants.
    pub allowed_origins: Vec<String>,
    /// Host names (without port) requests may be addressed to. Listening on loopback, `localhost` and loopback
    /// addresses are always allowed and any other `Host` is refused (403: DNS rebinding); elsewhere, empty allows
    /// any `Host`.
    pub allowed_hosts: Vec<String>,
    /// Whether `/metrics` and `/healthz` need a bearer token (any role) like the query API; off: open.
    pub metrics_need_token: bool,
    /// Serve HTTPS: the server's certificate chain (PEM, leaf first). Set with `tls_key_file`, or neither (plain
    /// HTTP). Mixpanel's Node SDK sends `/import` secrets and service accounts only over HTTPS.
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key_file: Option<PathBuf>,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout_ms: 30_000,
            body_read_timeout_ms: 120_000,
            send_timeout_ms: 60_000,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            metrics_need_token: false,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl HttpSection {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        super::at_least_one(&[
            ("http.max_connections", self.max_connections as u64),
            ("http.header_read_timeout_ms", self.header_read_timeout_ms),
            ("http.body_read_timeout_ms", self.body_read_timeout_ms),
            ("http.send_timeout_ms", self.send_timeout_ms),
        ])?;
        for origin in &self.allowed_origins {
            let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains('/') || r.contains(char::is_whitespace)) {
                return Err((
                    "http.allowed_origins",
                    format!("{origin:?} is not an origin: write scheme://host[:port], no path (as browsers send it)"),
                ));
            }
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => return Err(("http.tls_key_file", "tls_cert_file is set: set its key too".into())),
            (None, Some(_)) => {
                return Err(("http.tls_cert_file", "tls_key_file is set: set its certificate too".into()))
            }
            _ => {}
        }
        for host in &self.allowed_hosts {
            if host.is_empty() || host.contains(['/', ' ', '\t']) || host.contains("://") {
                return Err(("http.allowed_hosts", format!("{host:?} is not a host name (no scheme, no path)")));
            }
        }
        Ok(())
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }

    pub fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }
}

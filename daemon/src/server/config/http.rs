//! `[http]`: the HTTP server's own bounds, against clients that hold connections without finishing requests
//! (slowloris), trickle bodies, or stop reading answers. Read at start-up (a restart applies changes).

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
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout_ms: 30_000,
            body_read_timeout_ms: 120_000,
            send_timeout_ms: 60_000,
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

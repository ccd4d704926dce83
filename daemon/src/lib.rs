//! The tierd daemon: CLI, HTTP API and background tasks.
//!
//! `daemon` wires `store` (all I/O) to the outside world. It owns the configuration, the HTTP API ([`http`]), the
//! metrics exporter, the command line ([`cli`]) including the client commands (`import`, `query`) and the event
//! generator (`gen`).

pub mod background;
pub mod cli;
pub mod client;
pub mod config;
pub mod gen;
pub mod http;
pub mod metrics;
pub mod passes;
pub mod serve;

//! What serves: `tierd serve`'s start-up and shutdown ([`serve`]), the HTTP API ([`http`]), the passes and moves
//! run on demand ([`passes`]) and on schedules ([`schedule`], [`status`], [`reload`]) on background threads
//! ([`background`]), retention's pass, read-time cutoff and plan ([`retention`]), the metrics exporter ([`metrics`]) and the
//! configuration ([`config`]).
//!
//! Nothing here depends on the client commands or the command line; request and response bodies come from
//! [`crate::api`], which the client shares.

pub mod background;
pub mod config;
pub mod deletions;
pub mod error;
pub mod fds;
pub mod http;
pub mod metrics;
pub mod passes;
pub mod reload;
pub mod retention;
pub mod schedule;
pub mod serve;
pub mod status;
pub mod tiering;

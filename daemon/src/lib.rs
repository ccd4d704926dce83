//! The tierd daemon: the server, the client commands and the event generator behind one binary.
//!
//! `daemon` wires `store` (all I/O) to the outside world, in separate rooms:
//! - [`server`]: `tierd serve`, the HTTP API, background passes, metrics and the configuration;
//! - [`client`]: the client commands (`import`, `query`, `pass`, `gc`, `move`, `trash`), thin HTTP clients of a
//!   running daemon;
//! - [`api`]: the request and response bodies the server and the client share;
//! - `gen`: the event generator;
//! - [`plan`]: `tierd plan`, the tiering plan from a running daemon or a stopped one's data directory;
//! - [`simulate`]: `tierd simulate`, the offline what-if of the placement policies;
//! - [`catalog`]: `tierd catalog rebuild`, a stopped daemon's catalog written anew from its segment files;
//! - [`cli`]: the command line, which parses arguments and hands them to one of the above (nothing depends on it).

pub mod api;
pub mod catalog;
pub mod cli;
pub mod client;
pub mod gen;
pub mod plan;
pub mod server;
pub mod simulate;

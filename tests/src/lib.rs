//! End-to-end and crash tests for tierd: they start the real `tierd` binary and talk to it over HTTP only.
//!
//! Nothing here depends on a tierd crate. The tests are black-box against the HTTP contract, and every expected
//! value comes from [`model::Model`], a small independent re-implementation of the contract's semantics (time units,
//! dedup, filters, grouping), so a bug shared by the daemon and its own helpers cannot hide itself.
//!
//! - [`daemon`]: locating/building the binary, starting, killing, stopping and restarting it, HTTP helpers.
//! - [`model`]: the in-test model of acknowledged events and of query answers.
//! - [`mp`]: Mixpanel-shaped bodies (JSON array, NDJSON, gzip), the seconds-vs-ms rule and UTC day arithmetic.
//! - [`gen`]: a small deterministic generator of Mixpanel-shaped events and request encodings.
//! - [`cold`]: the cold-tier tests' stream, queries and storage checks (file:// or S3).
//! - [`disk`]: the check that the catalog and the hot directory agree.
//! - [`erasure`]: reading every stored copy back (hot, trash, cold, cache) to prove a deletion reached every byte.
//! - [`policy`]: tiering-policy sections for test configurations (move everything now, free requests).
//! - [`s3`]: a real S3-compatible server (moto) on 127.0.0.1 for the cold-tier tests.

pub mod cold;
pub mod daemon;
pub mod disk;
pub mod erasure;
pub mod gen;
pub mod model;
pub mod mp;
pub mod policy;
pub mod s3;

/// Where the Node test clients find their packages: `NODE_PATH` as given (`tests/run` points it at
/// `.test-deps/node/node_modules`), else the global npm root (`npm install -g`).
pub fn node_path() -> Option<String> {
    if let Some(path) = std::env::var("NODE_PATH").ok().filter(|p| !p.is_empty()) {
        return Some(path);
    }
    let out = std::process::Command::new("npm").args(["root", "-g"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub use daemon::{cli_command, tierd_bin, Daemon, Resp, StartFailure, TestDir, TEST_ADMIN_TOKEN};
pub use model::{Answer, Model, ModelEvent};
pub use s3::MotoServer;

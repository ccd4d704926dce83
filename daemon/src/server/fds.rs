//! File descriptors: the daemon never runs out of them. What it may hold open at once is bounded by configuration:
//! the hot tier's open segments (`hot.max_open_segments`, a hard cap), HTTP connections (`http.max_connections`),
//! queries reading segments (`query.max_concurrent`, a few files each), and a fixed reserve for the catalog, the
//! cold cache, the listener, logs and the runtime. At start the soft `RLIMIT_NOFILE` is raised towards the hard one
//! when it is lower than that sum (as Go's runtime and most servers do); if even the hard limit is lower, the daemon
//! refuses to start with a message naming the keys, rather than failing `open` under load later.

use anyhow::bail;

use super::config::Config;

/// Descriptors kept for what no key bounds: sled's files, the cold cache's open blocks, the listener, epoll and
/// eventfds, stdio, the runtime's and the passes' threads' transient opens (a rewrite reads its inputs one by one).
pub const RESERVE: u64 = 256;

/// Files one query may hold open at once (it reads one segment at a time; a cold read may add a cached block).
pub const PER_QUERY: u64 = 4;

/// What the configuration may hold open at once.
pub fn needed(config: &Config) -> u64 {
    config.hot.max_open_segments as u64
        + config.http.max_connections as u64
        + config.query.max_concurrent as u64 * PER_QUERY
        + RESERVE
}

/// The pure decision: with soft limit `soft` and hard limit `hard` (`None`: unlimited), `Ok(None)` when `need`
/// fits, `Ok(Some(n))` to raise the soft limit to `n`, or the error to start with.
pub fn decide(soft: Option<u64>, hard: Option<u64>, need: u64, config: &Config) -> anyhow::Result<Option<u64>> {
    if soft.is_none_or(|s| s >= need) {
        return Ok(None);
    }
    if hard.is_none_or(|h| h >= need) {
        return Ok(Some(need));
    }
    bail!(
        "the open-file limit (RLIMIT_NOFILE: soft {}, hard {}) is below the {need} descriptors this configuration may \
         hold open: hot.max_open_segments ({}) + http.max_connections ({}) + query.max_concurrent ({}) x {PER_QUERY} \
         + {RESERVE} reserved. Raise the limit (`ulimit -n`, systemd LimitNOFILE=) or lower those keys",
        soft.map_or("unlimited".into(), |s| s.to_string()),
        hard.map_or("unlimited".into(), |h| h.to_string()),
        config.hot.max_open_segments,
        config.http.max_connections,
        config.query.max_concurrent
    )
}

/// Checks the process's limit against [`needed`], raising the soft limit when it can; the limit in force is the
/// `tierd_fd_limit` gauge.
pub fn ensure(config: &Config) -> anyhow::Result<()> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let need = needed(config);
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(raise) = decide(limit.current, limit.maximum, need, config)? {
        let raised = rustix::process::Rlimit { current: Some(raise), maximum: limit.maximum };
        setrlimit(Resource::Nofile, raised)
            .map_err(|e| anyhow::anyhow!("cannot raise the open-file limit to {raise}: {e}"))?;
        tracing::info!(from = ?limit.current, to = raise, "raised the open-file limit (RLIMIT_NOFILE)");
        limit = raised;
    }
    metrics::gauge!("tierd_fd_limit").set(limit.current.map_or(f64::INFINITY, |c| c as f64));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_kept_raised_or_refused_with_the_keys_named() {
        let config = Config::default();
        let need = needed(&config);
        assert_eq!(
            need,
            config.hot.max_open_segments as u64
                + config.http.max_connections as u64
                + config.query.max_concurrent as u64 * PER_QUERY
                + RESERVE
        );
        assert_eq!(decide(Some(need), Some(need), need, &config).unwrap(), None);
        assert_eq!(decide(None, None, need, &config).unwrap(), None);
        assert_eq!(decide(Some(256), Some(1 << 20), need, &config).unwrap(), Some(need));
        assert_eq!(decide(Some(256), None, need, &config).unwrap(), Some(need));
        let err = decide(Some(256), Some(need - 1), need, &config).unwrap_err().to_string();
        for key in ["hot.max_open_segments", "http.max_connections", "query.max_concurrent", "ulimit -n"] {
            assert!(err.contains(key), "{err}");
        }
    }
}

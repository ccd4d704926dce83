//! Named failpoints between crash-safe steps.
//!
//! Each durable step of the store calls [`Failpoints::hit`] with its name (listed in `ARCHITECTURE.md`). Normally
//! nothing happens. Crash tests configure a point to kill the process right there (`exit`, as abrupt as `kill -9`:
//! no destructors, no flush), or to fail the step with an I/O error (`error`), optionally only on its N-th hit.
//! Failpoints belong to one store instance (no global registry), so tests in one process do not interfere.
//!
//! The daemon reads them from `TIERD_FAILPOINTS`, e.g. `hot.fsync=exit@3,recovery.seal=error`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The named steps, in the order a segment meets them.
pub const POINTS: &[&str] = &[
    "hot.create",
    "hot.write",
    "hot.fsync",
    "hot.commit",
    "hot.seal",
    "rewrite.intent",
    "rewrite.write",
    "rewrite.verify",
    "rewrite.commit",
    "filtered.intent",
    "filtered.write",
    "filtered.verify",
    "filtered.commit",
    "filtered.retire",
    "gc.delete",
    "gc.erase",
    "gc.erase_trash",
    "erase.mark",
    "erase.trash",
    "gc.orphan",
    "move.intent",
    "move.write",
    "move.verify",
    "move.commit",
    "restore.write",
    "restore.commit",
    "rollback.clear",
    "recovery.truncate",
    "recovery.seal",
    "recovery.quarantine",
    "recovery.rollback",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Terminate the process immediately with exit status 101 (no cleanup, like a crash).
    Exit,
    /// Make the step fail with an I/O error.
    Error,
}

#[derive(Debug)]
struct Point {
    action: Action,
    /// Fire on this hit (1-based); 0 = every hit.
    on_hit: u64,
    hits: AtomicU64,
}

#[derive(Debug, Default)]
pub struct Failpoints {
    points: HashMap<String, Point>,
}

impl Failpoints {
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses `name=action[@n],...` where action is `exit` or `error`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut points = HashMap::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, rest) =
                item.split_once('=').ok_or_else(|| format!("failpoint {item:?}: expected name=exit|error[@N]"))?;
            if !POINTS.contains(&name) {
                return Err(format!("unknown failpoint {name:?}; known: {}", POINTS.join(", ")));
            }
            let (action, on_hit) = match rest.split_once('@') {
                Some((a, n)) => (a, n.parse::<u64>().map_err(|_| format!("failpoint {item:?}: bad hit count {n:?}"))?),
                None => (rest, 0),
            };
            let action = match action {
                "exit" => Action::Exit,
                "error" => Action::Error,
                other => return Err(format!("failpoint {item:?}: unknown action {other:?}; use exit or error")),
            };
            points.insert(name.to_string(), Point { action, on_hit, hits: AtomicU64::new(0) });
        }
        Ok(Self { points })
    }

    /// Called by a step named `name`. Exits the process or returns an error when configured to.
    pub fn hit(&self, name: &'static str) -> std::io::Result<()> {
        debug_assert!(POINTS.contains(&name), "unlisted failpoint {name}");
        let Some(p) = self.points.get(name) else { return Ok(()) };
        let n = p.hits.fetch_add(1, Ordering::SeqCst) + 1;
        if p.on_hit != 0 && n != p.on_hit {
            return Ok(());
        }
        match p.action {
            Action::Exit => {
                eprintln!("tierd: failpoint {name} hit {n}: exiting");
                std::process::exit(101)
            }
            Action::Error => Err(std::io::Error::other(format!("failpoint {name} (hit {n})"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_fires_on_the_requested_hit() {
        let f = Failpoints::parse("hot.fsync=error@2, recovery.seal=error").unwrap();
        assert!(f.hit("hot.fsync").is_ok());
        assert!(f.hit("hot.fsync").is_err());
        assert!(f.hit("hot.fsync").is_ok());
        assert!(f.hit("recovery.seal").is_err());
        assert!(f.hit("recovery.seal").is_err());
        assert!(f.hit("hot.write").is_ok());
    }

    #[test]
    fn rejects_unknown_points_and_actions() {
        assert!(Failpoints::parse("hot.nope=exit").unwrap_err().contains("unknown failpoint"));
        assert!(Failpoints::parse("hot.fsync=panic").unwrap_err().contains("unknown action"));
        assert!(Failpoints::parse("hot.fsync").is_err());
        assert!(Failpoints::parse("hot.fsync=exit@x").is_err());
        assert!(Failpoints::parse("").unwrap().points.is_empty());
    }
}

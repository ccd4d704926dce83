//! Durations, measured on the monotonic clock: how long a request, a commit or a move took (latency metrics, the
//! client's progress). Wall time for decisions comes from a [`super::Clock`]; a duration must not jump when the
//! wall clock is set, so it is measured here, the one place that reads `std::time::Instant`.

use std::time::{Duration, Instant};

/// A running measurement of elapsed time.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts measuring now.
    #[allow(clippy::disallowed_methods)] // the one sanctioned reader of the monotonic clock
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Time since [`Stopwatch::start`].
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    /// Time since [`Stopwatch::start`], in seconds (what latency histograms record).
    pub fn elapsed_secs(&self) -> f64 {
        self.elapsed().as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_forward() {
        let w = Stopwatch::start();
        let a = w.elapsed();
        std::thread::sleep(Duration::from_millis(2));
        assert!(w.elapsed() >= a + Duration::from_millis(2));
        assert!(w.elapsed_secs() > 0.0);
    }
}

//! The read-latency model: how long one read of a segment takes, by where its bytes come from.
//!
//! Three sources, each a first-byte latency plus a transfer time per MiB: the hot disk (a local SSD), the cache of
//! cold blocks on the hot disk (`[cache]`: already fetched, read locally), and the cold object store (one round
//! trip to first byte, then the stream's bandwidth). The defaults are round figures for a cloud VM with a gp3 volume
//! and S3 in the same region; they are assumptions of the model, not measurements of tierd, and every one is
//! configurable (`[simulate.latency]`). What the simulation compares is the *mix* of sources each scenario causes;
//! the absolute milliseconds are only as good as these figures.

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

/// Milliseconds per source; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyModel {
    /// First byte from the hot disk. Default 0.5 ms.
    pub hot_first_byte_ms: f64,
    /// Per MiB from the hot disk. Default 4 ms (about 250 MiB/s, a gp3 volume's default throughput is 125-1000).
    pub hot_ms_per_mib: f64,
    /// First byte of a cache hit (an index lookup and a local read). Default 0.5 ms.
    pub cache_first_byte_ms: f64,
    /// Per MiB of a cache hit. Default 4 ms, like the hot disk the cache lives on.
    pub cache_ms_per_mib: f64,
    /// First byte from the object store. Default 60 ms (S3 GET first-byte latency is tens of ms).
    pub cold_first_byte_ms: f64,
    /// Per MiB from the object store. Default 12 ms (about 85 MiB/s for one reader's parallel ranged GETs).
    pub cold_ms_per_mib: f64,
}

impl Default for LatencyModel {
    fn default() -> Self {
        LatencyModel {
            hot_first_byte_ms: 0.5,
            hot_ms_per_mib: 4.0,
            cache_first_byte_ms: 0.5,
            cache_ms_per_mib: 4.0,
            cold_first_byte_ms: 60.0,
            cold_ms_per_mib: 12.0,
        }
    }
}

/// Where a read's bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Hot,
    Cache,
    Cold,
}

const MIB: f64 = (1u64 << 20) as f64;

impl LatencyModel {
    pub fn validate(&self) -> Result<(), PolicyError> {
        let fields = [
            ("hot_first_byte_ms", self.hot_first_byte_ms),
            ("hot_ms_per_mib", self.hot_ms_per_mib),
            ("cache_first_byte_ms", self.cache_first_byte_ms),
            ("cache_ms_per_mib", self.cache_ms_per_mib),
            ("cold_first_byte_ms", self.cold_first_byte_ms),
            ("cold_ms_per_mib", self.cold_ms_per_mib),
        ];
        for (field, v) in fields {
            PolicyError::require(v.is_finite() && v >= 0.0, "simulate.latency", field, || {
                format!("is {v}: give milliseconds, zero or more")
            })?;
        }
        Ok(())
    }

    /// Milliseconds to read `bytes` from `source`.
    pub fn read_ms(&self, source: Source, bytes: u64) -> f64 {
        let mib = bytes as f64 / MIB;
        match source {
            Source::Hot => self.hot_first_byte_ms + mib * self.hot_ms_per_mib,
            Source::Cache => self.cache_first_byte_ms + mib * self.cache_ms_per_mib,
            Source::Cold => self.cold_first_byte_ms + mib * self.cold_ms_per_mib,
        }
    }
}

/// The `q`-quantile (0 to 1) of `sorted` by nearest rank; 0 for no samples.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_percentiles() {
        let m = LatencyModel::default();
        assert_eq!(m.read_ms(Source::Cold, 1 << 20), 72.0);
        assert_eq!(m.read_ms(Source::Hot, 0), 0.5);
        assert!(m.read_ms(Source::Cache, 10 << 20) < m.read_ms(Source::Cold, 10 << 20));
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert!(LatencyModel { cold_ms_per_mib: -1.0, ..m }
            .validate()
            .unwrap_err()
            .to_string()
            .contains("cold_ms_per_mib"));
    }
}

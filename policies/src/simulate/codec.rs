//! What a codec does to a segment's size in the simulation: measured bytes per event, never guessed.
//!
//! The figures are tierd's own columnar encoder on its generated event stream, from BENCHMARKS.md, section
//! "Compacted segment size: `passes.compact.target_bytes`", the row of the default segment size (106,000 events):
//! lz4 73.01, zstd-3 45.67, zstd-19 38.87 bytes per event. A segment keeps its event count through a rewrite, so a
//! recompression from codec `a` to `b` scales its bytes by `bytes_per_event(b) / bytes_per_event(a)`.
//!
//! Levels of zstd that were not measured (`zstd-1` .. `zstd-22` other than 3 and 19) are interpolated linearly in
//! the level between the two measured ones and held flat outside them: an estimate, marked as such in the docs of
//! [`bytes_per_event`]. Any other codec name has no figure and is an error naming it.

use crate::error::PolicyError;

/// Measured bytes per event of lz4 (BENCHMARKS.md, "Compacted segment size", default row).
pub const LZ4_BYTES_PER_EVENT: f64 = 73.01;
/// Measured bytes per event of zstd-3 (same row).
pub const ZSTD3_BYTES_PER_EVENT: f64 = 45.67;
/// Measured bytes per event of zstd-19 (same row).
pub const ZSTD19_BYTES_PER_EVENT: f64 = 38.87;

/// Bytes per event of a columnar segment written with `codec`: measured for lz4, zstd-3 and zstd-19; other zstd
/// levels are a linear interpolation (an estimate); any other name is an error.
pub fn bytes_per_event(codec: &str) -> Result<f64, PolicyError> {
    match codec {
        "lz4" => return Ok(LZ4_BYTES_PER_EVENT),
        "zstd-3" => return Ok(ZSTD3_BYTES_PER_EVENT),
        "zstd-19" => return Ok(ZSTD19_BYTES_PER_EVENT),
        _ => {}
    }
    let level = codec.strip_prefix("zstd-").and_then(|l| l.parse::<u32>().ok()).filter(|l| (1..=22).contains(l));
    let Some(level) = level else {
        return Err(PolicyError::invalid(
            "simulate",
            "codec",
            format!("{codec:?} has no measured size: the simulation knows lz4 and zstd-1 .. zstd-22"),
        ));
    };
    let t = ((f64::from(level) - 3.0) / 16.0).clamp(0.0, 1.0);
    Ok(ZSTD3_BYTES_PER_EVENT + t * (ZSTD19_BYTES_PER_EVENT - ZSTD3_BYTES_PER_EVENT))
}

/// The size of `bytes` written with `from` once rewritten with `to`.
pub fn rescale(bytes: u64, from: &str, to: &str) -> Result<u64, PolicyError> {
    let ratio = bytes_per_event(to)? / bytes_per_event(from)?;
    Ok((bytes as f64 * ratio).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_ratios_and_interpolation() {
        assert_eq!(rescale(7301, "lz4", "zstd-19").unwrap(), 3887);
        assert_eq!(rescale(1000, "lz4", "lz4").unwrap(), 1000);
        let z9 = bytes_per_event("zstd-9").unwrap();
        assert!(z9 < ZSTD3_BYTES_PER_EVENT && z9 > ZSTD19_BYTES_PER_EVENT);
        assert_eq!(bytes_per_event("zstd-22").unwrap(), ZSTD19_BYTES_PER_EVENT);
        assert_eq!(bytes_per_event("zstd-1").unwrap(), ZSTD3_BYTES_PER_EVENT);
        for bad in ["snappy", "zstd-0", "zstd-23", "zstd-", "none"] {
            assert!(bytes_per_event(bad).unwrap_err().to_string().contains(bad), "{bad}");
        }
    }
}

//! Mixpanel-shaped request bodies and the few rules of the contract that the model needs, written from the contract
//! text (not from tierd's code): the seconds-vs-milliseconds rule and UTC day arithmetic.

use std::io::Write;

use serde_json::Value;

pub const MS_PER_DAY: i64 = 86_400_000;

/// A `to` bound that covers every event the tests write ("all time"): 10000-01-01T00:00:00Z in ms.
pub const FAR_FUTURE_MS: i64 = 253_402_300_800_000;

/// `properties.time` values at or above this are milliseconds, below it seconds (contract: "values >= 1e11 are ms").
pub const MS_THRESHOLD: f64 = 1e11;

/// Milliseconds since the epoch of a valid `properties.time` value, by the contract's rule.
///
/// The tests only send float seconds whose fraction is exact in binary (.5, .25, .125, ...), so the result does not
/// depend on whether the daemon rounds or truncates.
pub fn time_ms(v: &Value) -> i64 {
    if let Some(i) = v.as_i64() {
        return if (i as f64) >= MS_THRESHOLD { i } else { i * 1000 };
    }
    let f = v.as_f64().expect("time must be a number");
    let ms = if f >= MS_THRESHOLD { f } else { f * 1000.0 };
    assert!(ms.fract() == 0.0, "test generator sent a time {f} whose ms value is not exact");
    ms as i64
}

/// UTC day (days since 1970-01-01) of a time in ms.
pub fn day_of_ms(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_DAY)
}

/// `YYYY-MM-DD` of a day number (Howard Hinnant's `civil_from_days`).
pub fn day_string(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

/// A JSON array body.
pub fn array_body(events: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&Value::Array(events.to_vec())).unwrap()
}

/// An NDJSON body: one event per line, with a trailing newline.
pub fn ndjson_body(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        serde_json::to_writer(&mut out, e).unwrap();
        out.push(b'\n');
    }
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so test can send any project name verbatim.
pub fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Canonical text of a JSON value (object keys sorted, as `serde_json::Map` keeps them), used as a map key.
pub fn canon(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn day_strings_match_known_calendar_dates() {
        assert_eq!(day_string(0), "1970-01-01");
        // 2000-03-01 is 11017 days after the epoch (leap-century case).
        assert_eq!(day_string(11_016), "2000-02-29");
        assert_eq!(day_string(11_017), "2000-03-01");
        // 2024-01-01T00:00:00Z = 1704067200 s.
        assert_eq!(day_string(1_704_067_200 / 86_400), "2024-01-01");
        assert_eq!(day_string(-1), "1969-12-31");
    }

    #[test]
    fn time_rule_splits_seconds_and_ms_at_1e11() {
        assert_eq!(time_ms(&json!(1_700_000_000)), 1_700_000_000_000);
        assert_eq!(time_ms(&json!(1_700_000_000.5)), 1_700_000_000_500);
        assert_eq!(time_ms(&json!(1_700_000_000_123i64)), 1_700_000_000_123);
        assert_eq!(time_ms(&json!(99_999_999_999i64)), 99_999_999_999_000);
        assert_eq!(time_ms(&json!(100_000_000_000i64)), 100_000_000_000);
        assert_eq!(time_ms(&json!(1.7e12)), 1_700_000_000_000);
    }

    #[test]
    fn pct_escapes_path_and_query_syntax() {
        assert_eq!(pct("a-b_c"), "a-b_c");
        assert_eq!(pct("../x y&z"), "..%2Fx%20y%26z");
    }
}

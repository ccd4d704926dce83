//! Numbers as people read them, for action reasons: sizes in binary units, ages in d/h/min/s, days as dates.
//!
//! Values are truncated (never rounded up) to one decimal, so a printed age is never larger than the real one and a
//! reason such as "age 6.9d >= 7d" cannot appear for an age that did reach 7 days.

/// `41.2 MiB`, `512 B`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    let mut scale: u64 = 1;
    while unit + 1 < UNITS.len() && n / scale >= 1024 {
        scale *= 1024;
        unit += 1;
    }
    if unit == 0 {
        return format!("{n} B");
    }
    let tenths = u128::from(n) * 10 / u128::from(scale);
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// `9d`, `9.5d`, `2.2h`, `30min`, `1.5s`, `250ms`.
pub(crate) fn duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    const UNITS: [(u64, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1_000, "s")];
    for (scale, name) in UNITS {
        if ms >= scale {
            let tenths = u128::from(ms) * 10 / u128::from(scale);
            return if tenths % 10 == 0 {
                format!("{sign}{}{name}", tenths / 10)
            } else {
                format!("{sign}{}.{}{name}", tenths / 10, tenths % 10)
            };
        }
    }
    format!("{sign}{ms}ms")
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01): `2026-01-01`.
/// (Howard Hinnant's `civil_from_days`; exact for every `i32`.)
pub(crate) fn day(days: i32) -> String {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], March-based
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(41 * 1024 * 1024 + 220 * 1024), "41.2 MiB");
        // Truncated, not rounded: one byte short of 2 MiB is still 1.9 MiB.
        assert_eq!(bytes(2 * 1024 * 1024 - 1), "1.9 MiB");
        assert_eq!(bytes(u64::MAX), "16383.9 PiB"); // 16 EiB - 1 B, truncated
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(250), "250ms");
        assert_eq!(duration(1_500), "1.5s");
        assert_eq!(duration(30 * 60_000), "30min");
        assert_eq!(duration(7 * 86_400_000), "7d");
        assert_eq!(duration(9 * 86_400_000 + 12 * 3_600_000), "9.5d");
        assert_eq!(duration(7 * 86_400_000 - 1), "6.9d");
        assert_eq!(duration(-90_000), "-1.5min");
        assert_eq!(duration(i64::MIN), "-106751991167.3d");
    }

    #[test]
    fn known_dates() {
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(-1), "1969-12-31");
        assert_eq!(day(11_016), "2000-02-29");
        assert_eq!(day(20_454), "2026-01-01");
    }

    /// Walks day by day over four centuries either side of the epoch with a naive calendar and compares.
    #[test]
    fn dates_match_a_naive_calendar() {
        fn days_in_month(y: i64, m: i64) -> i64 {
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][(m - 1) as usize]
        }
        let (mut y, mut m, mut d) = (1570_i64, 1_i64, 1_i64);
        let start = -146_097; // 400 Gregorian years before 1970-01-01 is 1570-01-01
        for n in start..=146_097 {
            assert_eq!(day(n), format!("{y:04}-{m:02}-{d:02}"), "day {n}");
            d += 1;
            if d > days_in_month(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}

//! The time on every log line: an RFC 3339 UTC time with milliseconds,
//! `2026-12-01T21:58:31.123Z`. It comes from `SystemTime::now()`
//! (`clock_gettime(CLOCK_REALTIME)`) and is turned into a calendar date with
//! Howard Hinnant's `civil_from_days`: a few lines of integer arithmetic,
//! tested below, instead of a date crate.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, negative before it.
pub(super) fn unix_millis_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` for `unix_ms`.
pub(super) fn push_time(out: &mut String, unix_ms: i64) {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (secs, ms) = (ms_of_day / 1000, ms_of_day % 1000);
    let _ =
        write!(out, "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z", secs / 3600, secs / 60 % 60, secs % 60);
}

/// The proleptic Gregorian (year, month 1..=12, day 1..=31) of `days` since
/// 1970-01-01 (Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms").
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the 400-year era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(unix_ms: i64, pid: u32) -> String {
        let mut s = String::new();
        push_time(&mut s, unix_ms);
        s.push_str(&format!(" ringmaster[{pid}]: "));
        s
    }

    #[test]
    fn known_dates() {
        assert_eq!(prefix(0, 1), "1970-01-01T00:00:00.000Z ringmaster[1]: ");
        // RFC 9110's example date, Sun, 06 Nov 1994 08:49:37 GMT.
        assert_eq!(prefix(784_111_777_000, 42), "1994-11-06T08:49:37.000Z ringmaster[42]: ");
        // `date -u -d 2026-12-01T21:58:31Z +%s` = 1796162311.
        assert_eq!(prefix(1_796_162_311_123, 1234), "2026-12-01T21:58:31.123Z ringmaster[1234]: ");
        // Leap days: 2000 is a leap year (divisible by 400), 2100 is not.
        assert_eq!(prefix(951_782_400_000, 7), "2000-02-29T00:00:00.000Z ringmaster[7]: ");
        assert_eq!(prefix(951_868_799_999, 7), "2000-02-29T23:59:59.999Z ringmaster[7]: ");
        assert_eq!(prefix(4_107_542_400_000, 7), "2100-03-01T00:00:00.000Z ringmaster[7]: ");
        assert_eq!(prefix(4_107_542_399_000, 7), "2100-02-28T23:59:59.000Z ringmaster[7]: ");
        // The last millisecond of a year, and the first of the next.
        assert_eq!(prefix(1_767_225_599_999, 7), "2025-12-31T23:59:59.999Z ringmaster[7]: ");
        assert_eq!(prefix(1_767_225_600_000, 7), "2026-01-01T00:00:00.000Z ringmaster[7]: ");
        // Before the epoch (a clock set wrong still gives a valid date).
        assert_eq!(prefix(-1, 7), "1969-12-31T23:59:59.999Z ringmaster[7]: ");
    }

    #[test]
    fn civil_from_days_walks_every_day_in_order() {
        // Day by day from 1900-01-01 to 2200-12-31: every date follows the one
        // before it, and the month lengths are the Gregorian ones.
        let leap = |y: i64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let month_len = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let start = -25_567; // 1900-01-01
        let mut prev = civil_from_days(start);
        assert_eq!(prev, (1900, 1, 1));
        for days in start + 1..=84_370 {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = prev;
            let expected = if pd < month_len(py, pm) {
                (py, pm, pd + 1)
            } else if pm < 12 {
                (py, pm + 1, 1)
            } else {
                (py + 1, 1, 1)
            };
            assert_eq!((y, m, d), expected, "day {days}");
            prev = (y, m, d);
        }
        assert_eq!(prev, (2200, 12, 31));
    }

    #[test]
    fn now_is_a_plausible_time() {
        let line = prefix(unix_millis_now(), std::process::id());
        assert!(line.starts_with("20"), "{line}");
        assert_eq!(&line[23..25], "Z ", "{line}");
    }
}

//! Unix time helpers shared by certificates and challenges.

use std::time::{SystemTime, UNIX_EPOCH};

pub const SECONDS_PER_DAY: i64 = 86_400;

/// How many days before a certificate expires its user is reminded (at
/// login, in `ecpctl doctor`).
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// Whole days from `now` until `not_after` (negative once past).
pub fn days_left(not_after: i64, now: i64) -> i64 {
    (not_after - now).div_euclid(SECONDS_PER_DAY)
}

/// Still valid, but for fewer than [`EXPIRY_WARNING_DAYS`] days.
pub fn expires_soon(not_after: i64, now: i64) -> bool {
    not_after > now && days_left(not_after, now) < EXPIRY_WARNING_DAYS
}

/// Seconds since the Unix epoch; a clock before 1970 reads as 0.
pub fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Formats Unix seconds as `2027-01-03 12:00:00 UTC` for messages.
pub fn format_utc(unix_seconds: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    match time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
    {
        Some(text) => text.replacen('T', " ", 1).replace('Z', " UTC"),
        None => format!("@{unix_seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_readable_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_798_977_600), "2027-01-03 12:00:00 UTC");
    }

    #[test]
    fn days_left_count_whole_days_and_warn_inside_two_weeks() {
        let now = 1_000_000;
        assert_eq!(days_left(now + 14 * SECONDS_PER_DAY, now), 14);
        assert_eq!(days_left(now + 14 * SECONDS_PER_DAY - 1, now), 13);
        assert_eq!(days_left(now - 1, now), -1);
        assert!(!expires_soon(now + 14 * SECONDS_PER_DAY, now));
        assert!(expires_soon(now + 14 * SECONDS_PER_DAY - 1, now));
        assert!(!expires_soon(now, now));
    }
}

//! Unix time helpers shared by certificates and challenges.

use std::time::{SystemTime, UNIX_EPOCH};

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
}

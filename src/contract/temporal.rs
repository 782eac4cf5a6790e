//! Parsing dates and timestamps from text. Timestamps are stored as UTC microseconds; a value
//! without an offset is read in the column's time zone. A local time that does not exist (the hour
//! skipped when clocks spring forward) is an error; one that happens twice takes the earlier.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

pub fn check_format(format: &str, _with_time: bool) -> Result<(), String> {
    if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
        return Err("it contains an unknown % code".into());
    }
    Ok(())
}

fn days(d: NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(&d) - EPOCH_DAYS_FROM_CE
}

/// Days since 1970-01-01.
pub fn parse_date(text: &str, format: Option<&str>) -> Option<i32> {
    let text = text.trim();
    let date = match format {
        Some(f) => NaiveDate::parse_from_str(text, f).ok()?,
        None => fast_ymd(text.as_bytes())
            .or_else(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())?,
    };
    Some(days(date))
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut n = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    Some(n)
}

fn fast_ymd(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::from_ymd_opt(
        digits(&b[0..4])? as i32,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )
}

/// `YYYY-MM-DD HH:MM:SS` or with `T`, no fraction or offset: the common machine-written shape,
/// parsed without chrono's general parser because it dominates the cost on large files.
fn fast_naive(b: &[u8]) -> Option<NaiveDateTime> {
    if b.len() != 19 || (b[10] != b' ' && b[10] != b'T') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let date = fast_ymd(&b[..10])?;
    let time = NaiveTime::from_hms_opt(
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    )?;
    Some(date.and_time(time))
}

fn micros_of<Tz: TimeZone>(dt: &DateTime<Tz>) -> i64 {
    dt.timestamp_micros()
}

fn localize(naive: NaiveDateTime, tz: Option<chrono_tz::Tz>) -> Result<i64, String> {
    let Some(tz) = tz else {
        return Ok(naive.and_utc().timestamp_micros());
    };
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(dt) => Ok(micros_of(&dt)),
        LocalResult::Ambiguous(early, _) => Ok(micros_of(&early)),
        LocalResult::None => Err(format!("{naive} does not exist in {tz} (clocks skip it)")),
    }
}

/// UTC microseconds since the epoch.
pub fn parse_timestamp(
    text: &str,
    format: Option<&str>,
    tz: Option<chrono_tz::Tz>,
) -> Result<i64, String> {
    let text = text.trim();
    if let Some(format) = format {
        if format.contains("%z") || format.contains("%:z") || format.contains("%#z") {
            return DateTime::parse_from_str(text, format)
                .map(|d| micros_of(&d))
                .map_err(|e| e.to_string());
        }
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return localize(naive, tz);
        }
        return NaiveDate::parse_from_str(text, format)
            .map_err(|e| e.to_string())
            .and_then(|d| localize(d.and_time(NaiveTime::MIN), tz));
    }
    if let Some(naive) = fast_naive(text.as_bytes()) {
        return localize(naive, tz);
    }
    // `2013-01-01T10:00:00Z`, the most common export of an instant: UTC whatever the zone.
    if let Some(utc) = text
        .strip_suffix('Z')
        .filter(|t| t.as_bytes().get(10) == Some(&b'T'))
        .and_then(|t| fast_naive(t.as_bytes()))
    {
        return Ok(utc.and_utc().timestamp_micros());
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Ok(micros_of(&dt));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(text, f) {
            return Ok(micros_of(&dt));
        }
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, f) {
            return localize(naive, tz);
        }
    }
    if let Some(d) = fast_ymd(text.as_bytes()) {
        return localize(d.and_time(NaiveTime::MIN), tz);
    }
    Err("expected an ISO-8601 timestamp such as 2024-01-31 13:45:00 or 2024-01-31T13:45:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-02", None), Some(1));
        assert_eq!(parse_date("02/01/1970", Some("%d/%m/%Y")), Some(1));
        assert_eq!(parse_date("1970-02-30", None), None);
        assert_eq!(parse_date("hello", None), None);
    }

    #[test]
    fn timestamps_in_zones() {
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:01", None, None),
            Ok(1_000_000)
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z", None, None), Ok(0));
        assert_eq!(
            parse_timestamp("1970-01-01T01:00:00+01:00", None, None),
            Ok(0)
        );
        let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
        // 2013-01-01 05:00 New York is 10:00 UTC.
        let t = parse_timestamp("2013-01-01 05:00:00", None, Some(ny)).unwrap();
        assert_eq!(
            t,
            parse_timestamp("2013-01-01T10:00:00Z", None, None).unwrap()
        );
        // Spring forward: 02:30 does not exist on 2024-03-10 in New York.
        assert!(parse_timestamp("2024-03-10 02:30:00", None, Some(ny)).is_err());
        // Fall back: 01:30 happens twice on 2024-11-03; the earlier (EDT, UTC-4) is taken.
        let t = parse_timestamp("2024-11-03 01:30:00", None, Some(ny)).unwrap();
        assert_eq!(
            t,
            parse_timestamp("2024-11-03T05:30:00Z", None, None).unwrap()
        );
        assert_eq!(
            parse_timestamp("31/12/2024 23:59", Some("%d/%m/%Y %H:%M"), None),
            parse_timestamp("2024-12-31T23:59:00Z", None, None)
        );
        assert!(parse_timestamp("yesterday", None, None).is_err());
    }

    /// The shortcut for `…T…Z` must give what chrono's RFC 3339 parser gives, in any zone.
    #[test]
    fn utc_shortcut_agrees_with_rfc3339() {
        let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
        for text in [
            "2013-01-01T10:00:00Z",
            "1969-12-31T23:59:59Z",
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-12-31T23:59:60Z",
            "2024-12-31T24:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let chrono = DateTime::parse_from_rfc3339(text).map(|d| micros_of(&d));
            for tz in [None, Some(ny)] {
                assert_eq!(parse_timestamp(text, None, tz).ok(), chrono.ok(), "{text}");
            }
        }
    }
}

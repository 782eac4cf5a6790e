//! When a job runs: a cron expression evaluated in the job's time zone, or a fixed interval.
//!
//! DST policy: cron fields match local wall-clock times. A local time that does not exist
//! (spring forward) runs at the first instant after the gap; several such times collapse into
//! that one run. A local time that happens twice (fall back) runs once, at its first occurrence.

use std::time::Duration;

use chrono::{
    DateTime, Datelike, Duration as Span, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Cron(Cron),
    /// Every so often, aligned to the Unix epoch (a 15m job runs at :00, :15, :30, :45 UTC).
    Every(Duration),
}

/// A parsed cron expression: the set of allowed values of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: Vec<bool>,
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days_of_month: Vec<bool>,
    months: Vec<bool>,
    days_of_week: Vec<bool>,
    /// Both day fields restricted: a day matches if either does (classic cron).
    day_or: bool,
}

/// How far ahead to look for the next run before calling a schedule impossible (Feb 30).
const SEARCH_YEARS: i32 = 8;

impl Schedule {
    pub fn cron(text: &str) -> Result<Schedule, String> {
        Cron::parse(text).map(Schedule::Cron)
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(every) => {
                let step = every.as_millis().max(1) as i64;
                let t = after.timestamp_millis();
                let next = (t.div_euclid(step) + 1) * step;
                DateTime::from_timestamp_millis(next)
            }
            Schedule::Cron(cron) => {
                let mut local = after.with_timezone(&tz).naive_local();
                loop {
                    let candidate = cron.next_local_after(local)?;
                    if let Some(instant) = resolve_local(candidate, tz)
                        && instant > after
                    {
                        return Some(instant);
                    }
                    local = candidate;
                }
            }
        }
    }

    /// The runs in `(after, until]`, at most `cap` of them.
    pub fn between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        tz: Tz,
        cap: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < cap {
            match self.next_after(t, tz) {
                Some(next) if next <= until => {
                    out.push(next);
                    t = next;
                }
                _ => break,
            }
        }
        out
    }
}

/// A local wall-clock time as an instant: the first occurrence if it happens twice, the end of
/// the gap if it does not exist.
pub(crate) fn resolve_local(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // Walk forward to the first local minute that exists: the end of the gap.
            let mut probe = local.with_second(0)?;
            for _ in 0..(26 * 60) {
                probe += Span::minutes(1);
                if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
                    tz.from_local_datetime(&probe)
                {
                    return Some(t.with_timezone(&Utc));
                }
            }
            None
        }
    }
}

impl Cron {
    /// 5 fields (minute hour day month weekday), 6 (with seconds first), or an alias.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(format!(
                    "unknown schedule alias `{other}`; use @hourly, @daily, @weekly, @monthly or @yearly"
                ));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(format!(
                    "a cron schedule has 5 fields (minute hour day month weekday) or 6 (seconds first); found {n}"
                ));
            }
        };
        let seconds = field(sec, "second", 0, 59, &[])?;
        let minutes = field(rest[0], "minute", 0, 59, &[])?;
        let hours = field(rest[1], "hour", 0, 23, &[])?;
        let days_of_month = field(rest[2], "day of month", 1, 31, &[])?;
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        let months = field(rest[3], "month", 1, 12, &MONTHS)?;
        const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let mut days_of_week = field(rest[4], "day of week", 0, 7, &DAYS)?;
        // 7 is Sunday too.
        if days_of_week[7] {
            days_of_week[0] = true;
        }
        days_of_week.truncate(7);
        let day_or = !is_star(rest[2]) && !is_star(rest[4]);
        let cron = Cron {
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            day_or,
        };
        if !cron.can_ever_run() {
            return Err(format!(
                "`{text}` never runs: no month has that day (e.g. 30 February)"
            ));
        }
        Ok(cron)
    }

    fn can_ever_run(&self) -> bool {
        if self.day_or || self.days_of_month.iter().all(|d| *d) {
            return true;
        }
        // Month lengths in a leap year: 29 February counts.
        const DAYS_IN: [usize; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12).any(|m| self.months[m] && (1..=DAYS_IN[m - 1]).any(|d| self.days_of_month[d]))
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days_of_month[date.day() as usize];
        let dow = self.days_of_week[date.weekday().num_days_from_sunday() as usize];
        if self.day_or { dom || dow } else { dom && dow }
    }

    /// The first local time after `after` (strictly) that the fields match.
    fn next_local_after(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut t = after.with_nanosecond(0)? + Span::seconds(1);
        let limit = after.year() + SEARCH_YEARS;
        while t.year() <= limit {
            if !self.months[t.month() as usize] {
                let (y, m) = if t.month() == 12 {
                    (t.year() + 1, 1)
                } else {
                    (t.year(), t.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.hours[t.hour() as usize] {
                t = t.with_minute(0)?.with_second(0)? + Span::hours(1);
                continue;
            }
            if !self.minutes[t.minute() as usize] {
                t = t.with_second(0)? + Span::minutes(1);
                continue;
            }
            if !self.seconds[t.second() as usize] {
                t += Span::seconds(1);
                continue;
            }
            return Some(t);
        }
        None
    }
}

fn is_star(f: &str) -> bool {
    f == "*" || f == "?"
}

/// One cron field: `*`, `5`, `1-5`, `*/15`, `10-50/10`, lists of these, and names.
fn field(text: &str, what: &str, min: u32, max: u32, names: &[&str]) -> Result<Vec<bool>, String> {
    let mut allowed = vec![false; max as usize + 1];
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + if names.len() == 12 { 1 } else { 0 });
        }
        match s.parse::<u32>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(format!(
                "`{s}` is not a valid {what} (allowed: {min}-{max}{})",
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" or {}", names.join(", "))
                }
            )),
        }
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("`{s}` is not a valid step in the {what} field"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if is_star(range) {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("the {what} range `{range}` goes backwards"));
            }
            (a, b)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { max } else { v })
        };
        let mut v = lo;
        while v <= hi {
            allowed[v as usize] = true;
            v += step;
        }
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, tz: &str, after: &str) -> String {
        Schedule::cron(expr)
            .unwrap()
            .next_after(utc(after), tz.parse().unwrap())
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn daily_in_a_time_zone() {
        // 02:00 in Bogota (UTC-5) is 07:00 UTC.
        assert_eq!(
            next("0 2 * * *", "America/Bogota", "2026-11-25T08:00:00Z"),
            "2026-11-26T07:00:00+00:00"
        );
        assert_eq!(
            next("@daily", "UTC", "2026-11-25T00:00:00Z"),
            "2026-11-26T00:00:00+00:00"
        );
    }

    #[test]
    fn weekly_monthly_steps_lists_and_names() {
        // 2026-11-25 is a Wednesday; the next Monday 03:00 is the 30th.
        assert_eq!(
            next("0 3 * * 1", "UTC", "2026-11-25T10:00:00Z"),
            "2026-11-30T03:00:00+00:00"
        );
        assert_eq!(
            next("0 4 * * SUN", "UTC", "2026-11-25T10:00:00Z"),
            "2026-11-29T04:00:00+00:00"
        );
        assert_eq!(
            next("*/15 * * * *", "UTC", "2026-11-25T10:07:00Z"),
            "2026-11-25T10:15:00+00:00"
        );
        assert_eq!(
            next("0 0 1 * *", "UTC", "2026-11-25T10:07:00Z"),
            "2026-12-01T00:00:00+00:00"
        );
        assert_eq!(
            next("30 */10 * * * *", "UTC", "2026-11-25T10:07:00Z"),
            "2026-11-25T10:10:30+00:00"
        );
        assert_eq!(
            next("0 9 1,15 * mon-fri", "UTC", "2026-11-25T10:00:00Z"),
            "2026-11-26T09:00:00+00:00"
        );
    }

    #[test]
    fn a_time_skipped_by_spring_forward_runs_at_the_end_of_the_gap() {
        // 2026-03-08 02:30 does not exist in New York (02:00 EST -> 03:00 EDT = 07:00 UTC).
        assert_eq!(
            next("30 2 * * *", "America/New_York", "2026-03-08T05:00:00Z"),
            "2026-03-08T07:00:00+00:00"
        );
        // The next day it exists again: 02:30 EDT.
        assert_eq!(
            next("30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z"),
            "2026-03-09T06:30:00+00:00"
        );
        // Every quarter hour across the gap: the four missing times collapse into one run at
        // 03:00 EDT, and 03:00 itself does not run a second time.
        let s = Schedule::cron("*/15 * * * *").unwrap();
        let runs = s.between(
            utc("2026-03-08T06:30:00Z"),
            utc("2026-03-08T07:30:00Z"),
            chrono_tz::America::New_York,
            100,
        );
        let runs: Vec<String> = runs.iter().map(|t| t.to_rfc3339()).collect();
        assert_eq!(
            runs,
            [
                "2026-03-08T06:45:00+00:00",
                "2026-03-08T07:00:00+00:00",
                "2026-03-08T07:15:00+00:00",
                "2026-03-08T07:30:00+00:00"
            ]
        );
    }

    #[test]
    fn a_time_that_happens_twice_runs_once() {
        // 2026-11-01 01:30 happens at 05:30 UTC (EDT) and 06:30 UTC (EST) in New York.
        let s = Schedule::cron("30 1 * * *").unwrap();
        let runs = s.between(
            utc("2026-11-01T00:00:00Z"),
            utc("2026-11-02T12:00:00Z"),
            chrono_tz::America::New_York,
            100,
        );
        let runs: Vec<String> = runs.iter().map(|t| t.to_rfc3339()).collect();
        assert_eq!(
            runs,
            ["2026-11-01T05:30:00+00:00", "2026-11-02T06:30:00+00:00"]
        );
        // Hourly across the repeated hour: 01:00 runs once, 02:00 follows.
        let hourly = Schedule::cron("0 * * * *").unwrap().between(
            utc("2026-11-01T04:30:00Z"),
            utc("2026-11-01T07:30:00Z"),
            chrono_tz::America::New_York,
            100,
        );
        let hourly: Vec<String> = hourly.iter().map(|t| t.to_rfc3339()).collect();
        assert_eq!(
            hourly,
            ["2026-11-01T05:00:00+00:00", "2026-11-01T07:00:00+00:00"]
        );
    }

    #[test]
    fn every_is_aligned_to_the_epoch() {
        let s = Schedule::Every(Duration::from_secs(900));
        assert_eq!(
            s.next_after(utc("2026-11-25T10:07:00Z"), chrono_tz::UTC)
                .unwrap()
                .to_rfc3339(),
            "2026-11-25T10:15:00+00:00"
        );
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        let err = |e: &str| Cron::parse(e).unwrap_err();
        assert!(err("0 2 * *").contains("5 fields"), "{}", err("0 2 * *"));
        assert!(err("61 * * * *").contains("minute"));
        assert!(err("0 25 * * *").contains("hour"));
        assert!(err("0 0 30 2 *").contains("never runs"));
        assert!(err("0 0 * * funday").contains("day of week"));
        assert!(err("*/0 * * * *").contains("step"));
        assert!(err("@sometimes").contains("alias"));
        assert!(err("0 5-2 * * *").contains("backwards"));
    }
}

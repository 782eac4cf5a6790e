//! The period a metric run covers: the day, week (Monday to Monday) or month before its tick,
//! in the job's time zone, or the one containing a date for backfills.

use chrono::{Datelike, Days, Months, NaiveDate, NaiveDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodKind {
    PreviousDay,
    PreviousWeek,
    PreviousMonth,
    None,
}

impl PeriodKind {
    pub fn parse(s: &str) -> Option<PeriodKind> {
        Some(match s {
            "previous_day" => PeriodKind::PreviousDay,
            "previous_week" => PeriodKind::PreviousWeek,
            "previous_month" => PeriodKind::PreviousMonth,
            "none" => PeriodKind::None,
            _ => return None,
        })
    }
}

/// Local wall-clock bounds, start inclusive, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
}

fn midnight(d: NaiveDate) -> NaiveDateTime {
    d.and_hms_opt(0, 0, 0).unwrap_or_default()
}

impl Period {
    /// The period a run at local time `tick` covers: the one before the period holding `tick`.
    pub fn before(kind: PeriodKind, tick: NaiveDateTime) -> Option<Period> {
        let current = Period::containing(kind, tick.date())?;
        let previous_day = current.start.date().checked_sub_days(Days::new(1))?;
        Period::containing(kind, previous_day)
    }

    /// The period of `kind` that holds `date`.
    pub fn containing(kind: PeriodKind, date: NaiveDate) -> Option<Period> {
        let (start, end) = match kind {
            PeriodKind::None => return None,
            PeriodKind::PreviousDay => (date, date.checked_add_days(Days::new(1))?),
            PeriodKind::PreviousWeek => {
                let monday = date.checked_sub_days(Days::new(u64::from(
                    date.weekday().num_days_from_monday(),
                )))?;
                (monday, monday.checked_add_days(Days::new(7))?)
            }
            PeriodKind::PreviousMonth => {
                let first = date.with_day(1)?;
                (first, first.checked_add_months(Months::new(1))?)
            }
        };
        Some(Period {
            start: midnight(start),
            end: midnight(end),
        })
    }

    /// The periods from the one holding `from` to the one holding `to`, one after another.
    pub fn range(kind: PeriodKind, from: NaiveDate, to: NaiveDate) -> Vec<Period> {
        let mut out = Vec::new();
        let mut day = from;
        while day <= to {
            let Some(p) = Period::containing(kind, day) else {
                break;
            };
            out.push(p);
            day = p.end.date();
        }
        out
    }

    pub fn label(&self) -> String {
        format!(
            "{} .. {}",
            self.start.format("%Y-%m-%d %H:%M"),
            self.end.format("%Y-%m-%d %H:%M")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_period_before_a_tick() {
        let p = Period::before(PeriodKind::PreviousDay, at("2026-11-25 02:00")).unwrap();
        assert_eq!(
            (p.start, p.end),
            (at("2026-11-24 00:00"), at("2026-11-25 00:00"))
        );
        // Monday 2026-11-30 03:00: the week Mon 23 .. Mon 30.
        let p = Period::before(PeriodKind::PreviousWeek, at("2026-11-30 03:00")).unwrap();
        assert_eq!(
            (p.start, p.end),
            (at("2026-11-23 00:00"), at("2026-11-30 00:00"))
        );
        let p = Period::before(PeriodKind::PreviousMonth, at("2026-03-01 00:00")).unwrap();
        assert_eq!(
            (p.start, p.end),
            (at("2026-02-01 00:00"), at("2026-03-01 00:00"))
        );
        assert_eq!(
            Period::before(PeriodKind::None, at("2026-03-01 00:00")),
            None
        );
    }

    #[test]
    fn backfill_ranges() {
        let days = Period::range(
            PeriodKind::PreviousDay,
            day("2026-02-27"),
            day("2026-03-01"),
        );
        assert_eq!(days.len(), 3);
        assert_eq!(days[2].start, at("2026-03-01 00:00"));
        let weeks = Period::range(
            PeriodKind::PreviousWeek,
            day("2026-11-25"),
            day("2026-12-07"),
        );
        let starts: Vec<_> = weeks.iter().map(|p| p.start).collect();
        assert_eq!(
            starts,
            [
                at("2026-11-23 00:00"),
                at("2026-11-30 00:00"),
                at("2026-12-07 00:00")
            ]
        );
    }
}

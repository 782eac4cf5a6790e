//! `[jobs.NAME]`: scheduled metric and cleanup jobs.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono_tz::Tz;

use super::Destination;
use super::reader::{At, ValueReader};
use crate::jobs::period::PeriodKind;
use crate::jobs::schedule::Schedule;

#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub schedule: Schedule,
    /// The text the user wrote, for listings.
    pub schedule_text: String,
    pub timezone: Tz,
    pub kind: JobKind,
    /// A tick missed by at most this much (the daemon was down) still runs.
    pub misfire_grace: Duration,
    pub timeout: Option<Duration>,
    pub overlap: Overlap,
    pub catch_up: CatchUp,
    pub retries: Retries,
}

#[derive(Debug, Clone)]
pub enum JobKind {
    Metrics {
        period: PeriodKind,
        /// The SQLite destination that holds `calculated_metrics`.
        into: String,
        metrics: Vec<Metric>,
    },
    Cleanup(Retention),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// A tick that comes while the previous run still runs is recorded as skipped.
    Skip,
    /// It runs after the previous run.
    Queue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Only the most recent tick missed beyond `misfire_grace` runs.
    Latest,
    All,
    None,
}

#[derive(Debug, Clone, Copy)]
pub struct Retries {
    /// Runs in all, the first included.
    pub attempts: u32,
    pub backoff: Duration,
}

#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub description: Option<String>,
    pub unit: Option<String>,
    /// What the value is (count, sum, average, ratio, …); free text, shown with it.
    pub kind: String,
    /// The destination whose tables the SQL reads.
    pub source: String,
    pub sql: String,
    pub dimensions: Vec<String>,
    pub ttl: Option<Duration>,
}

#[derive(Debug, Clone, Default)]
pub struct Retention {
    pub expired_metrics: bool,
    pub runs: Option<Duration>,
    pub deliveries: Option<Duration>,
    pub processed_files: Option<Duration>,
    /// Lake table (in any lake destination) → age of partitions to keep.
    pub lake: BTreeMap<String, Duration>,
}

pub(super) fn job(
    name: &At<String>,
    value: &ValueReader<'_, '_, '_>,
    destinations: &BTreeMap<String, Destination>,
) -> Option<Job> {
    let t = value.table()?;
    let doc = t.doc;
    let schedule = match (t.get("schedule"), t.get("every")) {
        (Some(s), None) => s.str().and_then(|s| match Schedule::cron(&s.value) {
            Ok(parsed) => Some((parsed, s.value)),
            Err(e) => {
                doc.error_hint(
                    &s.span,
                    format!("job `{}`: {e}", name.value),
                    "examples: \"0 2 * * *\" (02:00 daily), \"0 3 * * 1\" (Mondays 03:00), \"@hourly\", or every = \"15m\"",
                );
                None
            }
        }),
        (None, Some(e)) => e.duration().and_then(|d| {
            if d.value.is_zero() {
                doc.error(&d.span, "`every` must be longer than zero");
                None
            } else {
                Some((Schedule::Every(d.value), format!("every {}", e.str()?.value)))
            }
        }),
        (Some(s), Some(_)) => {
            doc.error(
                &s.span(),
                format!(
                    "job `{}` has both `schedule` and `every`; keep one",
                    name.value
                ),
            );
            None
        }
        (None, None) => {
            doc.error_hint(
                &name.span,
                format!("job `{}` has no schedule", name.value),
                "add schedule = \"0 2 * * *\" (cron, 5 or 6 fields, or @daily) or every = \"15m\"",
            );
            None
        }
    };
    let timezone = match t.get("timezone").and_then(|v| v.str()) {
        Some(tz) => match tz.value.parse::<Tz>() {
            Ok(z) => Some(z),
            Err(_) => {
                doc.error_hint(
                    &tz.span,
                    format!("`{}` is not an IANA time zone", tz.value),
                    "write a name like \"UTC\", \"Europe/Madrid\" or \"America/Bogota\"",
                );
                None
            }
        },
        None => Some(Tz::UTC),
    };
    let kind = t
        .require("kind")
        .and_then(|v| v.choice(&["metrics", "cleanup"]));
    let misfire_grace = t
        .get("misfire_grace")
        .and_then(|v| v.duration())
        .map_or(Duration::from_secs(60), |d| d.value);
    let timeout = t.get("timeout").and_then(|v| v.duration()).map(|d| d.value);
    let overlap = match t.get("overlap").and_then(|v| v.choice(&["skip", "queue"])) {
        Some(o) if o.value == "queue" => Overlap::Queue,
        _ => Overlap::Skip,
    };
    let catch_up = match t
        .get("catch_up")
        .and_then(|v| v.choice(&["latest", "all", "none"]))
        .map(|c| c.value)
        .as_deref()
    {
        Some("all") => CatchUp::All,
        Some("none") => CatchUp::None,
        _ => CatchUp::Latest,
    };
    let mut retries = Retries {
        attempts: 1,
        backoff: Duration::from_secs(60),
    };
    if let Some(r) = t.get("retries").and_then(|v| v.table()) {
        match r.get("attempts").and_then(|v| v.int()) {
            Some(n) if (1..=100).contains(&n) => retries.attempts = n as u32,
            Some(_) => doc.error(&r.span, "retries.attempts must be between 1 and 100"),
            None => {}
        }
        if let Some(b) = r.get("backoff").and_then(|v| v.duration()) {
            retries.backoff = b.value;
        }
        r.finish();
    }

    let job_kind = match kind.as_ref().map(|k| k.value.as_str()) {
        Some("metrics") => {
            let period = match t.get("period").and_then(|v| {
                v.choice(&["previous_day", "previous_week", "previous_month", "none"])
            }) {
                Some(p) => PeriodKind::parse(&p.value),
                None => Some(PeriodKind::PreviousDay),
            };
            let into = metrics_into(name, &t.get("into"), destinations, doc);
            let mut metrics = Vec::new();
            if let Some(items) = t.require("metrics").and_then(|v| v.array()) {
                for item in items {
                    if let Some(m) = metric(name, &item, destinations) {
                        if metrics.iter().any(|o: &Metric| o.name == m.name) {
                            doc.error(
                                &item.span(),
                                format!("job `{}` defines metric `{}` twice", name.value, m.name),
                            );
                        }
                        metrics.push(m);
                    }
                }
            }
            match (period, into) {
                (Some(period), Some(into)) => Some(JobKind::Metrics {
                    period,
                    into,
                    metrics,
                }),
                _ => None,
            }
        }
        Some("cleanup") => {
            retention(name, &t.require("retain"), destinations, doc).map(JobKind::Cleanup)
        }
        _ => None,
    };
    t.finish();
    let (schedule, schedule_text) = schedule?;
    Some(Job {
        name: name.value.clone(),
        schedule,
        schedule_text,
        timezone: timezone?,
        kind: job_kind?,
        misfire_grace,
        timeout,
        overlap,
        catch_up,
        retries,
    })
}

/// The SQLite destination for `calculated_metrics`: `into`, or the only SQLite destination.
fn metrics_into(
    job: &At<String>,
    into: &Option<ValueReader<'_, '_, '_>>,
    destinations: &BTreeMap<String, Destination>,
    doc: &super::Document,
) -> Option<String> {
    let sqlite: Vec<&String> = destinations
        .iter()
        .filter(|(_, d)| matches!(d, Destination::Sqlite { .. }))
        .map(|(n, _)| n)
        .collect();
    match into.as_ref().and_then(|v| v.str()) {
        Some(name) => {
            if sqlite.contains(&&name.value) {
                Some(name.value)
            } else {
                doc.error_hint(
                    &name.span,
                    format!(
                        "job `{}` stores its metrics into `{}`, which is not a declared SQLite destination",
                        job.value, name.value
                    ),
                    format!(
                        "SQLite destinations: {}",
                        if sqlite.is_empty() {
                            "none; declare one under [destinations]".to_string()
                        } else {
                            sqlite
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                );
                None
            }
        }
        None if sqlite.len() == 1 => Some(sqlite[0].clone()),
        None => {
            doc.error_hint(
                &job.span,
                format!(
                    "job `{}` needs to know which SQLite destination holds calculated_metrics",
                    job.value
                ),
                "add into = \"<a sqlite destination>\" to the job",
            );
            None
        }
    }
}

fn metric(
    job: &At<String>,
    value: &ValueReader<'_, '_, '_>,
    destinations: &BTreeMap<String, Destination>,
) -> Option<Metric> {
    let t = value.table()?;
    let doc = t.doc;
    let name = t.require("name").and_then(|v| v.str());
    let description = t.str("description").map(|s| s.value);
    let unit = t.str("unit").map(|s| s.value);
    let kind = t
        .str("type")
        .map_or_else(|| "value".to_string(), |s| s.value);
    let source = t.require("source").and_then(|v| v.str());
    let sql = t.require("sql").and_then(|v| v.str());
    let dimensions = t
        .get("dimensions")
        .and_then(|v| v.str_list())
        .map(|l| l.into_iter().map(|s| s.value).collect())
        .unwrap_or_default();
    let ttl = t.get("ttl").and_then(|v| v.duration()).map(|d| d.value);
    t.finish();
    if let Some(s) = &source
        && !destinations.contains_key(&s.value)
    {
        let hint =
            match super::diagnostics::suggest(&s.value, destinations.keys().map(String::as_str)) {
                Some(close) => format!("did you mean \"{close}\"?"),
                None => "declare it under [destinations]".to_string(),
            };
        doc.error_hint(
            &s.span,
            format!(
                "job `{}`: metric source `{}` is not a declared destination",
                job.value, s.value
            ),
            hint,
        );
        return None;
    }
    if let Some(q) = &sql {
        let probe = crate::jobs::metrics::bind_period_placeholders(&q.value, None, Tz::UTC);
        if let Err(e) = crate::transform::check_query_syntax(&probe, std::iter::empty()) {
            doc.error(
                &q.span,
                format!("job `{}`: the metric's SQL does not parse: {e}", job.value),
            );
            return None;
        }
    }
    Some(Metric {
        name: name?.value,
        description,
        unit,
        kind,
        source: source?.value,
        sql: sql?.value,
        dimensions,
        ttl,
    })
}

fn retention(
    job: &At<String>,
    value: &Option<ValueReader<'_, '_, '_>>,
    destinations: &BTreeMap<String, Destination>,
    doc: &super::Document,
) -> Option<Retention> {
    let t = value.as_ref()?.table()?;
    let mut r = Retention::default();
    if let Some(m) = t.get("metrics") {
        match m.choice(&["expired", "keep"]) {
            Some(c) => r.expired_metrics = c.value == "expired",
            None => return None,
        }
    }
    r.runs = t.get("runs").and_then(|v| v.duration()).map(|d| d.value);
    r.deliveries = t
        .get("deliveries")
        .and_then(|v| v.duration())
        .map(|d| d.value);
    r.processed_files = t
        .get("processed_files")
        .and_then(|v| v.duration())
        .map(|d| d.value);
    if let Some(lake) = t.get("lake").and_then(|v| v.table()) {
        let has_lake = destinations
            .values()
            .any(|d| matches!(d, Destination::ParquetLake { .. }));
        for (table, age) in lake.entries() {
            if !has_lake {
                doc.error(
                    &table.span,
                    format!(
                        "job `{}` keeps lake table `{}`, but no parquet destination is declared",
                        job.value, table.value
                    ),
                );
            }
            if let Some(d) = age.duration() {
                r.lake.insert(table.value, d.value);
            }
        }
    }
    t.finish();
    Some(r)
}

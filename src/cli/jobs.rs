//! `caudal jobs list|run`, `caudal runs --job` and `caudal metrics`: jobs for people.

use chrono::{NaiveDate, Utc};

use caudal::config::{Destination, Job, JobKind, Project};
use caudal::error::{Error, Result};
use caudal::jobs::metrics::{ValueFilter, read_values};
use caudal::jobs::{RunRequest, run_job};
use caudal::ledger::{JobRun, Ledger, RunStatus};

fn find_job<'p>(project: &'p Project, name: &str) -> Result<&'p Job> {
    project.jobs.get(name).ok_or_else(|| {
        let known: Vec<&str> = project.jobs.keys().map(String::as_str).collect();
        Error::usage(format!(
            "no job named `{name}` in caudal.toml (jobs: {})",
            if known.is_empty() {
                "none; declare one under [jobs.NAME]".to_string()
            } else {
                known.join(", ")
            }
        ))
    })
}

fn kind_name(job: &Job) -> &'static str {
    match job.kind {
        JobKind::Metrics { .. } => "metrics",
        JobKind::Cleanup(_) => "cleanup",
    }
}

pub fn list(project: &Project, json: bool) -> Result<u8> {
    let ledger = Ledger::open(&project.state_dir)?;
    let now = Utc::now();
    let mut out = Vec::new();
    for job in project.jobs.values() {
        let next = job
            .schedule
            .between(now, chrono::DateTime::<Utc>::MAX_UTC, job.timezone, 5);
        let last = ledger.last_job_run(&job.name)?;
        out.push((job, next, last));
    }
    if json {
        let value: Vec<serde_json::Value> = out
            .iter()
            .map(|(job, next, last)| {
                serde_json::json!({
                    "name": job.name,
                    "kind": kind_name(job),
                    "schedule": job.schedule_text,
                    "timezone": job.timezone.name(),
                    "next_runs": next.iter().map(|t| serde_json::json!({
                        "local": t.with_timezone(&job.timezone).to_rfc3339(),
                        "utc": t.to_rfc3339(),
                    })).collect::<Vec<_>>(),
                    "last_run": last,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(|e| Error::Internal(e.to_string()))?
        );
        return Ok(0);
    }
    if out.is_empty() {
        println!("no jobs; declare one under [jobs.NAME] in caudal.toml");
        return Ok(0);
    }
    for (job, next, last) in out {
        println!(
            "{}  ({}, schedule \"{}\", time zone {})",
            job.name,
            kind_name(job),
            job.schedule_text,
            job.timezone.name()
        );
        match last {
            Some(run) => println!(
                "  last run: {} ({}, {}{})",
                run.status.as_str(),
                run.trigger,
                run.started_at,
                run.duration_ms
                    .map(|d| format!(", {d} ms"))
                    .unwrap_or_default()
            ),
            None => println!("  last run: never"),
        }
        println!("  next runs:");
        for t in next {
            println!(
                "    {}   {}",
                t.with_timezone(&job.timezone)
                    .format("%Y-%m-%d %H:%M:%S %Z"),
                t.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
    }
    Ok(0)
}

fn parse_date(flag: &str, text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        Error::usage(format!(
            "{flag} \"{text}\" is not a date; write it as YYYY-MM-DD"
        ))
    })
}

pub fn run(
    project: &Project,
    name: &str,
    date: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    json: bool,
) -> Result<u8> {
    let job = find_job(project, name)?;
    let requests = match (date, from, to) {
        (Some(d), None, None) => {
            let d = parse_date("--date", d)?;
            RunRequest::backfill(job, d, d)?
        }
        (None, Some(f), Some(t)) => {
            RunRequest::backfill(job, parse_date("--from", f)?, parse_date("--to", t)?)?
        }
        (None, None, None) => vec![RunRequest::manual(job, Utc::now())],
        (Some(_), _, _) => {
            return Err(Error::usage(
                "--date runs one period; use either --date D or --from D1 --to D2",
            ));
        }
        _ => {
            return Err(Error::usage(
                "--from and --to go together: --from 2026-11-01 --to 2026-11-07",
            ));
        }
    };
    let ledger = Ledger::open(&project.state_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))?;
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let mut all_ok = true;
    let mut runs = Vec::new();
    for request in &requests {
        let Some(run) = run_job(project, &ledger, &runtime, job, request, cancel_rx.clone())?
        else {
            continue;
        };
        all_ok &= run.status == RunStatus::Succeeded;
        if !json {
            print_run(&run);
        }
        runs.push(run);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&runs).map_err(|e| Error::Internal(e.to_string()))?
        );
    }
    Ok(if all_ok { 0 } else { 1 })
}

pub fn print_run(run: &JobRun) {
    let period = match (&run.period_start, &run.period_end) {
        (Some(s), Some(e)) => format!("  period {s} .. {e}"),
        _ => String::new(),
    };
    println!(
        "#{} {} {} ({}, attempt {}) {}{}{}",
        run.id,
        run.job,
        run.status.as_str(),
        run.trigger,
        run.attempt,
        run.started_at,
        run.duration_ms
            .map(|d| format!(", {d} ms"))
            .unwrap_or_default(),
        period
    );
    if let Some(s) = &run.summary {
        println!("    {s}");
    }
    if let Some(e) = &run.error {
        println!("    error: {e}");
    }
    for m in &run.metrics {
        println!(
            "    {:<40} {:<9} {:>7} rows {:>7} ms{}",
            m.metric,
            m.status.as_str(),
            m.rows,
            m.duration_ms,
            m.error
                .as_ref()
                .map(|e| format!("\n      {e}"))
                .unwrap_or_default()
        );
    }
}

pub fn history(project: &Project, job: &str, limit: usize, json: bool) -> Result<u8> {
    find_job(project, job)?;
    let ledger = Ledger::open(&project.state_dir)?;
    let runs = ledger.job_runs(Some(job), limit)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&runs).map_err(|e| Error::Internal(e.to_string()))?
        );
        return Ok(0);
    }
    if runs.is_empty() {
        println!("job {job} has not run yet");
    }
    for run in &runs {
        print_run(run);
    }
    Ok(0)
}

/// The SQLite destinations that may hold the metric: the one its job stores into first.
fn metric_databases(project: &Project, metric: &str) -> Vec<std::path::PathBuf> {
    let mut into: Vec<&String> = project
        .jobs
        .values()
        .filter_map(|j| match &j.kind {
            JobKind::Metrics { into, metrics, .. } if metrics.iter().any(|m| m.name == metric) => {
                Some(into)
            }
            _ => None,
        })
        .collect();
    into.extend(project.destinations.keys());
    into.dedup();
    into.into_iter()
        .filter_map(|name| match project.destinations.get(name) {
            Some(Destination::Sqlite { path }) if path.exists() => Some(path.clone()),
            _ => None,
        })
        .fold(Vec::new(), |mut acc, p| {
            if !acc.contains(&p) {
                acc.push(p);
            }
            acc
        })
}

pub fn metrics(
    project: &Project,
    name: &str,
    from: Option<&str>,
    to: Option<&str>,
    limit: usize,
    json: bool,
) -> Result<u8> {
    let from = from.map(|f| parse_date("--from", f)).transpose()?;
    let to = to.map(|t| parse_date("--to", t)).transpose()?;
    let mut values = Vec::new();
    let filter = ValueFilter {
        name,
        from,
        to,
        dimensions: &[],
        limit,
    };
    for db in metric_databases(project, name) {
        let rows = read_values(&db, &filter)?;
        values.extend(rows);
        if !values.is_empty() {
            break;
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&values).map_err(|e| Error::Internal(e.to_string()))?
        );
        return Ok(0);
    }
    if values.is_empty() {
        let job = project.jobs.values().find(|j| {
            matches!(&j.kind, JobKind::Metrics { metrics, .. } if metrics.iter().any(|m| m.name == name))
        });
        if let Some(job) = job {
            println!(
                "no values for {name} yet; run its job: caudal jobs run {} (add --date YYYY-MM-DD for a past period)",
                job.name
            );
        } else {
            return Err(Error::usage(format!(
                "no metric named `{name}` is defined in caudal.toml or stored in a warehouse"
            )));
        }
        return Ok(0);
    }
    println!(
        "{:<21} {:<21} {:>16}  dimensions",
        "period start", "period end", "value"
    );
    for v in values {
        let dims = match &v.dimensions {
            serde_json::Value::Object(m) if m.is_empty() => String::new(),
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)))
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        };
        println!(
            "{:<21} {:<21} {:>16}  {}",
            v.period_start.unwrap_or_else(|| "-".into()),
            v.period_end.unwrap_or_else(|| "-".into()),
            v.value.map_or("null".to_string(), |x| format!(
                "{}{}",
                trim_number(x),
                v.unit
                    .as_deref()
                    .map(|u| format!(" {u}"))
                    .unwrap_or_default()
            )),
            dims
        );
    }
    Ok(0)
}

fn trim_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

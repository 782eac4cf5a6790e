//! Cleanup jobs: expired metrics, old run and delivery history, old processed files and lake
//! partitions older than a table's retention. Everything removed is counted in the report.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::{Destination, Project, Retention};
use crate::error::{Context, Error, Result};
use crate::ledger::{Ledger, stamp};
use crate::sink::{open_connection, table_exists};

#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupReport {
    pub expired_metrics: u64,
    pub job_runs: u64,
    pub deliveries: u64,
    /// Alert notices sent (or given up on), under the deliveries' retention.
    pub alert_notices: u64,
    pub processed_files: u64,
    /// `<lake>/<table>/<column>=<value>` folders removed.
    pub lake_partitions: Vec<String>,
}

fn cutoff(age: Duration) -> chrono::DateTime<chrono::Utc> {
    let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
    chrono::Utc::now()
        .checked_sub_signed(age)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

pub fn run(project: &Project, ledger: &Ledger, retain: &Retention) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    if retain.expired_metrics {
        let now = stamp(chrono::Utc::now());
        for dest in project.destinations.values() {
            let Destination::Sqlite { path } = dest else {
                continue;
            };
            if !path.exists() {
                continue;
            }
            let conn = open_connection(path)?;
            if !table_exists(&conn, path, super::metrics::METRICS_TABLE)? {
                continue;
            }
            report.expired_metrics += conn
                .execute(
                    "DELETE FROM calculated_metrics WHERE expires_at IS NOT NULL AND expires_at < ?1",
                    [&now],
                )
                .context(|| format!("deleting expired metrics in {}", path.display()))?
                as u64;
        }
    }
    if let Some(age) = retain.runs {
        report.job_runs = ledger.delete_job_runs_before(&stamp(cutoff(age)))?;
    }
    if let Some(age) = retain.deliveries {
        report.deliveries = ledger.delete_deliveries_before(&stamp(cutoff(age)))?;
        report.alert_notices = ledger.delete_notifications_before(&stamp(cutoff(age)))?;
    }
    if let Some(age) = retain.processed_files {
        let before = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for p in project.pipelines.values() {
            let dir = p.source.path.join(crate::watch::PROCESSED);
            report.processed_files += remove_files_older(&dir, before)?;
        }
    }
    for (table, age) in &retain.lake {
        let oldest_kept = cutoff(*age).date_naive();
        for dest in project.destinations.values() {
            let Destination::ParquetLake { path, .. } = dest else {
                continue;
            };
            remove_partitions_before(&path.join(table), oldest_kept, &mut report)?;
        }
    }
    Ok(report)
}

fn remove_files_older(dir: &Path, before: SystemTime) -> Result<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            removed += remove_files_older(&path, before)?;
        } else if meta.modified().is_ok_and(|m| m < before) {
            std::fs::remove_file(&path)
                .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Date partitions (`column=YYYY-MM-DD`) of a lake table older than `oldest_kept`; partitions
/// whose value is not a date are never removed.
fn remove_partitions_before(
    table_dir: &Path,
    oldest_kept: chrono::NaiveDate,
    report: &mut CleanupReport,
) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(table_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some((_, value)) = name.split_once('=') else {
            continue;
        };
        let Ok(date) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") else {
            continue;
        };
        if date < oldest_kept && entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| Error::io(format!("removing {}", entry.path().display()), e))?;
            report
                .lake_partitions
                .push(entry.path().display().to_string());
        }
    }
    Ok(())
}

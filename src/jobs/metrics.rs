//! Metric jobs: each metric's SQL runs in DataFusion over its source destination, and its rows
//! replace that metric's rows for the period in `calculated_metrics`.

use std::time::Instant;

use datafusion::arrow::array::{Array, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use rusqlite::{Connection, params};
use serde::Serialize;

use chrono_tz::Tz;

use super::period::Period;
use super::schedule::resolve_local;
use crate::config::{Destination, Job, Metric, Project};
use crate::error::{Context, Error, Result};
use crate::sink::{open_connection, table_exists};

pub const METRICS_TABLE: &str = "calculated_metrics";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS calculated_metrics (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    value REAL,
    description TEXT,
    unit TEXT,
    dimensions TEXT NOT NULL,
    period_start TEXT,
    period_end TEXT,
    computed_at TEXT NOT NULL,
    expires_at TEXT,
    job TEXT,
    run_id INTEGER
);
CREATE INDEX IF NOT EXISTS calculated_metrics_by_name ON calculated_metrics (name, period_start);
";

/// How one metric of a run went.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MetricResult {
    pub metric: String,
    pub status: MetricStatus,
    pub rows: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricStatus {
    Succeeded,
    Failed,
}

impl MetricStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricStatus::Succeeded => "succeeded",
            MetricStatus::Failed => "failed",
        }
    }
}

/// The period placeholders of metric SQL, outside string literals: `:period_start` and
/// `:period_end` are the period's bounds as instants (local midnight in the job's zone, written
/// in UTC, to compare with timestamp columns); `:period_start_date` and `:period_end_date` are
/// its local dates (to compare with date columns such as a lake's partition column, which
/// prunes folders). Without a period they are null.
pub fn bind_period_placeholders(sql: &str, period: Option<&Period>, tz: Tz) -> String {
    let instant = |t: chrono::NaiveDateTime| match resolve_local(t, tz) {
        Some(t) => format!("TIMESTAMP '{}'", t.format("%Y-%m-%dT%H:%M:%S")),
        None => "CAST(NULL AS TIMESTAMP)".to_string(),
    };
    let bindings: [(&str, String); 4] = match period {
        Some(p) => [
            (
                ":period_start_date",
                format!("DATE '{}'", p.start.format("%Y-%m-%d")),
            ),
            (
                ":period_end_date",
                format!("DATE '{}'", p.end.format("%Y-%m-%d")),
            ),
            (":period_start", instant(p.start)),
            (":period_end", instant(p.end)),
        ],
        None => [
            (":period_start_date", "CAST(NULL AS DATE)".to_string()),
            (":period_end_date", "CAST(NULL AS DATE)".to_string()),
            (":period_start", "CAST(NULL AS TIMESTAMP)".to_string()),
            (":period_end", "CAST(NULL AS TIMESTAMP)".to_string()),
        ],
    };
    let ident_end = |s: &str| {
        s.chars()
            .next()
            .is_none_or(|n| !(n.is_ascii_alphanumeric() || n == '_'))
    };
    let mut out = String::with_capacity(sql.len() + 64);
    let mut in_string = false;
    let mut rest = sql;
    'scan: while let Some(c) = rest.chars().next() {
        if c == '\'' {
            in_string = !in_string;
        } else if !in_string && c == ':' {
            for (name, literal) in &bindings {
                if let Some(after) = rest.strip_prefix(name)
                    && ident_end(after)
                {
                    out.push_str(literal);
                    rest = after;
                    continue 'scan;
                }
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Run every metric of a job for `period`; a failing metric does not stop the others.
pub async fn run_metrics(
    project: &Project,
    job: &Job,
    into: &str,
    metrics: &[Metric],
    period: Option<&Period>,
    run_id: i64,
) -> Result<Vec<MetricResult>> {
    let Some(Destination::Sqlite { path: warehouse }) = project.destinations.get(into) else {
        return Err(Error::Internal(format!(
            "metrics destination {into} is not SQLite after validation"
        )));
    };
    let mut results = Vec::with_capacity(metrics.len());
    // One session per source destination for the whole run: tables are listed and registered
    // once, and the session's caches (Parquet footers) serve every metric.
    let mut sessions: std::collections::HashMap<&str, datafusion::prelude::SessionContext> =
        std::collections::HashMap::new();
    for metric in metrics {
        let started = Instant::now();
        let ctx = sessions
            .entry(metric.source.as_str())
            .or_insert_with(crate::transform::analytics_session);
        let outcome = compute(ctx, project, metric, period, job.timezone)
            .await
            .and_then(|rows| {
                let conn = open_connection(warehouse)?;
                store(&conn, &job.name, run_id, metric, period, &rows)
            });
        let duration_ms = started.elapsed().as_millis() as u64;
        let result = match outcome {
            Ok(rows) => MetricResult {
                metric: metric.name.clone(),
                status: MetricStatus::Succeeded,
                rows,
                duration_ms,
                error: None,
            },
            Err(e) => MetricResult {
                metric: metric.name.clone(),
                status: MetricStatus::Failed,
                rows: 0,
                duration_ms,
                error: Some(e.to_string()),
            },
        };
        tracing::info!(job = %job.name, metric = %metric.name, status = result.status.as_str(), rows = result.rows, ms = duration_ms, error = result.error.as_deref().unwrap_or(""), "metric");
        results.push(result);
    }
    Ok(results)
}

/// One computed row: the value and its dimensions as a JSON object.
struct MetricRow {
    value: Option<f64>,
    dimensions: String,
}

async fn compute(
    ctx: &datafusion::prelude::SessionContext,
    project: &Project,
    metric: &Metric,
    period: Option<&Period>,
    tz: Tz,
) -> Result<Vec<MetricRow>> {
    let context = format!("metric `{}`", metric.name);
    let Some(source) = project.destinations.get(&metric.source) else {
        return Err(Error::Internal(format!(
            "destination {} vanished after validation",
            metric.source
        )));
    };
    let sql = bind_period_placeholders(&metric.sql, period, tz);
    super::tables::register_tables(ctx, source, &sql).await?;
    let df = ctx.sql(&sql).await.map_err(|e| Error::Transform {
        context: context.clone(),
        message: e.to_string(),
    })?;
    let batches = df.collect().await.map_err(|e| Error::Transform {
        context: context.clone(),
        message: e.to_string(),
    })?;
    let mut rows = Vec::new();
    for batch in &batches {
        rows.extend(metric_rows(metric, batch)?);
    }
    Ok(rows)
}

fn metric_rows(metric: &Metric, batch: &RecordBatch) -> Result<Vec<MetricRow>> {
    let schema = batch.schema();
    let bad = |message: String| Error::Usage {
        message: format!("metric `{}`: {message}", metric.name),
    };
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let Some(value_at) = names.iter().position(|n| *n == "value") else {
        return Err(bad(format!(
            "the SQL must return a column named `value` (it returns {})",
            names.join(", ")
        )));
    };
    for name in &names {
        if *name != "value" && !metric.dimensions.iter().any(|d| d == name) {
            return Err(bad(format!(
                "the SQL returns column `{name}`, which is not `value` nor a listed dimension; add it to dimensions or leave it out"
            )));
        }
    }
    let mut dimension_columns = Vec::new();
    for d in &metric.dimensions {
        let Some(at) = names.iter().position(|n| n == d) else {
            return Err(bad(format!(
                "dimension `{d}` is not among the columns the SQL returns ({})",
                names.join(", ")
            )));
        };
        let text = cast(batch.column(at), &DataType::Utf8)
            .map_err(|e| bad(format!("dimension `{d}` cannot be shown as text: {e}")))?;
        dimension_columns.push((d.clone(), text));
    }
    let values = cast(batch.column(value_at), &DataType::Float64).map_err(|e| {
        bad(format!(
            "`value` must be a number, but it is {}: {e}",
            batch.column(value_at).data_type()
        ))
    })?;
    let Some(values) = values.as_any().downcast_ref::<Float64Array>() else {
        return Err(Error::Internal("cast to Float64 gave another type".into()));
    };
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut dims = serde_json::Map::new();
        for (name, col) in &dimension_columns {
            let value = col
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .filter(|c| c.is_valid(row))
                .map_or(serde_json::Value::Null, |c| {
                    serde_json::Value::String(c.value(row).to_string())
                });
            dims.insert(name.clone(), value);
        }
        out.push(MetricRow {
            value: values.is_valid(row).then(|| values.value(row)),
            dimensions: serde_json::Value::Object(dims).to_string(),
        });
    }
    Ok(out)
}

fn period_text(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Replace the metric's rows for this period, in one transaction.
fn store(
    conn: &Connection,
    job: &str,
    run_id: i64,
    metric: &Metric,
    period: Option<&Period>,
    rows: &[MetricRow],
) -> Result<u64> {
    conn.execute_batch(SCHEMA)
        .context(|| format!("creating {METRICS_TABLE}"))?;
    let now = chrono::Utc::now();
    let computed_at = crate::ledger::stamp(now);
    let expires_at = metric.ttl.and_then(|ttl| {
        chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .map(crate::ledger::stamp)
    });
    let start = period.map(|p| period_text(p.start));
    let end = period.map(|p| period_text(p.end));
    let tx = conn
        .unchecked_transaction()
        .context(|| format!("writing {METRICS_TABLE}"))?;
    tx.execute(
        "DELETE FROM calculated_metrics WHERE name = ?1 AND period_start IS ?2 AND period_end IS ?3",
        params![metric.name, start, end],
    )
    .context(|| format!("replacing {} in {METRICS_TABLE}", metric.name))?;
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO calculated_metrics (name, type, value, description, unit, dimensions, period_start, period_end, computed_at, expires_at, job, run_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .context(|| format!("writing {METRICS_TABLE}"))?;
        for row in rows {
            insert
                .execute(params![
                    metric.name,
                    metric.kind,
                    row.value,
                    metric.description,
                    metric.unit,
                    row.dimensions,
                    start,
                    end,
                    computed_at,
                    expires_at,
                    job,
                    run_id
                ])
                .context(|| format!("writing {} into {METRICS_TABLE}", metric.name))?;
        }
    }
    tx.commit()
        .context(|| format!("committing {} into {METRICS_TABLE}", metric.name))?;
    Ok(rows.len() as u64)
}

/// A stored value of a calculated metric.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CalculatedValue {
    pub name: String,
    pub r#type: String,
    pub value: Option<f64>,
    pub unit: Option<String>,
    #[schema(value_type = Object)]
    pub dimensions: serde_json::Value,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub computed_at: String,
    pub expires_at: Option<String>,
}

/// Which stored values to read: one metric, periods starting from `from` to `to` (dates,
/// inclusive), dimensions equal to the given values.
pub struct ValueFilter<'a> {
    pub name: &'a str,
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
    pub dimensions: &'a [(String, String)],
    pub limit: usize,
}

/// The metric's values in one warehouse, newest period first (none when it has no
/// `calculated_metrics` yet).
pub fn read_values(db: &std::path::Path, filter: &ValueFilter<'_>) -> Result<Vec<CalculatedValue>> {
    let conn = open_connection(db)?;
    if !table_exists(&conn, db, METRICS_TABLE)? {
        return Ok(Vec::new());
    }
    let mut sql = String::from(
        "SELECT name, type, value, unit, dimensions, period_start, period_end, computed_at, expires_at FROM calculated_metrics
         WHERE name = ?1 AND (?2 IS NULL OR period_start >= ?2) AND (?3 IS NULL OR period_start < ?3)",
    );
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    let mut args: Vec<Box<dyn rusqlite::ToSql>> = vec![
        Box::new(filter.name.to_string()),
        Box::new(filter.from.map(day)),
        Box::new(filter.to.and_then(|t| t.succ_opt()).map(day)),
        Box::new(filter.limit as i64),
    ];
    for (i, (key, value)) in filter.dimensions.iter().enumerate() {
        sql.push_str(&format!(
            " AND json_extract(dimensions, ?{}) = ?{}",
            5 + 2 * i,
            6 + 2 * i
        ));
        args.push(Box::new(format!("$.\"{}\"", key.replace('"', ""))));
        args.push(Box::new(value.clone()));
    }
    sql.push_str(" ORDER BY period_start DESC, value DESC, dimensions LIMIT ?4");
    let mut stmt = conn
        .prepare(&sql)
        .context(|| format!("reading {METRICS_TABLE} in {}", db.display()))?;
    stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        let dims: String = r.get(4)?;
        Ok(CalculatedValue {
            name: r.get(0)?,
            r#type: r.get(1)?,
            value: r.get(2)?,
            unit: r.get(3)?,
            dimensions: serde_json::from_str(&dims).unwrap_or(serde_json::Value::String(dims)),
            period_start: r.get(5)?,
            period_end: r.get(6)?,
            computed_at: r.get(7)?,
            expires_at: r.get(8)?,
        })
    })
    .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
    .context(|| format!("reading {METRICS_TABLE} in {}", db.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_bound_outside_strings_only() {
        let day = |d| {
            chrono::NaiveDate::from_ymd_opt(2026, 11, d)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
        };
        let p = Period {
            start: day(24),
            end: day(25),
        };
        let sql = "SELECT ':period_start' FROM t WHERE ts >= :period_start AND ts < :period_end AND d >= :period_start_date AND d < :period_end_date AND x = :period_startx";
        // Midnight in Madrid (UTC+1 in November) is 23:00 UTC the day before.
        assert_eq!(
            bind_period_placeholders(sql, Some(&p), chrono_tz::Europe::Madrid),
            "SELECT ':period_start' FROM t WHERE ts >= TIMESTAMP '2026-11-23T23:00:00' AND ts < TIMESTAMP '2026-11-24T23:00:00' AND d >= DATE '2026-11-24' AND d < DATE '2026-11-25' AND x = :period_startx"
        );
        assert!(
            bind_period_placeholders(sql, None, chrono_tz::UTC).contains("CAST(NULL AS TIMESTAMP)")
        );
    }
}

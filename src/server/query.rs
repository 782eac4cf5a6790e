//! `POST /api/v1/query`: one read-only SELECT over the warehouse and lake tables, with a row cap
//! and a timeout.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use super::problem::{ApiError, ApiResult};
use crate::config::Project;

pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    pub truncated: bool,
}

/// Only a query (SELECT, WITH, VALUES …) passes; anything that could write is refused.
fn read_only(sql: &str) -> ApiResult<()> {
    let statements = DFParser::parse_sql(sql)
        .map_err(|e| ApiError::bad_request(format!("the SQL does not parse: {e}")))?;
    if statements.len() != 1 {
        return Err(ApiError::bad_request(format!(
            "send one statement; found {}",
            statements.len()
        )));
    }
    match &statements[0] {
        Statement::Statement(s) if matches!(**s, SqlStatement::Query(_)) => Ok(()),
        _ => Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "read_only",
            "only SELECT queries are allowed here; this endpoint never writes",
        )),
    }
}

pub async fn run(
    project: &Project,
    sql: &str,
    max_rows: usize,
    timeout: std::time::Duration,
) -> ApiResult<QueryOutput> {
    read_only(sql)?;
    let work = async {
        let ctx = crate::transform::analytics_session();
        crate::jobs::register_for_query(&ctx, project, sql).await?;
        let df = ctx
            .sql(sql)
            .await
            .map_err(|e| crate::error::Error::Transform {
                context: "query".into(),
                message: e.to_string(),
            })?;
        let limited =
            df.limit(0, Some(max_rows + 1))
                .map_err(|e| crate::error::Error::Transform {
                    context: "query".into(),
                    message: e.to_string(),
                })?;
        limited
            .collect()
            .await
            .map_err(|e| crate::error::Error::Transform {
                context: "query".into(),
                message: e.to_string(),
            })
    };
    let batches = tokio::time::timeout(timeout, work).await.map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the query ran longer than {timeout:?} and was cancelled"),
        )
    })??;
    to_json(&batches, max_rows)
}

fn to_json(batches: &[RecordBatch], max_rows: usize) -> ApiResult<QueryOutput> {
    let columns: Vec<String> = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    // Explicit nulls: a NULL is `"n": null`, not a missing key.
    let mut writer = datafusion::arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, datafusion::arrow::json::writer::JsonArray>(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    writer
        .write_batches(&refs)
        .and_then(|()| writer.finish())
        .map_err(|e| ApiError::bad_request(format!("the result cannot be shown as JSON: {e}")))?;
    let bytes = writer.into_inner();
    let mut rows: Vec<serde_json::Map<String, serde_json::Value>> = if bytes.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!("the result cannot be shown as JSON: {e}"))
        })?
    };
    let truncated = rows.len() > max_rows;
    rows.truncate(max_rows);
    Ok(QueryOutput {
        columns,
        rows,
        truncated,
    })
}

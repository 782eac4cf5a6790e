//! SQL transforms in DataFusion over the table `input`, which streams the delivery's valid rows:
//! row-wise transforms run batch by batch in bounded memory, aggregations see the whole delivery.

use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use tokio::sync::mpsc;

use crate::config::{Format, Project};
use crate::error::{Error, Result};

pub const INPUT_TABLE: &str = "input";

/// A session whose identifiers keep their case: CSV headers are often mixed-case, and a user
/// writing `Total` means the column `Total`. One partition: the input is one ordered stream,
/// and repartitioning it would cost buffers (measured: ~60 MB on flights) and row order for
/// little gain on a row-wise transform.
pub fn session() -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(65_536);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    SessionContext::new_with_config(config)
}

/// For metric queries: every core, identifiers keep their case. No statistics gathering at
/// planning: it reads every file's footer up front (thousands in a lake of small daily files)
/// to plan aggregations that do not need them.
pub fn analytics_session() -> SessionContext {
    let mut config = SessionConfig::new();
    config.options_mut().sql_parser.enable_ident_normalization = false;
    config.options_mut().execution.collect_statistics = false;
    SessionContext::new_with_config(config)
}

/// A session with the project's reference tables registered under their names.
pub async fn session_with_references(project: &Project) -> Result<SessionContext> {
    let ctx = session();
    for (name, reference) in &project.references {
        let path = reference.path.to_string_lossy().to_string();
        let registered = match reference.format {
            Format::Parquet => {
                ctx.register_parquet(name, &path, ParquetReadOptions::default())
                    .await
            }
            _ => ctx.register_csv(name, &path, CsvReadOptions::new()).await,
        };
        registered.map_err(|e| Error::Transform {
            context: format!("reference table `{name}` ({})", reference.path.display()),
            message: e.to_string(),
        })?;
    }
    Ok(ctx)
}

/// Parse-only check used by `caudal validate`: one SELECT statement.
pub fn check_query_syntax<'a>(
    sql: &str,
    _references: impl Iterator<Item = &'a String>,
) -> std::result::Result<(), String> {
    let statements = DFParser::parse_sql(sql).map_err(|e| e.to_string())?;
    if statements.len() != 1 {
        return Err(format!(
            "expected one statement, found {}",
            statements.len()
        ));
    }
    match &statements[0] {
        Statement::Statement(s)
            if matches!(**s, datafusion::sql::sqlparser::ast::Statement::Query(_)) =>
        {
            Ok(())
        }
        _ => Err("only a SELECT query is allowed".into()),
    }
}

pub fn check_expression_syntax(expr: &str) -> std::result::Result<(), String> {
    check_query_syntax(&format!("SELECT ({expr}) FROM t"), std::iter::empty())
}

/// Feeds the delivery's batches into DataFusion as the `input` table, once.
#[derive(Debug)]
struct ChannelPartition {
    schema: SchemaRef,
    receiver: Mutex<Option<mpsc::Receiver<RecordBatch>>>,
}

impl PartitionStream for ChannelPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let receiver = self.receiver.lock().ok().and_then(|mut r| r.take());
        let stream = futures::stream::unfold(receiver, |receiver| async move {
            let mut receiver = receiver?;
            let batch = receiver.recv().await?;
            Some((Ok(batch), Some(receiver)))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// Plan `sql` over a streamed `input` of `schema`. Send batches into the returned sender and
/// read results from the returned stream; dropping the sender ends the input.
pub async fn start(
    ctx: &SessionContext,
    pipeline: &str,
    sql: &str,
    schema: SchemaRef,
) -> Result<(mpsc::Sender<RecordBatch>, SendableRecordBatchStream)> {
    let (tx, rx) = mpsc::channel(2);
    let partition = Arc::new(ChannelPartition {
        schema: schema.clone(),
        receiver: Mutex::new(Some(rx)),
    });
    let sql_error = |e: datafusion::error::DataFusionError| Error::Transform {
        context: format!("pipeline `{pipeline}`: transform"),
        message: e.to_string(),
    };
    let table = StreamingTable::try_new(schema, vec![partition]).map_err(sql_error)?;
    ctx.deregister_table(INPUT_TABLE).map_err(sql_error)?;
    ctx.register_table(INPUT_TABLE, Arc::new(table))
        .map_err(sql_error)?;
    let frame = ctx.sql(sql).await.map_err(sql_error)?;
    let stream = frame.execute_stream().await.map_err(sql_error)?;
    Ok((tx, stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_checks() {
        assert!(check_query_syntax("SELECT *, a + 1 AS b FROM input", std::iter::empty()).is_ok());
        assert!(check_query_syntax("DELETE FROM input", std::iter::empty()).is_err());
        assert!(check_query_syntax("SELEC * FROM input", std::iter::empty()).is_err());
        assert!(check_query_syntax("SELECT 1; SELECT 2", std::iter::empty()).is_err());
        assert!(check_expression_syntax("abs(total - qty * price) < 0.01").is_ok());
        assert!(check_expression_syntax("total >").is_err());
    }
}

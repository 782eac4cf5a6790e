//! Sinks commit a delivery idempotently, in two phases: `prepare` finishes everything that bad
//! input can fail, invisibly (an open SQLite transaction, closed staging files), and `commit`
//! makes it durable and publishes it together with a marker keyed by the load id. A delivery
//! re-run after a crash finds the marker and skips the sink, so no row is written twice.

mod lake;
mod sqlite;
mod text;
mod writeback;

use datafusion::arrow::record_batch::RecordBatch;

use crate::config::{Destination, LoadSpec, Project};
use crate::error::Result;

pub use lake::recover_lake;
pub use sqlite::{open_connection, open_keeper, quote, table_exists};

/// What a sink receives during a delivery.
pub enum SinkInput {
    Rows(RecordBatch),
    Rejects(RecordBatch),
}

/// One destination's writer for one delivery (possibly several tables of it).
pub trait DeliveryWriter: Send {
    fn write(&mut self, input: SinkInput) -> Result<()>;
    /// Finish everything that can fail for a reason other than the disk, without making the
    /// delivery visible; after this only `commit` or `abort`.
    fn prepare(&mut self) -> Result<()>;
    /// Make the delivery durable and publish it, together with the load's marker.
    fn commit(self: Box<Self>) -> Result<()>;
    /// Forget everything written for this delivery.
    fn abort(self: Box<Self>);
}

/// Identity of the delivery a writer works for.
#[derive(Debug, Clone)]
pub struct LoadContext {
    pub load_id: String,
    pub pipeline: String,
    pub source: String,
}

/// A writer for `destination`, or `None` when this load was already committed there.
pub fn open_writer(
    project: &Project,
    destination: &str,
    loads: &[LoadSpec],
    ctx: &LoadContext,
) -> Result<Option<Box<dyn DeliveryWriter>>> {
    let Some(dest) = project.destinations.get(destination) else {
        return Err(crate::error::Error::Internal(format!(
            "destination {destination} vanished after validation"
        )));
    };
    Ok(match dest {
        Destination::Sqlite { path } => sqlite::SqliteWriter::open(path, loads, ctx)?
            .map(|w| Box::new(w) as Box<dyn DeliveryWriter>),
        Destination::ParquetLake { path, zstd_level } => {
            lake::LakeWriter::open(path, *zstd_level, loads, ctx)?
                .map(|w| Box::new(w) as Box<dyn DeliveryWriter>)
        }
    })
}

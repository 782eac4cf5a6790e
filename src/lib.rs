//! caudal: a single-binary data pipeline engine. Files are decoded into Arrow batches, checked
//! against a data contract, transformed with SQL (DataFusion) and loaded exactly once into SQLite
//! and a partitioned Parquet lake, with every delivery recorded in a ledger.

pub mod alerts;
pub mod config;
pub mod contract;
pub mod decode;
pub mod demo;
pub mod error;
pub mod jobs;
pub mod ledger;
mod nulls;
pub mod pipeline;
pub mod scaffold;
pub mod server;
pub mod sink;
pub mod source;
pub mod transform;
pub mod watch;

pub use error::{Error, ErrorClass, Result};

//! Decoders turn one input file into a stream of `RawBatch`es: Arrow arrays named by the file's
//! own header, with each row's position in the file and the structural problems found while
//! reading (ragged rows, blank rows). Typing against the contract happens afterwards, vectorised.

mod csv;
mod input;
mod json;
mod json_stream;
mod parquet;

use std::path::Path;

use datafusion::arrow::array::ArrayRef;

use crate::config::{Format, SourceSpec};
use crate::contract::Violation;
use crate::error::{Error, Result};

pub use self::csv::MAX_RECORD_BYTES;

pub use input::{ContentHash, FileFingerprint, PendingFingerprint, fingerprint};

/// One batch of rows as read from the file.
pub struct RawBatch {
    /// One array per header column: Utf8 for text formats, the file's own types for Parquet.
    pub columns: Vec<ArrayRef>,
    /// 1-based line where each row starts (the record number for formats without lines).
    pub lines: Vec<u64>,
    /// Frictionless row number of each row (header = row 1); equals the line unless records
    /// span lines.
    pub rows: Vec<u64>,
    /// Structural problems (missing-cell, extra-cell, blank-row), with the row they belong to.
    pub problems: Vec<Violation>,
    /// For each row, whether a structural problem already makes it invalid.
    pub structurally_bad: Vec<bool>,
}

impl RawBatch {
    pub fn num_rows(&self) -> usize {
        self.lines.len()
    }
}

/// What a decoder knows before the first batch: the column names and header-level problems.
pub struct Header {
    pub names: Vec<String>,
    /// blank-label, duplicate-label: these make a file unloadable, but `check` lists them all.
    pub problems: Vec<Violation>,
}

pub trait Decoder: Send {
    fn header(&self) -> &Header;
    /// The next batch, `None` at the end. An `Err` is a problem that stops reading the file.
    fn next_batch(&mut self) -> Result<Option<RawBatch>>;
    /// Problems found after the last batch (blank lines between records, reported late).
    fn take_trailing_problems(&mut self) -> Vec<Violation> {
        Vec::new()
    }
    /// Bytes of input consumed so far, for progress reporting.
    fn bytes_read(&self) -> u64;
}

/// Open a decoder for one file. `declared` lists the contract's columns, used to name columns of
/// header-less CSV files.
pub fn open(path: &Path, source: &SourceSpec, declared: &[String]) -> Result<Box<dyn Decoder>> {
    let format = source
        .format
        .or_else(|| Format::from_path(path))
        .ok_or_else(|| {
            Error::input_with_hint(
                path,
                None,
                "cannot tell the file format from its name",
                "set format = \"csv\" | \"ndjson\" | \"json\" | \"parquet\" on the pipeline's source",
            )
        })?;
    Ok(match format {
        Format::Csv => Box::new(csv::CsvDecoder::open(
            path,
            &source.csv,
            source.batch_rows,
            declared,
        )?),
        Format::Ndjson => Box::new(json::JsonDecoder::open_lines(path, source, declared)?),
        Format::Json => Box::new(json::JsonDecoder::open_document(path, source, declared)?),
        Format::Parquet => Box::new(parquet::ParquetDecoder::open(path, source.batch_rows)?),
    })
}

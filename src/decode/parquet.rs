//! Parquet files arrive typed; the contract casts their columns like any other input.

use std::path::{Path, PathBuf};

use datafusion::parquet::arrow::arrow_reader::{
    ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};

use super::input::open_file;
use super::{Decoder, Header, RawBatch};
use crate::error::{Error, Result};

pub struct ParquetDecoder {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    header: Header,
    rows: u64,
    bytes_total: u64,
    rows_total: u64,
}

impl ParquetDecoder {
    pub fn open(path: &Path, batch_rows: usize) -> Result<Self> {
        let file = open_file(path)?;
        let bytes_total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let not_parquet = |e: datafusion::parquet::errors::ParquetError| {
            Error::input_with_hint(
                path,
                None,
                format!("not a readable Parquet file: {e}"),
                "check the file is complete Parquet (a file still being written has no footer yet)",
            )
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(not_parquet)?;
        let rows_total = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let names = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let reader = builder
            .with_batch_size(batch_rows)
            .build()
            .map_err(not_parquet)?;
        Ok(ParquetDecoder {
            path: path.to_path_buf(),
            reader,
            header: Header {
                names,
                problems: Vec::new(),
            },
            rows: 0,
            bytes_total,
            rows_total,
        })
    }
}

impl Decoder for ParquetDecoder {
    fn header(&self) -> &Header {
        &self.header
    }

    fn bytes_read(&self) -> u64 {
        if self.rows_total == 0 {
            return 0;
        }
        (self.bytes_total as f64 * self.rows as f64 / self.rows_total as f64) as u64
    }

    fn next_batch(&mut self) -> Result<Option<RawBatch>> {
        let Some(batch) = self.reader.next() else {
            return Ok(None);
        };
        let batch = batch
            .map_err(|e| Error::input(&self.path, None, format!("corrupt Parquet data: {e}")))?;
        let n = batch.num_rows() as u64;
        let lines: Vec<u64> = (self.rows + 1..=self.rows + n).collect();
        self.rows += n;
        Ok(Some(RawBatch {
            columns: batch.columns().to_vec(),
            rows: lines.clone(),
            lines,
            problems: Vec::new(),
            structurally_bad: vec![false; n as usize],
        }))
    }
}

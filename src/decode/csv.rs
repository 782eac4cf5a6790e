//! CSV → Arrow string columns, through the `csv` crate because its record positions give the
//! exact file line of every row, which reports need.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use csv::ByteRecord;
use datafusion::arrow::array::{ArrayRef, StringBuilder};
use std::sync::Arc;

use super::input::{Latin1ToUtf8, open_decompressed};
use super::{Decoder, Header, RawBatch};
use crate::config::{CsvOptions, Encoding};
use crate::contract::Violation;
use crate::error::{Error, Result};

/// Remembers the last bytes read, to tell whether the file ended inside a quoted field.
struct TailReader<R> {
    inner: R,
    tail: [u8; 8],
    tail_len: usize,
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for TailReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.bytes
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            let take = n.min(8);
            let keep = (8 - take).min(self.tail_len);
            let mut next = [0u8; 8];
            next[..keep].copy_from_slice(&self.tail[self.tail_len - keep..self.tail_len]);
            next[keep..keep + take].copy_from_slice(&buf[n - take..n]);
            self.tail = next;
            self.tail_len = keep + take;
        }
        Ok(n)
    }
}

pub struct CsvDecoder {
    path: PathBuf,
    reader: csv::Reader<TailReader<Box<dyn Read + Send>>>,
    header: Header,
    null_values: Vec<Vec<u8>>,
    quote: u8,
    batch_rows: usize,
    max_record_bytes: usize,
    record: ByteRecord,
    /// Frictionless row number of the next record (the header is row 1).
    next_row: u64,
    /// The line the next record should start on, to find blank lines the reader skipped.
    expected_line: u64,
    /// The last record's first line and whether its last field spanned lines.
    last_record: Option<(u64, bool)>,
    pending_problems: Vec<Violation>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
    done: bool,
}

impl CsvDecoder {
    pub fn open(
        path: &Path,
        opts: &CsvOptions,
        batch_rows: usize,
        declared: &[String],
    ) -> Result<Self> {
        let mut raw = open_decompressed(path)?;
        let mut head = [0u8; 8192];
        let mut n = 0;
        while n < head.len() {
            match raw.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(Error::input(path, None, format!("cannot read: {e}"))),
            }
        }
        if n == 0 {
            return Err(Error::input_with_hint(
                path,
                None,
                "the file is empty (source-error: no header, no rows)",
                "an export that produced nothing; check the program that wrote it",
            ));
        }
        if head[..n].contains(&0) {
            return Err(Error::input_with_hint(
                path,
                Some(1),
                "this looks like a binary file, not CSV text (it contains NUL bytes)",
                "check that the right file was dropped here, or set the source format",
            ));
        }
        let mut start = 0;
        if head[..n].starts_with(&[0xEF, 0xBB, 0xBF]) {
            start = 3;
        }
        let chained: Box<dyn Read + Send> =
            Box::new(std::io::Cursor::new(head[start..n].to_vec()).chain(raw));
        let decoded: Box<dyn Read + Send> = match opts.encoding {
            Encoding::Utf8 => chained,
            Encoding::Latin1 => Box::new(Latin1ToUtf8::new(chained)),
        };
        let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let tail = TailReader {
            inner: decoded,
            tail: [0; 8],
            tail_len: 0,
            bytes: bytes.clone(),
        };
        let mut builder = csv::ReaderBuilder::new();
        builder
            .has_headers(false)
            .flexible(true)
            .delimiter(opts.delimiter)
            .quote(opts.quote)
            .buffer_capacity(1 << 20);
        if let Some(esc) = opts.escape {
            builder.escape(Some(esc)).double_quote(false);
        }
        let mut reader = builder.from_reader(tail);
        let mut record = ByteRecord::new();
        let mut decoder = CsvDecoder {
            path: path.to_path_buf(),
            reader: csv::ReaderBuilder::new().from_reader(TailReader {
                inner: Box::new(std::io::empty()),
                tail: [0; 8],
                tail_len: 0,
                bytes: bytes.clone(),
            }),
            header: Header {
                names: Vec::new(),
                problems: Vec::new(),
            },
            null_values: opts
                .null_values
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            quote: opts.quote,
            batch_rows,
            max_record_bytes: opts.max_record_bytes,
            record: ByteRecord::new(),
            next_row: 1,
            expected_line: 1,
            last_record: None,
            pending_problems: Vec::new(),
            bytes,
            done: false,
        };
        if opts.header {
            let has = reader
                .read_byte_record(&mut record)
                .map_err(|e| decoder.csv_error(e))?;
            if !has {
                return Err(Error::input_with_hint(
                    path,
                    None,
                    "the file has no header line",
                    "the first line must name the columns",
                ));
            }
            decoder.check_record_size(&record, 1)?;
            let names = decoder.utf8_fields(&record, 1)?;
            decoder.header = header_with_problems(names, 1);
            decoder.expected_line = 2 + newlines(&record);
            decoder.next_row = 2;
        } else {
            let first_len = {
                let mut peek = ByteRecord::new();
                let has = reader
                    .read_byte_record(&mut peek)
                    .map_err(|e| decoder.csv_error(e))?;
                let len = if has { peek.len() } else { 0 };
                decoder.record = peek;
                len
            };
            let names = (0..first_len.max(declared.len()))
                .map(|i| {
                    declared
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("column_{}", i + 1))
                })
                .collect();
            decoder.header = Header {
                names,
                problems: Vec::new(),
            };
        }
        decoder.reader = reader;
        Ok(decoder)
    }

    fn csv_error(&self, e: csv::Error) -> Error {
        let line = e.position().map(|p| p.line());
        match e.into_kind() {
            csv::ErrorKind::Io(io) => Error::input(&self.path, line, format!("cannot read: {io}")),
            other => Error::input(&self.path, line, format!("malformed CSV: {other:?}")),
        }
    }

    fn check_record_size(&self, record: &ByteRecord, line: u64) -> Result<()> {
        let len = record.as_slice().len();
        if len > self.max_record_bytes {
            return Err(Error::input_with_hint(
                &self.path,
                Some(line),
                format!(
                    "a record of {len} bytes is longer than the limit of {} bytes",
                    self.max_record_bytes
                ),
                "if such long records are expected, raise max_record_bytes on the source; otherwise the file is probably not CSV or has an unclosed quote",
            ));
        }
        Ok(())
    }

    fn utf8_fields(&self, record: &ByteRecord, line: u64) -> Result<Vec<String>> {
        record
            .iter()
            .enumerate()
            .map(|(i, f)| {
                std::str::from_utf8(f)
                    .map(str::to_string)
                    .map_err(|e| self.encoding_error(line, i, f, e))
            })
            .collect()
    }

    fn encoding_error(
        &self,
        line: u64,
        field: usize,
        bytes: &[u8],
        e: std::str::Utf8Error,
    ) -> Error {
        let bad = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
        Error::input_with_hint(
            &self.path,
            Some(line),
            format!(
                "field {} is not valid UTF-8 (byte 0x{bad:02X} after \"{}\")",
                field + 1,
                String::from_utf8_lossy(&bytes[..e.valid_up_to()])
            ),
            "if the file is Latin-1 / Windows-1252 (common in spreadsheet exports), set encoding = \"latin-1\" on the source",
        )
    }

    /// Reads one record into `self.record`; false at the end of the file.
    fn read_record(&mut self) -> Result<bool> {
        if !self.record.is_empty() {
            // A record peeked while naming header-less columns.
            return Ok(true);
        }
        match self.reader.read_byte_record(&mut self.record) {
            Ok(has) => Ok(has),
            Err(e) => Err(self.csv_error(e)),
        }
    }

    fn finish_file(&mut self) -> Result<()> {
        self.done = true;
        if let Some((line, last_field_multiline)) = self.last_record {
            let tail = &self.reader.get_ref().tail[..self.reader.get_ref().tail_len];
            let last_content = tail.iter().rev().find(|b| **b != b'\n' && **b != b'\r');
            if last_field_multiline && last_content != Some(&self.quote) {
                return Err(Error::input_with_hint(
                    &self.path,
                    Some(line),
                    "a quoted field that starts here runs to the end of the file: its closing quote is missing",
                    "close the quote, or if quotes are literal text set quote to another character",
                ));
            }
        }
        Ok(())
    }
}

fn is_null(tokens: &[Vec<u8>], field: &[u8]) -> bool {
    tokens.iter().any(|n| n.as_slice() == field)
}

fn newlines(record: &ByteRecord) -> u64 {
    record.as_slice().iter().filter(|b| **b == b'\n').count() as u64
}

/// Names the columns and finds blank and duplicate labels, as frictionless reports them.
fn header_with_problems(names: Vec<String>, line: u64) -> Header {
    let mut problems = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if name.trim().is_empty() {
            problems.push(Violation::label(
                line,
                i,
                "blank-label",
                name,
                "a column has no name in the header".into(),
            ));
        } else if let Some(first) = seen.get(name.as_str()) {
            problems.push(Violation::label(
                line,
                i,
                "duplicate-label",
                name,
                format!(
                    "column name \"{name}\" appears twice (fields {} and {})",
                    first + 1,
                    i + 1
                ),
            ));
        } else {
            seen.insert(name, i);
        }
    }
    Header { names, problems }
}

impl Decoder for CsvDecoder {
    fn header(&self) -> &Header {
        &self.header
    }

    fn bytes_read(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn take_trailing_problems(&mut self) -> Vec<Violation> {
        std::mem::take(&mut self.pending_problems)
    }

    fn next_batch(&mut self) -> Result<Option<RawBatch>> {
        if self.done {
            return Ok(None);
        }
        let ncols = self.header.names.len();
        let mut builders: Vec<StringBuilder> = (0..ncols)
            .map(|_| {
                StringBuilder::with_capacity(
                    self.batch_rows.min(8192),
                    self.batch_rows.min(8192) * 8,
                )
            })
            .collect();
        let mut lines = Vec::with_capacity(self.batch_rows.min(8192));
        let mut rows = Vec::with_capacity(self.batch_rows.min(8192));
        let mut problems = std::mem::take(&mut self.pending_problems);
        let mut bad = Vec::with_capacity(self.batch_rows.min(8192));
        while lines.len() < self.batch_rows {
            if !self.read_record()? {
                self.finish_file()?;
                break;
            }
            let record = std::mem::take(&mut self.record);
            let line = record.position().map_or(self.expected_line, |p| p.line());
            // The reader skips empty lines; frictionless counts each as a blank row.
            while self.expected_line < line {
                problems.push(Violation::blank_row(
                    self.expected_line,
                    self.next_row,
                    None,
                ));
                self.expected_line += 1;
                self.next_row += 1;
            }
            self.check_record_size(&record, line)?;
            let row_index = lines.len();
            let row_number = self.next_row;
            let mut row_bad = false;
            let mut all_empty = true;
            for (i, builder) in builders.iter_mut().enumerate() {
                match record.get(i) {
                    Some(field) => {
                        if !field.is_empty() {
                            all_empty = false;
                        }
                        if is_null(&self.null_values, field) {
                            builder.append_null();
                        } else {
                            match std::str::from_utf8(field) {
                                Ok(s) => builder.append_value(s),
                                Err(e) => return Err(self.encoding_error(line, i, field, e)),
                            }
                        }
                    }
                    None => {
                        builder.append_null();
                        row_bad = true;
                        problems.push(Violation::cell(
                            line,
                            row_number,
                            Some(row_index),
                            i,
                            &self.header.names[i],
                            "missing-cell",
                            "",
                            None,
                            "the row has fewer cells than the header".into(),
                        ));
                    }
                }
            }
            for i in ncols..record.len() {
                let value = String::from_utf8_lossy(&record[i]).into_owned();
                if !value.is_empty() {
                    all_empty = false;
                }
                row_bad = true;
                problems.push(Violation::cell(
                    line,
                    row_number,
                    Some(row_index),
                    i,
                    "",
                    "extra-cell",
                    "",
                    Some(value),
                    "the row has more cells than the header".into(),
                ));
            }
            if all_empty && record.len() >= ncols {
                row_bad = true;
                problems.push(Violation::blank_row(line, row_number, Some(row_index)));
            }
            let spans = newlines(&record);
            let last_multiline = record.iter().next_back().is_some_and(|f| f.contains(&b'\n'));
            self.last_record = Some((line, last_multiline));
            self.expected_line = line + spans + 1;
            self.next_row += 1;
            lines.push(line);
            rows.push(row_number);
            bad.push(row_bad);
            self.record = record;
            self.record.clear();
        }
        if lines.is_empty() {
            if !problems.is_empty() {
                self.pending_problems = problems;
            }
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = builders
            .into_iter()
            .map(|mut b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        Ok(Some(RawBatch {
            columns,
            lines,
            rows,
            problems,
            structurally_bad: bad,
        }))
    }
}

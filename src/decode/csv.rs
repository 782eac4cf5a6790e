//! CSV → Arrow string columns. The scanner gives each record's first line, which reports need;
//! blank lines it skips are found from the gaps.

mod cells;
mod scan;

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, StringArray};

use self::cells::CellColumn;
use self::scan::{GuardedReader, Record, Scanner};
use super::input::{Latin1ToUtf8, open_decompressed};
use super::{Decoder, Header, RawBatch};
use crate::config::{CsvOptions, Encoding};
use crate::contract::Violation;
use crate::error::{Error, Result};

/// Bytes of cells a batch may hold before it ends early: with one record of at most
/// `MAX_RECORD_BYTES` on top, a column's offsets stay within Arrow's `i32`.
const MAX_BATCH_BYTES: usize = 256 << 20;
/// The largest `max_record_bytes` a source may set.
pub const MAX_RECORD_BYTES: usize = 1 << 30;

pub struct CsvDecoder {
    path: PathBuf,
    scanner: Scanner<Box<dyn Read + Send>>,
    header: Header,
    null_values: Vec<Vec<u8>>,
    quote: u8,
    escape: Option<u8>,
    quoted_newlines: bool,
    batch_rows: usize,
    max_record_bytes: usize,
    record: Record,
    /// A record read ahead (to name the columns of header-less files), with its first line.
    peeked: Option<(Record, u64)>,
    /// Frictionless row number of the next record (the header is row 1).
    next_row: u64,
    /// The line the next record should start on; lines before it were blank.
    expected_line: u64,
    /// The last record's first line and first byte, to check its quotes at the end.
    last_record: Option<(u64, u64)>,
    pending_problems: Vec<Violation>,
    done: bool,
}

/// Compares lengths and first bytes before calling memcmp: most cells are no null token.
fn is_null(tokens: &[Vec<u8>], value: &[u8]) -> bool {
    tokens
        .iter()
        .any(|n| n.len() == value.len() && n.first() == value.first() && n.as_slice() == value)
}

/// A line that holds nothing (after a CRLF's `\r` is removed).
fn is_blank_line(record: &Record) -> bool {
    record.len() == 1 && record.fields().next().is_some_and(<[u8]>::is_empty)
}

impl CsvDecoder {
    pub fn open(
        path: &Path,
        opts: &CsvOptions,
        batch_rows: usize,
        declared: &[String],
    ) -> Result<Self> {
        let mut raw = open_decompressed(path)?;
        let mut head = vec![0u8; 8192];
        let mut n = 0;
        while n < head.len() {
            match raw.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(read_error(path, None, &e)),
            }
        }
        head.truncate(n);
        if n == 0 {
            return Err(Error::input_with_hint(
                path,
                None,
                "the file is empty (source-error: no header, no rows)",
                "an export that produced nothing; check the program that wrote it",
            ));
        }
        if head.contains(&0) {
            return Err(Error::input_with_hint(
                path,
                Some(1),
                "this looks like a binary file, not CSV text (it contains NUL bytes)",
                "check that the right file was dropped here, or set the source format",
            ));
        }
        let start = if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
            3
        } else {
            0
        };
        let chained: Box<dyn Read + Send> =
            Box::new(io::Cursor::new(head[start..].to_vec()).chain(raw));
        let decoded: Box<dyn Read + Send> = match opts.encoding {
            Encoding::Utf8 => chained,
            Encoding::Latin1 => Box::new(Latin1ToUtf8::new(chained)),
        };
        let guarded = GuardedReader::new(decoded, opts.max_record_bytes);
        let mut quoted = csv_core::ReaderBuilder::new();
        quoted
            .delimiter(opts.delimiter)
            .quote(opts.quote)
            .terminator(csv_core::Terminator::Any(b'\n'));
        if let Some(esc) = opts.escape {
            quoted.escape(Some(esc)).double_quote(false);
        }
        let mut decoder = CsvDecoder {
            path: path.to_path_buf(),
            scanner: Scanner::new(guarded, &quoted, opts.delimiter, opts.quote),
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
            escape: opts.escape,
            quoted_newlines: opts.quoted_newlines,
            batch_rows,
            max_record_bytes: opts.max_record_bytes,
            record: Record::default(),
            peeked: None,
            next_row: 1,
            expected_line: 1,
            last_record: None,
            pending_problems: Vec::new(),
            done: false,
        };
        let Some(first_line) = decoder.read_record()? else {
            return Err(Error::input_with_hint(
                path,
                None,
                "the file has no header line, only blank lines",
                "the first line must name the columns",
            ));
        };
        if opts.header {
            let mut names = Vec::with_capacity(decoder.record.len());
            for (i, f) in decoder.record.fields().enumerate() {
                names.push(
                    std::str::from_utf8(f)
                        .map_err(|e| decoder.encoding_error(first_line, i, f, e))?
                        .to_string(),
                );
            }
            decoder.header = header_with_problems(names, first_line);
            decoder.next_row = 2;
        } else {
            let count = decoder.record.len().max(declared.len());
            let names = (0..count)
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
            decoder.peeked = Some((std::mem::take(&mut decoder.record), first_line));
            decoder.expected_line = first_line;
        }
        Ok(decoder)
    }

    fn read_failed(&self, e: &io::Error) -> Error {
        if let Some(line) = self.scanner.input().too_long {
            return Error::input_with_hint(
                &self.path,
                Some(line),
                format!(
                    "the line is longer than the limit of {} bytes",
                    self.max_record_bytes
                ),
                "if such long records are expected, raise max_record_bytes on the source; otherwise the file is probably not CSV",
            );
        }
        read_error(&self.path, None, e)
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

    /// The encoding error of the batch read so far, if it has one: it happened before whatever
    /// stopped the batch.
    fn encoding_error_in(&self, builders: &mut [CellColumn], lines: &[u64]) -> Option<Error> {
        let binary: Vec<BinaryArray> = builders.iter_mut().map(CellColumn::finish).collect();
        self.first_encoding_error(&binary, lines)
    }

    /// The first cell, in file order, that is not valid UTF-8.
    fn first_encoding_error(&self, columns: &[BinaryArray], lines: &[u64]) -> Option<Error> {
        let mut first: Option<(usize, usize, std::str::Utf8Error)> = None;
        for (column, values) in columns.iter().enumerate() {
            let bad = (0..values.len()).find_map(|row| {
                let bytes = values.is_valid(row).then(|| values.value(row))?;
                std::str::from_utf8(bytes).err().map(|e| (row, e))
            });
            if let Some((row, e)) = bad
                && first.is_none_or(|(r, _, _)| row < r)
            {
                first = Some((row, column, e));
            }
        }
        let (row, column, e) = first?;
        let line = lines.get(row).copied()?;
        Some(self.encoding_error(line, column, columns.get(column)?.value(row), e))
    }

    /// Read the next non-blank record into `self.record` and return its first line; blank
    /// lines on the way are recorded as blank-row problems.
    fn read_record(&mut self) -> Result<Option<u64>> {
        loop {
            let found = match self.scanner.next(&mut self.record) {
                Ok(Some(found)) => found,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.read_failed(&e)),
            };
            let (line, inner) = (found.line, found.newlines);
            while self.expected_line < line {
                self.pending_problems.push(Violation::blank_row(
                    self.expected_line,
                    self.next_row,
                    None,
                ));
                self.expected_line += 1;
                self.next_row += 1;
            }
            self.expected_line = line + inner + 1;
            if is_blank_line(&self.record) && self.header.names.len() != 1 {
                self.pending_problems
                    .push(Violation::blank_row(line, self.next_row, None));
                self.next_row += 1;
                continue;
            }
            self.last_record = Some((line, found.start_byte));
            if inner > 0 && !self.quoted_newlines {
                return Err(Error::input_with_hint(
                    &self.path,
                    Some(line),
                    "a quoted field that starts on this line runs over several lines: its closing quote is probably missing",
                    "close the quote; if fields may contain line breaks, set quoted_newlines = true on the source",
                ));
            }
            let len = self.record.bytes();
            if len > self.max_record_bytes {
                return Err(Error::input_with_hint(
                    &self.path,
                    Some(line),
                    format!(
                        "a record of {len} bytes is longer than the limit of {} bytes",
                        self.max_record_bytes
                    ),
                    "if such long records are expected, raise max_record_bytes on the source",
                ));
            }
            return Ok(Some(line));
        }
    }

    /// A quote left open on the last record swallows the rest of the file; find it by parity.
    fn check_last_quote(&mut self) -> Result<()> {
        self.done = true;
        let Some((line, start)) = self.last_record else {
            return Ok(());
        };
        let guard = self.scanner.input();
        let span = guard.total.saturating_sub(start) as usize;
        if span > guard.tail.len() {
            return Ok(());
        }
        let raw = &guard.tail[guard.tail.len() - span..];
        let mut open = false;
        let mut escaped = false;
        for &b in raw {
            if escaped {
                escaped = false;
            } else if Some(b) == self.escape && open {
                escaped = true;
            } else if b == self.quote {
                open = !open;
            }
        }
        if open {
            return Err(Error::input_with_hint(
                &self.path,
                Some(line),
                "a quoted field on this line is never closed: the file ends inside it",
                "close the quote, or if quotes are literal text set quote to another character",
            ));
        }
        Ok(())
    }
}

fn read_error(path: &Path, line: Option<u64>, e: &io::Error) -> Error {
    let gz = path
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("gz"));
    let text = e.to_string();
    if gz || text.contains("deflate") || text.contains("gzip") {
        return Error::input_with_hint(
            path,
            line,
            format!("the gzip data is truncated or corrupt ({e})"),
            "the file may have been cut off in transfer or still be being written; send it again complete",
        );
    }
    Error::input(path, line, format!("cannot read: {e}"))
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
        self.scanner.consumed()
    }

    fn take_trailing_problems(&mut self) -> Vec<Violation> {
        std::mem::take(&mut self.pending_problems)
    }

    fn next_batch(&mut self) -> Result<Option<RawBatch>> {
        if self.done {
            return Ok(None);
        }
        let ncols = self.header.names.len();
        let capacity = self.batch_rows.min(8192);
        // Bytes first, UTF-8 checked once per column at the end: one pass over the values
        // instead of one call per cell.
        let mut builders: Vec<CellColumn> = (0..ncols)
            .map(|_| CellColumn::with_capacity(capacity, capacity * 8))
            .collect();
        let mut batch_bytes = 0;
        let mut lines = Vec::with_capacity(capacity);
        let mut rows = Vec::with_capacity(capacity);
        let mut problems = Vec::new();
        let mut bad = Vec::with_capacity(capacity);
        while lines.len() < self.batch_rows && batch_bytes < MAX_BATCH_BYTES {
            let line = match self.peeked.take() {
                Some((record, line)) => {
                    self.record = record;
                    line
                }
                None => match self.read_record() {
                    Ok(Some(line)) => line,
                    Ok(None) => {
                        // An earlier line's encoding error comes before a problem at the end.
                        let at_end = self.check_last_quote();
                        if let Err(e) = at_end {
                            return Err(self.encoding_error_in(&mut builders, &lines).unwrap_or(e));
                        }
                        break;
                    }
                    Err(e) => {
                        return Err(self.encoding_error_in(&mut builders, &lines).unwrap_or(e));
                    }
                },
            };
            problems.append(&mut self.pending_problems);
            let record = &self.record;
            batch_bytes += record.bytes();
            let row_index = lines.len();
            let row_number = self.next_row;
            let mut row_bad = false;
            let mut all_empty = true;
            for (builder, value) in builders.iter_mut().zip(record.fields()) {
                if !value.is_empty() {
                    all_empty = false;
                }
                if is_null(&self.null_values, value) {
                    builder.push_null();
                } else {
                    builder.push(value);
                }
            }
            for (i, builder) in builders.iter_mut().enumerate().skip(record.len()) {
                builder.push_null();
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
            for (i, cell) in (ncols..).zip(record.fields_from(ncols)) {
                let value = String::from_utf8_lossy(cell).into_owned();
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
            self.next_row += 1;
            lines.push(line);
            rows.push(row_number);
            bad.push(row_bad);
        }
        if lines.is_empty() {
            problems.append(&mut self.pending_problems);
            self.pending_problems = problems;
            return Ok(None);
        }
        let binary: Vec<BinaryArray> = builders.iter_mut().map(CellColumn::finish).collect();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(ncols);
        for column in &binary {
            match StringArray::try_from_binary(column.clone()) {
                Ok(text) => columns.push(Arc::new(text)),
                Err(_) => {
                    return Err(self
                        .first_encoding_error(&binary, &lines)
                        .unwrap_or_else(|| {
                            Error::Internal(
                                "a column failed UTF-8 validation but no cell did".into(),
                            )
                        }));
                }
            }
        }
        Ok(Some(RawBatch {
            columns,
            lines,
            rows,
            problems,
            structurally_bad: bad,
        }))
    }
}

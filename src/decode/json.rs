//! NDJSON (one object per line, streamed) and JSON documents (an array of objects, optionally
//! under a dotted `records_path`). Values become text columns and are typed by the contract like
//! CSV cells, so both formats share one validation path.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use serde_json::{Map, Value};

use std::sync::mpsc::Receiver;

use super::input::{open_decompressed, skip_bom};
use super::json_stream::{StreamItem, stream_records};
use super::{Decoder, Header, RawBatch};
use crate::config::SourceSpec;
use crate::contract::Violation;
use crate::error::{Error, Result};

enum Records {
    Lines {
        reader: BufReader<Box<dyn Read + Send>>,
        line: u64,
    },
    Document {
        records: Receiver<StreamItem>,
        index: u64,
    },
}

/// One parsed record: its position, and either its fields or why it could not be read.
struct Item {
    line: u64,
    fields: std::result::Result<Map<String, Value>, String>,
}

pub struct JsonDecoder {
    path: PathBuf,
    records: Records,
    header: Header,
    batch_rows: usize,
    max_record_bytes: usize,
    /// Records read ahead while discovering the columns.
    buffered: std::collections::VecDeque<Item>,
    bytes: u64,
}

impl JsonDecoder {
    pub fn open_lines(path: &Path, source: &SourceSpec, declared: &[String]) -> Result<Self> {
        let reader = BufReader::with_capacity(
            1 << 20,
            skip_bom(open_decompressed(path)?)
                .map_err(|e| Error::input(path, None, format!("cannot read: {e}")))?,
        );
        let mut decoder = Self::new(path, Records::Lines { reader, line: 0 }, source);
        decoder.discover_columns(declared)?;
        Ok(decoder)
    }

    pub fn open_document(path: &Path, source: &SourceSpec, declared: &[String]) -> Result<Self> {
        let reader = skip_bom(open_decompressed(path)?)
            .map_err(|e| Error::input(path, None, format!("cannot read: {e}")))?;
        let records = stream_records(path, reader, source.records_path.as_deref());
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mut decoder = Self::new(path, Records::Document { records, index: 0 }, source);
        decoder.bytes = size;
        decoder.discover_columns(declared)?;
        Ok(decoder)
    }

    fn new(path: &Path, records: Records, source: &SourceSpec) -> Self {
        JsonDecoder {
            path: path.to_path_buf(),
            records,
            header: Header {
                names: Vec::new(),
                problems: Vec::new(),
            },
            batch_rows: source.batch_rows,
            max_record_bytes: source.csv.max_record_bytes,
            buffered: Default::default(),
            bytes: 0,
        }
    }

    /// Columns are the declared ones, then keys in order of first appearance in the first batch.
    fn discover_columns(&mut self, declared: &[String]) -> Result<()> {
        let mut names: Vec<String> = declared.to_vec();
        while self.buffered.len() < self.batch_rows {
            let Some(item) = self.read_item()? else { break };
            if let Ok(fields) = &item.fields {
                for key in fields.keys() {
                    if !names.iter().any(|n| n == key) {
                        names.push(key.clone());
                    }
                }
            }
            self.buffered.push_back(item);
        }
        self.header.names = names;
        Ok(())
    }

    fn read_item(&mut self) -> Result<Option<Item>> {
        match &mut self.records {
            Records::Lines { reader, line } => {
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    let n = reader
                        .by_ref()
                        .take(self.max_record_bytes as u64 + 1)
                        .read_until(b'\n', &mut buf)
                        .map_err(|e| {
                            Error::input(&self.path, Some(*line + 1), format!("cannot read: {e}"))
                        })?;
                    if n == 0 {
                        return Ok(None);
                    }
                    self.bytes += n as u64;
                    *line += 1;
                    if n > self.max_record_bytes {
                        return Err(Error::input_with_hint(
                            &self.path,
                            Some(*line),
                            format!(
                                "a line longer than the limit of {} bytes",
                                self.max_record_bytes
                            ),
                            "raise max_record_bytes on the source if such long records are expected",
                        ));
                    }
                    let text = buf.trim_ascii();
                    if text.is_empty() {
                        continue;
                    }
                    let fields = match serde_json::from_slice::<Value>(text) {
                        Ok(Value::Object(map)) => Ok(map),
                        Ok(_) => Err("the line is JSON but not an object".to_string()),
                        Err(e) => Err(format!("the line is not valid JSON: {e}")),
                    };
                    return Ok(Some(Item {
                        line: *line,
                        fields,
                    }));
                }
            }
            Records::Document { records, index } => match records.recv() {
                Ok(StreamItem::Record(v)) => {
                    *index += 1;
                    Ok(Some(Item {
                        line: *index,
                        fields: match v {
                            Value::Object(map) => Ok(map),
                            _ => Err("the record is not a JSON object".to_string()),
                        },
                    }))
                }
                Ok(StreamItem::Failed(e)) => Err(e),
                Err(_) => Ok(None),
            },
        }
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

impl Decoder for JsonDecoder {
    fn header(&self) -> &Header {
        &self.header
    }

    fn bytes_read(&self) -> u64 {
        self.bytes
    }

    fn next_batch(&mut self) -> Result<Option<RawBatch>> {
        let ncols = self.header.names.len();
        let mut builders: Vec<StringBuilder> = (0..ncols).map(|_| StringBuilder::new()).collect();
        let mut lines = Vec::new();
        let mut problems = Vec::new();
        let mut bad = Vec::new();
        while lines.len() < self.batch_rows {
            let item = match self.buffered.pop_front() {
                Some(item) => item,
                None => match self.read_item()? {
                    Some(item) => item,
                    None => break,
                },
            };
            let row_index = lines.len();
            match item.fields {
                Ok(mut fields) => {
                    for (i, b) in builders.iter_mut().enumerate() {
                        match fields
                            .remove(&self.header.names[i])
                            .as_ref()
                            .and_then(as_text)
                        {
                            Some(s) => b.append_value(s),
                            None => b.append_null(),
                        }
                    }
                    let extra = !fields.is_empty();
                    for (key, value) in fields {
                        problems.push(Violation::cell(
                            item.line,
                            item.line,
                            Some(row_index),
                            ncols,
                            &key,
                            "extra-cell",
                            "",
                            as_text(&value),
                            format!("key \"{key}\" is not a column of this file's first records"),
                        ));
                    }
                    bad.push(extra);
                }
                Err(message) => {
                    for b in builders.iter_mut() {
                        b.append_null();
                    }
                    problems.push(Violation::cell(
                        item.line,
                        item.line,
                        Some(row_index),
                        0,
                        "",
                        "format-error",
                        "",
                        None,
                        message,
                    ));
                    bad.push(true);
                }
            }
            lines.push(item.line);
        }
        if lines.is_empty() {
            return Ok(None);
        }
        Ok(Some(RawBatch {
            columns: builders
                .into_iter()
                .map(|mut b| Arc::new(b.finish()) as ArrayRef)
                .collect(),
            rows: lines.clone(),
            lines,
            problems,
            structurally_bad: bad,
        }))
    }
}

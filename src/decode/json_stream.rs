//! Streams the records of a JSON document (an array, possibly under a dotted path) without
//! holding the document in memory: a thread walks it with serde and hands each record over a
//! bounded channel, so memory stays flat whatever the file size.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::error::Error;

pub enum StreamItem {
    Record(Value),
    Failed(Error),
}

/// Start streaming the records of `reader`; records arrive in order on the receiver.
pub fn stream_records(
    path: &Path,
    reader: Box<dyn Read + Send>,
    records_path: Option<&str>,
) -> Receiver<StreamItem> {
    let (tx, rx) = sync_channel(1024);
    let keys: Vec<String> = records_path
        .map(|p| p.split('.').map(str::to_string).collect())
        .unwrap_or_default();
    let path = path.to_path_buf();
    let records_path = records_path.map(str::to_string);
    let spawned = std::thread::Builder::new()
        .name("json-records".into())
        .spawn({
            let tx = tx.clone();
            move || {
                let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(
                    1 << 20,
                    reader,
                ));
                let walked = RecordsAt {
                    keys: &keys,
                    tx: &tx,
                }
                .deserialize(&mut de)
                .and_then(|()| de.end());
                if let Err(e) = walked {
                    if e.to_string().contains(STOPPED) {
                        return;
                    }
                    let _ = tx.send(StreamItem::Failed(describe(
                        &path,
                        records_path.as_deref(),
                        &e,
                    )));
                }
            }
        });
    if let Err(e) = spawned {
        let _ = tx.send(StreamItem::Failed(Error::io("starting the JSON reader", e)));
    }
    rx
}

/// The reader went away: not an error of the document.
const STOPPED: &str = "caudal: records no longer wanted";
const NOT_FOUND: &str = "caudal: records_path key not found: ";
const NOT_ARRAY: &str = "caudal: not an array of records; arrays here: ";

fn describe(path: &Path, records_path: Option<&str>, e: &serde_json::Error) -> Error {
    let text = e.to_string();
    let path: PathBuf = path.to_path_buf();
    if let Some(rest) = text.strip_prefix(NOT_FOUND) {
        let key = rest.split(" at line").next().unwrap_or(rest);
        return Error::input_with_hint(
            path,
            None,
            format!(
                "records_path \"{}\": key \"{key}\" not found",
                records_path.unwrap_or_default()
            ),
            "point records_path at the array of records, e.g. \"data.items\"",
        );
    }
    if let Some(rest) = text.strip_prefix(NOT_ARRAY) {
        let arrays = rest.split(" at line").next().unwrap_or(rest);
        let hint = if arrays.is_empty() {
            "the document must be an array of objects".to_string()
        } else {
            format!("set records_path to the array of records; arrays here: {arrays}")
        };
        return Error::input_with_hint(
            path,
            Some(e.line() as u64),
            "the JSON document is an object, not an array of records",
            hint,
        );
    }
    Error::input_with_hint(
        path,
        Some(e.line() as u64),
        format!("not valid JSON: {e}"),
        "a .json file must hold one JSON document; for one object per line use format = \"ndjson\"",
    )
}

struct RecordsAt<'a> {
    keys: &'a [String],
    tx: &'a SyncSender<StreamItem>,
}

impl<'de> DeserializeSeed<'de> for RecordsAt<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordsAt<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.keys.is_empty() {
            f.write_str("an array of records")
        } else {
            f.write_str("an object")
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(key) = self.keys.first() {
            return Err(de::Error::custom(format!("{NOT_FOUND}{key}")));
        }
        while let Some(record) = seq.next_element::<Value>()? {
            if self.tx.send(StreamItem::Record(record)).is_err() {
                return Err(de::Error::custom(STOPPED));
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.keys.split_first() else {
            // An object where the records should be: name the arrays it holds.
            let mut arrays = Vec::new();
            while let Some((key, value)) = map.next_entry::<String, Value>()? {
                if value.is_array() {
                    arrays.push(key);
                }
            }
            return Err(de::Error::custom(format!(
                "{NOT_ARRAY}{}",
                arrays.join(", ")
            )));
        };
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if !found && &key == first {
                map.next_value_seed(RecordsAt {
                    keys: rest,
                    tx: self.tx,
                })?;
                found = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if found {
            Ok(())
        } else {
            Err(de::Error::custom(format!("{NOT_FOUND}{first}")))
        }
    }
}

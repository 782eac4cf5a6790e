//! The project model and its compiler from the spanned TOML tree.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::diagnostics::{ConfigError, ConfigErrors, Document};
use super::reader::{At, TableReader, ValueReader};
use crate::contract::{Contract, compile_contract};

/// Rows per decoded batch. Small enough that the first batch reaches the sinks soon and the
/// stages overlap for most of a file, and that a batch of a typical table (~2 MB of text for 20
/// columns) stays in a core's cache from decoding to the sinks; large enough that per-batch
/// costs stay negligible. On flights.csv, against 16,384: 8% less CPU and 11 MiB less peak RSS
/// (20 ABBA pairs); 4,096 was no better than 8,192.
const DEFAULT_BATCH_ROWS: usize = 8_192;

#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    /// Where the ledger, reports and staging live (`.caudal/`).
    pub state_dir: PathBuf,
    /// How long `caudal run` waits for deliveries in flight when asked to stop.
    pub shutdown_grace: std::time::Duration,
    pub destinations: BTreeMap<String, Destination>,
    pub references: BTreeMap<String, Reference>,
    pub pipelines: BTreeMap<String, Pipeline>,
    pub jobs: BTreeMap<String, super::Job>,
    /// `[server]`: the HTTP API and dashboard that `caudal run` serves.
    pub server: Option<ServerConfig>,
    pub channels: BTreeMap<String, super::Channel>,
    pub alerts: BTreeMap<String, super::Alert>,
}

impl Project {
    /// Where the dashboard is, for links in notices.
    pub fn dashboard_url(&self) -> Option<String> {
        let server = self.server.as_ref()?;
        Some(match &server.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", server.listen),
        })
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: std::net::SocketAddr,
    /// Requests without a token are served as a viewer (never more).
    pub anonymous: bool,
    pub max_body_bytes: usize,
    pub query_timeout: std::time::Duration,
    pub query_max_rows: usize,
    /// Origins allowed to call the API from a browser; none by default.
    pub cors_origins: Vec<String>,
    /// How users reach the dashboard (behind a proxy, say); links in alert notices use it.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Destination {
    Sqlite { path: PathBuf },
    ParquetLake { path: PathBuf, zstd_level: i32 },
}

/// A table a transform can join: a CSV or Parquet file (or folder of Parquet files).
#[derive(Debug, Clone)]
pub struct Reference {
    pub path: PathBuf,
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
    Json,
    Parquet,
}

impl Format {
    fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "csv" | "tsv" => Format::Csv,
            "ndjson" | "jsonl" => Format::Ndjson,
            "json" => Format::Json,
            "parquet" => Format::Parquet,
            _ => return None,
        })
    }

    /// The format a file name implies, looking through a `.gz` suffix.
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let ext = name.rsplit_once('.')?.1;
        Format::from_name(ext)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Latin1,
}

#[derive(Debug, Clone)]
pub struct CsvOptions {
    pub delimiter: u8,
    pub quote: u8,
    pub escape: Option<u8>,
    pub header: bool,
    pub encoding: Encoding,
    pub null_values: Vec<String>,
    /// A record longer than this is bad input, not a reason to exhaust memory.
    pub max_record_bytes: usize,
    /// Whether quoted fields may hold line breaks. Off by default (as in BigQuery): a field
    /// spanning lines is far more often an unclosed quote than intended.
    pub quoted_newlines: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            quote: b'"',
            escape: None,
            header: true,
            encoding: Encoding::Utf8,
            null_values: vec![String::new()],
            max_record_bytes: 10 * 1024 * 1024,
            quoted_newlines: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// The watched folder (relative paths are resolved against the project root).
    pub path: PathBuf,
    /// `None`: decided by each file's extension.
    pub format: Option<Format>,
    /// Glob on file names, e.g. `*.csv`.
    pub pattern: Option<String>,
    pub recursive: bool,
    pub csv: CsvOptions,
    /// For JSON documents: the dotted path of the array of records (`data.items`).
    pub records_path: Option<String>,
    pub batch_rows: usize,
    /// How `caudal run` notices files.
    pub watch: WatchMode,
    /// A file seen by a create event or a re-scan is taken once its size and modification time
    /// have not changed for this long (closed-after-write and renamed-in files are taken at once).
    pub settle: std::time::Duration,
    /// What happens to a source file after its delivery.
    pub after_load: AfterLoad,
    /// Load files in name order rather than oldest first.
    pub ordered: bool,
    /// Attempts for a delivery that fails transiently before the file goes to `failed/`.
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// Filesystem events (inotify) plus a periodic re-scan as a safety net.
    Events,
    /// Re-scans only, for network mounts where events do not arrive.
    Poll { every: std::time::Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterLoad {
    /// Into `processed/` (or `failed/` with an `.error.json` report).
    Move,
    Delete,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// Any violation rejects the whole delivery; nothing is loaded.
    Reject,
    /// Bad rows go to `<table>_rejects` with their reasons; good rows load.
    Quarantine,
    /// Bad rows are left out (and reported); good rows load.
    Drop,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WriteMode {
    Append,
    Replace,
    Merge { key: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub into: String,
    pub table: String,
    pub mode: WriteMode,
    pub partition_by: Option<String>,
    /// Add new columns to an existing table instead of failing.
    pub evolve: bool,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub source: SourceSpec,
    pub contract: Option<Contract>,
    pub on_invalid: OnInvalid,
    pub transform: Option<String>,
    pub loads: Vec<LoadSpec>,
}

pub(super) fn compile(
    root: &Path,
    doc: &Document,
    vars: &HashMap<String, String>,
) -> Result<Project, ConfigErrors> {
    let (parsed, syntax) = DeTable::parse_recoverable(doc.text());
    if !syntax.is_empty() {
        let errors = syntax
            .iter()
            .map(|e| {
                let (line, column) = doc.position(e.span().map_or(0, |s| s.start));
                ConfigError {
                    file: doc.file.clone(),
                    line,
                    column,
                    message: format!("TOML syntax: {}", e.message()),
                    hint: None,
                }
            })
            .collect();
        return Err(ConfigErrors(errors));
    }
    let top = TableReader::root(doc, &parsed);
    let mut contract_errors = Vec::new();

    let mut state_dir = root.join(".caudal");
    let mut shutdown_grace = std::time::Duration::from_secs(30);
    if let Some(p) = top.get("project").and_then(|v| v.table()) {
        p.str("name");
        if let Some(s) = p.str("state_dir") {
            state_dir = root.join(s.value);
        }
        if let Some(d) = p.get("shutdown_grace").and_then(|v| v.duration()) {
            shutdown_grace = d.value;
        }
        p.finish();
    }

    let mut destinations = BTreeMap::new();
    if let Some(t) = top.get("destinations").and_then(|v| v.table()) {
        for (name, value) in t.entries() {
            if let Some(d) = destination(root, &value) {
                destinations.insert(name.value, d);
            }
        }
    }

    let mut references = BTreeMap::new();
    if let Some(t) = top.get("references").and_then(|v| v.table()) {
        for (name, value) in t.entries() {
            let Some(r) = value.table() else { continue };
            let path = r.require("path").and_then(|v| v.str());
            let format = r.get("format").and_then(|v| v.choice(&["csv", "parquet"]));
            r.finish();
            let Some(path) = path else { continue };
            let full = root.join(&path.value);
            let format = match format {
                Some(f) => Format::from_name(&f.value),
                None => Format::from_path(&full).or(full.is_dir().then_some(Format::Parquet)),
            };
            match format {
                Some(f @ (Format::Csv | Format::Parquet)) => {
                    references.insert(
                        name.value,
                        Reference {
                            path: full,
                            format: f,
                        },
                    );
                }
                _ => doc.error_hint(
                    &path.span,
                    format!("cannot tell the format of reference `{}`", name.value),
                    "name a .csv or .parquet file, or set format = \"csv\" | \"parquet\"",
                ),
            }
        }
    }

    let mut pipelines = BTreeMap::new();
    if let Some(t) = top.get("pipelines").and_then(|v| v.table()) {
        for (name, value) in t.entries() {
            if let Some(p) = pipeline(
                root,
                &name,
                &value,
                &destinations,
                &references,
                vars,
                &mut contract_errors,
            ) {
                pipelines.insert(name.value, p);
            }
        }
    }
    let server = top
        .get("server")
        .and_then(|v| v.table())
        .and_then(server_config);
    let mut jobs = BTreeMap::new();
    if let Some(t) = top.get("jobs").and_then(|v| v.table()) {
        for (name, value) in t.entries() {
            if let Some(j) = super::jobs::job(&name, &value, &destinations) {
                jobs.insert(name.value, j);
            }
        }
    }
    let mut channels = BTreeMap::new();
    let mut declared = Vec::new();
    if let Some(t) = top.get("channels").and_then(|v| v.table()) {
        for (name, value) in t.entries() {
            declared.push(name.value.clone());
            if let Some(c) = super::alerts::channel(root, &name, &value) {
                channels.insert(name.value, c);
            }
        }
    }
    let mut alerts = BTreeMap::new();
    if let Some(t) = top.get("alerts").and_then(|v| v.table()) {
        for (name, value) in t.entries() {
            if let Some(a) = super::alerts::alert(&name, &value, &declared, &pipelines, &jobs, doc)
            {
                alerts.insert(name.value, a);
            }
        }
    }
    top.finish();

    let mut errors = doc.take_errors();
    errors.extend(contract_errors);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(Project {
        root: root.to_path_buf(),
        state_dir,
        shutdown_grace,
        destinations,
        references,
        pipelines,
        jobs,
        server,
        channels,
        alerts,
    })
}

fn server_config(t: super::reader::TableReader<'_, '_, '_>) -> Option<ServerConfig> {
    let listen = t.require("listen").and_then(|v| v.str()).and_then(|s| {
        match s.value.parse::<std::net::SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                t.doc.error_hint(
                    &s.span,
                    format!("`server.listen` is not an address: \"{}\"", s.value),
                    "write an IP and a port, e.g. \"127.0.0.1:8080\" (\"0.0.0.0:8080\" for every interface)",
                );
                None
            }
        }
    });
    let anonymous = t.bool("anonymous").unwrap_or(false);
    let max_body_mb = match t.get("max_body_mb").and_then(|v| v.int()) {
        Some(n) if (1..=65_536).contains(&n) => n as usize,
        Some(_) => {
            t.doc
                .error(&t.span, "server.max_body_mb must be between 1 and 65536");
            100
        }
        None => 100,
    };
    let query_timeout = t
        .get("query_timeout")
        .and_then(|v| v.duration())
        .map_or(std::time::Duration::from_secs(30), |d| d.value);
    let query_max_rows = match t.get("query_max_rows").and_then(|v| v.int()) {
        Some(n) if (1..=10_000_000).contains(&n) => n as usize,
        Some(_) => {
            t.doc.error(
                &t.span,
                "server.query_max_rows must be between 1 and 10000000",
            );
            10_000
        }
        None => 10_000,
    };
    let cors_origins = t
        .get("cors_origins")
        .and_then(|v| v.str_list())
        .map(|l| l.into_iter().map(|s| s.value).collect())
        .unwrap_or_default();
    let public_url = t
        .str("public_url")
        .and_then(|s| match reqwest::Url::parse(&s.value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(s.value),
            _ => {
                t.doc.error_hint(
                    &s.span,
                    format!("`server.public_url` is not an http(s) URL: \"{}\"", s.value),
                    "write the address users open, e.g. \"https://caudal.example.com\"",
                );
                None
            }
        });
    t.finish();
    Some(ServerConfig {
        public_url,
        listen: listen?,
        anonymous,
        max_body_bytes: max_body_mb * 1024 * 1024,
        query_timeout,
        query_max_rows,
        cors_origins,
    })
}

fn destination(root: &Path, value: &ValueReader<'_, '_, '_>) -> Option<Destination> {
    let t = value.table()?;
    let kind = t
        .require("kind")
        .and_then(|v| v.choice(&["sqlite", "parquet"]));
    let path = t.require("path").and_then(|v| v.str());
    let dest = match kind.as_ref().map(|k| k.value.as_str()) {
        Some("sqlite") => path.map(|p| Destination::Sqlite {
            path: root.join(p.value),
        }),
        Some("parquet") => {
            let level = t.get("zstd_level").and_then(|v| v.int()).unwrap_or(1);
            if !(1..=22).contains(&level) {
                t.doc.error(&t.span, "zstd_level must be between 1 and 22");
            }
            path.map(|p| Destination::ParquetLake {
                path: root.join(p.value),
                zstd_level: level as i32,
            })
        }
        _ => None,
    };
    t.finish();
    dest
}

fn single_byte(v: &ValueReader<'_, '_, '_>, what: &str) -> Option<u8> {
    let s = v.str()?;
    let value = if s.value == "\\t" {
        "\t"
    } else {
        s.value.as_str()
    };
    if value.len() == 1 && value.is_ascii() {
        Some(value.as_bytes()[0])
    } else {
        v.doc.error(
            &s.span,
            format!(
                "{what} must be a single ASCII character, found \"{}\"",
                s.value
            ),
        );
        None
    }
}

fn source(root: &Path, value: &ValueReader<'_, '_, '_>) -> Option<SourceSpec> {
    let t = value.table()?;
    let kind = t.require("kind").and_then(|v| v.choice(&["folder"]));
    let path = t.require("path").and_then(|v| v.str());
    let format = t
        .get("format")
        .and_then(|v| v.choice(&["csv", "tsv", "ndjson", "jsonl", "json", "parquet"]))
        .and_then(|f| Format::from_name(&f.value));
    let mut csv = CsvOptions::default();
    if let Some(v) = t.get("delimiter") {
        csv.delimiter = single_byte(&v, "delimiter").unwrap_or(b',');
    } else if t
        .get("format")
        .and_then(|v| v.str())
        .is_some_and(|f| f.value == "tsv")
    {
        csv.delimiter = b'\t';
    }
    if let Some(v) = t.get("quote") {
        csv.quote = single_byte(&v, "quote").unwrap_or(b'"');
    }
    if let Some(v) = t.get("escape") {
        csv.escape = single_byte(&v, "escape");
    }
    if let Some(q) = t.bool("quoted_newlines") {
        csv.quoted_newlines = q;
    }
    if let Some(h) = t.bool("header") {
        csv.header = h;
    }
    if let Some(e) = t
        .get("encoding")
        .and_then(|v| v.choice(&["utf-8", "utf8", "latin-1", "latin1", "iso-8859-1"]))
    {
        csv.encoding = if e.value.starts_with("utf") {
            Encoding::Utf8
        } else {
            Encoding::Latin1
        };
    }
    if let Some(list) = t.get("null_values").and_then(|v| v.str_list()) {
        csv.null_values = list.into_iter().map(|s| s.value).collect();
    }
    if let Some(n) = t.get("max_record_bytes").and_then(|v| v.int()) {
        if n < 1024 {
            t.doc
                .error(&t.span, "max_record_bytes must be at least 1024");
        } else if n as u64 > crate::decode::MAX_RECORD_BYTES as u64 {
            t.doc.error(
                &t.span,
                format!(
                    "max_record_bytes must be at most {} (1 GiB: a batch's text column must stay under Arrow's 2 GiB)",
                    crate::decode::MAX_RECORD_BYTES
                ),
            );
        } else {
            csv.max_record_bytes = n as usize;
        }
    }
    let pattern = t.str("pattern").map(|s| s.value);
    let recursive = t.bool("recursive").unwrap_or(false);
    let records_path = t.str("records_path").map(|s| s.value);
    let poll_every = t
        .get("poll_interval")
        .and_then(|v| v.duration())
        .map_or(std::time::Duration::from_secs(2), |d| d.value);
    let watch = match t.get("watch").and_then(|v| v.choice(&["events", "poll"])) {
        Some(w) if w.value == "poll" => WatchMode::Poll { every: poll_every },
        _ => WatchMode::Events,
    };
    let settle = t
        .get("settle")
        .and_then(|v| v.duration())
        .map_or(std::time::Duration::from_secs(1), |d| d.value);
    let ordered = t.bool("ordered").unwrap_or(false);
    let attempts = match t.get("attempts").and_then(|v| v.int()) {
        Some(n) if (1..=100).contains(&n) => n as u32,
        Some(_) => {
            t.doc.error(&t.span, "attempts must be between 1 and 100");
            5
        }
        None => 5,
    };
    let after_load = match t
        .get("after_load")
        .and_then(|v| v.choice(&["move", "delete", "keep"]))
    {
        Some(a) if a.value == "delete" => AfterLoad::Delete,
        Some(a) if a.value == "keep" => AfterLoad::Keep,
        _ => AfterLoad::Move,
    };
    let batch_rows = match t.get("batch_rows").and_then(|v| v.int()) {
        Some(n) if (1..=1_000_000).contains(&n) => n as usize,
        Some(_) => {
            t.doc
                .error(&t.span, "batch_rows must be between 1 and 1000000");
            DEFAULT_BATCH_ROWS
        }
        None => DEFAULT_BATCH_ROWS,
    };
    t.finish();
    kind?;
    Some(SourceSpec {
        path: root.join(path?.value),
        format,
        pattern,
        recursive,
        csv,
        records_path,
        batch_rows,
        watch,
        settle,
        after_load,
        ordered,
        attempts,
    })
}

#[allow(clippy::too_many_arguments)]
fn pipeline(
    root: &Path,
    name: &At<String>,
    value: &ValueReader<'_, '_, '_>,
    destinations: &BTreeMap<String, Destination>,
    references: &BTreeMap<String, Reference>,
    vars: &HashMap<String, String>,
    contract_errors: &mut Vec<ConfigError>,
) -> Option<Pipeline> {
    let doc = value.doc;
    let t = value.table()?;
    let source = t.require("source").and_then(|v| source(root, &v));
    let contract = t.get("contract").and_then(|v| {
        if v.is_table() {
            compile_contract(v.table()?, Some(&doc.file))
        } else {
            let path = v.str()?;
            let file = root.join(&path.value);
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let cdoc = Document::new(&file, text, vars.clone());
                    let contract = read_contract_file(&cdoc);
                    contract_errors.extend(cdoc.take_errors());
                    contract
                }
                Err(e) => {
                    doc.error_hint(
                        &path.span,
                        format!("cannot read contract file {}: {e}", file.display()),
                        "the path is relative to the folder of caudal.toml",
                    );
                    None
                }
            }
        }
    });
    let on_invalid = t
        .get("on_invalid")
        .and_then(|v| v.choice(&["reject", "quarantine", "drop"]))
        .map_or(OnInvalid::Reject, |v| match v.value.as_str() {
            "quarantine" => OnInvalid::Quarantine,
            "drop" => OnInvalid::Drop,
            _ => OnInvalid::Reject,
        });
    let transform = t.str("transform").and_then(|s| {
        match crate::transform::check_query_syntax(&s.value, references.keys()) {
            Ok(()) => Some(s.value),
            Err(message) => {
                doc.error_hint(
                    &s.span,
                    format!(
                        "pipeline `{}`: transform is not valid SQL: {message}",
                        name.value
                    ),
                    "write one SELECT statement over the table `input`",
                );
                None
            }
        }
    });
    let mut loads = Vec::new();
    if let Some(v) = t.require("load") {
        let items = if v.is_table() {
            Some(vec![v])
        } else {
            v.array()
        };
        for item in items.unwrap_or_default() {
            if let Some(l) = load_spec(&item, destinations) {
                loads.push(l);
            }
        }
        if loads.is_empty() && !doc.has_errors() {
            doc.error(
                &t.span,
                format!(
                    "pipeline `{}` loads into nothing: add at least one entry to `load`",
                    name.value
                ),
            );
        }
    }
    let mut seen = Vec::new();
    for l in &loads {
        let key = (l.into.clone(), l.table.clone());
        if seen.contains(&key) {
            doc.error(
                &t.span,
                format!(
                    "pipeline `{}` loads table `{}` of `{}` twice",
                    name.value, l.table, l.into
                ),
            );
        }
        seen.push(key);
    }
    t.finish();
    Some(Pipeline {
        name: name.value.clone(),
        source: source?,
        contract,
        on_invalid,
        transform,
        loads,
    })
}

fn read_contract_file(cdoc: &Document) -> Option<Contract> {
    let (parsed, syntax) = DeTable::parse_recoverable(cdoc.text());
    if !syntax.is_empty() {
        for e in syntax {
            let span = e.span().unwrap_or(0..0);
            cdoc.error(&span, format!("TOML syntax: {}", e.message()));
        }
        return None;
    }
    compile_contract(TableReader::root(cdoc, &parsed), Some(&cdoc.file))
}

fn valid_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn load_spec(
    item: &ValueReader<'_, '_, '_>,
    destinations: &BTreeMap<String, Destination>,
) -> Option<LoadSpec> {
    let doc = item.doc;
    let t = item.table()?;
    let into = t.require("into").and_then(|v| v.str());
    let table = t.require("table").and_then(|v| v.str());
    let mode_name = t
        .get("mode")
        .and_then(|v| v.choice(&["append", "replace", "merge"]));
    let key = t.get("key").and_then(|v| v.str_list());
    let partition_by = t.str("partition_by");
    let evolve = t.bool("evolve").unwrap_or(false);
    let dest = into.as_ref().and_then(|into| {
        let d = destinations.get(&into.value);
        if d.is_none() {
            let names: Vec<&str> = destinations.keys().map(String::as_str).collect();
            let hint = match super::diagnostics::suggest(&into.value, names.iter().copied()) {
                Some(close) => format!("did you mean \"{close}\"?"),
                None if names.is_empty() => "declare it under [destinations.NAME]".to_string(),
                None => format!("declared destinations: {}", names.join(", ")),
            };
            doc.error_hint(
                &into.span,
                format!("load into undeclared destination \"{}\"", into.value),
                hint,
            );
        }
        d
    });
    if let Some(table) = &table
        && !valid_identifier(&table.value)
    {
        doc.error(
            &table.span,
            format!(
                "table name \"{}\" must be letters, digits and _ (not starting with a digit)",
                table.value
            ),
        );
    }
    let mode = match mode_name.as_ref().map(|m| m.value.as_str()) {
        Some("merge") => match &key {
            Some(k) if !k.is_empty() => WriteMode::Merge {
                key: k.iter().map(|k| k.value.clone()).collect(),
            },
            _ => {
                doc.error_hint(
                    &t.span,
                    "mode = \"merge\" needs a key",
                    "add key = [\"id\"] naming the columns that identify a row",
                );
                WriteMode::Append
            }
        },
        Some("replace") => WriteMode::Replace,
        _ => WriteMode::Append,
    };
    if key.is_some() && !matches!(mode, WriteMode::Merge { .. }) {
        doc.error(&t.span, "`key` is only used with mode = \"merge\"");
    }
    match dest {
        Some(Destination::ParquetLake { .. }) => {
            if matches!(mode, WriteMode::Merge { .. }) {
                doc.error_hint(
                    &t.span,
                    "the Parquet lake does not support mode = \"merge\"",
                    "use append or replace, or merge into a SQL destination",
                );
            }
        }
        Some(Destination::Sqlite { .. }) => {
            if let Some(p) = &partition_by {
                doc.error(
                    &p.span,
                    "partition_by applies to Parquet lake destinations, not SQLite",
                );
            }
        }
        None => {}
    }
    t.finish();
    Some(LoadSpec {
        into: into?.value,
        table: table?.value,
        mode,
        partition_by: partition_by.map(|p| p.value),
        evolve,
    })
}

//! The Parquet lake: Hive partitions `<table>/<column>=<value>/part-<load id>-<n>.parquet`.
//!
//! Commit protocol (all under `<lake>/_caudal/`):
//! 1. write files under `staging/<load id>/<n>.parquet` and fsync them;
//! 2. write `loads/<table>/<load id>.json` (the manifest) by temp file + fsync + rename: this
//!    rename is the commit point;
//! 3. rename the staged files into place, then remove the staging folder.
//!
//! Recovery: a manifest whose staging folder still exists is finished (step 3 is idempotent);
//! a staging folder without a manifest is discarded. Readers never see partial files because
//! staging lives outside the table folders.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::kernels::partition::partition;
use datafusion::arrow::compute::{SortOptions, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

mod codecs;
mod encoders;

use super::{DeliveryWriter, LoadContext, SinkInput, text};
use crate::config::{LoadSpec, WriteMode};
use crate::error::{Context, Error, Result};
use codecs::ColumnCodecs;
use encoders::{Encoders, FileId, Places};

/// Partition files open at once per table (each holds ~2.5 MB of encoder state on flights). Rows usually arrive grouped by their partition
/// (sorted exports, daily files), so a few open writers give one file per partition; a
/// partition that comes back after its writer was closed gets a further file (`-1`, `-2`, …),
/// which keeps memory bounded even when rows are in random order.
const MAX_OPEN_FILES: usize = 8;
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

#[derive(Serialize, Deserialize)]
struct Manifest {
    load_id: String,
    pipeline: String,
    source: String,
    table: String,
    replace: bool,
    /// Paths relative to the lake root.
    files: Vec<ManifestFile>,
}

#[derive(Serialize, Deserialize)]
struct ManifestFile {
    path: String,
    /// The file's name in the staging folder. Manifests written before staging was flat have
    /// none: their files were staged under `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    staged: Option<String>,
    rows: u64,
}

fn staging_root(lake: &Path) -> PathBuf {
    lake.join("_caudal").join("staging")
}

fn manifest_path(lake: &Path, table: &str, load_id: &str) -> PathBuf {
    lake.join("_caudal")
        .join("loads")
        .join(table)
        .join(format!("{load_id}.json"))
}

/// Make everything written under `root` durable. On Linux one `syncfs` flushes the whole
/// filesystem, which costs one call instead of one fsync per partition file and folder.
#[cfg(target_os = "linux")]
fn sync_tree(root: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let dir = File::open(root).context(|| format!("opening {}", root.display()))?;
    // SAFETY: syncfs only reads the descriptor, which stays open for the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(Error::io(
            format!("syncing {}", root.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn sync_tree(root: &Path) -> Result<()> {
    for entry in fs::read_dir(root).context(|| format!("listing {}", root.display()))? {
        let path = entry
            .context(|| format!("listing {}", root.display()))?
            .path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .context(|| format!("syncing {}", path.display()))?;
        }
    }
    sync_dir(root)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("syncing folder {}", dir.display()))
}

/// A partition file open in one of the encoders.
struct OpenFile {
    id: FileId,
    encoder: usize,
    rows: u64,
    last_used: u64,
}

struct TableWriter {
    /// Position among the delivery's tables, by which encoders hand finished files back.
    index: usize,
    spec: LoadSpec,
    /// Output table folder name (`flights` or `flights_rejects`).
    table: String,
    partition_by: Option<String>,
    files: HashMap<String, OpenFile>,
    /// Files already closed (evicted or finished), waiting for the manifest.
    closed: Vec<ManifestFile>,
    /// How many files each partition folder has had in this delivery.
    file_counts: HashMap<String, u32>,
    tick: u64,
    /// Set by the first batch of the delivery.
    format: Option<FileFormat>,
    /// The delivery's writer properties, which the format's codecs refine for this table.
    base_properties: WriterProperties,
}

/// What every file of one table in one delivery holds, and how its columns are written.
struct FileFormat {
    schema: SchemaRef,
    codecs: ColumnCodecs,
}

pub struct LakeWriter {
    lake: PathBuf,
    ctx: LoadContext,
    encoders: Encoders,
    tables: Vec<TableWriter>,
    rejects: Vec<TableWriter>,
}

impl LakeWriter {
    pub fn open(
        lake: &Path,
        zstd_level: i32,
        loads: &[LoadSpec],
        ctx: &LoadContext,
    ) -> Result<Option<Self>> {
        let committed = loads
            .iter()
            .all(|l| manifest_path(lake, &l.table, &ctx.load_id).exists());
        if committed {
            return Ok(None);
        }
        let staging = staging_root(lake).join(&ctx.load_id);
        if staging.exists() {
            fs::remove_dir_all(&staging)
                .context(|| format!("clearing stale staging {}", staging.display()))?;
        }
        let level =
            ZstdLevel::try_new(zstd_level).map_err(|e| Error::usage(format!("zstd_level: {e}")))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .build();
        fs::create_dir_all(&staging).context(|| format!("creating {}", staging.display()))?;
        let encoders = Encoders::start(&Places {
            staging: staging.clone(),
            lake: lake.to_path_buf(),
        })?;
        let table = |index: usize, spec: &LoadSpec, name: String, partition_by: Option<String>| {
            TableWriter {
                index,
                spec: spec.clone(),
                table: name,
                partition_by,
                files: HashMap::new(),
                closed: Vec::new(),
                file_counts: HashMap::new(),
                tick: 0,
                format: None,
                base_properties: props.clone(),
            }
        };
        Ok(Some(LakeWriter {
            lake: lake.to_path_buf(),
            ctx: ctx.clone(),
            encoders,
            tables: loads
                .iter()
                .enumerate()
                .map(|(i, l)| table(i, l, l.table.clone(), l.partition_by.clone()))
                .collect(),
            rejects: loads
                .iter()
                .enumerate()
                .map(|(i, l)| table(loads.len() + i, l, format!("{}_rejects", l.table), None))
                .collect(),
        }))
    }

    fn staging(&self) -> PathBuf {
        staging_root(&self.lake).join(&self.ctx.load_id)
    }
}

/// Partition folder values as Hive writes them: dates as YYYY-MM-DD, text escaped.
fn partition_value(array: &ArrayRef, row: usize) -> Result<String> {
    if array.is_null(row) {
        return Ok(NULL_PARTITION.into());
    }
    let raw = match array.data_type() {
        DataType::Date32 => {
            let mut s = String::new();
            text::date(
                &mut s,
                i64::from(
                    array
                        .as_primitive::<datafusion::arrow::datatypes::Date32Type>()
                        .value(row),
                ),
            );
            s
        }
        _ => {
            let t = crate::contract::to_text(&array.slice(row, 1))?;
            t.as_string::<i32>().value(0).to_string()
        }
    };
    Ok(raw
        .chars()
        .map(|c| match c {
            '/' | '\\' | '=' | ':' | '%' | '"' | '\'' | '#' | '?' | '*' | '[' | ']' | '^'
            | '\n' | '\r' | '\t' => {
                let mut b = [0u8; 4];
                c.encode_utf8(&mut b)
                    .bytes()
                    .map(|x| format!("%{x:02X}"))
                    .collect::<String>()
            }
            c => c.to_string(),
        })
        .collect())
}

/// Rows of one partition within a batch, and the partition's folder value.
type PartitionRange = (std::ops::Range<usize>, String);

/// The batch with the rows of each partition value together, and the range and folder value of
/// each partition. Input whose rows already are (the usual shape: exports sorted by date) is
/// passed on without copying; other input is sorted first.
fn grouped_by(batch: &RecordBatch, index: usize) -> Result<(RecordBatch, Vec<PartitionRange>)> {
    let split = |batch: &RecordBatch| -> Result<Vec<PartitionRange>> {
        let key = batch.column(index);
        partition(std::slice::from_ref(key))
            .context(|| "splitting rows by partition".into())?
            .ranges()
            .into_iter()
            .map(|range| Ok((range.clone(), partition_value(key, range.start)?)))
            .collect()
    };
    let ranges = split(batch)?;
    let mut seen = std::collections::HashSet::with_capacity(ranges.len());
    if ranges.iter().all(|(_, value)| seen.insert(value.as_str())) {
        return Ok((batch.clone(), ranges));
    }
    let order = sort_to_indices(batch.column(index), Some(SortOptions::default()), None)
        .context(|| "ordering rows by partition".into())?;
    let sorted =
        take_record_batch(batch, &order).context(|| "ordering rows by partition".into())?;
    let ranges = split(&sorted)?;
    Ok((sorted, ranges))
}

impl TableWriter {
    fn write(
        &mut self,
        batch: &RecordBatch,
        encoders: &mut Encoders,
        ctx: &LoadContext,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let Some(column) = self.partition_by.clone() else {
            return self.append(String::new(), batch.clone(), encoders, ctx);
        };
        let Some(index) = batch.schema().index_of(&column).ok() else {
            return Err(Error::usage(format!(
                "table {}: partition_by column \"{column}\" is not among the columns the pipeline produces ({})",
                self.table,
                batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let (grouped, ranges) = grouped_by(batch, index)?;
        let mut data_schema = grouped.schema().as_ref().clone();
        let fields: Vec<_> = data_schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, f)| f.clone())
            .collect();
        data_schema = Schema::new(fields);
        let data_schema = Arc::new(data_schema);
        let mut columns = grouped.columns().to_vec();
        columns.remove(index);
        let data = RecordBatch::try_new(data_schema, columns)
            .context(|| "dropping the partition column".into())?;
        for (range, value) in ranges {
            let dir = format!("{column}={value}");
            self.append(
                dir,
                data.slice(range.start, range.end - range.start),
                encoders,
                ctx,
            )?;
        }
        Ok(())
    }

    fn append(
        &mut self,
        dir: String,
        batch: RecordBatch,
        encoders: &mut Encoders,
        ctx: &LoadContext,
    ) -> Result<()> {
        let base = &self.base_properties;
        let format = self.format.get_or_insert_with(|| FileFormat {
            schema: batch.schema(),
            codecs: ColumnCodecs::new(base, &batch.schema()),
        });
        if format.schema.fields() != batch.schema().fields() {
            return Err(Error::Internal(format!(
                "table {}: batch schema changed within one delivery",
                self.table
            )));
        }
        format.codecs.observe(&batch, &dir)?;
        self.tick += 1;
        if !self.files.contains_key(&dir) {
            if self.files.len() >= MAX_OPEN_FILES {
                let oldest = self
                    .files
                    .iter()
                    .min_by_key(|(_, f)| f.last_used)
                    .map(|(k, _)| k.clone());
                if let Some(f) = oldest.and_then(|k| self.files.remove(&k)) {
                    encoders.close(f.encoder, f.id, self.index, f.rows)?;
                }
            }
            let n = self.file_counts.entry(dir.clone()).or_insert(0);
            let name = format!("part-{}-{n}.parquet", ctx.load_id);
            *n += 1;
            let relative = if dir.is_empty() {
                format!("{}/{name}", self.table)
            } else {
                format!("{}/{dir}/{name}", self.table)
            };
            let properties = format.codecs.properties().clone();
            let (id, encoder) = encoders.open(relative, batch.schema(), properties)?;
            self.files.insert(
                dir.clone(),
                OpenFile {
                    id,
                    encoder,
                    rows: 0,
                    last_used: 0,
                },
            );
        }
        let Some(file) = self.files.get_mut(&dir) else {
            return Err(Error::Internal("partition writer vanished".into()));
        };
        file.rows += batch.num_rows() as u64;
        file.last_used = self.tick;
        encoders.write(file.encoder, file.id, batch)
    }

    /// Ask the encoders to finish every open file (footers written, not yet synced).
    fn close_files(&mut self, encoders: &mut Encoders) -> Result<()> {
        for (_, f) in self.files.drain() {
            encoders.close(f.encoder, f.id, self.index, f.rows)?;
        }
        Ok(())
    }

    /// Write the manifest under a temporary name; the files must already be durable.
    fn write_manifest(
        &mut self,
        lake: &Path,
        staging: &Path,
        ctx: &LoadContext,
    ) -> Result<Option<PathBuf>> {
        let manifest = manifest_path(lake, &self.table, &ctx.load_id);
        if manifest.exists() {
            return Ok(None);
        }
        let mut files = std::mem::take(&mut self.closed);
        files.sort_by(|a, b| a.path.cmp(&b.path));
        if files.is_empty() && self.spec.mode != WriteMode::Replace {
            return Ok(None);
        }
        let record = Manifest {
            load_id: ctx.load_id.clone(),
            pipeline: ctx.pipeline.clone(),
            source: ctx.source.clone(),
            table: self.table.clone(),
            replace: self.spec.mode == WriteMode::Replace && !self.table.ends_with("_rejects"),
            files,
        };
        let Some(parent) = manifest.parent() else {
            return Err(Error::Internal("manifest path has no folder".into()));
        };
        fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
        let tmp = staging.join(format!("{}.manifest.json", self.table));
        let bytes = serde_json::to_vec_pretty(&record)
            .map_err(|e| Error::Internal(format!("manifest: {e}")))?;
        fs::write(&tmp, bytes).context(|| format!("writing {}", tmp.display()))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .context(|| format!("syncing {}", tmp.display()))?;
        Ok(Some(tmp))
    }
}

/// Step 3 of the protocol, idempotent: move staged files into place, apply `replace`.
fn publish(lake: &Path, manifest_file: &Path) -> Result<()> {
    let text =
        fs::read(manifest_file).context(|| format!("reading {}", manifest_file.display()))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        Error::Internal(format!("corrupt manifest {}: {e}", manifest_file.display()))
    })?;
    let staging = staging_root(lake).join(&manifest.load_id);
    let mut moved = false;
    for f in &manifest.files {
        let target = lake.join(&f.path);
        let staged = staging.join(f.staged.as_deref().unwrap_or(&f.path));
        if staged.exists() {
            move_into_place(&staged, &target, &f.path)?;
            moved = true;
        } else if !target.exists() {
            return Err(Error::Internal(format!(
                "load {}: file {} is neither staged nor published",
                manifest.load_id, f.path
            )));
        }
    }
    if moved {
        sync_tree(&lake.join(&manifest.table))?;
    }
    if manifest.replace {
        let keep: std::collections::HashSet<PathBuf> =
            manifest.files.iter().map(|f| lake.join(&f.path)).collect();
        remove_parquet_except(&lake.join(&manifest.table), &keep)?;
    }
    Ok(())
}

/// Rename a staged file to its place in the table. Its partition folder normally exists already
/// (the encoder made it); it is made here when it does not, e.g. when an aborted delivery
/// removed the empty folder in the meantime or when recovery publishes an older load.
fn move_into_place(staged: &Path, target: &Path, name: &str) -> Result<()> {
    match fs::rename(staged, target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && staged.exists() => {
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
            }
            fs::rename(staged, target).context(|| format!("moving {name} into place"))
        }
        result => result.context(|| format!("moving {name} into place")),
    }
}

fn remove_parquet_except(dir: &Path, keep: &std::collections::HashSet<PathBuf>) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            remove_parquet_except(&path, keep)?;
            if fs::read_dir(&path)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false)
            {
                let _ = fs::remove_dir(&path);
            }
        } else if path.extension().is_some_and(|e| e == "parquet") && !keep.contains(&path) {
            fs::remove_file(&path).context(|| format!("removing replaced {}", path.display()))?;
        }
    }
    Ok(())
}

/// Finish committed loads and discard uncommitted staging, after a crash.
pub fn recover_lake(lake: &Path) -> Result<usize> {
    let staging = staging_root(lake);
    let Ok(entries) = fs::read_dir(&staging) else {
        return Ok(0);
    };
    let mut finished = 0;
    let loads_root = lake.join("_caudal").join("loads");
    for entry in entries.flatten() {
        let load_id = entry.file_name().to_string_lossy().to_string();
        let mut any = false;
        if let Ok(tables) = fs::read_dir(&loads_root) {
            for t in tables.flatten() {
                let m = t.path().join(format!("{load_id}.json"));
                if m.exists() {
                    publish(lake, &m)?;
                    any = true;
                }
            }
        }
        if any {
            finished += 1;
        }
        fs::remove_dir_all(entry.path())
            .context(|| format!("removing staging {}", entry.path().display()))?;
    }
    Ok(finished)
}

impl DeliveryWriter for LakeWriter {
    fn write(&mut self, input: SinkInput) -> Result<()> {
        let (targets, batch) = match input {
            SinkInput::Rows(b) => (&mut self.tables, b),
            SinkInput::Rejects(b) => (&mut self.rejects, b),
        };
        for t in targets.iter_mut() {
            t.write(&batch, &mut self.encoders, &self.ctx)?;
        }
        Ok(())
    }

    fn prepare(&mut self) -> Result<()> {
        for t in self.tables.iter_mut().chain(self.rejects.iter_mut()) {
            t.close_files(&mut self.encoders)?;
        }
        for (index, file) in self.encoders.finish()? {
            let table = self
                .tables
                .iter_mut()
                .chain(self.rejects.iter_mut())
                .nth(index)
                .ok_or_else(|| Error::Internal(format!("lake file for unknown table {index}")))?;
            table.closed.push(file);
        }
        Ok(())
    }

    /// Syncing the staged files happens here rather than in `prepare`: the commits of a
    /// delivery's destinations run side by side, so the sync overlaps SQLite's commit and
    /// checkpoint instead of holding them back. Nothing that bad input can cause fails past
    /// `prepare`; only the disk can.
    fn commit(mut self: Box<Self>) -> Result<()> {
        let staging = self.staging();
        sync_tree(&staging)?;
        // Rejects first: a load counts as committed in the lake once its main tables'
        // manifests exist, so everything else must be committed before them.
        let mut manifests = Vec::new();
        for t in self.rejects.iter_mut().chain(self.tables.iter_mut()) {
            if let Some(m) = t.write_manifest(&self.lake, &staging, &self.ctx)? {
                manifests.push(m);
            }
        }
        for tmp in &manifests {
            let table = tmp
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".manifest.json"))
                .ok_or_else(|| Error::Internal("odd manifest name".into()))?;
            let target = manifest_path(&self.lake, table, &self.ctx.load_id);
            fs::rename(tmp, &target).context(|| format!("committing {}", target.display()))?;
            if let Some(parent) = target.parent() {
                sync_dir(parent)?;
            }
            publish(&self.lake, &target)?;
        }
        let staging = self.staging();
        if staging.exists() {
            fs::remove_dir_all(&staging).context(|| format!("removing {}", staging.display()))?;
        }
        Ok(())
    }

    fn abort(mut self: Box<Self>) {
        let staging = self.staging();
        // Waits for the encoder threads, so none writes into staging after it is removed.
        self.encoders.abandon();
        drop(self);
        if staging.exists()
            && let Err(e) = fs::remove_dir_all(&staging)
        {
            tracing::warn!(staging = %staging.display(), error = %e, "could not remove staging; it is discarded at the next start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "flights/dep_date=2013-01-01/part-L1-0.parquet";

    fn keyed(keys: &[Option<&str>]) -> RecordBatch {
        let key: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(keys.to_vec()));
        let row: ArrayRef = Arc::new(datafusion::arrow::array::Int64Array::from_iter_values(
            0..keys.len() as i64,
        ));
        RecordBatch::try_from_iter([("row", row), ("day", key)]).unwrap()
    }

    fn groups(batch: &RecordBatch) -> Vec<(String, Vec<i64>)> {
        let (grouped, ranges) = grouped_by(batch, 1).unwrap();
        let rows = grouped
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        ranges
            .into_iter()
            .map(|(range, value)| (value, range.map(|i| rows.value(i)).collect()))
            .collect()
    }

    #[test]
    fn grouped_rows_keep_their_order_and_scattered_rows_are_gathered() {
        let grouped = keyed(&[Some("b"), Some("b"), Some("a"), None, None]);
        assert_eq!(
            groups(&grouped),
            [
                ("b".to_string(), vec![0, 1]),
                ("a".to_string(), vec![2]),
                (NULL_PARTITION.to_string(), vec![3, 4]),
            ]
        );
        let scattered = keyed(&[Some("b"), Some("a"), Some("b"), None, Some("a")]);
        let mut found = groups(&scattered);
        for (_, rows) in &mut found {
            rows.sort_unstable();
        }
        found.sort();
        let mut expected = vec![
            ("a".to_string(), vec![1, 4]),
            ("b".to_string(), vec![0, 2]),
            (NULL_PARTITION.to_string(), vec![3]),
        ];
        expected.sort();
        assert_eq!(found, expected);
    }

    fn commit_manifest(lake: &Path, file: serde_json::Value) {
        let manifest = manifest_path(lake, "flights", "L1");
        fs::create_dir_all(manifest.parent().expect("manifest folder")).expect("mkdir");
        let record = serde_json::json!({
            "load_id": "L1", "pipeline": "flights", "source": "in.csv", "table": "flights",
            "replace": false, "files": [file],
        });
        fs::write(manifest, record.to_string()).expect("writing the manifest");
    }

    fn stage(path: &Path) {
        fs::create_dir_all(path.parent().expect("staged folder")).expect("mkdir");
        fs::write(path, b"staged bytes").expect("staging");
    }

    #[test]
    fn recovery_publishes_a_flat_staged_file_under_its_table_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = dir.path();
        stage(&staging_root(lake).join("L1").join("7.parquet"));
        commit_manifest(
            lake,
            serde_json::json!({ "path": FILE, "staged": "7.parquet", "rows": 3 }),
        );
        assert_eq!(recover_lake(lake).expect("recovery"), 1);
        assert_eq!(
            fs::read(lake.join(FILE)).expect("published"),
            b"staged bytes"
        );
        assert!(!staging_root(lake).join("L1").exists());
    }

    /// A load committed by a caudal that staged files under their table paths (manifests
    /// without `staged`) is still finished after an upgrade.
    #[test]
    fn recovery_publishes_a_load_staged_by_the_earlier_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = dir.path();
        stage(&staging_root(lake).join("L1").join(FILE));
        commit_manifest(lake, serde_json::json!({ "path": FILE, "rows": 3 }));
        assert_eq!(recover_lake(lake).expect("recovery"), 1);
        assert_eq!(
            fs::read(lake.join(FILE)).expect("published"),
            b"staged bytes"
        );
        assert!(!staging_root(lake).join("L1").exists());
    }
}

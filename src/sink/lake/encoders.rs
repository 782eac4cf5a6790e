//! Parquet encoding on several threads. The lake writer decides which partition file each row
//! goes to; the encoders turn rows into compressed column chunks, which is most of a lake load's
//! CPU. A file belongs to one encoder for its whole life, so its row groups stay in order, and
//! files are dealt round-robin: consecutive partitions (the usual shape of sorted input) land on
//! different threads.
//!
//! An encoder also creates the file's partition folder in the table, empty, so that the commit
//! only renames: creating hundreds of folders is slow on some filesystems (ext4 without a
//! journal looks for inodes that were not recently freed), and it then happens while rows are
//! still being encoded instead of after.
//!
//! Finished files are left to the commit's `syncfs`, not written back one by one as they close
//! (as the SQLite WAL is): that writeback ran on the encoder threads while both cores were busy
//! encoding, and the kernel does it for hundreds of files at once at the commit, beside SQLite's.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;

use super::ManifestFile;
use crate::error::{Context, Error, Result};

/// Buffered (not yet flushed) Parquet data per delivery before the largest writers flush a row
/// group: keeps memory flat however many partitions a file spreads over.
const BUFFER_BUDGET: usize = 32 * 1024 * 1024;
/// Jobs queued per encoder: enough to keep it busy while the router sorts the next batch.
const QUEUE: usize = 16;

/// A staged file, identified within its delivery.
pub type FileId = u64;

/// A finished file and the index of the table it belongs to.
pub type Finished = (usize, ManifestFile);

enum Job {
    Open {
        id: FileId,
        relative: String,
        schema: SchemaRef,
        properties: Box<WriterProperties>,
    },
    Write {
        id: FileId,
        batch: RecordBatch,
    },
    Close {
        id: FileId,
        table: usize,
        rows: u64,
    },
}

struct Encoder {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<Result<Vec<Finished>>>>,
}

/// The encoder threads of one delivery's lake writer.
pub struct Encoders {
    encoders: Vec<Encoder>,
    next_id: FileId,
    /// Partition folders this delivery created, to remove again (when still empty) if it aborts.
    folders: Arc<Mutex<Vec<PathBuf>>>,
}

/// Where an encoder writes: the delivery's staging folder and the lake it publishes into.
#[derive(Clone)]
pub struct Places {
    pub staging: PathBuf,
    pub lake: PathBuf,
}

/// Name of a staged file inside the delivery's staging folder. Staging is flat: no folder per
/// partition to create and remove again.
pub fn staged_name(id: FileId) -> String {
    format!("{id}.parquet")
}

impl Encoders {
    pub fn start(places: &Places) -> Result<Self> {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let budget = BUFFER_BUDGET / count;
        let folders = Arc::new(Mutex::new(Vec::new()));
        let mut encoders = Vec::with_capacity(count);
        for n in 0..count {
            let (tx, rx) = sync_channel(QUEUE);
            let places = places.clone();
            let created = folders.clone();
            let thread = std::thread::Builder::new()
                .name(format!("lake-encoder-{n}"))
                .spawn(move || encode(rx, &places, budget, &created))
                .map_err(|e| Error::io("starting a lake encoder thread", e))?;
            encoders.push(Encoder {
                jobs: Some(tx),
                thread: Some(thread),
            });
        }
        Ok(Encoders {
            encoders,
            next_id: 0,
            folders,
        })
    }

    /// Stop the encoders and remove the partition folders this delivery created, where nothing
    /// else has been put in them since.
    pub fn abandon(&mut self) {
        let _ = self.finish();
        let folders = match self.folders.lock() {
            Ok(mut f) => std::mem::take(&mut *f),
            Err(_) => return,
        };
        for folder in folders.iter().rev() {
            let _ = std::fs::remove_dir(folder);
        }
    }

    /// Start a new staged file for the table folder path `relative`; returns its id and the
    /// encoder that owns it.
    pub fn open(
        &mut self,
        relative: String,
        schema: SchemaRef,
        properties: WriterProperties,
    ) -> Result<(FileId, usize)> {
        let id = self.next_id;
        self.next_id += 1;
        let encoder = (id % self.encoders.len() as u64) as usize;
        self.send(
            encoder,
            Job::Open {
                id,
                relative,
                schema,
                properties: Box::new(properties),
            },
        )?;
        Ok((id, encoder))
    }

    pub fn write(&mut self, encoder: usize, id: FileId, batch: RecordBatch) -> Result<()> {
        self.send(encoder, Job::Write { id, batch })
    }

    pub fn close(&mut self, encoder: usize, id: FileId, table: usize, rows: u64) -> Result<()> {
        self.send(encoder, Job::Close { id, table, rows })
    }

    fn send(&mut self, encoder: usize, job: Job) -> Result<()> {
        let sent = self.encoders[encoder]
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if sent {
            return Ok(());
        }
        // The encoder stopped early, which it only does on an error: report that error.
        match self.encoders[encoder].join() {
            Err(e) => Err(e),
            Ok(_) => Err(Error::Internal("a lake encoder stopped early".into())),
        }
    }

    /// Wait for every encoder to finish its queue; the files closed so far, or the first error.
    pub fn finish(&mut self) -> Result<Vec<Finished>> {
        let mut finished = Vec::new();
        let mut failure = None;
        for encoder in &mut self.encoders {
            encoder.jobs = None;
        }
        for encoder in &mut self.encoders {
            match encoder.join() {
                Ok(files) => finished.extend(files),
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(finished),
        }
    }
}

impl Encoder {
    fn join(&mut self) -> Result<Vec<Finished>> {
        self.jobs = None;
        match self.thread.take() {
            None => Ok(Vec::new()),
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("a lake encoder panicked".into()))),
        }
    }
}

impl Drop for Encoders {
    /// Stop the threads before the staging folder can be removed under them.
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

struct Staged {
    writer: ArrowWriter<File>,
    relative: String,
}

/// One encoder thread: runs jobs until the router hangs up. Files still open then belong to an
/// aborted delivery and are dropped with its staging folder.
fn encode(
    jobs: Receiver<Job>,
    places: &Places,
    budget: usize,
    created: &Mutex<Vec<PathBuf>>,
) -> Result<Vec<Finished>> {
    let mut open: HashMap<FileId, Staged> = HashMap::new();
    let mut finished = Vec::new();
    for job in jobs {
        match job {
            Job::Open {
                id,
                relative,
                schema,
                properties,
            } => {
                if let Some(folder) = places.lake.join(&relative).parent() {
                    create_folder(folder, created)?;
                }
                let path: PathBuf = places.staging.join(staged_name(id));
                let file =
                    File::create(&path).context(|| format!("creating {}", path.display()))?;
                let writer = ArrowWriter::try_new(file, schema, Some(*properties))
                    .context(|| format!("starting {relative}"))?;
                open.insert(id, Staged { writer, relative });
            }
            Job::Write { id, batch } => {
                let Some(staged) = open.get_mut(&id) else {
                    return Err(Error::Internal(format!("lake file {id} is not open")));
                };
                staged
                    .writer
                    .write(&batch)
                    .context(|| format!("writing {}", staged.relative))?;
                flush_over_budget(&mut open, budget)?;
            }
            Job::Close { id, table, rows } => {
                let Some(staged) = open.remove(&id) else {
                    return Err(Error::Internal(format!("lake file {id} is not open")));
                };
                staged
                    .writer
                    .close()
                    .context(|| format!("finishing {}", staged.relative))?;
                finished.push((
                    table,
                    ManifestFile {
                        path: staged.relative,
                        staged: Some(staged_name(id)),
                        rows,
                    },
                ));
            }
        }
    }
    Ok(finished)
}

/// Create a partition folder (and its parents), remembering each one this call created.
fn create_folder(folder: &Path, created: &Mutex<Vec<PathBuf>>) -> Result<()> {
    let mut result = std::fs::create_dir(folder);
    if let (Err(e), Some(parent)) = (&result, folder.parent())
        && e.kind() == std::io::ErrorKind::NotFound
    {
        create_folder(parent, created)?;
        result = std::fs::create_dir(folder);
    }
    match result {
        Ok(()) => {
            if let Ok(mut list) = created.lock() {
                list.push(folder.to_path_buf());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(format!("creating {}", folder.display()), e)),
    }
}

/// Flush the largest files' row groups until the buffered data fits the budget again.
fn flush_over_budget(open: &mut HashMap<FileId, Staged>, budget: usize) -> Result<()> {
    let mut total: usize = open.values().map(|s| s.writer.in_progress_size()).sum();
    while total > budget {
        let Some(largest) = open
            .values_mut()
            .max_by_key(|s| s.writer.in_progress_size())
        else {
            break;
        };
        let before = largest.writer.in_progress_size();
        largest
            .writer
            .flush()
            .context(|| format!("flushing {}", largest.relative))?;
        if before == 0 {
            break;
        }
        total -= before.saturating_sub(largest.writer.in_progress_size());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use datafusion::parquet::file::properties::WriterProperties;

    use super::*;

    fn batch() -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..5_000));
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..5_000).map(|i| format!("carrier-{}", i % 17)),
        ));
        RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap()
    }

    fn parquet_bytes(level: i32) -> Vec<u8> {
        let batch = batch();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(level).unwrap()))
            .build();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        out
    }

    fn read_back(parquet: &[u8]) -> RecordBatch {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, parquet).unwrap();
        let batches = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .collect::<std::result::Result<Vec<_>, _>>()
            .unwrap();
        datafusion::arrow::compute::concat_batches(&batch().schema(), &batches).unwrap()
    }

    /// vendor/zstd-safe hands a context dropped on a thread to the next one created there: it
    /// still has the large workspace of a level-19 compression. Were `[patch.crates-io]` lost,
    /// the new context would be as small as one that never compressed.
    #[test]
    fn a_dropped_zstd_context_is_reused_on_its_thread() {
        let bare = std::thread::spawn(|| zstd_safe::CCtx::create().sizeof())
            .join()
            .unwrap();
        let (used, next) = std::thread::spawn(|| {
            let input: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
            let mut out = Vec::with_capacity(zstd_safe::compress_bound(input.len()));
            let mut context = zstd_safe::CCtx::create();
            context.compress(&mut out, &input, 19).unwrap();
            let used = context.sizeof();
            drop(context);
            (used, zstd_safe::CCtx::create().sizeof())
        })
        .join()
        .unwrap();
        assert!(
            used > 10 * bare,
            "level 19 left {used} bytes, a bare context has {bare}"
        );
        assert_eq!(next, used);
    }

    /// The vendored zstd-safe keeps dropped contexts for reuse on their thread: one that has
    /// compressed at another level, and decompressed, must write the same bytes as a new one.
    #[test]
    fn reused_zstd_contexts_write_what_new_ones_do() {
        let fresh = std::thread::spawn(|| parquet_bytes(1)).join().unwrap();
        let reused = std::thread::spawn(|| {
            let other = parquet_bytes(19);
            assert_eq!(read_back(&other), batch());
            parquet_bytes(1)
        })
        .join()
        .unwrap();
        assert_eq!(fresh, reused);
        assert_eq!(read_back(&reused), batch());
    }
}

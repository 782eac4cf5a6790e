//! SQLite destination: rows are bound from Arrow arrays into multi-row INSERTs inside one
//! transaction per delivery; the `_caudal_loads` marker row is written in that same transaction.

mod insert;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Schema};
use rusqlite::Connection;

use self::insert::{Column, InsertStatement};
use super::writeback::start_writeback;
use super::{DeliveryWriter, LoadContext, SinkInput};
use crate::config::{LoadSpec, WriteMode};
use crate::error::{Context, Error, Result};

/// Page size of the databases caudal creates; see `open_connection`.
const NEW_DATABASE_PAGE_SIZE: u32 = 16384;
const MARKERS: &str = "_caudal_loads";
/// Rows bound into one INSERT statement.
const ROWS_PER_STATEMENT: usize = 64;
/// SQLite's limit on parameters per statement (SQLITE_MAX_VARIABLE_NUMBER since 3.32).
const MAX_PARAMS: usize = 32_766;
/// Write-ahead log size past which `prepare` syncs the transaction's pages ahead of the commit.
const EARLY_SYNC_WAL_BYTES: u64 = 8 * 1024 * 1024;

pub fn open_connection(path: &Path) -> Result<Connection> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    }
    let conn =
        Connection::open(path).context(|| format!("opening SQLite database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(30))
        .context(|| "setting busy timeout".into())?;
    // FULL: in WAL mode NORMAL leaves a commit in the OS cache until the next checkpoint, and a
    // delivery's source file is moved or deleted right after its commit, so a power failure in
    // between would lose the rows. FULL costs one WAL fsync per commit; on a bulk load the
    // checkpoint that follows would have paid it anyway.
    // A 2 MB page cache (SQLite's default size): a bulk append then spills its pages to the WAL
    // as it goes, where their writeback starts at once, instead of holding 16 MB of them for
    // the commit. Measured against 16 MB on flights.csv: 16 MiB less peak RSS, and a faster
    // load in 14 of 20 interleaved pairs.
    // 16 KB pages for a database this connection creates (an existing one keeps its size): a
    // warehouse is appended to in bulk and scanned, and bigger pages mean fewer B-tree pages
    // to balance and fewer WAL frames per row.
    conn.execute_batch(&format!("PRAGMA page_size={NEW_DATABASE_PAGE_SIZE}; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-2048; PRAGMA temp_store=MEMORY;"))
        .context(|| format!("configuring {}", path.display()))?;
    Ok(conn)
}

/// A connection held open beside a destination's writers, so that none of theirs is ever the
/// last one: the last connection to close checkpoints (two fsyncs) and deletes the WAL. SQLite
/// counts a connection only once it has read, which creating the marker table does; created
/// here, its commit is off the path of the first delivery's rows.
pub fn open_keeper(path: &Path) -> Result<Connection> {
    let conn = open_connection(path)?;
    create_markers(&conn, path)?;
    Ok(conn)
}

/// The marker table is created in a transaction of its own, before any delivery's. Its pages,
/// created inside a bulk load, would be the oldest dirty pages, so the first to be spilled to
/// the WAL; the marker written at the end then overwrites them in place, and SQLite's commit
/// must re-read the whole WAL from there to redo its checksums.
fn create_markers(conn: &Connection, path: &Path) -> Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {MARKERS} (load_id TEXT NOT NULL, table_name TEXT NOT NULL, pipeline TEXT NOT NULL, source TEXT, rows INTEGER NOT NULL, rejected INTEGER NOT NULL, committed_at TEXT NOT NULL, PRIMARY KEY (load_id, table_name))"
    ))
    .context(|| format!("creating {MARKERS} in {}", path.display()))
}

fn sqlite_type(dt: &DataType) -> &'static str {
    match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Boolean => "INTEGER",
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "REAL",
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) => "NUMERIC",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BLOB",
        _ => "TEXT",
    }
}

pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Whether the database at `path` has a table named `table`.
pub fn table_exists(conn: &Connection, path: &Path, table: &str) -> Result<bool> {
    let count: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .context(|| format!("reading the schema of {}", path.display()))?;
    Ok(count > 0)
}

/// Whether the load's marker is in the database (absent when the marker table is).
fn committed(conn: &Connection, path: &Path, load_id: &str) -> Result<bool> {
    if !table_exists(conn, path, MARKERS)? {
        return Ok(false);
    }
    let done: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {MARKERS} WHERE load_id = ?1"),
            [load_id],
            |r| r.get(0),
        )
        .context(|| format!("reading load markers in {}", path.display()))?;
    Ok(done > 0)
}

/// One table this delivery writes; `prepared` once it was created or reconciled with the
/// columns of the first batch.
struct TableTarget {
    spec: LoadSpec,
    prepared: bool,
    rows: u64,
}

/// What a full-size INSERT's SQL is made of: statements are found by it without writing the
/// SQL again, which for 64 rows of 23 columns cost 1.4 million instructions per batch.
#[derive(PartialEq, Eq, Hash)]
struct StatementKey {
    table: String,
    /// Quoted column names, the extra columns last.
    names: Vec<String>,
    rows: usize,
    mode: WriteMode,
}

pub struct SqliteWriter {
    path: PathBuf,
    /// Full-size INSERTs, prepared once per table and shape. Dropped before `conn` closes
    /// (Drop below).
    statements: HashMap<StatementKey, InsertStatement>,
    conn: Connection,
    ctx: LoadContext,
    tables: Vec<TableTarget>,
    rejects_prepared: HashSet<String>,
    rejected: u64,
    state: TransactionState,
    /// The write-ahead log, opened once it exists, to start its writeback after each batch:
    /// the commit's fsync of a bulk load then finds most of it on disk already.
    wal: Option<std::fs::File>,
}

/// The write lock is taken at the first batch, not when the delivery starts, so that parallel
/// deliveries into one database decode, check and transform while another one writes.
#[derive(PartialEq, Eq)]
enum TransactionState {
    NotStarted,
    Open,
    /// Another process committed this load while we waited for the lock: write nothing.
    AlreadyCommitted,
}

impl SqliteWriter {
    pub fn open(path: &Path, loads: &[LoadSpec], ctx: &LoadContext) -> Result<Option<Self>> {
        let conn = open_connection(path)?;
        if committed(&conn, path, &ctx.load_id)? {
            return Ok(None);
        }
        Ok(Some(SqliteWriter {
            path: path.to_path_buf(),
            statements: HashMap::new(),
            conn,
            ctx: ctx.clone(),
            tables: loads
                .iter()
                .map(|l| TableTarget {
                    spec: l.clone(),
                    prepared: false,
                    rows: 0,
                })
                .collect(),
            rejects_prepared: HashSet::new(),
            rejected: 0,
            state: TransactionState::NotStarted,
            wal: None,
        }))
    }

    /// Take the write lock; the marker is read again inside the transaction, so a delivery
    /// committed by another worker while this one waited is seen.
    fn begin(&mut self) -> Result<()> {
        if self.state != TransactionState::NotStarted {
            return Ok(());
        }
        let path = &self.path;
        // Usually there already (open_keeper), unless the table was dropped since.
        create_markers(&self.conn, path)?;
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .context(|| format!("starting a transaction on {}", path.display()))?;
        self.state = TransactionState::Open;
        if committed(&self.conn, path, &self.ctx.load_id)? {
            self.conn
                .execute_batch("ROLLBACK")
                .context(|| format!("ending a transaction on {}", path.display()))?;
            self.state = TransactionState::AlreadyCommitted;
        }
        Ok(())
    }

    fn existing_columns(&self, table: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", quote(table)))
            .context(|| format!("reading the columns of {table}"))?;
        let cols = stmt
            .query_map([], |r| r.get::<_, String>(1))
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .context(|| format!("reading the columns of {table}"))?;
        Ok(cols)
    }

    /// Create the table, or reconcile the batch's columns with it (schema drift).
    fn prepare_table(&self, table: &str, schema: &Schema, evolve: bool) -> Result<()> {
        let existing = self.existing_columns(table)?;
        if existing.is_empty() {
            let cols: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| format!("{} {}", quote(f.name()), sqlite_type(f.data_type())))
                .collect();
            self.conn
                .execute_batch(&format!(
                    "CREATE TABLE {} ({})",
                    quote(table),
                    cols.join(", ")
                ))
                .context(|| format!("creating table {table} in {}", self.path.display()))?;
            return Ok(());
        }
        let new: Vec<_> = schema
            .fields()
            .iter()
            .filter(|f| !existing.iter().any(|c| c == f.name()))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        if !evolve {
            let names: Vec<&str> = new.iter().map(|f| f.name().as_str()).collect();
            return Err(Error::Usage {
                message: format!(
                    "schema drift: table {table} in {} has no column(s) {}; add evolve = true to the load to add them, or change the transform",
                    self.path.display(),
                    names.join(", ")
                ),
            });
        }
        for f in new {
            self.conn
                .execute_batch(&format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    quote(table),
                    quote(f.name()),
                    sqlite_type(f.data_type())
                ))
                .context(|| format!("adding column {} to {table}", f.name()))?;
        }
        Ok(())
    }

    fn start_wal_writeback(&mut self) {
        // SQLite's own name for the database (symbolic links resolved), which its WAL is named
        // after; an in-memory database has none, and no WAL.
        if self.wal.is_none()
            && let Some(db) = self.conn.path()
        {
            self.wal = std::fs::File::open(format!("{db}-wal")).ok();
        }
        if let Some(wal) = &self.wal {
            start_writeback(wal);
        }
    }

    /// Write the transaction's cached pages to the WAL and sync it, uncommitted, when the
    /// delivery is big. The other sinks of the delivery (a lake's encoders) usually finish
    /// later, and the commit waits for all of them; what is synced now is off that critical
    /// path, and the commit is left with its last frame to write and sync. Small deliveries
    /// skip it: their commit has little to sync, and a second sync would cost more.
    fn sync_ahead_of_commit(&self) -> Result<()> {
        let Some(wal) = &self.wal else {
            return Ok(());
        };
        if wal
            .metadata()
            .map_or(true, |m| m.len() < EARLY_SYNC_WAL_BYTES)
        {
            return Ok(());
        }
        let path = self.path.display();
        self.conn
            .cache_flush()
            .context(|| format!("writing the transaction to the WAL of {path}"))?;
        wal.sync_data()
            .context(|| format!("syncing the WAL of {path}"))
    }

    /// The INSERT for `rows` rows at once: fewer statement steps is most of SQLite's bulk speed.
    fn insert_sql(table: &str, names: &[String], rows: usize, mode: &WriteMode) -> String {
        let width = names.len();
        let tuples: Vec<String> = (0..rows)
            .map(|r| {
                let params: Vec<String> =
                    (1..=width).map(|c| format!("?{}", r * width + c)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            quote(table),
            names.join(", "),
            tuples.join(", ")
        );
        if let WriteMode::Merge { key } = mode {
            let keys: Vec<String> = key.iter().map(|k| quote(k)).collect();
            let updates: Vec<String> = names
                .iter()
                .filter(|n| !keys.contains(n))
                .map(|n| format!("{n} = excluded.{n}"))
                .collect();
            sql.push_str(&format!(" ON CONFLICT ({}) DO ", keys.join(", ")));
            if updates.is_empty() {
                sql.push_str("NOTHING");
            } else {
                sql.push_str(&format!("UPDATE SET {}", updates.join(", ")));
            }
        }
        sql
    }

    fn insert(
        &mut self,
        table: &str,
        batch: &RecordBatch,
        mode: &WriteMode,
        extra: &[(&str, &str)],
    ) -> Result<()> {
        let schema = batch.schema();
        let mut names: Vec<String> = schema.fields().iter().map(|f| quote(f.name())).collect();
        names.extend(extra.iter().map(|(n, _)| quote(n)));
        let width = names.len();
        let chunk = (MAX_PARAMS / width.max(1)).clamp(1, ROWS_PER_STATEMENT);
        let columns: Vec<Column> = batch
            .columns()
            .iter()
            .map(Column::new)
            .collect::<Result<_>>()?;
        let extra: Vec<&str> = extra.iter().map(|(_, value)| *value).collect();
        let total = batch.num_rows();
        let whole = total - total % chunk;
        if whole > 0 {
            let key = StatementKey {
                table: table.to_string(),
                names: names.clone(),
                rows: chunk,
                mode: mode.clone(),
            };
            self.statement(key)?
                .execute(&columns, &extra, 0..whole)
                .context(|| format!("inserting into {table}"))?;
        }
        if whole < total {
            // Tails vary in length from batch to batch: prepared for this once, not kept.
            let sql = Self::insert_sql(table, &names, total - whole, mode);
            InsertStatement::prepare(&self.conn, &sql, total - whole, width)
                .context(|| format!("preparing the insert into {table}"))?
                .execute(&columns, &extra, whole..total)
                .context(|| format!("inserting into {table}"))?;
        }
        Ok(())
    }

    /// The prepared statement for `key`, written and prepared at its first use.
    fn statement(&mut self, key: StatementKey) -> Result<&mut InsertStatement> {
        Ok(match self.statements.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let key = e.key();
                let sql = Self::insert_sql(&key.table, &key.names, key.rows, &key.mode);
                let prepared =
                    InsertStatement::prepare(&self.conn, &sql, key.rows, key.names.len())
                        .context(|| format!("preparing the insert into {}", key.table))?;
                e.insert(prepared)
            }
        })
    }
}

impl Drop for SqliteWriter {
    /// A statement left unfinalized would keep SQLite from closing the connection.
    fn drop(&mut self) {
        self.statements.clear();
    }
}

impl DeliveryWriter for SqliteWriter {
    fn write(&mut self, input: SinkInput) -> Result<()> {
        self.begin()?;
        if self.state == TransactionState::AlreadyCommitted {
            return Ok(());
        }
        match input {
            SinkInput::Rows(batch) => {
                if batch.num_rows() == 0 {
                    return Ok(());
                }
                for i in 0..self.tables.len() {
                    let (table, mode, evolve) = {
                        let t = &self.tables[i];
                        (t.spec.table.clone(), t.spec.mode.clone(), t.spec.evolve)
                    };
                    if !self.tables[i].prepared {
                        self.prepare_table(&table, &batch.schema(), evolve)?;
                        match &mode {
                            WriteMode::Replace => {
                                self.conn
                                    .execute_batch(&format!("DELETE FROM {}", quote(&table)))
                                    .context(|| format!("emptying {table} for replace"))?;
                            }
                            WriteMode::Merge { key } => {
                                let cols: Vec<String> = key.iter().map(|k| quote(k)).collect();
                                self.conn
                                    .execute_batch(&format!(
                                        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})",
                                        quote(&format!("{table}_caudal_key")),
                                        quote(&table),
                                        cols.join(", ")
                                    ))
                                    .map_err(|e| Error::Usage {
                                        message: format!("merge into {table} needs its key ({}) to be unique, but the existing table has duplicates or lacks the columns: {e}", key.join(", ")),
                                    })?;
                            }
                            WriteMode::Append => {}
                        }
                        self.tables[i].prepared = true;
                    }
                    self.insert(&table, &batch, &mode, &[])?;
                    self.tables[i].rows += batch.num_rows() as u64;
                }
            }
            SinkInput::Rejects(batch) => {
                self.rejected += batch.num_rows() as u64;
                let load_id = self.ctx.load_id.clone();
                for i in 0..self.tables.len() {
                    let table = format!("{}_rejects", self.tables[i].spec.table);
                    if !self.rejects_prepared.contains(&table) {
                        let mut fields: Vec<_> = batch
                            .schema()
                            .fields()
                            .iter()
                            .map(|f| f.as_ref().clone())
                            .collect();
                        fields.push(datafusion::arrow::datatypes::Field::new(
                            "_caudal_load_id",
                            DataType::Utf8,
                            false,
                        ));
                        self.prepare_table(&table, &Schema::new(fields), true)?;
                        self.rejects_prepared.insert(table.clone());
                    }
                    self.insert(
                        &table,
                        &batch,
                        &WriteMode::Append,
                        &[("_caudal_load_id", &load_id)],
                    )?;
                }
            }
        }
        self.start_wal_writeback();
        Ok(())
    }

    fn prepare(&mut self) -> Result<()> {
        self.begin()?;
        if self.state == TransactionState::AlreadyCommitted {
            return Ok(());
        }
        let now = chrono::Utc::now().to_rfc3339();
        for t in &self.tables {
            self.conn
                .execute(
                    &format!("INSERT INTO {MARKERS} (load_id, table_name, pipeline, source, rows, rejected, committed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                    rusqlite::params![self.ctx.load_id, t.spec.table, self.ctx.pipeline, self.ctx.source, t.rows as i64, self.rejected as i64, now],
                )
                .context(|| format!("writing the load marker in {}", self.path.display()))?;
        }
        self.sync_ahead_of_commit()
    }

    fn commit(self: Box<Self>) -> Result<()> {
        if self.state != TransactionState::Open {
            return Ok(());
        }
        self.conn
            .execute_batch("COMMIT")
            .context(|| format!("committing to {}", self.path.display()))
    }

    fn abort(self: Box<Self>) {
        if self.state != TransactionState::Open {
            return;
        }
        if let Err(e) = self.conn.execute_batch("ROLLBACK") {
            tracing::warn!(database = %self.path.display(), error = %e, "rollback failed; SQLite discards the transaction on close");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source file is disposed of right after the commit, so the commit must be on disk
    /// by then: SQLite's FULL (2) syncs the WAL at each commit, NORMAL (1) does not.
    #[test]
    fn destination_commits_reach_the_disk_before_returning() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("w.db")).unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!((sync, mode.as_str()), (2, "wal"));
    }

    #[test]
    fn new_databases_get_big_pages_and_existing_ones_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |conn: &Connection| -> i64 {
            conn.query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap()
        };
        let fresh = open_connection(&dir.path().join("new.db")).unwrap();
        fresh.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        assert_eq!(page_size(&fresh), 16384);

        let old = dir.path().join("old.db");
        let made_elsewhere = Connection::open(&old).unwrap();
        made_elsewhere
            .execute_batch(
                "PRAGMA page_size=4096; CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7);",
            )
            .unwrap();
        drop(made_elsewhere);
        let reopened = open_connection(&old).unwrap();
        reopened.execute("INSERT INTO t VALUES (8)", []).unwrap();
        assert_eq!(page_size(&reopened), 4096);
        let sum: i64 = reopened
            .query_row("SELECT sum(x) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sum, 15);
    }

    /// Enough rows of wide text to take the WAL past `EARLY_SYNC_WAL_BYTES`, so that `prepare`
    /// writes and syncs the transaction's pages before the commit.
    fn write_big_delivery(db: &Path, load_id: &str) -> (Box<SqliteWriter>, i64) {
        use datafusion::arrow::array::{Int64Array, StringArray};
        use datafusion::arrow::datatypes::Field;
        let spec = LoadSpec {
            into: "warehouse".into(),
            table: "t".into(),
            mode: WriteMode::Append,
            partition_by: None,
            evolve: false,
        };
        let ctx = LoadContext {
            load_id: load_id.into(),
            pipeline: "p".into(),
            source: "big.csv".into(),
        };
        let mut writer = Box::new(SqliteWriter::open(db, &[spec], &ctx).unwrap().unwrap());
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("text", DataType::Utf8, false),
        ]));
        let (batches, rows) = (12i64, 1000i64);
        for b in 0..batches {
            let ids = Int64Array::from_iter_values(b * rows..(b + 1) * rows);
            let text = StringArray::from_iter_values((0..rows).map(|r| format!("{r:01000}")));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![std::sync::Arc::new(ids), std::sync::Arc::new(text)],
            )
            .unwrap();
            writer.write(SinkInput::Rows(batch)).unwrap();
        }
        writer.prepare().unwrap();
        (writer, batches * rows)
    }

    #[test]
    fn a_big_delivery_synced_ahead_is_invisible_until_commit_and_gone_after_abort() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let _keeper = open_keeper(&db).unwrap();
        let reader = open_connection(&db).unwrap();
        let visible = |conn: &Connection| -> i64 {
            if !table_exists(conn, &db, "t").unwrap() {
                return 0;
            }
            conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };

        let (aborted, _) = write_big_delivery(&db, "L1");
        let wal = std::fs::metadata(dir.path().join("w.db-wal"))
            .unwrap()
            .len();
        assert!(
            wal >= EARLY_SYNC_WAL_BYTES,
            "WAL of {wal} bytes: too small to sync ahead"
        );
        assert_eq!(
            visible(&reader),
            0,
            "prepared rows are visible before the commit"
        );
        aborted.abort();
        assert_eq!(visible(&reader), 0, "an aborted delivery left rows behind");

        let (loaded, rows) = write_big_delivery(&db, "L2");
        loaded.commit().unwrap();
        assert_eq!(visible(&reader), rows);
        let sum: i64 = reader
            .query_row("SELECT sum(id) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sum, rows * (rows - 1) / 2);
        assert!(committed(&reader, &db, "L2").unwrap());
        assert!(!committed(&reader, &db, "L1").unwrap());
    }

    #[test]
    fn a_keeper_stops_a_closing_writer_from_checkpointing_and_deleting_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let wal = dir.path().join("w.db-wal");
        let _keeper = open_keeper(&db).unwrap();
        let writer = open_connection(&db).unwrap();
        writer
            .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        drop(writer);
        assert!(wal.exists(), "the writer's close deleted the WAL");
        let frames = std::fs::metadata(&wal).unwrap().len();
        assert!(frames > 0, "the writer's close checkpointed the WAL");
    }

    #[test]
    fn the_keeper_creates_the_marker_table_and_a_writer_recreates_a_dropped_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("w.db");
        let keeper = open_keeper(&db).unwrap();
        assert!(table_exists(&keeper, &db, MARKERS).unwrap());
        keeper
            .execute_batch(&format!("DROP TABLE {MARKERS}"))
            .unwrap();
        let (loaded, rows) = write_big_delivery(&db, "L1");
        loaded.commit().unwrap();
        let marked: i64 = keeper
            .query_row(
                &format!("SELECT rows FROM {MARKERS} WHERE load_id = 'L1'"),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(marked, rows);
    }
}

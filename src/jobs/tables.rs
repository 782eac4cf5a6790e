//! A destination's tables as DataFusion tables, for metric SQL: lake tables as Hive-partitioned
//! Parquet datasets (a filter on the partition column prunes folders), SQLite tables read
//! through Arrow.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Float64Builder, Int64Builder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use datafusion::sql::resolve::resolve_table_references;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use rusqlite::types::ValueRef;

use crate::config::{Destination, Project};
use crate::error::{Context, Error, Result};
use crate::sink::{open_connection, quote};

/// Register the tables `sql` reads from `destination` in `ctx`.
pub async fn register_tables(
    ctx: &SessionContext,
    destination: &Destination,
    sql: &str,
) -> Result<()> {
    let statements = DFParser::parse_sql(sql).map_err(|e| Error::Transform {
        context: "metric SQL".into(),
        message: e.to_string(),
    })?;
    let mut wanted = Vec::new();
    for statement in &statements {
        let (tables, _ctes) =
            resolve_table_references(statement, false).map_err(|e| Error::Transform {
                context: "metric SQL".into(),
                message: e.to_string(),
            })?;
        wanted.extend(tables.into_iter().map(|t| t.table().to_string()));
    }
    wanted.sort();
    wanted.dedup();
    let functions: Vec<String> = ctx.state().table_functions().keys().cloned().collect();
    for table in wanted {
        if ctx.table_exist(table.as_str()).unwrap_or(false) || functions.contains(&table) {
            continue;
        }
        let provider = match destination {
            Destination::ParquetLake { path, .. } => lake_table(path, &table)?
                .ok_or_else(|| missing_table(&table, path, &lake_tables(path)))?,
            Destination::Sqlite { path } => match sqlite_table(path, &table)? {
                Some(t) => t,
                None => return Err(missing_table(&table, path, &sqlite_tables(path)?)),
            },
        };
        ctx.register_table(table.as_str(), provider)
            .map_err(|e| Error::Transform {
                context: format!("registering {table}"),
                message: e.to_string(),
            })?;
    }
    Ok(())
}

/// For ad-hoc queries over every destination: `dest.table` reads that destination's table,
/// a bare `table` the first destination that has it (lakes first).
pub async fn register_for_query(ctx: &SessionContext, project: &Project, sql: &str) -> Result<()> {
    let statements = DFParser::parse_sql(sql).map_err(|e| Error::Transform {
        context: "query".into(),
        message: e.to_string(),
    })?;
    let functions: Vec<String> = ctx.state().table_functions().keys().cloned().collect();
    let mut ordered: Vec<(&String, &Destination)> = project.destinations.iter().collect();
    ordered.sort_by_key(|(_, d)| matches!(d, Destination::Sqlite { .. }));
    for statement in &statements {
        let (tables, _ctes) =
            resolve_table_references(statement, false).map_err(|e| Error::Transform {
                context: "query".into(),
                message: e.to_string(),
            })?;
        for reference in tables {
            let table = reference.table().to_string();
            if functions.contains(&table) {
                continue;
            }
            let candidates: Vec<(&String, &Destination)> = match reference.schema() {
                Some(schema) => ordered
                    .iter()
                    .filter(|(name, _)| name.as_str() == schema)
                    .copied()
                    .collect(),
                None => ordered.clone(),
            };
            let mut found = None;
            for (_, destination) in candidates {
                found = match destination {
                    Destination::ParquetLake { path, .. } => lake_table(path, &table)?,
                    Destination::Sqlite { path } => sqlite_table(path, &table)?,
                };
                if found.is_some() {
                    break;
                }
            }
            let Some(provider) = found else {
                return Err(Error::Usage {
                    message: format!(
                        "no destination has a table `{reference}`; tables are named after their destination (warehouse.sales) or alone (sales)"
                    ),
                });
            };
            if let Some(schema) = reference.schema()
                && ctx
                    .catalog("datafusion")
                    .is_some_and(|c| c.schema(schema).is_none())
                && let Some(catalog) = ctx.catalog("datafusion")
            {
                catalog
                    .register_schema(schema, Arc::new(MemorySchemaProvider::new()))
                    .map_err(|e| Error::Internal(e.to_string()))?;
            }
            ctx.register_table(reference.clone(), provider)
                .map_err(|e| Error::Transform {
                    context: format!("registering {reference}"),
                    message: e.to_string(),
                })?;
        }
    }
    Ok(())
}

fn lake_table(lake: &Path, table: &str) -> Result<Option<Arc<dyn TableProvider>>> {
    let dir = lake.join(table);
    if table.starts_with('_') || table.contains('/') || !dir.is_dir() {
        return Ok(None);
    }
    let failed = |message: String| Error::Transform {
        context: format!("reading lake table `{table}` ({})", dir.display()),
        message,
    };
    // The schema comes from the newest readable file alone (it has any column `evolve`
    // added; older files read those as null): inferring it from every file would open every
    // partition's footer, whatever the query's filter.
    let files = parquet_files_newest_first(&dir);
    if files.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    let mut schema = None;
    for path in &files {
        let loaded = std::fs::File::open(path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                ArrowReaderMetadata::load(&f, ArrowReaderOptions::default())
                    .map_err(|e| e.to_string())
            });
        match loaded {
            Ok(metadata) => {
                schema = Some(metadata.schema().clone());
                break;
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "unreadable lake file");
                problems.push(format!("{}: {e}", path.display()));
            }
        }
    }
    let Some(schema) = schema else {
        return Err(failed(format!(
            "no readable Parquet file: {}",
            problems.join("; ")
        )));
    };
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partition_columns(&dir));
    let url =
        ListingTableUrl::parse(format!("{}/", dir.display())).map_err(|e| failed(e.to_string()))?;
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    let listing = ListingTable::try_new(config).map_err(|e| failed(e.to_string()))?;
    Ok(Some(Arc::new(listing)))
}

fn parquet_files_newest_first(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<(std::time::SystemTime, std::path::PathBuf)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                let modified = meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
                files.push((modified, path));
            }
        }
    }
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files.into_iter().map(|(_, p)| p).collect()
}

fn lake_tables(lake: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(lake)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| !n.starts_with('_') && !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn missing_table(table: &str, at: &Path, known: &[String]) -> Error {
    Error::Usage {
        message: format!(
            "metric SQL reads table `{table}`, which {} does not have (tables: {}); has a pipeline loaded it yet?",
            at.display(),
            if known.is_empty() {
                "none yet".to_string()
            } else {
                known.join(", ")
            }
        ),
    }
}

/// The `column=value` folder levels under a lake table, typed as dates when every value seen
/// at that level is one (so `dep_date >= :period_start` compares dates and prunes folders).
fn partition_columns(dir: &Path) -> Vec<(String, DataType)> {
    let mut columns = Vec::new();
    let mut level = vec![dir.to_path_buf()];
    loop {
        let mut name: Option<String> = None;
        let mut all_dates = true;
        let mut next = Vec::new();
        for parent in &level {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let file_name = entry.file_name().to_string_lossy().to_string();
                let Some((column, value)) = file_name.split_once('=') else {
                    continue;
                };
                if !entry.path().is_dir() {
                    continue;
                }
                name.get_or_insert_with(|| column.to_string());
                all_dates &= chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok();
                next.push(entry.path());
            }
        }
        let Some(name) = name else { break };
        columns.push((
            name,
            if all_dates {
                DataType::Date32
            } else {
                DataType::Utf8
            },
        ));
        level = next;
    }
    columns
}

fn sqlite_tables(db: &Path) -> Result<Vec<String>> {
    let conn = open_connection(db)?;
    let mut known: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .context(|| format!("listing the tables of {}", db.display()))?;
    known.retain(|n: &String| !n.starts_with("sqlite_"));
    Ok(known)
}

/// Read a whole SQLite table into memory as Arrow, typed by the columns' declared types.
fn sqlite_table(db: &Path, table: &str) -> Result<Option<Arc<dyn TableProvider>>> {
    if !db.exists() {
        return Ok(None);
    }
    let conn = open_connection(db)?;
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({})", quote(table)))
        .context(|| format!("reading the columns of {table} in {}", db.display()))?;
    let columns: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
        .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
        .context(|| format!("reading the columns of {table} in {}", db.display()))?;
    if columns.is_empty() {
        return Ok(None);
    }
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, declared)| Field::new(name, arrow_type(declared), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let select = columns
        .iter()
        .map(|(n, _)| quote(n))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = conn
        .prepare(&format!("SELECT {select} FROM {}", quote(table)))
        .context(|| format!("reading {table} in {}", db.display()))?;
    let mut builders: Vec<ColumnBuilder> = schema
        .fields()
        .iter()
        .map(|f| ColumnBuilder::new(f.data_type()))
        .collect();
    let mut batches = Vec::new();
    let mut rows = stmt
        .query([])
        .context(|| format!("reading {table} in {}", db.display()))?;
    let mut in_batch = 0usize;
    while let Some(row) = rows
        .next()
        .context(|| format!("reading {table} in {}", db.display()))?
    {
        for (i, b) in builders.iter_mut().enumerate() {
            let value = row
                .get_ref(i)
                .context(|| format!("reading {table} in {}", db.display()))?;
            b.push(value);
        }
        in_batch += 1;
        if in_batch == 65_536 {
            batches.push(finish_batch(&schema, &mut builders)?);
            in_batch = 0;
        }
    }
    if in_batch > 0 || batches.is_empty() {
        batches.push(finish_batch(&schema, &mut builders)?);
    }
    let mem = MemTable::try_new(schema, vec![batches]).map_err(|e| Error::Transform {
        context: format!("reading {table} in {}", db.display()),
        message: e.to_string(),
    })?;
    Ok(Some(Arc::new(mem)))
}

/// SQLite's type affinity rules, reduced to the Arrow types caudal writes.
fn arrow_type(declared: &str) -> DataType {
    let d = declared.to_ascii_uppercase();
    if d.contains("INT") {
        DataType::Int64
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        DataType::Utf8
    } else if d.contains("BLOB") {
        DataType::Binary
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") || d.contains("NUM") {
        DataType::Float64
    } else {
        DataType::Utf8
    }
}

enum ColumnBuilder {
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
}

impl ColumnBuilder {
    fn new(dt: &DataType) -> Self {
        match dt {
            DataType::Int64 => ColumnBuilder::Int(Int64Builder::new()),
            DataType::Float64 => ColumnBuilder::Float(Float64Builder::new()),
            DataType::Binary => ColumnBuilder::Bytes(BinaryBuilder::new()),
            _ => ColumnBuilder::Text(StringBuilder::new()),
        }
    }

    /// SQLite may hold a value of another type than the column's; it is converted when that
    /// is lossless and read as null otherwise.
    fn push(&mut self, v: ValueRef<'_>) {
        match self {
            ColumnBuilder::Int(b) => b.append_option(match v {
                ValueRef::Integer(i) => Some(i),
                ValueRef::Real(f) if f.fract() == 0.0 => Some(f as i64),
                ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|s| s.parse().ok()),
                _ => None,
            }),
            ColumnBuilder::Float(b) => b.append_option(match v {
                ValueRef::Integer(i) => Some(i as f64),
                ValueRef::Real(f) => Some(f),
                ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|s| s.parse().ok()),
                _ => None,
            }),
            ColumnBuilder::Text(b) => match v {
                ValueRef::Text(t) => b.append_value(String::from_utf8_lossy(t)),
                ValueRef::Integer(i) => b.append_value(i.to_string()),
                ValueRef::Real(f) => b.append_value(f.to_string()),
                _ => b.append_null(),
            },
            ColumnBuilder::Bytes(b) => match v {
                ValueRef::Blob(x) | ValueRef::Text(x) => b.append_value(x),
                _ => b.append_null(),
            },
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Int(b) => Arc::new(b.finish()),
            ColumnBuilder::Float(b) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Bytes(b) => Arc::new(b.finish()),
        }
    }
}

fn finish_batch(schema: &Arc<Schema>, builders: &mut [ColumnBuilder]) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = builders.iter_mut().map(|b| b.finish()).collect();
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| Error::Internal(e.to_string()))
}

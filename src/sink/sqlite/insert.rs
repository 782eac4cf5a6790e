//! The SQLite sink's bulk INSERT, driven through SQLite's C API. rusqlite binds each cell
//! through `ToSql` and has SQLite copy every string (SQLITE_TRANSIENT); here each value is bound
//! straight from its Arrow buffer with SQLITE_STATIC, because the batch outlives the statement
//! step that reads it.

use std::ffi::{CStr, c_char, c_int};
use std::ops::Range;
use std::ptr;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray, StringBuilder,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, TimeUnit, TimestampMicrosecondType};
use rusqlite::{Connection, ffi};

use super::super::text;
use crate::error::{Context, Result};

/// A column of a batch in the form SQLite stores it. Dates and timestamps are rendered as
/// ISO-8601 text once per batch (SQLite's date functions read that form).
pub enum Column {
    Int(Int64Array),
    Float(Float64Array),
    Bool(BooleanArray),
    Text(StringArray),
}

impl Column {
    pub fn new(array: &ArrayRef) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Int64 => Column::Int(array.as_primitive().clone()),
            DataType::Float64 => Column::Float(array.as_primitive().clone()),
            DataType::Boolean => Column::Bool(array.as_boolean().clone()),
            DataType::Utf8 => Column::Text(array.as_string().clone()),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64 => Column::Int(
                cast(array, &DataType::Int64)
                    .context(|| "widening an integer column".into())?
                    .as_primitive()
                    .clone(),
            ),
            DataType::Float16 | DataType::Float32 => Column::Float(
                cast(array, &DataType::Float64)
                    .context(|| "widening a float column".into())?
                    .as_primitive()
                    .clone(),
            ),
            DataType::Date32 => Column::Text(render(
                array.as_primitive::<Date32Type>(),
                10,
                |out, days| text::date(out, i64::from(days)),
            )),
            DataType::Timestamp(unit, tz) => {
                let micros = if *unit == TimeUnit::Microsecond {
                    array.clone()
                } else {
                    cast(
                        array,
                        &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
                    )
                    .context(|| "normalising a timestamp column".into())?
                };
                let micros = micros.as_primitive::<TimestampMicrosecondType>();
                Column::Text(if tz.is_some() {
                    render(micros, 20, text::timestamp)
                } else {
                    render(micros, 19, text::wall_clock)
                })
            }
            _ => Column::Text(crate::contract::to_text(array)?.as_string().clone()),
        })
    }

    /// Bind `rows` of this column: the first to parameter `idx` (1-based), each next one
    /// `stride` parameters further. A column at a time rather than a row at a time: the type is
    /// matched once per step instead of once per cell, and each array is read sequentially.
    /// Returns the first code that is not SQLITE_OK.
    ///
    /// # Safety
    /// `stmt` is a live statement with a parameter for every row bound, and this column stays
    /// alive until those parameters are rebound, the bindings are cleared or the statement is
    /// finalized: text is bound without a copy.
    unsafe fn bind_rows(
        &self,
        stmt: *mut ffi::sqlite3_stmt,
        idx: c_int,
        stride: c_int,
        rows: Range<usize>,
    ) -> c_int {
        let steps = Steps { idx, stride, rows };
        unsafe {
            match self {
                Column::Int(a) => steps.bind(stmt, a.nulls(), |idx, row| {
                    ffi::sqlite3_bind_int64(stmt, idx, a.value(row))
                }),
                Column::Float(a) => steps.bind(stmt, a.nulls(), |idx, row| {
                    ffi::sqlite3_bind_double(stmt, idx, a.value(row))
                }),
                Column::Bool(a) => steps.bind(stmt, a.nulls(), |idx, row| {
                    ffi::sqlite3_bind_int64(stmt, idx, i64::from(a.value(row)))
                }),
                Column::Text(a) => steps.bind(stmt, a.nulls(), |idx, row| {
                    bind_text(stmt, idx, a.value(row))
                }),
            }
        }
    }
}

/// Where the rows of one column go in a multi-row INSERT: row `rows.start` to parameter `idx`,
/// each next row `stride` parameters further.
struct Steps {
    idx: c_int,
    stride: c_int,
    rows: Range<usize>,
}

impl Steps {
    /// # Safety
    /// As for `Column::bind_rows`; `bind` binds a non-null row's value to a parameter.
    unsafe fn bind(
        self,
        stmt: *mut ffi::sqlite3_stmt,
        nulls: Option<&NullBuffer>,
        bind: impl Fn(c_int, usize) -> c_int,
    ) -> c_int {
        let mut idx = self.idx;
        for row in self.rows {
            let rc = if nulls.is_some_and(|n| n.is_null(row)) {
                unsafe { ffi::sqlite3_bind_null(stmt, idx) }
            } else {
                bind(idx, row)
            };
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            idx += self.stride;
        }
        ffi::SQLITE_OK
    }
}

/// A temporal column as text, rendered by `write` into one Arrow string array. Runs of one
/// value (rows sorted or grouped by date, hourly stamps) are rendered once.
fn render<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    array: &datafusion::arrow::array::PrimitiveArray<T>,
    width: usize,
    write: impl Fn(&mut String, T::Native),
) -> StringArray {
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * width);
    let mut buf = String::with_capacity(32);
    let mut rendered = None;
    for value in array.iter() {
        match value {
            Some(v) => {
                if rendered != Some(v) {
                    buf.clear();
                    write(&mut buf, v);
                    rendered = Some(v);
                }
                out.append_value(&buf);
            }
            None => out.append_null(),
        }
    }
    out.finish()
}

/// # Safety
/// `value` stays alive until the parameter is rebound, the bindings are cleared or the
/// statement is finalized.
unsafe fn bind_text(stmt: *mut ffi::sqlite3_stmt, idx: c_int, value: &str) -> c_int {
    // An empty slice may point anywhere; give SQLite a real address for it.
    let bytes = if value.is_empty() { "\0" } else { value };
    unsafe {
        ffi::sqlite3_bind_text64(
            stmt,
            idx,
            bytes.as_ptr().cast::<c_char>(),
            value.len() as u64,
            ffi::SQLITE_STATIC(),
            ffi::SQLITE_UTF8 as u8,
        )
    }
}

/// One prepared multi-row INSERT. Nothing in the types ties it to its connection: its owner
/// must drop it before the connection (SqliteWriter does, in its Drop).
pub struct InsertStatement {
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    rows: usize,
    width: usize,
}

// SAFETY: rusqlite opens connections in SQLite's multi-thread mode (SQLITE_OPEN_NO_MUTEX),
// where a connection and its statements may move between threads as long as no two threads use
// them at once. A statement moves only inside the SqliteWriter that also owns its connection,
// and rusqlite's Connection is not Sync, so they are only ever used from one thread at a time.
unsafe impl Send for InsertStatement {}

impl InsertStatement {
    /// Prepare `sql`, an INSERT of `rows` rows of `width` parameters each.
    pub fn prepare(
        conn: &Connection,
        sql: &str,
        rows: usize,
        width: usize,
    ) -> rusqlite::Result<Self> {
        // SAFETY: the handle is the connection's own. The statement keeps it for error messages
        // and is finalized in Drop, which its owner runs before closing the connection.
        let db = unsafe { conn.handle() };
        let mut stmt = ptr::null_mut();
        let Ok(len) = c_int::try_from(sql.len()) else {
            return Err(rusqlite::Error::SqliteFailure(
                ffi::Error::new(ffi::SQLITE_TOOBIG),
                Some("the INSERT statement is too long".into()),
            ));
        };
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(error(db, rc));
        }
        Ok(InsertStatement {
            db,
            stmt,
            rows,
            width,
        })
    }

    /// Insert `rows` of `columns`, each row followed by the `extra` values, `self.rows` rows
    /// per step; `rows` holds a whole number of steps.
    pub fn execute(
        &mut self,
        columns: &[Column],
        extra: &[&str],
        rows: Range<usize>,
    ) -> rusqlite::Result<()> {
        // The soundness of binding rests on these: every parameter is rebound before each step.
        assert_eq!(columns.len() + extra.len(), self.width);
        assert_eq!(rows.len() % self.rows, 0);
        let result = rows
            .step_by(self.rows)
            .try_for_each(|first| self.bind_and_step(columns, extra, first));
        // SAFETY: `stmt` is live. No pointer into `columns` or `extra` stays bound (a panic in
        // between skips this, which is harmless: every step rebinds all parameters first).
        unsafe { ffi::sqlite3_clear_bindings(self.stmt) };
        result
    }

    fn bind_and_step(
        &mut self,
        columns: &[Column],
        extra: &[&str],
        first: usize,
    ) -> rusqlite::Result<()> {
        // Row r's value of column c goes to parameter r × width + c + 1.
        let stride = self.width as c_int;
        let rows = first..first + self.rows;
        for (idx, column) in (1..).zip(columns) {
            // SAFETY: the statement has rows × width parameters, and the bound values live in
            // `columns` and `extra`, which outlive the step below.
            self.check(unsafe { column.bind_rows(self.stmt, idx, stride, rows.clone()) })?;
        }
        for (idx, value) in (columns.len() as c_int + 1..).zip(extra) {
            let steps = Steps {
                idx,
                stride,
                rows: rows.clone(),
            };
            // SAFETY: as above.
            self.check(unsafe {
                steps.bind(self.stmt, None, |idx, _| bind_text(self.stmt, idx, value))
            })?;
        }
        // SAFETY: `stmt` is live and every parameter is bound.
        let stepped = unsafe { ffi::sqlite3_step(self.stmt) };
        let reset = unsafe { ffi::sqlite3_reset(self.stmt) };
        match stepped {
            ffi::SQLITE_DONE => self.check(reset),
            rc => Err(error(self.db, rc)),
        }
    }

    fn check(&self, rc: c_int) -> rusqlite::Result<()> {
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(error(self.db, rc))
        }
    }
}

impl Drop for InsertStatement {
    fn drop(&mut self) {
        // SAFETY: `stmt` came from sqlite3_prepare_v3 and is finalized only here.
        unsafe { ffi::sqlite3_finalize(self.stmt) };
    }
}

/// `rc` as rusqlite's error type, which the error classes understand. rusqlite opens with
/// extended result codes, so `rc` is already extended; the connection's message describes it
/// only if the connection recorded that same code (a failed bind may not record anything).
fn error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is a live connection; each message is copied before any other call on it.
    let message = unsafe {
        let text = if ffi::sqlite3_extended_errcode(db) == rc {
            ffi::sqlite3_errmsg(db)
        } else {
            ffi::sqlite3_errstr(rc)
        };
        (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), message)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
        TimestampMicrosecondArray, TimestampMillisecondArray,
    };
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::config::WriteMode;
    use crate::sink::sqlite::SqliteWriter;

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("d", DataType::Date32, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new("n", DataType::Int32, true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![
                Some(1),
                None,
                Some(-3),
                Some(i64::MAX),
                Some(5),
            ])),
            Arc::new(Float64Array::from(vec![
                Some(0.5),
                Some(2.0),
                None,
                Some(-1e300),
                Some(0.0),
            ])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
                None,
            ])),
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some(""),
                None,
                Some("ünï"),
                Some("e"),
            ])),
            Arc::new(Date32Array::from(vec![
                Some(0),
                Some(0),
                None,
                Some(15_706),
                Some(15_706),
            ])),
            Arc::new(
                TimestampMillisecondArray::from(vec![
                    Some(1_356_998_400_000),
                    Some(1_356_998_400_000),
                    Some(1_356_998_400_123),
                    None,
                    Some(0),
                ])
                .with_timezone("UTC"),
            ),
            Arc::new(Int32Array::from(vec![
                Some(7),
                Some(8),
                None,
                Some(9),
                Some(10),
            ])),
        ];
        RecordBatch::try_new(Arc::new(schema), columns).unwrap()
    }

    type Row = (
        Option<i64>,
        Option<f64>,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
        String,
    );

    /// Every type, nulls, an empty string, repeated dates and a tail shorter than a step, read
    /// back after the batch is gone (the values were bound without a copy).
    #[test]
    fn rows_read_back_as_bound_whatever_the_type() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE x (i INTEGER, f REAL, b INTEGER, s TEXT, d TEXT, t TEXT, n INTEGER, load TEXT)")
            .unwrap();
        let names: Vec<String> = ["i", "f", "b", "s", "d", "t", "n", "load"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        {
            let batch = batch();
            let columns: Vec<Column> = batch
                .columns()
                .iter()
                .map(|c| Column::new(c).unwrap())
                .collect();
            let extra = ["L1"];
            let sql = SqliteWriter::insert_sql("x", &names, 2, &WriteMode::Append);
            let mut steps = InsertStatement::prepare(&conn, &sql, 2, 8).unwrap();
            steps.execute(&columns, &extra, 0..4).unwrap();
            let sql = SqliteWriter::insert_sql("x", &names, 1, &WriteMode::Append);
            let mut tail = InsertStatement::prepare(&conn, &sql, 1, 8).unwrap();
            tail.execute(&columns, &extra, 4..5).unwrap();
        }
        let mut stmt = conn.prepare("SELECT * FROM x ORDER BY rowid").unwrap();
        let rows: Vec<Row> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let text = |v: &str| Some(v.to_string());
        assert_eq!(
            rows,
            vec![
                (
                    Some(1),
                    Some(0.5),
                    Some(1),
                    text("a"),
                    text("1970-01-01"),
                    text("2013-01-01T00:00:00Z"),
                    Some(7),
                    "L1".into()
                ),
                (
                    None,
                    Some(2.0),
                    Some(0),
                    text(""),
                    text("1970-01-01"),
                    text("2013-01-01T00:00:00Z"),
                    Some(8),
                    "L1".into()
                ),
                (
                    Some(-3),
                    None,
                    None,
                    None,
                    None,
                    text("2013-01-01T00:00:00.123000Z"),
                    None,
                    "L1".into()
                ),
                (
                    Some(i64::MAX),
                    Some(-1e300),
                    Some(1),
                    text("ünï"),
                    text("2013-01-01"),
                    None,
                    Some(9),
                    "L1".into()
                ),
                (
                    Some(5),
                    Some(0.0),
                    None,
                    text("e"),
                    text("2013-01-01"),
                    text("1970-01-01T00:00:00Z"),
                    Some(10),
                    "L1".into()
                ),
            ]
        );
    }

    /// A time zone's instant is written in UTC with `Z`; a timestamp without one (from a
    /// transform's CAST, say) is a wall-clock time and is written without.
    #[test]
    fn only_zoned_timestamps_are_written_with_z() {
        let at = 1_356_998_400_123_000i64;
        let naive: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![Some(at), None]));
        let zoned: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![Some(at), None]).with_timezone("+05:00"));
        let as_text = |array: &ArrayRef| match Column::new(array).unwrap() {
            Column::Text(t) => t.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>(),
            _ => panic!("a timestamp column should be bound as text"),
        };
        assert_eq!(
            as_text(&naive),
            [Some("2013-01-01T00:00:00.123000".to_string()), None]
        );
        assert_eq!(
            as_text(&zoned),
            [Some("2013-01-01T00:00:00.123000Z".to_string()), None]
        );
    }

    #[test]
    fn a_failing_step_reports_sqlites_message() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE x (i INTEGER NOT NULL)")
            .unwrap();
        let names = vec!["i".to_string()];
        let sql = SqliteWriter::insert_sql("x", &names, 1, &WriteMode::Append);
        let mut statement = InsertStatement::prepare(&conn, &sql, 1, 1).unwrap();
        let nulls: ArrayRef = Arc::new(Int64Array::from(vec![None::<i64>]));
        let err = statement
            .execute(&[Column::new(&nulls).unwrap()], &[], 0..1)
            .unwrap_err();
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation)
        );
        assert!(
            err.to_string().contains("NOT NULL constraint failed: x.i"),
            "{err}"
        );
        let classified = crate::error::Error::sqlite("inserting into x", err);
        assert_eq!(classified.class(), crate::error::ErrorClass::BadInput);
    }
}

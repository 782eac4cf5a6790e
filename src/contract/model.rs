//! What valid data looks like, as declared in a contract file.

use std::path::PathBuf;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use regex::Regex;

#[derive(Debug, Clone)]
pub struct Contract {
    /// The file it was read from, for messages; `None` when inferred from data.
    pub file: Option<PathBuf>,
    pub columns: Vec<ColumnSpec>,
    pub rules: Vec<RowRule>,
    pub table: TableRules,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    Int64,
    Float64,
    Decimal {
        precision: u8,
        scale: i8,
    },
    Bool,
    String,
    /// `format` is a chrono strftime format; `None` means ISO-8601 (`2024-01-31`).
    Date {
        format: Option<String>,
    },
    /// Values without an offset are read in `timezone` (default UTC); stored as UTC.
    Timestamp {
        format: Option<String>,
        timezone: Option<chrono_tz::Tz>,
    },
}

impl ColumnType {
    pub const NAMES: &'static [&'static str] = &[
        "int64",
        "float64",
        "decimal",
        "bool",
        "string",
        "date",
        "timestamp",
    ];

    pub fn arrow_type(&self) -> DataType {
        match self {
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            ColumnType::Bool => DataType::Boolean,
            ColumnType::String => DataType::Utf8,
            ColumnType::Date { .. } => DataType::Date32,
            ColumnType::Timestamp { .. } => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ColumnType::Int64 => "int64",
            ColumnType::Float64 => "float64",
            ColumnType::Decimal { .. } => "decimal",
            ColumnType::Bool => "bool",
            ColumnType::String => "string",
            ColumnType::Date { .. } => "date",
            ColumnType::Timestamp { .. } => "timestamp",
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            ColumnType::Int64 | ColumnType::Float64 | ColumnType::Decimal { .. }
        )
    }
}

/// Well-known string formats a column can be required to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFormat {
    Email,
    Url,
    Uuid,
}

impl StringFormat {
    pub const NAMES: &'static [&'static str] = &["email", "url", "uuid"];

    pub fn regex(self) -> &'static str {
        match self {
            StringFormat::Email => {
                r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
            }
            StringFormat::Url => r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]+[^\s]*$",
            StringFormat::Uuid => {
                r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StringFormat::Email => "email",
            StringFormat::Url => "url",
            StringFormat::Uuid => "uuid",
        }
    }
}

/// A bound for `min` / `max`, already in the column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Int(i64),
    Float(f64),
    /// Days since the epoch (date columns) or microseconds (timestamp columns).
    Temporal(i64),
    /// Decimal bounds as unscaled i128 at the column's scale.
    Decimal(i128),
}

#[derive(Debug, Clone)]
pub struct Range {
    pub min: Option<Bound>,
    pub max: Option<Bound>,
    pub exclusive_min: bool,
    pub exclusive_max: bool,
    /// The bounds as the user wrote them, for messages.
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: String,
    pub data_type: ColumnType,
    pub required: bool,
    pub unique: bool,
    pub range: Option<Range>,
    /// Allowed values, as text in the column's canonical rendering.
    pub allowed: Option<Vec<String>>,
    pub pattern: Option<Regex>,
    pub format: Option<StringFormat>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
}

impl ColumnSpec {
    pub fn new(name: impl Into<String>, data_type: ColumnType) -> Self {
        ColumnSpec {
            name: name.into(),
            data_type,
            required: false,
            unique: false,
            range: None,
            allowed: None,
            pattern: None,
            format: None,
            min_length: None,
            max_length: None,
        }
    }
}

/// A SQL boolean expression every row must satisfy. As in SQL CHECK constraints, a row fails only
/// when the expression is false; NULL (unknown) passes.
#[derive(Debug, Clone)]
pub struct RowRule {
    pub name: String,
    pub check: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraColumns {
    Error,
    Ignore,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingColumns {
    /// A declared column absent from the input fails the delivery.
    Error,
    /// Absent optional columns are filled with nulls; absent required columns still fail.
    Fill,
}

#[derive(Debug, Clone)]
pub struct TableRules {
    pub min_rows: Option<u64>,
    pub max_rows: Option<u64>,
    pub unique: Vec<Vec<String>>,
    pub extra_columns: ExtraColumns,
    pub missing_columns: MissingColumns,
}

impl Default for TableRules {
    fn default() -> Self {
        TableRules {
            min_rows: None,
            max_rows: None,
            unique: Vec::new(),
            extra_columns: ExtraColumns::Error,
            missing_columns: MissingColumns::Error,
        }
    }
}

impl Contract {
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }
}

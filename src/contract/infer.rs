//! A pipeline without a contract still gets typed columns: each column takes the narrowest type
//! that every value of the first batch converts to. Later values that do not fit are type errors,
//! which is what a contract would say too.

use datafusion::arrow::array::{ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;

use super::cast::to_type;
use super::model::{ColumnSpec, ColumnType, Contract, ExtraColumns, TableRules};
use crate::decode::{Header, RawBatch};

const CANDIDATES: &[ColumnType] = &[
    ColumnType::Int64,
    ColumnType::Float64,
    ColumnType::Timestamp {
        format: None,
        timezone: None,
    },
];

fn fits(src: &ArrayRef, ty: &ColumnType) -> bool {
    match to_type(src, ty) {
        Ok(typed) => typed.null_count() == src.null_count(),
        Err(_) => false,
    }
}

fn infer_column(src: &ArrayRef) -> ColumnType {
    if src.null_count() == src.len() {
        return ColumnType::String;
    }
    if !matches!(src.data_type(), DataType::Utf8) {
        return match src.data_type() {
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => ColumnType::Int64,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => ColumnType::Float64,
            DataType::Boolean => ColumnType::Bool,
            DataType::Date32 | DataType::Date64 => ColumnType::Date { format: None },
            DataType::Timestamp(_, _) => ColumnType::Timestamp {
                format: None,
                timezone: None,
            },
            DataType::Decimal128(p, s) => ColumnType::Decimal {
                precision: *p,
                scale: *s,
            },
            _ => ColumnType::String,
        };
    }
    let text = src.as_string::<i32>();
    let is_bool = text
        .iter()
        .flatten()
        .all(|s| matches!(s.to_ascii_lowercase().as_str(), "true" | "false"));
    if is_bool {
        return ColumnType::Bool;
    }
    for ty in CANDIDATES {
        if fits(src, ty) {
            return ty.clone();
        }
    }
    if fits(src, &ColumnType::Date { format: None }) {
        return ColumnType::Date { format: None };
    }
    ColumnType::String
}

/// The contract implied by a file's header and first batch: types only, no rules, every column
/// kept.
pub fn infer_contract(header: &Header, first: Option<&RawBatch>) -> Contract {
    let mut seen = std::collections::HashSet::new();
    let columns = header
        .names
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.trim().is_empty() && seen.insert(n.as_str()))
        .map(|(i, name)| {
            let ty = first.map_or(ColumnType::String, |b| infer_column(&b.columns[i]));
            ColumnSpec::new(name.clone(), ty)
        })
        .collect();
    Contract {
        file: None,
        columns,
        rules: Vec::new(),
        table: TableRules {
            extra_columns: ExtraColumns::Keep,
            ..TableRules::default()
        },
    }
}

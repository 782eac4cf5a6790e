//! Typing a column: text (or a Parquet type) → the contract's Arrow type. Cells that do not
//! convert become null here and are found afterwards by comparing null masks, so a whole column
//! is converted by one kernel call instead of cell by cell.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Builder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::FormatOptions;

use super::model::ColumnType;
use super::temporal;
use crate::error::{Context, Result};

pub fn to_type(src: &ArrayRef, ty: &ColumnType) -> Result<ArrayRef> {
    let is_text = matches!(
        src.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    let target = ty.arrow_type();
    if is_text {
        let text = cast_with_options(src, &DataType::Utf8, &safe())
            .context(|| "reading text column".into())?;
        let text = text.as_string::<i32>();
        match ty {
            ColumnType::Date { format } => {
                let mut b = Date32Builder::with_capacity(text.len());
                for v in text.iter() {
                    b.append_option(v.and_then(|s| temporal::parse_date(s, format.as_deref())));
                }
                return Ok(Arc::new(b.finish()));
            }
            ColumnType::Timestamp { format, timezone } => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(text.len());
                for v in text.iter() {
                    b.append_option(v.and_then(|s| {
                        temporal::parse_timestamp(s, format.as_deref(), *timezone).ok()
                    }));
                }
                return Ok(Arc::new(b.finish().with_timezone("UTC")));
            }
            ColumnType::String => return Ok(Arc::new(text.clone())),
            ColumnType::Int64
            | ColumnType::Float64
            | ColumnType::Bool
            | ColumnType::Decimal { .. } => {
                let trimmed = trim_if_needed(text);
                let input: &dyn Array = trimmed
                    .as_ref()
                    .map_or(text as &dyn Array, |t| t as &dyn Array);
                return cast_with_options(input, &target, &safe())
                    .context(|| format!("converting text to {}", ty.name()));
            }
        }
    }
    cast_with_options(src, &target, &safe())
        .context(|| format!("converting {} to {}", src.data_type(), ty.name()))
}

/// Numbers written with surrounding spaces (` 42`) are common in hand-made CSV; accept them.
fn trim_if_needed(
    text: &datafusion::arrow::array::StringArray,
) -> Option<datafusion::arrow::array::StringArray> {
    let needs = text
        .iter()
        .flatten()
        .any(|s| s.starts_with(' ') || s.ends_with(' '));
    needs.then(|| text.iter().map(|v| v.map(str::trim)).collect())
}

fn safe() -> CastOptions<'static> {
    CastOptions {
        safe: true,
        format_options: FormatOptions::default(),
    }
}

/// Any array as text, for reports and the rejects table.
pub fn to_text(src: &ArrayRef) -> Result<ArrayRef> {
    if src.data_type() == &DataType::Utf8 {
        return Ok(src.clone());
    }
    cast_with_options(src, &DataType::Utf8, &safe()).context(|| "rendering a column as text".into())
}

/// Expected shape of a type, for type-error messages.
pub fn expectation(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Int64 => "a whole number".into(),
        ColumnType::Float64 => "a number".into(),
        ColumnType::Decimal { precision, scale } => {
            format!("a decimal number (precision {precision}, scale {scale})")
        }
        ColumnType::Bool => "true or false".into(),
        ColumnType::String => "text".into(),
        ColumnType::Date { format: Some(f) } => format!("a date in the format {f}"),
        ColumnType::Date { format: None } => "a date like 2024-01-31".into(),
        ColumnType::Timestamp {
            format: Some(f), ..
        } => format!("a timestamp in the format {f}"),
        ColumnType::Timestamp { format: None, .. } => {
            "a timestamp like 2024-01-31 13:45:00 or 2024-01-31T13:45:00Z".into()
        }
    }
}

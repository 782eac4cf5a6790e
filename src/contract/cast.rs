//! Typing a column: text (or a Parquet type) → the contract's Arrow type. Cells that do not
//! convert become null here and are found afterwards by comparing null masks, so a whole column
//! is converted by one kernel call instead of cell by cell.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Builder, Int64Array, StringArray, TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::FormatOptions;

use super::model::ColumnType;
use super::temporal;
use crate::error::{Context, Result};
use crate::nulls::nulls_at;

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
            ColumnType::Int64 => return Ok(Arc::new(int64_column(text))),
            ColumnType::Float64 | ColumnType::Bool | ColumnType::Decimal { .. } => {
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

/// Text → int64 with the cast kernel's rules (ASCII whitespace around, an optional sign, ASCII
/// digits, no overflow; anything else is null) in one tight loop: the kernel's generic parser
/// was the largest part of decoding integer-heavy files. Other whitespace around the number
/// (a no-break space from a spreadsheet) is trimmed too.
///
/// The cells are read straight from the offsets: a null cell is an empty slice, which does not
/// parse either, so the input's validity needs no lookup per cell. Cells that fail are few, so
/// the validity of the result is built from their positions at the end.
fn int64_column(text: &StringArray) -> Int64Array {
    let offsets = text.value_offsets();
    let bytes = text.value_data();
    let mut values = Vec::with_capacity(text.len());
    let mut failed = Vec::new();
    for (row, bounds) in offsets.windows(2).enumerate() {
        let cell = &bytes[bounds[0] as usize..bounds[1] as usize];
        let parsed = parse_int64(cell).or_else(|| {
            std::str::from_utf8(cell)
                .ok()
                .and_then(|s| parse_int64(s.trim().as_bytes()))
        });
        match parsed {
            Some(n) => values.push(n),
            None => {
                values.push(0);
                failed.push(row);
            }
        }
    }
    let nulls = nulls_at(values.len(), &failed);
    Int64Array::new(values.into(), nulls)
}

#[inline]
fn parse_int64(text: &[u8]) -> Option<i64> {
    // Up to 18 plain digits cannot overflow: one pass without checks or branches per digit.
    if (1..=18).contains(&text.len()) {
        let mut n: i64 = 0;
        let mut digits = true;
        for &b in text {
            let d = b.wrapping_sub(b'0');
            digits &= d <= 9;
            n = n.wrapping_mul(10).wrapping_add(i64::from(d));
        }
        if digits {
            return Some(n);
        }
    }
    let text = text.trim_ascii();
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    // Negative numbers accumulate downwards, so that i64::MIN parses.
    let mut n: i64 = 0;
    for &d in digits {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(i64::from(d))?
        } else {
            n.checked_add(i64::from(d))?
        };
    }
    Some(n)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int64_parsing_trims_unicode_whitespace() {
        let text = StringArray::from(vec!["\u{a0}42\u{a0}", " -7\u{2003}", "4\u{a0}2"]);
        let parsed = int64_column(&text);
        let values: Vec<Option<i64>> = parsed.iter().collect();
        assert_eq!(values, [Some(42), Some(-7), None]);
    }

    #[test]
    fn int64_parsing_keeps_nulls_null_and_reads_a_sliced_column_from_its_offset() {
        let text = StringArray::from(vec![
            Some("1"),
            None,
            Some("x"),
            Some("-4"),
            None,
            Some("7"),
        ]);
        let values: Vec<Option<i64>> = int64_column(&text).iter().collect();
        assert_eq!(values, [Some(1), None, None, Some(-4), None, Some(7)]);
        let sliced = text.slice(3, 3);
        let values: Vec<Option<i64>> = int64_column(&sliced).iter().collect();
        assert_eq!(values, [Some(-4), None, Some(7)]);
    }

    #[test]
    fn int64_parsing_agrees_with_the_cast_kernel() {
        let inputs = [
            "0",
            "-0",
            "+5",
            "007",
            " 42",
            "42 ",
            "\t7\n",
            "-9223372036854775808",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775809",
            "00000000000000000000123",
            "-000000000000000000009",
            "123456789012345678",
            "999999999999999999",
            "zzzzzzzzzzzzzzzzzz",
            "\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}",
            "1234567890123456789",
            "99999999999999999999",
            "1.0",
            "1e3",
            "",
            " ",
            "-",
            "+",
            "--5",
            "+-5",
            "5-",
            "1_000",
            "12a",
            "a12",
            "\u{663}",
            "1 2",
        ];
        let text = StringArray::from(inputs.to_vec());
        let ours = int64_column(&text);
        let kernel = cast_with_options(&text, &DataType::Int64, &safe()).expect("cast");
        let kernel = kernel.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        for (i, input) in inputs.iter().enumerate() {
            assert_eq!(
                ours.is_valid(i).then(|| ours.value(i)),
                kernel.is_valid(i).then(|| kernel.value(i)),
                "{input:?}"
            );
        }
    }
}

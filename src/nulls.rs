//! Validity bitmaps from the positions of the nulls. Columns built a cell at a time (CSV cells,
//! parsed integers) have few nulls, so they list them and build the bitmap once at the end
//! instead of setting a bit per cell.

use datafusion::arrow::array::BooleanBufferBuilder;
use datafusion::arrow::buffer::NullBuffer;

/// The validity of `len` rows where exactly `null_rows` are null; `None` when none is.
pub(crate) fn nulls_at(len: usize, null_rows: &[usize]) -> Option<NullBuffer> {
    if null_rows.is_empty() {
        return None;
    }
    let mut valid = BooleanBufferBuilder::new(len);
    valid.append_n(len, true);
    for &row in null_rows {
        valid.set_bit(row, false);
    }
    Some(NullBuffer::new(valid.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listed_rows_and_only_they_are_null() {
        let nulls = nulls_at(5, &[1, 4]).unwrap();
        let valid: Vec<bool> = (0..5).map(|i| nulls.is_valid(i)).collect();
        assert_eq!(valid, [true, false, true, true, false]);
        assert!(nulls_at(3, &[]).is_none());
    }
}

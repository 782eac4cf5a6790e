//! One column's cells as the CSV decoder reads them. Arrow's `BinaryBuilder` does the same job,
//! but its append is not inlined across crates, and a CSV batch appends once per cell: on
//! flights.csv that call was a tenth of decoding.

use datafusion::arrow::array::BinaryArray;
use datafusion::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};

use crate::nulls::nulls_at;

pub struct CellColumn {
    values: Vec<u8>,
    /// End of each cell in `values`, after a leading 0. A batch holds at most
    /// `MAX_BATCH_BYTES` plus one record, so they fit an `i32`.
    offsets: Vec<i32>,
    /// Rows whose cell is null: few in most columns, so the validity bitmap is built at the end.
    nulls: Vec<usize>,
}

impl CellColumn {
    pub fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        CellColumn {
            values: Vec::with_capacity(bytes),
            offsets,
            nulls: Vec::new(),
        }
    }

    #[inline]
    pub fn push(&mut self, cell: &[u8]) {
        self.values.extend_from_slice(cell);
        self.offsets.push(self.values.len() as i32);
    }

    #[inline]
    pub fn push_null(&mut self) {
        self.nulls.push(self.offsets.len() - 1);
        self.offsets.push(self.values.len() as i32);
    }

    pub fn finish(&mut self) -> BinaryArray {
        let nulls = nulls_at(self.offsets.len() - 1, &self.nulls);
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        // SAFETY: offsets start at 0 and each is the length of `values` after a push, so they
        // never decrease and the last is `values.len()`.
        let offsets = unsafe { OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)) };
        let values = Buffer::from_vec(std::mem::take(&mut self.values));
        self.nulls.clear();
        BinaryArray::new(offsets, values, nulls)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::Array;

    use super::*;

    #[test]
    fn cells_and_nulls_come_out_in_order() {
        let mut column = CellColumn::with_capacity(2, 4);
        column.push(b"ab");
        column.push_null();
        column.push(b"");
        column.push(b"xyz");
        column.push_null();
        let array = column.finish();
        let cells: Vec<Option<&[u8]>> = array.iter().collect();
        assert_eq!(
            cells,
            [
                Some(&b"ab"[..]),
                None,
                Some(&b""[..]),
                Some(&b"xyz"[..]),
                None
            ]
        );
        assert_eq!(array.null_count(), 2);
        let next = column.finish();
        assert_eq!(next.len(), 0, "a finished column starts empty");
    }
}

//! One column's cells as the CSV decoder reads them. Arrow's `BinaryBuilder` does the same job,
//! but its append is not inlined across crates, and a CSV batch appends once per cell: on
//! flights.csv that call was a tenth of decoding.

use std::ptr;

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
        // Most cells are a few bytes, where a call to memcpy (what `extend_from_slice` makes
        // of a length only known at run time) costs more than the copy: on flights.csv, 6.4
        // million calls, 1.7% of a load's instructions.
        self.values.reserve(cell.len());
        let len = self.values.len();
        // SAFETY: `reserve` made room for `cell.len()` bytes after `len`, and the copy fills
        // exactly those before the length covers them.
        unsafe {
            let end = self.values.as_mut_ptr().add(len);
            if cell.len() <= 16 {
                copy_short(cell, end);
            } else {
                ptr::copy_nonoverlapping(cell.as_ptr(), end, cell.len());
            }
            self.values.set_len(len + cell.len());
        }
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

/// Copies `src` (at most 16 bytes) to `dst` with two moves of a power-of-two width that
/// overlap in the middle, as memcpy does for short lengths, but inline.
///
/// # Safety
/// `dst` is valid for `src.len()` bytes and does not overlap `src`.
#[inline(always)]
unsafe fn copy_short(src: &[u8], dst: *mut u8) {
    let n = src.len();
    let s = src.as_ptr();
    // SAFETY: every read is within `src` and every write within `dst`'s `n` bytes: each pair
    // of moves covers [0, w) and [n - w, n) with w <= n.
    unsafe {
        if n >= 8 {
            let head = ptr::read_unaligned(s.cast::<u64>());
            let tail = ptr::read_unaligned(s.add(n - 8).cast::<u64>());
            ptr::write_unaligned(dst.cast::<u64>(), head);
            ptr::write_unaligned(dst.add(n - 8).cast::<u64>(), tail);
        } else if n >= 4 {
            let head = ptr::read_unaligned(s.cast::<u32>());
            let tail = ptr::read_unaligned(s.add(n - 4).cast::<u32>());
            ptr::write_unaligned(dst.cast::<u32>(), head);
            ptr::write_unaligned(dst.add(n - 4).cast::<u32>(), tail);
        } else if n > 0 {
            *dst = *s;
            *dst.add(n / 2) = *s.add(n / 2);
            *dst.add(n - 1) = *s.add(n - 1);
        }
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

    /// Every length the short copy handles, and past it, across buffer growth.
    #[test]
    fn cells_of_every_length_keep_their_bytes() {
        let source: Vec<u8> = (0..40u8).map(|b| b'a' + b % 26).collect();
        let mut column = CellColumn::with_capacity(1, 1);
        for len in 0..=source.len() {
            column.push(&source[..len]);
            column.push(&source[source.len() - len..]);
        }
        let array = column.finish();
        for len in 0..=source.len() {
            assert_eq!(array.value(2 * len), &source[..len], "head of {len}");
            assert_eq!(
                array.value(2 * len + 1),
                &source[source.len() - len..],
                "tail of {len}"
            );
        }
    }
}

//! A delivery's decoded batches, some of them read ahead. Loading cannot start before the file's
//! hash is known (it names the delivery and finds duplicates), so meanwhile the decoder reads on
//! into a bounded queue, on the core that would otherwise wait for the hash.

use std::collections::VecDeque;

use crate::decode::{Decoder, Header, RawBatch};
use crate::error::{Error, Result};

/// Memory the queue may hold: a few dozen batches of a typical file.
const MAX_AHEAD_BYTES: usize = 64 << 20;

pub struct Batches {
    decoder: Box<dyn Decoder>,
    ahead: VecDeque<RawBatch>,
    ahead_bytes: usize,
    /// What ended reading ahead, to be returned once the batches before it are taken: the
    /// decoder's error, or its end.
    ended: Option<Result<()>>,
}

impl Batches {
    pub fn new(decoder: Box<dyn Decoder>) -> Self {
        Batches {
            decoder,
            ahead: VecDeque::new(),
            ahead_bytes: 0,
            ended: None,
        }
    }

    pub fn header(&self) -> &Header {
        self.decoder.header()
    }

    /// Bytes of input consumed so far, for progress reporting.
    pub fn bytes_read(&self) -> u64 {
        self.decoder.bytes_read()
    }

    pub fn take_trailing_problems(&mut self) -> Vec<crate::contract::Violation> {
        self.decoder.take_trailing_problems()
    }

    /// The header and the first batch, read now if it was not yet; `None` for a file without
    /// rows. An error reading it is returned at once: the file cannot be opened as a delivery.
    pub fn first(&mut self) -> Result<(&Header, Option<&RawBatch>)> {
        if self.ahead.is_empty() && self.ended.is_none() {
            match self.decoder.next_batch()? {
                Some(batch) => self.push(batch),
                None => self.ended = Some(Ok(())),
            }
        }
        Ok((self.decoder.header(), self.ahead.front()))
    }

    /// Decode further batches into the queue until `enough` says so, the queue is full, or the
    /// decoder ends; a decoder error is kept for its turn.
    pub fn read_ahead(&mut self, enough: impl Fn() -> bool) {
        while self.ended.is_none() && self.ahead_bytes < MAX_AHEAD_BYTES && !enough() {
            match self.decoder.next_batch() {
                Ok(Some(batch)) => self.push(batch),
                Ok(None) => self.ended = Some(Ok(())),
                Err(e) => self.ended = Some(Err(e)),
            }
        }
    }

    pub fn next(&mut self) -> Result<Option<RawBatch>> {
        if let Some(batch) = self.ahead.pop_front() {
            self.ahead_bytes -= batch_bytes(&batch);
            return Ok(Some(batch));
        }
        match self.ended.take() {
            None => self.decoder.next_batch(),
            Some(Ok(())) => {
                self.ended = Some(Ok(()));
                Ok(None)
            }
            Some(Err(e)) => {
                self.ended = Some(Err(Error::Internal(
                    "a failed decoder was read again".into(),
                )));
                Err(e)
            }
        }
    }

    fn push(&mut self, batch: RawBatch) {
        self.ahead_bytes += batch_bytes(&batch);
        self.ahead.push_back(batch);
    }
}

fn batch_bytes(batch: &RawBatch) -> usize {
    batch
        .columns
        .iter()
        .map(|c| c.get_array_memory_size())
        .sum()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::Path;
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, StringArray};

    use super::*;

    /// Yields `rows` one-row batches (each cell `pad` bytes longer than its number), then fails
    /// with a bad-input error if `fails`.
    struct Counting {
        header: Header,
        left: usize,
        pad: usize,
        fails: bool,
        reads: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Decoder for Counting {
        fn header(&self) -> &Header {
            &self.header
        }

        fn next_batch(&mut self) -> Result<Option<RawBatch>> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.left == 0 {
                return if self.fails {
                    Err(Error::input(Path::new("x.csv"), Some(9), "broken row"))
                } else {
                    Ok(None)
                };
            }
            self.left -= 1;
            let cell = format!("{}{}", self.left, " ".repeat(self.pad));
            let column: ArrayRef = Arc::new(StringArray::from(vec![cell]));
            Ok(Some(RawBatch {
                columns: vec![column],
                lines: vec![2],
                rows: vec![2],
                problems: Vec::new(),
                structurally_bad: vec![false],
            }))
        }

        fn bytes_read(&self) -> u64 {
            0
        }
    }

    fn batches(rows: usize, fails: bool) -> (Batches, Arc<std::sync::atomic::AtomicUsize>) {
        padded(rows, fails, 0)
    }

    fn padded(
        rows: usize,
        fails: bool,
        pad: usize,
    ) -> (Batches, Arc<std::sync::atomic::AtomicUsize>) {
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let decoder = Counting {
            header: Header {
                names: vec!["n".into()],
                problems: Vec::new(),
            },
            left: rows,
            pad,
            fails,
            reads: reads.clone(),
        };
        (Batches::new(Box::new(decoder)), reads)
    }

    fn value(batch: &RawBatch) -> String {
        batch.columns[0]
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(0)
            .trim_end()
            .to_string()
    }

    #[test]
    fn an_error_met_while_reading_ahead_comes_after_the_batches_before_it() {
        let (mut batches, _) = batches(3, true);
        batches.read_ahead(|| false);
        let mut seen = Vec::new();
        let error = loop {
            match batches.next() {
                Ok(Some(batch)) => seen.push(value(&batch)),
                Ok(None) => panic!("the decoder's error was lost"),
                Err(e) => break e,
            }
        };
        assert_eq!(seen, ["2", "1", "0"]);
        assert!(error.to_string().contains("broken row"), "{error}");
    }

    #[test]
    fn reading_ahead_stops_when_told_and_the_rest_is_read_on_demand() {
        let (mut batches, reads) = batches(10, false);
        let (_, first) = batches.first().unwrap();
        assert_eq!(first.map(value).as_deref(), Some("9"));
        let calls = Cell::new(0);
        batches.read_ahead(|| {
            calls.set(calls.get() + 1);
            calls.get() > 3
        });
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 4);
        let mut seen = Vec::new();
        while let Some(batch) = batches.next().unwrap() {
            seen.push(value(&batch));
        }
        assert_eq!(seen, ["9", "8", "7", "6", "5", "4", "3", "2", "1", "0"]);
        assert!(batches.next().unwrap().is_none(), "the end stays the end");
        assert_eq!(batches.ahead_bytes, 0);
    }

    #[test]
    fn reading_ahead_holds_a_bounded_amount_of_memory() {
        let (mut batches, reads) = padded(1_000, false, 1 << 20);
        batches.read_ahead(|| false);
        let read = reads.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (60..=70).contains(&read),
            "{read} batches of 1 MB read ahead"
        );
        assert!(batches.ahead_bytes >= MAX_AHEAD_BYTES);
        let mut left = 0;
        while batches.next().unwrap().is_some() {
            left += 1;
        }
        assert_eq!(left, 1_000);
    }
}

//! Splits CSV input into records. A line without the quote character is split on the delimiter
//! directly, eight bytes at a time; only a record that has a quote goes through `csv_core`'s
//! state machine, which costs about twenty instructions per byte. Both give the same fields:
//! outside quotes, csv_core treats every byte but the delimiter and `\n` as data.

use std::io::{self, Read};

/// How much of the end of the input is kept, to check the last record's quotes.
const TAIL_BYTES: usize = 64 * 1024;
/// Bytes asked of the input per read.
const CHUNK: usize = 1 << 20;

/// Sits between the bytes and the scanner: counts what was read, keeps the end of the input,
/// and stops a line that grows past the record limit before it is buffered whole.
pub struct GuardedReader<R> {
    inner: R,
    pub total: u64,
    pub eof: bool,
    pub tail: Vec<u8>,
    line_len: usize,
    lines: u64,
    limit: usize,
    /// Set when a line was cut off for being too long: its 1-based line number.
    pub too_long: Option<u64>,
}

impl<R: Read> GuardedReader<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        GuardedReader {
            inner,
            total: 0,
            eof: false,
            tail: Vec::new(),
            line_len: 0,
            lines: 0,
            limit,
            too_long: None,
        }
    }
}

impl<R: Read> Read for GuardedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.eof = true;
            return Ok(0);
        }
        let chunk = &buf[..n];
        match memchr::memrchr(b'\n', chunk) {
            Some(last) => {
                let before = memchr::memchr_iter(b'\n', &chunk[..last]).count() as u64;
                let first_len = memchr::memchr(b'\n', chunk).unwrap_or(last);
                if self.line_len + first_len > self.limit {
                    self.too_long = Some(self.lines + 1);
                } else if let Some(long) =
                    longest_line(&chunk[..=last]).filter(|(len, _)| *len > self.limit)
                {
                    self.too_long = Some(self.lines + long.1 + 1);
                }
                self.lines += before + 1;
                self.line_len = n - last - 1;
            }
            None => self.line_len += n,
        }
        if self.line_len > self.limit && self.too_long.is_none() {
            self.too_long = Some(self.lines + 1);
        }
        if self.too_long.is_some() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        self.total += n as u64;
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > 2 * TAIL_BYTES {
            self.tail.drain(..self.tail.len() - TAIL_BYTES);
        }
        Ok(n)
    }
}

/// Longest complete line in a chunk that ends with `\n`, and its index (0-based) in the chunk.
fn longest_line(chunk: &[u8]) -> Option<(usize, u64)> {
    let mut start = 0;
    let mut best: Option<(usize, u64)> = None;
    for (i, pos) in memchr::memchr_iter(b'\n', chunk).enumerate() {
        let len = pos - start;
        if best.is_none_or(|(b, _)| len > b) {
            best = Some((len, i as u64));
        }
        start = pos + 1;
    }
    best
}

/// One record's fields: `data[starts[i]..ends[i]]`.
#[derive(Default)]
pub struct Record {
    data: Vec<u8>,
    starts: Vec<usize>,
    ends: Vec<usize>,
}

impl Record {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    #[cfg(test)]
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        Some(&self.data[*self.starts.get(i)?..*self.ends.get(i)?])
    }

    /// The fields in order, the last without the `\r` of a CRLF line ending.
    pub fn fields(&self) -> impl Iterator<Item = &[u8]> {
        self.fields_from(0)
    }

    /// The fields from field `first` on (none when the record is shorter), as `fields` gives
    /// them, without walking the ones before.
    pub fn fields_from(&self, first: usize) -> impl Iterator<Item = &[u8]> {
        let last = self.ends.len().wrapping_sub(1);
        let first = first.min(self.ends.len());
        self.starts[first..]
            .iter()
            .zip(&self.ends[first..])
            .zip(first..)
            .map(move |((&start, &end), i)| {
                let f = &self.data[start..end];
                if i == last {
                    f.strip_suffix(b"\r").unwrap_or(f)
                } else {
                    f
                }
            })
    }

    /// Bytes the record holds: its fields, and for a line without quotes the delimiters
    /// between them (at most the line's length, which the reader already bounds).
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    fn clear(&mut self) {
        self.data.clear();
        self.starts.clear();
        self.ends.clear();
    }

    /// Takes a line without quotes: fields are the runs between delimiters.
    fn split(&mut self, line: &[u8], delimiter: u8) {
        self.clear();
        self.data.extend_from_slice(line);
        let mut start = 0;
        let pattern = u64::from(delimiter) * 0x0101_0101_0101_0101;
        let mut words = line.chunks_exact(8);
        let mut base = 0;
        for word in words.by_ref() {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            let mut found = equal_bytes(u64::from_le_bytes(bytes) ^ pattern);
            while found != 0 {
                let at = base + (found.trailing_zeros() / 8) as usize;
                self.starts.push(start);
                self.ends.push(at);
                start = at + 1;
                found &= found - 1;
            }
            base += 8;
        }
        for (i, &b) in words.remainder().iter().enumerate() {
            if b == delimiter {
                self.starts.push(start);
                self.ends.push(base + i);
                start = base + i + 1;
            }
        }
        self.starts.push(start);
        self.ends.push(line.len());
    }
}

/// The high bit of each byte of `x` that is zero, and no other bit.
fn equal_bytes(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Where a record was found.
pub struct Found {
    /// 1-based line of the record's first byte.
    pub line: u64,
    /// Offset of the record's first byte in the input.
    pub start_byte: u64,
    /// Line breaks inside its fields (only a quoted field can hold one).
    pub newlines: u64,
}

pub struct Scanner<R> {
    input: GuardedReader<R>,
    buf: Vec<u8>,
    /// Unread data is `buf[pos..len]`.
    pos: usize,
    len: usize,
    /// Input offset of `buf[0]`.
    base: u64,
    /// 1-based line at `buf[pos]`.
    line: u64,
    delimiter: u8,
    quote: u8,
    core: csv_core::Reader,
    /// csv_core's field ends for a quoted record, kept between records: files that quote every
    /// field take that path for each one.
    quoted_ends: Vec<usize>,
}

impl<R: Read> Scanner<R> {
    pub fn new(
        input: GuardedReader<R>,
        quoted: &csv_core::ReaderBuilder,
        delimiter: u8,
        quote: u8,
    ) -> Self {
        let mut core = quoted.build();
        // csv_core drops a byte-order mark from the first input it is given, which here may be
        // a record in the middle of the file (the decoder removed the file's own mark). An
        // empty line first: csv_core skips it and then has read.
        core.read_record(b"\n", &mut [], &mut []);
        Scanner {
            input,
            buf: vec![0; CHUNK],
            pos: 0,
            len: 0,
            base: 0,
            line: 1,
            delimiter,
            quote,
            core,
            quoted_ends: vec![0; 32],
        }
    }

    pub fn input(&self) -> &GuardedReader<R> {
        &self.input
    }

    /// Input bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Reads the next record into `record`, skipping empty lines as csv_core does; `None` at the
    /// end of the input.
    pub fn next(&mut self, record: &mut Record) -> io::Result<Option<Found>> {
        loop {
            let unread = &self.buf[self.pos..self.len];
            let hit = memchr::memchr2(b'\n', self.quote, unread);
            match hit {
                Some(0) if unread[0] == b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                }
                Some(end) if unread[end] == b'\n' => {
                    let found = self.found();
                    record.split(&unread[..end], self.delimiter);
                    self.pos += end + 1;
                    self.line += 1;
                    return Ok(Some(found));
                }
                Some(_) => return self.quoted(record).map(Some),
                None if self.input.eof => {
                    if unread.is_empty() {
                        return Ok(None);
                    }
                    let found = self.found();
                    record.split(unread, self.delimiter);
                    self.pos = self.len;
                    return Ok(Some(found));
                }
                None => self.fill()?,
            }
        }
    }

    /// A record on one line, starting at `pos`.
    fn found(&self) -> Found {
        Found {
            line: self.line,
            start_byte: self.consumed(),
            newlines: 0,
        }
    }

    /// Moves the unread bytes to the front of the buffer, growing it when they fill it, and
    /// reads more after them.
    fn fill(&mut self) -> io::Result<()> {
        self.buf.copy_within(self.pos..self.len, 0);
        self.base += self.pos as u64;
        self.len -= self.pos;
        self.pos = 0;
        if self.buf.len() - self.len < CHUNK / 2 {
            self.buf.resize(self.len + CHUNK, 0);
        }
        loop {
            match self.input.read(&mut self.buf[self.len..]) {
                Ok(n) => {
                    self.len += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// A record with a quote somewhere: csv_core decodes it, across reads if its quoted fields
    /// run over lines.
    fn quoted(&mut self, record: &mut Record) -> io::Result<Found> {
        use csv_core::ReadRecordResult;
        let (line, start_byte) = (self.line, self.consumed());
        record.clear();
        record.data.resize(256, 0);
        let mut ends = std::mem::take(&mut self.quoted_ends);
        let (mut written, mut fields) = (0, 0);
        loop {
            let input = &self.buf[self.pos..self.len];
            let (result, read, out, count) =
                self.core
                    .read_record(input, &mut record.data[written..], &mut ends[fields..]);
            self.line += memchr::memchr_iter(b'\n', &input[..read]).count() as u64;
            self.pos += read;
            written += out;
            fields += count;
            match result {
                // All input was taken; at the end, csv_core ends the record when given none.
                ReadRecordResult::InputEmpty => {
                    if !self.input.eof {
                        self.fill()?;
                    }
                }
                ReadRecordResult::OutputFull => {
                    let grown = record.data.len() * 2;
                    record.data.resize(grown, 0);
                }
                ReadRecordResult::OutputEndsFull => ends.resize((ends.len() * 2).max(32), 0),
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        record.data.truncate(written);
        let mut start = 0;
        for &end in &ends[..fields] {
            record.starts.push(start);
            record.ends.push(end);
            start = end;
        }
        self.quoted_ends = ends;
        Ok(Found {
            line,
            start_byte,
            newlines: memchr::memchr_iter(b'\n', &record.data).count() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn scanner(input: Vec<u8>) -> Scanner<io::Cursor<Vec<u8>>> {
        let mut quoted = csv_core::ReaderBuilder::new();
        quoted.terminator(csv_core::Terminator::Any(b'\n'));
        Scanner::new(
            GuardedReader::new(io::Cursor::new(input), 10 << 20),
            &quoted,
            b',',
            b'"',
        )
    }

    fn fields(record: &Record) -> Vec<Vec<u8>> {
        (0..record.len())
            .map(|i| record.get(i).unwrap_or_default().to_vec())
            .collect()
    }

    /// A random field: sometimes empty, sometimes with bytes that need quotes.
    fn field(rng: &mut StdRng) -> (Vec<u8>, bool) {
        let special = rng.random_bool(0.05);
        let len = rng.random_range(0..12);
        let alphabet: &[u8] = if special {
            b"ab,\"\n\r x"
        } else {
            b"abcxyz019 .-\r"
        };
        let value: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        (value, special)
    }

    /// Records written the way a CSV writer would (quoting where needed), with blank lines
    /// between some, read back across many buffer refills: the same fields, and each record's
    /// first line and byte.
    #[test]
    fn records_and_lines_match_what_was_written() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut input = Vec::new();
        let mut expected = Vec::new();
        let mut line = 1;
        while input.len() < 3 * CHUNK {
            while rng.random_bool(0.02) {
                input.push(b'\n');
                line += 1;
            }
            let start = input.len() as u64;
            let count = rng.random_range(1..30);
            let mut record = Vec::new();
            for i in 0..count {
                let (value, special) = field(&mut rng);
                if i > 0 {
                    input.push(b',');
                }
                // An empty single field would be a blank line, which the reader skips.
                if special || (count == 1 && value.is_empty()) {
                    input.push(b'"');
                    for &b in &value {
                        if b == b'"' {
                            input.push(b'"');
                        }
                        input.push(b);
                    }
                    input.push(b'"');
                } else {
                    input.extend_from_slice(&value);
                }
                record.push(value);
            }
            input.push(b'\n');
            let newlines = record.iter().flatten().filter(|&&b| b == b'\n').count() as u64;
            expected.push((record, line, start, newlines));
            line += newlines + 1;
        }
        let mut scanner = scanner(input.clone());
        let mut record = Record::default();
        for (i, (fields_written, line, start, newlines)) in expected.iter().enumerate() {
            let found = scanner.next(&mut record).unwrap().expect("a record");
            assert_eq!(&fields(&record), fields_written, "record {i}");
            assert_eq!(
                (found.line, found.start_byte, found.newlines),
                (*line, *start, *newlines),
                "record {i}"
            );
        }
        assert!(scanner.next(&mut record).unwrap().is_none());
        assert_eq!(scanner.consumed(), input.len() as u64);
    }

    /// Without quotes, a line is split the way csv_core splits it, wherever the delimiters fall
    /// in the eight-byte words.
    #[test]
    fn unquoted_lines_split_like_csv_core() {
        let mut rng = StdRng::seed_from_u64(11);
        for _ in 0..2_000 {
            let len = rng.random_range(0..40);
            let line: Vec<u8> = (0..len)
                .map(|_| [b',', b'a', b'\r', 0x80, 0xff, b' '][rng.random_range(0..6)])
                .collect();
            let mut ours = Record::default();
            ours.split(&line, b',');
            let mut core = csv_core::ReaderBuilder::new()
                .terminator(csv_core::Terminator::Any(b'\n'))
                .build();
            let mut out = vec![0; 64];
            let mut ends = vec![0; 64];
            let mut input = line.clone();
            input.push(b'\n');
            let (_, _, _, count) = core.read_record(&input, &mut out, &mut ends);
            let mut theirs = Vec::new();
            let mut start = 0;
            for &end in &ends[..count] {
                theirs.push(out[start..end].to_vec());
                start = end;
            }
            if line.is_empty() {
                // csv_core skips an empty line; the scanner never splits one.
                continue;
            }
            assert_eq!(fields(&ours), theirs, "{line:?}");
        }
    }

    /// A quoted record wider and longer than the first buffers csv_core is given, twice: the
    /// buffers grow, and are reused for the next one.
    #[test]
    fn wide_quoted_records_grow_the_buffers() {
        let cells: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("cell {i} with text").into_bytes())
            .collect();
        let line: Vec<u8> = cells
            .iter()
            .map(|c| [b"\"".as_slice(), c, b"\""].concat())
            .collect::<Vec<_>>()
            .join(&b',');
        let mut scanner = scanner([line.as_slice(), b"\n", &line, b"\n"].concat());
        let mut record = Record::default();
        for expected_line in [1, 2] {
            let found = scanner.next(&mut record).unwrap().unwrap();
            assert_eq!(
                (found.line, fields(&record)),
                (expected_line, cells.clone())
            );
        }
        assert!(scanner.next(&mut record).unwrap().is_none());
    }

    #[test]
    fn the_last_line_needs_no_line_break() {
        let mut scanner = scanner(b"a,b\n\n\"c\nd\",e".to_vec());
        let mut record = Record::default();
        let first = scanner.next(&mut record).unwrap().unwrap();
        assert_eq!(
            (first.line, fields(&record)),
            (1, vec![b"a".to_vec(), b"b".to_vec()])
        );
        let last = scanner.next(&mut record).unwrap().unwrap();
        assert_eq!(
            (last.line, last.newlines, fields(&record)),
            (3, 1, vec![b"c\nd".to_vec(), b"e".to_vec()])
        );
        assert!(scanner.next(&mut record).unwrap().is_none());
    }
}

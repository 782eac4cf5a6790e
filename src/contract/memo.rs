//! Results of a per-value string check, remembered per batch. Columns with a pattern, a format
//! or a set of allowed values are mostly codes and categories that repeat a few values, and
//! finding a value seen before costs far less than matching a regex again (on flights.csv the
//! carrier pattern cost ~300 instructions a row).

/// Direct-mapped: each value has one slot, picked from its length and bytes; a value that finds
/// another in its slot is checked and takes the slot. A column of distinct values pays a hash
/// and a comparison on top of each check.
pub struct ValueMemo<'a> {
    slots: [Option<(&'a str, bool)>; SLOTS],
}

const SLOTS: usize = 64;

impl<'a> ValueMemo<'a> {
    pub fn new() -> Self {
        ValueMemo {
            slots: [None; SLOTS],
        }
    }

    /// `check(value)`, or what it returned for an equal value still in the memo.
    #[inline]
    pub fn check(&mut self, value: &'a str, check: impl Fn(&str) -> bool) -> bool {
        let slot = &mut self.slots[slot_of(value.as_bytes())];
        match slot {
            Some((seen, result)) if *seen == value => *result,
            _ => {
                let result = check(value);
                *slot = Some((value, result));
                result
            }
        }
    }
}

/// The slot of `bytes`: its first and last eight bytes and its length, mixed by one multiply
/// (the Fibonacci hash), top bits taken.
#[inline]
fn slot_of(bytes: &[u8]) -> usize {
    let word = |part: &[u8]| part.iter().fold(0u64, |w, &b| (w << 8) | u64::from(b));
    let head = word(&bytes[..bytes.len().min(8)]);
    let tail = word(&bytes[bytes.len().saturating_sub(8)..]);
    let mixed =
        (head ^ tail.rotate_left(29) ^ bytes.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (64 - SLOTS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn a_repeated_value_is_checked_once_and_gets_the_same_answer() {
        let calls = Cell::new(0);
        let check = |s: &str| {
            calls.set(calls.get() + 1);
            s.starts_with('U')
        };
        let mut memo = ValueMemo::new();
        let values = ["UA", "AA", "UA", "UA", "AA", "US"];
        let results: Vec<bool> = values.iter().map(|v| memo.check(v, check)).collect();
        assert_eq!(results, [true, false, true, true, false, true]);
        assert_eq!(calls.get(), 3, "one check per distinct value");
    }

    /// Values that share a slot evict each other but never borrow each other's answer.
    #[test]
    fn values_sharing_a_slot_keep_their_own_answers() {
        let values: Vec<String> = (0..2_000).map(|i| format!("value-{i}")).collect();
        let mut memo = ValueMemo::new();
        for round in 0..3 {
            for (i, value) in values.iter().enumerate() {
                let expected = i % 3 == 0;
                let got = memo.check(value, |s| {
                    s.trim_start_matches("value-").parse::<usize>().unwrap() % 3 == 0
                });
                assert_eq!(got, expected, "round {round}, {value}");
            }
        }
    }

    #[test]
    fn empty_and_long_values_have_slots() {
        let long = "x".repeat(100);
        let mut memo = ValueMemo::new();
        assert!(memo.check("", str::is_empty));
        assert!(!memo.check(&long, str::is_empty));
        assert!(memo.check("", str::is_empty));
        assert!(!memo.check(&long, str::is_empty));
    }
}

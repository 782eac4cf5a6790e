//! Which files in a source folder are deliveries.

use crate::config::Format;

/// Hidden and temporary names that writers use while a file is incomplete.
pub fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with(".tmp")
        || name.ends_with(".part")
        || name.ends_with('~')
        || name.ends_with(".crdownload")
}

/// With a pattern, the glob decides; without, any file whose format is known (or the source's
/// declared format) is taken.
pub fn matches_pattern(name: &str, pattern: Option<&str>, format: Option<Format>) -> bool {
    match pattern {
        Some(p) => glob_match(p.as_bytes(), name.as_bytes()),
        None => format.is_some() || Format::from_path(std::path::Path::new(name)).is_some(),
    }
}

/// `*` and `?` wildcards, iterative with backtracking to the last star.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"*.csv", b"sales_2024.csv"));
        assert!(glob_match(b"sales_??.csv", b"sales_01.csv"));
        assert!(!glob_match(b"*.csv", b"sales.csv.gz"));
        assert!(glob_match(b"*.csv*", b"sales.csv.gz"));
        assert!(is_ignored_name(".hidden.csv"));
        assert!(is_ignored_name("upload.csv.part"));
        assert!(!is_ignored_name("sales.csv"));
    }
}

//! Configuration errors are collected, never thrown one at a time: a user fixing a config file
//! wants the whole list, each entry pointing at file:line:column.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// All configuration errors found in one validation pass.
#[derive(Debug, Clone, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} configuration error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for err in &self.0 {
            writeln!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// One configuration text being read, with the errors found in it so far.
pub struct Document {
    pub file: PathBuf,
    text: String,
    line_starts: Vec<usize>,
    errors: RefCell<Vec<ConfigError>>,
    vars: HashMap<String, String>,
}

impl Document {
    pub fn new(file: &Path, text: String, vars: HashMap<String, String>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Document {
            file: file.to_path_buf(),
            text,
            line_starts,
            errors: RefCell::new(Vec::new()),
            vars,
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset.min(self.text.len()))
            .map_or(1, |s| s.chars().count() + 1);
        (line, column)
    }

    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) {
        self.push(span, message.into(), None);
    }

    pub fn error_hint(
        &self,
        span: &Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(span, message.into(), Some(hint.into()));
    }

    fn push(&self, span: &Range<usize>, message: String, hint: Option<String>) {
        let (line, column) = self.position(span.start);
        self.errors.borrow_mut().push(ConfigError {
            file: self.file.clone(),
            line,
            column,
            message,
            hint,
        });
    }

    pub fn take_errors(&self) -> Vec<ConfigError> {
        std::mem::take(&mut *self.errors.borrow_mut())
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.borrow().is_empty()
    }

    /// Expand `${VAR}` and `${VAR:-default}`; `$${` stays a literal `${`.
    pub fn interpolate(&self, raw: &str, span: &Range<usize>) -> String {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
            } else if let Some(after) = tail.strip_prefix("${") {
                let Some(end) = after.find('}') else {
                    self.error_hint(
                        span,
                        "unterminated `${` in string",
                        "close it with `}`, or write `$${` for a literal `${`",
                    );
                    return out;
                };
                let expr = &after[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                match (self.vars.get(name), default) {
                    (Some(v), _) => out.push_str(v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => self.error_hint(
                        span,
                        format!("environment variable `{name}` is not set"),
                        format!("set {name} in the environment or in .env, or write `${{{name}:-default}}`"),
                    ),
                }
                rest = &after[end + 1..];
            } else {
                out.push('$');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        out
    }
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str, vars: &[(&str, &str)]) -> Document {
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Document::new(Path::new("caudal.toml"), text.to_string(), vars)
    }

    #[test]
    fn interpolates_variables_and_defaults() {
        let d = doc("", &[("HOME_DIR", "/data")]);
        assert_eq!(d.interpolate("${HOME_DIR}/in", &(0..0)), "/data/in");
        assert_eq!(d.interpolate("${NOPE:-x}", &(0..0)), "x");
        assert_eq!(
            d.interpolate("$${HOME_DIR} costs $5", &(0..0)),
            "${HOME_DIR} costs $5"
        );
        assert!(!d.has_errors());
        d.interpolate("${MISSING}", &(0..0));
        let errs = d.take_errors();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains("MISSING"));
    }

    #[test]
    fn positions_are_one_based() {
        let d = doc("a = 1\nbé = 2\n", &[]);
        assert_eq!(d.position(0), (1, 1));
        assert_eq!(d.position(6), (2, 1));
        assert_eq!(d.position(10), (2, 4));
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            suggest("destinaton", ["destinations", "pipelines"]),
            Some("destinations")
        );
        assert_eq!(suggest("zzz", ["destinations", "pipelines"]), None);
    }
}

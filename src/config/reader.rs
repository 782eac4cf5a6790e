//! Typed access to a spanned TOML tree. Each accessor records what it read, so that at the end
//! every key nobody asked for is reported as unknown (with a "did you mean"), instead of being
//! silently ignored.

use std::cell::RefCell;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostics::{Document, suggest};

/// A value together with where it was written.
#[derive(Debug, Clone)]
pub struct At<T> {
    pub value: T,
    pub span: Range<usize>,
}

/// One TOML table being read.
pub struct TableReader<'d, 'a, 'i> {
    pub doc: &'d Document,
    table: &'a DeTable<'i>,
    pub span: Range<usize>,
    /// Dotted path of this table, for messages (`pipelines.flights.source`).
    pub path: String,
    seen: RefCell<Vec<String>>,
}

/// One TOML value being read.
pub struct ValueReader<'d, 'a, 'i> {
    pub doc: &'d Document,
    value: &'a Spanned<DeValue<'i>>,
    pub path: String,
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'d, 'a, 'i> ValueReader<'d, 'a, 'i> {
    pub fn new(doc: &'d Document, value: &'a Spanned<DeValue<'i>>, path: String) -> Self {
        ValueReader { doc, value, path }
    }

    pub fn span(&self) -> Range<usize> {
        self.value.span()
    }

    fn wrong_type(&self, expected: &str) {
        self.doc.error(
            &self.span(),
            format!(
                "`{}` must be {expected}, found {}",
                self.path,
                type_name(self.value.get_ref())
            ),
        );
    }

    pub fn is_table(&self) -> bool {
        matches!(self.value.get_ref(), DeValue::Table(_))
    }

    pub fn is_str(&self) -> bool {
        matches!(self.value.get_ref(), DeValue::String(_))
    }

    /// A string, with `${VAR}` expanded.
    pub fn str(&self) -> Option<At<String>> {
        match self.value.get_ref() {
            DeValue::String(s) => Some(At {
                value: self.doc.interpolate(s, &self.span()),
                span: self.span(),
            }),
            _ => {
                self.wrong_type("a string");
                None
            }
        }
    }

    pub fn bool(&self) -> Option<bool> {
        match self.value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type("true or false");
                None
            }
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self.value.get_ref() {
            DeValue::Integer(i) => {
                match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        self.doc
                            .error(&self.span(), format!("`{}` is out of range", self.path));
                        None
                    }
                }
            }
            _ => {
                self.wrong_type("an integer");
                None
            }
        }
    }

    /// A number; integers are accepted where a float is expected.
    pub fn number(&self) -> Option<f64> {
        match self.value.get_ref() {
            DeValue::Integer(_) => self.int().map(|v| v as f64),
            DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
                Ok(v) => Some(v),
                Err(_) => {
                    self.doc.error(
                        &self.span(),
                        format!("`{}` is not a valid number", self.path),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type("a number");
                None
            }
        }
    }

    pub fn table(&self) -> Option<TableReader<'d, 'a, 'i>> {
        match self.value.get_ref() {
            DeValue::Table(t) => Some(TableReader {
                doc: self.doc,
                table: t,
                span: self.span(),
                path: self.path.clone(),
                seen: RefCell::new(Vec::new()),
            }),
            _ => {
                self.wrong_type("a table");
                None
            }
        }
    }

    pub fn array(&self) -> Option<Vec<ValueReader<'d, 'a, 'i>>> {
        match self.value.get_ref() {
            DeValue::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| ValueReader::new(self.doc, v, format!("{}[{i}]", self.path)))
                    .collect(),
            ),
            _ => {
                self.wrong_type("an array");
                None
            }
        }
    }

    /// An array of strings; a single string is accepted as a one-element list.
    pub fn str_list(&self) -> Option<Vec<At<String>>> {
        if self.is_str() {
            return self.str().map(|s| vec![s]);
        }
        let items = self.array()?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(item.str()?);
        }
        Some(out)
    }

    /// A string that must be one of `allowed`.
    pub fn choice(&self, allowed: &[&str]) -> Option<At<String>> {
        let s = self.str()?;
        if allowed.contains(&s.value.as_str()) {
            Some(s)
        } else {
            let hint = match suggest(&s.value, allowed.iter().copied()) {
                Some(close) => format!("did you mean \"{close}\"? allowed: {}", allowed.join(", ")),
                None => format!("allowed: {}", allowed.join(", ")),
            };
            self.doc.error_hint(
                &s.span,
                format!("`{}` has unknown value \"{}\"", self.path, s.value),
                hint,
            );
            None
        }
    }

    /// A duration like `30s`, `15m`, `2h`, `90d`.
    pub fn duration(&self) -> Option<At<std::time::Duration>> {
        let s = self.str()?;
        match parse_duration(&s.value) {
            Some(d) => Some(At {
                value: d,
                span: s.span,
            }),
            None => {
                self.doc.error_hint(
                    &s.span,
                    format!("`{}` is not a duration: \"{}\"", self.path, s.value),
                    "write a number and a unit: 500ms, 30s, 15m, 2h, 90d",
                );
                None
            }
        }
    }
}

pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = text.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        "w" => n * 7.0 * 86400.0,
        _ => return None,
    };
    std::time::Duration::try_from_secs_f64(secs).ok()
}

impl<'d, 'a, 'i> TableReader<'d, 'a, 'i> {
    pub fn root(doc: &'d Document, table: &'a Spanned<DeTable<'i>>) -> Self {
        TableReader {
            doc,
            table: table.get_ref(),
            span: table.span(),
            path: String::new(),
            seen: RefCell::new(Vec::new()),
        }
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value under `key`, marking the key as known.
    pub fn get(&self, key: &str) -> Option<ValueReader<'d, 'a, 'i>> {
        self.seen.borrow_mut().push(key.to_string());
        self.table
            .get(key)
            .map(|v| ValueReader::new(self.doc, v, self.child_path(key)))
    }

    /// Like `get`, but a missing key is an error.
    pub fn require(&self, key: &str) -> Option<ValueReader<'d, 'a, 'i>> {
        let v = self.get(key);
        if v.is_none() {
            self.doc.error(
                &self.key_span(),
                format!(
                    "`{}` is missing the required key `{key}`",
                    self.display_path()
                ),
            );
        }
        v
    }

    fn display_path(&self) -> &str {
        if self.path.is_empty() {
            "the file"
        } else {
            &self.path
        }
    }

    /// Where to point when the table itself is at fault: its header line.
    fn key_span(&self) -> Range<usize> {
        self.span.clone()
    }

    pub fn str(&self, key: &str) -> Option<At<String>> {
        self.get(key).and_then(|v| v.str())
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(|v| v.bool())
    }

    /// Every entry of a table whose keys are user-chosen names (`[pipelines.NAME]`).
    pub fn entries(&self) -> Vec<(At<String>, ValueReader<'d, 'a, 'i>)> {
        self.table
            .iter()
            .map(|(k, v)| {
                self.seen.borrow_mut().push(k.get_ref().to_string());
                (
                    At {
                        value: k.get_ref().to_string(),
                        span: k.span(),
                    },
                    ValueReader::new(self.doc, v, self.child_path(k.get_ref())),
                )
            })
            .collect()
    }

    /// Report every key that was never read; call once the table has been fully read.
    pub fn finish(self) {
        let seen = self.seen.borrow();
        for (key, _) in self.table.iter() {
            let name = key.get_ref();
            if seen.iter().any(|s| s == name.as_ref()) {
                continue;
            }
            let known: Vec<&str> = seen.iter().map(String::as_str).collect();
            let message = format!("unknown key `{}`", self.child_path(name));
            match suggest(name, known.iter().copied()) {
                Some(close) => {
                    self.doc
                        .error_hint(&key.span(), message, format!("did you mean `{close}`?"))
                }
                None if known.is_empty() => self.doc.error(&key.span(), message),
                None => self.doc.error_hint(
                    &key.span(),
                    message,
                    format!("known keys here: {}", dedup(&known).join(", ")),
                ),
            }
        }
    }
}

fn dedup<'s>(items: &[&'s str]) -> Vec<&'s str> {
    let mut out: Vec<&str> = Vec::new();
    for i in items {
        if !out.contains(i) {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30s"),
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(
            parse_duration("15m"),
            Some(std::time::Duration::from_secs(900))
        );
        assert_eq!(
            parse_duration("500ms"),
            Some(std::time::Duration::from_millis(500))
        );
        assert_eq!(
            parse_duration("2 h"),
            Some(std::time::Duration::from_secs(7200))
        );
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5y"), None);
    }
}

//! Violations and the quality report of a delivery. The vocabulary of `code` follows
//! frictionless (type-error, missing-cell, extra-cell, blank-row, blank-label, duplicate-label,
//! constraint-error, unique-error, row-constraint, table-error), one error per cell.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    /// 1-based line in the file where the row starts, as an editor shows it.
    pub line: Option<u64>,
    /// Frictionless row number: the header is row 1, each following record one more.
    pub row: Option<u64>,
    /// 1-based field position in the file.
    pub field: Option<usize>,
    pub column: Option<String>,
    pub code: &'static str,
    /// The contract rule that failed (`required`, `minimum`, `pattern`, a row rule's name, …).
    pub rule: String,
    pub value: Option<String>,
    pub message: String,
    /// Index of the row within its batch, to mark it bad; not part of the report.
    #[serde(skip)]
    pub batch_row: Option<usize>,
}

impl Violation {
    pub fn label(line: u64, field: usize, code: &'static str, name: &str, message: String) -> Self {
        Violation {
            line: Some(line),
            row: None,
            field: Some(field + 1),
            column: (!name.is_empty()).then(|| name.to_string()),
            code,
            rule: String::new(),
            value: Some(name.to_string()),
            message,
            batch_row: None,
        }
    }

    pub fn blank_row(line: u64, row: u64, batch_row: Option<usize>) -> Self {
        Violation {
            line: Some(line),
            row: Some(row),
            field: None,
            column: None,
            code: "blank-row",
            rule: String::new(),
            value: None,
            message: "the row is empty".into(),
            batch_row,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn cell(
        line: u64,
        row: u64,
        batch_row: Option<usize>,
        field: usize,
        column: &str,
        code: &'static str,
        rule: &str,
        value: Option<String>,
        message: String,
    ) -> Self {
        Violation {
            line: Some(line),
            row: Some(row),
            field: Some(field + 1),
            column: (!column.is_empty()).then(|| column.to_string()),
            code,
            rule: rule.to_string(),
            value,
            message,
            batch_row,
        }
    }

    pub fn table(rule: &str, message: String) -> Self {
        Violation {
            line: None,
            row: None,
            field: None,
            column: None,
            code: "table-error",
            rule: rule.to_string(),
            value: None,
            message,
            batch_row: None,
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}")?;
        } else {
            write!(f, "table")?;
        }
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        } else if let Some(field) = self.field {
            write!(f, ", field {field}")?;
        }
        write!(f, ": {} ", self.code)?;
        if !self.rule.is_empty() {
            write!(f, "[{}] ", self.rule)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(v) = &self.value {
            write!(f, " (value: {:?})", truncate(v, 80))?;
        }
        Ok(())
    }
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// How many violations a report keeps in full; the rest are only counted.
pub const REPORT_LIMIT: usize = 10_000;

/// Violations of one delivery, bounded in memory.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Violations {
    pub errors: Vec<Violation>,
    pub total: u64,
    /// Count per code/rule, over all violations (including those not kept).
    pub by_rule: BTreeMap<String, u64>,
}

impl Violations {
    pub fn push(&mut self, v: Violation) {
        self.total += 1;
        let key = if v.rule.is_empty() {
            v.code.to_string()
        } else {
            format!("{} [{}]", v.code, v.rule)
        };
        *self.by_rule.entry(key).or_default() += 1;
        if self.errors.len() < REPORT_LIMIT {
            self.errors.push(v);
        }
    }

    pub fn extend(&mut self, vs: impl IntoIterator<Item = Violation>) {
        for v in vs {
            self.push(v);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn truncated(&self) -> bool {
        self.total as usize > self.errors.len()
    }
}

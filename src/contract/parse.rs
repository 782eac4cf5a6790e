//! Reading a contract from TOML, collecting every mistake with its position.

use std::path::Path;

use regex::Regex;

use super::model::*;
use super::temporal;
use crate::config::Document;
use crate::config::reader::{TableReader, ValueReader};

/// Read a contract table (a whole contract file, or an inline `contract = { ... }`).
pub fn compile_contract(table: TableReader<'_, '_, '_>, file: Option<&Path>) -> Option<Contract> {
    let doc = table.doc;
    let mut columns = Vec::new();
    if let Some(cols) = table.require("columns").and_then(|v| v.table()) {
        for (name, value) in cols.entries() {
            if name.value.trim().is_empty() {
                doc.error(&name.span, "column names cannot be blank");
                continue;
            }
            if let Some(spec) = compile_column(&name.value, &value) {
                columns.push(spec);
            }
        }
        cols.finish();
    }
    let mut rules = Vec::new();
    if let Some(items) = table.get("rules").and_then(|v| v.array()) {
        for item in items {
            let Some(rule) = item.table() else { continue };
            let name = rule.require("name").and_then(|v| v.str());
            let check = rule.require("check").and_then(|v| v.str());
            if let Some(check) = &check
                && let Err(message) = crate::transform::check_expression_syntax(&check.value)
            {
                doc.error_hint(
                        &check.span,
                        format!("rule check is not a valid SQL expression: {message}"),
                        "write a boolean SQL expression over the contract's columns, e.g. \"total >= 0\"",
                    );
            }
            rule.finish();
            if let (Some(name), Some(check)) = (name, check) {
                rules.push(RowRule {
                    name: name.value,
                    check: check.value,
                });
            }
        }
    }
    let table_rules = table
        .get("table")
        .and_then(|v| v.table())
        .map(|t| compile_table_rules(t, &columns))
        .unwrap_or_default();
    table.get("description");
    table.finish();
    if doc.has_errors() {
        return None;
    }
    Some(Contract {
        file: file.map(Path::to_path_buf),
        columns,
        rules,
        table: table_rules,
    })
}

fn compile_table_rules(t: TableReader<'_, '_, '_>, columns: &[ColumnSpec]) -> TableRules {
    let doc = t.doc;
    let mut rules = TableRules::default();
    let count = |key: &str| {
        t.get(key).and_then(|v| {
            let n = v.int()?;
            if n < 0 {
                doc.error(&v.span(), format!("`{key}` cannot be negative"));
                return None;
            }
            Some(n as u64)
        })
    };
    rules.min_rows = count("min_rows");
    rules.max_rows = count("max_rows");
    if let Some(sets) = t.get("unique").and_then(|v| v.array()) {
        for set in sets {
            let Some(names) = set.str_list() else {
                continue;
            };
            for n in &names {
                if !columns.iter().any(|c| c.name == n.value) {
                    doc.error(
                        &n.span,
                        format!(
                            "unique names column `{}`, which the contract does not declare",
                            n.value
                        ),
                    );
                }
            }
            rules
                .unique
                .push(names.into_iter().map(|n| n.value).collect());
        }
    }
    if let Some(v) = t
        .get("extra_columns")
        .and_then(|v| v.choice(&["error", "ignore", "keep"]))
    {
        rules.extra_columns = match v.value.as_str() {
            "ignore" => ExtraColumns::Ignore,
            "keep" => ExtraColumns::Keep,
            _ => ExtraColumns::Error,
        };
    }
    if let Some(v) = t
        .get("missing_columns")
        .and_then(|v| v.choice(&["error", "fill"]))
    {
        rules.missing_columns = if v.value == "fill" {
            MissingColumns::Fill
        } else {
            MissingColumns::Error
        };
    }
    t.finish();
    rules
}

fn compile_column(name: &str, value: &ValueReader<'_, '_, '_>) -> Option<ColumnSpec> {
    let doc = value.doc;
    // `year = "int64"` is shorthand for `year = { type = "int64" }`.
    if value.is_str() {
        let ty = value.choice(ColumnType::NAMES)?;
        return Some(ColumnSpec::new(name, simple_type(&ty.value)?));
    }
    let t = value.table()?;
    let type_name = t.require("type").and_then(|v| v.choice(ColumnType::NAMES));
    let format_value = t.get("format");
    let data_type = match type_name.as_ref().map(|t| t.value.as_str()) {
        Some("decimal") => {
            let precision = t.get("precision").and_then(|v| v.int()).unwrap_or(38);
            let scale = t.get("scale").and_then(|v| v.int()).unwrap_or(2);
            if !(1..=38).contains(&precision) || !(0..=precision).contains(&scale) {
                doc.error(
                    &t.span,
                    format!("decimal column `{name}` needs 1 <= precision <= 38 and 0 <= scale <= precision"),
                );
                None
            } else {
                Some(ColumnType::Decimal {
                    precision: precision as u8,
                    scale: scale as i8,
                })
            }
        }
        Some("date") => Some(ColumnType::Date {
            format: format_value
                .as_ref()
                .and_then(|v| temporal_format(v, false)),
        }),
        Some("timestamp") => {
            let timezone = t.get("timezone").and_then(|v| {
                let s = v.str()?;
                match s.value.parse::<chrono_tz::Tz>() {
                    Ok(tz) => Some(tz),
                    Err(_) => {
                        doc.error_hint(
                            &s.span,
                            format!("unknown time zone \"{}\"", s.value),
                            "use an IANA name such as \"UTC\", \"Europe/Madrid\" or \"America/New_York\"",
                        );
                        None
                    }
                }
            });
            Some(ColumnType::Timestamp {
                format: format_value.as_ref().and_then(|v| temporal_format(v, true)),
                timezone,
            })
        }
        Some(other) => simple_type(other),
        None => None,
    };
    let Some(data_type) = data_type else {
        // The type is wrong, but the column's other keys are still checked so that one run of
        // `caudal validate` shows every mistake.
        for key in [
            "required",
            "unique",
            "min",
            "max",
            "exclusive_min",
            "exclusive_max",
            "in",
            "min_length",
            "max_length",
            "timezone",
            "precision",
            "scale",
            "description",
        ] {
            t.get(key);
        }
        if let Some(p) = t.get("pattern").and_then(|v| v.str())
            && let Err(e) = Regex::new(&p.value)
        {
            doc.error(
                &p.span,
                format!("`pattern` of `{name}` is not a valid regular expression: {e}"),
            );
        }
        t.finish();
        return None;
    };
    let mut spec = ColumnSpec::new(name, data_type.clone());
    spec.required = t.bool("required").unwrap_or(false);
    spec.unique = t.bool("unique").unwrap_or(false);
    t.get("description");

    if let Some(fv) = &format_value
        && !matches!(
            data_type,
            ColumnType::Date { .. } | ColumnType::Timestamp { .. }
        )
    {
        if data_type != ColumnType::String {
            doc.error(
                &fv.span(),
                format!(
                    "`format` on `{name}`: only string, date and timestamp columns have a format"
                ),
            );
        } else if let Some(f) = fv.choice(StringFormat::NAMES) {
            spec.format = match f.value.as_str() {
                "email" => Some(StringFormat::Email),
                "url" => Some(StringFormat::Url),
                _ => Some(StringFormat::Uuid),
            };
        }
    }

    let min = t.get("min");
    let max = t.get("max");
    let exclusive_min = t.get("exclusive_min");
    let exclusive_max = t.get("exclusive_max");
    if min.is_some() || max.is_some() || exclusive_min.is_some() || exclusive_max.is_some() {
        if let (Some(_), Some(em)) = (&min, &exclusive_min) {
            doc.error(
                &em.span(),
                format!("`{name}` has both min and exclusive_min; keep one"),
            );
        }
        if let (Some(_), Some(em)) = (&max, &exclusive_max) {
            doc.error(
                &em.span(),
                format!("`{name}` has both max and exclusive_max; keep one"),
            );
        }
        let lo = min.as_ref().or(exclusive_min.as_ref());
        let hi = max.as_ref().or(exclusive_max.as_ref());
        let lo_bound = lo.and_then(|v| bound(name, &data_type, v));
        let hi_bound = hi.and_then(|v| bound(name, &data_type, v));
        let text = match (lo, hi) {
            (Some(l), Some(h)) => format!(
                "{} {} and {} {}",
                if exclusive_min.is_some() { ">" } else { ">=" },
                bound_text(l),
                if exclusive_max.is_some() { "<" } else { "<=" },
                bound_text(h)
            ),
            (Some(l), None) => format!(
                "{} {}",
                if exclusive_min.is_some() { ">" } else { ">=" },
                bound_text(l)
            ),
            (None, Some(h)) => format!(
                "{} {}",
                if exclusive_max.is_some() { "<" } else { "<=" },
                bound_text(h)
            ),
            (None, None) => String::new(),
        };
        spec.range = Some(Range {
            min: lo_bound,
            max: hi_bound,
            exclusive_min: exclusive_min.is_some(),
            exclusive_max: exclusive_max.is_some(),
            text,
        });
    }

    if let Some(v) = t.get("in")
        && let Some(items) = v.array()
    {
        let mut allowed = Vec::new();
        for item in items {
            let text = if data_type == ColumnType::Int64 {
                item.number().and_then(|n| {
                        if n.fract() == 0.0 {
                            Some(canonical_number(&data_type, n))
                        } else {
                            doc.error(&item.span(), format!("`in` of int64 column `{name}` lists {n}, which is not a whole number"));
                            None
                        }
                    })
            } else if data_type.is_numeric() {
                item.number().map(|n| canonical_number(&data_type, n))
            } else {
                item.str().map(|s| s.value)
            };
            allowed.extend(text);
        }
        spec.allowed = Some(allowed);
    }
    if let Some(p) = t.get("pattern").and_then(|v| v.str()) {
        if data_type != ColumnType::String {
            doc.error(
                &p.span,
                format!("`pattern` on `{name}`: only string columns can have a pattern"),
            );
        }
        match Regex::new(&p.value) {
            Ok(re) => spec.pattern = Some(re),
            Err(e) => doc.error(
                &p.span,
                format!("`pattern` of `{name}` is not a valid regular expression: {e}"),
            ),
        }
    }
    for (key, slot) in [
        ("min_length", &mut spec.min_length),
        ("max_length", &mut spec.max_length),
    ] {
        if let Some(v) = t.get(key) {
            if data_type != ColumnType::String {
                doc.error(
                    &v.span(),
                    format!("`{key}` on `{name}`: only string columns have a length"),
                );
            }
            match v.int() {
                Some(n) if n >= 0 => *slot = Some(n as usize),
                Some(_) => doc.error(&v.span(), format!("`{key}` cannot be negative")),
                None => {}
            }
        }
    }
    t.finish();
    Some(spec)
}

fn simple_type(name: &str) -> Option<ColumnType> {
    Some(match name {
        "int64" => ColumnType::Int64,
        "float64" => ColumnType::Float64,
        "decimal" => ColumnType::Decimal {
            precision: 38,
            scale: 2,
        },
        "bool" => ColumnType::Bool,
        "string" => ColumnType::String,
        "date" => ColumnType::Date { format: None },
        "timestamp" => ColumnType::Timestamp {
            format: None,
            timezone: None,
        },
        _ => return None,
    })
}

fn temporal_format(v: &ValueReader<'_, '_, '_>, with_time: bool) -> Option<String> {
    let f = v.str()?;
    if let Err(message) = temporal::check_format(&f.value, with_time) {
        v.doc.error_hint(
            &f.span,
            format!(
                "invalid {} format \"{}\": {message}",
                if with_time { "timestamp" } else { "date" },
                f.value
            ),
            "use strftime codes, e.g. \"%d/%m/%Y\" or \"%Y-%m-%d %H:%M:%S\"",
        );
        return None;
    }
    Some(f.value)
}

fn bound_text(v: &ValueReader<'_, '_, '_>) -> String {
    let doc: &Document = v.doc;
    let span = v.span();
    doc.text().get(span).unwrap_or("?").to_string()
}

fn canonical_number(ty: &ColumnType, n: f64) -> String {
    match ty {
        ColumnType::Int64 => format!("{}", n as i64),
        _ => format!("{n}"),
    }
}

fn bound(name: &str, ty: &ColumnType, v: &ValueReader<'_, '_, '_>) -> Option<Bound> {
    let doc = v.doc;
    match ty {
        ColumnType::Int64 => {
            let n = v.number()?;
            Some(if n.fract() == 0.0 {
                Bound::Int(n as i64)
            } else {
                Bound::Float(n)
            })
        }
        ColumnType::Float64 => v.number().map(Bound::Float),
        ColumnType::Decimal { scale, .. } => {
            let n = v.number()?;
            Some(Bound::Decimal(
                (n * 10f64.powi(i32::from(*scale))).round() as i128
            ))
        }
        ColumnType::Date { .. } => {
            let s = v.str()?;
            match temporal::parse_date(&s.value, None) {
                Some(d) => Some(Bound::Temporal(i64::from(d))),
                None => {
                    doc.error(
                        &s.span,
                        format!(
                            "bound of `{name}` is not a date (YYYY-MM-DD): \"{}\"",
                            s.value
                        ),
                    );
                    None
                }
            }
        }
        ColumnType::Timestamp { timezone, .. } => {
            let s = v.str()?;
            match temporal::parse_timestamp(&s.value, None, *timezone) {
                Ok(t) => Some(Bound::Temporal(t)),
                Err(_) => {
                    doc.error(
                        &s.span,
                        format!(
                            "bound of `{name}` is not a timestamp (RFC 3339): \"{}\"",
                            s.value
                        ),
                    );
                    None
                }
            }
        }
        ColumnType::Bool | ColumnType::String => {
            doc.error(
                &v.span(),
                format!(
                    "`{name}` is a {} column: min/max apply to numbers, dates and timestamps",
                    ty.name()
                ),
            );
            None
        }
    }
}

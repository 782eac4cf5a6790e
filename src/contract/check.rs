//! Applying a contract to decoded batches: typing, cell checks, row rules and uniqueness, all as
//! kernels over whole columns. The result of a batch is its valid rows (typed) and its invalid
//! rows (as the text that arrived, with the reasons), so quarantine keeps what was sent.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array,
};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::kernels::cmp::{gt, gt_eq, lt, lt_eq};
use datafusion::arrow::compute::{and, filter_record_batch, is_not_null, is_null, or};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

use super::cast::{expectation, to_text, to_type};
use super::memo::ValueMemo;
use super::model::*;
use super::report::{Violation, Violations, truncate};
use crate::decode::{Header, RawBatch};
use crate::error::{Context, Error, Result};

pub const LINE_COLUMN: &str = "_caudal_line";
pub const ERRORS_COLUMN: &str = "_caudal_errors";

struct UniqueSet {
    rule: String,
    /// Output column indexes forming the key.
    columns: Vec<usize>,
    converter: RowConverter,
    seen: HashSet<Box<[u8]>>,
}

struct CompiledRule {
    name: String,
    expr: Arc<dyn PhysicalExpr>,
}

/// A batch after checking.
pub struct CheckedBatch {
    /// Valid rows, typed by the contract.
    pub valid: RecordBatch,
    /// Invalid rows as they arrived (text), plus line and reasons; `None` when all are valid.
    pub rejected: Option<RecordBatch>,
}

pub struct Checker {
    contract: Arc<Contract>,
    /// For each contract column, its index in the file's header (None: absent, filled with nulls).
    mapping: Vec<Option<usize>>,
    /// Header indexes of extra columns kept as text.
    kept_extras: Vec<usize>,
    schema: SchemaRef,
    rejects_schema: SchemaRef,
    rules: Vec<CompiledRule>,
    uniques: Vec<UniqueSet>,
    rows_seen: u64,
}

impl Checker {
    /// Match the file's header against the contract. The returned violations concern the whole
    /// file (bad labels, missing or unexpected columns): any of them makes it unloadable.
    pub fn new(
        contract: Arc<Contract>,
        header: &Header,
        ctx: &SessionContext,
    ) -> Result<(Self, Vec<Violation>)> {
        let mut problems = header.problems.clone();
        let header_line = problems.first().and_then(|p| p.line).unwrap_or(1);
        let index: HashMap<&str, usize> = header
            .names
            .iter()
            .enumerate()
            .rev()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut mapping = Vec::with_capacity(contract.columns.len());
        for col in &contract.columns {
            let found = index.get(col.name.as_str()).copied();
            if found.is_none()
                && (contract.table.missing_columns == MissingColumns::Error || col.required)
            {
                problems.push(Violation {
                    line: Some(header_line),
                    row: None,
                    field: None,
                    column: Some(col.name.clone()),
                    code: "missing-label",
                    rule: "missing_columns".into(),
                    value: None,
                    message: format!(
                        "the contract declares column \"{}\" but the file has no such column",
                        col.name
                    ),
                    batch_row: None,
                });
            }
            mapping.push(found);
        }
        let mut kept_extras = Vec::new();
        for (i, name) in header.names.iter().enumerate() {
            if contract.column(name).is_some() || name.trim().is_empty() {
                continue;
            }
            match contract.table.extra_columns {
                ExtraColumns::Error => problems.push(Violation::label(
                    header_line,
                    i,
                    "extra-label",
                    name,
                    format!("column \"{name}\" is not in the contract (set [table] extra_columns = \"ignore\" or \"keep\" to accept it)"),
                )),
                ExtraColumns::Ignore => {}
                ExtraColumns::Keep => kept_extras.push(i),
            }
        }
        let mut fields: Vec<Field> = contract
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.data_type.arrow_type(), true))
            .collect();
        fields.extend(
            kept_extras
                .iter()
                .map(|&i| Field::new(&header.names[i], DataType::Utf8, true)),
        );
        let schema = Arc::new(Schema::new(fields));
        let mut reject_fields: Vec<Field> = header
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Field::new(
                    if n.trim().is_empty() {
                        format!("field_{}", i + 1)
                    } else {
                        n.clone()
                    },
                    DataType::Utf8,
                    true,
                )
            })
            .collect();
        reject_fields.push(Field::new(LINE_COLUMN, DataType::UInt64, false));
        reject_fields.push(Field::new(ERRORS_COLUMN, DataType::Utf8, false));
        let rejects_schema = Arc::new(Schema::new(reject_fields));

        let df_schema = datafusion::common::DFSchema::try_from(schema.as_ref().clone())
            .map_err(|e| Error::Internal(format!("contract schema: {e}")))?;
        let mut rules = Vec::new();
        for rule in &contract.rules {
            let compiled = ctx
                .parse_sql_expr(&rule.check, &df_schema)
                .and_then(|expr| ctx.create_physical_expr(expr, &df_schema))
                .map_err(|e| Error::Transform {
                    context: format!("row rule \"{}\" ({})", rule.name, rule.check),
                    message: e.to_string(),
                })?;
            rules.push(CompiledRule {
                name: rule.name.clone(),
                expr: compiled,
            });
        }
        let mut uniques = Vec::new();
        let position = |name: &str| contract.columns.iter().position(|c| c.name == name);
        let mut key_sets: Vec<(String, Vec<usize>)> = contract
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.unique)
            .map(|(i, c)| (format!("unique {}", c.name), vec![i]))
            .collect();
        for set in &contract.table.unique {
            let cols: Option<Vec<usize>> = set.iter().map(|n| position(n)).collect();
            if let Some(cols) = cols {
                key_sets.push((format!("unique ({})", set.join(", ")), cols));
            }
        }
        for (rule, columns) in key_sets {
            let fields = columns
                .iter()
                .map(|&i| SortField::new(schema.field(i).data_type().clone()))
                .collect();
            let converter =
                RowConverter::new(fields).context(|| "building a unique-key encoder".into())?;
            uniques.push(UniqueSet {
                rule,
                columns,
                converter,
                seen: HashSet::new(),
            });
        }
        Ok((
            Checker {
                contract,
                mapping,
                kept_extras,
                schema,
                rejects_schema,
                rules,
                uniques,
                rows_seen: 0,
            },
            problems,
        ))
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Check one batch, adding its violations to `violations`.
    pub fn check(&mut self, raw: RawBatch, violations: &mut Violations) -> Result<CheckedBatch> {
        let n = raw.num_rows();
        self.rows_seen += n as u64;
        let mut found: Vec<Violation> = raw.problems;
        let mut bad = raw.structurally_bad;
        let structural: HashSet<(usize, usize)> = found
            .iter()
            .filter_map(|v| Some((v.batch_row?, v.field? - 1)))
            .collect();
        let row_number = |i: usize| -> u64 { raw.rows[i] };

        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (ci, spec) in self.contract.columns.iter().enumerate() {
            let Some(hi) = self.mapping[ci] else {
                columns.push(datafusion::arrow::array::new_null_array(
                    &spec.data_type.arrow_type(),
                    n,
                ));
                continue;
            };
            let src = &raw.columns[hi];
            let typed = to_type(src, &spec.data_type)?;
            let mut emit = |mask: &BooleanArray,
                            code: &'static str,
                            rule: &str,
                            message: &dyn Fn(Option<&str>) -> String,
                            values: &ArrayRef|
             -> Result<()> {
                if mask.true_count() == 0 {
                    return Ok(());
                }
                let text = to_text(values)?;
                let text = text.as_string::<i32>();
                for (i, row_bad) in bad.iter_mut().enumerate() {
                    if mask.is_valid(i) && mask.value(i) && !structural.contains(&(i, hi)) {
                        let value = text.is_valid(i).then(|| text.value(i));
                        found.push(Violation::cell(
                            raw.lines[i],
                            row_number(i),
                            Some(i),
                            hi,
                            &spec.name,
                            code,
                            rule,
                            value.map(str::to_string),
                            message(value),
                        ));
                        *row_bad = true;
                    }
                }
                Ok(())
            };
            // type-error: a value arrived but did not convert.
            let type_errors = and(
                &is_not_null(src).context(|| "null mask".into())?,
                &is_null(&typed).context(|| "null mask".into())?,
            )
            .context(|| "type mask".into())?;
            let expected = expectation(&spec.data_type);
            emit(
                &type_errors,
                "type-error",
                "type",
                &|_| format!("expected {expected}"),
                src,
            )?;
            if spec.required {
                let missing = and(
                    &is_null(src).context(|| "null mask".into())?,
                    &is_null(&typed).context(|| "null mask".into())?,
                )
                .context(|| "required mask".into())?;
                emit(
                    &missing,
                    "constraint-error",
                    "required",
                    &|_| "a value is required".into(),
                    src,
                )?;
            }
            if let Some(range) = &spec.range {
                let mask = range_violations(&typed, range)?;
                let text = range.text.clone();
                emit(
                    &mask,
                    "constraint-error",
                    "range",
                    &|_| format!("must be {text}"),
                    &typed,
                )?;
            }
            if let Some(allowed) = &spec.allowed {
                let mask = not_in_set(&typed, allowed)?;
                let list = allowed.join(", ");
                emit(
                    &mask,
                    "constraint-error",
                    "in",
                    &|_| format!("must be one of: {}", truncate(&list, 200)),
                    &typed,
                )?;
            }
            if let Some(re) = &spec.pattern {
                let mask = string_mask(&typed, |s| !re.is_match(s));
                let pattern = re.as_str().to_string();
                emit(
                    &mask,
                    "constraint-error",
                    "pattern",
                    &|_| format!("does not match the pattern {pattern}"),
                    &typed,
                )?;
            }
            if let Some(format) = spec.format {
                let re = format_regex(format);
                let mask = string_mask(&typed, |s| !re.is_match(s));
                emit(
                    &mask,
                    "constraint-error",
                    "format",
                    &|_| format!("is not a valid {}", format.name()),
                    &typed,
                )?;
            }
            if spec.min_length.is_some() || spec.max_length.is_some() {
                let (lo, hi_len) = (
                    spec.min_length.unwrap_or(0),
                    spec.max_length.unwrap_or(usize::MAX),
                );
                let mask = string_mask(&typed, |s| {
                    let len = s.chars().count();
                    len < lo || len > hi_len
                });
                let message = match (spec.min_length, spec.max_length) {
                    (Some(a), Some(b)) => format!("length must be between {a} and {b}"),
                    (Some(a), None) => format!("length must be at least {a}"),
                    (None, Some(b)) => format!("length must be at most {b}"),
                    (None, None) => String::new(),
                };
                emit(
                    &mask,
                    "constraint-error",
                    "length",
                    &|_| message.clone(),
                    &typed,
                )?;
            }
            columns.push(typed);
        }
        for &hi in &self.kept_extras {
            columns.push(to_text(&raw.columns[hi])?);
        }
        let typed = RecordBatch::try_new(self.schema.clone(), columns)
            .context(|| "assembling the typed batch".into())?;

        for rule in &self.rules {
            let result = rule
                .expr
                .evaluate(&typed)
                .and_then(|v| v.into_array(n))
                .map_err(|e| Error::Transform {
                    context: format!("row rule \"{}\"", rule.name),
                    message: e.to_string(),
                })?;
            let Some(result) = result.as_boolean_opt() else {
                return Err(Error::Transform {
                    context: format!("row rule \"{}\"", rule.name),
                    message: format!(
                        "the check must be a boolean expression, but it gives {}",
                        result.data_type()
                    ),
                });
            };
            for (i, row_bad) in bad.iter_mut().enumerate() {
                if result.is_valid(i) && !result.value(i) {
                    found.push(Violation {
                        line: Some(raw.lines[i]),
                        row: Some(row_number(i)),
                        field: None,
                        column: None,
                        code: "row-constraint",
                        rule: rule.name.clone(),
                        value: None,
                        message: format!("the row breaks rule \"{}\"", rule.name),
                        batch_row: Some(i),
                    });
                    *row_bad = true;
                }
            }
        }

        for set in &mut self.uniques {
            let key_columns: Vec<ArrayRef> = set
                .columns
                .iter()
                .map(|&c| typed.column(c).clone())
                .collect();
            let rows = set
                .converter
                .convert_columns(&key_columns)
                .context(|| "encoding unique keys".into())?;
            for (i, row_bad) in bad.iter_mut().enumerate() {
                if *row_bad || key_columns.iter().any(|c| c.is_null(i)) {
                    continue;
                }
                if !set.seen.insert(rows.row(i).as_ref().into()) {
                    let value = key_columns
                        .iter()
                        .map(|c| {
                            to_text(c)
                                .ok()
                                .map(|t| t.as_string::<i32>().value(i).to_string())
                                .unwrap_or_default()
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    let column = (set.columns.len() == 1)
                        .then(|| self.contract.columns[set.columns[0]].name.clone());
                    found.push(Violation {
                        line: Some(raw.lines[i]),
                        row: Some(row_number(i)),
                        field: None,
                        column,
                        code: "unique-error",
                        rule: set.rule.clone(),
                        value: Some(value),
                        message: "the value was already seen in this delivery".into(),
                        batch_row: Some(i),
                    });
                    *row_bad = true;
                }
            }
        }

        let bad_count = bad.iter().filter(|b| **b).count();
        let rejected = if bad_count > 0 {
            Some(self.rejects(&raw.columns, &raw.lines, &bad, &found)?)
        } else {
            None
        };
        found.sort_by_key(|v| (v.line, v.field));
        violations.extend(found);
        let valid = if bad_count == 0 {
            typed
        } else {
            let keep = BooleanArray::from(bad.iter().map(|b| !b).collect::<Vec<_>>());
            filter_record_batch(&typed, &keep).context(|| "filtering valid rows".into())?
        };
        Ok(CheckedBatch { valid, rejected })
    }

    fn rejects(
        &self,
        raw: &[ArrayRef],
        lines: &[u64],
        bad: &[bool],
        found: &[Violation],
    ) -> Result<RecordBatch> {
        let mask = BooleanArray::from(bad.to_vec());
        let mut reasons: HashMap<usize, Vec<String>> = HashMap::new();
        for v in found {
            if let Some(r) = v.batch_row {
                reasons.entry(r).or_default().push(reason(v));
            }
        }
        let mut columns = Vec::with_capacity(raw.len() + 2);
        for c in raw {
            let text = to_text(c)?;
            columns.push(
                datafusion::arrow::compute::filter(&text, &mask)
                    .context(|| "selecting rejected rows".into())?,
            );
        }
        let bad_rows: Vec<usize> = (0..bad.len()).filter(|&i| bad[i]).collect();
        columns.push(Arc::new(UInt64Array::from(
            bad_rows.iter().map(|&i| lines[i]).collect::<Vec<_>>(),
        )));
        columns.push(Arc::new(StringArray::from(
            bad_rows
                .iter()
                .map(|i| {
                    reasons
                        .get(i)
                        .map(|r| r.join("; "))
                        .unwrap_or_else(|| "invalid row".into())
                })
                .collect::<Vec<_>>(),
        )));
        RecordBatch::try_new(self.rejects_schema.clone(), columns)
            .context(|| "assembling rejected rows".into())
    }

    /// Table-level rules, once every batch has been checked.
    pub fn finish(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        let rows = self.rows_seen;
        match self.contract.table.min_rows {
            Some(min) if rows < min => out.push(Violation::table("min_rows", format!("the file has {rows} rows, fewer than min_rows = {min}"))),
            None if rows == 0 => out.push(Violation::table(
                "min_rows",
                "the file has no data rows (set [table] min_rows = 0 in the contract to accept empty files)".into(),
            )),
            _ => {}
        }
        if let Some(max) = self.contract.table.max_rows
            && rows > max
        {
            out.push(Violation::table(
                "max_rows",
                format!("the file has {rows} rows, more than max_rows = {max}"),
            ));
        }
        out
    }
}

fn reason(v: &Violation) -> String {
    let mut s = String::new();
    if let Some(c) = &v.column {
        s.push_str(c);
        s.push_str(": ");
    }
    s.push_str(v.code);
    if !v.rule.is_empty() {
        s.push_str(&format!(" [{}]", v.rule));
    }
    s.push_str(": ");
    s.push_str(&v.message);
    s
}

/// Where `fails` holds for a non-null string; false for nulls.
fn string_mask(array: &ArrayRef, fails: impl Fn(&str) -> bool) -> BooleanArray {
    let Some(strings) = array.as_string_opt::<i32>() else {
        return BooleanArray::from(vec![false; array.len()]);
    };
    let mut memo = ValueMemo::new();
    let failed = BooleanBuffer::collect_bool(strings.len(), |i| {
        strings.is_valid(i) && memo.check(strings.value(i), &fails)
    });
    BooleanArray::new(failed, None)
}

fn format_regex(format: StringFormat) -> &'static regex::Regex {
    use std::sync::OnceLock;
    static EMAIL: OnceLock<regex::Regex> = OnceLock::new();
    static URL: OnceLock<regex::Regex> = OnceLock::new();
    static UUID: OnceLock<regex::Regex> = OnceLock::new();
    let cell = match format {
        StringFormat::Email => &EMAIL,
        StringFormat::Url => &URL,
        StringFormat::Uuid => &UUID,
    };
    cell.get_or_init(|| {
        regex::Regex::new(format.regex())
            .unwrap_or_else(|e| panic!("built-in {} regex is invalid: {e}", format.name()))
    })
}

fn scalar(bound: &Bound, array: &ArrayRef) -> Result<(ArrayRef, ArrayRef)> {
    let dt = array.data_type().clone();
    Ok(match (bound, &dt) {
        (Bound::Int(v), DataType::Int64) => (array.clone(), Arc::new(Int64Array::from(vec![*v]))),
        (Bound::Int(v), _) => (
            to_f64(array)?,
            Arc::new(Float64Array::from(vec![*v as f64])),
        ),
        (Bound::Float(v), _) => (to_f64(array)?, Arc::new(Float64Array::from(vec![*v]))),
        (Bound::Decimal(v), DataType::Decimal128(p, s)) => (
            array.clone(),
            Arc::new(
                Decimal128Array::from(vec![*v])
                    .with_precision_and_scale(*p, *s)
                    .context(|| "decimal bound".into())?,
            ),
        ),
        (Bound::Temporal(v), DataType::Date32) => {
            (array.clone(), Arc::new(Date32Array::from(vec![*v as i32])))
        }
        (Bound::Temporal(v), DataType::Timestamp(_, tz)) => (
            array.clone(),
            Arc::new(TimestampMicrosecondArray::from(vec![*v]).with_timezone_opt(tz.clone())),
        ),
        _ => {
            return Err(Error::Internal(format!(
                "bound {bound:?} does not fit a {dt} column"
            )));
        }
    })
}

fn to_f64(array: &ArrayRef) -> Result<ArrayRef> {
    datafusion::arrow::compute::cast(array, &DataType::Float64)
        .context(|| "comparing with a bound".into())
}

fn range_violations(typed: &ArrayRef, range: &Range) -> Result<BooleanArray> {
    use datafusion::arrow::array::Scalar;
    let mut mask = BooleanArray::from(vec![false; typed.len()]);
    if let Some(min) = &range.min {
        let (col, s) = scalar(min, typed)?;
        let s = Scalar::new(s);
        let below = if range.exclusive_min {
            lt_eq(&col, &s)
        } else {
            lt(&col, &s)
        }
        .context(|| "min check".into())?;
        mask = or(&mask, &below).context(|| "min check".into())?;
    }
    if let Some(max) = &range.max {
        let (col, s) = scalar(max, typed)?;
        let s = Scalar::new(s);
        let above = if range.exclusive_max {
            gt_eq(&col, &s)
        } else {
            gt(&col, &s)
        }
        .context(|| "max check".into())?;
        mask = or(&mask, &above).context(|| "max check".into())?;
    }
    Ok(mask)
}

fn not_in_set(typed: &ArrayRef, allowed: &[String]) -> Result<BooleanArray> {
    Ok(match typed.data_type() {
        DataType::Utf8 => {
            let set: HashSet<&str> = allowed.iter().map(String::as_str).collect();
            string_mask(typed, |s| !set.contains(s))
        }
        DataType::Int64 => {
            let set: HashSet<i64> = allowed.iter().filter_map(|a| a.parse().ok()).collect();
            typed
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .iter()
                .map(|v| v.map(|v| !set.contains(&v)))
                .collect()
        }
        DataType::Float64 => {
            let set: Vec<f64> = allowed.iter().filter_map(|a| a.parse().ok()).collect();
            typed
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .iter()
                .map(|v| v.map(|v| !set.contains(&v)))
                .collect()
        }
        _ => {
            let text = to_text(typed)?;
            let set: HashSet<&str> = allowed.iter().map(String::as_str).collect();
            let mask = string_mask(&text, |s| !set.contains(s));
            let valid = is_not_null(typed).context(|| "null mask".into())?;
            and(&mask, &valid).context(|| "in check".into())?
        }
    })
}

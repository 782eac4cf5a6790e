//! Data contracts: declared columns, types and rules, checked vectorised over Arrow arrays.

mod cast;
mod check;
mod infer;
mod memo;
mod model;
mod parse;
mod report;
pub mod temporal;

pub use cast::to_text;
pub use check::{CheckedBatch, Checker, ERRORS_COLUMN, LINE_COLUMN};
pub use infer::infer_contract;
pub use model::*;
pub use parse::compile_contract;
pub use report::{REPORT_LIMIT, Violation, Violations};

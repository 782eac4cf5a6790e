//! `caudal init`: a new project with a commented configuration, a contract and sample data.

use std::path::Path;

use crate::error::{Error, Result};

const CONFIG: &str = r#"# caudal project. Every key is checked: a typo is an error with its line and column.
# Values may use ${VAR} or ${VAR:-default}, read from the environment or from .env beside this file.

# Where data goes. Paths are relative to this folder.
[destinations.warehouse]
kind = "sqlite"                   # sqlite | parquet
path = "warehouse.db"

[destinations.lake]
kind = "parquet"                  # Hive-partitioned Parquet files (zstd)
path = "lake"

# A pipeline: a source folder, a contract, an optional SQL transform, and where to load.
[pipelines.orders]
source = { kind = "folder", path = "incoming", format = "csv", null_values = ["", "NA"] }
contract = "contracts/orders.toml"
on_invalid = "quarantine"         # reject (whole file) | quarantine (bad rows → orders_rejects) | drop
transform = """
SELECT *, quantity * unit_price AS amount, CAST(ordered_at AS DATE) AS order_date
FROM input
"""
load = [
  { into = "warehouse", table = "orders", mode = "merge", key = ["order_id"] },  # append | replace | merge
  { into = "lake", table = "orders", partition_by = "order_date" },
]
"#;

const CONTRACT: &str = r#"# What a valid order looks like. Types: int64, float64, decimal, bool, string, date, timestamp.
# Column rules: required, unique, min, max, exclusive_min, exclusive_max, in, pattern,
# format (email | url | uuid; or a strftime format for date/timestamp), min_length, max_length.

[columns]
order_id   = { type = "int64", required = true, unique = true }
customer   = { type = "string", required = true }
email      = { type = "string", format = "email" }
quantity   = { type = "int64", required = true, min = 1 }
unit_price = { type = "decimal", precision = 10, scale = 2, min = 0 }
ordered_at = { type = "timestamp", required = true, timezone = "UTC" }

# Row rules are SQL boolean expressions; a row fails when the expression is false.
[[rules]]
name = "no huge orders"
check = "quantity * unit_price < 100000"

[table]
min_rows = 1                      # an empty file is usually a broken export
extra_columns = "error"           # error | ignore | keep
"#;

const SAMPLE: &str = "order_id,customer,email,quantity,unit_price,ordered_at
1,Ada Lovelace,ada@example.com,2,19.90,2026-11-02 10:15:00
2,Alan Turing,alan@example.com,1,250.00,2026-11-02 11:02:00
3,Grace Hopper,grace@example,3,5.50,2026-11-03 09:45:00
";

pub fn init(dir: &Path) -> Result<()> {
    if dir.join("caudal.toml").exists() {
        return Err(Error::usage(format!(
            "{} already has a caudal.toml; nothing was changed",
            dir.display()
        )));
    }
    crate::demo::write_files(
        dir,
        &[
            ("caudal.toml", CONFIG),
            ("contracts/orders.toml", CONTRACT),
            ("incoming/orders_2026-11-02.csv", SAMPLE),
            (".gitignore", ".caudal/\nwarehouse.db*\nlake/\n"),
        ],
    )
}

//! Write modes, schema drift, lake layout, reference joins and the non-CSV formats, checked on
//! what lands in the real SQLite file and Parquet lake.

mod common;

// Floats come back through rusqlite as f64 rendered by Rust: 20.0 reads "20".

use common::TestProject;

const CONTRACT: &str = r#"
[columns]
id     = { type = "int64", required = true }
name   = { type = "string" }
amount = { type = "float64" }
day    = { type = "date" }

[table]
extra_columns = "error"
"#;

fn project(mode: &str, extra_load: &str) -> TestProject {
    let p = TestProject::new(&format!(
        r#"
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[destinations.lake]
kind = "parquet"
path = "lake"

[pipelines.orders]
source = {{ kind = "folder", path = "incoming" }}
contract = "contract.toml"
load = [
  {{ into = "warehouse", table = "orders", mode = "{mode}"{extra_load} }},
  {{ into = "lake", table = "orders", partition_by = "day"{lake_mode} }},
]
"#,
        lake_mode = if mode == "replace" {
            ", mode = \"replace\""
        } else {
            ""
        },
    ));
    p.write("contract.toml", CONTRACT);
    p
}

fn rows(p: &TestProject) -> Vec<Vec<Option<String>>> {
    p.query(
        "warehouse.db",
        "SELECT id, name, amount, day FROM orders ORDER BY id",
    )
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn append_adds_each_file() {
    let p = project("append", "");
    p.write(
        "incoming/a.csv",
        "id,name,amount,day\n1,ann,1.5,2026-01-01\n2,bob,2.5,2026-01-02\n",
    );
    p.write(
        "incoming/b.csv",
        "id,name,amount,day\n3,cy,3.5,2026-01-02\n",
    );
    p.load("incoming", "orders", &[]).expect_code(0);
    assert_eq!(p.count("warehouse.db", "orders"), Some(3));
    assert_eq!(
        rows(&p),
        vec![
            vec![s("1"), s("ann"), s("1.5"), s("2026-01-01")],
            vec![s("2"), s("bob"), s("2.5"), s("2026-01-02")],
            vec![s("3"), s("cy"), s("3.5"), s("2026-01-02")],
        ]
    );
    assert_eq!(p.parquet_rows("lake/orders"), 3);
}

#[test]
fn replace_keeps_only_the_latest_delivery() {
    let p = project("replace", "");
    p.write(
        "incoming/a.csv",
        "id,name,amount,day\n1,ann,1.5,2026-01-01\n2,bob,2.5,2026-01-02\n",
    );
    p.load("incoming/a.csv", "orders", &[]).expect_code(0);
    p.write(
        "incoming/b.csv",
        "id,name,amount,day\n7,zed,9.0,2026-02-01\n",
    );
    p.load("incoming/b.csv", "orders", &[]).expect_code(0);
    assert_eq!(
        rows(&p),
        vec![vec![s("7"), s("zed"), s("9"), s("2026-02-01")]]
    );
    assert_eq!(p.parquet_rows("lake/orders"), 1);
    let files = p.parquet_files("lake/orders");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].to_string_lossy().contains("day=2026-02-01"),
        "{files:?}"
    );
}

#[test]
fn merge_upserts_on_the_key() {
    let p = project("merge", ", key = [\"id\"]");
    p.write(
        "incoming/a.csv",
        "id,name,amount,day\n1,ann,1.5,2026-01-01\n2,bob,2.5,2026-01-02\n",
    );
    p.load("incoming/a.csv", "orders", &[]).expect_code(0);
    p.write(
        "incoming/b.csv",
        "id,name,amount,day\n2,bobby,20.0,2026-01-03\n3,cy,3.0,2026-01-03\n",
    );
    p.load("incoming/b.csv", "orders", &[]).expect_code(0);
    assert_eq!(
        rows(&p),
        vec![
            vec![s("1"), s("ann"), s("1.5"), s("2026-01-01")],
            vec![s("2"), s("bobby"), s("20"), s("2026-01-03")],
            vec![s("3"), s("cy"), s("3"), s("2026-01-03")],
        ]
    );
}

/// Batches of 100 rows: each goes through the kept 64-row statement and a shorter tail, and a
/// key seen in an earlier batch of the same delivery is updated, not duplicated.
#[test]
fn merge_over_many_batches_of_one_file_keeps_one_row_per_key() {
    let p = project("merge", ", key = [\"id\"]");
    let config = std::fs::read_to_string(p.path().join("caudal.toml")).expect("config");
    p.write(
        "caudal.toml",
        config.replace(
            r#"source = { kind = "folder", path = "incoming" }"#,
            r#"source = { kind = "folder", path = "incoming", batch_rows = 100 }"#,
        ),
    );
    let mut csv = String::from("id,name,amount,day\n");
    for row in 0..250 {
        let (id, name) = if row < 200 {
            (row, format!("first{row}"))
        } else {
            (row - 200, format!("second{row}"))
        };
        csv.push_str(&format!(
            "{id},{name},{row}.5,2026-01-{:02}\n",
            row % 28 + 1
        ));
    }
    p.write("incoming/many.csv", &csv);
    p.load("incoming/many.csv", "orders", &[]).expect_code(0);
    let got = rows(&p);
    assert_eq!(got.len(), 200);
    for (id, row) in got.iter().enumerate() {
        let source_row = if id < 50 { id + 200 } else { id };
        let name = if id < 50 { "second" } else { "first" };
        assert_eq!(
            row,
            &vec![
                s(&id.to_string()),
                s(&format!("{name}{source_row}")),
                s(&format!("{source_row}.5")),
                s(&format!("2026-01-{:02}", source_row % 28 + 1)),
            ]
        );
    }
}

#[test]
fn a_new_column_is_schema_drift_unless_evolve() {
    for evolve in [false, true] {
        let extra = if evolve { ", evolve = true" } else { "" };
        let p = project("append", extra);
        p.write(
            "contract.toml",
            CONTRACT.replace("extra_columns = \"error\"", "extra_columns = \"keep\""),
        );
        p.write(
            "incoming/a.csv",
            "id,name,amount,day\n1,ann,1.5,2026-01-01\n",
        );
        p.load("incoming/a.csv", "orders", &[]).expect_code(0);
        p.write(
            "incoming/b.csv",
            "id,name,amount,day,channel\n2,bob,2.5,2026-01-02,web\n",
        );
        let run = p.load("incoming/b.csv", "orders", &[]);
        if evolve {
            run.expect_code(0);
            assert_eq!(
                p.query("warehouse.db", "SELECT id, channel FROM orders ORDER BY id"),
                vec![vec![s("1"), None], vec![s("2"), s("web")]]
            );
        } else {
            run.expect_code(2)
                .expect_mentions("schema drift")
                .expect_mentions("channel")
                .expect_mentions("evolve = true");
            assert_eq!(
                p.count("warehouse.db", "orders"),
                Some(1),
                "nothing of the drifting file may load"
            );
            assert_eq!(
                p.parquet_rows("lake/orders"),
                1,
                "the lake must not keep the drifting file either"
            );
        }
    }
}

#[test]
fn lake_layout_is_hive_partitioned_zstd_named_by_load_id() {
    let p = project("append", "");
    p.write(
        "incoming/a.csv",
        "id,name,amount,day\n1,ann,1.5,2026-01-01\n2,bob,2.5,2026-01-02\n3,cy,,\n",
    );
    p.load("incoming/a.csv", "orders", &[]).expect_code(0);
    let load_id = p.query("warehouse.db", "SELECT load_id FROM _caudal_loads")[0][0]
        .clone()
        .expect("a load id");
    let files: Vec<String> = p
        .parquet_files("lake/orders")
        .iter()
        .map(|f| {
            f.strip_prefix(p.path().join("lake"))
                .expect("under lake")
                .to_string_lossy()
                .to_string()
        })
        .collect();
    assert_eq!(
        files,
        vec![
            format!("orders/day=2026-01-01/part-{load_id}-0.parquet"),
            format!("orders/day=2026-01-02/part-{load_id}-0.parquet"),
            format!("orders/day=__HIVE_DEFAULT_PARTITION__/part-{load_id}-0.parquet"),
        ]
    );
    for f in p.parquet_files("lake/orders") {
        let reader = parquet::file::reader::SerializedFileReader::new(
            std::fs::File::open(&f).expect("open"),
        )
        .expect("readable parquet");
        let meta = parquet::file::reader::FileReader::metadata(&reader);
        let schema = meta.file_metadata().schema_descr();
        let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            vec!["id", "name", "amount"],
            "the partition column lives in the path only"
        );
        for rg in meta.row_groups() {
            for col in rg.columns() {
                assert!(
                    matches!(col.compression(), parquet::basic::Compression::ZSTD(_)),
                    "{:?}",
                    col.compression()
                );
            }
        }
    }
    assert!(
        !p.path()
            .join("lake/_caudal/staging")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

/// Rows in no order over more partitions than the lake keeps files open for: partition files are
/// closed and started again (`-1`, `-2`, …), dealt to different encoder threads, and every row
/// still lands once, in its own partition.
#[test]
fn rows_in_random_order_over_many_partitions_each_land_once_in_their_partition() {
    const DAYS: u32 = 20;
    const ROWS: u32 = 200;
    let p = TestProject::new(
        r#"
[destinations.lake]
kind = "parquet"
path = "lake"

[pipelines.orders]
source = { kind = "folder", path = "incoming", batch_rows = 7 }
contract = "contract.toml"
load = [{ into = "lake", table = "orders", partition_by = "day" }]
"#,
    );
    p.write("contract.toml", CONTRACT);
    let mut csv = String::from("id,name,amount,day\n");
    // 37 is coprime with 200, so this visits every id once, in scattered order.
    for id in (0..ROWS).map(|i| (i * 37) % ROWS) {
        csv.push_str(&format!("{id},n{id},1.0,2026-01-{:02}\n", id % DAYS + 1));
    }
    p.write("incoming/a.csv", csv);
    p.load("incoming/a.csv", "orders", &[]).expect_code(0);

    assert_eq!(p.parquet_rows("lake/orders"), i64::from(ROWS));
    let mut reopened = 0;
    for day in 1..=DAYS {
        let folder = format!("lake/orders/day=2026-01-{day:02}");
        let mut ids: Vec<u32> = p
            .parquet_column(&folder, "id")
            .into_iter()
            .map(|v| v.and_then(|v| v.parse().ok()).expect("an integer id"))
            .collect();
        ids.sort_unstable();
        let expected: Vec<u32> = (0..ROWS).filter(|id| id % DAYS + 1 == day).collect();
        assert_eq!(ids, expected, "the ids in {folder}");
        if p.parquet_files(&folder).len() > 1 {
            reopened += 1;
        }
    }
    assert!(
        reopened > 0,
        "no partition got a second file: the test did not make the lake close and reopen files"
    );
    assert!(
        p.parquet_files("lake/_caudal/staging").is_empty(),
        "staged files left behind"
    );
}

#[test]
fn a_transform_joins_a_reference_table() {
    let p = TestProject::new(
        r#"
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[references.customers]
path = "ref/customers.csv"

[pipelines.orders]
source = { kind = "folder", path = "incoming", format = "csv" }
contract = "contract.toml"
transform = """
SELECT o.id, o.amount, c.segment FROM input o LEFT JOIN customers c ON c.name = o.name
"""
load = [{ into = "warehouse", table = "orders" }]
"#,
    );
    p.write("contract.toml", CONTRACT);
    p.write(
        "ref/customers.csv",
        "name,segment\nann,retail\nbob,wholesale\n",
    );
    p.write(
        "incoming/a.csv",
        "id,name,amount,day\n1,ann,1.5,2026-01-01\n2,bob,2.5,2026-01-02\n3,cy,3.0,2026-01-02\n",
    );
    p.load("incoming/a.csv", "orders", &[]).expect_code(0);
    assert_eq!(
        p.query("warehouse.db", "SELECT id, segment FROM orders ORDER BY id"),
        vec![
            vec![s("1"), s("retail")],
            vec![s("2"), s("wholesale")],
            vec![s("3"), None]
        ]
    );
}

#[test]
fn a_failing_transform_names_the_pipeline_and_shows_datafusion() {
    let p = TestProject::new(
        r#"
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[pipelines.orders]
source = { kind = "folder", path = "incoming", format = "csv" }
contract = "contract.toml"
transform = "SELECT id, no_such_column FROM input"
load = [{ into = "warehouse", table = "orders" }]
"#,
    );
    p.write("contract.toml", CONTRACT);
    p.write(
        "incoming/a.csv",
        "id,name,amount,day\n1,ann,1.5,2026-01-01\n",
    );
    let run = p.load("incoming/a.csv", "orders", &[]);
    run.expect_code(2)
        .expect_mentions("pipeline `orders`")
        .expect_mentions("no_such_column");
    assert_eq!(p.count("warehouse.db", "orders"), None);
}

#[test]
fn ndjson_json_and_parquet_inputs_load_like_csv() {
    let p = TestProject::new(
        r#"
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[pipelines.orders]
source = { kind = "folder", path = "incoming", records_path = "data.items" }
contract = "contract.toml"
load = [{ into = "warehouse", table = "orders" }]
"#,
    );
    p.write("contract.toml", CONTRACT.replace("\"error\"", "\"ignore\""));
    p.write(
        "incoming/a.ndjson",
        "{\"id\": 1, \"name\": \"ann\", \"amount\": 1.5, \"day\": \"2026-01-01\"}\n\n{\"id\": 2, \"name\": null, \"amount\": 2, \"day\": \"2026-01-02\"}\n",
    );
    p.write(
        "incoming/b.json",
        "{\"data\": {\"items\": [{\"id\": 3, \"name\": \"cy\", \"amount\": 3.25, \"day\": \"2026-01-03\", \"ignored\": true}]}}",
    );
    p.load("incoming/a.ndjson", "orders", &[]).expect_code(0);
    p.load("incoming/b.json", "orders", &[]).expect_code(0);
    // A Parquet file: the lake file of another project is a convenient real one.
    let lake = project("append", "");
    lake.write(
        "incoming/c.csv",
        "id,name,amount,day\n4,dee,4.0,2026-01-04\n",
    );
    lake.load("incoming/c.csv", "orders", &[]).expect_code(0);
    let parquet = lake.parquet_files("lake/orders").remove(0);
    std::fs::copy(&parquet, p.path().join("incoming/c.parquet")).expect("copy parquet");
    p.write(
        "contract.toml",
        CONTRACT
            .replace("\"error\"", "\"ignore\"")
            .replace("day    = { type = \"date\" }", ""),
    );
    p.load("incoming/c.parquet", "orders", &[]).expect_code(0);
    assert_eq!(
        p.query(
            "warehouse.db",
            "SELECT id, name, amount FROM orders ORDER BY id"
        ),
        vec![
            vec![s("1"), s("ann"), s("1.5")],
            vec![s("2"), None, s("2")],
            vec![s("3"), s("cy"), s("3.25")],
            vec![s("4"), s("dee"), s("4")],
        ]
    );
}

#[test]
fn csv_dialects_delimiter_quote_escape_header_and_null_tokens() {
    let p = TestProject::new(
        r#"
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[pipelines.semi]
source = { kind = "folder", path = "semi", format = "csv", delimiter = ";", quote = "'", escape = "\\", null_values = ["NA", "-"] }
contract = "contract.toml"
load = [{ into = "warehouse", table = "semi" }]

[pipelines.tsv]
source = { kind = "folder", path = "tsv", format = "tsv", header = false }
contract = "contract.toml"
load = [{ into = "warehouse", table = "tsv" }]
"#,
    );
    p.write("contract.toml", CONTRACT);
    p.write(
        "semi/a.csv",
        "id;name;amount;day\n1;'o\\'brien; jr';1.5;2026-01-01\n2;NA;-;2026-01-02\n",
    );
    p.write("tsv/a.tsv", "3\tcy\t3.5\t2026-01-03\n");
    p.load("semi/a.csv", "semi", &[]).expect_code(0);
    p.load("tsv/a.tsv", "tsv", &[]).expect_code(0);
    assert_eq!(
        p.query(
            "warehouse.db",
            "SELECT id, name, amount FROM semi ORDER BY id"
        ),
        vec![
            vec![s("1"), s("o'brien; jr"), s("1.5")],
            vec![s("2"), None, None]
        ]
    );
    assert_eq!(
        p.query("warehouse.db", "SELECT id, name, amount, day FROM tsv"),
        vec![vec![s("3"), s("cy"), s("3.5"), s("2026-01-03")]]
    );
}

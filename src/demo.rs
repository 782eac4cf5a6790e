//! `caudal demo`: a small shop's sales project, embedded in the binary so it runs anywhere.

use std::path::Path;

use crate::error::{Error, Result};

const FILES: &[(&str, &str)] = &[
    ("caudal.toml", include_str!("../examples/demo/caudal.toml")),
    (
        "contracts/sales.toml",
        include_str!("../examples/demo/contracts/sales.toml"),
    ),
    (
        "samples/sales_2026-11-01.csv",
        include_str!("../examples/demo/data/sales_2026-11-01.csv"),
    ),
    (
        "samples/sales_2026-11-02.csv",
        include_str!("../examples/demo/data/sales_2026-11-02.csv"),
    ),
    (
        "samples/sales_2026-11-03.csv",
        include_str!("../examples/demo/data/sales_2026-11-03.csv"),
    ),
];

/// The sample files, which the demo drops into `incoming/` one by one.
pub const SAMPLES: &str = "samples";

/// Write the demo project into `dir` unless it already holds one. Returns whether it was created.
pub fn materialize(dir: &Path) -> Result<bool> {
    if dir.join("caudal.toml").exists() {
        return Ok(false);
    }
    write_files(dir, FILES)?;
    Ok(true)
}

pub fn write_files(dir: &Path, files: &[(&str, &str)]) -> Result<()> {
    for (name, content) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        std::fs::write(&path, content)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    Ok(())
}

//! Where a source file goes after its delivery: `processed/`, or `failed/` beside a
//! `<name>.error.json` report. A name already taken there gets a suffix; nothing is overwritten.

use std::path::{Path, PathBuf};

use crate::config::AfterLoad;
use crate::error::{Error, Result};
use crate::ledger::Status;
use crate::pipeline::DeliveryReport;

pub const PROCESSED: &str = "processed";
pub const FAILED: &str = "failed";

/// A free name for `name` in `dir`: `name`, then `stem.1.ext`, `stem.2.ext`, …
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let candidate = dir.join(name);
    if !candidate.exists() {
        return candidate;
    }
    let (stem, ext) = match name.split_once('.') {
        Some((s, e)) => (s.to_string(), format!(".{e}")),
        None => (name.to_string(), String::new()),
    };
    (1..)
        .map(|n| dir.join(format!("{stem}.{n}{ext}")))
        .find(|p| !p.exists())
        .unwrap_or(candidate)
}

/// Move, delete or keep the file as configured; returns where it went.
pub fn dispose(
    path: &Path,
    folder: &Path,
    after: AfterLoad,
    report: &DeliveryReport,
) -> Result<Option<PathBuf>> {
    let failed = matches!(
        report.status,
        Status::Failed | Status::Rejected | Status::Error
    );
    match after {
        AfterLoad::Keep => return Ok(None),
        AfterLoad::Delete if !failed => {
            std::fs::remove_file(path)
                .map_err(|e| Error::io(format!("deleting {}", path.display()), e))?;
            return Ok(None);
        }
        _ => {}
    }
    let dir = folder.join(if failed { FAILED } else { PROCESSED });
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let target = free_name(&dir, &name);
    std::fs::rename(path, &target)
        .map_err(|e| Error::io(format!("moving {} to {}", path.display(), dir.display()), e))?;
    if failed {
        let report_path = dir.join(format!(
            "{}.error.json",
            target
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        ));
        let json = serde_json::to_vec_pretty(report)
            .map_err(|e| Error::Internal(format!("report: {e}")))?;
        std::fs::write(&report_path, json)
            .map_err(|e| Error::io(format!("writing {}", report_path.display()), e))?;
    }
    Ok(Some(target))
}

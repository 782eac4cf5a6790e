//! The `caudal.toml` model. Reading it is a compile step: every problem in the file (and in the
//! contract files it names) is collected and reported at once, each with file:line:column.

mod alerts;
mod diagnostics;
mod dotenv;
mod jobs;
mod model;
pub mod reader;

pub use alerts::{Alert, Channel, ChannelKind, JobOutcome, Rule, Smtp, SmtpSecurity, Subject};
pub use diagnostics::{ConfigError, ConfigErrors, Document};
pub use jobs::{CatchUp, Job, JobKind, Metric, Overlap, Retention, Retries};
pub use model::*;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const CONFIG_FILE: &str = "caudal.toml";

/// Find the project folder: the given one, or the nearest ancestor of the current directory that
/// holds a `caudal.toml`.
pub fn locate_project(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        if dir.join(CONFIG_FILE).is_file() {
            return Ok(dir.to_path_buf());
        }
        return Err(Error::usage(format!(
            "{} has no {CONFIG_FILE}; create one with `caudal init {}`",
            dir.display(),
            dir.display()
        )));
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?;
    for dir in cwd.ancestors() {
        if dir.join(CONFIG_FILE).is_file() {
            return Ok(dir.to_path_buf());
        }
    }
    Err(Error::usage(format!(
        "no {CONFIG_FILE} in {} or any parent folder; run `caudal init <folder>` to create a project, or pass --project <folder>",
        cwd.display()
    )))
}

/// The variables `${VAR}` may name: the process environment over the project's `.env`.
fn variables(root: &Path) -> Result<HashMap<String, String>> {
    let mut vars = HashMap::new();
    let env_file = root.join(".env");
    if env_file.is_file() {
        let text = std::fs::read_to_string(&env_file)
            .map_err(|e| Error::io(format!("reading {}", env_file.display()), e))?;
        vars.extend(dotenv::parse(&text));
    }
    vars.extend(std::env::vars());
    Ok(vars)
}

/// Read and check a whole project: caudal.toml and every contract file it names.
pub fn load_project(root: &Path) -> Result<Project> {
    // Absolute paths: the watcher reports absolute paths, and messages are clearer with them.
    let root = &root
        .canonicalize()
        .map_err(|e| Error::io(format!("opening project folder {}", root.display()), e))?;
    let file = root.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
    let vars = variables(root)?;
    let doc = Document::new(&file, text, vars.clone());
    model::compile(root, &doc, &vars).map_err(Error::Config)
}

//! Every error caudal reports knows its class, because the class decides two things a user
//! relies on: whether the work is retried, and which exit code the CLI returns.

use std::path::PathBuf;

use crate::config::ConfigErrors;

/// What kind of failure an error is. Bad input is never retried; transient failures are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The data is wrong (parse errors, contract violations): fix the data.
    BadInput,
    /// The configuration or command line is wrong: fix the config or the command.
    Config,
    /// Something outside may recover (a locked database, an I/O hiccup): retry later.
    Transient,
    /// caudal itself is wrong: report it.
    Bug,
}

impl ErrorClass {
    /// The documented process exit code for this class (see README: exit codes).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorClass::BadInput => 1,
            ErrorClass::Config => 2,
            ErrorClass::Transient => 3,
            ErrorClass::Bug => 70,
        }
    }
}

/// A problem in one input file, located as precisely as we know it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputProblem {
    pub path: PathBuf,
    /// 1-based line as an editor shows it, when known.
    pub line: Option<u64>,
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl std::fmt::Display for InputProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigErrors),

    /// A command-line or project-level mistake that is not tied to a config file position.
    #[error("{message}")]
    Usage { message: String },

    #[error("{0}")]
    Input(Box<InputProblem>),

    /// A delivery that the contract rejected as a whole (`on_invalid = "reject"`).
    #[error("{path}: rejected: {summary}")]
    Rejected { path: PathBuf, summary: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{context}: {source}")]
    Sqlite {
        context: String,
        #[source]
        source: rusqlite::Error,
    },

    #[error("{context}: {message}")]
    Transform { context: String, message: String },

    #[error("{context}: {message}")]
    Parquet { context: String, message: String },

    #[error("another caudal process is working on this project ({lock}); wait for it to finish")]
    Busy { lock: PathBuf },

    /// The same content is being delivered right now by another worker; try again after it.
    #[error("{file}: the same content is being loaded right now")]
    InFlight { file: String },

    /// Shutdown outlasted its grace period; nothing of this delivery was committed.
    #[error(
        "{file}: cancelled at shutdown before it finished; it is loaded again at the next start"
    )]
    Cancelled { file: String },

    #[error("internal error (a bug in caudal, please report it): {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_) | Error::Usage { .. } => ErrorClass::Config,
            Error::Input(_) | Error::Rejected { .. } => ErrorClass::BadInput,
            Error::Transform { .. } => ErrorClass::Config,
            Error::Io { source, .. } => io_class(source),
            Error::Sqlite { source, .. } => sqlite_class(source),
            Error::Busy { .. } | Error::InFlight { .. } | Error::Cancelled { .. } => {
                ErrorClass::Transient
            }
            Error::Parquet { .. } | Error::Internal(_) => ErrorClass::Bug,
        }
    }

    pub fn input(path: impl Into<PathBuf>, line: Option<u64>, message: impl Into<String>) -> Self {
        Error::Input(Box::new(InputProblem {
            path: path.into(),
            line,
            message: message.into(),
            hint: None,
        }))
    }

    pub fn input_with_hint(
        path: impl Into<PathBuf>,
        line: Option<u64>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Error::Input(Box::new(InputProblem {
            path: path.into(),
            line,
            message: message.into(),
            hint: Some(hint.into()),
        }))
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        Error::Sqlite {
            context: context.into(),
            source,
        }
    }
}

fn io_class(err: &std::io::Error) -> ErrorClass {
    use std::io::ErrorKind::*;
    match err.kind() {
        NotFound | PermissionDenied | IsADirectory | NotADirectory | InvalidInput => {
            ErrorClass::Config
        }
        InvalidData | UnexpectedEof => ErrorClass::BadInput,
        _ => ErrorClass::Transient,
    }
}

fn sqlite_class(err: &rusqlite::Error) -> ErrorClass {
    match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            ErrorClass::Transient
        }
        Some(rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure) => {
            ErrorClass::Transient
        }
        Some(rusqlite::ErrorCode::ConstraintViolation) => ErrorClass::BadInput,
        Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly) => ErrorClass::Config,
        _ => ErrorClass::Bug,
    }
}

/// Attach a human context to foreign errors at the point where we know what we were doing.
pub trait Context<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::io(context(), source))
    }
}

impl<T> Context<T> for std::result::Result<T, rusqlite::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::sqlite(context(), source))
    }
}

impl<T> Context<T> for std::result::Result<T, datafusion::arrow::error::ArrowError> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Internal(format!("{}: {e}", context())))
    }
}

impl<T> Context<T> for std::result::Result<T, datafusion::parquet::errors::ParquetError> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Parquet {
            context: context(),
            message: e.to_string(),
        })
    }
}

/// A message without the directories of this machine's absolute paths: they are no business
/// of an API client or of an alert's recipients.
pub fn strip_paths(message: &str) -> String {
    message
        .split(' ')
        .map(|word| {
            if word.starts_with('/') && word.len() > 1 {
                let trimmed = word.trim_end_matches([',', ';', ':', ')']);
                let name = std::path::Path::new(trimmed)
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                word.replacen(trimmed, &name, 1)
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

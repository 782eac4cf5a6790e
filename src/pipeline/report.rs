//! The outcome of a delivery, as shown to the user and written to `.caudal/reports/`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{OnInvalid, Pipeline};
use crate::contract::Violations;
use crate::error::{Error, ErrorClass, Result};
use crate::ledger::Status;

#[derive(Serialize)]
pub struct DeliveryReport {
    pub load_id: String,
    pub pipeline: String,
    pub source: String,
    pub status: Status,
    pub on_invalid: OnInvalid,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    pub duration_ms: u64,
    /// The error that stopped the delivery, if any.
    pub error: Option<ReportedError>,
    pub duplicate_of: Option<String>,
    pub violations: Violations,
    #[serde(skip)]
    pub report_path: Option<PathBuf>,
    #[serde(skip)]
    pub failure: Option<Error>,
}

#[derive(Serialize)]
pub struct ReportedError {
    pub class: ErrorClass,
    pub message: String,
}

impl DeliveryReport {
    #[allow(clippy::too_many_arguments)]
    pub fn from_run(
        load_id: String,
        pipeline: &Pipeline,
        source: String,
        status: Status,
        rows_read: u64,
        rows_loaded: u64,
        rows_rejected: u64,
        violations: Violations,
        failure: Option<Error>,
    ) -> Self {
        DeliveryReport {
            load_id,
            pipeline: pipeline.name.clone(),
            source,
            status,
            on_invalid: pipeline.on_invalid,
            rows_read,
            rows_loaded,
            rows_rejected,
            duration_ms: 0,
            error: failure.as_ref().map(|e| ReportedError {
                class: e.class(),
                message: e.to_string(),
            }),
            duplicate_of: None,
            violations,
            report_path: None,
            failure,
        }
    }

    /// A delivery stopped by an error: bad input fails it for good, anything else may be retried.
    pub fn failed(load_id: String, pipeline: &Pipeline, source: String, e: Error) -> Self {
        let status = if e.class() == ErrorClass::BadInput {
            Status::Failed
        } else {
            Status::Error
        };
        Self::from_run(
            load_id,
            pipeline,
            source,
            status,
            0,
            0,
            0,
            Violations::default(),
            Some(e),
        )
    }

    pub fn duplicate(
        load_id: String,
        pipeline: &Pipeline,
        source: String,
        original: String,
    ) -> Self {
        let mut r = Self::from_run(
            load_id,
            pipeline,
            source,
            Status::Duplicate,
            0,
            0,
            0,
            Violations::default(),
            None,
        );
        r.duplicate_of = Some(original);
        r
    }

    pub fn with_duration(mut self, ms: u64) -> Self {
        self.duration_ms = ms;
        self
    }

    /// Write the JSON report when there is something to report.
    pub fn written_to(mut self, state_dir: &Path) -> Result<Self> {
        if self.violations.is_empty() && self.error.is_none() {
            return Ok(self);
        }
        let dir = state_dir.join("reports");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(format!("{}.json", self.load_id));
        let json = serde_json::to_vec_pretty(&self)
            .map_err(|e| Error::Internal(format!("report: {e}")))?;
        std::fs::write(&path, json)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        self.report_path = Some(path);
        Ok(self)
    }

    pub fn error_message(&self) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.message.clone());
        }
        if self.violations.is_empty() {
            return None;
        }
        let summary: Vec<String> = self
            .violations
            .by_rule
            .iter()
            .map(|(k, v)| format!("{v} × {k}"))
            .collect();
        Some(summary.join(", "))
    }

    /// The exit code this delivery alone would give.
    pub fn exit_code(&self) -> u8 {
        match self.status {
            Status::Loaded | Status::Duplicate => 0,
            Status::Rejected | Status::Failed => 1,
            Status::Running | Status::Error => {
                self.failure.as_ref().map_or(70, |e| e.class().exit_code())
            }
        }
    }
}

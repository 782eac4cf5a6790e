//! After a crash: finish what was committed, discard what was not, and resume deliveries the
//! ledger still shows as running.

use std::path::Path;

use super::Loader;
use crate::config::Destination;
use crate::decode::{ContentHash, fingerprint};
use crate::error::Result;
use crate::ledger::{Outcome, Status};
use crate::sink::recover_lake;

pub(super) fn recover(loader: &Loader<'_>) -> Result<()> {
    for (name, dest) in &loader.project.destinations {
        if let Destination::ParquetLake { path, .. } = dest {
            let finished = recover_lake(path)?;
            if finished > 0 {
                tracing::info!(destination = %name, loads = finished, "recovery: finished committed lake loads");
            }
        }
    }
    let interrupted = loader.ledger.running()?;
    for delivery in &interrupted {
        // Settle the crashed run first, so that resuming it can start it again.
        let outcome = Outcome {
            error: Some("interrupted by a crash or kill; resumed at the next start".into()),
            will_retry: true,
            ..Outcome::default()
        };
        loader
            .ledger
            .finish(&delivery.load_id, Status::Error, &outcome)?;
    }
    for delivery in interrupted {
        let path = Path::new(&delivery.source);
        let same = fingerprint(path, ContentHash::of(&delivery.content_hash))
            .ok()
            .is_some_and(|f| f.content_hash == delivery.content_hash);
        let pipeline = loader.project.pipelines.get(&delivery.pipeline);
        match (same, pipeline) {
            (true, Some(pipeline)) => {
                tracing::info!(pipeline = %delivery.pipeline, file = %delivery.source, load_id = %delivery.load_id, "recovery: resuming an interrupted delivery");
                loader.load_file(pipeline, path)?;
            }
            _ => {
                let outcome = Outcome {
                    error: Some("interrupted, and the file is gone or changed since; sinks that had committed it keep it".into()),
                    ..Outcome::default()
                };
                loader
                    .ledger
                    .finish(&delivery.load_id, Status::Error, &outcome)?;
            }
        }
    }
    Ok(())
}

//! `caudal run`: watches every folder source and loads each complete file once, as it arrives.
//! Filesystem events make a dropped file load at once; a periodic re-scan catches anything the
//! events missed (and is the only mechanism in `poll` mode, for network mounts). Files that
//! arrived while caudal was stopped are found by the first scan and loaded oldest first.

mod disposal;
mod signals;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};

use crate::config::{Pipeline, Project, WatchMode};
use crate::error::{Error, ErrorClass, Result};
use crate::ledger::Status;
use crate::pipeline::{DeliveryReport, Loader};
use crate::source::{is_ignored_name, matches_pattern};

pub use disposal::{FAILED, PROCESSED};

/// With events, a re-scan every so often is only a safety net.
const RESCAN_WITH_EVENTS: Duration = Duration::from_secs(30);

/// A file seen in a watched folder, not yet loaded.
struct Candidate {
    pipeline: String,
    size: u64,
    modified: SystemTime,
    stable_since: Instant,
    /// Closed after writing or renamed in: complete now, no need to wait for `settle`.
    complete: bool,
    attempts: u32,
    not_before: Instant,
}

fn stat(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| {
        (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        )
    })
}

/// The pipeline whose folder holds `path`, if the file is one it should take.
fn owner<'p>(project: &'p Project, path: &Path) -> Option<&'p Pipeline> {
    let name = path.file_name()?.to_str()?;
    if is_ignored_name(name) {
        return None;
    }
    project.pipelines.values().find(|p| {
        let folder = &p.source.path;
        let parent_ok = if p.source.recursive {
            path.strip_prefix(folder).is_ok_and(|rel| {
                !rel.components()
                    .any(|c| c.as_os_str() == PROCESSED || c.as_os_str() == FAILED)
            })
        } else {
            path.parent() == Some(folder.as_path())
        };
        parent_ok && matches_pattern(name, p.source.pattern.as_deref(), p.source.format)
    })
}

fn scan(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if recursive
                && name != PROCESSED
                && name != FAILED
                && !is_ignored_name(&name.to_string_lossy())
            {
                scan(&path, recursive, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// Whether SIGINT or SIGTERM came (see `install_signal_handlers`).
pub fn stop_requested() -> bool {
    signals::stop_requested()
}

/// Stop the daemon as SIGTERM would: a part of it failed.
pub fn request_stop() {
    signals::request();
}

/// Catch SIGINT and SIGTERM from now on; call before anything slow (config, recovery) so that
/// an early Ctrl-C still ends in a clean stop.
pub fn install_signal_handlers() {
    signals::install();
}

/// What the daemon tells whoever runs it (the CLI prints these for people).
pub enum Event<'a> {
    /// Every folder is watched.
    Ready,
    /// A delivery ended; `moved` is where the file went after it.
    Delivered {
        report: &'a DeliveryReport,
        moved: Option<&'a Path>,
    },
    /// Asked to stop while deliveries run: waiting for them up to the grace period.
    Stopping { in_flight: usize, grace: Duration },
    /// The grace period ran out (or a second signal came): the deliveries roll back.
    Cancelling { in_flight: usize },
}

/// Runs until SIGINT or SIGTERM (see `install_signal_handlers`), telling `on_event` what
/// happens.
pub fn run(project: &Project, mut on_event: impl FnMut(Event<'_>)) -> Result<()> {
    let loader = Loader::open(project, false)?;
    for p in project.pipelines.values() {
        std::fs::create_dir_all(&p.source.path)
            .map_err(|e| Error::io(format!("creating {}", p.source.path.display()), e))?;
    }
    // One channel for what the folders and the workers say, so the loop wakes as soon as
    // either has news (a worker that waited for the loop's next timeout would sit idle).
    let (tx, rx) = mpsc::channel::<Message>();
    let mut watchers = Vec::new();
    let mut rescan_every = RESCAN_WITH_EVENTS;
    for p in project.pipelines.values() {
        match p.source.watch {
            WatchMode::Poll { every } => rescan_every = rescan_every.min(every),
            WatchMode::Events => {
                let tx = tx.clone();
                let mut watcher =
                    notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                        let Ok(event) = event else { return };
                        // A rename of any kind (inotify may not pair From and To) whose path still
                        // exists is a file moved in whole.
                        let complete = matches!(
                            event.kind,
                            EventKind::Access(AccessKind::Close(AccessMode::Write))
                                | EventKind::Modify(ModifyKind::Name(_))
                        );
                        if complete
                            || matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_))
                        {
                            for path in event.paths {
                                let _ = tx.send(Message::File { path, complete });
                            }
                        }
                    })
                    .map_err(|e| Error::usage(format!("cannot watch folders: {e}")))?;
                let mode = if p.source.recursive {
                    RecursiveMode::Recursive
                } else {
                    RecursiveMode::NonRecursive
                };
                watcher
                    .watch(&p.source.path, mode)
                    .map_err(|e| Error::usage(format!("cannot watch {}: {e}; set watch = \"poll\" on the source for network mounts", p.source.path.display())))?;
                watchers.push(watcher);
            }
        }
    }
    tracing::info!(folders = project.pipelines.len(), "watching");
    on_event(Event::Ready);

    // Workers, each with its own ledger connection; the loop dispatches ready files to them.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    // (file, pipeline, whether a transient failure of this attempt would be retried)
    let (job_tx, job_rx) = mpsc::channel::<(PathBuf, String, bool)>();
    let job_rx = std::sync::Mutex::new(job_rx);
    let mut forks = Vec::with_capacity(workers);
    for _ in 0..workers {
        forks.push(loader.fork()?);
    }
    std::thread::scope(|scope| -> Result<()> {
        let mut worker_threads = Vec::with_capacity(workers);
        for worker in forks {
            let done_tx = tx.clone();
            let job_rx = &job_rx;
            worker_threads.push(scope.spawn(move || {
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((path, name, retries_left)) = job else {
                        return;
                    };
                    let result = match project.pipelines.get(&name) {
                        Some(pipeline) => worker.load_attempt(pipeline, &path, retries_left),
                        None => Err(Error::Internal(format!("pipeline {name} vanished"))),
                    };
                    let result = Box::new(result);
                    if done_tx.send(Message::Done { path, result }).is_err() {
                        return;
                    }
                }
            }));
        }
        let mut in_flight: HashMap<PathBuf, String> = HashMap::new();
        let mut pending: HashMap<PathBuf, Candidate> = HashMap::new();
        let mut next_scan = Instant::now();
        let consider =
            |pending: &mut HashMap<PathBuf, Candidate>, path: PathBuf, complete: bool| {
                let Some(pipeline) = owner(project, &path) else {
                    return;
                };
                let Some((size, modified)) = stat(&path) else {
                    pending.remove(&path);
                    return;
                };
                let now = Instant::now();
                let entry = pending.entry(path).or_insert_with(|| Candidate {
                    pipeline: pipeline.name.clone(),
                    size,
                    modified,
                    stable_since: now,
                    complete: false,
                    attempts: 0,
                    not_before: now,
                });
                if (entry.size, entry.modified) != (size, modified) {
                    entry.size = size;
                    entry.modified = modified;
                    entry.stable_since = now;
                    entry.complete = false;
                }
                entry.complete |= complete;
            };

        while !signals::stop_requested() {
            // The timeout paces the checks of files settling by size and time, and retries.
            let first = rx.recv_timeout(Duration::from_millis(100)).ok();
            for message in first
                .into_iter()
                .chain(std::iter::from_fn(|| rx.try_recv().ok()))
            {
                match message {
                    Message::File { path, complete } => consider(&mut pending, path, complete),
                    Message::Done { path, result } => {
                        in_flight.remove(&path);
                        finish(&mut pending, path, *result, &mut on_event, project)?;
                    }
                }
            }
            if Instant::now() >= next_scan {
                for p in project.pipelines.values() {
                    let mut found = Vec::new();
                    scan(&p.source.path, p.source.recursive, &mut found);
                    for path in found {
                        consider(&mut pending, path, false);
                    }
                }
                next_scan = Instant::now() + rescan_every;
            }
            let now = Instant::now();
            // Oldest first, or by name for `ordered` pipelines; only worth working out when a
            // worker is free (with a thousand files waiting, the stat calls add up).
            let mut ready: Vec<(Option<SystemTime>, PathBuf)> = Vec::new();
            for (path, c) in pending.iter_mut().filter(|_| in_flight.len() < workers) {
                if in_flight.contains_key(path) {
                    continue;
                }
                let Some(pipeline) = project.pipelines.get(&c.pipeline) else {
                    continue;
                };
                if now < c.not_before {
                    continue;
                }
                // Closed after writing or renamed in: a later change would come as an event
                // (which clears `complete`), so no stat is needed to rank it.
                if c.complete {
                    ready.push((
                        (!pipeline.source.ordered).then_some(c.modified),
                        path.clone(),
                    ));
                    continue;
                }
                let Some((size, modified)) = stat(path) else {
                    continue;
                };
                if (size, modified) != (c.size, c.modified) {
                    c.size = size;
                    c.modified = modified;
                    c.stable_since = now;
                    c.complete = false;
                    continue;
                }
                let old_enough = SystemTime::now()
                    .duration_since(modified)
                    .is_ok_and(|age| age >= pipeline.source.settle);
                if c.complete
                    || old_enough
                    || now.duration_since(c.stable_since) >= pipeline.source.settle
                {
                    let key = (!pipeline.source.ordered).then_some(modified);
                    ready.push((key, path.clone()));
                }
            }
            ready.sort();
            for (_, path) in ready {
                if signals::stop_requested() || in_flight.len() >= workers {
                    break;
                }
                if in_flight.contains_key(&path) {
                    continue;
                }
                let Some(c) = pending.get_mut(&path) else {
                    continue;
                };
                let Some(pipeline) = project.pipelines.get(&c.pipeline) else {
                    continue;
                };
                let busy = in_flight.values().filter(|p| **p == pipeline.name).count();
                if busy >= if pipeline.source.ordered { 1 } else { workers } {
                    continue;
                }
                if stat(&path).is_none() {
                    pending.remove(&path);
                    continue;
                }
                c.attempts += 1;
                in_flight.insert(path.clone(), pipeline.name.clone());
                let retries_left = c.attempts < pipeline.source.attempts;
                if job_tx
                    .send((path, pipeline.name.clone(), retries_left))
                    .is_err()
                {
                    return Err(Error::Internal("the load workers stopped".into()));
                }
            }
        }
        // Stopping: no new files; the deliveries in flight finish within the grace period,
        // after which they are cancelled (rolled back) and load again at the next start.
        drop(job_tx);
        let deadline = Instant::now() + project.shutdown_grace;
        if !in_flight.is_empty() {
            tracing::info!(
                in_flight = in_flight.len(),
                grace_s = project.shutdown_grace.as_secs_f64(),
                "stopping: waiting for the deliveries in flight"
            );
            on_event(Event::Stopping {
                in_flight: in_flight.len(),
                grace: project.shutdown_grace,
            });
        }
        let mut cancelled = false;
        while !in_flight.is_empty() {
            if !cancelled && (Instant::now() >= deadline || signals::cancel_requested()) {
                tracing::info!(
                    in_flight = in_flight.len(),
                    "cancelling the deliveries in flight"
                );
                on_event(Event::Cancelling {
                    in_flight: in_flight.len(),
                });
                loader.cancel_in_flight();
                cancelled = true;
            }
            // A worker that died (a bug) never reports: once every worker has ended, what is
            // still to come is already in the channel.
            let ended = worker_threads.iter().all(|t| t.is_finished());
            let message = if ended {
                rx.try_recv().ok()
            } else {
                rx.recv_timeout(Duration::from_millis(50)).ok()
            };
            match message {
                Some(Message::Done { path, result }) => {
                    in_flight.remove(&path);
                    finish(&mut pending, path, *result, &mut on_event, project)?;
                }
                Some(Message::File { .. }) => {}
                None if ended => break,
                None => {}
            }
        }
        Ok(())
    })?;
    drop(watchers);
    tracing::info!("stopped");
    Ok(())
}

type Outcome = Result<DeliveryReport>;

/// What the watch loop hears.
enum Message {
    /// A filesystem event: `complete` when the file was closed after writing or renamed in.
    File { path: PathBuf, complete: bool },
    /// A worker finished a delivery.
    Done { path: PathBuf, result: Box<Outcome> },
}

fn is_cancelled(result: &Outcome) -> bool {
    match result {
        Ok(report) => matches!(report.failure, Some(Error::Cancelled { .. })),
        Err(e) => matches!(e, Error::Cancelled { .. }),
    }
}

/// After a delivery: retry it later if it failed transiently, else move the file and report.
fn finish(
    pending: &mut HashMap<PathBuf, Candidate>,
    path: PathBuf,
    result: Outcome,
    on_event: &mut impl FnMut(Event<'_>),
    project: &Project,
) -> Result<()> {
    let Some(c) = pending.get_mut(&path) else {
        return Ok(());
    };
    let Some(pipeline) = project.pipelines.get(&c.pipeline) else {
        return Ok(());
    };
    if is_cancelled(&result) {
        pending.remove(&path);
        tracing::info!(file = %path.display(), "delivery cancelled at shutdown; the file stays and loads at the next start");
        return Ok(());
    }
    let transient = match &result {
        Ok(report) => {
            report.status == Status::Error
                && report
                    .failure
                    .as_ref()
                    .is_some_and(|e| e.class() == ErrorClass::Transient)
        }
        Err(e) => e.class() != ErrorClass::BadInput,
    };
    if transient && c.attempts < pipeline.source.attempts {
        let backoff =
            Duration::from_millis(200 * 2u64.pow(c.attempts) + u64::from(rand::random::<u8>()));
        tracing::warn!(file = %path.display(), attempt = c.attempts, retry_in_ms = backoff.as_millis() as u64, "transient failure; retrying");
        c.not_before = Instant::now() + backoff;
        return Ok(());
    }
    pending.remove(&path);
    match result {
        Ok(report) => {
            let moved = disposal::dispose(
                &path,
                &pipeline.source.path,
                pipeline.source.after_load,
                &report,
            )?;
            on_event(Event::Delivered {
                report: &report,
                moved: moved.as_deref(),
            });
        }
        Err(e) => {
            // Left in place: the next re-scan offers it again.
            tracing::error!(file = %path.display(), error = %e, "delivery failed; the file stays for the next scan");
        }
    }
    Ok(())
}

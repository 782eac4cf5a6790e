//! `caudal run` (and the demo): the watcher on this thread, the scheduler, the HTTP server and
//! the alert engine beside it. They start only once the watcher holds the project lock, so a
//! second daemon on the same project neither schedules, serves nor alerts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use caudal::config::Project;
use caudal::error::{Error, Result};
use caudal::server::{AppState, DaemonStatus, Telemetry};
use caudal::watch::Event;

/// Wait until the watcher is ready; false if it ended first.
fn wait_ready(ready: &AtomicBool, ended: &AtomicBool) -> bool {
    while !ready.load(Ordering::SeqCst) {
        if ended.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

pub fn run(project: Arc<Project>, mut on_event: impl FnMut(Event<'_>)) -> Result<()> {
    let ready = AtomicBool::new(false);
    let ended = Arc::new(AtomicBool::new(false));
    let status = Arc::new(DaemonStatus::default());
    let telemetry = Arc::new(Telemetry::default());
    let alerts_wake = caudal::alerts::Wake::default();
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the job runtime", e))?,
    );
    let stop = || caudal::watch::stop_requested() || ended.load(Ordering::SeqCst);
    std::thread::scope(|scope| {
        let scheduler = scope.spawn(|| {
            if !wait_ready(&ready, &ended) {
                return Ok(());
            }
            for job in project.jobs.values() {
                eprintln!(
                    "scheduling job {} ({}, {})",
                    job.name,
                    job.schedule_text,
                    job.timezone.name()
                );
            }
            status.scheduler.store(true, Ordering::SeqCst);
            let result = caudal::jobs::scheduler::run(
                &project,
                runtime.clone(),
                stop,
                project.shutdown_grace,
                |run| {
                    alerts_wake.nudge();
                    telemetry.job_run(run);
                    super::jobs::print_run(run);
                },
            );
            status.scheduler.store(false, Ordering::SeqCst);
            result
        });
        let alerts = scope.spawn(|| {
            if !wait_ready(&ready, &ended) {
                return Ok(());
            }
            if !project.alerts.is_empty() {
                eprintln!(
                    "alerting: {} ({} channels)",
                    project
                        .alerts
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                    project.channels.len()
                );
            }
            // Not stopped by the signal: deliveries that finish while draining still count.
            caudal::alerts::run(&project, &alerts_wake, || ended.load(Ordering::SeqCst))
        });
        let server = scope.spawn(|| {
            let Some(config) = project.server.clone() else {
                return Ok(());
            };
            if !wait_ready(&ready, &ended) {
                return Ok(());
            }
            let state = Arc::new(AppState {
                project: project.clone(),
                config,
                status: status.clone(),
                telemetry: telemetry.clone(),
                started: Instant::now(),
                ledgers: std::sync::Mutex::new(Vec::new()),
                triggered: std::sync::atomic::AtomicUsize::new(0),
            });
            let ended = ended.clone();
            let served = caudal::server::serve(
                state,
                move || caudal::watch::stop_requested() || ended.load(Ordering::SeqCst),
                |addr| {
                    eprintln!("serving http://{addr}/ (API under /api/v1, docs at /api/v1/docs)")
                },
            );
            if served.is_err() {
                caudal::watch::request_stop();
            }
            served
        });
        let watched = caudal::watch::run(&project, |event| {
            match &event {
                Event::Ready => {
                    for p in project.pipelines.values() {
                        eprintln!(
                            "watching {} for pipeline {}",
                            p.source.path.display(),
                            p.name
                        );
                    }
                    status.watching.store(true, Ordering::SeqCst);
                    ready.store(true, Ordering::SeqCst);
                }
                Event::Delivered { report, .. } => {
                    alerts_wake.nudge();
                    telemetry.delivery(report);
                }
                Event::Stopping { .. } | Event::Cancelling { .. } => {
                    status.draining.store(true, Ordering::SeqCst);
                }
            }
            on_event(event);
        });
        status.watching.store(false, Ordering::SeqCst);
        ended.store(true, Ordering::SeqCst);
        alerts_wake.nudge();
        let alerted = alerts
            .join()
            .map_err(|_| Error::Internal("the alert engine panicked".into()))?;
        let scheduled = scheduler
            .join()
            .map_err(|_| Error::Internal("the scheduler panicked".into()))?;
        let served = server
            .join()
            .map_err(|_| Error::Internal("the server panicked".into()))?;
        watched.and(scheduled).and(served).and(alerted)
    })
}

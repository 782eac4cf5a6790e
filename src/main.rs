//! The `caudal` command line: parse arguments, call the library, print, map errors to exit codes
//! (0 ok, 1 invalid data, 2 usage or configuration, 3 transient failure, 70 internal error).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use caudal::config::{self, Project};
use caudal::error::{Error, Result};
use caudal::ledger::{Ledger, Status};
use caudal::pipeline::{DeliveryReport, Loader, files_in, project_busy};
use caudal::watch::Event;
use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "caudal",
    version,
    about = "Files in, contracts checked, SQL transforms, exactly-once loads into SQLite and a Parquet lake."
)]
struct Cli {
    /// Project folder (default: the nearest folder upwards holding caudal.toml).
    #[arg(long, short = 'C', global = true, env = "CAUDAL_PROJECT")]
    project: Option<PathBuf>,
    /// More log output (repeat for more).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new project: a commented caudal.toml, a contract and sample data.
    Init { dir: PathBuf },
    /// Check caudal.toml and its contracts; list every error with file:line:column.
    Validate,
    /// Validate a file against a pipeline's contract and transform; writes nothing.
    Check {
        file: PathBuf,
        #[arg(long, short = 'p')]
        pipeline: Option<String>,
        /// Print the full report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load files (or every file of a folder) through a pipeline, each exactly once.
    Load {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, short = 'p')]
        pipeline: Option<String>,
        /// Print each delivery's report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recent deliveries: file, status, rows read/loaded/rejected, time; or a job's runs.
    Runs {
        #[arg(long, short = 'p', conflicts_with = "job")]
        pipeline: Option<String>,
        /// Show this job's runs (durations and per-metric results) instead of deliveries.
        #[arg(long)]
        job: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// What is watched, what is loading now, the last deliveries and failures (works while
    /// `caudal run` runs).
    Status,
    /// Watch every pipeline's folder and load each file once as it arrives, and run the jobs
    /// on their schedules, until Ctrl-C.
    Run,
    /// Scheduled jobs: list them with their next runs, or run one now (or for past periods).
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// API tokens: create one (shown once), list them, revoke one.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit log of the HTTP API: who did what, when, from where.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show each alert's state (ok or firing, since when) and its newest notices.
    Alerts {
        /// Also list this many of the newest notices, whatever their alert.
        #[arg(long, default_value_t = 0)]
        history: usize,
        #[arg(long)]
        json: bool,
    },
    /// Print a calculated metric's values, newest period first.
    Metrics {
        name: String,
        /// First period start date to show (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Last period start date to show (YYYY-MM-DD).
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Create ./caudal-demo (if absent), start watching it and drop the sample shop files in
    /// one by one; Ctrl-C stops.
    Demo {
        #[arg(long, default_value = "caudal-demo")]
        dir: PathBuf,
        /// Load the samples directly and exit instead of watching.
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it once.
    Create {
        #[arg(long)]
        name: String,
        /// viewer (read), analyst (read, query, trigger jobs, upload files) or admin (all).
        #[arg(long)]
        role: String,
    },
    List,
    Revoke {
        name: String,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Each job's schedule, time zone, next 5 runs (local and UTC) and last run.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Run a job now; --date D for the period holding D; --from D1 --to D2 for each period.
    Run {
        name: String,
        #[arg(long, conflicts_with_all = ["from", "to"])]
        date: Option<String>,
        #[arg(long, requires = "to")]
        from: Option<String>,
        #[arg(long, requires = "from")]
        to: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // Like other Unix tools, stop quietly when the reader of our output goes away (`| head`).
    // SAFETY: restoring the default disposition of a signal at start-up, before any threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "caudal=warn",
        1 => "caudal=info",
        _ => "caudal=debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: log files and journald get plain text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.class().exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Init { dir } => {
            caudal::scaffold::init(&dir)?;
            println!("Created a caudal project in {}.", dir.display());
            println!(
                "Next:\n  cd {}\n  caudal validate\n  caudal load incoming/ -p orders\n  caudal runs",
                dir.display()
            );
            Ok(0)
        }
        Command::Validate => {
            let root = config::locate_project(cli.project.as_deref())?;
            let project = config::load_project(&root)?;
            println!(
                "{}: ok ({} pipeline{}, {} destination{}, {} job{})",
                root.join(config::CONFIG_FILE).display(),
                project.pipelines.len(),
                plural(project.pipelines.len()),
                project.destinations.len(),
                plural(project.destinations.len()),
                project.jobs.len(),
                plural(project.jobs.len())
            );
            Ok(0)
        }
        Command::Check {
            file,
            pipeline,
            json,
        } => {
            let project = open_project(cli.project.as_deref())?;
            let pipeline = pick_pipeline(&project, pipeline.as_deref())?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| Error::io("starting the runtime", e))?;
            let mut worst = 0;
            for path in files_in(&input_path(&project, &file), pipeline)? {
                let report = Loader::check_file(&runtime, &project, pipeline, &path)?;
                if json {
                    print_json(&report)?;
                } else {
                    print_check(&report);
                }
                worst = worst.max(
                    if report.violations.is_empty() && report.status != Status::Failed {
                        0
                    } else {
                        1
                    },
                );
            }
            Ok(worst)
        }
        Command::Load {
            paths,
            pipeline,
            json,
        } => {
            let project = open_project(cli.project.as_deref())?;
            let pipeline = pick_pipeline(&project, pipeline.as_deref())?;
            let mut files = Vec::new();
            for p in &paths {
                files.extend(files_in(&input_path(&project, p), pipeline)?);
            }
            if files.is_empty() {
                eprintln!(
                    "nothing to load: no matching files in {}",
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Ok(0);
            }
            let (loader, first) = Loader::open_beginning(&project, !json, pipeline, &files[0])?;
            let mut first = Some(first);
            let mut worst = 0;
            for path in files {
                let report = match first.take() {
                    Some(begun) => loader.load_begun(pipeline, begun)?,
                    None => loader.load_file(pipeline, &path)?,
                };
                if json {
                    print_json(&report)?;
                } else {
                    print_delivery(&report);
                }
                worst = worst.max(report.exit_code());
            }
            Ok(worst)
        }
        Command::Runs {
            job: Some(job),
            limit,
            json,
            ..
        } => {
            let project = open_project(cli.project.as_deref())?;
            cli::jobs::history(&project, &job, limit, json)
        }
        Command::Jobs { command } => {
            let project = open_project(cli.project.as_deref())?;
            match command {
                JobsCommand::List { json } => cli::jobs::list(&project, json),
                JobsCommand::Run {
                    name,
                    date,
                    from,
                    to,
                    json,
                } => cli::jobs::run(
                    &project,
                    &name,
                    date.as_deref(),
                    from.as_deref(),
                    to.as_deref(),
                    json,
                ),
            }
        }
        Command::Token { command } => {
            let project = open_project(cli.project.as_deref())?;
            match command {
                TokenCommand::Create { name, role } => cli::access::create(&project, &name, &role),
                TokenCommand::List => cli::access::list(&project),
                TokenCommand::Revoke { name } => cli::access::revoke(&project, &name),
            }
        }
        Command::Alerts { history, json } => {
            let project = open_project(cli.project.as_deref())?;
            cli::alerts::alerts(&project, json, history)
        }
        Command::Audit { limit, json } => {
            let project = open_project(cli.project.as_deref())?;
            cli::access::audit(&project, limit, json)
        }
        Command::Metrics {
            name,
            from,
            to,
            limit,
            json,
        } => {
            let project = open_project(cli.project.as_deref())?;
            cli::jobs::metrics(&project, &name, from.as_deref(), to.as_deref(), limit, json)
        }
        Command::Runs {
            pipeline,
            limit,
            json,
            job: None,
        } => {
            let project = open_project(cli.project.as_deref())?;
            let ledger = Ledger::open(&project.state_dir)?;
            let runs = ledger.recent(pipeline.as_deref(), limit)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&runs)
                        .map_err(|e| Error::Internal(e.to_string()))?
                );
                return Ok(0);
            }
            if runs.is_empty() {
                println!("no deliveries yet");
                return Ok(0);
            }
            println!(
                "{:<24} {:<12} {:<10} {:>9} {:>9} {:>9} {:>8}  file",
                "started", "pipeline", "status", "read", "loaded", "rejected", "ms"
            );
            for r in runs {
                println!(
                    "{:<24} {:<12} {:<10} {:>9} {:>9} {:>9} {:>8}  {}",
                    r.started_at,
                    r.pipeline,
                    r.status.as_str(),
                    r.rows_read,
                    r.rows_loaded,
                    r.rows_rejected,
                    r.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
                    r.source
                );
                if let Some(e) = r.error.filter(|_| r.status != Status::Loaded) {
                    println!("{:<24} {}", "", e);
                }
            }
            Ok(0)
        }
        Command::Status => {
            let project = open_project(cli.project.as_deref())?;
            status(&project)?;
            Ok(0)
        }
        Command::Run => {
            caudal::watch::install_signal_handlers();
            let project = open_project(cli.project.as_deref())?;
            cli::daemon::run(std::sync::Arc::new(project), |event| match event {
                Event::Ready => {}
                Event::Delivered { report, moved } => {
                    print_delivery(report);
                    if let Some(to) = moved {
                        println!("    moved to {}", to.display());
                    }
                }
                other => print_shutdown(&other),
            })?;
            eprintln!("stopped");
            Ok(0)
        }
        Command::Demo { dir, once } => demo(&dir, once),
    }
}

fn status(project: &Project) -> Result<()> {
    let busy = project_busy(project);
    println!(
        "{}",
        if busy {
            "a caudal process is running on this project"
        } else {
            "no caudal process is running on this project"
        }
    );
    println!("\nwatched folders:");
    for p in project.pipelines.values() {
        let waiting = files_in(&p.source.path, p).map(|f| f.len()).unwrap_or(0);
        let failed = std::fs::read_dir(p.source.path.join(caudal::watch::FAILED))
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().ends_with(".error.json"))
                    .count()
            })
            .unwrap_or(0);
        println!(
            "  {:<12} {}  ({waiting} waiting, {failed} in failed/)",
            p.name,
            p.source.path.display()
        );
    }
    let ledger = Ledger::open(&project.state_dir)?;
    let recent = ledger.recent(None, 200)?;
    let running: Vec<_> = recent
        .iter()
        .filter(|r| r.status == Status::Running)
        .collect();
    println!(
        "\nin flight: {}",
        if running.is_empty() {
            "nothing".to_string()
        } else {
            String::new()
        }
    );
    for r in &running {
        println!(
            "  {:<12} {}  (since {})",
            r.pipeline, r.source, r.started_at
        );
    }
    println!("\nlast deliveries:");
    for r in recent
        .iter()
        .filter(|r| r.status != Status::Running)
        .take(10)
    {
        println!(
            "  {:<24} {:<12} {:<10} {:>9} loaded {:>7} rejected  {}",
            r.started_at,
            r.pipeline,
            r.status.as_str(),
            r.rows_loaded,
            r.rows_rejected,
            r.source
        );
    }
    let failures: Vec<_> = recent
        .iter()
        .filter(|r| matches!(r.status, Status::Failed | Status::Rejected | Status::Error))
        .take(5)
        .collect();
    if !failures.is_empty() {
        println!("\nlast failures:");
        for r in failures {
            println!(
                "  {:<24} {:<12} {}: {}",
                r.started_at,
                r.pipeline,
                r.source,
                r.error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A path given on the command line: from the current folder, or else from the project's
/// folder (so `caudal -C proj load data/` finds proj/data).
fn input_path(project: &Project, path: &Path) -> PathBuf {
    if path.is_relative() && !path.exists() && project.root.join(path).exists() {
        project.root.join(path)
    } else {
        path.to_path_buf()
    }
}

fn open_project(explicit: Option<&Path>) -> Result<Project> {
    let root = config::locate_project(explicit)?;
    config::load_project(&root)
}

fn pick_pipeline<'a>(project: &'a Project, name: Option<&str>) -> Result<&'a config::Pipeline> {
    let names = || {
        project
            .pipelines
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => project.pipelines.get(n).ok_or_else(|| {
            Error::usage(format!("no pipeline named \"{n}\"; pipelines: {}", names()))
        }),
        None if project.pipelines.len() == 1 => project
            .pipelines
            .values()
            .next()
            .ok_or_else(|| Error::Internal("no pipeline".into())),
        None => Err(Error::usage(format!(
            "say which pipeline with -p NAME; pipelines: {}",
            names()
        ))),
    }
}

fn print_json(report: &DeliveryReport) -> Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(report).map_err(|e| Error::Internal(e.to_string()))?
    );
    Ok(())
}

fn print_violations(report: &DeliveryReport, limit: usize) {
    for v in report.violations.errors.iter().take(limit) {
        println!("    {v}");
    }
    if report.violations.total as usize > limit {
        println!("    … {} more", report.violations.total as usize - limit);
        for (rule, count) in &report.violations.by_rule {
            println!("      {count:>7} × {rule}");
        }
    }
}

fn print_check(report: &DeliveryReport) {
    if report.violations.is_empty() && report.status != Status::Failed {
        println!("{}: valid ({} rows)", report.source, report.rows_read);
        return;
    }
    println!(
        "{}: {} problem{} in {} rows",
        report.source,
        report.violations.total,
        plural(report.violations.total as usize),
        report.rows_read
    );
    print_violations(report, 20);
}

/// What a person at the terminal needs to hear while the daemon stops.
pub(crate) fn print_shutdown(event: &Event<'_>) {
    match event {
        Event::Stopping { in_flight, grace } => eprintln!(
            "stopping: waiting up to {}s for {} in flight (Ctrl-C again cancels)",
            grace.as_secs_f64(),
            deliveries(*in_flight)
        ),
        Event::Cancelling { in_flight } => eprintln!(
            "cancelling {} in flight: nothing of it is committed; the files stay and load at the next start",
            deliveries(*in_flight)
        ),
        Event::Ready | Event::Delivered { .. } => {}
    }
}

fn deliveries(n: usize) -> String {
    if n == 1 {
        "1 delivery".to_string()
    } else {
        format!("{n} deliveries")
    }
}

pub(crate) fn print_delivery(report: &DeliveryReport) {
    match report.status {
        Status::Duplicate => println!(
            "{}: skipped, same content as load {}",
            report.source,
            report.duplicate_of.as_deref().unwrap_or("?")
        ),
        Status::Loaded => {
            print!("{}: loaded {} rows", report.source, report.rows_loaded);
            if report.rows_rejected > 0 {
                let verb = if report.on_invalid == config::OnInvalid::Drop {
                    "dropped"
                } else {
                    "quarantined"
                };
                print!(", {verb} {}", report.rows_rejected);
            }
            println!(" ({} ms)", report.duration_ms);
            if report.rows_rejected > 0 {
                print_violations(report, 5);
            }
        }
        Status::Rejected => {
            println!(
                "{}: rejected, nothing loaded ({} problems)",
                report.source, report.violations.total
            );
            print_violations(report, 10);
        }
        _ => {
            if let Some(e) = &report.error {
                println!(
                    "{}: {} — {}",
                    report.source,
                    report.status.as_str(),
                    e.message
                );
            } else {
                println!("{}: {}", report.source, report.status.as_str());
                print_violations(report, 10);
            }
        }
    }
    if let Some(p) = &report.report_path {
        println!("    report: {}", p.display());
    }
}

fn demo(dir: &Path, once: bool) -> Result<u8> {
    if !once {
        caudal::watch::install_signal_handlers();
    }
    let created = caudal::demo::materialize(dir)?;
    println!(
        "{} the demo project in {}",
        if created { "Created" } else { "Using" },
        dir.display()
    );
    let project = config::load_project(dir)?;
    let pipeline = pick_pipeline(&project, Some("sales"))?;
    let samples = files_in(&dir.join(caudal::demo::SAMPLES), pipeline)?;
    let (mut loaded, mut rejected, mut seen) = (0, 0, 0);
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if once {
        let loader = Loader::open(&project, false)?;
        for path in &samples {
            let report = loader.load_file(pipeline, path)?;
            print_delivery(&report);
            loaded += report.rows_loaded;
            rejected += report.rows_rejected;
        }
        demo_summary(&abs, dir, loaded, rejected);
        return Ok(0);
    }
    println!(
        "Watching {} — the {} sample files arrive one by one. Ctrl-C stops.",
        pipeline.source.path.display(),
        samples.len()
    );
    let incoming = pipeline.source.path.clone();
    let total = samples.len();
    let dropper = std::thread::spawn(move || drop_samples(&samples, &incoming));
    cli::daemon::run(std::sync::Arc::new(project.clone()), |event| {
        let Event::Delivered { report, .. } = event else {
            print_shutdown(&event);
            return;
        };
        print_delivery(report);
        loaded += report.rows_loaded;
        rejected += report.rows_rejected;
        seen += 1;
        if seen == total {
            demo_summary(&abs, dir, loaded, rejected);
            println!(
                "\nStill watching: drop more CSV files into {}/incoming, or press Ctrl-C.",
                abs.display()
            );
        }
    })?;
    if let Ok(Err(e)) = dropper.join() {
        eprintln!("error: {e}");
    }
    println!("stopped");
    Ok(0)
}

/// Copies each sample into the watched folder the way a careful producer does: under a hidden
/// name, then renamed into place.
fn drop_samples(samples: &[PathBuf], incoming: &Path) -> Result<()> {
    for sample in samples {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let Some(name) = sample.file_name() else {
            continue;
        };
        let tmp = incoming.join(format!(".{}.part", name.to_string_lossy()));
        std::fs::copy(sample, &tmp)
            .map_err(|e| Error::io(format!("copying {}", sample.display()), e))?;
        std::fs::rename(&tmp, incoming.join(name))
            .map_err(|e| Error::io(format!("dropping {}", sample.display()), e))?;
        println!("→ dropped {}", name.to_string_lossy());
    }
    Ok(())
}

fn demo_summary(abs: &Path, dir: &Path, loaded: u64, rejected: u64) {
    println!();
    println!("Loaded {loaded} rows, quarantined {rejected} (with their reasons) this run.");
    println!(
        "  warehouse: {}/warehouse.db (tables sales, sales_rejects)",
        abs.display()
    );
    println!(
        "  lake:      {}/lake/sales/sale_date=YYYY-MM-DD/*.parquet",
        abs.display()
    );
    println!("  reports:   {}/.caudal/reports/", abs.display());
    println!();
    println!("Try:");
    println!(
        "  sqlite3 {}/warehouse.db \"SELECT segment, count(*), round(sum(total), 2) FROM sales GROUP BY segment\"",
        abs.display()
    );
    println!(
        "  sqlite3 {}/warehouse.db \"SELECT _caudal_line, _caudal_errors FROM sales_rejects\"",
        abs.display()
    );
    println!("  caudal -C {} runs", dir.display());
    println!(
        "  caudal -C {} jobs run daily_metrics --date 2026-11-02   # the shop's metrics for that day",
        dir.display()
    );
    println!(
        "  caudal -C {} metrics revenue_by_segment_daily",
        dir.display()
    );
}

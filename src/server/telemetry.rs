//! Counters and histograms of the running daemon, rendered in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Seconds; from a millisecond insert to a half-hour job.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0,
];

pub type Labels = Vec<(String, String)>;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// One metric family: its name, type and help line.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "caudal_deliveries_total",
        kind: "counter",
        help: "Deliveries (files) finished, by pipeline and status.",
    },
    Family {
        name: "caudal_rows_loaded_total",
        kind: "counter",
        help: "Rows loaded, by pipeline.",
    },
    Family {
        name: "caudal_rows_rejected_total",
        kind: "counter",
        help: "Rows rejected by the contract, by pipeline.",
    },
    Family {
        name: "caudal_delivery_duration_seconds",
        kind: "histogram",
        help: "Time from start to commit of a delivery, by pipeline.",
    },
    Family {
        name: "caudal_job_runs_total",
        kind: "counter",
        help: "Job runs finished, by job and status.",
    },
    Family {
        name: "caudal_job_run_duration_seconds",
        kind: "histogram",
        help: "Duration of job runs, by job.",
    },
    Family {
        name: "caudal_http_requests_total",
        kind: "counter",
        help: "HTTP requests served, by method, route and status code.",
    },
    Family {
        name: "caudal_http_request_duration_seconds",
        kind: "histogram",
        help: "HTTP request latency, by route.",
    },
];

/// A value read when scraped (not counted as things happen).
pub struct Gauge<'a> {
    pub name: &'a str,
    pub help: &'a str,
    pub samples: Vec<(Labels, f64)>,
}

#[derive(Default)]
pub struct Telemetry {
    counters: Mutex<BTreeMap<(&'static str, Labels), f64>>,
    histograms: Mutex<BTreeMap<(&'static str, Labels), Histogram>>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_labels(labels: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

impl Telemetry {
    pub fn add(&self, name: &'static str, pairs: &[(&str, &str)], by: f64) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name, labels(pairs))).or_default() += by;
        }
    }

    pub fn observe(&self, name: &'static str, pairs: &[(&str, &str)], seconds: f64) {
        if let Ok(mut h) = self.histograms.lock() {
            let hist = h.entry((name, labels(pairs))).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    hist.counts[i] += 1;
                }
            }
            hist.count += 1;
            hist.sum += seconds;
        }
    }

    /// The text exposition, with `gauges` read at scrape time.
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().map(|c| {
            c.iter()
                .map(|((n, l), v)| (*n, l.clone(), *v))
                .collect::<Vec<_>>()
        });
        let counters = counters.unwrap_or_default();
        let histograms = self.histograms.lock();
        for family in FAMILIES {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
            if family.kind == "counter" {
                for (_, l, v) in counters.iter().filter(|(n, _, _)| *n == family.name) {
                    let _ = writeln!(out, "{}{} {v}", family.name, render_labels(l, None));
                }
            } else if let Ok(h) = &histograms {
                for ((_, l), hist) in h.iter().filter(|((n, _), _)| *n == family.name) {
                    for (i, bound) in BUCKETS.iter().enumerate() {
                        let _ = writeln!(
                            out,
                            "{}_bucket{} {}",
                            family.name,
                            render_labels(l, Some(("le", bound.to_string()))),
                            hist.counts[i]
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{}_bucket{} {}",
                        family.name,
                        render_labels(l, Some(("le", "+Inf".to_string()))),
                        hist.count
                    );
                    let _ = writeln!(
                        out,
                        "{}_sum{} {}",
                        family.name,
                        render_labels(l, None),
                        hist.sum
                    );
                    let _ = writeln!(
                        out,
                        "{}_count{} {}",
                        family.name,
                        render_labels(l, None),
                        hist.count
                    );
                }
            }
        }
        for g in gauges {
            let _ = writeln!(out, "# HELP {} {}", g.name, g.help);
            let _ = writeln!(out, "# TYPE {} gauge", g.name);
            for (l, v) in &g.samples {
                let _ = writeln!(out, "{}{} {v}", g.name, render_labels(l, None));
            }
        }
        out
    }

    pub fn delivery(&self, report: &crate::pipeline::DeliveryReport) {
        let p = report.pipeline.as_str();
        self.add(
            "caudal_deliveries_total",
            &[("pipeline", p), ("status", report.status.as_str())],
            1.0,
        );
        self.add(
            "caudal_rows_loaded_total",
            &[("pipeline", p)],
            report.rows_loaded as f64,
        );
        self.add(
            "caudal_rows_rejected_total",
            &[("pipeline", p)],
            report.rows_rejected as f64,
        );
        self.observe(
            "caudal_delivery_duration_seconds",
            &[("pipeline", p)],
            report.duration_ms as f64 / 1000.0,
        );
    }

    pub fn job_run(&self, run: &crate::ledger::JobRun) {
        self.add(
            "caudal_job_runs_total",
            &[("job", &run.job), ("status", run.status.as_str())],
            1.0,
        );
        if let Some(ms) = run.duration_ms {
            self.observe(
                "caudal_job_run_duration_seconds",
                &[("job", &run.job)],
                ms as f64 / 1000.0,
            );
        }
    }
}

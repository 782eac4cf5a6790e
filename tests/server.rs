//! The HTTP API of `caudal run`, called over real TCP as a program would: tokens and roles,
//! the audit log, deliveries with their quality reports, uploads, job triggers, calculated
//! metrics, read-only queries, Prometheus, OpenAPI and limits.

mod common;

use std::io::BufRead;
use std::time::Duration;

use common::http::{get, post_json, request};
use common::{run_caudal, wait_until};
use serde_json::json;

struct Daemon {
    child: std::process::Child,
    addr: String,
    dir: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo project, loaded once, with `caudal run` serving on a free port.
fn demo_daemon(server: &str) -> Daemon {
    let tmp = tempfile::tempdir().expect("tempdir");
    run_caudal(tmp.path(), &["demo", "--once"], &[]).expect_code(0);
    let dir = tmp.path().join("caudal-demo");
    let config = std::fs::read_to_string(dir.join("caudal.toml")).expect("config");
    let start = config.find("[server]").expect("the demo serves");
    let end = config[start..].find("[destinations").expect("destinations") + start;
    let config = format!("{}{server}\n\n{}", &config[..start], &config[end..]);
    std::fs::write(dir.join("caudal.toml"), config).expect("config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_caudal"))
        .args(["-C", dir.to_str().expect("utf-8"), "run"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("caudal run");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut addr = None;
    for _ in 0..20 {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(rest) = line.strip_prefix("serving http://") {
            addr = rest.split('/').next().map(str::to_string);
            break;
        }
    }
    std::thread::spawn(move || std::io::read_to_string(stderr));
    let addr = addr.expect("the daemon says where it serves");
    Daemon {
        child,
        addr,
        dir,
        _tmp: tmp,
    }
}

fn token(d: &Daemon, name: &str, role: &str) -> String {
    let run = run_caudal(
        &d.dir,
        &["token", "create", "--name", name, "--role", role],
        &[],
    );
    run.expect_code(0);
    run.stdout.trim().to_string()
}

fn error_code(r: &common::http::Response) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

#[test]
fn tokens_roles_and_the_audit_log() {
    let d = demo_daemon("[server]\nlisten = \"127.0.0.1:0\"");
    let a = d.addr.as_str();
    let viewer = token(&d, "dash", "viewer");
    let analyst = token(&d, "ana", "analyst");
    let admin = token(&d, "root", "admin");
    assert!(viewer.starts_with("cdl_") && viewer.len() > 40);
    let ledger = std::fs::read(d.dir.join(".caudal/ledger.db")).expect("ledger");
    assert!(
        !ledger.windows(viewer.len()).any(|w| w == viewer.as_bytes()),
        "the token itself must not be stored"
    );

    // No token, unknown token: 401; known token, role too low: 403. Errors are JSON.
    let r = get(a, "/api/v1/pipelines", None);
    assert_eq!((r.status, error_code(&r)), (401, "unauthorized".into()));
    let r = get(a, "/api/v1/pipelines", Some("cdl_nope"));
    assert_eq!(r.status, 401);
    let r = get(a, "/api/v1/pipelines", Some(&viewer));
    assert_eq!(r.status, 200, "{}", r.text());
    let q = json!({"sql": "SELECT count(*) AS n FROM sales"});
    let r = post_json(a, "/api/v1/query", Some(&viewer), &q);
    assert_eq!((r.status, error_code(&r)), (403, "forbidden".into()));
    let r = post_json(a, "/api/v1/query", Some(&analyst), &q);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows"][0]["n"], 173);
    let r = post_json(
        a,
        "/api/v1/query",
        Some(&analyst),
        &json!({"sql": "SELECT CAST(NULL AS INT) AS n"}),
    );
    assert_eq!(
        r.json()["rows"],
        json!([{"n": null}]),
        "a NULL is an explicit null"
    );
    let r = get(a, "/api/v1/audit", Some(&analyst));
    assert_eq!(r.status, 403);

    // Writes are refused; a query runs under a row cap.
    let r = post_json(
        a,
        "/api/v1/query",
        Some(&analyst),
        &json!({"sql": "DELETE FROM sales"}),
    );
    assert_eq!((r.status, error_code(&r)), (403, "read_only".into()));
    let r = post_json(
        a,
        "/api/v1/query",
        Some(&analyst),
        &json!({"sql": "SELECT sale_id FROM warehouse.sales ORDER BY sale_id", "limit": 5}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows"].as_array().map(Vec::len), Some(5));
    assert_eq!(r.json()["truncated"], true);
    let r = post_json(
        a,
        "/api/v1/query",
        Some(&analyst),
        &json!({"sql": "SELECT * FROM nowhere"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        !r.text().contains(d.dir.to_str().expect("utf-8")),
        "no internal paths: {}",
        r.text()
    );

    // Revoked tokens stop working; the audit log has every query and change, with who and where.
    let r = request(a, "DELETE", "/api/v1/tokens/dash", Some(&admin), None);
    assert_eq!(r.status, 204);
    assert_eq!(get(a, "/api/v1/pipelines", Some(&viewer)).status, 401);
    let r = get(a, "/api/v1/audit", Some(&admin));
    assert_eq!(r.status, 200);
    let entries = r.json();
    let entries = entries.as_array().expect("entries");
    let find = |action: &str, outcome: &str| {
        entries.iter().any(|e| {
            e["action"] == action
                && e["outcome"]
                    .as_str()
                    .is_some_and(|o| o.starts_with(outcome))
                && e["client"] == "127.0.0.1"
        })
    };
    assert!(find("query", "ok: 1 rows"), "{entries:?}");
    assert!(find("query", "failed: read_only"), "{entries:?}");
    assert!(find("query", "denied: forbidden"), "{entries:?}");
    assert!(find("revoke", "revoked"), "{entries:?}");
    assert!(
        entries
            .iter()
            .any(|e| e["token"] == "ana" && e["role"] == "analyst")
    );
    run_caudal(&d.dir, &["audit"], &[])
        .expect_code(0)
        .expect_mentions("revoke")
        .expect_mentions("ana");
    run_caudal(&d.dir, &["token", "list"], &[])
        .expect_code(0)
        .expect_mentions("revoked");
}

#[test]
fn deliveries_uploads_jobs_metrics_and_monitoring() {
    let d = demo_daemon("[server]\nlisten = \"127.0.0.1:0\"\nanonymous = true\nmax_body_mb = 1");
    let a = d.addr.as_str();
    let analyst = token(&d, "ana", "analyst");

    let r = get(a, "/api/v1/health", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let health = r.json();
    assert_eq!(health["status"], "ok");
    let names: Vec<&str> = health["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for c in ["ledger", "warehouse:warehouse", "watchers", "scheduler"] {
        assert!(names.contains(&c), "{names:?}");
    }

    // Pipelines: last deliveries and rejects; anonymous callers read as viewers.
    let r = get(a, "/api/v1/pipelines", None);
    assert_eq!(r.status, 200);
    let p = &r.json()[0];
    assert_eq!(p["name"], "sales");
    assert_eq!(p["folder"], "incoming");
    assert_eq!(p["last_deliveries"].as_array().map(Vec::len), Some(3));
    assert_eq!(get(a, "/api/v1/pipelines/nope", None).status, 404);

    // Deliveries: filters, cursor paging, and the quality report of one.
    let r = get(a, "/api/v1/deliveries?limit=2", None);
    let page = r.json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    let cursor = page["next_cursor"].as_i64().expect("a next page");
    let r = get(
        a,
        &format!("/api/v1/deliveries?limit=2&cursor={cursor}"),
        None,
    );
    let rest = r.json();
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
    assert!(rest["next_cursor"].is_null());
    let r = get(a, "/api/v1/deliveries?status=failed", None);
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(get(a, "/api/v1/deliveries?limit=0", None).status, 400);
    assert_eq!(
        get(a, "/api/v1/deliveries?since=yesterday", None).status,
        400
    );
    let id = page["items"][0]["id"].as_i64().expect("id");
    let r = get(a, &format!("/api/v1/deliveries/{id}"), None);
    assert_eq!(r.status, 200);
    let detail = r.json();
    let errors = detail["report"]["violations"]["errors"]
        .as_array()
        .expect("violations")
        .clone();
    assert!(!errors.is_empty(), "{detail}");
    assert!(
        errors
            .iter()
            .all(|e| e["line"].is_u64() && e["message"].is_string()),
        "{errors:?}"
    );
    assert_eq!(get(a, "/api/v1/deliveries/abc", None).status, 400);
    assert_eq!(get(a, "/api/v1/deliveries/999999", None).status, 404);

    // Upload: analysts only; the daemon loads the file like any other.
    let csv = std::fs::read(d.dir.join("samples/sales_2026-11-01.csv")).expect("sample");
    let changed = String::from_utf8_lossy(&csv).replace(",2026-11-01", ",2026-11-04");
    let path = "/api/v1/pipelines/sales/files?filename=sales_2026-11-04.csv";
    // Anonymous callers are viewers: too low a role to upload.
    let r = request(
        a,
        "POST",
        path,
        None,
        Some(("text/csv", changed.as_bytes())),
    );
    assert_eq!(r.status, 403);
    let r = request(
        a,
        "POST",
        path,
        Some(&analyst),
        Some(("text/csv", changed.as_bytes())),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["path"], "incoming/sales_2026-11-04.csv");
    wait_until("the uploaded file to load", Duration::from_secs(30), || {
        let r = get(a, "/api/v1/deliveries?limit=1", None);
        r.json()["items"][0]["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("sales_2026-11-04.csv"))
            && r.json()["items"][0]["status"] == "loaded"
    });
    let bad = request(
        a,
        "POST",
        "/api/v1/pipelines/sales/files?filename=../escape.csv",
        Some(&analyst),
        Some(("text/csv", b"a\n1\n")),
    );
    assert_eq!(bad.status, 400);
    let big = vec![b'x'; 2 * 1024 * 1024];
    let r = request(a, "POST", path, Some(&analyst), Some(("text/csv", &big)));
    assert_eq!(r.status, 413, "the body limit (1 MiB here)");

    // Jobs: list, trigger for a date, see the run and its metrics.
    let r = get(a, "/api/v1/jobs", None);
    let jobs = r.json();
    let daily = jobs
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["name"] == "daily_metrics")
        .expect("daily_metrics")
        .clone();
    assert_eq!(daily["timezone"], "Europe/Madrid");
    assert_eq!(daily["next_runs"].as_array().map(Vec::len), Some(5));
    let trigger = "/api/v1/jobs/daily_metrics/trigger";
    assert_eq!(
        post_json(a, trigger, None, &json!({"date": "2026-11-02"})).status,
        403
    );
    let r = post_json(a, trigger, Some(&analyst), &json!({"date": "2026-11-32"}));
    assert_eq!(r.status, 400);
    let r = post_json(a, trigger, Some(&analyst), &json!({"date": "2026-11-02"}));
    assert_eq!(r.status, 202, "{}", r.text());
    wait_until("the triggered run", Duration::from_secs(30), || {
        let runs = get(a, "/api/v1/runs?job=daily_metrics", None).json();
        runs[0]["status"] == "succeeded"
    });
    let run = get(a, "/api/v1/runs?job=daily_metrics", None).json()[0].clone();
    assert_eq!(run["trigger"], "backfill");
    assert_eq!(run["metrics"].as_array().map(Vec::len), Some(4));
    let run_id = run["id"].as_i64().expect("id");
    assert_eq!(
        get(a, &format!("/api/v1/runs/{run_id}"), None).json()["id"],
        run_id
    );

    // Calculated metrics, filtered by name, period and a dimension.
    let r = get(
        a,
        "/api/v1/metrics/calculated?name=revenue_by_segment_daily&from=2026-11-02&to=2026-11-02&segment=retail",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let values = r.json();
    let values = values.as_array().expect("values");
    assert_eq!(values.len(), 1, "{values:?}");
    assert_eq!(values[0]["dimensions"]["segment"], "retail");
    assert_eq!(values[0]["unit"], "EUR");
    assert_eq!(get(a, "/api/v1/metrics/calculated", None).status, 400);

    // Prometheus, OpenAPI 3.1, Swagger UI from the binary, JSON 404s, no CORS by default.
    let m = get(a, "/metrics", None).text();
    assert!(m.contains("# TYPE caudal_deliveries_total counter"), "{m}");
    assert!(
        m.contains("caudal_deliveries_total{pipeline=\"sales\",status=\"loaded\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("caudal_http_requests_total{method=\"GET\",route=\"/api/v1/deliveries\""),
        "{m}"
    );
    assert!(
        m.contains("caudal_queue_files{pipeline=\"sales\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("caudal_job_runs_total") || m.contains("# TYPE caudal_job_runs_total"),
        "{m}"
    );
    let spec = get(a, "/api/v1/openapi.json", None).json();
    assert_eq!(spec["openapi"], "3.1.0");
    let params = spec["paths"]["/api/v1/deliveries"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .clone();
    assert!(
        params
            .iter()
            .all(|p| p["in"] == "query" && p["required"] == false),
        "{params:?}"
    );
    for path in [
        "/api/v1/deliveries",
        "/api/v1/jobs/{name}/trigger",
        "/api/v1/query",
        "/api/v1/health",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let docs = get(a, "/api/v1/docs/", None);
    assert_eq!(docs.status, 200);
    assert!(docs.text().contains("swagger"), "{}", docs.text());
    assert!(
        !docs.text().contains("https://"),
        "Swagger UI must not load anything from the internet"
    );
    let r = get(a, "/api/v1/nothing-here", None);
    assert_eq!((r.status, error_code(&r)), (404, "not_found".into()));
    let r = common::http::request_with(
        a,
        "GET",
        "/api/v1/health",
        &[("Origin", "https://elsewhere.example")],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.header("access-control-allow-origin").is_none(),
        "no CORS unless configured"
    );
}

#[test]
fn cors_answers_only_the_configured_origins() {
    let d = demo_daemon(
        "[server]\nlisten = \"127.0.0.1:0\"\nanonymous = true\ncors_origins = [\"https://dash.example\"]",
    );
    let a = d.addr.as_str();
    let r = common::http::request_with(
        a,
        "GET",
        "/api/v1/pipelines",
        &[("Origin", "https://dash.example")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://dash.example")
    );
    let r = common::http::request_with(
        a,
        "OPTIONS",
        "/api/v1/query",
        &[
            ("Origin", "https://dash.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
    );
    assert_eq!(r.status, 204);
    assert!(
        r.header("access-control-allow-headers")
            .is_some_and(|h| h.contains("authorization"))
    );
    let r = common::http::request_with(
        a,
        "GET",
        "/api/v1/pipelines",
        &[("Origin", "https://evil.example")],
    );
    assert!(r.header("access-control-allow-origin").is_none());
}

#[test]
fn a_server_that_cannot_listen_stops_the_daemon_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let tmp = tempfile::tempdir().expect("tempdir");
    run_caudal(tmp.path(), &["demo", "--once"], &[]).expect_code(0);
    let dir = tmp.path().join("caudal-demo");
    let run = run_caudal(
        &dir,
        &["run"],
        &[("CAUDAL_LISTEN", &format!("127.0.0.1:{port}"))],
    );
    run.expect_code(2)
        .expect_mentions(&format!("cannot serve HTTP on 127.0.0.1:{port}"))
        .expect_mentions("[server] listen");
}

#[test]
fn job_triggers_are_capped_while_earlier_ones_run() {
    let d = demo_daemon(
        r#"[server]
listen = "127.0.0.1:0"

[jobs.slow]
schedule = "@yearly"
kind = "metrics"
period = "none"
timeout = "5s"

[[jobs.slow.metrics]]
name = "endless"
source = "warehouse"
sql = "SELECT count(*) AS value FROM sales a CROSS JOIN range(0, 100000000000) b"
"#,
    );
    let a = d.addr.as_str();
    let analyst = token(&d, "ana", "analyst");
    let statuses: Vec<u16> = (0..5)
        .map(|_| post_json(a, "/api/v1/jobs/slow/trigger", Some(&analyst), &json!({})).status)
        .collect();
    assert_eq!(statuses, [202, 202, 202, 202, 429]);
    let r = post_json(a, "/api/v1/jobs/slow/trigger", Some(&analyst), &json!({}));
    assert_eq!(error_code(&r), "busy");
}

#[test]
fn a_query_past_the_timeout_is_cancelled_with_408() {
    let d = demo_daemon("[server]\nlisten = \"127.0.0.1:0\"\nquery_timeout = \"500ms\"");
    let a = d.addr.as_str();
    let analyst = token(&d, "ana", "analyst");
    let r = post_json(
        a,
        "/api/v1/query",
        Some(&analyst),
        &json!({"sql": "SELECT count(*) AS n FROM sales a CROSS JOIN range(0, 100000000000) b"}),
    );
    assert_eq!(
        (r.status, error_code(&r)),
        (408, "timeout".into()),
        "{}",
        r.text()
    );
    // The server is still there for the next request.
    let r = post_json(
        a,
        "/api/v1/query",
        Some(&analyst),
        &json!({"sql": "SELECT 1 AS one"}),
    );
    assert_eq!(r.status, 200);
}

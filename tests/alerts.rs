//! Alerts end to end: `caudal run` with real channels on 127.0.0.1 (a webhook receiver, a
//! Slack-style receiver, SMTP servers in plain, STARTTLS and TLS), checking what each one
//! received, that an alert notifies once per change and not per failure, that freshness fires
//! on its timer while nothing happens, and that a restart in the middle of a firing alert sends
//! nothing twice.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::receiver::Receiver;
use common::smtp::{Security, SmtpServer};
use common::{TestProject, wait_until};

const CONTRACT: &str = r#"
[columns]
id   = { type = "int64", required = true }
name = { type = "string" }
"#;

const GOOD: &str = "id,name\n1,a\n2,b\n";
/// Not CSV at all: an unterminated quote. The delivery fails.
const BROKEN: &str = "id,name\n1,\"never closed\n";

/// `caudal run` with its output in `daemon.log` beside the project (shown when a test fails).
struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(p: &TestProject) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p.path().join("daemon.log"))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_caudal"))
            .arg("-C")
            .arg(p.path())
            .arg("run")
            .env_remove("CAUDAL_PROJECT")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("caudal run");
        Daemon { child }
    }

    /// SIGKILL: no chance to tidy up.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log(p: &TestProject) -> String {
    std::fs::read_to_string(p.path().join("daemon.log")).unwrap_or_default()
}

fn project(extra: &str) -> TestProject {
    project_with("", extra)
}

/// `options`: more keys of the pipeline table.
fn project_with(options: &str, extra: &str) -> TestProject {
    let config = format!(
        r#"
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[pipelines.orders]
source = {{ kind = "folder", path = "incoming", format = "csv", settle = "100ms" }}
contract = "contract.toml"
load = [{{ into = "warehouse", table = "orders" }}]
{options}
{extra}
"#
    );
    let p = TestProject::new(&config);
    p.write("contract.toml", CONTRACT);
    p.mkdir("incoming");
    p
}

/// Drop a file into the watched folder the way a producer should: written aside, renamed in.
fn drop_file(p: &TestProject, name: &str, content: &str) {
    let tmp = p.write(&format!("incoming/.{name}.part"), content);
    std::fs::rename(tmp, p.path().join("incoming").join(name)).expect("rename");
}

fn settled(p: &TestProject, name: &str) -> bool {
    let dir = p.path().join("incoming");
    dir.join("processed").join(name).exists() || dir.join("failed").join(name).exists()
}

fn wait_settled(p: &TestProject, name: &str) {
    wait_until(
        &format!("{name} to be loaded or failed"),
        Duration::from_secs(20),
        || settled(p, name),
    );
}

fn wait_count(p: &TestProject, r: &Receiver, n: usize, what: &str) {
    wait_until(what, Duration::from_secs(20), || r.count() >= n);
    assert_eq!(
        r.count(),
        n,
        "{what}: more notices than expected\n{}",
        log(p)
    );
}

fn alerts_json(p: &TestProject) -> serde_json::Value {
    let run = p.run(&["alerts", "--json"]);
    run.expect_code(0);
    serde_json::from_str(&run.stdout).expect("caudal alerts --json")
}

fn alert<'a>(all: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    all.as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no alert {name} in {all}"))
}

#[test]
fn a_failing_pipeline_notifies_webhook_and_slack_once_then_once_when_resolved() {
    let hook = Receiver::start(&[]);
    let slack = Receiver::start(&[]);
    let p = project(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://caudal.example.com/"

[channels.team]
kind = "webhook"
url = "{}"
headers = {{ "X-Caudal-Token" = "${{HOOK_TOKEN}}" }}

[channels.chat]
kind = "slack"
url = "{}"

[alerts.orders_failing]
when = {{ delivery_failed = "orders" }}
notify = ["team", "chat"]
description = "Orders stopped loading: check the producer."
"#,
        hook.url, slack.url
    ));
    // Secrets come from the environment or the project's .env.
    p.write(".env", "HOOK_TOKEN=s3cret\n");
    let _daemon = Daemon::start(&p);

    drop_file(&p, "good-1.csv", GOOD);
    wait_settled(&p, "good-1.csv");
    drop_file(&p, "bad-1.csv", BROKEN);
    wait_count(&p, &hook, 1, "the firing notice");
    let firing = &hook.received()[0];
    assert_eq!(firing.method, "POST");
    assert_eq!(firing.path, "/hook");
    assert_eq!(firing.headers["x-caudal-token"], "s3cret");
    assert_eq!(firing.headers["content-type"], "application/json");
    let body = firing.json();
    assert_eq!(body["alert"], "orders_failing");
    assert_eq!(body["event"], "firing");
    assert_eq!(body["state"], "firing");
    assert_eq!(body["rule"], "a delivery of pipeline orders failed");
    assert_eq!(
        body["description"],
        "Orders stopped loading: check the producer."
    );
    assert_eq!(body["subjects"][0]["name"], "orders");
    let detail = body["subjects"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("bad-1.csv failed"), "{detail}");
    let url = body["url"].as_str().unwrap_or_default();
    assert!(
        url.starts_with("https://caudal.example.com/#/deliveries/"),
        "{url}"
    );

    wait_count(&p, &slack, 1, "the Slack notice");
    let text = slack.received()[0].json()["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text.starts_with("*[FIRING] orders_failing: a delivery of pipeline orders failed*"),
        "{text}"
    );
    assert!(text.contains("bad-1.csv failed"), "{text}");
    assert!(
        text.contains("<https://caudal.example.com/#/deliveries/"),
        "{text}"
    );

    // More failures while firing: silence, not a storm.
    drop_file(&p, "bad-2.csv", "id,name\n2,\"still broken\n");
    drop_file(&p, "bad-3.csv", "id,name\n3,\"broken again\n");
    wait_settled(&p, "bad-2.csv");
    wait_settled(&p, "bad-3.csv");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(hook.count(), 1, "{}", log(&p));
    assert_eq!(slack.count(), 1);
    let listed = alerts_json(&p);
    let a = alert(&listed, "orders_failing");
    assert_eq!(a["state"], "firing");
    assert!(a["since"].is_string());
    assert_eq!(a["last_notifications"][0]["status"], "sent");

    // A success resolves it, once.
    drop_file(&p, "good-2.csv", "id,name\n4,d\n");
    wait_count(&p, &hook, 2, "the resolved notice");
    let resolved = hook.received()[1].json();
    assert_eq!(resolved["event"], "resolved");
    assert_eq!(resolved["state"], "ok");
    assert_eq!(resolved["since"], body["since"], "the firing that ended");
    wait_count(&p, &slack, 2, "the Slack resolved notice");
    let text = slack.received()[1].json()["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(text.starts_with("*[RESOLVED] orders_failing"), "{text}");

    let run = p.run(&["alerts", "--history", "10"]);
    run.expect_code(0)
        .expect_mentions("orders_failing")
        .expect_mentions("OK since")
        .expect_mentions("last notice on team: resolved");
    assert_eq!(
        run.stdout.matches(" sent (1 attempts)").count(),
        4,
        "{}",
        run.stdout
    );
}

#[test]
fn freshness_fires_on_its_timer_and_a_restart_sends_nothing_twice() {
    let hook = Receiver::start(&[]);
    let p = project(&format!(
        r#"
[channels.team]
kind = "webhook"
url = "{}"

[alerts.orders_stale]
when = {{ no_delivery_for = "2s", pipeline = "orders" }}
notify = ["team"]
"#,
        hook.url
    ));
    let daemon = Daemon::start(&p);
    // Nothing arrives: the timer alone fires it.
    wait_count(&p, &hook, 1, "the freshness notice");
    let body = hook.received()[0].json();
    assert_eq!(body["event"], "firing");
    assert_eq!(body["alert"], "orders_stale");
    let detail = body["subjects"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("no delivery loaded since caudal started watching"),
        "{detail}"
    );

    // Killed while firing, restarted: still firing, no second notice.
    daemon.kill();
    let daemon = Daemon::start(&p);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        hook.count(),
        1,
        "a restart repeated the notice\n{}",
        log(&p)
    );
    assert_eq!(alert(&alerts_json(&p), "orders_stale")["state"], "firing");

    drop_file(&p, "fresh.csv", GOOD);
    wait_count(&p, &hook, 2, "the resolved notice");
    assert_eq!(hook.received()[1].json()["event"], "resolved");
    // Quiet again past the limit: it fires again, from the last delivery.
    wait_count(&p, &hook, 3, "the second firing");
    let again = hook.received()[2].json();
    assert_eq!(again["event"], "firing");
    let detail = again["subjects"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("last delivery loaded at"), "{detail}");
    drop(daemon);
}

#[test]
fn a_firing_alert_repeats_its_reminder_until_resolved() {
    let hook = Receiver::start(&[]);
    let p = project(&format!(
        r#"
[channels.team]
kind = "webhook"
url = "{}"

[alerts.orders_failing]
when = {{ delivery_failed = "orders" }}
notify = ["team"]
repeat = "2s"
"#,
        hook.url
    ));
    let _daemon = Daemon::start(&p);
    drop_file(&p, "bad.csv", BROKEN);
    wait_count(&p, &hook, 1, "the firing notice");
    wait_until("two reminders", Duration::from_secs(20), || {
        hook.count() >= 3
    });
    let notices: Vec<_> = hook.received().iter().map(|r| r.json()).collect();
    assert_eq!(notices[0]["event"], "firing");
    for reminder in &notices[1..3] {
        assert_eq!(reminder["event"], "reminder");
        assert_eq!(reminder["state"], "firing");
        assert_eq!(reminder["since"], notices[0]["since"]);
    }
    let gap = |a: &serde_json::Value, b: &serde_json::Value| {
        let t = |v: &serde_json::Value| {
            chrono::DateTime::parse_from_rfc3339(v["at"].as_str().unwrap_or_default())
                .expect("an RFC 3339 time")
        };
        (t(b) - t(a)).num_milliseconds()
    };
    let first_gap = gap(&notices[0], &notices[1]);
    assert!(
        (2000..4000).contains(&first_gap),
        "reminder after {first_gap} ms"
    );

    drop_file(&p, "good.csv", GOOD);
    wait_until("the resolved notice", Duration::from_secs(20), || {
        hook.received()
            .iter()
            .any(|r| r.json()["event"] == "resolved")
    });
    let count = hook.count();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        hook.count(),
        count,
        "reminders after it resolved\n{}",
        log(&p)
    );
}

#[test]
fn failed_sends_are_retried_and_a_failing_channel_shows_in_health_without_slowing_loads() {
    // The hook fails twice, then accepts; the dead channel never answers.
    let hook = Receiver::start(&[500, 503]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/hook", dead.local_addr().expect("addr"));
    drop(dead);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let p = project(&format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
anonymous = true

[channels.team]
kind = "webhook"
url = "{}"

[channels.dead]
kind = "webhook"
url = "{dead_url}"
timeout = "1s"

[alerts.orders_failing]
when = {{ delivery_failed = "*" }}
notify = ["team", "dead"]
repeat = "1h"
"#,
        hook.url
    ));
    let _daemon = Daemon::start(&p);
    let addr = format!("127.0.0.1:{port}");
    wait_until("the server", Duration::from_secs(20), || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    drop_file(&p, "bad.csv", BROKEN);
    // Attempt 1 at once, 2 after ~1 s, 3 after ~2 s more: the third is accepted.
    wait_count(&p, &hook, 3, "the notice, on its third attempt");
    let bodies: Vec<_> = hook.received().iter().map(|r| r.json()).collect();
    assert!(
        bodies
            .iter()
            .all(|b| b["event"] == "firing" && b["at"] == bodies[0]["at"])
    );

    let health = common::http::get(&addr, "/api/v1/health", None);
    assert_eq!(
        health.status, 200,
        "a failing channel does not make caudal unhealthy"
    );
    let h = health.json();
    assert_eq!(h["status"], "degraded");
    let component = |name: &str| {
        h["components"]
            .as_array()
            .and_then(|c| c.iter().find(|x| x["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no component {name} in {h}"))
    };
    assert_eq!(component("channel:team")["status"], "ok");
    assert_eq!(component("channel:dead")["status"], "failing");
    let detail = component("channel:dead")["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.starts_with("cannot connect to 127.0.0.1:"),
        "{detail}"
    );
    assert!(
        !detail.contains("/hook"),
        "the URL path may hold a secret: {detail}"
    );

    let alerts = common::http::get(&addr, "/api/v1/alerts", None);
    assert_eq!(alerts.status, 200);
    let list = alerts.json();
    let a = alert(&list, "orders_failing");
    assert_eq!(a["rule"], "a delivery of any pipeline failed");
    let by_channel = |c: &str| {
        a["last_notifications"]
            .as_array()
            .and_then(|l| l.iter().find(|n| n["channel"] == c).cloned())
            .unwrap_or_else(|| panic!("no notice on {c} in {a}"))
    };
    assert_eq!(by_channel("team")["status"], "sent");
    assert_eq!(by_channel("team")["attempts"], 3, "{}", log(&p));
    assert_eq!(by_channel("dead")["status"], "pending");
    assert!(by_channel("dead")["attempts"].as_u64().unwrap_or(0) >= 1);

    // Loads go on while the dead channel keeps retrying.
    drop_file(&p, "good.csv", GOOD);
    wait_until("the good file", Duration::from_secs(20), || {
        p.count("warehouse.db", "orders") == Some(2)
    });

    wait_until("the resolved notice", Duration::from_secs(20), || {
        hook.count() == 4
    });
    assert_eq!(hook.received()[3].json()["event"], "resolved");
}

#[test]
fn email_goes_out_over_plain_smtp_starttls_with_login_and_tls() {
    let plain = SmtpServer::start(Security::Plain, None);
    let starttls = SmtpServer::start(Security::StartTls, Some(("caudal", "pa55word")));
    let tls = SmtpServer::start(Security::Tls, None);
    let ca = common::smtp::fixtures().join("ca.pem");
    let ca = ca.to_str().expect("utf-8");
    let p = project(&format!(
        r#"
[channels.relay]
kind = "email"
smtp = "smtp://127.0.0.1:{}"
tls = "none"
from = "caudal@example.com"
to = ["data-oncall@example.com"]

[channels.oncall]
kind = "email"
smtp = "smtp://localhost:{}"
from = "caudal@example.com"
to = ["data-oncall@example.com", "Lead <lead@example.com>"]
username = "${{SMTP_USER}}"
password = "${{SMTP_PASSWORD}}"
ca_file = "{ca}"

[channels.secure]
kind = "email"
smtp = "smtps://localhost:{}"
from = "caudal@example.com"
to = "audit@example.com"
ca_file = "{ca}"

[alerts.orders_failing]
when = {{ delivery_failed = "orders" }}
notify = ["relay", "oncall", "secure"]
"#,
        plain.port, starttls.port, tls.port
    ));
    p.write(".env", "SMTP_USER=caudal\nSMTP_PASSWORD=pa55word\n");
    let _daemon = Daemon::start(&p);
    drop_file(&p, "bad.csv", BROKEN);
    for (name, server) in [("plain", &plain), ("starttls", &starttls), ("tls", &tls)] {
        wait_until(
            &format!("the {name} email"),
            Duration::from_secs(30),
            || !server.mails().is_empty(),
        );
    }
    let m = &plain.mails()[0];
    // Long header lines are folded.
    let data = m.data.replace("\r\n ", " ");
    assert!(!m.encrypted);
    assert_eq!(m.from, "caudal@example.com");
    assert_eq!(m.to, ["data-oncall@example.com"]);
    assert!(
        data.contains(
            "Subject: [caudal] [FIRING] orders_failing: a delivery of pipeline orders failed"
        ),
        "{data}"
    );
    assert!(data.contains("- orders: bad.csv failed"), "{data}");

    let m = &starttls.mails()[0];
    assert!(m.encrypted, "STARTTLS was not used");
    assert_eq!(m.user.as_deref(), Some("caudal"));
    assert_eq!(m.to, ["data-oncall@example.com", "lead@example.com"]);

    let m = &tls.mails()[0];
    assert!(m.encrypted);
    assert_eq!(m.to, ["audit@example.com"]);
    assert_eq!(
        plain.mails().len() + starttls.mails().len() + tls.mails().len(),
        3
    );
}

#[test]
fn rejected_rows_error_and_success_rates_fire_and_resolve_as_the_window_slides() {
    let p = project_with(
        r#"on_invalid = "quarantine""#,
        r#"
[channels.log]
kind = "log"

[alerts.rejects]
when = { rejected_rows_over = "20%", window = "8s", pipeline = "orders" }
notify = ["log"]

[alerts.errors]
when = { error_rate_over = "40%", window = "8s", min_deliveries = 3 }
notify = ["log"]

[alerts.successes]
when = { success_rate_under = "70%", window = "8s", pipeline = "*", min_deliveries = 3 }
notify = ["log"]
"#,
    );
    let _daemon = Daemon::start(&p);
    // 10 rows, then 10 rows of which 5 break the contract: 5 of 20 rejected (25%).
    let rows = |from: u32, bad: u32| {
        let mut s = String::from("id,name\n");
        for i in from..from + 10 {
            if i < from + bad {
                s.push_str(&format!("x{i},bad\n"));
            } else {
                s.push_str(&format!("{i},ok\n"));
            }
        }
        s
    };
    drop_file(&p, "a.csv", &rows(0, 0));
    wait_settled(&p, "a.csv");
    drop_file(&p, "b.csv", &rows(100, 5));
    wait_settled(&p, "b.csv");
    // One broken file in three: 33% failed (errors stay quiet), 67% succeeded (fires).
    drop_file(&p, "c.csv", BROKEN);
    wait_settled(&p, "c.csv");
    wait_until("the rates", Duration::from_secs(10), || {
        let all = alerts_json(&p);
        alert(&all, "rejects")["state"] == "firing" && alert(&all, "successes")["state"] == "firing"
    });
    let all = alerts_json(&p);
    assert_eq!(alert(&all, "errors")["state"], "ok");
    let detail = alert(&all, "rejects")["subjects"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.starts_with("5 of 20 rows rejected (25%)"),
        "{detail}"
    );
    let detail = alert(&all, "successes")["subjects"][0]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.starts_with("2 of 3 deliveries succeeded (66.7%) in the last 8s"),
        "{detail}"
    );

    drop_file(&p, "d.csv", "id,name\n9,\"broken\n");
    wait_until("the error rate", Duration::from_secs(10), || {
        alert(&alerts_json(&p), "errors")["state"] == "firing"
    });
    // Nothing more arrives: the window slides past them and each resolves.
    wait_until("the window to pass", Duration::from_secs(25), || {
        let all = alerts_json(&p);
        ["rejects", "errors", "successes"]
            .iter()
            .all(|a| alert(&all, a)["state"] == "ok")
    });
    let history = p.run(&["alerts", "--history", "20"]);
    let text = &history.stdout;
    for a in ["rejects", "errors", "successes"] {
        let firing = text
            .lines()
            .filter(|l| l.contains(&format!(" {a} ")) && l.contains(" firing "))
            .count();
        let resolved = text
            .lines()
            .filter(|l| l.contains(&format!(" {a} ")) && l.contains(" resolved "))
            .count();
        assert_eq!((firing, resolved), (1, 1), "{a}:\n{text}");
    }
    // The log channel is caudal's own log, in plain text when it goes to a file.
    assert!(!log(&p).contains('\x1b'), "colour codes in a log file");
    assert!(
        log(&p).contains("more than 20% of the rows of pipeline orders rejected in 8s"),
        "{}",
        log(&p)
    );
}

#[test]
fn a_job_failing_twice_in_a_row_fires_once_and_timed_out_runs_and_missed_ticks_fire_too() {
    let p = project(
        r#"
[channels.log]
kind = "log"

[jobs.broken]
every = "1s"
kind = "metrics"
period = "none"
metrics = [{ name = "n", source = "warehouse", sql = "SELECT count(*) AS value FROM no_such_table" }]

[jobs.nightly]
schedule = "* * * * * *"
kind = "metrics"
period = "none"
misfire_grace = "1s"
catch_up = "none"
metrics = [{ name = "orders", source = "warehouse", sql = "SELECT count(*) AS value FROM orders" }]

[jobs.slow]
every = "1s"
kind = "metrics"
period = "none"
timeout = "50ms"
metrics = [{ name = "big", source = "warehouse", sql = "SELECT count(*) AS value FROM range(1, 3000000000)" }]

[alerts.jobs_failing]
when = { job_failed = "broken", consecutive = 2 }
notify = ["log"]

[alerts.slow_job]
when = { job_timed_out = "slow" }
notify = ["log"]

[alerts.nightly_missed]
when = { job_missed = "nightly" }
notify = ["log"]
"#,
    );
    // One loaded file, so the metric SQL of the healthy job has a table to read.
    p.write("seed.csv", GOOD);
    p.load("seed.csv", "orders", &[]).expect_code(0);
    let daemon = Daemon::start(&p);
    wait_until("the job alert", Duration::from_secs(20), || {
        alert(&alerts_json(&p), "jobs_failing")["state"] == "firing"
    });
    // It keeps failing: still one notice.
    std::thread::sleep(Duration::from_secs(3));
    let all = alerts_json(&p);
    let a = alert(&all, "jobs_failing");
    assert_eq!(a["rule"], "2 runs in a row of job broken failed");
    assert_eq!(a["subjects"][0]["name"], "broken");
    let detail = a["subjects"][0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("in a row; last: run"), "{detail}");
    let history = p.run(&["alerts", "--history", "50"]).stdout;
    assert_eq!(
        history
            .lines()
            .filter(|l| l.contains(" jobs_failing ") && l.contains(" firing "))
            .count(),
        1,
        "{history}"
    );
    assert_eq!(alert(&all, "nightly_missed")["state"], "ok");
    let slow = alert(&all, "slow_job");
    assert_eq!(slow["state"], "firing", "{slow}");
    assert_eq!(slow["rule"], "a run of job slow timed out");
    let detail = slow["subjects"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("timed_out: cancelled after the timeout of 50ms"),
        "{detail}"
    );

    // Down for a few seconds: the nightly ticks in between are missed.
    daemon.kill();
    std::thread::sleep(Duration::from_secs(3));
    let _daemon = Daemon::start(&p);
    // The missed ticks fire it; the next tick that runs resolves it.
    let notices = |event: &str| {
        p.run(&["alerts", "--history", "100"])
            .stdout
            .lines()
            .filter(|l| l.contains(" nightly_missed ") && l.contains(&format!(" {event} ")))
            .count()
    };
    wait_until(
        "the missed-run alert to fire and resolve",
        Duration::from_secs(20),
        || notices("resolved") == 1,
    );
    assert_eq!(notices("firing"), 1);
}

#[test]
fn alert_configuration_mistakes_are_reported_with_their_place_and_a_fix() {
    let p = project(
        r#"
[channels.team]
kind = "webhook"
url = "ftp://example.com/hook"

[channels.mail]
kind = "email"
smtp = "smtp://user:pw@mail.example.com"
from = "not an address"
to = []

[alerts.a]
when = { delivery_failed = "ordrs" }
notify = ["teem"]

[alerts.b]
when = { rejected_rows_over = "5 percent", window = "1h" }
notify = ["team"]

[alerts.c]
when = { delivery_failed = "*", no_delivery_for = "1h" }
notify = ["team"]

[alerts.d]
when = { error_rate_over = "150%", window = "1h", consecutive = 3 }
notify = ["team"]

[alerts.e]
when = { no_delivery_for = "soon" }
notify = ["team"]
repeat = "0s"

[channels.relay]
kind = "email"
smtp = "smtp://mail.example.com"
tls = "none"
from = "caudal@example.com"
to = ["ops@example.com"]
username = "caudal"
password = "secret"

[channels.private]
kind = "email"
smtp = "smtps://mail.example.com"
from = "caudal@example.com"
to = ["ops@example.com"]
ca_file = "contract.toml"
timeout = "2h"

[alerts.f]
when = { success_rate_under = "0%", window = "1h" }
notify = ["relay", "relay"]

[alerts.g]
when = { error_rate_over = "5%", window = "100000000d" }
notify = ["relay"]
"#,
    );
    let run = p.run(&["validate"]);
    run.expect_code(2).expect_no_panic();
    for needle in [
        "is not an http(s) URL",
        "credentials in the SMTP URL",
        "watches pipeline `ordrs`, which is not declared",
        "did you mean `orders`?",
        "notifies `teem`, which is not a declared channel",
        "is not a percentage: \"5 percent\"",
        "has 2 conditions",
        "must be between 0% and 100%",
        "`consecutive` does not apply to `error_rate_over`",
        "is not a duration: \"soon\"",
        "`repeat` must be between 1s and 400d",
        "a password would travel in clear text",
        "is not a PEM certificate",
        "`timeout` must be between 100ms and 5m",
        "success_rate_under` = 0 can never be met",
        "`window` must be between 1s and 400d",
        "notifies `relay` twice",
    ] {
        run.expect_mentions(needle);
    }
    run.expect_mentions("caudal.toml:");

    // A secret missing from the environment is named, with how to set it.
    let p = project(
        r#"
[channels.team]
kind = "webhook"
url = "${ALERT_WEBHOOK_URL}"
"#,
    );
    p.run(&["validate"])
        .expect_code(2)
        .expect_mentions("ALERT_WEBHOOK_URL");
}

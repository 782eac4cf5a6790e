//! `caudal alerts`: each alert's state and its newest notices, from the ledger (so it works
//! while the daemon runs).

use caudal::config::Project;
use caudal::error::{Error, Result};
use caudal::ledger::Ledger;

pub fn alerts(project: &Project, json: bool, history: usize) -> Result<u8> {
    let ledger = Ledger::open(&project.state_dir)?;
    let statuses = caudal::alerts::statuses(project, &ledger)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&statuses).map_err(|e| Error::Internal(e.to_string()))?
        );
        return Ok(0);
    }
    if statuses.is_empty() {
        println!("no alerts are configured; see [alerts.NAME] in the README");
        return Ok(0);
    }
    for s in &statuses {
        let since = s
            .since
            .as_deref()
            .map(|t| format!(" since {t}"))
            .unwrap_or_default();
        println!("{:<24} {}{since}", s.name, s.state.to_uppercase());
        println!("    when {} → {}", s.rule, s.notify.join(", "));
        for subject in &s.subjects {
            println!("    {}: {}", subject.name, subject.detail);
        }
        for n in &s.last_notifications {
            let outcome = match (n.status.as_str(), &n.last_error) {
                ("sent", _) => format!("sent {}", n.sent_at.as_deref().unwrap_or("")),
                ("pending", Some(e)) => format!("retrying after {} attempts: {e}", n.attempts),
                ("pending", None) => "waiting to be sent".into(),
                (_, e) => format!(
                    "gave up after {} attempts: {}",
                    n.attempts,
                    e.as_deref().unwrap_or("")
                ),
            };
            println!(
                "    last notice on {}: {} at {}, {outcome}",
                n.channel, n.event, n.created_at
            );
        }
    }
    if history > 0 {
        println!("\nlast {history} notices:");
        for n in ledger.notifications(None, history)? {
            println!(
                "  {}  {:<20} {:<9} {:<12} {} ({} attempts){}",
                n.created_at,
                n.alert,
                n.event,
                n.channel,
                n.status,
                n.attempts,
                n.last_error.map(|e| format!(": {e}")).unwrap_or_default()
            );
        }
    }
    let firing = statuses.iter().filter(|s| s.state == "firing").count();
    println!(
        "\n{} alerts, {firing} firing{}",
        statuses.len(),
        if statuses.iter().any(|s| s.state == "unknown") {
            "; `unknown` ones have not been evaluated yet (`caudal run` evaluates them)"
        } else {
            ""
        }
    );
    Ok(0)
}

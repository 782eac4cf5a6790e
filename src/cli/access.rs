//! `caudal token create|list|revoke` and `caudal audit`.

use caudal::config::Project;
use caudal::error::{Error, Result};
use caudal::ledger::{Ledger, Role};

pub fn create(project: &Project, name: &str, role: &str) -> Result<u8> {
    let Some(role) = Role::parse(role) else {
        return Err(Error::usage(format!(
            "role \"{role}\" is not one of viewer, analyst, admin"
        )));
    };
    let ledger = Ledger::open(&project.state_dir)?;
    let token = ledger.create_token(name, role)?;
    eprintln!(
        "token `{name}` ({}) created; it is shown once, keep it now (only its SHA-256 is stored):",
        role.as_str()
    );
    println!("{token}");
    Ok(0)
}

pub fn list(project: &Project) -> Result<u8> {
    let tokens = Ledger::open(&project.state_dir)?.tokens()?;
    if tokens.is_empty() {
        println!(
            "no tokens; create one with `caudal token create --name NAME --role viewer|analyst|admin`"
        );
    }
    for t in tokens {
        println!(
            "{:<24} {:<8} created {}{}",
            t.name,
            t.role.as_str(),
            t.created_at,
            t.revoked_at
                .map(|r| format!(", revoked {r}"))
                .unwrap_or_default()
        );
    }
    Ok(0)
}

pub fn revoke(project: &Project, name: &str) -> Result<u8> {
    if Ledger::open(&project.state_dir)?.revoke_token(name)? {
        println!("token `{name}` revoked");
        Ok(0)
    } else {
        Err(Error::usage(format!("no live token named `{name}`")))
    }
}

pub fn audit(project: &Project, limit: usize, json: bool) -> Result<u8> {
    let entries = Ledger::open(&project.state_dir)?.audit_log(limit)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).map_err(|e| Error::Internal(e.to_string()))?
        );
        return Ok(0);
    }
    if entries.is_empty() {
        println!("the audit log is empty");
    }
    for e in entries {
        println!(
            "{}  {:<16} {:<8} {:<8} {:<10} {}  ({})",
            e.at,
            e.token.as_deref().unwrap_or("-"),
            e.role.as_deref().unwrap_or("-"),
            e.action,
            e.outcome,
            e.resource,
            e.client.as_deref().unwrap_or("-")
        );
    }
    Ok(0)
}

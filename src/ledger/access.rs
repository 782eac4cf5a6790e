//! API tokens (only their SHA-256 is kept) and the audit log of what callers did.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Ledger, now};
use crate::error::{Context, Error, Result};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    token TEXT,
    role TEXT,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    outcome TEXT NOT NULL,
    client TEXT
);
";

/// What a token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read everything but the audit log and tokens.
    Viewer,
    /// Also query, trigger jobs and upload files.
    Analyst,
    /// Everything, tokens and the audit log included.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "analyst" => Role::Analyst,
            "admin" => Role::Admin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub token: Option<String>,
    pub role: Option<String>,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub client: Option<String>,
}

pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Ledger {
    /// A new token: returned once, only its SHA-256 is stored.
    pub fn create_token(&self, name: &str, role: Role) -> Result<String> {
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
            return Err(Error::usage("a token name is 1 to 64 printable characters"));
        }
        let secret: [u8; 32] = rand::random();
        let token = format!("cdl_{}", hex::encode(secret));
        let inserted = self
            .conn
            .execute(
                "INSERT INTO tokens (name, role, sha256, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO NOTHING",
                params![name, role.as_str(), token_digest(&token), now()],
            )
            .context(|| "storing the token".into())?;
        if inserted == 0 {
            return Err(Error::usage(format!(
                "a token named `{name}` exists already; revoke it or choose another name"
            )));
        }
        Ok(token)
    }

    pub fn revoke_token(&self, name: &str) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                params![name, now()],
            )
            .context(|| "revoking the token".into())?;
        Ok(n == 1)
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, role, created_at, revoked_at FROM tokens ORDER BY name")
            .context(|| "reading tokens".into())?;
        stmt.query_map([], |r| {
            Ok(TokenInfo {
                name: r.get(0)?,
                role: Role::parse(&r.get::<_, String>(1)?).unwrap_or(Role::Viewer),
                created_at: r.get(2)?,
                revoked_at: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
        .context(|| "reading tokens".into())
    }

    /// The name and role of a live token.
    pub fn authenticate(&self, token: &str) -> Result<Option<(String, Role)>> {
        let found: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT name, role FROM tokens WHERE sha256 = ?1 AND revoked_at IS NULL",
                [token_digest(token)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .context(|| "checking a token".into())?;
        Ok(found.and_then(|(name, role)| Role::parse(&role).map(|r| (name, r))))
    }

    pub fn audit(
        &self,
        token: Option<&str>,
        role: Option<Role>,
        action: &str,
        resource: &str,
        outcome: &str,
        client: Option<&str>,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO audit (at, token, role, action, resource, outcome, client) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![now(), token, role.map(Role::as_str), action, resource, outcome, client],
            )
            .context(|| "writing the audit log".into())?;
        Ok(())
    }

    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, at, token, role, action, resource, outcome, client FROM audit ORDER BY id DESC LIMIT ?1")
            .context(|| "reading the audit log".into())?;
        stmt.query_map([limit as i64], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                token: r.get(2)?,
                role: r.get(3)?,
                action: r.get(4)?,
                resource: r.get(5)?,
                outcome: r.get(6)?,
                client: r.get(7)?,
            })
        })
        .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
        .context(|| "reading the audit log".into())
    }
}

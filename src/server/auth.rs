//! Who is calling: `Authorization: Bearer <token>` checked against the ledger's token hashes.
//! Missing or unknown → 401; a role too low → 403. Anonymous callers are viewers, and only
//! when `[server] anonymous = true`.

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode, header};

use super::Shared;
use super::problem::{ApiError, ApiResult};
use crate::ledger::Role;

#[derive(Debug, Clone)]
pub struct Caller {
    pub name: Option<String>,
    pub role: Role,
    pub client: Option<String>,
}

pub fn authorize(
    state: &Shared,
    headers: &HeaderMap,
    client: Option<SocketAddr>,
    needed: Role,
) -> ApiResult<Caller> {
    let client = client.map(|c| c.ip().to_string());
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let caller = match token {
        Some(token) => {
            let found = state.ledger()?.authenticate(token)?;
            match found {
                Some((name, role)) => Caller {
                    name: Some(name),
                    role,
                    client,
                },
                None => {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "unknown or revoked token",
                    ));
                }
            }
        }
        None if state.config.anonymous => Caller {
            name: None,
            role: Role::Viewer,
            client,
        },
        None => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <token>; create one with `caudal token create --name NAME --role viewer|analyst|admin`",
            ));
        }
    };
    if caller.role < needed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs the {} role; the token has {}",
                needed.as_str(),
                caller.role.as_str()
            ),
        ));
    }
    Ok(caller)
}

/// Record an action in the audit log; a failure to record is logged, not returned.
pub fn audit(state: &Shared, caller: &Caller, action: &str, resource: &str, outcome: &str) {
    let recorded = state.ledger().and_then(|l| {
        l.audit(
            caller.name.as_deref(),
            Some(caller.role),
            action,
            resource,
            outcome,
            caller.client.as_deref(),
        )
    });
    if let Err(e) = recorded {
        tracing::error!(error = %e, action, resource, "could not write the audit log");
    }
}

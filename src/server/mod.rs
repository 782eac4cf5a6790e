//! The HTTP server of `caudal run`: a JSON API under `/api/v1` (OpenAPI 3.1 generated from
//! these handlers, Swagger UI served from the binary), Prometheus metrics, and tokens with
//! roles; every mutating request and every query goes into the audit log.

mod api;
mod auth;
mod problem;
mod query;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::config::{Project, ServerConfig};
use crate::error::{Error, Result};

pub use telemetry::Telemetry;

/// What the daemon's parts say about themselves, for `/health`.
#[derive(Default)]
pub struct DaemonStatus {
    pub watching: AtomicBool,
    pub scheduler: AtomicBool,
    pub draining: AtomicBool,
}

/// Everything a handler needs.
pub struct AppState {
    pub project: Arc<Project>,
    pub config: ServerConfig,
    pub status: Arc<DaemonStatus>,
    pub telemetry: Arc<Telemetry>,
    pub started: Instant,
    /// Open ledger connections, reused across requests (opening one costs more than most
    /// queries the API makes).
    pub ledgers: std::sync::Mutex<Vec<crate::ledger::Ledger>>,
    /// Job triggers running now: each is a thread with its own runtime, so they are capped.
    pub triggered: std::sync::atomic::AtomicUsize,
}

/// At most this many triggered job runs at once; more get 429.
pub const MAX_TRIGGERED: usize = 4;

/// A ledger connection from the pool, returned to it when dropped.
pub struct PooledLedger<'a> {
    state: &'a AppState,
    ledger: Option<crate::ledger::Ledger>,
}

impl std::ops::Deref for PooledLedger<'_> {
    type Target = crate::ledger::Ledger;

    fn deref(&self) -> &Self::Target {
        match &self.ledger {
            Some(l) => l,
            None => unreachable!("a pooled ledger is only emptied when dropped"),
        }
    }
}

impl Drop for PooledLedger<'_> {
    fn drop(&mut self) {
        if let (Some(l), Ok(mut pool)) = (self.ledger.take(), self.state.ledgers.lock())
            && pool.len() < 16
        {
            pool.push(l);
        }
    }
}

impl AppState {
    pub fn ledger(&self) -> Result<PooledLedger<'_>> {
        let pooled = self.ledgers.lock().ok().and_then(|mut p| p.pop());
        let ledger = match pooled {
            Some(l) => l,
            None => crate::ledger::Ledger::open_reader(&self.project.state_dir)?,
        };
        Ok(PooledLedger {
            state: self,
            ledger: Some(ledger),
        })
    }
}

pub type Shared = Arc<AppState>;

async fn count_requests(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    state.telemetry.add(
        "caudal_http_requests_total",
        &[("method", &method), ("route", &route), ("status", &status)],
        1.0,
    );
    state.telemetry.observe(
        "caudal_http_request_duration_seconds",
        &[("route", &route)],
        started.elapsed().as_secs_f64(),
    );
    response
}

/// CORS only for the origins `[server] cors_origins` names; other origins get no CORS headers,
/// so browsers keep other sites' pages from reading the API.
async fn cors(State(state): State<Shared>, request: Request, next: Next) -> Response {
    use axum::http::{HeaderValue, Method, StatusCode, header};
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| state.config.cors_origins.iter().any(|allowed| allowed == o))
        .map(str::to_string);
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    let mut response = if request.method() == Method::OPTIONS {
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        next.run(request).await
    };
    if let Ok(value) = HeaderValue::from_str(&origin) {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

pub fn router(state: Shared) -> Router {
    let api: Router = api::routes(state.clone())
        .fallback(api::not_found)
        .with_state(state.clone());
    api.merge(api::swagger())
        .layer(axum::middleware::from_fn_with_state(state.clone(), cors))
        .layer(axum::middleware::from_fn_with_state(state, count_requests))
}

/// Serve until `stop()` turns true; `on_ready` hears the bound address.
pub fn serve(
    state: Shared,
    stop: impl Fn() -> bool + Send + 'static,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("http")
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the HTTP runtime", e))?;
    let listen = state.config.listen;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            Error::usage(format!(
                "cannot serve HTTP on {listen}: {e}; change [server] listen in caudal.toml"
            ))
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::io("reading the listening address", e))?;
        on_ready(bound);
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                while !stop() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                state.status.draining.store(true, Ordering::SeqCst);
            })
            .await
            .map_err(|e| Error::io("serving HTTP", e))
    })
}

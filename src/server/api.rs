//! The `/api/v1` handlers, each annotated for the OpenAPI document.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::Shared;
use super::auth::{Caller, audit, authorize};
use super::problem::{ApiError, ApiResult, ErrorBody, P, Q};
use crate::alerts::AlertStatus;
use crate::config::{Destination, JobKind};
use crate::jobs::RunRequest;
use crate::jobs::metrics::CalculatedValue;
use crate::ledger::{AuditEntry, DeliveryFilter, DeliveryRecord, JobRun, Ledger, Role, TokenInfo};

type Client = ConnectInfo<SocketAddr>;

#[derive(OpenApi)]
#[openapi(
    info(title = "caudal", description = "Pipelines, deliveries, jobs and metrics of a caudal project."),
    paths(
        health, list_pipelines, pipeline_detail, upload_file, list_deliveries, delivery_detail,
        list_jobs, trigger_job, list_runs, run_detail, calculated_metrics, run_query, audit_log,
        list_tokens, revoke_token, list_alerts
    ),
    components(schemas(ErrorBody, DeliveryRecord, JobRun, TokenInfo, AuditEntry, AlertStatus)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

pub fn routes(state: Shared) -> Router<Shared> {
    let max_body = state.config.max_body_bytes;
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/pipelines", get(list_pipelines))
        .route("/api/v1/pipelines/{name}", get(pipeline_detail))
        .route(
            "/api/v1/pipelines/{name}/files",
            post(upload_file).layer(DefaultBodyLimit::max(max_body)),
        )
        .route("/api/v1/deliveries", get(list_deliveries))
        .route("/api/v1/deliveries/{id}", get(delivery_detail))
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{name}/trigger", post(trigger_job))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(run_detail))
        .route("/api/v1/metrics/calculated", get(calculated_metrics))
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/query", post(run_query))
        .route("/api/v1/audit", get(audit_log))
        .route("/api/v1/tokens", get(list_tokens))
        .route("/api/v1/tokens/{name}", delete(revoke_token))
        .route("/metrics", get(prometheus))
        .route("/", get(dashboard_page))
        .route("/assets/app.js", get(dashboard_script))
        .route("/assets/app.css", get(dashboard_style))
        .layer(DefaultBodyLimit::max(max_body.min(1024 * 1024)))
}

/// Swagger UI, its files compiled into the binary.
pub fn swagger() -> Router {
    swagger_ui_dist::generate_routes(swagger_ui_dist::ApiDefinition {
        uri_prefix: "/api/v1/docs",
        api_definition: swagger_ui_dist::OpenApiSource::Uri("/api/v1/openapi.json"),
        title: Some("caudal API"),
    })
}

/// The dashboard: a page and a little JavaScript inside the binary; it calls this API with the
/// token the user gives it once (kept in the browser).
async fn dashboard_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
            ),
        ],
        include_str!("assets/index.html"),
    )
        .into_response()
}

async fn dashboard_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        include_str!("assets/app.js"),
    )
        .into_response()
}

async fn dashboard_style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        include_str!("assets/app.css"),
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API is described at /api/v1/openapi.json")
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_json().unwrap_or_default(),
    )
        .into_response()
}

/// Database work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "a worker failed",
        )
    })?
}

fn reader(state: &Shared) -> ApiResult<super::PooledLedger<'_>> {
    Ok(state.ledger()?)
}

/// A path under the project shown relative to it: clients need no internal paths.
fn relative(state: &Shared, path: &str) -> String {
    std::path::Path::new(path)
        .strip_prefix(&state.project.root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| {
            std::path::Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        })
}

fn public(state: &Shared, mut d: DeliveryRecord) -> DeliveryRecord {
    d.source = relative(state, &d.source);
    d.error = d.error.map(|e| crate::error::strip_paths(&e));
    d.report = d.report.map(|r| relative(state, &r));
    d
}

#[derive(Serialize, ToSchema)]
pub struct Component {
    pub name: String,
    /// ok | down | failing (an alert channel whose last send failed)
    pub status: String,
    pub detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// ok | degraded (an alert channel is failing; still 200) | down | draining
    pub status: String,
    pub uptime_s: u64,
    pub components: Vec<Component>,
}

/// Overall status and each component; 503 when one is down or while stopping, 200 with
/// `degraded` when only an alert channel is failing. No token needed.
#[utoipa::path(get, path = "/api/v1/health", security(()), responses(
    (status = 200, body = Health), (status = 503, body = Health)))]
async fn health(State(state): State<Shared>) -> Response {
    let s = state.clone();
    let components = blocking(move || {
        let mut out = Vec::new();
        let ledger = s.ledger().and_then(|l| l.recent(None, 1));
        out.push(Component {
            name: "ledger".into(),
            status: if ledger.is_ok() { "ok" } else { "down" }.into(),
            detail: ledger.err().map(|e| e.to_string()),
        });
        for (name, dest) in &s.project.destinations {
            if let Destination::Sqlite { path } = dest {
                let ok = crate::sink::open_connection(path)
                    .and_then(|c| {
                        c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                            .map_err(|e| crate::error::Error::Internal(e.to_string()))
                    })
                    .is_ok();
                out.push(Component {
                    name: format!("warehouse:{name}"),
                    status: if ok { "ok" } else { "down" }.into(),
                    detail: None,
                });
            }
        }
        if let Ok(ledger) = s.ledger() {
            for name in s.project.channels.keys() {
                let failure = ledger.channel_failure(name).ok().flatten();
                out.push(Component {
                    name: format!("channel:{name}"),
                    status: if failure.is_some() { "failing" } else { "ok" }.into(),
                    detail: failure,
                });
            }
        }
        Ok(out)
    })
    .await
    .unwrap_or_default();
    let mut components = components;
    let watching = state.status.watching.load(Ordering::SeqCst);
    components.push(Component {
        name: "watchers".into(),
        status: if watching { "ok" } else { "down" }.into(),
        detail: Some(format!("{} folders", state.project.pipelines.len())),
    });
    if !state.project.jobs.is_empty() {
        let scheduling = state.status.scheduler.load(Ordering::SeqCst);
        components.push(Component {
            name: "scheduler".into(),
            status: if scheduling { "ok" } else { "down" }.into(),
            detail: Some(format!("{} jobs", state.project.jobs.len())),
        });
    }
    let draining = state.status.draining.load(Ordering::SeqCst);
    let down = components.iter().any(|c| c.status == "down");
    let failing = components.iter().any(|c| c.status == "failing");
    let status = if draining {
        "draining"
    } else if down {
        "down"
    } else if failing {
        "degraded"
    } else {
        "ok"
    };
    // An alert channel that fails does not make caudal unable to serve or load.
    let code = if status == "ok" || status == "degraded" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: status.into(),
        uptime_s: state.started.elapsed().as_secs(),
        components,
    };
    (code, Json(body)).into_response()
}

#[derive(Serialize, ToSchema)]
pub struct PipelineSummary {
    pub name: String,
    /// The watched folder, relative to the project.
    pub folder: String,
    pub format: Option<String>,
    /// The contract's columns (empty: inferred).
    pub contract_columns: Vec<String>,
    pub on_invalid: String,
    /// `destination.table` for each load.
    pub loads: Vec<String>,
    pub files_waiting: usize,
    pub rows_today: u64,
    pub rejects_today: u64,
    pub last_deliveries: Vec<DeliveryRecord>,
}

fn summary(state: &Shared, ledger: &Ledger, name: &str, last: usize) -> ApiResult<PipelineSummary> {
    let Some(p) = state.project.pipelines.get(name) else {
        return Err(ApiError::not_found(format!("no pipeline named `{name}`")));
    };
    let today = chrono::Utc::now().format("%Y-%m-%dT00:00:00").to_string();
    let (rows_today, rejects_today) = ledger.totals_since(name, &today)?;
    Ok(PipelineSummary {
        name: p.name.clone(),
        folder: relative(state, &p.source.path.display().to_string()),
        format: p.source.format.map(|f| format!("{f:?}").to_lowercase()),
        contract_columns: p
            .contract
            .as_ref()
            .map(|c| c.columns.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default(),
        on_invalid: format!("{:?}", p.on_invalid).to_lowercase(),
        loads: p
            .loads
            .iter()
            .map(|l| format!("{}.{}", l.into, l.table))
            .collect(),
        files_waiting: crate::pipeline::files_in(&p.source.path, p)
            .map(|f| f.len())
            .unwrap_or(0),
        rows_today,
        rejects_today,
        last_deliveries: ledger
            .recent(Some(name), last)?
            .into_iter()
            .map(|d| public(state, d))
            .collect(),
    })
}

/// Every pipeline with its last deliveries and today's rows and rejects.
#[utoipa::path(get, path = "/api/v1/pipelines", responses(
    (status = 200, body = Vec<PipelineSummary>), (status = 401, body = ErrorBody)))]
async fn list_pipelines(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<PipelineSummary>>> {
    authorize(&state, &headers, Some(client), Role::Viewer)?;
    let s = state.clone();
    blocking(move || {
        let ledger = reader(&s)?;
        s.project
            .pipelines
            .keys()
            .map(|name| summary(&s, &ledger, name, 5))
            .collect::<ApiResult<Vec<_>>>()
    })
    .await
    .map(Json)
}

/// One pipeline: source, contract, last 20 deliveries, rows today, rejects.
#[utoipa::path(get, path = "/api/v1/pipelines/{name}", params(("name" = String, Path)),
    responses((status = 200, body = PipelineSummary), (status = 404, body = ErrorBody)))]
async fn pipeline_detail(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
    P(name): P<String>,
) -> ApiResult<Json<PipelineSummary>> {
    authorize(&state, &headers, Some(client), Role::Viewer)?;
    let s = state.clone();
    blocking(move || summary(&s, &*reader(&s)?, &name, 20))
        .await
        .map(Json)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The file's name in the pipeline's folder, e.g. `sales_2026-11-25.csv`.
    pub filename: String,
}

#[derive(Serialize, ToSchema)]
pub struct Uploaded {
    pub pipeline: String,
    /// Where the file was placed, relative to the project; the daemon loads it from there.
    pub path: String,
    pub bytes: usize,
}

/// Authorize a mutating request, recording refusals in the audit log too.
fn authorize_change(
    state: &Shared,
    headers: &HeaderMap,
    client: SocketAddr,
    needed: Role,
    action: &str,
    resource: &str,
) -> ApiResult<Caller> {
    authorize(state, headers, Some(client), needed).inspect_err(|e| {
        let anonymous = Caller {
            name: None,
            role: Role::Viewer,
            client: Some(client.ip().to_string()),
        };
        audit(
            state,
            &anonymous,
            action,
            resource,
            &format!("denied: {}", e.code),
        );
    })
}

/// Upload a file into a pipeline's folder (the body is the file); it is loaded like any
/// file dropped there.
#[utoipa::path(post, path = "/api/v1/pipelines/{name}/files",
    params(("name" = String, Path), UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 202, body = Uploaded), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
async fn upload_file(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
    P(name): P<String>,
    Q(params): Q<UploadParams>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    let resource = format!("pipelines/{name}/files/{}", params.filename);
    let caller = authorize_change(&state, &headers, client, Role::Analyst, "upload", &resource)?;
    let s = state.clone();
    let result = blocking(move || {
        let Some(p) = s.project.pipelines.get(&name) else {
            return Err(ApiError::not_found(format!("no pipeline named `{name}`")));
        };
        let file = params.filename.trim();
        let valid = !file.is_empty()
            && file.len() <= 255
            && !file.contains(['/', '\\', '\0'])
            && !crate::source::is_ignored_name(file)
            && crate::source::matches_pattern(file, p.source.pattern.as_deref(), p.source.format);
        if !valid {
            return Err(ApiError::bad_request(format!(
                "`{file}` is not a file name this pipeline takes (no folders, not hidden or temporary, matching its pattern and format)"
            )));
        }
        if body.is_empty() {
            return Err(ApiError::bad_request("the body is empty; send the file's bytes"));
        }
        std::fs::create_dir_all(&p.source.path)
            .map_err(|e| crate::error::Error::io("creating the pipeline's folder", e))?;
        // Written under a hidden name, then renamed: the watcher never sees half a file.
        let tmp = p.source.path.join(format!(".upload-{:016x}.tmp", rand::random::<u64>()));
        std::fs::write(&tmp, &body).map_err(|e| crate::error::Error::io("writing the upload", e))?;
        let mut target = p.source.path.join(file);
        let mut n = 1;
        while target.exists() {
            let path = std::path::Path::new(file);
            let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
            target = p.source.path.join(format!("{stem}.{n}{ext}"));
            n += 1;
        }
        std::fs::rename(&tmp, &target)
            .map_err(|e| crate::error::Error::io("placing the upload", e))?;
        Ok(Uploaded {
            pipeline: name,
            path: relative(&s, &target.display().to_string()),
            bytes: body.len(),
        })
    })
    .await;
    audit(
        &state,
        &caller,
        "upload",
        &resource,
        if result.is_ok() { "accepted" } else { "failed" },
    );
    result.map(|u| (StatusCode::ACCEPTED, Json(u)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    pub pipeline: Option<String>,
    /// running | loaded | rejected | failed | duplicate | error
    pub status: Option<String>,
    /// RFC 3339: deliveries started at or after.
    pub since: Option<String>,
    /// 1 to 1000; default 50.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryRecord>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<i64>,
}

/// Deliveries, newest first, filtered and paged by cursor.
#[utoipa::path(get, path = "/api/v1/deliveries", params(DeliveryParams),
    responses((status = 200, body = DeliveryPage), (status = 400, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
    Q(params): Q<DeliveryParams>,
) -> ApiResult<Json<DeliveryPage>> {
    authorize(&state, &headers, Some(client), Role::Viewer)?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    if let Some(since) = &params.since
        && chrono::DateTime::parse_from_rfc3339(since).is_err()
    {
        return Err(ApiError::bad_request(format!(
            "since \"{since}\" is not an RFC 3339 time, e.g. 2026-11-25T00:00:00Z"
        )));
    }
    let s = state.clone();
    blocking(move || {
        let ledger = reader(&s)?;
        let since = params
            .since
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| crate::ledger::stamp(t.with_timezone(&chrono::Utc)));
        let items: Vec<DeliveryRecord> = ledger
            .deliveries_page(&DeliveryFilter {
                pipeline: params.pipeline.as_deref(),
                status: params.status.as_deref(),
                since: since.as_deref(),
                before_id: params.cursor,
                limit,
            })?
            .into_iter()
            .map(|d| public(&s, d))
            .collect();
        let next_cursor = (items.len() == limit)
            .then(|| items.last().map(|d| d.id))
            .flatten();
        Ok(DeliveryPage { items, next_cursor })
    })
    .await
    .map(Json)
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryDetail {
    pub delivery: DeliveryRecord,
    /// The quality report: every violation with its line, column, rule, value and message.
    #[schema(value_type = Object)]
    pub report: Option<serde_json::Value>,
}

/// One delivery with its quality report.
#[utoipa::path(get, path = "/api/v1/deliveries/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = ErrorBody)))]
async fn delivery_detail(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
    P(id): P<i64>,
) -> ApiResult<Json<DeliveryDetail>> {
    authorize(&state, &headers, Some(client), Role::Viewer)?;
    let s = state.clone();
    blocking(move || {
        let Some(d) = reader(&s)?.delivery(id)? else {
            return Err(ApiError::not_found(format!("no delivery {id}")));
        };
        let report = d
            .report
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|mut v| {
                if let Some(src) = v.get("source").and_then(|x| x.as_str()).map(str::to_string) {
                    v["source"] = serde_json::Value::String(relative(&s, &src));
                }
                v
            });
        Ok(DeliveryDetail {
            delivery: public(&s, d),
            report,
        })
    })
    .await
    .map(Json)
}

#[derive(Serialize, ToSchema)]
pub struct NextRun {
    pub local: String,
    pub utc: String,
}

#[derive(Serialize, ToSchema)]
pub struct JobSummary {
    pub name: String,
    /// metrics | cleanup
    pub kind: String,
    pub schedule: String,
    pub timezone: String,
    pub metrics: Vec<String>,
    pub next_runs: Vec<NextRun>,
    pub last_run: Option<JobRun>,
}

/// Each alert's state (ok, firing or unknown, since when, what is wrong) and the newest notice
/// on each of its channels with how sending it went.
#[utoipa::path(get, path = "/api/v1/alerts", responses((status = 200, body = Vec<AlertStatus>)))]
async fn list_alerts(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<AlertStatus>>> {
    authorize(&state, &headers, Some(client), Role::Viewer)?;
    let s = state.clone();
    blocking(move || {
        let ledger = reader(&s)?;
        Ok(Json(crate::alerts::statuses(&s.project, &ledger)?))
    })
    .await
}

/// Jobs with their schedule, time zone, next 5 runs and last run.
#[utoipa::path(get, path = "/api/v1/jobs", responses((status = 200, body = Vec<JobSummary>)))]
async fn list_jobs(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<JobSummary>>> {
    authorize(&state, &headers, Some(client), Role::Viewer)?;
    let s = state.clone();
    blocking(move || {
        let ledger = reader(&s)?;
        let now = chrono::Utc::now();
        s.project
            .jobs
            .values()
            .map(|job| {
                Ok(JobSummary {
                    name: job.name.clone(),
                    kind: match job.kind {
                        JobKind::Metrics { .. } => "metrics",
                        JobKind::Cleanup(_) => "cleanup",
                    }
                    .into(),
                    schedule: job.schedule_text.clone(),
                    timezone: job.timezone.name().into(),
                    metrics: match &job.kind {
                        JobKind::Metrics { metrics, .. } => {
                            metrics.iter().map(|m| m.name.clone()).collect()
                        }
                        JobKind::Cleanup(_) => Vec::new(),
                    },
                    next_runs: job
                        .schedule
                        .between(
                            now,
                            chrono::DateTime::<chrono::Utc>::MAX_UTC,
                            job.timezone,
                            5,
                        )
                        .into_iter()
                        .map(|t| NextRun {
                            local: t.with_timezone(&job.timezone).to_rfc3339(),
                            utc: t.to_rfc3339(),
                        })
                        .collect(),
                    last_run: ledger.last_job_run(&job.name)?,
                })
            })
            .collect::<ApiResult<Vec<_>>>()
    })
    .await
    .map(Json)
}

#[derive(Deserialize, ToSchema, Default)]
pub struct TriggerBody {
    /// Run the period holding this date (YYYY-MM-DD).
    pub date: Option<String>,
    /// With `to`: run each period from this date's to that date's.
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Triggered {
    pub job: String,
    /// Runs started, one after another, in the background; see /api/v1/runs?job=….
    pub runs: usize,
}

fn date(field: &str, text: &str) -> ApiResult<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(format!("{field} \"{text}\" is not a date (YYYY-MM-DD)"))
    })
}

/// Run a job now, for a date's period, or for each period of a range.
#[utoipa::path(post, path = "/api/v1/jobs/{name}/trigger", params(("name" = String, Path)),
    request_body(content = TriggerBody, content_type = "application/json"),
    responses((status = 202, body = Triggered), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
async fn trigger_job(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
    P(name): P<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Triggered>)> {
    let resource = format!("jobs/{name}");
    let caller = authorize_change(
        &state,
        &headers,
        client,
        Role::Analyst,
        "trigger",
        &resource,
    )?;
    let outcome = (|| {
        let trigger: TriggerBody = if body.iter().all(u8::is_ascii_whitespace) {
            TriggerBody::default()
        } else {
            serde_json::from_slice(&body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body is not {{\"date\"}} or {{\"from\", \"to\"}}: {e}"
                ))
            })?
        };
        let Some(job) = state.project.jobs.get(&name) else {
            return Err(ApiError::not_found(format!("no job named `{name}`")));
        };
        let requests = match (&trigger.date, &trigger.from, &trigger.to) {
            (Some(d), None, None) => {
                let d = date("date", d)?;
                RunRequest::backfill(job, d, d)?
            }
            (None, Some(f), Some(t)) => {
                RunRequest::backfill(job, date("from", f)?, date("to", t)?)?
            }
            (None, None, None) => vec![RunRequest::manual(job, chrono::Utc::now())],
            _ => {
                return Err(ApiError::bad_request(
                    "send {} (now), {\"date\": \"YYYY-MM-DD\"} or {\"from\": …, \"to\": …}",
                ));
            }
        };
        Ok((job.clone(), requests))
    })();
    let (job, requests) = match outcome {
        Ok(v) => v,
        Err(e) => {
            audit(
                &state,
                &caller,
                "trigger",
                &resource,
                &format!("refused: {}", e.code),
            );
            return Err(e);
        }
    };
    let runs = requests.len();
    let running = state.triggered.fetch_add(1, Ordering::SeqCst);
    if running >= super::MAX_TRIGGERED {
        state.triggered.fetch_sub(1, Ordering::SeqCst);
        audit(&state, &caller, "trigger", &resource, "refused: busy");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            format!("{running} triggered job runs are in progress; retry when one has finished"),
        ));
    }
    let project = state.project.clone();
    let finished = state.clone();
    std::thread::Builder::new()
        .name(format!("job-{}", job.name))
        .spawn(move || {
            let result = (|| -> crate::error::Result<()> {
                let ledger = Ledger::open(&project.state_dir)?;
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| crate::error::Error::io("starting a job runtime", e))?;
                let (_tx, rx) = tokio::sync::watch::channel(false);
                for request in &requests {
                    crate::jobs::run_job(&project, &ledger, &runtime, &job, request, rx.clone())?;
                }
                Ok(())
            })();
            if let Err(e) = result {
                tracing::error!(job = %job.name, error = %e, "a triggered job could not run");
            }
            finished.triggered.fetch_sub(1, Ordering::SeqCst);
        })
        .map_err(|e| {
            state.triggered.fetch_sub(1, Ordering::SeqCst);
            crate::error::Error::io("starting a job thread", e)
        })?;
    audit(&state, &caller, "trigger", &resource, "accepted");
    Ok((StatusCode::ACCEPTED, Json(Triggered { job: name, runs })))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    pub job: Option<String>,
    /// 1 to 1000; default 50.
    pub limit: Option<usize>,
}

/// Job runs, newest first, with per-metric results.
#[utoipa::path(get, path = "/api/v1/runs", params(RunParams), responses((status = 200, body = Vec<JobRun>)))]
async fn list_runs(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
    Q(params): Q<RunParams>,
) -> ApiResult<Json<Vec<JobRun>>> {
    authorize(&state, &headers, Some(client), Role::Viewer)?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let s = state.clone();
    blocking(move || Ok(reader(&s)?.job_runs(params.job.as_deref(), limit)?))
        .await
        .map(Json)
}

/// One job run.
#[utoipa::path(get, path = "/api/v1/runs/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = JobRun), (status = 404, body = ErrorBody)))]
async fn run_detail(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
    P(id): P<i64>,
) -> ApiResult<Json<JobRun>> {
    authorize(&state, &headers, Some(client), Role::Viewer)?;
    let s = state.clone();
    blocking(move || {
        reader(&s)?
            .job_run(id)?
            .ok_or_else(|| ApiError::not_found(format!("no job run {id}")))
    })
    .await
    .map(Json)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricParams {
    pub name: String,
    /// First period start date (YYYY-MM-DD).
    pub from: Option<String>,
    /// Last period start date (YYYY-MM-DD).
    pub to: Option<String>,
    /// 1 to 10000; default 100.
    pub limit: Option<usize>,
}

/// Values of a calculated metric, newest period first. Other query parameters filter on
/// dimensions: `?name=revenue&segment=retail`.
#[utoipa::path(get, path = "/api/v1/metrics/calculated", params(MetricParams),
    responses((status = 200, body = Vec<CalculatedValue>), (status = 400, body = ErrorBody)))]
async fn calculated_metrics(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
    Q(params): Q<MetricParams>,
    Q(all): Q<Vec<(String, String)>>,
) -> ApiResult<Json<Vec<CalculatedValue>>> {
    authorize(&state, &headers, Some(client), Role::Viewer)?;
    let name = params.name;
    let from = params
        .from
        .as_deref()
        .map(|f| date("from", f))
        .transpose()?;
    let to = params.to.as_deref().map(|t| date("to", t)).transpose()?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let dims: Vec<(String, String)> = all
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "name" | "from" | "to" | "limit"))
        .collect();
    let s = state.clone();
    blocking(move || {
        let filter = crate::jobs::metrics::ValueFilter {
            name: &name,
            from,
            to,
            dimensions: &dims,
            limit,
        };
        let mut out = Vec::new();
        for dest in s.project.destinations.values() {
            if let Destination::Sqlite { path } = dest
                && path.exists()
            {
                out.extend(crate::jobs::metrics::read_values(path, &filter)?);
            }
        }
        Ok(out)
    })
    .await
    .map(Json)
}

#[derive(Deserialize, ToSchema)]
pub struct QueryBody {
    /// One SELECT. Tables: `sales` (the first destination that has it, lakes first) or
    /// `warehouse.sales` / `lake.sales`.
    pub sql: String,
    /// At most this many rows (capped by the server's `query_max_rows`).
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct QueryResult {
    pub columns: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// More rows matched than were returned.
    pub truncated: bool,
}

/// Read-only SQL over the warehouse and the lake (DataFusion), with a row cap and a timeout.
#[utoipa::path(post, path = "/api/v1/query",
    request_body(content = QueryBody, content_type = "application/json"),
    responses((status = 200, body = QueryResult), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 408, body = ErrorBody)))]
async fn run_query(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<QueryResult>> {
    let caller = authorize_change(&state, &headers, client, Role::Analyst, "query", "query")?;
    let parsed: Result<QueryBody, _> = serde_json::from_slice(&body);
    let result = match parsed {
        Err(e) => Err(ApiError::bad_request(format!(
            "the body must be {{\"sql\": \"SELECT …\"}}: {e}"
        ))),
        Ok(q) => {
            let cap = q
                .limit
                .unwrap_or(state.config.query_max_rows)
                .clamp(1, state.config.query_max_rows);
            super::query::run(&state.project, &q.sql, cap, state.config.query_timeout)
                .await
                .map(|out| (q.sql, out))
        }
    };
    let resource = match &result {
        Ok((sql, _)) => sql.chars().take(500).collect::<String>(),
        Err(_) => String::from_utf8_lossy(&body).chars().take(500).collect(),
    };
    match result {
        Ok((_, out)) => {
            audit(
                &state,
                &caller,
                "query",
                &resource,
                &format!("ok: {} rows", out.rows.len()),
            );
            Ok(Json(QueryResult {
                columns: out.columns,
                rows: out.rows,
                truncated: out.truncated,
            }))
        }
        Err(e) => {
            audit(
                &state,
                &caller,
                "query",
                &resource,
                &format!("failed: {}", e.code),
            );
            Err(e)
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// 1 to 1000; default 100.
    pub limit: Option<usize>,
}

/// The audit log, newest first (admin).
#[utoipa::path(get, path = "/api/v1/audit", params(AuditParams),
    responses((status = 200, body = Vec<AuditEntry>), (status = 403, body = ErrorBody)))]
async fn audit_log(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
    Q(params): Q<AuditParams>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    authorize(&state, &headers, Some(client), Role::Admin)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let s = state.clone();
    blocking(move || Ok(reader(&s)?.audit_log(limit)?))
        .await
        .map(Json)
}

/// API tokens (names and roles; never the secrets) (admin).
#[utoipa::path(get, path = "/api/v1/tokens", responses((status = 200, body = Vec<TokenInfo>),
    (status = 403, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    authorize(&state, &headers, Some(client), Role::Admin)?;
    let s = state.clone();
    blocking(move || Ok(reader(&s)?.tokens()?)).await.map(Json)
}

/// Revoke a token (admin).
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
    P(name): P<String>,
) -> ApiResult<StatusCode> {
    let resource = format!("tokens/{name}");
    let caller = authorize_change(&state, &headers, client, Role::Admin, "revoke", &resource)?;
    let s = state.clone();
    let revoked =
        blocking(move || Ok(Ledger::open(&s.project.state_dir)?.revoke_token(&name)?)).await;
    let outcome = match &revoked {
        Ok(true) => "revoked",
        Ok(false) => "not found",
        Err(_) => "failed",
    };
    audit(&state, &caller, "revoke", &resource, outcome);
    match revoked? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found("no live token by that name")),
    }
}

/// Prometheus text format. Readable without a token only when anonymous access is on.
async fn prometheus(
    State(state): State<Shared>,
    ConnectInfo(client): Client,
    headers: HeaderMap,
) -> ApiResult<Response> {
    authorize(&state, &headers, Some(client), Role::Viewer)?;
    let s = state.clone();
    let waiting = blocking(move || {
        Ok(s.project
            .pipelines
            .values()
            .map(|p| {
                (
                    vec![("pipeline".to_string(), p.name.clone())],
                    crate::pipeline::files_in(&p.source.path, p).map_or(0, |f| f.len()) as f64,
                )
            })
            .collect::<Vec<_>>())
    })
    .await?;
    let text = state.telemetry.render(&[super::telemetry::Gauge {
        name: "caudal_queue_files",
        help: "Files waiting in a pipeline's folder.",
        samples: waiting,
    }]);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

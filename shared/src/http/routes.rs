//! The route table of every HTTP function (`API.md` §1.1, `RELEASES.md`
//! §1.1) and the glue from a checked request to its action.
//!
//! The table is the single source the router, the tests and (later) the
//! OpenAPI document and SAM template checks read.

use axum::http::Method;
use serde_json::json;

use super::request::RequestParts;
use super::response::Reply;
use super::AppState;
use crate::actions::{self, list_workers::WorkerFilters, PageRequest};
use crate::domain::ids::check_id;
use crate::error::{ApiError, ErrorCode};

/// Which token (and enablement flag) guards a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// No token, always served.
    Public,
    /// `TPF_CONTROL_PLANE_ENABLED`, control-plane token.
    ControlPlane,
    /// `TPF_ADMIN_ENABLED`, admin token.
    Admin,
}

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Health,
    RegisterRelease,
    ListReleases,
    GetActiveRelease,
    ListActivations,
    GetRelease,
    ActivateRelease,
    RegisterWorker,
    HeartbeatWorker,
    DrainWorker,
    ListWorkers,
    SubmitExecution,
    ListExecutions,
    GetStatus,
    GetResult,
    GetHistory,
    ListPending,
    CompleteInteraction,
    RedriveExecution,
    OpenApi,
}

/// How a route treats the request body (`API.md` §1.2–§1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// Ignored entirely: no size, media-type or JSON check.
    Ignored,
    /// A JSON object is required.
    Object,
    /// Re-drive: empty, `null` or a JSON object.
    OptionalObject,
}

/// One row of the route table.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    /// axum path syntax; `{name}` segments are parameters.
    pub path: &'static str,
    pub surface: Surface,
    /// Whether and how the body is read.
    pub body: BodyRule,
    /// Query parameters the route reads; all others are ignored.
    pub query_params: &'static [&'static str],
    pub action: Action,
    /// The function that serves the route (cargo-lambda and SAM name).
    pub function: &'static str,
}

macro_rules! route {
    ($m:ident, $path:expr, $surface:ident, $body:expr, $query:expr, $action:ident, $function:expr) => {
        Route {
            method: Method::$m,
            path: $path,
            surface: Surface::$surface,
            body: $body,
            query_params: $query,
            action: Action::$action,
            function: $function,
        }
    };
}

/// Every route of this build. Health routes are served by every function.
pub static ROUTES: std::sync::LazyLock<Vec<Route>> = std::sync::LazyLock::new(|| {
    const PAGE: &[&str] = &["limit", "cursor"];
    const WORKER_LIST: &[&str] = &["contractVersion", "releaseVersion", "limit", "cursor"];
    const EXEC_LIST: &[&str] = &["status", "pipelineId", "limit", "cursor"];
    const PENDING: &[&str] = &["stepId", "assignee", "group", "limit", "cursor"];
    const CP: &str = "control-plane";
    vec![
        route!(POST, "/tpf/control-plane/tenants/{tenantId}/executions", ControlPlane, BodyRule::Object, &[], SubmitExecution, CP),
        route!(GET, "/tpf/control-plane/tenants/{tenantId}/executions", ControlPlane, BodyRule::Ignored, EXEC_LIST, ListExecutions, CP),
        route!(GET, "/tpf/control-plane/tenants/{tenantId}/executions/{executionId}", ControlPlane, BodyRule::Ignored, &[], GetStatus, CP),
        route!(GET, "/tpf/control-plane/tenants/{tenantId}/executions/{executionId}/result", ControlPlane, BodyRule::Ignored, &[], GetResult, CP),
        route!(GET, "/tpf/control-plane/tenants/{tenantId}/executions/{executionId}/history", ControlPlane, BodyRule::Ignored, PAGE, GetHistory, CP),
        route!(GET, "/tpf/control-plane/tenants/{tenantId}/interactions/pending", ControlPlane, BodyRule::Ignored, PENDING, ListPending, CP),
        route!(POST, "/tpf/control-plane/tenants/{tenantId}/interactions/complete", ControlPlane, BodyRule::Object, &[], CompleteInteraction, CP),
        route!(POST, "/tpf/admin/tenants/{tenantId}/executions/{executionId}/redrive", Admin, BodyRule::OptionalObject, &[], RedriveExecution, CP),
        route!(GET, "/tpf/openapi.json", Public, BodyRule::Ignored, &[], OpenApi, "*"),
        route!(GET, "/tpf/health", Public, BodyRule::Ignored, &[], Health, "*"),
        route!(GET, "/q/health/live", Public, BodyRule::Ignored, &[], Health, "*"),
        route!(
            POST,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases/register",
            Admin,
            BodyRule::Object,
            &[],
            RegisterRelease,
            "release-admin"
        ),
        route!(
            GET,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases",
            Admin,
            BodyRule::Ignored,
            PAGE,
            ListReleases,
            "release-admin"
        ),
        route!(
            GET,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases/active",
            Admin,
            BodyRule::Ignored,
            &[],
            GetActiveRelease,
            "release-admin"
        ),
        route!(
            GET,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases/activations",
            Admin,
            BodyRule::Ignored,
            PAGE,
            ListActivations,
            "release-admin"
        ),
        route!(
            GET,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases/{releaseVersion}",
            Admin,
            BodyRule::Ignored,
            &[],
            GetRelease,
            "release-admin"
        ),
        route!(
            POST,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases/{releaseVersion}/activate",
            Admin,
            BodyRule::Ignored,
            &[],
            ActivateRelease,
            "release-admin"
        ),
        route!(
            POST,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/workers/register",
            Admin,
            BodyRule::Object,
            &[],
            RegisterWorker,
            "worker-lifecycle"
        ),
        route!(
            POST,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/workers/{workerId}/heartbeat",
            Admin,
            BodyRule::Ignored,
            &[],
            HeartbeatWorker,
            "worker-lifecycle"
        ),
        route!(
            POST,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/workers/{workerId}/drain",
            Admin,
            BodyRule::Ignored,
            &[],
            DrainWorker,
            "worker-lifecycle"
        ),
        route!(
            GET,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/workers",
            Admin,
            BodyRule::Ignored,
            WORKER_LIST,
            ListWorkers,
            "worker-lifecycle"
        ),
    ]
});

/// The OpenAPI 3.1 document of every HTTP route (`API.md` §3.4), shipped in
/// the binary.
pub const OPENAPI: &str = include_str!("openapi.json");

fn page(parts: &RequestParts) -> Result<PageRequest, ApiError> {
    Ok(PageRequest {
        limit: parts.query.limit()?,
        cursor: parts.query.cursor()?.map(str::to_string),
    })
}

fn optional_id_param(parts: &RequestParts, name: &str) -> Result<Option<String>, ApiError> {
    match parts
        .query
        .get(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        Some(v) => {
            check_id(name, v)?;
            Ok(Some(v.to_string()))
        }
        None => Ok(None),
    }
}

/// `stepId`/`assignee`/`group`: trimmed, blank = not given, ≤ 256
/// characters without control characters (`API.md` §1.4).
fn text_param(parts: &RequestParts, name: &str) -> Result<Option<String>, ApiError> {
    match parts
        .query
        .get(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        Some(v)
            if crate::domain::values::char_len(v) > 256
                || crate::domain::values::has_control(v) =>
        {
            Err(ApiError::new(
                ErrorCode::InvalidParameter,
                format!("{name} must be at most 256 characters without control characters"),
            ))
        }
        Some(v) => Ok(Some(v.to_string())),
        None => Ok(None),
    }
}

fn internal(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InternalError,
        format!("{what} is not wired in this function"),
    )
}

/// Runs the route's action on a request that passed the common checks.
pub async fn dispatch(
    state: &AppState,
    route: &Route,
    parts: RequestParts,
) -> Result<Reply, ApiError> {
    let tenant = parts.param("tenantId");
    let pipeline = parts.param("pipelineId");
    let releases = || {
        state
            .releases
            .as_ref()
            .ok_or_else(|| internal("release registry"))
    };
    let workers = || {
        state
            .workers
            .as_ref()
            .ok_or_else(|| internal("worker registry"))
    };
    let engine = || {
        state
            .engine
            .as_ref()
            .ok_or_else(|| internal("execution engine"))
    };
    let execution = parts.param("executionId");

    match route.action {
        Action::Health => Reply::ok(&json!({
            "status": "ok",
            "function": state.function.as_str(),
            "version": crate::VERSION,
        })),
        Action::RegisterRelease => {
            let body = parts.body.as_ref().ok_or_else(|| internal("body"))?;
            let source = actions::register_release::parse_request(body, &parts.raw_body)?;
            let view =
                actions::register_release::run(releases()?, tenant, pipeline, source).await?;
            Reply::ok(&view)
        }
        Action::ListReleases => {
            let page = page(&parts)?;
            let p = actions::list_releases::run(releases()?, tenant, pipeline, &page).await?;
            Ok(Reply::ok(&p.items)?.with_cursor(p.next_cursor))
        }
        Action::GetActiveRelease => {
            let view = actions::get_active_release::run(releases()?, tenant, pipeline).await?;
            Reply::ok(&view)
        }
        Action::ListActivations => {
            let page = page(&parts)?;
            let p = actions::list_activations::run(releases()?, tenant, pipeline, &page).await?;
            Reply::ok(&json!({
                "pipelineId": pipeline,
                "events": p.items,
                "nextCursor": p.next_cursor,
            }))
        }
        Action::GetRelease => {
            let version = parts.param("releaseVersion");
            let view = actions::get_release::run(releases()?, tenant, pipeline, version).await?;
            Reply::ok(&view)
        }
        Action::ActivateRelease => {
            let version = parts.param("releaseVersion");
            let view =
                actions::activate_release::run(releases()?, tenant, pipeline, version).await?;
            Reply::ok(&view)
        }
        Action::RegisterWorker => {
            let body = parts.body.as_ref().ok_or_else(|| internal("body"))?;
            let req = actions::register_worker::parse_request(body)?;
            let view = actions::register_worker::run(workers()?, tenant, pipeline, req).await?;
            Reply::ok(&view)
        }
        Action::HeartbeatWorker => {
            let view = actions::heartbeat_worker::run(
                workers()?,
                tenant,
                pipeline,
                parts.param("workerId"),
            )
            .await?;
            Reply::ok(&view)
        }
        Action::DrainWorker => {
            let view =
                actions::drain_worker::run(workers()?, tenant, pipeline, parts.param("workerId"))
                    .await?;
            Reply::ok(&view)
        }
        Action::OpenApi => Ok(Reply {
            status: axum::http::StatusCode::OK,
            body: OPENAPI.to_string(),
            next_cursor: None,
        }),
        Action::SubmitExecution => {
            let body = parts.body.as_ref().ok_or_else(|| internal("body"))?;
            let req = actions::submit_execution::parse_request(body)?;
            Reply::ok(&actions::submit_execution::run(engine()?, tenant, req).await?)
        }
        Action::ListExecutions => {
            let status = match parts.query.get("status") {
                Some(s) => Some(
                    crate::domain::execution::ExecutionStatus::parse(s).ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidParameter,
                            "status must be an ExecutionStatus value",
                        )
                    })?,
                ),
                None => None,
            };
            let pipeline_id = match parts.query.get("pipelineId") {
                Some(p) => {
                    check_id("pipelineId", p)?;
                    Some(p.to_string())
                }
                None => None,
            };
            let filter = crate::ports::ExecutionFilter {
                status,
                pipeline_id,
            };
            let page = page(&parts)?;
            let p = actions::list_executions::run(engine()?, tenant, &filter, &page).await?;
            Reply::ok(&json!({"items": p.items, "nextCursor": p.next_cursor}))
        }
        Action::GetStatus => {
            Reply::ok(&actions::get_execution::status(engine()?, tenant, execution).await?)
        }
        Action::GetResult => {
            Reply::ok(&actions::get_execution::result(engine()?, tenant, execution).await?)
        }
        Action::GetHistory => {
            let page = page(&parts)?;
            let p = actions::get_execution::history(engine()?, tenant, execution, &page).await?;
            Reply::ok(
                &json!({"executionId": execution, "events": p.items, "nextCursor": p.next_cursor}),
            )
        }
        Action::ListPending => {
            let filter = crate::ports::PendingFilter {
                step_id: text_param(&parts, "stepId")?,
                assignee: text_param(&parts, "assignee")?,
                group: text_param(&parts, "group")?,
            };
            let page = page(&parts)?;
            let p = actions::list_pending::run(engine()?, tenant, &filter, &page).await?;
            let dtos: Vec<_> = p.items.iter().map(|i| i.dto()).collect();
            Ok(Reply::ok(&dtos)?.with_cursor(p.next_cursor))
        }
        Action::CompleteInteraction => {
            let body = parts.body.as_ref().ok_or_else(|| internal("body"))?;
            let req = actions::complete_interaction::parse_request(body)?;
            Reply::ok(&actions::complete_interaction::run(engine()?, tenant, req).await?)
        }
        Action::RedriveExecution => {
            let req = actions::redrive_execution::parse_request(parts.body.as_ref())?;
            Reply::ok(&actions::redrive_execution::run(engine()?, tenant, execution, req).await?)
        }
        Action::ListWorkers => {
            let filters = WorkerFilters {
                contract_version: optional_id_param(&parts, "contractVersion")?,
                release_version: optional_id_param(&parts, "releaseVersion")?,
            };
            let page = page(&parts)?;
            let p =
                actions::list_workers::run(workers()?, tenant, pipeline, &filters, &page).await?;
            Ok(Reply::ok(&p.items)?.with_cursor(p.next_cursor))
        }
    }
}

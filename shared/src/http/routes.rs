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
}

/// One row of the route table.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    /// axum path syntax; `{name}` segments are parameters.
    pub path: &'static str,
    pub surface: Surface,
    /// Only these routes check media type, size and JSON of the body.
    pub reads_body: bool,
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
            reads_body: $body,
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
    vec![
        route!(GET, "/tpf/health", Public, false, &[], Health, "*"),
        route!(GET, "/q/health/live", Public, false, &[], Health, "*"),
        route!(
            POST,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases/register",
            Admin,
            true,
            &[],
            RegisterRelease,
            "release-admin"
        ),
        route!(
            GET,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases",
            Admin,
            false,
            PAGE,
            ListReleases,
            "release-admin"
        ),
        route!(
            GET,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases/active",
            Admin,
            false,
            &[],
            GetActiveRelease,
            "release-admin"
        ),
        route!(
            GET,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases/activations",
            Admin,
            false,
            PAGE,
            ListActivations,
            "release-admin"
        ),
        route!(
            GET,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases/{releaseVersion}",
            Admin,
            false,
            &[],
            GetRelease,
            "release-admin"
        ),
        route!(
            POST,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases/{releaseVersion}/activate",
            Admin,
            false,
            &[],
            ActivateRelease,
            "release-admin"
        ),
        route!(
            POST,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/workers/register",
            Admin,
            true,
            &[],
            RegisterWorker,
            "worker-lifecycle"
        ),
        route!(
            POST,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/workers/{workerId}/heartbeat",
            Admin,
            false,
            &[],
            HeartbeatWorker,
            "worker-lifecycle"
        ),
        route!(
            POST,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/workers/{workerId}/drain",
            Admin,
            false,
            &[],
            DrainWorker,
            "worker-lifecycle"
        ),
        route!(
            GET,
            "/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/workers",
            Admin,
            false,
            WORKER_LIST,
            ListWorkers,
            "worker-lifecycle"
        ),
    ]
});

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

fn json_of<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))
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
    match route.action {
        Action::Health => Ok(Reply::ok(json!({
            "status": "ok",
            "function": state.function.as_str(),
            "version": crate::VERSION,
        }))),
        Action::RegisterRelease => {
            let body = parts.body.as_ref().ok_or_else(|| internal("body"))?;
            let source = actions::register_release::parse_request(body, &parts.raw_body)?;
            let view =
                actions::register_release::run(releases()?, tenant, pipeline, source).await?;
            Ok(Reply::ok(json_of(&view)?))
        }
        Action::ListReleases => {
            let page = page(&parts)?;
            let p = actions::list_releases::run(releases()?, tenant, pipeline, &page).await?;
            Ok(Reply {
                next_cursor: p.next_cursor,
                ..Reply::ok(json_of(&p.items)?)
            })
        }
        Action::GetActiveRelease => {
            let view = actions::get_active_release::run(releases()?, tenant, pipeline).await?;
            Ok(Reply::ok(json_of(&view)?))
        }
        Action::ListActivations => {
            let page = page(&parts)?;
            let p = actions::list_activations::run(releases()?, tenant, pipeline, &page).await?;
            Ok(Reply::ok(json!({
                "pipelineId": pipeline,
                "events": json_of(&p.items)?,
                "nextCursor": p.next_cursor,
            })))
        }
        Action::GetRelease => {
            let version = parts.param("releaseVersion");
            let view = actions::get_release::run(releases()?, tenant, pipeline, version).await?;
            Ok(Reply::ok(json_of(&view)?))
        }
        Action::ActivateRelease => {
            let version = parts.param("releaseVersion");
            let view =
                actions::activate_release::run(releases()?, tenant, pipeline, version).await?;
            Ok(Reply::ok(json_of(&view)?))
        }
        Action::RegisterWorker => {
            let body = parts.body.as_ref().ok_or_else(|| internal("body"))?;
            let req = actions::register_worker::parse_request(body)?;
            let view = actions::register_worker::run(workers()?, tenant, pipeline, req).await?;
            Ok(Reply::ok(json_of(&view)?))
        }
        Action::HeartbeatWorker => {
            let view = actions::heartbeat_worker::run(
                workers()?,
                tenant,
                pipeline,
                parts.param("workerId"),
            )
            .await?;
            Ok(Reply::ok(json_of(&view)?))
        }
        Action::DrainWorker => {
            let view =
                actions::drain_worker::run(workers()?, tenant, pipeline, parts.param("workerId"))
                    .await?;
            Ok(Reply::ok(json_of(&view)?))
        }
        Action::ListWorkers => {
            let filters = WorkerFilters {
                contract_version: optional_id_param(&parts, "contractVersion")?,
                release_version: optional_id_param(&parts, "releaseVersion")?,
            };
            let page = page(&parts)?;
            let p =
                actions::list_workers::run(workers()?, tenant, pipeline, &filters, &page).await?;
            Ok(Reply {
                next_cursor: p.next_cursor,
                ..Reply::ok(json_of(&p.items)?)
            })
        }
    }
}

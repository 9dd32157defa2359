//! The HTTP layer shared by every function (`API.md` §1): one axum
//! [`Router`] built from the route table, run by `lambda_http::run` on
//! Lambda and by a plain socket server in tests.
//!
//! axum matches paths (literal segments as received, so a percent-encoded
//! literal matches nothing); everything the spec adds on top — method
//! dispatch with `Allow`, the order of checks, decoding parameters once,
//! tenant admission, body rules — happens in [`handle`].

pub mod auth;
pub mod request;
pub mod response;
pub mod routes;

use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::Response;
use axum::Router;
use std::sync::Arc;
use tracing::Instrument;

use crate::actions::{EngineDeps, ReleaseDeps, WorkerDeps};
use crate::config::FunctionName;
use crate::error::{ApiError, ErrorCode};
use crate::providers::secrets::CachedSecret;
use request::RequestParts;
use response::Reply;
use routes::{Route, Surface};

/// Everything a function's routes need, built once at cold start.
pub struct AppState {
    pub function: FunctionName,
    /// `TPF_CONTROL_PLANE_ENABLED`.
    pub control_plane_enabled: bool,
    /// `TPF_ADMIN_ENABLED`.
    pub admin_enabled: bool,
    pub control_plane_token: Option<CachedSecret>,
    pub admin_token: Option<CachedSecret>,
    /// `TPF_TENANCY_ALLOWED_TENANTS`; `None` allows all.
    pub allowed_tenants: Option<Vec<String>>,
    /// Present in the release-admin function.
    pub releases: Option<ReleaseDeps>,
    /// Present in the worker-lifecycle function.
    pub workers: Option<WorkerDeps>,
    /// Present in the control-plane function.
    pub engine: Option<EngineDeps>,
}

impl AppState {
    fn surface_enabled(&self, surface: Surface) -> bool {
        match surface {
            Surface::Public => true,
            Surface::ControlPlane => self.control_plane_enabled,
            Surface::Admin => self.admin_enabled,
        }
    }

    /// Whether this function serves `route` (its dependencies are wired).
    fn serves(&self, route: &Route) -> bool {
        use routes::Action::*;
        match route.action {
            Health | OpenApi => true,
            RegisterRelease | ListReleases | GetActiveRelease | ListActivations | GetRelease
            | ActivateRelease => self.releases.is_some(),
            RegisterWorker | HeartbeatWorker | DrainWorker | ListWorkers => self.workers.is_some(),
            SubmitExecution | ListExecutions | GetStatus | GetResult | GetHistory | ListPending
            | CompleteInteraction | RedriveExecution => self.engine.is_some(),
        }
    }
}

/// Builds the router of one function: the routes it serves whose surface
/// is enabled (a disabled surface is a 404 before authentication, step 0 of
/// `API.md` §1.7), and the JSON 404 for every other path.
pub fn router(state: Arc<AppState>) -> Router {
    let mut by_path: Vec<(&'static str, Vec<&'static Route>)> = Vec::new();
    for route in routes::ROUTES
        .iter()
        .filter(|r| state.serves(r) && state.surface_enabled(r.surface))
    {
        match by_path.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, rs)) => rs.push(route),
            None => by_path.push((route.path, vec![route])),
        }
    }
    let mut router = Router::new();
    for (path, group) in by_path {
        let group: Arc<[&'static Route]> = group.into();
        router = router.route(
            path,
            axum::routing::any(
                move |State(state): State<Arc<AppState>>, req: Request<Body>| {
                    let group = group.clone();
                    async move { handle(state, &group, req).await }
                },
            ),
        );
    }
    router
        .fallback(|req: Request<Body>| async move {
            let rid = request::request_id(&req);
            response::error(
                &rid,
                &ApiError::new(ErrorCode::RouteNotFound, "no route for this path"),
            )
        })
        .with_state(state)
}

/// Runs the checks of `API.md` §1.7 in order, then the action.
async fn handle(state: Arc<AppState>, group: &[&'static Route], req: Request<Body>) -> Response {
    let rid = request::request_id(&req);
    let span = tracing::info_span!(
        "request",
        request_id = %rid,
        function = state.function.as_str(),
        method = %req.method(),
        tenant = tracing::field::Empty,
    );
    async move {
        let method = req.method().clone();
        let route = group.iter().find(|r| r.method == method).copied();
        let Some(route) = route else {
            let allow: Vec<&str> = group.iter().map(|r| r.method.as_str()).collect();
            return response::method_not_allowed(&rid, &allow);
        };
        let result = handle_checked(&state, route, req, &rid).await;
        let response = match result {
            Ok(reply) => response::reply(&rid, reply),
            Err(e) => {
                if e.code == ErrorCode::InternalError {
                    tracing::error!(error = %e, "internal error");
                }
                response::error(&rid, &e)
            }
        };
        tracing::info!(status = response.status().as_u16(), "handled");
        response
    }
    .instrument(span)
    .await
}

async fn handle_checked(
    state: &AppState,
    route: &'static Route,
    req: Request<Body>,
    rid: &str,
) -> Result<Reply, ApiError> {
    // 1. route and method were matched by the caller.
    // 2. authentication
    match route.surface {
        Surface::Public => {}
        Surface::ControlPlane => {
            auth::check(req.headers(), state.control_plane_token.as_ref()).await?
        }
        Surface::Admin => auth::check(req.headers(), state.admin_token.as_ref()).await?,
    }
    // 3. path identifiers
    let params = request::path_params(route.path, req.uri().path())?;
    // 4. tenant admission
    if let Some(tenant) = params.get("tenantId") {
        tracing::Span::current().record("tenant", tenant);
        if let Some(allowed) = &state.allowed_tenants {
            if !allowed.iter().any(|t| t == tenant) {
                return Err(ApiError::new(
                    ErrorCode::TenantNotAllowed,
                    "tenant is not allowed",
                ));
            }
        }
    }
    // 5. query parameters
    let query = request::Query::parse(req.uri().query(), route.query_params)?;
    // 6. content type, size, JSON syntax (routes that read a body only)
    let (body, raw_body) = match route.body {
        routes::BodyRule::Ignored => (None, Vec::new()),
        routes::BodyRule::Object => {
            let (object, raw) = request::json_body(req, false).await?;
            (object, raw)
        }
        routes::BodyRule::OptionalObject => request::json_body(req, true).await?,
    };
    let parts = RequestParts {
        params,
        query,
        body,
        raw_body,
        request_id: rid.to_owned(),
    };
    // 7-8. body members and the action
    routes::dispatch(state, route, parts).await
}

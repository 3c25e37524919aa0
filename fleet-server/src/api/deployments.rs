//! HTTP routes of deployments: roll a release out to many devices in waves, list and describe
//! deployments with each device's state, pause, resume (also: start the next wave of a manual
//! deployment) and cancel. Admin with a token of the whole fleet changes; viewers read.

use api_types::deployments::{DeploymentAction, DeploymentDetail, DeploymentsList, NewDeployment};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::deployments::Thresholds;

use crate::api::auth::{Caller, Role};
use crate::api::convert::detail;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, P};
use crate::api::state::AppState;
use crate::deployments::{DeploymentError, Spec};
use crate::store::Selector;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/deployments", post(create).get(list))
        .route("/api/v1/deployments/:id", get(describe))
        .route("/api/v1/deployments/:id/:action", post(act))
}

impl From<DeploymentError> for ApiError {
    fn from(e: DeploymentError) -> Self {
        match e {
            DeploymentError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            DeploymentError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            DeploymentError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            DeploymentError::Store(s) => s.into(),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/deployments", tag = "releases", security(("bearer" = [])),
    request_body = NewDeployment,
    responses((status = 201, body = DeploymentDetail, description = "running: its first wave is offered the release as its devices are online"),
        (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn create(
    caller: Caller,
    State(s): State<AppState>,
    Body(body): Body<NewDeployment>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_fleet("deploying releases")?;
    let spec = Spec {
        target: body.target,
        version: body.version,
        rollback: body.rollback,
        select: Selector {
            devices: body.devices,
            sites: body.sites,
            site_kinds: body.site_kinds,
            profiles: body.profiles,
            labels: body.labels,
        },
        waves: body.waves,
        window: body.window.map(Into::into),
        thresholds: Thresholds {
            success_percent: body.success_percent,
            max_failures_percent: body.max_failures_percent,
        },
        soak_secs: body.soak_secs,
        manual: body.manual,
        deadline_hours: body.deadline_hours,
    };
    let (d, devices) = s
        .deployments
        .create(spec, &caller.name, crate::clock::now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(detail(d, devices))).into_response())
}

#[utoipa::path(get, path = "/api/v1/deployments", tag = "releases", security(("bearer" = [])),
    responses((status = 200, body = DeploymentsList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list(caller: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let mut out = Vec::new();
    for d in s.store.deployments().await? {
        let devices = s.store.rollouts(&d.id).await?;
        out.push(detail(d, devices).deployment);
    }
    Ok(Json(DeploymentsList { deployments: out }).into_response())
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "releases", security(("bearer" = [])),
    params(("id" = String, Path, description = "deployment id")),
    responses((status = 200, body = DeploymentDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn describe(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let (d, devices) = s.deployments.get(&id).await?;
    Ok(Json(detail(d, devices)).into_response())
}

#[utoipa::path(post, path = "/api/v1/deployments/{id}/{action}", tag = "releases", security(("bearer" = [])),
    params(("id" = String, Path, description = "deployment id"),
        ("action" = String, Path, description = "`pause`, `resume` (also starts the next wave of a manual deployment) or `cancel`")),
    request_body = DeploymentAction,
    responses((status = 200, body = DeploymentDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn act(
    caller: Caller,
    State(s): State<AppState>,
    P((id, action)): P<(String, String)>,
    Body(body): Body<DeploymentAction>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_fleet("deploying releases")?;
    if !matches!(action.as_str(), "pause" | "resume" | "cancel") {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no action {action:?}; use pause, resume or cancel"),
        ));
    }
    if let Some(n) = &body.note {
        protocol::message::check_text("note", n, 500).map_err(ApiError::bad_request)?;
    }
    let (d, devices) = s
        .deployments
        .act(
            &id,
            &action,
            body.note.as_deref(),
            &caller.name,
            crate::clock::now_ms(),
        )
        .await?;
    Ok(Json(detail(d, devices)).into_response())
}

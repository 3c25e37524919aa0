//! Devices: the list, one device, its stored events and its presence log.

use api_types::devices::DeviceLabels;
use api_types::devices::{DevicesList, EventsList, EventsQuery, PresenceList};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::api::auth::{Caller, Role};
use crate::api::convert::all;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, P, Q, device_id};
use crate::api::state::AppState;
use api_types::query::LimitQuery;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/devices/:id", get(device))
        .route("/api/v1/devices/:id/events", get(events))
        .route("/api/v1/devices/:id/presence", get(presence))
        .route("/api/v1/devices/:id/labels", get(labels).put(set_labels))
}

#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = DevicesList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list_devices(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let mut devices = s.store.devices().await?;
    if let Some(sites) = &caller.sites {
        // The cabinets of the caller's sites, filtered in SQL like every other list.
        let placed: std::collections::HashSet<String> = s
            .store
            .cabinets(Some(sites))
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        devices.retain(|d| placed.contains(&d.id));
    }
    Ok(Json(DevicesList {
        devices: all(devices),
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = api_types::devices::DeviceDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn device(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    let id = caller.device(&s.store, Role::Viewer, &id).await?;
    match s.store.device(&id).await? {
        Some(d) => Ok(Json(api_types::devices::DeviceDetail::from(d)).into_response()),
        None => Err(ApiError::never_connected(&id)),
    }
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/events", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id"), EventsQuery),
    responses((status = 200, body = EventsList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn events(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Q(q): Q<EventsQuery>,
) -> Result<Response, ApiError> {
    let id = caller.device(&s.store, Role::Viewer, &id).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let events = s.store.events(&id, q.after, limit).await?;
    Ok(Json(EventsList {
        device: id.to_string(),
        events: all(events),
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/presence", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id"), LimitQuery),
    responses((status = 200, body = PresenceList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn presence(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Q(q): Q<LimitQuery>,
) -> Result<Response, ApiError> {
    let id = caller.device(&s.store, Role::Viewer, &id).await?;
    let rows = s
        .store
        .presence_log(&id, q.limit.unwrap_or(100).clamp(1, 10_000))
        .await?;
    Ok(Json(PresenceList {
        device: id.to_string(),
        presence: all(rows),
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/labels", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = DeviceLabels), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn labels(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    let id = caller.device(&s.store, Role::Viewer, &id).await?;
    Ok(Json(DeviceLabels {
        labels: s.store.labels(&id).await?,
    })
    .into_response())
}

/// Replaces a device's labels; a device may be labelled before it first connects.
#[utoipa::path(put, path = "/api/v1/devices/{id}/labels", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id")),
    request_body = DeviceLabels,
    responses((status = 200, body = DeviceLabels, description = "the labels now"),
        (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn set_labels(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Body(body): Body<DeviceLabels>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_fleet("labelling devices")?;
    let id = device_id(&id)?;
    domain::labels::check(&body.labels).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("field `labels`: {e}"),
        )
    })?;
    s.store
        .set_labels(&id, &body.labels, &caller.name, crate::clock::now_ms())
        .await?;
    Ok(Json(body).into_response())
}

//! Cabinets and their boxes: create or change, list, one cabinet, boxes in and out of service.

use api_types::cabinets::{CabinetBody, ServiceBody};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use domain::flows::Size;
use protocol::message::check_text;

use api_types::cabinets::{CabinetDetail, CabinetsList};

use crate::api::auth::{Caller, Role};
use crate::api::convert::all;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, P, Q, box_no, device_id};
use crate::api::state::AppState;
use api_types::query::SiteQuery;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/cabinets", get(list_cabinets))
        .route("/api/v1/cabinets/:id", get(cabinet).put(put_cabinet))
        .route("/api/v1/cabinets/:id/boxes/:box/service", put(box_service))
}

#[utoipa::path(put, path = "/api/v1/cabinets/{id}", tag = "cabinets", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id of the cabinet")),
    request_body = CabinetBody,
    responses((status = 200, body = CabinetDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn put_cabinet(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Body(body): Body<CabinetBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let device = device_id(&id)?;
    caller.require_site(&body.site_id)?;
    if let Some(placed) = s.store.cabinet(&device).await? {
        // Moving a cabinet out of a site is a change to that site too.
        caller.require_site(&placed.site_id)?;
    }
    if s.store.site(&body.site_id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("site {:?} does not exist; create it first", body.site_id),
        ));
    }
    let name = body.name.unwrap_or_else(|| id.clone());
    check_text("name", &name, 200).map_err(ApiError::bad_request)?;
    if body.boxes.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 boxes per cabinet"));
    }
    let mut boxes = Vec::with_capacity(body.boxes.len());
    for b in &body.boxes {
        let size = Size::parse(&b.size.to_ascii_uppercase()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "box {}: size {:?} is unknown; use one of: {}",
                b.box_no,
                b.size,
                Size::choices()
            ))
        })?;
        boxes.push((box_no(b.box_no)?, size, b.accessible));
    }
    s.store
        .upsert_cabinet(
            &device,
            &body.site_id,
            &name,
            &boxes,
            crate::clock::now_ms(),
            &caller.name,
        )
        .await?;
    let _ = s.service.codes.send(device.clone()).await;
    cabinet_response(&s, &device).await
}

async fn cabinet_response(s: &AppState, device: &protocol::DeviceId) -> Result<Response, ApiError> {
    let Some(cab) = s.store.cabinet(device).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "cabinet {device} is not configured; PUT /api/v1/cabinets/{device} configures it"
            ),
        ));
    };
    let boxes = s.store.box_views(device).await?;
    Ok(Json(CabinetDetail {
        cabinet: cab.into(),
        boxes: all(boxes),
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/cabinets/{id}", tag = "cabinets", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id of the cabinet")),
    responses((status = 200, body = CabinetDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn cabinet(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    let device = caller.device(&s.store, Role::Viewer, &id).await?;
    cabinet_response(&s, &device).await
}

#[utoipa::path(get, path = "/api/v1/cabinets", tag = "cabinets", security(("bearer" = [])),
    params(SiteQuery),
    responses((status = 200, body = CabinetsList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list_cabinets(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SiteQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let site = caller.site_filter(q.site.as_deref())?;
    let cabinets = s.store.cabinets(site.as_deref()).await?;
    Ok(Json(CabinetsList {
        cabinets: all(cabinets),
    })
    .into_response())
}

#[utoipa::path(put, path = "/api/v1/cabinets/{id}/boxes/{box}/service", tag = "cabinets", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id of the cabinet"), ("box" = u16, Path, description = "box number")),
    request_body = ServiceBody,
    responses((status = 200, body = CabinetDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn box_service(
    caller: Caller,
    State(s): State<AppState>,
    P((id, b)): P<(String, u16)>,
    Body(body): Body<ServiceBody>,
) -> Result<Response, ApiError> {
    let device = caller.device(&s.store, Role::Admin, &id).await?;
    let b = box_no(b)?;
    if let Some(n) = &body.note {
        check_text("note", n, 500).map_err(ApiError::bad_request)?;
    }
    if !body.in_service && body.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "note is required when taking a box out of service: say why",
        ));
    }
    if !s
        .store
        .set_box_service(
            &device,
            b,
            body.in_service,
            body.note.as_deref(),
            crate::clock::now_ms(),
            &caller.name,
        )
        .await?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("box {b} of cabinet {device} is not configured"),
        ));
    }
    cabinet_response(&s, &device).await
}

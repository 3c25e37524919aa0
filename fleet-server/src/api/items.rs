//! Reservations (with their one-time code, returned once), cancellations and items.

use api_types::items::ItemsQuery;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use api_types::items::{Item, ItemDetail, ItemsList, Reservation, ReservationRequest};

use crate::api::auth::{Caller, Role};
use crate::api::convert::all;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, P, Q, device_id};
use crate::api::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reservations", post(reserve))
        .route("/api/v1/reservations/:id", delete(cancel))
        .route("/api/v1/items", get(list_items))
        .route("/api/v1/items/:id", get(item))
}

#[utoipa::path(post, path = "/api/v1/reservations", tag = "reservations", security(("bearer" = [])),
    request_body = ReservationRequest,
    responses((status = 201, body = Reservation, description = "reserved; `code` is in this answer only"), (status = 200, body = Reservation, description = "idempotent repeat, without the code"), (status = 409, body = ErrorBody, description = "no free box (counted as unmet demand)"), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn reserve(
    caller: Caller,
    State(s): State<AppState>,
    Body(body): Body<ReservationRequest>,
) -> Result<Response, ApiError> {
    caller.require(Role::Platform)?;
    if caller.sites.is_some() {
        match (&body.site_id, &body.device_id) {
            (Some(site), _) => caller.require_site(site)?,
            (None, Some(device)) => caller.require_device(&s.store, &device_id(device)?).await?,
            (None, None) => {
                return Err(ApiError::bad_request(
                    "a token limited to sites must name site_id or device_id, not only `near`",
                ));
            }
        }
    }
    let r = s.service.reserve(body, &caller.name).await?;
    s.service.changes.send(crate::changes::Change::Items);
    let status = if r.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(Reservation::from(r))).into_response())
}

#[utoipa::path(delete, path = "/api/v1/reservations/{id}", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "reservation (item) id")),
    responses((status = 200, body = Item), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn cancel(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Platform)?;
    if caller.sites.is_some()
        && let Some(item) = s.store.item(&id).await?
    {
        caller.require_site(&item.site_id)?;
    }
    let actor = format!("token:{}", caller.name);
    let item = s.service.cancel(&id, &actor).await?;
    s.service.changes.send(crate::changes::Change::Items);
    Ok(Json(Item::from(item)).into_response())
}

#[utoipa::path(get, path = "/api/v1/items", tag = "items", security(("bearer" = [])),
    params(ItemsQuery),
    responses((status = 200, body = ItemsList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list_items(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<ItemsQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(st) = &q.state
        && domain::flows::ItemState::parse(st).is_none()
    {
        return Err(ApiError::bad_request(format!(
            "state {st:?} is unknown; use one of: {}",
            domain::flows::ItemState::choices()
        )));
    }
    let site = caller.site_filter(q.site.as_deref())?;
    let items = s
        .store
        .items(
            q.case_number.as_deref(),
            q.state.as_deref(),
            site.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 10_000),
        )
        .await?;
    Ok(Json(ItemsList { items: all(items) }).into_response())
}

#[utoipa::path(get, path = "/api/v1/items/{id}", tag = "items", security(("bearer" = [])),
    params(("id" = String, Path, description = "item id")),
    responses((status = 200, body = ItemDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn item(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let Some(item) = s.store.item(&id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no item {id:?}"),
        ));
    };
    caller.require_site(&item.site_id)?;
    let history = s.store.item_history(&id).await?;
    Ok(Json(ItemDetail {
        item: item.into(),
        history: all(history),
    })
    .into_response())
}

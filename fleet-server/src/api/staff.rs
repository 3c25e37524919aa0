//! Staff: registration, the list, deactivation and who is on duty.

use api_types::staff::Staff;
use api_types::staff::{Duty, DutyBody, StaffBody, StaffDeactivated, StaffList};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use protocol::message::check_text;

use crate::api::auth::{Caller, Role};
use crate::api::convert::all;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, P};
use crate::api::state::AppState;
use crate::store::DutyChange;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/staff", get(list_staff).post(create_staff))
        .route("/api/v1/staff/:id", delete(deactivate_staff))
        .route("/api/v1/staff/:id/duty", put(set_duty))
}

#[utoipa::path(post, path = "/api/v1/staff", tag = "staff", security(("bearer" = [])),
    request_body = StaffBody,
    responses((status = 201, body = Staff), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn create_staff(
    caller: Caller,
    State(s): State<AppState>,
    Body(body): Body<StaffBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    match &body.site_id {
        Some(site) => caller.require_site(site)?,
        None => caller.require_fleet("staff without a site_id (accepted at every site)")?,
    }
    check_text("name", &body.name, 200).map_err(ApiError::bad_request)?;
    let row = s
        .service
        .add_staff(
            &body.id,
            body.name.trim(),
            body.site_id.as_deref(),
            &body.credential,
            body.phone.as_deref(),
            body.on_duty,
            &caller.name,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(Staff::from(row))).into_response())
}

#[utoipa::path(get, path = "/api/v1/staff", tag = "staff", security(("bearer" = [])),
    responses((status = 200, body = StaffList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list_staff(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let mut staff = s.store.staff().await?;
    // Staff of every site open boxes at the caller's sites too: they are listed.
    staff.retain(|m| m.site_id.as_deref().is_none_or(|site| caller.may(site)));
    Ok(Json(StaffList { staff: all(staff) }).into_response())
}

#[utoipa::path(delete, path = "/api/v1/staff/{id}", tag = "staff", security(("bearer" = [])),
    params(("id" = String, Path, description = "staff id")),
    responses((status = 200, body = StaffDeactivated), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn deactivate_staff(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    require_staff_site(&caller, &s, &id).await?;
    if !s
        .store
        .deactivate_staff(&id, crate::clock::now_ms(), &caller.name)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no staff {id:?}"),
        ));
    }
    s.service.resync_site(None).await?;
    Ok(Json(StaffDeactivated { id, active: false }).into_response())
}

/// Starts or ends a shift: on-duty staff receive SMS of their site's alarms.
#[utoipa::path(put, path = "/api/v1/staff/{id}/duty", tag = "staff", security(("bearer" = [])),
    params(("id" = String, Path, description = "staff id")),
    request_body = DutyBody,
    responses((status = 200, body = Duty), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn set_duty(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Body(body): Body<DutyBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    require_staff_site(&caller, &s, &id).await?;
    match s
        .store
        .set_on_duty(&id, body.on_duty, crate::clock::now_ms(), &caller.name)
        .await?
    {
        DutyChange::Done => Ok(Json(Duty {
            id,
            on_duty: body.on_duty,
        })
        .into_response()),
        DutyChange::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no active staff {id:?}"),
        )),
        DutyChange::NoPhone => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("staff {id:?} has no phone to notify; add one before putting them on duty"),
        )),
    }
}

/// A staff member belongs to their site; one of every site only to callers of every site.
/// Unknown staff pass here and get the handler's own 404.
async fn require_staff_site(caller: &Caller, s: &AppState, id: &str) -> Result<(), ApiError> {
    if caller.sites.is_none() {
        return Ok(());
    }
    match s.store.staff().await?.into_iter().find(|m| m.id == id) {
        Some(m) => match m.site_id {
            Some(site) => caller.require_site(&site),
            None => caller.require_fleet(&format!("staff {id:?} (of every site)")),
        },
        None => Ok(()),
    }
}

//! The audit log, newest first, limited to the caller's sites.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use api_types::audit::AuditList;

use crate::api::auth::{Caller, Role};
use crate::api::convert::all;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Q, device_id};
use crate::api::state::AppState;
use api_types::query::LimitQuery;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/audit", get(audit))
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])),
    params(LimitQuery),
    responses((status = 200, body = AuditList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn audit(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<LimitQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let device = q.device.as_deref().map(device_id).transpose()?;
    if let Some(d) = &device {
        caller.require_device(&s.store, d).await?;
    }
    let mut rows = s
        .store
        .audit(
            device.as_ref(),
            caller.sites.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 10_000),
        )
        .await?;
    s.commands.overlay_audit(&mut rows);
    Ok(Json(AuditList { entries: all(rows) }).into_response())
}

//! Remote open and the command it creates, with a long poll for its outcome.

use api_types::commands::CommandQuery;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::BoxNo;
use protocol::message::check_text;

pub(crate) use api_types::commands::OpenBody;
use api_types::commands::{Command, OpenAccepted};

use crate::api::auth::{Caller, Role};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, P, Q};
use crate::api::state::AppState;
use crate::commands::OpenRequest;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/devices/:id/boxes/:box/open", post(open_box))
        .route("/api/v1/commands/:id", get(command))
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/boxes/{box}/open", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id"), ("box" = u16, Path, description = "box number")),
    request_body = OpenBody,
    responses((status = 202, body = OpenAccepted, description = "queued"), (status = 200, body = OpenAccepted, description = "idempotent repeat"),
        (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn open_box(
    caller: Caller,
    State(s): State<AppState>,
    P((id, box_no)): P<(String, String)>,
    Body(body): Body<OpenBody>,
) -> Result<Response, ApiError> {
    let device = caller.device(&s.store, Role::Operator, &id).await?;
    let box_no = box_no
        .parse::<u16>()
        .ok()
        .and_then(|b| BoxNo::new(b).ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!("box {box_no:?} is not a box number (1..65535)"))
        })?;
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(ApiError::bad_request(
            "reason is required (1 to 500 characters): say why the box is opened; it goes to the audit log",
        ));
    }
    check_text("reason", &reason, 500).map_err(ApiError::bad_request)?;
    if let Some(k) = &body.idempotency_key {
        if k.is_empty() {
            return Err(ApiError::bad_request("idempotency_key must not be empty"));
        }
        check_text("idempotency_key", k, 128).map_err(ApiError::bad_request)?;
    }
    let ttl = match body.ttl_secs {
        None => s.default_ttl,
        Some(t) if (1..=3600).contains(&t) => Duration::from_secs(t),
        Some(_) => return Err(ApiError::bad_request("ttl_secs must be between 1 and 3600")),
    };
    let (row, created) = s
        .commands
        .open(OpenRequest {
            device,
            box_no,
            actor: caller.name,
            reason,
            idempotency_key: body.idempotency_key,
            ttl,
        })
        .await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(OpenAccepted {
            command_id: row.command_id.to_string(),
            status: row.status,
            expires_at: row.expires_at,
            created,
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/commands/{id}", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "command id"), CommandQuery),
    responses((status = 200, body = Command), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn command(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Q(q): Q<CommandQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let wait = match q.wait_secs {
        None | Some(0) => None,
        Some(w) if w <= 30 => Some(Duration::from_secs(w)),
        Some(_) => {
            return Err(ApiError::bad_request(
                "wait_secs must be between 0 and 30; poll again for longer waits",
            ));
        }
    };
    let row = match wait {
        None => s.commands.current(&id).await?,
        Some(wait) => s.commands.wait_final(&id, wait).await?,
    };
    match row {
        Some(row) => {
            caller.require_device(&s.store, &row.device_id).await?;
            Ok(Json(Command::from(row)).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no command {id:?}"),
        )),
    }
}

//! HTTP routes of alarms: list and filter, one alarm with its history, acknowledge, clear.

use api_types::alarms::AlarmQuery;
use api_types::alarms::NoteBody;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::message::check_text;

use api_types::alarms::{Alarm, AlarmDetail, AlarmsList};
use api_types::{AlarmKind, Severity};

use crate::api::auth::{Caller, Role};
use crate::api::convert::all;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, P, Q, device_id};
use crate::api::state::AppState;
use crate::store::{AlarmAction, AlarmFilter, AlarmRow};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alarms", get(list_alarms))
        .route("/api/v1/alarms/:id", get(alarm))
        .route("/api/v1/alarms/:id/ack", post(ack))
        .route("/api/v1/alarms/:id/clear", post(clear))
}

#[utoipa::path(get, path = "/api/v1/alarms", tag = "alarms", security(("bearer" = [])),
    params(AlarmQuery),
    responses((status = 200, body = AlarmsList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list_alarms(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<AlarmQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let state = q.state.unwrap_or_else(|| "open".into());
    if !["open", "active", "acknowledged", "cleared", "all"].contains(&state.as_str()) {
        return Err(ApiError::bad_request(format!(
            "state {state:?} is unknown; use open, active, acknowledged, cleared or all"
        )));
    }
    let kind = match &q.kind {
        None => None,
        Some(k) => Some(AlarmKind::parse(k).ok_or_else(|| {
            ApiError::bad_request(format!(
                "kind {k:?} is unknown; use one of: {}",
                AlarmKind::choices()
            ))
        })?),
    };
    let severity = match &q.severity {
        None => None,
        Some(sev) => Some(Severity::parse(sev).ok_or_else(|| {
            ApiError::bad_request(format!(
                "severity {sev:?} is unknown; use one of: {}",
                Severity::choices()
            ))
        })?),
    };
    if let Some(d) = &q.device {
        caller.require_device(&s.store, &device_id(d)?).await?;
    }
    let sites = caller.site_filter(q.site.as_deref())?;
    let alarms = s
        .store
        .alarms(&AlarmFilter {
            state: Some(state),
            sites,
            device: q.device,
            kind,
            severity,
            limit: q.limit.unwrap_or(200).clamp(1, 10_000),
        })
        .await?;
    Ok(Json(AlarmsList {
        count: alarms.len(),
        alarms: all(alarms),
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/alarms/{id}", tag = "alarms", security(("bearer" = [])),
    params(("id" = String, Path, description = "alarm id")),
    responses((status = 200, body = AlarmDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn alarm(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let Some(alarm) = s.store.alarm(&id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no alarm {id:?}"),
        ));
    };
    require_alarm_site(&caller, &alarm)?;
    let history = s.store.alarm_history(&id).await?;
    Ok(Json(AlarmDetail {
        alarm: alarm.into(),
        history: all(history),
    })
    .into_response())
}

/// An alarm belongs to its device's site; one of a device in no cabinet to the whole fleet.
fn require_alarm_site(caller: &Caller, alarm: &AlarmRow) -> Result<(), ApiError> {
    match &alarm.site_id {
        Some(site) => caller.require_site(site),
        None => caller.require_fleet(&format!("alarm {} (of a device in no site)", alarm.id)),
    }
}

/// Acknowledge or clear: the operator's two actions, each with a required note.
#[derive(Clone, Copy)]
enum Action {
    Ack,
    Clear,
}

async fn act(
    caller: Caller,
    s: &AppState,
    id: &str,
    body: &NoteBody,
    action: Action,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    if caller.sites.is_some()
        && let Some(alarm) = s.store.alarm(id).await?
    {
        require_alarm_site(&caller, &alarm)?;
    }
    let note = body.note.trim();
    if note.is_empty() {
        return Err(ApiError::bad_request(
            "note is required: say what was done or found; it goes into the alarm's history",
        ));
    }
    check_text("note", note, 500).map_err(ApiError::bad_request)?;
    let actor = format!("token:{}", caller.name);
    let now = crate::clock::now_ms();
    let (outcome, refusal) = match action {
        Action::Ack => (
            s.store.ack_alarm(id, &actor, note, now).await?,
            "only an active alarm can be acknowledged",
        ),
        Action::Clear => (
            s.store.clear_alarm(id, &actor, note, now).await?,
            "there is nothing left to clear",
        ),
    };
    match outcome {
        AlarmAction::Done(a) => {
            s.service.changes.send(crate::changes::Change::Alarms);
            Ok(Json(Alarm::from(*a)).into_response())
        }
        AlarmAction::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no alarm {id:?}"),
        )),
        AlarmAction::WrongState(state) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("alarm {id} is {state}; {refusal}"),
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/alarms/{id}/ack", tag = "alarms", security(("bearer" = [])),
    params(("id" = String, Path, description = "alarm id")), request_body = NoteBody,
    responses((status = 200, body = Alarm), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn ack(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Body(body): Body<NoteBody>,
) -> Result<Response, ApiError> {
    act(caller, &s, &id, &body, Action::Ack).await
}

#[utoipa::path(post, path = "/api/v1/alarms/{id}/clear", tag = "alarms", security(("bearer" = [])),
    params(("id" = String, Path, description = "alarm id")), request_body = NoteBody,
    responses((status = 200, body = Alarm), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn clear(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Body(body): Body<NoteBody>,
) -> Result<Response, ApiError> {
    act(caller, &s, &id, &body, Action::Clear).await
}

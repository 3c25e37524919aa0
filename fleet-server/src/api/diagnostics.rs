//! HTTP routes of remote diagnostics: an operator asks a cabinet for its newest log lines or
//! a fresh doctor report (audited); viewers read the requests and the answers.

use std::time::Duration;

use api_types::diagnostics::{
    Diagnostic, DiagnosticKind, DiagnosticReport, Diagnostics, DoctorCheck, LogLine,
    RequestDiagnostics,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use protocol::{DiagnosticsAsk, DiagnosticsBody};

use crate::api::auth::{Caller, Role};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, P};
use crate::api::state::AppState;
use crate::store::{DiagnosticRow, DiagnosticState};

/// Log lines asked for when the request does not say.
const DEFAULT_LINES: u16 = 200;
/// Longest a request may wait for its answer.
const MAX_WAIT_SECS: u32 = 30;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/devices/:id/diagnostics", get(list).post(request))
        .route("/api/v1/devices/:id/diagnostics/:rid", get(describe))
}

fn summary(body: &DiagnosticsBody) -> String {
    match body {
        DiagnosticsBody::Logs { lines, .. } => {
            let count = |l: &str| lines.iter().filter(|x| x.level == l).count();
            let n = |k: usize, what: &str| format!("{k} {what}{}", if k == 1 { "" } else { "s" });
            format!(
                "{}, {}, {}",
                n(lines.len(), "line"),
                n(count("ERROR"), "error"),
                n(count("WARN"), "warning")
            )
        }
        DiagnosticsBody::Doctor { checks } => {
            let failed: Vec<&str> = checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.name.as_str())
                .collect();
            if failed.is_empty() {
                format!("all {} checks pass", checks.len())
            } else {
                format!(
                    "{} of {} checks fail: {}",
                    failed.len(),
                    checks.len(),
                    failed.join(", ")
                )
            }
        }
        DiagnosticsBody::Refused { reason } => format!("refused: {reason}"),
    }
}

fn report(body: DiagnosticsBody) -> DiagnosticReport {
    match body {
        DiagnosticsBody::Logs {
            lines,
            dropped,
            level,
        } => DiagnosticReport::Logs {
            lines: lines
                .into_iter()
                .map(|l| LogLine {
                    at: l.at,
                    level: l.level,
                    target: l.target,
                    text: l.text,
                })
                .collect(),
            dropped,
            level,
        },
        DiagnosticsBody::Doctor { checks } => DiagnosticReport::Doctor {
            checks: checks
                .into_iter()
                .map(|c| DoctorCheck {
                    name: c.name,
                    ok: c.ok,
                    detail: c.detail,
                })
                .collect(),
        },
        DiagnosticsBody::Refused { reason } => DiagnosticReport::Refused { reason },
    }
}

fn view(r: DiagnosticRow, with_report: bool) -> Diagnostic {
    let (kind, lines) = match r.ask {
        DiagnosticsAsk::Logs { lines } => (DiagnosticKind::Logs, Some(lines)),
        DiagnosticsAsk::Doctor => (DiagnosticKind::Doctor, None),
    };
    let summary = match (&r.report, r.state) {
        (Some((_, body)), _) => Some(summary(body)),
        (None, DiagnosticState::Expired) => {
            Some("the cabinet did not answer before the deadline (offline?)".into())
        }
        (None, _) => None,
    };
    Diagnostic {
        id: r.id,
        device_id: r.device,
        kind,
        lines,
        state: r.state.as_str().into(),
        requested_by: r.requested_by,
        requested_at: r.requested_at,
        expires_at: r.expires_at,
        sent_at: r.sent_at,
        answered_at: r.answered_at,
        summary,
        report: if with_report {
            r.report.map(|(_, body)| report(body))
        } else {
            None
        },
    }
}

/// Asks the cabinet for its newest log lines or a doctor report. Sent at once when it is
/// online, and again until it answers or ten minutes pass; a pending request of the same
/// kind is returned instead of a second one. `wait_secs` holds the reply for the answer.
#[utoipa::path(post, path = "/api/v1/devices/{id}/diagnostics", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id")),
    request_body = RequestDiagnostics,
    responses((status = 202, body = Diagnostic, description = "requested; not answered yet"),
        (status = 200, body = Diagnostic, description = "answered within wait_secs, or expired"),
        (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn request(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Body(body): Body<RequestDiagnostics>,
) -> Result<Response, ApiError> {
    let device = caller.device(&s.store, Role::Operator, &id).await?;
    let ask = match body.kind {
        DiagnosticKind::Doctor => {
            if body.lines.is_some() {
                return Err(ApiError::bad_request(
                    "lines is for kind \"logs\"; a doctor report has none",
                ));
            }
            DiagnosticsAsk::Doctor
        }
        DiagnosticKind::Logs => {
            let lines = body.lines.unwrap_or(DEFAULT_LINES);
            let max = protocol::message::MAX_LOG_LINES;
            if lines == 0 || lines > max {
                return Err(ApiError::bad_request(format!(
                    "lines must be 1 to {max} (got {lines})"
                )));
            }
            DiagnosticsAsk::Logs { lines }
        }
    };
    let wait = body.wait_secs.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(ApiError::bad_request(format!(
            "wait_secs must be 0 to {MAX_WAIT_SECS} (got {wait}); read the request later instead"
        )));
    }
    if s.store.device_exists(&device).await?.is_none() {
        return Err(ApiError::never_connected(&device));
    }
    let (row, _new) = s
        .diagnostics
        .request(&device, ask, &caller.name, crate::clock::now_ms())
        .await?;
    let row = if wait > 0 {
        s.diagnostics
            .wait(&device, &row.id, Duration::from_secs(u64::from(wait)))
            .await?
            .unwrap_or(row)
    } else {
        row
    };
    let status = if row.state == DiagnosticState::Pending {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(row, true))).into_response())
}

/// The device's recent diagnostics requests (the newest 20), newest first, without the
/// reports (read one for it).
#[utoipa::path(get, path = "/api/v1/devices/{id}/diagnostics", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = Diagnostics), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    let device = caller.device(&s.store, Role::Viewer, &id).await?;
    let rows = s.store.diagnostics_of(device.as_str()).await?;
    Ok(Json(Diagnostics {
        diagnostics: rows.into_iter().map(|r| view(r, false)).collect(),
    })
    .into_response())
}

/// One request with the cabinet's answer.
#[utoipa::path(get, path = "/api/v1/devices/{id}/diagnostics/{rid}", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id"), ("rid" = String, Path, description = "request id")),
    responses((status = 200, body = Diagnostic), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn describe(
    caller: Caller,
    State(s): State<AppState>,
    P((id, rid)): P<(String, String)>,
) -> Result<Response, ApiError> {
    let device = caller.device(&s.store, Role::Viewer, &id).await?;
    match s.store.diagnostic(device.as_str(), &rid).await? {
        Some(r) => Ok(Json(view(r, true)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "device {device} has no diagnostics request {rid:?}: GET /api/v1/devices/{device}/diagnostics lists the newest 20"
            ),
        )),
    }
}

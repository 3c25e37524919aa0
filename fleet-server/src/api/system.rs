//! Operations endpoints: health and Prometheus metrics.

use api_types::system::{EventGap, EventGaps, HealthBody, RestoreInfo, Retention, RetentionClass};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::api::auth::{Caller, Role};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::state::AppState;
use crate::store::retention::Class;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/system/event-gaps", get(event_gaps))
        .route("/api/v1/system/retention", get(retention))
}

#[utoipa::path(get, path = "/api/v1/system/event-gaps", tag = "operations", security(("bearer" = [])),
    responses((status = 200, body = EventGaps), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn event_gaps(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let last_restore = s.store.last_restore().await?.map(|r| RestoreInfo {
        restored_at: r.restored_at,
        backup_taken_at: r.backup_taken_at,
        source: r.source,
    });
    let gaps = s
        .store
        .event_gaps(10_000)
        .await?
        .into_iter()
        .map(|g| EventGap {
            events: g.last_seq - g.first_seq + 1,
            device_id: g.device_id,
            first_seq: g.first_seq,
            last_seq: g.last_seq,
            detected_at: g.detected_at,
            reason: g.reason,
        })
        .collect();
    Ok(Json(EventGaps { last_restore, gaps }).into_response())
}

#[utoipa::path(get, path = "/api/v1/system/retention", tag = "operations", security(("bearer" = [])),
    responses((status = 200, body = Retention), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn retention(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let marks = s.store.retention_marks().await?;
    let (database_bytes, free_bytes) = s.store.database_bytes().await?;
    let classes = Class::ALL
        .into_iter()
        .map(|c| {
            let m = marks.iter().find(|m| m.class == c);
            RetentionClass {
                class: c.as_str().to_owned(),
                keep_days: s.retention.as_ref().and_then(|p| c.days(p)),
                cleared_before: m.map_or(0, |m| m.before),
                rows_removed: m.map_or(0, |m| m.rows),
                last_pass: m.map_or(0, |m| m.at),
            }
        })
        .collect();
    Ok(Json(Retention {
        enabled: s.retention.is_some(),
        database_bytes,
        free_bytes,
        classes,
    })
    .into_response())
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = HealthBody), (status = 503, body = HealthBody, description = "degraded")))]
pub(crate) async fn healthz(State(s): State<AppState>) -> Response {
    let ping = tokio::time::timeout(Duration::from_secs(2), s.store.ping()).await;
    let database = match ping {
        Ok(Ok(())) => s.health.problem(),
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("database did not answer within 2 s".into()),
    };
    let broker = s.health.broker();
    let healthy = database.is_none() && !matches!(broker, Some(Err(_)));
    let body = HealthBody {
        status: if healthy { "ok" } else { "degraded" }.to_owned(),
        database: database.unwrap_or_else(|| "ok".into()),
        broker: broker.map(|b| b.err().unwrap_or_else(|| "ok".into())),
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus / OpenMetrics text", content_type = "application/openmetrics-text")))]
pub(crate) async fn metrics(State(s): State<AppState>) -> Response {
    // Fleet gauges come from the database at scrape time; if it is down they keep their last
    // values and the health endpoint says why.
    if let (Ok(b), Ok(alarms)) = (
        s.store.box_counts().await,
        s.store.open_alarm_counts().await,
    ) {
        s.metrics.fleet(
            &[
                ("free", b.free),
                ("occupied", b.occupied),
                ("reserved", b.reserved),
                ("out_of_service", b.out_of_service),
                ("faulty", b.faulty),
            ],
            &alarms,
        );
    }
    if let Ok((seq, _)) = s.store.audit_head().await {
        s.metrics.audit_head_seq.set(seq);
    }
    let mut res = s.metrics.encode().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res
}

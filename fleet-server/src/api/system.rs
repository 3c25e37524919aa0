//! Operations endpoints: health and Prometheus metrics.

use api_types::system::HealthBody;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::api::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
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

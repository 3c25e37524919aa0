//! HTTP routes for live views (the operator console): the fleet overview per site, and a
//! Server-Sent Events stream of change notices telling a view what to refetch.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use api_types::live::{Me, Overview};

use crate::api::auth::{Caller, Role};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::state::AppState;
use crate::changes::Change;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/stream", get(stream))
        .route("/api/v1/me", get(me))
}

/// Who the token belongs to and its role: a console greys out what the role may not do.
#[utoipa::path(get, path = "/api/v1/me", tag = "live", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn me(caller: Caller) -> Result<Response, ApiError> {
    Ok(Json(Me {
        name: caller.name,
        role: caller.role,
        sites: caller.sites,
    })
    .into_response())
}

/// Every site at a glance: devices online, boxes by state, open alarms, uses per hour.
#[utoipa::path(get, path = "/api/v1/overview", tag = "live", security(("bearer" = [])),
    responses((status = 200, body = Overview), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn overview(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let at = crate::clock::now_ms();
    let mut sites = s
        .store
        .overview(at, s.service.start_of_local_day(at))
        .await?;
    sites.retain(|site| caller.may(&site.id));
    Ok(Json(Overview { at, sites }).into_response())
}

/// Change notices as Server-Sent Events. The first event is `hello` (data: server time);
/// then `device` (`{"device_id"}`), `command` (`{"command_id", "device_id", "status"}`),
/// `alarms` and `items` as things change, and `resync` when this client fell behind and
/// should refetch everything. A `keep-alive` comment comes every 10 s.
#[utoipa::path(get, path = "/api/v1/stream", tag = "live", security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", description = "change notices"),
        (status = "4XX", body = ErrorBody)))]
pub(crate) async fn stream(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let hello = Event::default()
        .event("hello")
        .data(crate::clock::now_ms().to_string());
    // A caller limited to sites hears of its own devices only: those placed in its sites'
    // cabinets when it connected (a cabinet placed later: reconnect).
    let visible: Option<std::collections::HashSet<String>> = match &caller.sites {
        None => None,
        Some(sites) => Some(
            s.store
                .cabinets(Some(sites))
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect(),
        ),
    };
    let changes = BroadcastStream::new(s.service.changes.subscribe())
        .filter(move |r| match (r, &visible) {
            (Ok(Change::Device { device_id } | Change::Command { device_id, .. }), Some(v)) => {
                v.contains(device_id)
            }
            _ => true,
        })
        .map(|r| {
            Ok::<_, Infallible>(match r {
                Ok(c) => Event::default()
                    .event(c.kind())
                    .json_data(&c)
                    .unwrap_or_else(|_| Event::default().event("resync")),
                Err(BroadcastStreamRecvError::Lagged(n)) => Event::default()
                    .event("resync")
                    .data(format!("{n} changes missed")),
            })
        });
    let events = tokio_stream::once(Ok(hello)).chain(changes);
    Ok(Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(10))
                .text("keep-alive"),
        )
        .into_response())
}

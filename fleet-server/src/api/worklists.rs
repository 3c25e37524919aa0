//! The helpers' work lists (collect, deposit, overdue) and unmet demand.

use api_types::items::SinceQuery;
use api_types::items::{UnmetDemand, UnmetSite};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use api_types::items::{Worklist, WorklistItem};

use crate::api::auth::{Caller, Role};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::Q;
use crate::api::state::AppState;
use crate::store::ItemRow;
use api_types::query::SiteQuery;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/worklists/collect", get(worklist_collect))
        .route("/api/v1/worklists/deposit", get(worklist_deposit))
        .route("/api/v1/worklists/overdue", get(worklist_overdue))
        .route("/api/v1/unmet-demand", get(unmet_demand))
}

fn worklist_json(items: Vec<ItemRow>, now: i64) -> Response {
    let items: Vec<WorklistItem> = items
        .into_iter()
        .map(|item| WorklistItem {
            age_ms: now - item.in_box_at.unwrap_or(item.created_at),
            item: item.into(),
        })
        .collect();
    Json(Worklist {
        count: items.len(),
        items,
    })
    .into_response()
}

#[utoipa::path(get, path = "/api/v1/worklists/collect", tag = "work lists", security(("bearer" = [])),
    params(SiteQuery),
    responses((status = 200, body = Worklist), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn worklist_collect(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SiteQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let site = caller.site_filter(q.site.as_deref())?;
    let items = s.store.worklist_collect(site.as_deref()).await?;
    Ok(worklist_json(items, crate::clock::now_ms()))
}

#[utoipa::path(get, path = "/api/v1/worklists/deposit", tag = "work lists", security(("bearer" = [])),
    params(SiteQuery),
    responses((status = 200, body = Worklist), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn worklist_deposit(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SiteQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let site = caller.site_filter(q.site.as_deref())?;
    let items = s.store.worklist_deposit(site.as_deref()).await?;
    Ok(worklist_json(items, crate::clock::now_ms()))
}

#[utoipa::path(get, path = "/api/v1/worklists/overdue", tag = "work lists", security(("bearer" = [])),
    params(SiteQuery),
    responses((status = 200, body = Worklist), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn worklist_overdue(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SiteQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let now = crate::clock::now_ms();
    let site = caller.site_filter(q.site.as_deref())?;
    let items = s
        .store
        .worklist_overdue(site.as_deref(), s.service.collect_before(now))
        .await?;
    Ok(worklist_json(items, now))
}

#[utoipa::path(get, path = "/api/v1/unmet-demand", tag = "reservations", security(("bearer" = [])),
    params(SinceQuery),
    responses((status = 200, body = UnmetDemand), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn unmet_demand(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SinceQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let rows = s.store.unmet_demand(q.since.unwrap_or(0)).await?;
    let sites = rows
        .into_iter()
        // Refusals of `near` requests that matched no site belong to the whole fleet.
        .filter(|(site, _)| match site {
            Some(site) => caller.may(site),
            None => caller.sites.is_none(),
        })
        .map(|(site_id, refused)| UnmetSite { site_id, refused })
        .collect();
    Ok(Json(UnmetDemand { sites }).into_response())
}

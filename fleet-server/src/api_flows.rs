//! HTTP routes of the locker service: sites, cabinets and boxes, staff, reservations, items,
//! staff work lists and unmet demand. Errors use the shape of `api`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use protocol::BoxNo;
use protocol::message::check_text;
use serde::Deserialize;
use serde_json::json;

use crate::api::{ApiError, AppState, Body, Caller, Q, Role, device_id};
use crate::flows::{SiteKind, Size};
use crate::service::{ReservationRequest, ServiceError};
use crate::store::SiteRow;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sites", get(list_sites).post(create_site))
        .route("/api/v1/sites/:id", get(site).put(put_site))
        .route("/api/v1/cabinets", get(list_cabinets))
        .route("/api/v1/cabinets/:id", get(cabinet).put(put_cabinet))
        .route("/api/v1/cabinets/:id/boxes/:box/service", put(box_service))
        .route("/api/v1/staff", get(list_staff).post(create_staff))
        .route("/api/v1/staff/:id", delete(deactivate_staff))
        .route("/api/v1/reservations", post(reserve))
        .route("/api/v1/reservations/:id", delete(cancel))
        .route("/api/v1/items", get(list_items))
        .route("/api/v1/items/:id", get(item))
        .route("/api/v1/worklists/collect", get(worklist_collect))
        .route("/api/v1/worklists/deposit", get(worklist_deposit))
        .route("/api/v1/worklists/overdue", get(worklist_overdue))
        .route("/api/v1/unmet-demand", get(unmet_demand))
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::BadRequest(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            ServiceError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            ServiceError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            e @ ServiceError::NoFreeBox { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            ServiceError::Store(s) => s.into(),
            ServiceError::Secret(s) => {
                tracing::error!(error = %s, "secret handling failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, s.to_string())
            }
        }
    }
}

fn box_no(n: u16) -> Result<BoxNo, ApiError> {
    BoxNo::new(n).map_err(|e| ApiError::bad_request(e.to_string()))
}

// ------------------------------------------------------------------------------ sites

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteBody {
    #[serde(default)]
    id: Option<String>,
    kind: String,
    name: String,
    #[serde(default)]
    address: String,
    lat: f64,
    lon: f64,
}

fn site_row(id: &str, b: SiteBody) -> Result<SiteRow, ApiError> {
    protocol::DeviceId::parse(id)
        .map_err(|_| ApiError::bad_request("site id: 1 to 64 letters, digits, '-' or '_'"))?;
    if SiteKind::parse(&b.kind).is_none() {
        return Err(ApiError::bad_request(format!(
            "kind {:?} is unknown; use one of: {}",
            b.kind,
            SiteKind::choices()
        )));
    }
    if b.name.trim().is_empty() {
        return Err(ApiError::bad_request("name is required"));
    }
    check_text("name", &b.name, 200).map_err(ApiError::bad_request)?;
    check_text("address", &b.address, 500).map_err(ApiError::bad_request)?;
    if !(-90.0..=90.0).contains(&b.lat) || !(-180.0..=180.0).contains(&b.lon) {
        return Err(ApiError::bad_request(
            "lat must be -90..90 and lon -180..180",
        ));
    }
    let now = crate::now_ms();
    Ok(SiteRow {
        id: id.to_owned(),
        kind: b.kind,
        name: b.name.trim().to_owned(),
        address: b.address,
        lat: b.lat,
        lon: b.lon,
        created_at: now,
        updated_at: now,
    })
}

async fn create_site(
    caller: Caller,
    State(s): State<AppState>,
    Body(body): Body<SiteBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let Some(id) = body.id.clone() else {
        return Err(ApiError::bad_request("id is required"));
    };
    let row = site_row(&id, body)?;
    if !s.store.upsert_site(&row).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("site {id:?} exists; PUT /api/v1/sites/{id} changes it"),
        ));
    }
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

async fn put_site(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<SiteBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    if body.id.as_ref().is_some_and(|b| b != &id) {
        return Err(ApiError::bad_request(
            "the body's id differs from the path's",
        ));
    }
    let row = site_row(&id, body)?;
    let created = s.store.upsert_site(&row).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(s.store.site(&id).await?.unwrap_or(row))).into_response())
}

async fn list_sites(caller: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(json!({ "sites": s.store.sites().await? })).into_response())
}

async fn site(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let Some(site) = s.store.site(&id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no site {id:?}"),
        ));
    };
    let cabinets = s.store.cabinets(Some(&id)).await?;
    Ok(Json(json!({ "site": site, "cabinets": cabinets })).into_response())
}

// ------------------------------------------------------------------------------ cabinets

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CabinetBody {
    site_id: String,
    #[serde(default)]
    name: Option<String>,
    /// Boxes to configure; boxes not listed keep their configuration.
    #[serde(default)]
    boxes: Vec<BoxBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoxBody {
    #[serde(rename = "box")]
    box_no: u16,
    size: String,
    #[serde(default)]
    accessible: bool,
}

async fn put_cabinet(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<CabinetBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let device = device_id(&id)?;
    if s.store.site(&body.site_id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("site {:?} does not exist; create it first", body.site_id),
        ));
    }
    let name = body.name.unwrap_or_else(|| id.clone());
    check_text("name", &name, 200).map_err(ApiError::bad_request)?;
    if body.boxes.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 boxes per cabinet"));
    }
    let mut boxes = Vec::with_capacity(body.boxes.len());
    for b in &body.boxes {
        let size = Size::parse(&b.size.to_ascii_uppercase()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "box {}: size {:?} is unknown; use one of: {}",
                b.box_no,
                b.size,
                Size::choices()
            ))
        })?;
        boxes.push((box_no(b.box_no)?, size, b.accessible));
    }
    s.store
        .upsert_cabinet(&device, &body.site_id, &name, &boxes, crate::now_ms())
        .await?;
    let _ = s.service.codes.send(device.clone()).await;
    cabinet_response(&s, &device).await
}

async fn cabinet_response(s: &AppState, device: &protocol::DeviceId) -> Result<Response, ApiError> {
    let Some(cab) = s.store.cabinet(device).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "cabinet {device} is not configured; PUT /api/v1/cabinets/{device} configures it"
            ),
        ));
    };
    let boxes = s.store.box_views(device).await?;
    Ok(Json(json!({ "cabinet": cab, "boxes": boxes })).into_response())
}

async fn cabinet(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    cabinet_response(&s, &device_id(&id)?).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteQuery {
    #[serde(default)]
    site: Option<String>,
}

async fn list_cabinets(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SiteQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(json!({ "cabinets": s.store.cabinets(q.site.as_deref()).await? })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceBody {
    in_service: bool,
    #[serde(default)]
    note: Option<String>,
}

async fn box_service(
    caller: Caller,
    State(s): State<AppState>,
    Path((id, b)): Path<(String, u16)>,
    Body(body): Body<ServiceBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let device = device_id(&id)?;
    let b = box_no(b)?;
    if let Some(n) = &body.note {
        check_text("note", n, 500).map_err(ApiError::bad_request)?;
    }
    if !body.in_service && body.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "note is required when taking a box out of service: say why",
        ));
    }
    if !s
        .store
        .set_box_service(&device, b, body.in_service, body.note.as_deref())
        .await?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("box {b} of cabinet {device} is not configured"),
        ));
    }
    cabinet_response(&s, &device).await
}

// ------------------------------------------------------------------------------ staff

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StaffBody {
    id: String,
    name: String,
    /// The site whose cabinets accept this person; none: every site.
    #[serde(default)]
    site_id: Option<String>,
    /// PIN or card id; hashed, never stored or returned.
    credential: String,
}

async fn create_staff(
    caller: Caller,
    State(s): State<AppState>,
    Body(body): Body<StaffBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    check_text("name", &body.name, 200).map_err(ApiError::bad_request)?;
    let row = s
        .service
        .add_staff(
            &body.id,
            body.name.trim(),
            body.site_id.as_deref(),
            &body.credential,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

async fn list_staff(caller: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(json!({ "staff": s.store.staff().await? })).into_response())
}

async fn deactivate_staff(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    if !s.store.deactivate_staff(&id, crate::now_ms()).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no staff {id:?}"),
        ));
    }
    s.service.resync_site(None).await?;
    Ok(Json(json!({ "id": id, "active": false })).into_response())
}

// ------------------------------------------------------------------------------ reservations

async fn reserve(
    caller: Caller,
    State(s): State<AppState>,
    Body(body): Body<ReservationRequest>,
) -> Result<Response, ApiError> {
    caller.require(Role::Platform)?;
    let r = s.service.reserve(body, &caller.name).await?;
    let status = if r.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut v = serde_json::to_value(&r).unwrap_or_default();
    if !r.created {
        v["note"] = json!(
            "this idempotency key was used before: the existing reservation is returned; its code was shown only once"
        );
    }
    Ok((status, Json(v)).into_response())
}

async fn cancel(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Platform)?;
    let actor = format!("token:{}", caller.name);
    Ok(Json(s.service.cancel(&id, &actor).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemsQuery {
    #[serde(default)]
    case_number: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

async fn list_items(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<ItemsQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(st) = &q.state
        && crate::flows::ItemState::parse(st).is_none()
    {
        return Err(ApiError::bad_request(format!(
            "state {st:?} is unknown; use one of: {}",
            crate::flows::ItemState::choices()
        )));
    }
    let items = s
        .store
        .items(
            q.case_number.as_deref(),
            q.state.as_deref(),
            q.site.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 10_000),
        )
        .await?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn item(
    caller: Caller,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let Some(item) = s.store.item(&id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no item {id:?}"),
        ));
    };
    let history = s.store.item_history(&id).await?;
    Ok(Json(json!({ "item": item, "history": history })).into_response())
}

// ------------------------------------------------------------------------------ work lists

fn worklist_json(items: Vec<crate::store::ItemRow>, now: i64) -> Response {
    let rows: Vec<_> = items
        .into_iter()
        .map(|i| {
            let since = i.in_box_at.unwrap_or(i.created_at);
            let mut v = serde_json::to_value(&i).unwrap_or_default();
            v["age_ms"] = json!(now - since);
            v
        })
        .collect();
    Json(json!({ "count": rows.len(), "items": rows })).into_response()
}

async fn worklist_collect(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SiteQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let items = s.store.worklist_collect(q.site.as_deref()).await?;
    Ok(worklist_json(items, crate::now_ms()))
}

async fn worklist_deposit(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SiteQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let items = s.store.worklist_deposit(q.site.as_deref()).await?;
    Ok(worklist_json(items, crate::now_ms()))
}

async fn worklist_overdue(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SiteQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let now = crate::now_ms();
    let items = s
        .store
        .worklist_overdue(q.site.as_deref(), s.service.collect_before(now))
        .await?;
    Ok(worklist_json(items, now))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SinceQuery {
    #[serde(default)]
    since: Option<i64>,
}

async fn unmet_demand(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SinceQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let rows = s.store.unmet_demand(q.since.unwrap_or(0)).await?;
    let rows: Vec<_> = rows
        .into_iter()
        .map(|(site, n)| json!({ "site_id": site, "refused": n }))
        .collect();
    Ok(Json(json!({ "sites": rows })).into_response())
}

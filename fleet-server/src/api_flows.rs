//! HTTP routes of the locker service: sites, cabinets and boxes, staff, reservations, items,
//! staff work lists and unmet demand. Errors use the shape of `api`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use protocol::BoxNo;
use protocol::message::check_text;
use serde::Deserialize;

use crate::api::{ApiError, AppState, Body, Caller, ErrorBody, P, Q, Role, device_id};
use crate::service::{ReservationRequest, ServiceError};
use crate::store::{CabinetRow, DutyChange, HistoryRow, ItemRow, SiteRow, StaffRow};
use domain::flows::{SiteKind, Size};
use serde::Serialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sites", get(list_sites).post(create_site))
        .route("/api/v1/sites/:id", get(site).put(put_site))
        .route("/api/v1/cabinets", get(list_cabinets))
        .route("/api/v1/cabinets/:id", get(cabinet).put(put_cabinet))
        .route("/api/v1/cabinets/:id/boxes/:box/service", put(box_service))
        .route("/api/v1/staff", get(list_staff).post(create_staff))
        .route("/api/v1/staff/:id", delete(deactivate_staff))
        .route("/api/v1/staff/:id/duty", put(set_duty))
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SiteBody {
    /// Required on POST; on PUT the path names the site.
    #[serde(default)]
    id: Option<String>,
    /// service_hall, enterprise_cluster, station or community.
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

#[utoipa::path(post, path = "/api/v1/sites", tag = "sites", security(("bearer" = [])),
    request_body = SiteBody,
    responses((status = 201, body = SiteRow), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn create_site(
    caller: Caller,
    State(s): State<AppState>,
    Body(body): Body<SiteBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_fleet("creating a site")?;
    let Some(id) = body.id.clone() else {
        return Err(ApiError::bad_request("id is required"));
    };
    let row = site_row(&id, body)?;
    if !s.store.upsert_site(&row, &caller.name).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("site {id:?} exists; PUT /api/v1/sites/{id} changes it"),
        ));
    }
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

#[utoipa::path(put, path = "/api/v1/sites/{id}", tag = "sites", security(("bearer" = [])),
    params(("id" = String, Path, description = "site id")),
    request_body = SiteBody,
    responses((status = 200, body = SiteRow), (status = 201, body = SiteRow), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn put_site(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Body(body): Body<SiteBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_site(&id)?;
    if body.id.as_ref().is_some_and(|b| b != &id) {
        return Err(ApiError::bad_request(
            "the body's id differs from the path's",
        ));
    }
    let row = site_row(&id, body)?;
    let created = s.store.upsert_site(&row, &caller.name).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(s.store.site(&id).await?.unwrap_or(row))).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SitesList {
    sites: Vec<SiteRow>,
}

#[utoipa::path(get, path = "/api/v1/sites", tag = "sites", security(("bearer" = [])),
    responses((status = 200, body = SitesList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list_sites(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let mut sites = s.store.sites().await?;
    sites.retain(|site| caller.may(&site.id));
    Ok(Json(SitesList { sites }).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SiteDetail {
    site: SiteRow,
    cabinets: Vec<CabinetRow>,
}

#[utoipa::path(get, path = "/api/v1/sites/{id}", tag = "sites", security(("bearer" = [])),
    params(("id" = String, Path, description = "site id")),
    responses((status = 200, body = SiteDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn site(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    caller.require_site(&id)?;
    let Some(site) = s.store.site(&id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no site {id:?}"),
        ));
    };
    let cabinets = s.store.cabinets(Some(std::slice::from_ref(&id))).await?;
    Ok(Json(SiteDetail { site, cabinets }).into_response())
}

// ------------------------------------------------------------------------------ cabinets

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CabinetBody {
    site_id: String,
    #[serde(default)]
    name: Option<String>,
    /// Boxes to configure; boxes not listed keep their configuration.
    #[serde(default)]
    boxes: Vec<BoxBody>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BoxBody {
    #[serde(rename = "box")]
    box_no: u16,
    /// S, M or L.
    size: String,
    #[serde(default)]
    accessible: bool,
}

#[utoipa::path(put, path = "/api/v1/cabinets/{id}", tag = "cabinets", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id of the cabinet")),
    request_body = CabinetBody,
    responses((status = 200, body = CabinetDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn put_cabinet(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Body(body): Body<CabinetBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let device = device_id(&id)?;
    caller.require_site(&body.site_id)?;
    if let Some(placed) = s.store.cabinet(&device).await? {
        // Moving a cabinet out of a site is a change to that site too.
        caller.require_site(&placed.site_id)?;
    }
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
        .upsert_cabinet(
            &device,
            &body.site_id,
            &name,
            &boxes,
            crate::now_ms(),
            &caller.name,
        )
        .await?;
    let _ = s.service.codes.send(device.clone()).await;
    cabinet_response(&s, &device).await
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CabinetDetail {
    cabinet: CabinetRow,
    boxes: Vec<crate::store::BoxView>,
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
    Ok(Json(CabinetDetail {
        cabinet: cab,
        boxes,
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/cabinets/{id}", tag = "cabinets", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id of the cabinet")),
    responses((status = 200, body = CabinetDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn cabinet(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let device = device_id(&id)?;
    caller.require_device(&s.store, &device).await?;
    cabinet_response(&s, &device).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SiteQuery {
    /// Only this site.
    #[serde(default)]
    site: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CabinetsList {
    cabinets: Vec<CabinetRow>,
}

#[utoipa::path(get, path = "/api/v1/cabinets", tag = "cabinets", security(("bearer" = [])),
    params(SiteQuery),
    responses((status = 200, body = CabinetsList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list_cabinets(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<SiteQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let site = caller.site_filter(q.site.as_deref())?;
    let cabinets = s.store.cabinets(site.as_deref()).await?;
    Ok(Json(CabinetsList { cabinets }).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceBody {
    in_service: bool,
    #[serde(default)]
    note: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/cabinets/{id}/boxes/{box}/service", tag = "cabinets", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id of the cabinet"), ("box" = u16, Path, description = "box number")),
    request_body = ServiceBody,
    responses((status = 200, body = CabinetDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn box_service(
    caller: Caller,
    State(s): State<AppState>,
    P((id, b)): P<(String, u16)>,
    Body(body): Body<ServiceBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let device = device_id(&id)?;
    caller.require_device(&s.store, &device).await?;
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
        .set_box_service(
            &device,
            b,
            body.in_service,
            body.note.as_deref(),
            crate::now_ms(),
            &caller.name,
        )
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaffBody {
    id: String,
    name: String,
    /// The site whose cabinets accept this person; none: every site.
    #[serde(default)]
    site_id: Option<String>,
    /// PIN or card id; hashed, never stored or returned.
    credential: String,
    /// For alarm notifications: 5 to 20 digits, optionally with a leading +.
    #[serde(default)]
    phone: Option<String>,
    /// Receives SMS of the alarms of their site (every site without one); needs a phone.
    #[serde(default)]
    on_duty: bool,
}

#[utoipa::path(post, path = "/api/v1/staff", tag = "staff", security(("bearer" = [])),
    request_body = StaffBody,
    responses((status = 201, body = StaffRow), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
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
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffList {
    staff: Vec<StaffRow>,
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
    Ok(Json(StaffList { staff }).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffDeactivated {
    id: String,
    active: bool,
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
        .deactivate_staff(&id, crate::now_ms(), &caller.name)
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DutyBody {
    on_duty: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Duty {
    id: String,
    on_duty: bool,
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
        .set_on_duty(&id, body.on_duty, crate::now_ms(), &caller.name)
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

// ------------------------------------------------------------------------------ reservations

#[utoipa::path(post, path = "/api/v1/reservations", tag = "reservations", security(("bearer" = [])),
    request_body = crate::service::ReservationRequest,
    responses((status = 201, body = crate::service::Reservation, description = "reserved; `code` is in this answer only"), (status = 200, body = crate::service::Reservation, description = "idempotent repeat, without the code"), (status = 409, body = ErrorBody, description = "no free box (counted as unmet demand)"), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn reserve(
    caller: Caller,
    State(s): State<AppState>,
    Body(body): Body<ReservationRequest>,
) -> Result<Response, ApiError> {
    caller.require(Role::Platform)?;
    if caller.sites.is_some() {
        match (&body.site_id, &body.device_id) {
            (Some(site), _) => caller.require_site(site)?,
            (None, Some(device)) => caller.require_device(&s.store, &device_id(device)?).await?,
            (None, None) => {
                return Err(ApiError::bad_request(
                    "a token limited to sites must name site_id or device_id, not only `near`",
                ));
            }
        }
    }
    let r = s.service.reserve(body, &caller.name).await?;
    s.service.changes.send(crate::changes::Change::Items);
    let status = if r.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(r)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/reservations/{id}", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "reservation (item) id")),
    responses((status = 200, body = ItemRow), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn cancel(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Platform)?;
    if caller.sites.is_some()
        && let Some(item) = s.store.item(&id).await?
    {
        caller.require_site(&item.site_id)?;
    }
    let actor = format!("token:{}", caller.name);
    let item = s.service.cancel(&id, &actor).await?;
    s.service.changes.send(crate::changes::Change::Items);
    Ok(Json(item).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemsQuery {
    #[serde(default)]
    case_number: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ItemsList {
    items: Vec<ItemRow>,
}

#[utoipa::path(get, path = "/api/v1/items", tag = "items", security(("bearer" = [])),
    params(ItemsQuery),
    responses((status = 200, body = ItemsList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list_items(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<ItemsQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(st) = &q.state
        && domain::flows::ItemState::parse(st).is_none()
    {
        return Err(ApiError::bad_request(format!(
            "state {st:?} is unknown; use one of: {}",
            domain::flows::ItemState::choices()
        )));
    }
    let site = caller.site_filter(q.site.as_deref())?;
    let items = s
        .store
        .items(
            q.case_number.as_deref(),
            q.state.as_deref(),
            site.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 10_000),
        )
        .await?;
    Ok(Json(ItemsList { items }).into_response())
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ItemDetail {
    item: ItemRow,
    history: Vec<HistoryRow>,
}

#[utoipa::path(get, path = "/api/v1/items/{id}", tag = "items", security(("bearer" = [])),
    params(("id" = String, Path, description = "item id")),
    responses((status = 200, body = ItemDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn item(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let Some(item) = s.store.item(&id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no item {id:?}"),
        ));
    };
    caller.require_site(&item.site_id)?;
    let history = s.store.item_history(&id).await?;
    Ok(Json(ItemDetail { item, history }).into_response())
}

// ------------------------------------------------------------------------------ work lists

#[derive(Serialize, utoipa::ToSchema)]
pub struct Worklist {
    count: usize,
    items: Vec<WorklistItem>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WorklistItem {
    #[serde(flatten)]
    item: ItemRow,
    /// Since it went into the box (or was reserved, if it is not in one).
    age_ms: i64,
}

fn worklist_json(items: Vec<ItemRow>, now: i64) -> Response {
    let items: Vec<WorklistItem> = items
        .into_iter()
        .map(|item| WorklistItem {
            age_ms: now - item.in_box_at.unwrap_or(item.created_at),
            item,
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
    Ok(worklist_json(items, crate::now_ms()))
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
    Ok(worklist_json(items, crate::now_ms()))
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
    let now = crate::now_ms();
    let site = caller.site_filter(q.site.as_deref())?;
    let items = s
        .store
        .worklist_overdue(site.as_deref(), s.service.collect_before(now))
        .await?;
    Ok(worklist_json(items, now))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SinceQuery {
    /// Epoch ms (default: all time).
    #[serde(default)]
    since: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UnmetDemand {
    sites: Vec<UnmetSite>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UnmetSite {
    site_id: Option<String>,
    /// Reservations refused for lack of a free box.
    refused: i64,
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

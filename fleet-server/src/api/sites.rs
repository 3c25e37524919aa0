//! Sites (service halls, enterprise clusters, stations): create, change, list, one site.

use api_types::sites::Site;
use api_types::sites::{SiteBody, SiteDetail, SitesList};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::flows::SiteKind;
use protocol::message::check_text;

use crate::api::auth::{Caller, Role};
use crate::api::convert::all;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, P};
use crate::api::state::AppState;
use crate::store::SiteRow;
use api_types::codes;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sites", get(list_sites).post(create_site))
        .route("/api/v1/sites/:id", get(site).put(put_site))
}

fn site_row(id: &str, b: SiteBody) -> Result<SiteRow, ApiError> {
    protocol::DeviceId::parse(id)
        .map_err(|_| ApiError::bad_request("site id: 1 to 64 letters, digits, '-' or '_'"))?;
    let Some(kind) = SiteKind::parse(&b.kind) else {
        return Err(ApiError::bad_request(format!(
            "kind {:?} is unknown; use one of: {}",
            b.kind,
            SiteKind::choices()
        )));
    };
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
    let lang = b
        .lang
        .as_deref()
        .map(str::parse::<l10n::Lang>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("lang: {e}")).code(codes::INVALID_FIELD))?;
    let time_zone = b
        .time_zone
        .map(|tz| crate::sms_text::time_zone(&tz).map(|_| tz))
        .transpose()
        .map_err(|e| ApiError::bad_request(e).code(codes::INVALID_FIELD))?;
    let now = crate::clock::now_ms();
    Ok(SiteRow {
        id: id.to_owned(),
        kind,
        name: b.name.trim().to_owned(),
        address: b.address,
        lat: b.lat,
        lon: b.lon,
        lang,
        time_zone,
        created_at: now,
        updated_at: now,
    })
}

#[utoipa::path(post, path = "/api/v1/sites", tag = "sites", security(("bearer" = [])),
    request_body = SiteBody,
    responses((status = 201, body = Site), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
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
    Ok((StatusCode::CREATED, Json(Site::from(row))).into_response())
}

#[utoipa::path(put, path = "/api/v1/sites/{id}", tag = "sites", security(("bearer" = [])),
    params(("id" = String, Path, description = "site id")),
    request_body = SiteBody,
    responses((status = 200, body = Site), (status = 201, body = Site), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
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
    Ok((
        status,
        Json(Site::from(s.store.site(&id).await?.unwrap_or(row))),
    )
        .into_response())
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
    Ok(Json(SitesList { sites: all(sites) }).into_response())
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
    Ok(Json(SiteDetail {
        site: site.into(),
        cabinets: crate::api::convert::all(cabinets),
    })
    .into_response())
}

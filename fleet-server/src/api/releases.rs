//! HTTP routes of agent releases: register a signed release (`release.json`), upload its
//! binary, list, describe, withdraw. Admin only, and only with a token of the whole fleet;
//! viewers may read. The signature is checked against the server's trusted release keys
//! (`release_keys`) before anything is stored, the binary against the signed manifest.

use api_types::releases::{Release, ReleaseOffer, ReleaseOffered, ReleasesList, WithdrawBody};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use protocol::message::check_text;
use protocol::release::{MAX_RELEASE_BYTES, SignedRelease, Version};
use protocol::{Channel, Update, UpdateBody};

use crate::api::auth::{Caller, Role};
use crate::api::convert::all;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, P, device_id};
use crate::api::state::AppState;
use crate::store::{Registered, ReleaseState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/releases", post(register).get(list))
        .route("/api/v1/releases/:target/:version", get(describe))
        .route(
            "/api/v1/releases/:target/:version/binary",
            put(upload_binary).layer(DefaultBodyLimit::max(MAX_RELEASE_BYTES as usize)),
        )
        .route("/api/v1/releases/:target/:version/withdraw", post(withdraw))
        .route("/api/v1/devices/:id/release", post(offer))
}

fn version(v: &str) -> Result<Version, ApiError> {
    Version::parse(v).map_err(ApiError::bad_request)
}

fn not_found(target: &str, version: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no release {version} for {target}; GET /api/v1/releases lists them"),
    )
}

#[utoipa::path(post, path = "/api/v1/releases", tag = "releases", security(("bearer" = [])),
    request_body(content = String, content_type = "application/json",
        description = "release.json as `fleet-certs release sign` writes it: `manifest` (the signed JSON text), `key_id`, `signature`"),
    responses((status = 201, body = Release, description = "registered; upload the binary next"),
        (status = 200, body = Release, description = "this exact release was registered before"),
        (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn register(
    caller: Caller,
    State(s): State<AppState>,
    Body(signed): Body<SignedRelease>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_fleet("managing releases")?;
    let Some(keys) = &s.release_keys else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this server trusts no release key: set release_keys (or --release-keys) to the release-key.pub file of `fleet-certs release key`",
        ));
    };
    let manifest = signed.verify(keys).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("release refused ({}): {e}", e.reason()),
        )
    })?;
    let ours = Version::parse(env!("CARGO_PKG_VERSION")).map_err(ApiError::bad_request)?;
    if manifest.min_server_version > ours {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "release {} needs fleet-server {} or newer; this is {ours}: upgrade the server first",
                manifest.version, manifest.min_server_version
            ),
        ));
    }
    match s
        .store
        .register_release(&manifest, &signed, &caller.name, crate::clock::now_ms())
        .await?
    {
        Registered::New(row) => {
            Ok((StatusCode::CREATED, Json(Release::from(*row))).into_response())
        }
        Registered::Exists(row) if row.signed == signed => {
            Ok(Json(Release::from(*row)).into_response())
        }
        Registered::Exists(_) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "release {} for {} exists with other contents; a release is never replaced (cabinets may run it): give the new build a new version",
                manifest.version, manifest.target
            ),
        )),
    }
}

#[utoipa::path(put, path = "/api/v1/releases/{target}/{version}/binary", tag = "releases", security(("bearer" = [])),
    params(("target" = String, Path, description = "target triple"), ("version" = String, Path, description = "MAJOR.MINOR.PATCH")),
    request_body(content = String, content_type = "application/octet-stream", description = "the agent binary the manifest describes"),
    responses((status = 200, body = Release, description = "stored; the release is available"),
        (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn upload_binary(
    caller: Caller,
    State(s): State<AppState>,
    P((target, v)): P<(String, String)>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_fleet("managing releases")?;
    let version = version(&v)?;
    let row = s
        .store
        .release(&target, version)
        .await?
        .ok_or_else(|| not_found(&target, &v))?;
    if row.withdrawn_at.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("release {v} for {target} is withdrawn"),
        ));
    }
    row.manifest.check_binary(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("binary refused ({}): {e}", e.reason()),
        )
    })?;
    let row = s
        .store
        .store_release_binary(
            &target,
            version,
            &bytes,
            &caller.name,
            crate::clock::now_ms(),
        )
        .await?
        .ok_or_else(|| not_found(&target, &v))?;
    Ok(Json(Release::from(row)).into_response())
}

#[utoipa::path(get, path = "/api/v1/releases", tag = "releases", security(("bearer" = [])),
    responses((status = 200, body = ReleasesList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list(caller: Caller, State(s): State<AppState>) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(ReleasesList {
        releases: all(s.store.releases().await?),
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/releases/{target}/{version}", tag = "releases", security(("bearer" = [])),
    params(("target" = String, Path, description = "target triple"), ("version" = String, Path, description = "MAJOR.MINOR.PATCH")),
    responses((status = 200, body = Release), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn describe(
    caller: Caller,
    State(s): State<AppState>,
    P((target, v)): P<(String, String)>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let row = s
        .store
        .release(&target, version(&v)?)
        .await?
        .ok_or_else(|| not_found(&target, &v))?;
    Ok(Json(Release::from(row)).into_response())
}

#[utoipa::path(post, path = "/api/v1/releases/{target}/{version}/withdraw", tag = "releases", security(("bearer" = [])),
    params(("target" = String, Path, description = "target triple"), ("version" = String, Path, description = "MAJOR.MINOR.PATCH")),
    request_body = WithdrawBody,
    responses((status = 200, body = Release, description = "withdrawn (a repeat changes nothing)"), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn withdraw(
    caller: Caller,
    State(s): State<AppState>,
    P((target, v)): P<(String, String)>,
    Body(body): Body<WithdrawBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_fleet("managing releases")?;
    let note = body.note.trim();
    if note.is_empty() {
        return Err(ApiError::bad_request(
            "note is required (1 to 500 characters): say why",
        ));
    }
    check_text("note", note, 500).map_err(ApiError::bad_request)?;
    let row = s
        .store
        .withdraw_release(
            &target,
            version(&v)?,
            &caller.name,
            note,
            crate::clock::now_ms(),
        )
        .await?
        .ok_or_else(|| not_found(&target, &v))?;
    Ok(Json(Release::from(row)).into_response())
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/release", tag = "releases", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id")),
    request_body = ReleaseOffer,
    responses((status = 202, body = ReleaseOffered, description = "sent; the cabinet reports `release` events as it fetches and stages it"),
        (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn offer(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Body(body): Body<ReleaseOffer>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_fleet("managing releases")?;
    let device = device_id(&id)?;
    let row = s
        .store
        .release(&body.target, version(&body.version)?)
        .await?
        .ok_or_else(|| not_found(&body.target, &body.version))?;
    if row.state() != ReleaseState::Available {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "release {} for {} is {}, not available",
                body.version,
                body.target,
                row.state().as_str()
            ),
        ));
    }
    if !s.commands.online.is_online(&device) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("device {device} is offline; offer the release when it is connected"),
        ));
    }
    let window = body
        .window
        .clone()
        .map(protocol::release::MaintenanceWindow::from);
    if let Some(w) = &window {
        w.check().map_err(|why| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("field `window`: {why}"),
            )
        })?;
    }
    let update = Update {
        v: protocol::PROTOCOL_VERSION,
        body: UpdateBody::Offer {
            release: row.signed.clone(),
            rollback: body.rollback,
            install: body.install,
            window,
        },
    };
    s.store
        .audit_release_offer(&device, &row, &caller.name, crate::clock::now_ms())
        .await?;
    s.commands
        .publisher
        .publish(&device, Channel::Update, protocol::encode(&update));
    Ok((
        StatusCode::ACCEPTED,
        Json(ReleaseOffered {
            device_id: device.to_string(),
            target: body.target,
            version: body.version,
        }),
    )
        .into_response())
}

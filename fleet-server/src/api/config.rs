//! HTTP routes of central configuration: the layers of desired agent settings (admin with a
//! token of the whole fleet sets them; viewers read) and what each device runs with, drift
//! included.

use api_types::config::{
    AppliedConfig, ConfigField, ConfigLayer, ConfigOverview, DesiredConfig, DeviceConfig,
    DeviceConfigs, DeviceConfigsQuery, SetLayer,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};

use crate::api::auth::{Caller, Role};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, P, Q};
use crate::api::state::AppState;
use crate::central_config::{self, ConfigError};
use crate::store::LayerRow;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/config", get(overview))
        .route("/api/v1/config/devices", get(devices))
        .route("/api/v1/config/fleet", put(set_fleet))
        .route("/api/v1/config/:scope/:key", put(set_layer))
        .route("/api/v1/devices/:id/config", get(device))
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            ConfigError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            ConfigError::Store(s) => s.into(),
        }
    }
}

fn layer(l: LayerRow) -> ConfigLayer {
    ConfigLayer {
        scope: l.layer.scope.as_str().into(),
        key: l.layer.key,
        settings: l.layer.settings,
        revision: l.revision,
        updated_at: l.updated_at,
        updated_by: l.updated_by,
    }
}

fn device_view(d: central_config::DeviceConfig) -> DeviceConfig {
    let drift = d.drift();
    DeviceConfig {
        device_id: d.facts.device,
        online: d.facts.online,
        desired: DesiredConfig {
            version: d.desired.settings.version(),
            settings: d.desired.settings,
            sources: d
                .desired
                .sources
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        },
        applied: d.facts.applied.map(|a| AppliedConfig {
            version: a.version,
            state: a.state,
            reason: a.reason,
            settings: a.settings,
            at: a.at,
        }),
        drift,
    }
}

#[utoipa::path(get, path = "/api/v1/config", tag = "config", security(("bearer" = [])),
    responses((status = 200, body = ConfigOverview), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn overview(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let layers = s.store.config_layers().await?;
    Ok(Json(ConfigOverview {
        layers: layers.into_iter().map(layer).collect(),
        fields: protocol::settings::FIELDS
            .iter()
            .map(|f| ConfigField {
                name: f.name.into(),
                min: f.min,
                max: f.max,
                unit: f.unit.into(),
                live: f.live,
                about: f.about.into(),
            })
            .collect(),
    })
    .into_response())
}

async fn put_layer(
    caller: Caller,
    s: AppState,
    scope: &str,
    key: &str,
    body: SetLayer,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_fleet("configuring devices")?;
    let row = s
        .config
        .set_layer(
            scope,
            key,
            body.settings,
            &caller.name,
            crate::clock::now_ms(),
        )
        .await?;
    Ok(match row {
        Some(l) => Json(layer(l)).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Sets the fleet layer: what every device runs with unless a more specific layer says
/// otherwise.
#[utoipa::path(put, path = "/api/v1/config/fleet", tag = "config", security(("bearer" = [])),
    request_body = SetLayer,
    responses((status = 200, body = ConfigLayer, description = "the layer now; sent to online devices within seconds"),
        (status = 204, description = "an empty set: the layer is removed"),
        (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn set_fleet(
    caller: Caller,
    State(s): State<AppState>,
    Body(body): Body<SetLayer>,
) -> Result<Response, ApiError> {
    put_layer(caller, s, "fleet", "", body).await
}

/// Sets a layer: `site_kind/{kind}`, `site/{site id}`, `label/{name=value}` or
/// `device/{device id}`; the most specific wins, field by field.
#[utoipa::path(put, path = "/api/v1/config/{scope}/{key}", tag = "config", security(("bearer" = [])),
    params(("scope" = String, Path, description = "site_kind, site, label or device"),
        ("key" = String, Path, description = "the site kind, site id, name=value, or device id")),
    request_body = SetLayer,
    responses((status = 200, body = ConfigLayer, description = "the layer now; sent to online devices within seconds"),
        (status = 204, description = "an empty set: the layer is removed"),
        (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn set_layer(
    caller: Caller,
    State(s): State<AppState>,
    P((scope, key)): P<(String, String)>,
    Body(body): Body<SetLayer>,
) -> Result<Response, ApiError> {
    put_layer(caller, s, &scope, &key, body).await
}

#[utoipa::path(get, path = "/api/v1/config/devices", tag = "config", security(("bearer" = [])),
    params(DeviceConfigsQuery),
    responses((status = 200, body = DeviceConfigs), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn devices(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<DeviceConfigsQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let mut all = s.config.devices(None).await?;
    if let Some(sites) = &caller.sites {
        all.retain(|d| d.facts.site.as_ref().is_some_and(|s| sites.contains(s)));
    }
    if q.drift {
        all.retain(|d| d.drift());
    }
    Ok(Json(DeviceConfigs {
        devices: all.into_iter().map(device_view).collect(),
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/config", tag = "config", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = DeviceConfig), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn device(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    let id = caller.device(&s.store, Role::Viewer, &id).await?;
    match s.config.devices(Some(&id)).await?.pop() {
        Some(d) => Ok(Json(device_view(d)).into_response()),
        None => Err(ApiError::never_connected(&id)),
    }
}

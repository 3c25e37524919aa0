//! The HTTP API (axum): devices, remote open, commands, audit, tokens, health and metrics.
//!
//! Every error is JSON `{"error": "..."}` saying what was wrong and what to do. Bearer tokens
//! carry a role: viewer (read), platform (read + reservations), operator (+ remote open),
//! admin (everything + configuration and tokens). The service-flow routes live in
//! `api_flows`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::message::check_text;
use protocol::{BoxNo, DeviceId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::commands::{CommandError, Commands, OpenRequest};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub commands: Commands,
    pub metrics: Metrics,
    pub health: Health,
    pub service: crate::service::Service,
    pub admin_token_hash: String,
    pub default_ttl: Duration,
    pub saturation: crate::api_usage::SaturationSettings,
    /// Requests per token (keyed by the token's hash); `None`: unlimited.
    pub limiter: Option<Arc<TokenLimiter>>,
}

pub type TokenLimiter = governor::DefaultKeyedRateLimiter<String>;

/// The per-token limiter of `api_requests_per_sec` and `api_burst`; `None` when unlimited.
pub fn token_limiter(per_sec: u32, burst: u32) -> Option<Arc<TokenLimiter>> {
    let rate = std::num::NonZeroU32::new(per_sec)?;
    let burst = std::num::NonZeroU32::new(burst.max(1))?;
    Some(Arc::new(governor::RateLimiter::keyed(
        governor::Quota::per_second(rate).allow_burst(burst),
    )))
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/devices/:id", get(device))
        .route("/api/v1/devices/:id/events", get(events))
        .route("/api/v1/devices/:id/presence", get(presence))
        .route("/api/v1/devices/:id/boxes/:box/open", post(open_box))
        .route("/api/v1/commands/:id", get(command))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/openapi.json", get(openapi))
        .merge(crate::api_tokens::routes())
        .merge(crate::api_flows::routes())
        .merge(crate::api_alarms::routes())
        .merge(crate::api_live::routes())
        .merge(crate::api_usage::routes())
        .merge(crate::api_planning::routes())
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such endpoint; see PROTOCOL.md and README.md for the API",
            )
        })
        .with_state(state)
}

// ------------------------------------------------------------------------------ errors

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Every error answer: what was wrong and what to do.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let StoreError::Invalid(why) = e {
            return ApiError::bad_request(why);
        }
        tracing::error!(error = %e, "storage error in API request");
        match e {
            StoreError::Db(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the database is unavailable ({e}); retry shortly"),
            ),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::UnknownDevice(_) | CommandError::UnknownBox { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            CommandError::Store(s) => s.into(),
        }
    }
}

/// JSON body whose rejections use our error shape.
pub struct Body<T>(pub T);

#[axum::async_trait]
impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rej) => Err(ApiError::new(
                rej.status(),
                format!("invalid request body: {}", rej.body_text()),
            )),
        }
    }
}

/// Query string whose rejections use our error shape.
pub struct Q<T>(pub T);

#[axum::async_trait]
impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Q(v)),
            Err(rej) => Err(ApiError::bad_request(format!(
                "invalid query string: {}",
                rej.body_text()
            ))),
        }
    }
}

/// Path parameters whose rejections (a box number out of range, bad percent-encoding) use
/// our error shape instead of axum's plain text.
pub struct P<T>(pub T);

#[axum::async_trait]
impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(P(v)),
            Err(rej) => Err(ApiError::bad_request(format!(
                "invalid path: {}",
                rej.body_text()
            ))),
        }
    }
}

pub(crate) fn device_id(s: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

// ------------------------------------------------------------------------------ auth

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    /// The service platform: reservations and items, besides reading.
    Platform,
    Operator,
    Admin,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Platform => "platform",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// The authenticated caller of a request.
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The sites this caller is limited to; `None`: every site.
    pub sites: Option<Vec<String>>,
}

impl Caller {
    pub(crate) fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token {:?} has role {}; this needs {}",
                    self.name,
                    self.role.as_str(),
                    role.as_str()
                ),
            ))
        }
    }

    fn outside(&self, what: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token {:?} is limited to sites {}; {what}",
                self.name,
                self.sites.as_deref().unwrap_or_default().join(", ")
            ),
        )
    }

    /// For what spans the whole fleet (tokens, planning, the fleet-wide audit and change
    /// stream): refused to a token limited to sites.
    pub(crate) fn require_fleet(&self, what: &str) -> Result<(), ApiError> {
        match self.sites {
            None => Ok(()),
            Some(_) => Err(self.outside(&format!(
                "{what} covers the whole fleet: use a token without a site list"
            ))),
        }
    }

    /// Whether this caller may see and act on the site.
    pub(crate) fn may(&self, site: &str) -> bool {
        self.sites
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == site))
    }

    pub(crate) fn require_site(&self, site: &str) -> Result<(), ApiError> {
        if self.may(site) {
            Ok(())
        } else {
            Err(self.outside(&format!("site {site:?} is outside them")))
        }
    }

    /// The sites a list covers: the one asked for when allowed, else the caller's own
    /// (`None`: every site).
    pub(crate) fn site_filter(&self, asked: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
        match asked {
            Some(site) => self
                .require_site(site)
                .map(|()| Some(vec![site.to_owned()])),
            None => Ok(self.sites.clone()),
        }
    }

    /// Devices belong to a site through their cabinet: a device not placed in a cabinet
    /// belongs to no site and is visible only to callers without a site list.
    pub(crate) async fn require_device(
        &self,
        store: &Store,
        device: &DeviceId,
    ) -> Result<(), ApiError> {
        if self.sites.is_none() {
            return Ok(());
        }
        match store.cabinet(device).await? {
            Some(c) => self.require_site(&c.site_id),
            None => Err(self.outside(&format!("device {device} is in no site's cabinet"))),
        }
    }
}

/// Counts a request against its token's rate; 429 with `Retry-After` when over it. Only
/// known tokens are counted, so the limiter holds one entry per token, not per guess.
fn throttle(state: &AppState, hash: &str, name: &str) -> Result<(), ApiError> {
    use governor::clock::Clock;
    let Some(limiter) = &state.limiter else {
        return Ok(());
    };
    let key = hash.to_owned();
    match limiter.check_key(&key) {
        Ok(()) => Ok(()),
        Err(not_until) => {
            state.metrics.api_throttled.inc();
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            Err(ApiError {
                retry_after: Some(wait),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "token {name:?} is over its request rate (api_requests_per_sec); \
                         retry after {} ms, or spread the requests out",
                        wait.as_millis().max(1)
                    ),
                )
            })
        }
    }
}

/// SHA-256 in hex: tokens are stored and compared only as hashes.
pub fn token_hash(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

#[axum::async_trait]
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing token: send `Authorization: Bearer <token>`"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("malformed Authorization header: use `Bearer <token>`"))?;
        let hash = token_hash(token);
        if hash == state.admin_token_hash {
            throttle(state, &hash, "admin")?;
            return Ok(Caller {
                name: "admin".into(),
                role: Role::Admin,
                sites: None,
            });
        }
        let Some(t) = state.store.token(&hash).await? else {
            return Err(unauthorized("unknown token"));
        };
        let renew = "ask an admin for a new one (POST /api/v1/tokens)";
        if let Some(at) = t.revoked_at {
            return Err(unauthorized(&format!(
                "token {:?} ({}) was revoked at {}; {renew}",
                t.name,
                t.id,
                crate::api_usage::local_time(at, 0)
            )));
        }
        if let Some(at) = t.expires_at.filter(|&at| at <= crate::now_ms()) {
            return Err(unauthorized(&format!(
                "token {:?} ({}) expired at {}; {renew}",
                t.name,
                t.id,
                crate::api_usage::local_time(at, 0)
            )));
        }
        throttle(state, &hash, &t.name)?;
        let role = match t.role.as_str() {
            "admin" => Role::Admin,
            "operator" => Role::Operator,
            "platform" => Role::Platform,
            _ => Role::Viewer,
        };
        Ok(Caller {
            name: t.name,
            role,
            sites: t.sites,
        })
    }
}

// ------------------------------------------------------------------------------ handlers

/// The OpenAPI document of this API, generated from the handlers and types below.
pub(crate) async fn openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct HealthBody {
    /// `ok` or `degraded`.
    status: &'static str,
    /// `ok`, or what is wrong with the database.
    database: String,
    /// External broker mode only: `ok`, or why this replica cannot reach the broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    broker: Option<String>,
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
        status: if healthy { "ok" } else { "degraded" },
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

#[derive(Serialize, utoipa::ToSchema)]
pub struct DevicesList {
    devices: Vec<crate::store::DeviceRow>,
}

#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", security(("bearer" = [])),
    responses((status = 200, body = DevicesList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list_devices(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let mut devices = s.store.devices().await?;
    if let Some(sites) = &caller.sites {
        // The cabinets of the caller's sites, filtered in SQL like every other list.
        let placed: std::collections::HashSet<String> = s
            .store
            .cabinets(Some(sites))
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        devices.retain(|d| placed.contains(&d.id));
    }
    Ok(Json(DevicesList { devices }).into_response())
}

#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = crate::store::DeviceDetail), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn device(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let id = device_id(&id)?;
    caller.require_device(&s.store, &id).await?;
    match s.store.device(&id).await? {
        Some(d) => Ok(Json(d).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("unknown device {id}: it has never connected"),
        )),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Events with a greater seq.
    #[serde(default)]
    after: u64,
    /// 1 to 10000 (default 100).
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventsList {
    #[schema(value_type = String)]
    device: DeviceId,
    events: Vec<crate::store::EventRow>,
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/events", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id"), EventsQuery),
    responses((status = 200, body = EventsList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn events(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Q(q): Q<EventsQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let id = device_id(&id)?;
    caller.require_device(&s.store, &id).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let events = s.store.events(&id, q.after, limit).await?;
    Ok(Json(EventsList { device: id, events }).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LimitQuery {
    /// 1 to 10000 (default 100).
    limit: Option<i64>,
    /// Only this device.
    device: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PresenceList {
    #[schema(value_type = String)]
    device: DeviceId,
    presence: Vec<crate::store::PresenceRow>,
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/presence", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id"), LimitQuery),
    responses((status = 200, body = PresenceList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn presence(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Q(q): Q<LimitQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let id = device_id(&id)?;
    caller.require_device(&s.store, &id).await?;
    let rows = s
        .store
        .presence_log(&id, q.limit.unwrap_or(100).clamp(1, 10_000))
        .await?;
    Ok(Json(PresenceList {
        device: id,
        presence: rows,
    })
    .into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenBody {
    /// Why the box is opened (1 to 500 characters); goes to the audit log.
    reason: String,
    /// A retry with the same key returns the first command.
    idempotency_key: Option<String>,
    /// 1 to 3600 (default: the server's `command_ttl_secs`).
    ttl_secs: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OpenAccepted {
    command_id: String,
    status: String,
    expires_at: i64,
    /// false when an earlier command with the same idempotency key is returned.
    created: bool,
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/boxes/{box}/open", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id"), ("box" = u16, Path, description = "box number")),
    request_body = OpenBody,
    responses((status = 202, body = OpenAccepted, description = "queued"), (status = 200, body = OpenAccepted, description = "idempotent repeat"),
        (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn open_box(
    caller: Caller,
    State(s): State<AppState>,
    P((id, box_no)): P<(String, String)>,
    Body(body): Body<OpenBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator)?;
    let device = device_id(&id)?;
    caller.require_device(&s.store, &device).await?;
    let box_no = box_no
        .parse::<u16>()
        .ok()
        .and_then(|b| BoxNo::new(b).ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!("box {box_no:?} is not a box number (1..65535)"))
        })?;
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(ApiError::bad_request(
            "reason is required (1 to 500 characters): say why the box is opened; it goes to the audit log",
        ));
    }
    check_text("reason", &reason, 500).map_err(ApiError::bad_request)?;
    if let Some(k) = &body.idempotency_key {
        if k.is_empty() {
            return Err(ApiError::bad_request("idempotency_key must not be empty"));
        }
        check_text("idempotency_key", k, 128).map_err(ApiError::bad_request)?;
    }
    let ttl = match body.ttl_secs {
        None => s.default_ttl,
        Some(t) if (1..=3600).contains(&t) => Duration::from_secs(t),
        Some(_) => return Err(ApiError::bad_request("ttl_secs must be between 1 and 3600")),
    };
    let (row, created) = s
        .commands
        .open(OpenRequest {
            device,
            box_no,
            actor: caller.name,
            reason,
            idempotency_key: body.idempotency_key,
            ttl,
        })
        .await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(OpenAccepted {
            command_id: row.command_id,
            status: row.status,
            expires_at: row.expires_at,
            created,
        }),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CommandQuery {
    /// Long poll: 1 to 30 seconds to wait for the command to reach a final status before
    /// answering (default: answer at once). On time-out the current, non-final status is
    /// returned with 200; the client checks `status`.
    wait_secs: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/commands/{id}", tag = "devices", security(("bearer" = [])),
    params(("id" = String, Path, description = "command id"), CommandQuery),
    responses((status = 200, body = crate::store::CommandRow), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn command(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
    Q(q): Q<CommandQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let wait = match q.wait_secs {
        None | Some(0) => None,
        Some(w) if w <= 30 => Some(Duration::from_secs(w)),
        Some(_) => {
            return Err(ApiError::bad_request(
                "wait_secs must be between 0 and 30; poll again for longer waits",
            ));
        }
    };
    let row = match wait {
        None => s.store.command(&id).await?,
        Some(wait) => s.commands.wait_final(&id, wait).await?,
    };
    match row {
        Some(row) => {
            caller
                .require_device(&s.store, &device_id(&row.device_id)?)
                .await?;
            Ok(Json(row).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no command {id:?}"),
        )),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditList {
    entries: Vec<crate::store::AuditRow>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])),
    params(LimitQuery),
    responses((status = 200, body = AuditList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn audit(
    caller: Caller,
    State(s): State<AppState>,
    Q(q): Q<LimitQuery>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let device = q.device.as_deref().map(device_id).transpose()?;
    if let Some(d) = &device {
        caller.require_device(&s.store, d).await?;
    }
    let rows = s
        .store
        .audit(
            device.as_ref(),
            caller.sites.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 10_000),
        )
        .await?;
    Ok(Json(AuditList { entries: rows }).into_response())
}

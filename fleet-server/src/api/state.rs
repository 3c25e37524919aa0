//! What every handler shares: the store, the command and service front doors, the rate
//! limiter and the settings the API applies.

use std::sync::Arc;
use std::time::Duration;

use crate::commands::Commands;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
pub(crate) struct AppState {
    pub store: Store,
    pub commands: Commands,
    pub deployments: crate::deployments::Deployments,
    pub config: crate::central_config::CentralConfig,
    pub diagnostics: crate::diagnostics::Diagnostics,
    pub metrics: Metrics,
    pub health: Health,
    pub service: crate::service::Service,
    pub admin_token_hash: String,
    pub default_ttl: Duration,
    pub saturation: SaturationSettings,
    /// Requests per token (keyed by the token's hash); `None`: unlimited.
    pub limiter: Option<Arc<TokenLimiter>>,
    /// The release keys agent releases must be signed with; `None`: uploads refused.
    pub release_keys: Option<Arc<protocol::release::TrustedKeys>>,
    /// What retention keeps; `None`: retention is off.
    pub retention: Option<crate::store::retention::RetentionPolicy>,
}

pub(crate) type TokenLimiter = governor::DefaultKeyedRateLimiter<String>;

/// The per-token limiter of `api_requests_per_sec` and `api_burst`; `None` when unlimited.
pub(crate) fn token_limiter(per_sec: u32, burst: u32) -> Option<Arc<TokenLimiter>> {
    let rate = std::num::NonZeroU32::new(per_sec)?;
    let burst = std::num::NonZeroU32::new(burst.max(1))?;
    Some(Arc::new(governor::RateLimiter::keyed(
        governor::Quota::per_second(rate).allow_burst(burst),
    )))
}

/// The saturation yardstick: configured defaults, overridable per request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SaturationSettings {
    pub rate: f64,
    pub days: u32,
    pub window_days: u32,
}

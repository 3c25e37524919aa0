//! Bearer tokens and roles: who is calling, what they may do, which sites they may see, and
//! the per-token rate limit.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use protocol::DeviceId;

pub(crate) use api_types::Role;

use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::store::Store;

/// The authenticated caller of a request.
pub(crate) struct Caller {
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
    /// The role check, the device id parsed from the path, and the caller's reach to it: what
    /// every handler of one device starts with.
    pub(crate) async fn device(
        &self,
        store: &Store,
        role: Role,
        id: &str,
    ) -> Result<DeviceId, ApiError> {
        self.require(role)?;
        let device = crate::api::extract::device_id(id)?;
        self.require_device(store, &device).await?;
        Ok(device)
    }

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
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "token {name:?} is over its request rate (api_requests_per_sec); \
                     retry after {} ms, or spread the requests out",
                    wait.as_millis().max(1)
                ),
            )
            .retry_after(wait))
        }
    }
}

/// SHA-256 in hex: tokens are stored and compared only as hashes.
pub(crate) fn token_hash(token: &str) -> String {
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
                crate::clock::local_time(at, 0)
            )));
        }
        if let Some(at) = t.expires_at.filter(|&at| at <= crate::clock::now_ms()) {
            return Err(unauthorized(&format!(
                "token {:?} ({}) expired at {}; {renew}",
                t.name,
                t.id,
                crate::clock::local_time(at, 0)
            )));
        }
        throttle(state, &hash, &t.name)?;
        // A role this server does not know (a newer one's row) reads as the least.
        let role = Role::parse(&t.role).unwrap_or(Role::Viewer);
        Ok(Caller {
            name: t.name,
            role,
            sites: t.sites,
        })
    }
}

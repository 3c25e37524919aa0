//! HTTP routes of API tokens: create (shown once, stored hashed), list, revoke. Admin only,
//! and only with a token not limited to sites.

use api_types::tokens::Token;
use api_types::tokens::{TokenBody, TokenCreated, TokensList};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use protocol::message::check_text;

use crate::api::auth::token_hash;
use crate::api::auth::{Caller, Role};
use crate::api::convert::all;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{Body, P};
use crate::api::state::AppState;
use crate::store::NewToken;

/// Tokens expire after this many days unless asked otherwise.
pub(crate) const DEFAULT_EXPIRY_DAYS: u32 = 90;
/// The longest life a token can be given: ten years, for a service platform's integration.
pub(crate) const MAX_EXPIRY_DAYS: u32 = 3650;
const DAY_MS: i64 = 86_400_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", post(create_token).get(list_tokens))
        .route("/api/v1/tokens/:id", delete(revoke_token))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = TokenBody,
    responses((status = 201, body = TokenCreated), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn create_token(
    caller: Caller,
    State(s): State<AppState>,
    Body(body): Body<TokenBody>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_fleet("managing tokens")?;
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::bad_request(
            "name is required (1 to 100 characters)",
        ));
    }
    check_text("name", name, 100).map_err(ApiError::bad_request)?;
    let now = crate::clock::now_ms();
    let latest = now + i64::from(MAX_EXPIRY_DAYS) * DAY_MS;
    let expires_at = match (body.expires_in_days, body.expires_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give expires_in_days or expires_at, not both",
            ));
        }
        (None, Some(at)) if at > now && at <= latest => at,
        (None, Some(at)) => {
            return Err(ApiError::bad_request(format!(
                "expires_at {at} must be after now ({now}) and within {MAX_EXPIRY_DAYS} days"
            )));
        }
        (days, None) => {
            let days = days.unwrap_or(DEFAULT_EXPIRY_DAYS);
            if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
                return Err(ApiError::bad_request(format!(
                    "expires_in_days must be between 1 and {MAX_EXPIRY_DAYS} (default {DEFAULT_EXPIRY_DAYS})"
                )));
            }
            now + i64::from(days) * DAY_MS
        }
    };
    if let Some(sites) = &body.sites {
        if sites.is_empty() {
            return Err(ApiError::bad_request(
                "sites must name at least one site; leave it out for a token of every site",
            ));
        }
        for site in sites {
            if s.store.site(site).await?.is_none() {
                return Err(ApiError::bad_request(format!(
                    "site {site:?} does not exist; create it first (POST /api/v1/sites)"
                )));
            }
        }
    }
    let token = crate::random_token();
    let hash = token_hash(&token);
    let row = s
        .store
        .insert_token(&NewToken {
            hash: &hash,
            name,
            role: body.role.as_str(),
            sites: body.sites.as_deref(),
            expires_at: Some(expires_at),
            created_by: &caller.name,
            created_at: now,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            row: row.into(),
            token,
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = TokensList), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn list_tokens(
    caller: Caller,
    State(s): State<AppState>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_fleet("managing tokens")?;
    Ok(Json(TokensList {
        tokens: all(s.store.tokens().await?),
    })
    .into_response())
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "token id (16 hex digits, from the list)")),
    responses((status = 200, body = Token, description = "revoked (a repeat changes nothing)"), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn revoke_token(
    caller: Caller,
    State(s): State<AppState>,
    P(id): P<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    caller.require_fleet("managing tokens")?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!(
            "token id {id:?} is not 16 hex digits; GET /api/v1/tokens lists them"
        )));
    }
    match s
        .store
        .revoke_token(
            &id.to_ascii_lowercase(),
            &caller.name,
            crate::clock::now_ms(),
        )
        .await?
    {
        Some(row) => Ok(Json(Token::from(row)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no token {id:?}; GET /api/v1/tokens lists them"),
        )),
    }
}

//! The HTTP API (axum): one module per resource, and the router that joins them.
//!
//! Every error is JSON `{"error": "..."}` saying what was wrong and what to do (`error`).
//! Bearer tokens carry a role (`auth`): viewer (read), platform (read + reservations),
//! operator (+ remote open), admin (everything + configuration and tokens).
//!
//! Dependencies run one way: this file's router uses the resource modules; they use the
//! shared modules (`state`, `error`, `extract`, `auth`); nothing imports the router.

pub(crate) mod alarms;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod cabinets;
pub(crate) mod commands;
pub(crate) mod config;
pub(crate) mod convert;
pub(crate) mod deployments;
pub(crate) mod devices;
pub(crate) mod diagnostics;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod items;
pub(crate) mod live;
pub(crate) mod openapi;
pub(crate) mod planning;
pub(crate) mod releases;
pub(crate) mod sites;
pub(crate) mod sms;
pub(crate) mod staff;
pub(crate) mod state;
pub(crate) mod system;
pub(crate) mod tokens;
pub(crate) mod usage;
pub(crate) mod worklists;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use error::ApiError;

pub(crate) use auth::token_hash;
pub(crate) use state::{AppState, SaturationSettings, token_limiter};

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(devices::routes())
        .merge(commands::routes())
        .merge(audit::routes())
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/v1/asyncapi.json", get(openapi::serve_asyncapi))
        .merge(tokens::routes())
        .merge(sites::routes())
        .merge(sms::routes())
        .merge(cabinets::routes())
        .merge(staff::routes())
        .merge(items::routes())
        .merge(worklists::routes())
        .merge(alarms::routes())
        .merge(live::routes())
        .merge(usage::routes())
        .merge(planning::routes())
        .merge(releases::routes())
        .merge(deployments::routes())
        .merge(config::routes())
        .merge(diagnostics::routes())
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such endpoint; see PROTOCOL.md and README.md for the API",
            )
        })
        .with_state(state)
}

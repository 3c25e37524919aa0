//! The HTTP API's request and response types: one definition that the server's handlers
//! serialise, the OpenAPI document describes and the console and the simulator read.
//!
//! These are the wire, not the database: the server's store returns its own typed rows and
//! the handlers map them here, so a storage change never changes the API by accident.
//! Response types read leniently (`#[serde(default)]`): a client of a newer server ignores
//! fields it does not know, and one of an older server gets defaults for fields it lacks.
//! A new variant of an enum here (a state, a kind) is a change of the API's version.
//!
//! No I/O; `utoipa` only behind the `openapi` feature.

pub mod alarms;
pub mod audit;
pub mod cabinets;
pub mod commands;
pub mod config;
pub mod deployments;
pub mod devices;
pub mod diagnostics;
pub mod items;
pub mod live;
pub mod planning;
pub mod query;
pub mod releases;
pub mod sites;
pub mod sms;
pub mod staff;
pub mod system;
pub mod tokens;
pub mod usage;

/// The service's enums as the API spells them (`domain::flows`).
pub use domain::alarms::{AlarmKind, AlarmState, Severity};
pub use domain::flows::{BoxStatus, Flow, ItemState, SiteKind, Size};
pub use protocol::CommandStatus;
use serde::{Deserialize, Serialize};

/// Every error answer: a stable machine `code` (one of [`codes::ALL`]; clients branch on it,
/// never on the text) and what was wrong and what to do, for a person.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ErrorBody {
    pub code: String,
    pub error: String,
}

/// The machine codes of [`ErrorBody`]. A code, once published, keeps its meaning; new ones
/// are added, none renamed.
pub mod codes {
    /// A parameter, path segment or field value is wrong (the text names it).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// The body is not the JSON the endpoint takes (syntax, a missing or unknown field).
    pub const INVALID_BODY: &str = "invalid_body";
    /// A value is well-formed but refused by a rule (limits, a release that is not signed).
    pub const INVALID_FIELD: &str = "invalid_field";
    /// No or an unknown, revoked or expired token.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The token's role or sites do not allow this.
    pub const FORBIDDEN: &str = "forbidden";
    pub const NOT_FOUND: &str = "not_found";
    /// The device id has never connected to this server.
    pub const UNKNOWN_DEVICE: &str = "unknown_device";
    /// The cabinet has no such box.
    pub const UNKNOWN_BOX: &str = "unknown_box";
    /// The request conflicts with what exists (already done, another state, withdrawn).
    pub const CONFLICT: &str = "conflict";
    /// No free box of the size (and accessibility) asked for at the site or cabinet.
    pub const NO_FREE_BOX: &str = "no_free_box";
    pub const TOO_LARGE: &str = "too_large";
    /// Over the token's request rate: retry after `Retry-After`.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The database is unreachable or failing: retry shortly.
    pub const UNAVAILABLE: &str = "unavailable";
    pub const INTERNAL: &str = "internal";

    /// Every code, in the order above.
    pub const ALL: [&str; 14] = [
        INVALID_REQUEST,
        INVALID_BODY,
        INVALID_FIELD,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        UNKNOWN_DEVICE,
        UNKNOWN_BOX,
        CONFLICT,
        NO_FREE_BOX,
        TOO_LARGE,
        RATE_LIMITED,
        UNAVAILABLE,
        INTERNAL,
    ];
}

/// What a bearer token may do; each role includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Viewer,
    /// The service platform: reservations and items, besides reading.
    Platform,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Platform, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Platform => "platform",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of an item's or an alarm's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct History {
    pub at: i64,
    pub state: String,
    pub actor: String,
    pub detail: Option<String>,
}

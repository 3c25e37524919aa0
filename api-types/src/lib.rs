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
pub mod staff;
pub mod system;
pub mod tokens;
pub mod usage;

/// The service's enums as the API spells them (`domain::flows`).
pub use domain::alarms::{AlarmKind, AlarmState, Severity};
pub use domain::flows::{BoxStatus, Flow, ItemState, SiteKind, Size};
pub use protocol::CommandStatus;
use serde::{Deserialize, Serialize};

/// Every error answer: what was wrong and what to do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ErrorBody {
    pub error: String,
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

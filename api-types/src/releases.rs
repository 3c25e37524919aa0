//! Agent releases (`/api/v1/releases…`).

use serde::{Deserialize, Serialize};

/// Where a release stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReleaseState {
    /// Registered; its binary is not uploaded yet.
    #[default]
    AwaitingBinary,
    /// Signed, complete and deployable.
    Available,
    /// Taken back: never deployed again.
    Withdrawn,
}

/// One agent release: its signed manifest and where it stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Release {
    /// MAJOR.MINOR.PATCH.
    pub version: String,
    /// The target triple it runs on.
    pub target: String,
    pub size: u64,
    pub sha256: String,
    pub min_server_version: String,
    pub notes: String,
    /// The release key that signed it.
    pub key_id: String,
    pub state: ReleaseState,
    pub created_at: i64,
    pub created_by: String,
    pub uploaded_at: Option<i64>,
    pub withdrawn_at: Option<i64>,
    pub withdrawn_by: Option<String>,
    pub withdraw_note: Option<String>,
}

/// `GET /api/v1/releases`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ReleasesList {
    pub releases: Vec<Release>,
}

/// `POST /api/v1/releases/{target}/{version}/withdraw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WithdrawBody {
    /// Why (1 to 500 characters); kept in the audit log.
    pub note: String,
}

/// `POST /api/v1/devices/{id}/release`: offer a release to one cabinet, which fetches and
/// stages it, and with `install` switches to it when idle inside `window` and runs it on trial
/// (deployments to many come later).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleaseOffer {
    pub target: String,
    pub version: String,
    /// An older version than the cabinet runs, on purpose.
    #[serde(default)]
    pub rollback: bool,
    /// Install once staged (default: stage only).
    #[serde(default)]
    pub install: bool,
    /// When the cabinet may switch; any time when absent.
    #[serde(default)]
    pub window: Option<Window>,
}

/// A daily maintenance window in the cabinet's local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// `HH:MM`, 24-hour, e.g. `02:00`.
    pub from: String,
    /// `HH:MM`; before `from` when the window wraps midnight.
    pub to: String,
    /// The cabinets' UTC offset in minutes east (480 = China Standard Time).
    #[serde(default)]
    pub utc_offset_minutes: i16,
}

impl From<protocol::release::MaintenanceWindow> for Window {
    fn from(w: protocol::release::MaintenanceWindow) -> Self {
        Window {
            from: w.from,
            to: w.to,
            utc_offset_minutes: w.utc_offset_minutes,
        }
    }
}

impl From<Window> for protocol::release::MaintenanceWindow {
    fn from(w: Window) -> Self {
        protocol::release::MaintenanceWindow {
            from: w.from,
            to: w.to,
            utc_offset_minutes: w.utc_offset_minutes,
        }
    }
}

/// The answer to an offer: sent to the cabinet, which reports `release` events as it fetches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ReleaseOffered {
    pub device_id: String,
    pub target: String,
    pub version: String,
}

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
/// stages it (deployments to many come later).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleaseOffer {
    pub target: String,
    pub version: String,
    /// An older version than the cabinet runs, on purpose.
    #[serde(default)]
    pub rollback: bool,
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

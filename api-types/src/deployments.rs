//! Deployments: a release rolled out to many devices in waves (`/api/v1/deployments`).

use serde::{Deserialize, Serialize};

pub use domain::deployments::{DeploymentState, DeviceRollout};

use crate::releases::Window;

fn waves_default() -> Vec<String> {
    vec!["1".into(), "100%".into()]
}

fn hundred() -> u8 {
    100
}

fn three_days() -> u32 {
    72
}

/// `POST /api/v1/deployments`: roll a release out. The devices are those matching every
/// filter given (`devices`, `sites`, `site_kinds`, `profiles`, `labels`); the waves split them, a
/// canary first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewDeployment {
    pub target: String,
    pub version: String,
    /// An older version than devices run, on purpose.
    #[serde(default)]
    pub rollback: bool,
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub sites: Vec<String>,
    /// Site kinds (`service_hall`, `enterprise_cluster`, `post_station`).
    #[serde(default)]
    pub site_kinds: Vec<String>,
    /// Device profiles (`locker`, `kiosk`, `tax_machine`, `printer`).
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Devices carrying every one of these labels (`{"board": "modbus-v2"}`).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Each wave's size, a number of devices (`1`) or a share of all targets (`25%`); the
    /// last takes whatever is left. Default `["1", "100%"]`: a canary, then the rest.
    #[serde(default = "waves_default")]
    pub waves: Vec<String>,
    /// When cabinets may switch; any time when absent.
    #[serde(default)]
    pub window: Option<Window>,
    /// A device counts as succeeded once it ran the new version this long, online and
    /// without a new critical alarm.
    #[serde(default)]
    pub soak_secs: u64,
    /// A wave passes when this share of it succeeded (default 100).
    #[serde(default = "hundred")]
    pub success_percent: u8,
    /// A wave halts the deployment once more than this share of it failed (default 0: any
    /// failure).
    #[serde(default)]
    pub max_failures_percent: u8,
    /// Pause after each wave until an operator resumes.
    #[serde(default)]
    pub manual: bool,
    /// Devices not done this many hours after the start fail (default 72).
    #[serde(default = "three_days")]
    pub deadline_hours: u32,
}

/// `POST /api/v1/deployments/{id}/pause|resume|cancel`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeploymentAction {
    /// Why (kept in the audit log).
    #[serde(default)]
    pub note: Option<String>,
}

/// How far one wave is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct WaveProgress {
    /// From 1.
    pub wave: u32,
    pub devices: u32,
    /// Not offered yet (its wave has not started, or it was offline).
    pub pending: u32,
    pub in_progress: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub rolled_back: u32,
}

/// A deployment and its waves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Deployment {
    pub id: String,
    pub target: String,
    pub version: String,
    pub rollback: bool,
    pub state: DeploymentState,
    /// Why it halted, paused or completed.
    pub reason: Option<String>,
    /// The wave under way, from 1.
    pub wave: u32,
    pub waves: Vec<WaveProgress>,
    pub window: Option<Window>,
    pub soak_secs: u64,
    pub success_percent: u8,
    pub max_failures_percent: u8,
    pub manual: bool,
    pub deadline_at: i64,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
}

/// One device of a deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct DeploymentDevice {
    pub device_id: String,
    pub wave: u32,
    pub state: DeviceRollout,
    pub reason: Option<String>,
    /// The version it ran when its wave reached it.
    pub from_version: Option<String>,
    pub updated_at: i64,
}

/// `GET /api/v1/deployments/{id}` (and the answer to creating and acting on one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct DeploymentDetail {
    pub deployment: Deployment,
    pub devices: Vec<DeploymentDevice>,
}

/// `GET /api/v1/deployments`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct DeploymentsList {
    pub deployments: Vec<Deployment>,
}

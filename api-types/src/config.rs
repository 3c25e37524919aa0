//! Central configuration (`/api/v1/config`): the layers of desired agent settings and what
//! each device runs with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use protocol::settings::Settings;

/// `PUT /api/v1/config/fleet` or `PUT /api/v1/config/{scope}/{key}`: the fields this layer
/// sets (an empty object removes the layer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetLayer {
    /// `{"heartbeat_secs": 30, "door_open_alarm_secs": 300, …}`; `GET /api/v1/config` lists
    /// the fields and their limits.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub settings: Settings,
}

/// One layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ConfigLayer {
    /// `fleet`, `site_kind`, `site`, `label` or `device`.
    pub scope: String,
    /// Empty for the fleet; a site kind, a site id, `name=value`, or a device id.
    pub key: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub settings: Settings,
    /// Rises with every change of this layer.
    pub revision: i64,
    pub updated_at: i64,
    pub updated_by: String,
}

/// A managed setting: its limits and whether a running agent takes it live.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ConfigField {
    pub name: String,
    pub min: u64,
    pub max: u64,
    pub unit: String,
    /// Applied at once; otherwise the agent restarts when the cabinet is idle.
    pub live: bool,
    pub about: String,
}

/// `GET /api/v1/config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ConfigOverview {
    /// Least specific first: fleet, site kinds, sites, labels, devices.
    pub layers: Vec<ConfigLayer>,
    pub fields: Vec<ConfigField>,
}

/// What the layers want of a device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct DesiredConfig {
    pub version: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub settings: Settings,
    /// Field → the layer it comes from (`site:hall-1`, `fleet`).
    pub sources: BTreeMap<String, String>,
}

/// What a device last reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AppliedConfig {
    pub version: String,
    /// `applied`, `waiting_restart` or `refused`.
    pub state: String,
    pub reason: Option<String>,
    /// In effect, from its last `applied` report.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub settings: Option<Settings>,
    /// Device clock.
    pub at: i64,
}

/// `GET /api/v1/devices/{id}/config`, and each row of `GET /api/v1/config/devices`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct DeviceConfig {
    pub device_id: String,
    pub online: bool,
    pub desired: DesiredConfig,
    pub applied: Option<AppliedConfig>,
    /// What it runs with is not what is desired (not yet applied, waiting for a restart,
    /// refused, or offline since the change).
    pub drift: bool,
}

/// `GET /api/v1/config/devices`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct DeviceConfigs {
    pub devices: Vec<DeviceConfig>,
}

/// `GET /api/v1/config/devices?drift=true`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfigsQuery {
    /// Only the devices that drift.
    pub drift: bool,
}

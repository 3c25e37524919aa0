//! Devices (`/api/v1/devices…`): presence in layers, the boxes' sensors, stored events and
//! the presence log.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Device {
    pub id: String,
    /// The broker session is up (the first presence layer).
    pub online: bool,
    pub boxes: i64,
    pub agent_version: Option<String>,
    pub last_seen: Option<i64>,
    pub presence_changed_at: Option<i64>,
    pub presence_reason: Option<String>,
    pub acked_seq: i64,
    /// `locker`, `kiosk`, `tax_machine` or `printer`, from the heartbeat.
    pub profile: Option<String>,
    /// When the server last received a heartbeat (server clock).
    pub heartbeat_at: Option<i64>,
    pub heartbeat_secs: Option<i64>,
    pub uptime_s: Option<i64>,
    /// `ok`, `unreachable` or `absent` (no lock board), as the last heartbeat said.
    pub lock_bus: Option<String>,
    pub lock_bus_detail: Option<String>,
    /// `mains`, `battery` or `unknown`.
    pub power: Option<String>,
    /// Events the agent holds that the server has not receipted.
    pub outbox_pending: Option<i64>,
    /// A station device's peripherals: paper, toner, paper_jam, needs_service.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub station: Option<serde_json::Value>,
    /// How far the server's clock is ahead of the cabinet's (ms), from its last heartbeat;
    /// absent before the first or from older agents.
    pub clock_offset_ms: Option<i64>,
    /// The presence layers judged now.
    pub layers: Layers,
    /// The last release offered to it, as the device reported it.
    pub release: Option<DeviceRelease>,
    /// What an administrator labelled it with (`board` → `modbus-v2`); deployments and
    /// configuration select devices by them.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// `PUT /api/v1/devices/{id}/labels`: a device's labels, replaced whole (keys: lower-case
/// letters, digits, `-_./`; values: up to 63 characters without spaces, `=` or `,`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceLabels {
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Where the last release offered to a device stands on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct DeviceRelease {
    pub version: String,
    /// `downloading`, `downloaded` (staged) or `refused`.
    pub state: String,
    /// Why it was refused (`downgrade: …`, `tampered: …`).
    pub reason: Option<String>,
    /// When, by the device's clock (epoch ms).
    pub at: i64,
}

/// Presence in layers: each can fail on its own, and each is shown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Layers {
    /// `up` or `down`: the broker session, exact from the broker front.
    pub session: String,
    /// `fresh`, `late` (more than two intervals without one) or `none` (never received).
    pub heartbeat: String,
    /// `ok`, `unreachable`, `absent` or `unknown` (no heartbeat yet).
    pub lock_bus: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct BoxReading {
    #[serde(rename = "box")]
    pub box_no: u16,
    /// `open` or `closed`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub door: String,
    pub occupied: Option<bool>,
    pub last_change: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: Device,
    pub boxes: Vec<BoxReading>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Event {
    pub seq: i64,
    pub ts: i64,
    pub received_at: i64,
    pub kind: String,
    #[serde(rename = "box")]
    pub box_no: Option<u16>,
    /// The event as the device sent it (see PROTOCOL.md, EventBatch).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub body: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct PresenceEntry {
    pub ts: i64,
    /// The broker session number (0 on rows the server judged from heartbeats).
    pub session: i64,
    pub online: bool,
    pub reason: String,
    /// `session` (from the broker front) or `heartbeat` (the server's alarm sweep).
    pub layer: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct DevicesList {
    pub devices: Vec<crate::devices::Device>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct EventsQuery {
    /// Events with a greater seq.
    #[serde(default)]
    pub after: u64,
    /// 1 to 10000 (default 100).
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct EventsList {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub device: String,
    pub events: Vec<crate::devices::Event>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct PresenceList {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub device: String,
    pub presence: Vec<crate::devices::PresenceEntry>,
}

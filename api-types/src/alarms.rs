//! Alarms (`/api/v1/alarms…`).

use serde::{Deserialize, Serialize};

use crate::{AlarmKind, AlarmState, History, Severity};

/// One alarm: a condition of a device or box, from raised to cleared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Alarm {
    pub id: String,
    pub device_id: String,
    /// The box, or none for the device itself.
    #[serde(rename = "box")]
    pub box_no: Option<u16>,
    /// A fault kind (e.g. `forced_open`) or one the server raises (`device_offline`,
    /// `clock_skew`).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: AlarmKind,
    pub severity: Severity,
    pub state: AlarmState,
    pub site_id: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    /// How often the condition was raised while this alarm was open (or reopened).
    pub count: i64,
    pub evidence: Option<String>,
    pub acked_by: Option<String>,
    pub acked_at: Option<i64>,
    pub ack_note: Option<String>,
    pub cleared_at: Option<i64>,
    /// `device` when the condition ended by itself, else the operator.
    pub cleared_by: Option<String>,
    pub clear_note: Option<String>,
    /// When it escalated for want of an acknowledgement.
    pub escalated_at: Option<i64>,
    /// When on-duty staff were last told of it (or found unreachable).
    pub notified_at: Option<i64>,
    /// `notified`, `rate_limited` or `nobody_on_duty`.
    pub notify_outcome: Option<String>,
    /// A box alarm of a device that is offline: shown, but not the thing to act on (the
    /// device's `device_offline` alarm is).
    pub suppressed: bool,
}

/// `GET /api/v1/alarms`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AlarmsList {
    pub count: usize,
    pub alarms: Vec<Alarm>,
}

/// `GET /api/v1/alarms/{id}`: the alarm and its history, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AlarmDetail {
    pub alarm: Alarm,
    pub history: Vec<History>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// What was done or found (1 to 500 characters); kept in the alarm's history.
    pub note: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct AlarmQuery {
    /// open (default: active or acknowledged), active, acknowledged, cleared, all.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
    /// A fault kind (e.g. forced_open) or device_offline.
    #[serde(default)]
    pub kind: Option<String>,
    /// critical, major, minor or warning.
    #[serde(default)]
    pub severity: Option<String>,
    /// 1 to 10000 (default 200).
    #[serde(default)]
    pub limit: Option<i64>,
}

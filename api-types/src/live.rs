//! The live views: every site at a glance (`GET /api/v1/overview`) and who is asking
//! (`GET /api/v1/me`).

use domain::flows::SiteKind;
use protocol::CommandStatus;
use serde::{Deserialize, Serialize};

use crate::Role;

/// One site's figures now and over the last 24 hours.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct SiteOverview {
    pub id: String,
    pub kind: SiteKind,
    pub name: String,
    /// Cabinets and station devices configured at the site.
    pub devices: i64,
    pub devices_online: i64,
    pub boxes: i64,
    pub free: i64,
    pub occupied: i64,
    pub reserved: i64,
    pub out_of_service: i64,
    /// Boxes with an open alarm.
    pub faulty: i64,
    /// Occupied and reserved boxes over boxes in service, now (0.0..=1.0).
    pub occupancy: f64,
    /// Usage rate today: box-hours holding an item since local midnight over box-hours in
    /// service (boxes in service now) in that time (0.0..=1.0).
    pub usage_today: f64,
    /// Items placed in a box (drop-offs, supplements, deposits) per hour over the last 24
    /// hours, oldest hour first.
    pub uses_24h: Vec<i64>,
    pub alarms_open: i64,
}

/// `GET /api/v1/overview`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Overview {
    /// Server time of the figures (epoch ms): clients show the data's age from it.
    pub at: i64,
    pub sites: Vec<SiteOverview>,
}

/// `GET /api/v1/me`: a console greys out what the role may not do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Me {
    pub name: String,
    pub role: Role,
    /// The sites the token is limited to; absent: every site.
    pub sites: Option<Vec<String>>,
}

/// A change notice of `GET /api/v1/stream` (and between server replicas): what changed,
/// never the data itself. Serialised as the SSE event's data; its `kind` is the SSE event
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A device's presence, doors, occupancy, faults or items may have changed.
    Device { device_id: String },
    /// A remote command moved on.
    Command {
        command_id: String,
        device_id: String,
        status: CommandStatus,
    },
    /// Alarms were raised, cleared, acknowledged or escalated.
    Alarms,
    /// Items changed through the API or a sweep (reservations, time-outs).
    Items,
}

impl Change {
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Device { .. } => "device",
            Change::Command { .. } => "command",
            Change::Alarms => "alarms",
            Change::Items => "items",
        }
    }
}

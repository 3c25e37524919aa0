//! Health (`GET /healthz`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct HealthBody {
    /// `ok` or `degraded`.
    pub status: String,
    /// `ok`, or what is wrong with the database.
    pub database: String,
    /// External broker mode only: `ok`, or why this replica cannot reach the broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
}

/// A restore from backup, as recorded in the database it put back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct RestoreInfo {
    pub restored_at: i64,
    /// When the backup was taken: events receipted after it were not in it.
    pub backup_taken_at: i64,
    pub source: String,
}

/// Events a cabinet had deleted after the server's receipt that the database does not hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct EventGap {
    pub device_id: String,
    /// The lost sequence numbers, `first_seq..=last_seq`.
    pub first_seq: i64,
    pub last_seq: i64,
    pub events: i64,
    pub detected_at: i64,
    /// `restore` (lost with a restore from an older backup) or `unknown`.
    pub reason: String,
}

/// `GET /api/v1/system/event-gaps`: the latest restore and the events lost, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct EventGaps {
    pub last_restore: Option<RestoreInfo>,
    pub gaps: Vec<EventGap>,
}

/// One class of rows retention removes, and how far it got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct RetentionClass {
    /// `events`, `presence`, `commands`, `notifications`, `alarms`, `items`, `box_hours`.
    pub class: String,
    /// Days kept; absent: kept whole.
    pub keep_days: Option<u32>,
    /// Cleared up to (epoch ms); 0: never.
    pub cleared_before: i64,
    pub rows_removed: i64,
    /// The last pass (epoch ms); 0: never.
    pub last_pass: i64,
}

/// `GET /api/v1/system/retention`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Retention {
    pub enabled: bool,
    /// The database's size (bytes) and the free pages in it SQLite reuses first.
    pub database_bytes: i64,
    pub free_bytes: i64,
    pub classes: Vec<RetentionClass>,
}

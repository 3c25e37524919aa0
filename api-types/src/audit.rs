//! The audit log (`GET /api/v1/audit`).

use serde::{Deserialize, Serialize};

/// One audit entry: who did what to which device, box, command or item, and the result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AuditEntry {
    pub id: String,
    pub ts: i64,
    pub actor: String,
    pub action: String,
    pub device_id: Option<String>,
    #[serde(rename = "box")]
    pub box_no: Option<u16>,
    pub command_id: Option<String>,
    pub item_id: Option<String>,
    pub reason: Option<String>,
    /// The command's status now (its outcome once it has one); for keypad entries the
    /// outcome (`opened`, or why a code was refused).
    pub result: Option<String>,
    pub detail: Option<String>,
    pub latency_ms: Option<i64>,
    /// The row's place in the audit hash chain and its hash (`fleet-server audit verify`).
    pub seq: Option<i64>,
    pub hash: Option<String>,
}

/// `GET /api/v1/audit`, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
}

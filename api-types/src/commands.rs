//! Remote open (`POST /api/v1/devices/{id}/boxes/{box}/open`) and the command it creates
//! (`GET /api/v1/commands/{id}`).

use protocol::CommandStatus;
use serde::{Deserialize, Serialize};

/// The body of a remote open.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    /// Why the box is opened (1 to 500 characters); goes to the audit log.
    pub reason: String,
    /// A retry with the same key returns the first command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// 1 to 3600 (default: the server's `command_ttl_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// The answer to a remote open: the command to follow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct OpenAccepted {
    pub command_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: CommandStatus,
    pub expires_at: i64,
    /// false when an earlier command with the same idempotency key is returned.
    pub created: bool,
}

/// A remote command and where it is in its lifecycle:
/// `queued → sent → delivered → opened | already_open | jammed | failed`, or `expired`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Command {
    pub command_id: String,
    pub device_id: String,
    #[serde(rename = "box")]
    pub box_no: u16,
    /// `open`.
    pub action: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: CommandStatus,
    pub actor: String,
    pub reason: String,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub detail: Option<String>,
    /// From the API call to the outcome at the door, when there is one.
    pub latency_ms: Option<i64>,
}

impl Command {
    /// The command has its outcome (or expired): nothing more will change.
    pub fn is_final(&self) -> bool {
        self.status.is_terminal()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct CommandQuery {
    /// Long poll: 1 to 30 seconds to wait for the command to reach a final status before
    /// answering (default: answer at once). On time-out the current, non-final status is
    /// returned with 200; the client checks `status`.
    pub wait_secs: Option<u64>,
}

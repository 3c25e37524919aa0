//! What the server sends a device: commands, code grants, receipts and certificates; and the
//! life of a command as the server records it.

use serde::{Deserialize, Serialize};

use super::{
    AckStatus, DecodeError, HEX64, MAX_PEM_BYTES, Message, REQUEST_ID, TEXT, check_request_id,
    check_text, v1, version_schema,
};
use crate::ids::{BoxNo, CommandId, ItemId, StaffId};

/// `devices/{id}/commands`. The agent must not execute it after `expires_at` (its own clock),
/// and executes a given `command_id` at most once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Command {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    pub command_id: CommandId,
    pub issued_at: i64,
    pub expires_at: i64,
    #[serde(flatten)]
    pub action: CommandAction,
}

impl Message for Command {
    fn version(&self) -> u32 {
        self.v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CommandAction {
    /// Pulse the lock of one box and report what the door sensor saw.
    Open {
        #[serde(rename = "box")]
        box_no: BoxNo,
    },
}

/// `devices/{id}/codes`: everything the cabinet needs to verify codes and staff offline. Each
/// message is the full set (a newer `version` replaces it); the agent confirms with a
/// `codes_applied` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CodeSync {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    pub version: u64,
    /// The cabinet key (hex), see [`crate::code::CabinetKey`].
    #[schemars(pattern(HEX64))]
    pub key: String,
    #[schemars(length(max = MAX_GRANTS))]
    pub grants: Vec<CodeGrant>,
    #[schemars(length(max = MAX_STAFF))]
    pub staff: Vec<StaffCredential>,
    /// Set while the server, restored from a backup taken at this time (server clock), has
    /// not heard from this cabinet since: the cabinet answers this set's `codes_applied` with
    /// the codes it used since then and the grants this set leaves out (PROTOCOL.md,
    /// "Reconciling codes after a restore").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_since: Option<i64>,
}

/// `devices/{id}/config`: the settings the server wants this device to run with (central
/// configuration, every layer merged; a field left out keeps the agent's own file's value).
/// The latest `version` wins; the device answers with a `config` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfigSync {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    /// Names the set (`Settings::version`).
    #[schemars(length(min = 1, max = 64), pattern(TEXT))]
    pub version: String,
    pub settings: crate::settings::Settings,
}

impl Message for ConfigSync {
    fn version(&self) -> u32 {
        self.v
    }
    fn validate(&self) -> Result<(), DecodeError> {
        check_text("version", &self.version, 64).map_err(DecodeError::Invalid)
    }
}

/// Most grants one cabinet holds: far above any cabinet's box count.
pub const MAX_GRANTS: usize = 4096;
/// Most staff credentials one cabinet holds.
pub const MAX_STAFF: usize = 1024;

impl Message for CodeSync {
    fn version(&self) -> u32 {
        self.v
    }
    fn validate(&self) -> Result<(), DecodeError> {
        let bad = |m: String| Err(DecodeError::Invalid(m));
        if !hex64(&self.key) {
            return bad("key must be 64 hex digits".into());
        }
        if self.grants.len() > MAX_GRANTS || self.staff.len() > MAX_STAFF {
            return bad(format!(
                "at most {MAX_GRANTS} grants and {MAX_STAFF} staff credentials are allowed"
            ));
        }
        for g in &self.grants {
            if !hex64(&g.tag) || g.not_after < g.not_before {
                return bad(format!(
                    "grant for item {}: tag must be 64 hex digits and not_after >= not_before",
                    g.item
                ));
            }
        }
        for c in &self.staff {
            let salt_ok =
                (2..=128).contains(&c.salt.len()) && c.salt.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex64(&c.hash) || !salt_ok || c.iterations == 0 || c.iterations > 1_000_000 {
                return bad(format!("staff credential {} is malformed", c.staff));
            }
        }
        Ok(())
    }
}

/// 64 hex digits: a key or a code tag.
pub(super) fn hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One reservation's code as the cabinet sees it: never the code itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CodeGrant {
    pub item: ItemId,
    #[serde(rename = "box")]
    pub box_no: BoxNo,
    pub not_before: i64,
    pub not_after: i64,
    /// hex HMAC-SHA256, see [`crate::code::code_tag`].
    #[schemars(pattern(HEX64))]
    pub tag: String,
    /// A pick-up code that opens only after staff have loaded the box (the cabinet learns
    /// that from a staff open of this box, also offline).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_deposit: bool,
    /// A pick-up (staff load the box, the citizen takes it out); otherwise a drop-off. The
    /// cabinet does not need it to verify; it says it back when it reports a grant the server
    /// left out (`codes_applied.dropped`), so a server restored from an older backup can
    /// rebuild the item.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pickup: bool,
}

/// A member of staff whose credential opens any box of this cabinet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StaffCredential {
    pub staff: StaffId,
    /// hex
    #[schemars(pattern(r"^[0-9a-fA-F]{2,128}$"))]
    pub salt: String,
    /// hex PBKDF2-HMAC-SHA256, see [`crate::code::staff_hash`].
    #[schemars(pattern(HEX64))]
    pub hash: String,
    #[schemars(range(min = 1, max = 1_000_000))]
    pub iterations: u32,
}

/// `devices/{id}/cert`: the server's answer to a [`CertRequest`]: the certificate (PEM) and
/// when it expires, or why none was issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CertReply {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    #[schemars(pattern(REQUEST_ID))]
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PEM_BYTES), pattern(TEXT))]
    pub cert: Option<String>,
    /// Epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000), pattern(TEXT))]
    pub error: Option<String>,
}

impl Message for CertReply {
    fn version(&self) -> u32 {
        self.v
    }

    fn validate(&self) -> Result<(), DecodeError> {
        check_request_id(&self.request_id)?;
        match (&self.cert, &self.error) {
            (Some(c), None) => check_text("cert", c, MAX_PEM_BYTES).map_err(DecodeError::Invalid),
            (None, Some(e)) => check_text("error", e, 1000).map_err(DecodeError::Invalid),
            _ => Err(DecodeError::Invalid(
                "a certificate reply carries either `cert` or `error`".into(),
            )),
        }
    }
}

/// `devices/{id}/receipts`: every event with `seq <= up_to` is stored durably; the agent may
/// delete them from its outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Receipt {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    pub up_to: u64,
    /// The server's clock when it sent this (epoch ms). Agents judge server-issued times
    /// (command expiry, code windows) on the server's clock, learned from here, so a cabinet
    /// whose own clock is far off still judges them right. Absent from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
}

impl Message for Receipt {
    fn version(&self) -> u32 {
        self.v
    }
}

/// The server-side lifecycle of a command, a superset of what agents report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Where every command starts (and what a client reads where a server sent none).
    #[default]
    Queued,
    Sent,
    Delivered,
    Opened,
    AlreadyOpen,
    Jammed,
    Failed,
    Expired,
}

impl CommandStatus {
    pub const ALL: [CommandStatus; 8] = [
        CommandStatus::Queued,
        CommandStatus::Sent,
        CommandStatus::Delivered,
        CommandStatus::Opened,
        CommandStatus::AlreadyOpen,
        CommandStatus::Jammed,
        CommandStatus::Failed,
        CommandStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Queued => "queued",
            CommandStatus::Sent => "sent",
            CommandStatus::Delivered => "delivered",
            CommandStatus::Opened => "opened",
            CommandStatus::AlreadyOpen => "already_open",
            CommandStatus::Jammed => "jammed",
            CommandStatus::Failed => "failed",
            CommandStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<CommandStatus> {
        CommandStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Lifecycle order: a status only ever moves to a higher rank.
    pub fn rank(self) -> i64 {
        match self {
            CommandStatus::Queued => 0,
            CommandStatus::Sent => 1,
            CommandStatus::Delivered => 2,
            _ => 3,
        }
    }

    pub fn is_terminal(self) -> bool {
        self.rank() == 3
    }
}

impl std::fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<AckStatus> for CommandStatus {
    fn from(a: AckStatus) -> Self {
        match a {
            AckStatus::Delivered => CommandStatus::Delivered,
            AckStatus::Opened => CommandStatus::Opened,
            AckStatus::AlreadyOpen => CommandStatus::AlreadyOpen,
            AckStatus::Jammed => CommandStatus::Jammed,
            AckStatus::Failed => CommandStatus::Failed,
            AckStatus::Expired => CommandStatus::Expired,
        }
    }
}

/// `devices/{id}/update`: agent releases, from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Update {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    #[serde(flatten)]
    pub body: UpdateBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UpdateBody {
    /// Fetch this release and stage it; with `install`, then switch to it when the cabinet is
    /// idle inside `window` (any time without one) and run it on trial. The device verifies
    /// the release first (signature by a release key it trusts, target, newer than what runs
    /// unless `rollback`) and reports a `release` event at every step.
    Offer {
        release: crate::release::SignedRelease,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rollback: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        install: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<crate::release::MaintenanceWindow>,
    },
    /// Bytes of a release's binary the device asked for (`FetchRequest`), base64.
    Chunk {
        #[schemars(length(min = 1, max = 64), pattern(TEXT))]
        target: String,
        #[schemars(length(min = 1, max = 32), pattern(TEXT))]
        version: String,
        offset: u64,
        /// The whole binary's size.
        size: u64,
        /// Standard base64 with padding.
        data: String,
    },
    /// The server will not serve this release (withdrawn or unknown): stop fetching.
    Unavailable {
        #[schemars(length(min = 1, max = 64), pattern(TEXT))]
        target: String,
        #[schemars(length(min = 1, max = 32), pattern(TEXT))]
        version: String,
        #[schemars(length(max = 500), pattern(TEXT))]
        reason: String,
    },
}

impl Update {
    pub fn chunk(target: &str, version: &str, offset: u64, size: u64, bytes: &[u8]) -> Update {
        use base64::Engine;
        Update {
            v: 1,
            body: UpdateBody::Chunk {
                target: target.to_owned(),
                version: version.to_owned(),
                offset,
                size,
                data: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
        }
    }

    /// A chunk's bytes.
    pub fn chunk_bytes(data: &str) -> Result<Vec<u8>, DecodeError> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| DecodeError::Invalid(format!("chunk data is not base64: {e}")))
    }
}

impl Message for Update {
    fn version(&self) -> u32 {
        self.v
    }
    fn validate(&self) -> Result<(), DecodeError> {
        match &self.body {
            UpdateBody::Offer {
                release, window, ..
            } => {
                check_text("release.manifest", &release.manifest, 4096)
                    .map_err(DecodeError::Invalid)?;
                match window {
                    Some(w) => w.check().map_err(DecodeError::Invalid),
                    None => Ok(()),
                }
            }
            UpdateBody::Chunk { data, .. } => {
                // base64 of at most MAX_CHUNK bytes.
                if data.len() > (crate::message::MAX_CHUNK as usize).div_ceil(3) * 4 {
                    return Err(DecodeError::Invalid(
                        "chunk is larger than MAX_CHUNK".into(),
                    ));
                }
                Ok(())
            }
            UpdateBody::Unavailable { reason, .. } => {
                check_text("reason", reason, 500).map_err(DecodeError::Invalid)
            }
        }
    }
}

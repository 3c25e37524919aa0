//! JSON payloads of every topic, each with the protocol version in `v`: the decoding rules here,
//! the messages a device sends in `device`, those the server sends in `server`.
//!
//! Times are Unix epoch milliseconds (`i64`) everywhere: both SQLite and PostgreSQL store them
//! as integers and no time-zone library is needed on a cabinet.

use serde::{Serialize, de::DeserializeOwned};

use crate::PROTOCOL_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is not valid JSON for this topic: {0}")]
    Json(#[from] serde_json::Error),
    #[error("protocol version {found} is not supported (this side speaks {supported})")]
    Version { found: u32, supported: u32 },
    #[error("{0}")]
    Invalid(String),
}

/// Checks free text from outside: at most `max` bytes and no control characters other than
/// tab and newline. A NUL, for one, is valid JSON but refused by PostgreSQL, and one such
/// string must not stall storage for the whole fleet.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!(
            "{field} is {} bytes; at most {max} are allowed",
            value.len()
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(format!("{field} contains control characters"));
    }
    Ok(())
}

/// Implemented by every top-level message so [`decode`] can check the version and limits.
pub trait Message: Serialize + DeserializeOwned {
    fn version(&self) -> u32;
    fn validate(&self) -> Result<(), DecodeError> {
        Ok(())
    }
}

/// Decodes and validates a payload: JSON shape, protocol version, and the message's own limits.
pub fn decode<M: Message>(payload: &[u8]) -> Result<M, DecodeError> {
    let msg: M = serde_json::from_slice(payload)?;
    if msg.version() != PROTOCOL_VERSION {
        return Err(DecodeError::Version {
            found: msg.version(),
            supported: PROTOCOL_VERSION,
        });
    }
    msg.validate()?;
    Ok(msg)
}

/// Encodes a message. Serialising these types cannot fail (no maps with non-string keys).
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    serde_json::to_vec(msg).unwrap_or_default()
}

pub(crate) fn v1() -> u32 {
    PROTOCOL_VERSION
}

/// Most bytes of a PEM request or certificate on the wire.
pub const MAX_PEM_BYTES: usize = 16 * 1024;

// The limits `validate` enforces, restated for the JSON Schemas of the contract
// (`crate::contract`), so a vendor's validator refuses what the server would refuse.

/// Free text: no control characters other than tab and newline (what [`check_text`] checks).
pub(crate) const TEXT: &str = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$";
/// 32 bytes in hex: keys, tags, hashes.
pub(crate) const HEX64: &str = "^[0-9a-fA-F]{64}$";
/// A certificate request's id.
pub(crate) const REQUEST_ID: &str = "^[A-Za-z0-9-]{1,64}$";

/// `v`: the protocol version, which a receiver takes as 1 when absent.
pub(crate) fn version_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "integer",
        "const": PROTOCOL_VERSION,
        "description": "The protocol version; taken as 1 when absent.",
    })
}

pub(crate) fn check_request_id(id: &str) -> Result<(), DecodeError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(DecodeError::Invalid(
            "request_id must be 1-64 ASCII letters, digits or '-'".into(),
        ));
    }
    Ok(())
}

mod device;
mod diagnostics;
mod server;

pub use device::*;
pub use diagnostics::*;
pub use server::*;

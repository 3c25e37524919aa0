//! LockerFleet wire protocol: ids, MQTT topics and JSON messages shared by server and agent; no I/O.
//!
//! Everything a device and the fleet server say to each other is defined here, so that the two
//! sides cannot drift apart. `PROTOCOL.md` documents the same with JSON examples, and the insta
//! snapshots in `tests/it` turn any wire change into a visible diff.

pub mod code;
pub mod contract;
pub mod evidence;
pub mod ids;
pub mod message;
pub mod release;
pub mod settings;
pub mod topic;

pub use ids::{BoxNo, CommandId, DeviceId, IdError, ItemId, StaffId};
pub use message::{
    AckStatus, BoxState, BusHealth, CertReply, CertRequest, CodeGrant, CodeSync, Command,
    CommandAck, CommandAction, CommandStatus, ConfigProgress, ConfigSync, DecodeError,
    DiagnosticsAsk, DiagnosticsBody, DiagnosticsReport, DiagnosticsRequest, DoctorCheck,
    DroppedGrant, Event, EventBatch, EventBody, FaultKind, FetchRequest, Heartbeat, Level, Power,
    Presence, Profile, Receipt, RejectReason, ReleaseProgress, SpentCode, StaffCredential,
    StateSnapshot, StationStatus, Update, UpdateBody, decode, encode,
};
pub use topic::{Channel, DeviceTopic, TopicError};

/// The version every message carries in its `v` field. Bump it only with a migration plan:
/// agents in the field are updated long after the server.
pub const PROTOCOL_VERSION: u32 = 1;

//! What a device sends: event batches, heartbeats, state snapshots, command acks, presence and
//! certificate requests.

use serde::{Deserialize, Serialize};

use super::server::CodeGrant;
use super::{
    DecodeError, MAX_PEM_BYTES, Message, REQUEST_ID, TEXT, check_request_id, check_text, v1,
    version_schema,
};
use crate::ids::{BoxNo, CommandId, ItemId, StaffId};

/// Most events one batch may carry; the agent sends smaller batches, and the server refuses
/// larger ones so that one message cannot monopolise a storage transaction.
pub const MAX_EVENTS_PER_BATCH: usize = 1000;

/// `devices/{id}/events`: a batch of events in sequence order.
///
/// `base` is the oldest sequence number the agent still holds: it asserts that everything below
/// was receipted before (or never existed, after a reinstall), so the server may advance its
/// receipt mark to `base - 1` even when it has no record of those events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventBatch {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    #[schemars(range(min = 1))]
    pub base: u64,
    #[schemars(length(min = 1, max = MAX_EVENTS_PER_BATCH))]
    pub events: Vec<Event>,
}

impl Message for EventBatch {
    fn version(&self) -> u32 {
        self.v
    }
    fn validate(&self) -> Result<(), DecodeError> {
        if self.events.is_empty() {
            return Err(DecodeError::Invalid("event batch is empty".into()));
        }
        if self.events.len() > MAX_EVENTS_PER_BATCH {
            return Err(DecodeError::Invalid(format!(
                "event batch has {} events; at most {MAX_EVENTS_PER_BATCH} are allowed",
                self.events.len()
            )));
        }
        if self.base == 0 || self.events.iter().any(|e| e.seq < self.base) {
            return Err(DecodeError::Invalid(
                "every event seq must be >= base, and base >= 1".into(),
            ));
        }
        for e in &self.events {
            let text = match &e.body {
                EventBody::Started { agent_version, .. } => {
                    check_text("agent_version", agent_version, 64)
                }
                EventBody::CommandResult {
                    detail: Some(d), ..
                }
                | EventBody::Lost { detail: d } => check_text("detail", d, 1000),
                EventBody::Fault { evidence, .. } => check_text("evidence", evidence, 1000),
                EventBody::CodesApplied { spent, dropped, .. } => {
                    if spent.len() > MAX_RECONCILED || dropped.len() > MAX_RECONCILED {
                        Err(format!(
                            "codes_applied lists at most {MAX_RECONCILED} spent and dropped codes each"
                        ))
                    } else if dropped.iter().any(|d| {
                        !super::server::hex64(&d.grant.tag)
                            || d.grant.not_after < d.grant.not_before
                    }) {
                        Err("a dropped grant's tag must be 64 hex digits and not_after >= not_before".into())
                    } else {
                        Ok(())
                    }
                }
                _ => Ok(()),
            };
            text.map_err(|m| DecodeError::Invalid(format!("event {}: {m}", e.seq)))?;
        }
        Ok(())
    }
}

/// Most entries of each list of a `codes_applied` event: a cabinet's grants each hold a box, so
/// a set rarely changes by more; the agent reports the first this many and logs the rest.
pub const MAX_RECONCILED: usize = 256;

/// A code of the applied set that this cabinet had already used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpentCode {
    pub item: ItemId,
    #[serde(rename = "box")]
    pub box_no: BoxNo,
    /// When its lock was pulsed (agent clock).
    pub used_at: i64,
}

/// A grant of the cabinet's previous set that the applied set leaves out, with what the
/// cabinet knows of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DroppedGrant {
    #[serde(flatten)]
    pub grant: CodeGrant,
    /// When its code was used here, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<i64>,
    /// A pick-up whose box staff loaded here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deposited: bool,
}

/// One event. `seq` is per device, starts at 1 and never repeats, also across agent restarts.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Event {
    #[schemars(range(min = 1))]
    pub seq: u64,
    /// When the agent observed it (agent clock, epoch ms).
    pub ts: i64,
    #[serde(flatten)]
    pub body: EventBody,
}

/// Tolerant of newer agents: an event of a type this side does not know, or naming a value it
/// does not know (a new fault kind, status or reason), decodes as [`EventBody::Unreadable`]
/// with the event as sent — so its sequence number is stored and receipted and the events
/// behind it are not held up. Any other shape error still refuses the batch (that is a bug,
/// not a newer version).
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        // Read once into a map, `seq` and `ts` taken out, the body read from what is left by
        // reference: every event of every batch comes through here, and a struct with a
        // flattened map (serde buffers it, then builds the map) plus a copy of the map for
        // the body cost the ingest a tenth of its CPU (BENCHMARKS.md, PostgreSQL ingest).
        let mut rest = d.deserialize_map(EventFields)?;
        let seq: u64 = event_field(&mut rest, "seq")?;
        let ts: i64 = event_field(&mut rest, "ts")?;
        let rest = serde_json::Value::Object(rest);
        let body = match EventBody::deserialize(&rest) {
            Ok(body) => body,
            Err(e) if is_newer(&e) => EventBody::Unreadable {
                raw: rest,
                // The device's words are in it (the unknown name): kept printable and short.
                reason: e
                    .to_string()
                    .chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .take(300)
                    .collect(),
            },
            Err(e) => return Err(serde::de::Error::custom(format!("event {seq}: {e}"))),
        };
        Ok(Event { seq, ts, body })
    }
}

/// An event as a map of its fields; `seq` or `ts` given twice is refused, as a struct's
/// field would be (which one counts would be a guess).
struct EventFields;

impl<'de> serde::de::Visitor<'de> for EventFields {
    type Value = serde_json::Map<String, serde_json::Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an event (a JSON object)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut fields: A,
    ) -> Result<Self::Value, A::Error> {
        let mut map = serde_json::Map::new();
        while let Some((key, value)) = fields.next_entry::<String, serde_json::Value>()? {
            for own in ["seq", "ts"] {
                if key == own && map.contains_key(own) {
                    return Err(serde::de::Error::duplicate_field(own));
                }
            }
            map.insert(key, value);
        }
        Ok(map)
    }
}

/// An event's own field, taken out of the map its body is read from.
fn event_field<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    map: &mut serde_json::Map<String, serde_json::Value>,
    name: &'static str,
) -> Result<T, E> {
    let value = map.remove(name).ok_or_else(|| E::missing_field(name))?;
    T::deserialize(value).map_err(|e| E::custom(format!("event field `{name}`: {e}")))
}

/// Whether a body failed only for naming a type or value this side does not know.
fn is_newer(e: &serde_json::Error) -> bool {
    // serde's own wording for an enum value (the tag included) outside the known set.
    e.to_string().starts_with("unknown variant")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// The agent (re)started with this many boxes.
    Started {
        boxes: u16,
        #[schemars(length(max = 64), pattern(TEXT))]
        agent_version: String,
    },
    /// A door sensor changed.
    Door {
        #[serde(rename = "box")]
        box_no: BoxNo,
        open: bool,
    },
    /// An occupancy sensor changed.
    Occupancy {
        #[serde(rename = "box")]
        box_no: BoxNo,
        occupied: bool,
    },
    /// The agent could not read this event back from its outbox (damaged storage): the
    /// sequence number is accounted for, its content is lost.
    Lost {
        #[schemars(length(max = 1000), pattern(TEXT))]
        detail: String,
    },
    /// The durable record of a command's outcome (the ack on `acks` is the fast path).
    CommandResult {
        command_id: CommandId,
        #[serde(rename = "box")]
        box_no: BoxNo,
        status: AckStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(max = 1000), pattern(TEXT))]
        detail: Option<String>,
    },
    /// A one-time code opened a box at the keypad (verified on the cabinet, also offline).
    /// The code is spent from the moment the lock is pulsed, whatever `status` says.
    CodeUsed {
        item: ItemId,
        #[serde(rename = "box")]
        box_no: BoxNo,
        status: AckStatus,
    },
    /// A code was refused at the keypad. Never carries the digits typed.
    CodeRejected {
        reason: RejectReason,
        /// The item, where the code matched one (used, not yet valid, expired, not ready).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<ItemId>,
    },
    /// Too many wrong entries: the keypad refuses everything until `until` (agent clock).
    KeypadLocked { until: i64, failures: u32 },
    /// A member of staff opened a box with their credential (collection, deposit, retrieval).
    StaffOpen {
        staff: StaffId,
        #[serde(rename = "box")]
        box_no: BoxNo,
        status: AckStatus,
    },
    /// A staff credential was refused.
    StaffRejected { reason: RejectReason },
    /// The agent now verifies with this version of its code grants. It also says where the
    /// set disagrees with what the cabinet knows (after a server restore, say): codes of
    /// the set it has already used, and grants of its previous set that this one leaves out
    /// while they still matter (in their window, or used here). See PROTOCOL.md, "Reconciling
    /// codes".
    CodesApplied {
        version: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schemars(length(max = MAX_RECONCILED))]
        spent: Vec<SpentCode>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schemars(length(max = MAX_RECONCILED))]
        dropped: Vec<DroppedGrant>,
    },
    /// Where an offered release stands on the cabinet: fetching, staged (downloaded and
    /// verified), or refused with the reason (`protocol::release::Refusal::reason`).
    Release {
        #[schemars(length(max = 32), pattern(TEXT))]
        version: String,
        state: ReleaseProgress,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(max = 500), pattern(TEXT))]
        reason: Option<String>,
    },
    /// Central configuration on the cabinet: `applied` (the `settings` in effect now, named
    /// by `version`), `waiting_restart` (stored; some of it needs a restart, taken when the
    /// cabinet is idle, or by its service manager), or `refused` (`reason`).
    Config {
        #[schemars(length(max = 64), pattern(TEXT))]
        version: String,
        state: ConfigProgress,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settings: Option<crate::settings::Settings>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(max = 500), pattern(TEXT))]
        reason: Option<String>,
    },
    /// An event this side could not read (a newer agent's type or value), kept as sent in
    /// `raw` with why; nothing acts on it. Agents never send it, so the contract omits it.
    #[schemars(skip)]
    Unreadable {
        raw: serde_json::Value,
        reason: String,
    },
    /// A fault condition began (`active: true`) or ended. Raised once per condition and
    /// cleared once, also across agent restarts; `evidence` says what was seen.
    Fault {
        #[serde(rename = "box", default, skip_serializing_if = "Option::is_none")]
        box_no: Option<BoxNo>,
        fault: FaultKind,
        active: bool,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        #[schemars(length(max = 1000), pattern(TEXT))]
        evidence: String,
    },
}

/// What is wrong. Box faults name a box; device faults do not.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A door stayed open longer than the agent's `door_open_alarm_secs`.
    DoorLeftOpen,
    /// A door opened with no unlock pulse before it (no command, code or staff credential).
    ForcedOpen,
    /// An unlock pulse did not open the door.
    LockJam,
    /// Sensors that contradict each other or cannot be read.
    SensorFault,
    /// The lock board does not answer.
    LockBusUnreachable,
    OnBattery,
    Tamper,
    /// The keypad is locked after repeated wrong entries (someone may be guessing codes).
    KeypadLocked,
    /// Station devices (kiosk, tax machine, printer).
    PaperLow,
    PaperOut,
    PaperJam,
    TonerLow,
    NeedsService,
}

impl FaultKind {
    pub const ALL: [FaultKind; 13] = [
        FaultKind::DoorLeftOpen,
        FaultKind::ForcedOpen,
        FaultKind::LockJam,
        FaultKind::SensorFault,
        FaultKind::LockBusUnreachable,
        FaultKind::OnBattery,
        FaultKind::Tamper,
        FaultKind::KeypadLocked,
        FaultKind::PaperLow,
        FaultKind::PaperOut,
        FaultKind::PaperJam,
        FaultKind::TonerLow,
        FaultKind::NeedsService,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::DoorLeftOpen => "door_left_open",
            FaultKind::ForcedOpen => "forced_open",
            FaultKind::LockJam => "lock_jam",
            FaultKind::SensorFault => "sensor_fault",
            FaultKind::LockBusUnreachable => "lock_bus_unreachable",
            FaultKind::OnBattery => "on_battery",
            FaultKind::Tamper => "tamper",
            FaultKind::KeypadLocked => "keypad_locked",
            FaultKind::PaperLow => "paper_low",
            FaultKind::PaperOut => "paper_out",
            FaultKind::PaperJam => "paper_jam",
            FaultKind::TonerLow => "toner_low",
            FaultKind::NeedsService => "needs_service",
        }
    }

    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// `devices/{id}/health`: the agent's heartbeat, sent on connect and every `interval_s`.
///
/// It is the second presence layer (the broker session is the first): a device whose session
/// looks up but whose heartbeats stopped is offline all the same. It also carries the lock-bus
/// health (the third layer), power, the outbox backlog and, on station devices, their
/// peripheral status. Faults are *not* signalled here: they travel as durable `fault` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Heartbeat {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    pub ts: i64,
    /// The next heartbeat is due within this many seconds.
    #[schemars(range(min = 1, max = 3600))]
    pub interval_s: u32,
    pub profile: Profile,
    pub uptime_s: u64,
    pub lock_bus: BusHealth,
    pub power: Power,
    /// Events in the outbox the server has not receipted yet.
    pub outbox_pending: u64,
    /// Station devices only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub station: Option<StationStatus>,
    /// How far the server's clock is ahead of this cabinet's own (server − cabinet, ms), as
    /// the agent learned it from receipts; absent from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<i64>,
}

impl Message for Heartbeat {
    fn version(&self) -> u32 {
        self.v
    }
    fn validate(&self) -> Result<(), DecodeError> {
        if self.interval_s == 0 || self.interval_s > 3_600 {
            return Err(DecodeError::Invalid(format!(
                "interval_s is {}; it must be 1..=3600",
                self.interval_s
            )));
        }
        if let BusHealth::Unreachable { detail } = &self.lock_bus {
            check_text("lock_bus.detail", detail, 512).map_err(DecodeError::Invalid)?;
        }
        Ok(())
    }
}

/// What kind of device an agent drives: a locker cabinet or one of the service-station
/// devices of the document (self-service kiosk, tax machine, printer).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    #[default]
    Locker,
    Kiosk,
    TaxMachine,
    Printer,
}

impl Profile {
    pub const ALL: [Profile; 4] = [
        Profile::Locker,
        Profile::Kiosk,
        Profile::TaxMachine,
        Profile::Printer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Locker => "locker",
            Profile::Kiosk => "kiosk",
            Profile::TaxMachine => "tax_machine",
            Profile::Printer => "printer",
        }
    }

    pub fn parse(s: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn is_station(self) -> bool {
        self != Profile::Locker
    }
}

/// The lock board as the agent last found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum BusHealth {
    Ok,
    Unreachable {
        #[schemars(length(max = 512), pattern(TEXT))]
        detail: String,
    },
    /// The device has no lock board (a station device).
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Power {
    Mains,
    Battery,
    /// No power sensor.
    Unknown,
}

impl Power {
    pub fn as_str(self) -> &'static str {
        match self {
            Power::Mains => "mains",
            Power::Battery => "battery",
            Power::Unknown => "unknown",
        }
    }
}

/// A consumable's level as the peripheral reports it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    #[default]
    Ok,
    Low,
    Out,
    /// The peripheral has none (a kiosk without a printer) or cannot tell.
    Absent,
}

/// The peripherals of a station device.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
pub struct StationStatus {
    pub paper: Level,
    pub toner: Level,
    pub paper_jam: bool,
    pub needs_service: bool,
}

impl StationStatus {
    /// The faults this status amounts to, each with whether it is active now. Paper out
    /// replaces paper low (the low alarm clears when the out alarm is raised).
    pub fn faults(&self) -> [(FaultKind, bool); 5] {
        [
            (FaultKind::PaperLow, self.paper == Level::Low),
            (FaultKind::PaperOut, self.paper == Level::Out),
            (FaultKind::PaperJam, self.paper_jam),
            (
                FaultKind::TonerLow,
                matches!(self.toner, Level::Low | Level::Out),
            ),
            (FaultKind::NeedsService, self.needs_service),
        ]
    }
}

/// Why the keypad refused an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Not 6 to 8 digits (or not a well-formed staff credential).
    Malformed,
    /// No grant (or staff member) of this cabinet matches.
    Unknown,
    /// The code was used before.
    Used,
    NotYetValid,
    Expired,
    /// A pick-up code whose box has not been loaded by staff yet.
    NotReady,
    /// The keypad is locked after too many wrong entries.
    LockedOut,
    /// The box named with a staff credential does not exist.
    NoSuchBox,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::Unknown => "unknown",
            RejectReason::Used => "used",
            RejectReason::NotYetValid => "not_yet_valid",
            RejectReason::Expired => "expired",
            RejectReason::NotReady => "not_ready",
            RejectReason::LockedOut => "locked_out",
            RejectReason::NoSuchBox => "no_such_box",
        }
    }
}

impl EventBody {
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Started { .. } => "started",
            EventBody::Door { .. } => "door",
            EventBody::Occupancy { .. } => "occupancy",
            EventBody::Lost { .. } => "lost",
            EventBody::CommandResult { .. } => "command_result",
            EventBody::CodeUsed { .. } => "code_used",
            EventBody::CodeRejected { .. } => "code_rejected",
            EventBody::KeypadLocked { .. } => "keypad_locked",
            EventBody::StaffOpen { .. } => "staff_open",
            EventBody::StaffRejected { .. } => "staff_rejected",
            EventBody::CodesApplied { .. } => "codes_applied",
            EventBody::Release { .. } => "release",
            EventBody::Config { .. } => "config",
            EventBody::Fault { .. } => "fault",
            EventBody::Unreadable { .. } => "unreadable",
        }
    }

    pub fn box_no(&self) -> Option<BoxNo> {
        match self {
            EventBody::Started { .. }
            | EventBody::Lost { .. }
            | EventBody::CodeRejected { .. }
            | EventBody::KeypadLocked { .. }
            | EventBody::StaffRejected { .. }
            | EventBody::CodesApplied { .. }
            | EventBody::Release { .. }
            | EventBody::Config { .. }
            | EventBody::Unreadable { .. } => None,
            EventBody::Fault { box_no, .. } => *box_no,
            EventBody::Door { box_no, .. }
            | EventBody::Occupancy { box_no, .. }
            | EventBody::CommandResult { box_no, .. }
            | EventBody::CodeUsed { box_no, .. }
            | EventBody::StaffOpen { box_no, .. } => Some(*box_no),
        }
    }
}

/// `devices/{id}/state` (retained): every box as the agent sees it now. `seq` is the last event
/// sequence number the snapshot reflects, so the server never lets an older event override it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StateSnapshot {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    pub seq: u64,
    pub ts: i64,
    #[schemars(length(max = 65535))]
    pub boxes: Vec<BoxState>,
}

impl Message for StateSnapshot {
    fn version(&self) -> u32 {
        self.v
    }
    fn validate(&self) -> Result<(), DecodeError> {
        if self.boxes.len() > u16::MAX as usize {
            return Err(DecodeError::Invalid("too many boxes in snapshot".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BoxState {
    #[serde(rename = "box")]
    pub box_no: BoxNo,
    pub door_open: bool,
    /// `None` where the box has no occupancy sensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupied: Option<bool>,
}

/// What an agent reports about a command. `Delivered` comes first, then one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    Delivered,
    Opened,
    AlreadyOpen,
    Jammed,
    Failed,
    /// The agent refused it: its `expires_at` had passed when it arrived.
    Expired,
}

/// `devices/{id}/acks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CommandAck {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    pub command_id: CommandId,
    pub status: AckStatus,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000), pattern(TEXT))]
    pub detail: Option<String>,
}

impl Message for CommandAck {
    fn version(&self) -> u32 {
        self.v
    }
    fn validate(&self) -> Result<(), DecodeError> {
        match &self.detail {
            Some(d) => check_text("detail", d, 1000).map_err(DecodeError::Invalid),
            None => Ok(()),
        }
    }
}

/// `devices/{id}/csr`: the agent asks for a new certificate before its own expires. The
/// request's subject must name the device itself; the server takes nothing else from it but
/// the public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CertRequest {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    /// Chosen by the agent; the reply carries it back (a reply to an older request is ignored).
    #[schemars(pattern(REQUEST_ID))]
    pub request_id: String,
    /// PKCS#10 in PEM.
    #[schemars(length(max = MAX_PEM_BYTES), pattern(TEXT))]
    pub csr: String,
}

impl Message for CertRequest {
    fn version(&self) -> u32 {
        self.v
    }

    fn validate(&self) -> Result<(), DecodeError> {
        check_request_id(&self.request_id)?;
        check_text("csr", &self.csr, MAX_PEM_BYTES).map_err(DecodeError::Invalid)
    }
}

/// `devices/{id}/presence` (retained): the broker front's exact view of the device's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Presence {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    pub online: bool,
    pub ts: i64,
    pub reason: String,
}

impl Message for Presence {
    fn version(&self) -> u32 {
        self.v
    }
}

/// Where an offered release stands on a cabinet. The install steps follow the order listed;
/// a cabinet reports each as it reaches it (PROTOCOL.md, Agent releases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseProgress {
    /// Accepted (signature, target and version checked) and fetching.
    Downloading,
    /// Every byte fetched and the binary verified against the signed manifest: staged.
    Downloaded,
    /// Staged and to be installed, waiting for the maintenance window or for the cabinet to
    /// be idle; `reason` says which.
    Waiting,
    /// The cabinet is idle inside the window: the agent stops and its supervisor switches to
    /// the new version.
    Installing,
    /// The new version runs on trial: it must connect and pass its self-check in time.
    Confirming,
    /// The new version confirmed itself and stays.
    Succeeded,
    /// The install could not be attempted (no supervisor, storage); the old version runs.
    Failed,
    /// The new version failed its trial (`reason`: crashed, hung, self-check failed) and the
    /// supervisor went back to the previous version.
    RolledBack,
    /// Refused; `reason` says why.
    Refused,
}

impl ReleaseProgress {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseProgress::Downloading => "downloading",
            ReleaseProgress::Downloaded => "downloaded",
            ReleaseProgress::Waiting => "waiting",
            ReleaseProgress::Installing => "installing",
            ReleaseProgress::Confirming => "confirming",
            ReleaseProgress::Succeeded => "succeeded",
            ReleaseProgress::Failed => "failed",
            ReleaseProgress::RolledBack => "rolled_back",
            ReleaseProgress::Refused => "refused",
        }
    }

    /// Nothing more will happen for this release on this cabinet.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ReleaseProgress::Succeeded
                | ReleaseProgress::Failed
                | ReleaseProgress::RolledBack
                | ReleaseProgress::Refused
        )
    }
}

/// Where a desired configuration stands on a cabinet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConfigProgress {
    /// In effect.
    Applied,
    /// Stored and in effect after a restart (taken when the cabinet is idle).
    WaitingRestart,
    /// Not applied; `reason` says why.
    Refused,
}

impl ConfigProgress {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigProgress::Applied => "applied",
            ConfigProgress::WaitingRestart => "waiting_restart",
            ConfigProgress::Refused => "refused",
        }
    }
}

/// Most bytes one chunk of a release carries (base64 on the wire: well under the device
/// port's packet limit).
pub const MAX_CHUNK: u32 = 64 * 1024;

/// `devices/{id}/fetch`: the next bytes of an offered release, from `offset`. The device asks
/// for one chunk at a time, so a slow link never has more than one in flight, and resumes
/// after a disconnect or a restart from the bytes it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FetchRequest {
    #[serde(default = "v1")]
    #[schemars(schema_with = "version_schema")]
    pub v: u32,
    #[schemars(length(min = 1, max = 64), pattern(TEXT))]
    pub target: String,
    #[schemars(length(min = 1, max = 32), pattern(TEXT))]
    pub version: String,
    pub offset: u64,
    #[schemars(range(min = 1, max = MAX_CHUNK))]
    pub len: u32,
}

impl Message for FetchRequest {
    fn version(&self) -> u32 {
        self.v
    }
    fn validate(&self) -> Result<(), DecodeError> {
        check_text("target", &self.target, 64).map_err(DecodeError::Invalid)?;
        check_text("version", &self.version, 32).map_err(DecodeError::Invalid)?;
        if self.len == 0 || self.len > MAX_CHUNK {
            return Err(DecodeError::Invalid(format!(
                "len {} is outside 1..={MAX_CHUNK}",
                self.len
            )));
        }
        Ok(())
    }
}

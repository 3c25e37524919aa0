//! The alarm policy: which alarms exist (a fault a device reports, or a condition the server
//! detects), how bad each is, which are sent to on-duty staff, and when a cleared alarm comes
//! back as the same one. The store carries these decisions out inside its transactions.

use protocol::FaultKind;
use serde::{Deserialize, Serialize};

/// A cleared alarm raised again by the same source within this time is reopened (its count
/// bumped) rather than duplicated: a flapping door is one alarm with a count.
pub const REOPEN_WINDOW_MS: i64 = 10 * 60_000;

str_enum!(
    /// How bad an alarm is, for filtering, paging and escalation; worst first.
    Severity {
        Critical => "critical",
        Major => "major",
        Minor => "minor",
        Warning => "warning",
    }
);

impl Severity {
    /// Whether on-duty staff are told of a new alarm of this severity (by SMS), and told
    /// again when nobody acknowledges it.
    pub fn pages(self) -> bool {
        matches!(self, Severity::Critical | Severity::Major)
    }
}

str_enum!(
    /// Where an alarm stands: raised, seen by an operator, or over.
    AlarmState {
        Active => "active",
        Acknowledged => "acknowledged",
        Cleared => "cleared",
    }
);

impl AlarmState {
    pub fn is_open(self) -> bool {
        self != AlarmState::Cleared
    }
}

/// What an alarm is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmKind {
    /// A fault the device reported (a durable `fault` event).
    Fault(FaultKind),
    /// The server stopped hearing from the device past the grace (no session, or heartbeats
    /// that stopped behind a live one). Suppresses the device's box alarms while open.
    DeviceOffline,
    /// The cabinet's own clock is far from the server's.
    ClockSkew,
    /// Events the server had receipted are not in its database (a restore from an older
    /// backup): one alarm for the fleet, counting events and cabinets as they come back.
    EventsLost,
}

impl AlarmKind {
    /// Every kind: the devices' faults, then the server's own.
    pub fn all() -> impl Iterator<Item = AlarmKind> {
        FaultKind::ALL.into_iter().map(AlarmKind::Fault).chain([
            AlarmKind::DeviceOffline,
            AlarmKind::ClockSkew,
            AlarmKind::EventsLost,
        ])
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::Fault(f) => f.as_str(),
            AlarmKind::DeviceOffline => "device_offline",
            AlarmKind::ClockSkew => "clock_skew",
            AlarmKind::EventsLost => "events_lost",
        }
    }

    pub fn parse(s: &str) -> Option<AlarmKind> {
        AlarmKind::all().find(|k| k.as_str() == s)
    }

    /// The accepted spellings, for error messages.
    pub fn choices() -> String {
        AlarmKind::all()
            .map(AlarmKind::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How bad it is. A lock that can be opened by force or tampered with is critical; a
    /// cabinet that cannot serve (jammed, unreachable, offline, locked keypad) major; what
    /// degrades service minor; consumables running low a warning. A wrong clock is judged
    /// around (the agent uses the server's time), so it is minor.
    pub fn severity(self) -> Severity {
        match self {
            AlarmKind::Fault(f) => match f {
                FaultKind::ForcedOpen | FaultKind::Tamper => Severity::Critical,
                FaultKind::LockJam
                | FaultKind::LockBusUnreachable
                | FaultKind::SensorFault
                | FaultKind::KeypadLocked => Severity::Major,
                FaultKind::DoorLeftOpen
                | FaultKind::OnBattery
                | FaultKind::PaperOut
                | FaultKind::PaperJam
                | FaultKind::NeedsService => Severity::Minor,
                FaultKind::PaperLow | FaultKind::TonerLow => Severity::Warning,
            },
            AlarmKind::DeviceOffline | AlarmKind::EventsLost => Severity::Major,
            AlarmKind::ClockSkew => Severity::Minor,
        }
    }

    /// Who raises and clears it by itself: `device` (fault events) or `server`.
    pub fn source(self) -> &'static str {
        match self {
            AlarmKind::Fault(_) => "device",
            AlarmKind::DeviceOffline | AlarmKind::ClockSkew | AlarmKind::EventsLost => "server",
        }
    }
}

impl std::fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AlarmKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AlarmKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        AlarmKind::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "alarm kind {s:?} is unknown; one of: {}",
                AlarmKind::choices()
            ))
        })
    }
}

/// What a client reads where an older server sent no kind.
impl Default for AlarmKind {
    fn default() -> Self {
        AlarmKind::DeviceOffline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_spelling_and_a_severity() {
        let kinds: Vec<AlarmKind> = AlarmKind::all().collect();
        assert_eq!(kinds.len(), FaultKind::ALL.len() + 3);
        for k in kinds {
            assert_eq!(AlarmKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).expect("json");
            assert_eq!(serde_json::from_str::<AlarmKind>(&json).ok(), Some(k));
        }
        assert!(serde_json::from_str::<AlarmKind>("\"sabotage\"").is_err());
        assert_eq!(
            AlarmKind::Fault(FaultKind::ForcedOpen).severity(),
            Severity::Critical
        );
        assert!(AlarmKind::DeviceOffline.severity().pages());
        assert!(!AlarmKind::ClockSkew.severity().pages());
        assert_eq!(AlarmKind::Fault(FaultKind::DoorLeftOpen).source(), "device");
        assert_eq!(AlarmKind::DeviceOffline.source(), "server");
    }
}

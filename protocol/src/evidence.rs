//! The evidence sentences of faults and alarms: what the agent and the server write about why a
//! fault was raised or cleared (`Fault::evidence`, alarm evidence). The English sentence is the
//! wire form, unchanged for every reader; each one is built here from its [`Code`] and values,
//! and [`parse`] gives them back, so a reader in another language can say the same thing.
//! A sentence not from here (an older agent's, a driver's own detail) parses to `None` and is
//! shown as written.

/// Which sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    OccupancyAgain,
    OccupancyChanged,
    DoorOpenedJudged,
    ForcedOpen,
    DoorClosed,
    DoorClosedAtStart,
    DoorOpenFor,
    JamNoChange,
    PulseOpened,
    BusSilent,
    BusBack,
    MainsLost,
    MainsBack,
    TamperOpen,
    TamperClosed,
    StationClears,
    StationReports,
    KeypadLocked,
    KeypadUnlocked,
    Offline,
    HeartbeatLost,
    BackOnline,
    ClockOff,
    ClockAgrees,
    EventsLostRestore,
    EventsLost,
}

/// Each sentence with `{}` where its values go, in the order they are given. Longer forms
/// come before the shorter ones they start like (`… no more` before `…`).
const SENTENCES: &[(Code, &str)] = &[
    (Code::OccupancyAgain, "occupancy reads {} again"),
    (
        Code::OccupancyChanged,
        "occupancy changed to {} while the door stayed shut and no lock was pulsed",
    ),
    (
        Code::DoorOpenedJudged,
        "door opened; occupancy judged afresh",
    ),
    (
        Code::ForcedOpen,
        "door opened with no unlock pulse in the preceding {} ms",
    ),
    (Code::DoorClosedAtStart, "door found closed at start"),
    (Code::DoorClosed, "door closed"),
    (Code::DoorOpenFor, "door open for {} s"),
    (
        Code::JamNoChange,
        "door sensor did not change within {} ms of the unlock pulse",
    ),
    (Code::PulseOpened, "the next pulse opened the door"),
    (Code::BusSilent, "no answer in {} polls in a row ({})"),
    (Code::BusBack, "the lock board answers again"),
    (Code::MainsLost, "mains lost; running on the battery"),
    (Code::MainsBack, "mains power is back"),
    (Code::TamperOpen, "the enclosure's tamper switch is open"),
    (Code::TamperClosed, "the tamper switch is closed again"),
    (Code::StationClears, "the {} reports {} no more"),
    (Code::StationReports, "the {} reports {}"),
    (
        Code::KeypadLocked,
        "repeated wrong entries; locked until {} (agent clock)",
    ),
    (Code::KeypadUnlocked, "the lock ended"),
    (Code::Offline, "offline for more than {} s ({})"),
    (
        Code::HeartbeatLost,
        "session up but no heartbeat for {} s (agent hung or its link half-open)",
    ),
    (
        Code::BackOnline,
        "back online: session up and heartbeats fresh",
    ),
    (
        Code::ClockOff,
        "the cabinet's clock is {} {} the server's; it judges codes and commands on the server's time, but fix its clock (NTP)",
    ),
    (
        Code::ClockAgrees,
        "the cabinet's clock agrees with the server's again",
    ),
    (
        Code::EventsLostRestore,
        "{} events of {} cabinets were lost with the restore: the cabinets deleted them after the server's receipt, and the backup was older",
    ),
    (
        Code::EventsLost,
        "{} events of {} cabinets were lost: the server had receipted them and its database no longer holds them",
    ),
];

impl Code {
    /// The name a catalogue selects on (`forced_open`).
    pub fn name(self) -> &'static str {
        match self {
            Code::OccupancyAgain => "occupancy_again",
            Code::OccupancyChanged => "occupancy_changed",
            Code::DoorOpenedJudged => "door_opened_judged",
            Code::ForcedOpen => "forced_open",
            Code::DoorClosed => "door_closed",
            Code::DoorClosedAtStart => "door_closed_at_start",
            Code::DoorOpenFor => "door_open_for",
            Code::JamNoChange => "jam_no_change",
            Code::PulseOpened => "pulse_opened",
            Code::BusSilent => "bus_silent",
            Code::BusBack => "bus_back",
            Code::MainsLost => "mains_lost",
            Code::MainsBack => "mains_back",
            Code::TamperOpen => "tamper_open",
            Code::TamperClosed => "tamper_closed",
            Code::StationClears => "station_clears",
            Code::StationReports => "station_reports",
            Code::KeypadLocked => "keypad_locked",
            Code::KeypadUnlocked => "keypad_unlocked",
            Code::Offline => "offline",
            Code::HeartbeatLost => "heartbeat_lost",
            Code::BackOnline => "back_online",
            Code::ClockOff => "clock_off",
            Code::ClockAgrees => "clock_agrees",
            Code::EventsLostRestore => "events_lost_restore",
            Code::EventsLost => "events_lost",
        }
    }

    /// Every sentence's code.
    pub fn all() -> impl Iterator<Item = Code> {
        SENTENCES.iter().map(|(c, _)| *c)
    }

    fn template(self) -> &'static str {
        SENTENCES
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("", |(_, t)| t)
    }

    /// How many values the sentence takes.
    pub fn arity(self) -> usize {
        self.template().matches("{}").count()
    }
}

/// The sentence `code` says with `values` in its places (missing ones left empty).
pub fn say(code: Code, values: &[&str]) -> String {
    let mut out = String::new();
    for (i, part) in code.template().split("{}").enumerate() {
        if i > 0 {
            out.push_str(values.get(i - 1).copied().unwrap_or(""));
        }
        out.push_str(part);
    }
    out
}

/// The code and values of a sentence built by [`say`]; `None` for any other text.
pub fn parse(text: &str) -> Option<(Code, Vec<String>)> {
    SENTENCES.iter().find_map(|(code, template)| {
        let parts: Vec<&str> = template.split("{}").collect();
        let mut rest = text.strip_prefix(parts[0])?;
        let mut values = Vec::new();
        for (i, part) in parts.iter().enumerate().skip(1) {
            let last = i == parts.len() - 1;
            // A value runs to the next literal part (the last one to where the text ends).
            let end = if last {
                if part.is_empty() {
                    rest.len()
                } else {
                    rest.strip_suffix(part).map(str::len)?
                }
            } else {
                rest.find(part)?
            };
            values.push(rest[..end].to_owned());
            rest = &rest[end + part.len()..];
        }
        rest.is_empty().then_some((*code, values))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sentence_comes_back_as_its_code_and_values() {
        for code in Code::all() {
            let values: Vec<String> = (0..code.arity()).map(|i| format!("v{i}")).collect();
            let refs: Vec<&str> = values.iter().map(String::as_str).collect();
            let text = say(code, &refs);
            assert_eq!(parse(&text), Some((code, values)), "{text}");
        }
        assert_eq!(
            parse("no answer in 3 polls in a row (cabinet signals: timed out (5 s))"),
            Some((
                Code::BusSilent,
                vec!["3".into(), "cabinet signals: timed out (5 s)".into()]
            ))
        );
        assert_eq!(
            parse("the printer reports paper_low no more"),
            Some((
                Code::StationClears,
                vec!["printer".into(), "paper_low".into()]
            ))
        );
        assert_eq!(parse("something an old agent said"), None);
    }
}

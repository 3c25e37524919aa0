//! Central configuration: the agent settings the server manages for the fleet, their limits
//! (checked on the server before anything is sent, and again on the cabinet), which of them a
//! running agent takes live and which need a restart, and the version that names a set.
//!
//! A [`Settings`] is sparse: a layer (fleet, site kind, site, label, device) sets some fields,
//! and [`Settings::overlay`] lays the more specific over the less. What the cabinet receives
//! is the merged set; a field left unset keeps the agent's own configuration file's value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A setting's name, limits and how it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub min: u64,
    pub max: u64,
    pub unit: &'static str,
    /// A running agent applies it at once; otherwise the agent restarts when idle.
    pub live: bool,
    pub about: &'static str,
}

/// Every managed setting, in wire order.
pub const FIELDS: &[Field] = &[
    Field {
        name: "heartbeat_secs",
        min: 5,
        max: 3_600,
        unit: "s",
        live: false,
        about: "a heartbeat goes to the server this often",
    },
    Field {
        name: "poll_interval_ms",
        min: 20,
        max: 5_000,
        unit: "ms",
        live: false,
        about: "door and occupancy sensors are read this often",
    },
    Field {
        name: "jam_timeout_ms",
        min: 200,
        max: 60_000,
        unit: "ms",
        live: false,
        about: "an unlock pulse whose door does not open within this is a jam",
    },
    Field {
        name: "door_open_alarm_secs",
        min: 10,
        max: 86_400,
        unit: "s",
        live: true,
        about: "a door open longer than this raises door_left_open",
    },
    Field {
        name: "keypad_max_failures",
        min: 1,
        max: 50,
        unit: "",
        live: true,
        about: "wrong keypad entries within keypad_window_secs that lock the keypad",
    },
    Field {
        name: "keypad_window_secs",
        min: 10,
        max: 86_400,
        unit: "s",
        live: true,
        about: "the window in which wrong entries are counted",
    },
    Field {
        name: "keypad_lockout_secs",
        min: 10,
        max: 86_400,
        unit: "s",
        live: true,
        about: "how long the keypad stays locked after too many wrong entries",
    },
    Field {
        name: "log_level",
        min: 1,
        max: 5,
        unit: "",
        live: true,
        about: "how much the agent logs: 1 error, 2 warn, 3 info, 4 debug, 5 trace (the log crate's numbering); unset keeps the agent's own",
    },
];

/// The `log_level` names, by value (1 = `error`).
pub const LOG_LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// The name of a `log_level` value (`None` outside 1..=5).
pub fn log_level_name(value: u64) -> Option<&'static str> {
    usize::try_from(value)
        .ok()
        .and_then(|v| v.checked_sub(1))
        .and_then(|i| LOG_LEVELS.get(i).copied())
}

/// The managed settings; each `None` is "not set here".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jam_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_open_alarm_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypad_max_failures: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypad_window_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypad_lockout_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<u64>,
    /// Names this side does not know (a typo, or a newer server's setting): [`Settings::check`]
    /// refuses them by name, so an older agent says what it cannot apply instead of
    /// dropping the whole message.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

/// A value outside its field's limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting `{field}` {why}")]
pub struct SettingError {
    pub field: String,
    pub why: String,
}

impl Settings {
    /// The fields set, by name, in wire order.
    pub fn values(&self) -> Vec<(&'static Field, u64)> {
        let all = [
            self.heartbeat_secs,
            self.poll_interval_ms,
            self.jam_timeout_ms,
            self.door_open_alarm_secs,
            self.keypad_max_failures,
            self.keypad_window_secs,
            self.keypad_lockout_secs,
            self.log_level,
        ];
        FIELDS
            .iter()
            .zip(all)
            .filter_map(|(f, v)| v.map(|v| (f, v)))
            .collect()
    }

    /// One field's value, by name (`None`: unset or no such field).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values()
            .into_iter()
            .find(|(f, _)| f.name == name)
            .map(|(_, v)| v)
    }

    /// Sets or clears one field by name; false when there is no such field.
    pub fn set(&mut self, name: &str, value: Option<u64>) -> bool {
        match self.slot(name) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<u64>> {
        Some(match name {
            "heartbeat_secs" => &mut self.heartbeat_secs,
            "poll_interval_ms" => &mut self.poll_interval_ms,
            "jam_timeout_ms" => &mut self.jam_timeout_ms,
            "door_open_alarm_secs" => &mut self.door_open_alarm_secs,
            "keypad_max_failures" => &mut self.keypad_max_failures,
            "keypad_window_secs" => &mut self.keypad_window_secs,
            "keypad_lockout_secs" => &mut self.keypad_lockout_secs,
            "log_level" => &mut self.log_level,
            _ => return None,
        })
    }

    /// Every field set is within its limits; the first that is not, named with its limits.
    pub fn check(&self) -> Result<(), SettingError> {
        if let Some(name) = self.unknown.keys().next() {
            let known: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
            return Err(SettingError {
                field: name.clone(),
                why: format!(
                    "is not a setting this side knows; known: {}",
                    known.join(", ")
                ),
            });
        }
        for (f, v) in self.values() {
            if v < f.min || v > f.max {
                return Err(SettingError {
                    field: f.name.to_string(),
                    why: format!(
                        "= {v} is out of range: {} to {}{} ({})",
                        f.min,
                        f.max,
                        if f.unit.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", f.unit)
                        },
                        f.about
                    ),
                });
            }
        }
        Ok(())
    }

    /// This set with every field `over` sets replaced by its value.
    pub fn overlay(&self, over: &Settings) -> Settings {
        let mut out = self.clone();
        for (f, v) in over.values() {
            if let Some(slot) = out.slot(f.name) {
                *slot = Some(v);
            }
        }
        out
    }

    /// The fields whose value differs between the two sets (set in one and not the other
    /// counts), in wire order.
    pub fn changed(&self, other: &Settings) -> Vec<&'static Field> {
        let (mut a, mut b) = (self.clone(), other.clone());
        FIELDS
            .iter()
            .filter(|f| a.slot(f.name).map(|s| *s) != b.slot(f.name).map(|s| *s))
            .collect()
    }

    /// What names this set: the first 16 hex digits of the SHA-256 of its JSON (fields in
    /// wire order, unset ones left out), so equal sets have equal versions on every replica
    /// and drift is a comparison of two strings.
    pub fn version(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default(); // integers cannot fail
        let digest = ring::digest::digest(&ring::digest::SHA256, &json);
        hex::encode(&digest.as_ref()[..8])
    }

    pub fn is_empty(&self) -> bool {
        self.values().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_field_has_a_slot_and_limits_that_make_sense() {
        let mut s = Settings::default();
        for f in FIELDS {
            assert!(f.min <= f.max, "{}", f.name);
            *s.slot(f.name).expect(f.name) = Some(f.min);
        }
        assert_eq!(s.values().len(), FIELDS.len());
        assert_eq!(s.check(), Ok(()));
    }

    #[test]
    fn out_of_range_is_named_with_its_limits() {
        let s = Settings {
            heartbeat_secs: Some(1),
            ..Default::default()
        };
        let e = s.check().expect_err("too small");
        assert_eq!(e.field, "heartbeat_secs");
        assert_eq!(
            e.to_string(),
            "setting `heartbeat_secs` = 1 is out of range: 5 to 3600 s (a heartbeat goes to the server this often)"
        );
        let typo: Settings = serde_json::from_str(r#"{"hearbeat_secs": 30}"#).expect("kept");
        let e = typo.check().expect_err("unknown");
        assert_eq!(e.field, "hearbeat_secs");
        assert!(e.to_string().contains("known: heartbeat_secs, "), "{e}");
        assert!(serde_json::from_str::<Settings>(r#"{"heartbeat_secs": "30s"}"#).is_err());
    }

    #[test]
    fn the_more_specific_layer_wins_field_by_field() {
        let fleet = Settings {
            heartbeat_secs: Some(30),
            door_open_alarm_secs: Some(120),
            ..Default::default()
        };
        let site = Settings {
            door_open_alarm_secs: Some(300),
            ..Default::default()
        };
        let merged = fleet.overlay(&site);
        assert_eq!(merged.heartbeat_secs, Some(30));
        assert_eq!(merged.door_open_alarm_secs, Some(300));
        let changed: Vec<&str> = fleet.changed(&merged).iter().map(|f| f.name).collect();
        assert_eq!(changed, ["door_open_alarm_secs"]);
        assert!(
            FIELDS
                .iter()
                .any(|f| f.name == "door_open_alarm_secs" && f.live)
        );
    }

    #[test]
    fn versions_name_contents() {
        let a = Settings {
            keypad_lockout_secs: Some(600),
            ..Default::default()
        };
        assert_eq!(a.version(), a.clone().version());
        assert_eq!(a.version().len(), 16);
        assert_ne!(a.version(), Settings::default().version());
    }

    proptest! {
        #[test]
        fn overlay_keeps_what_the_top_does_not_set(
            a in proptest::collection::vec(proptest::option::of(0u64..100_000), FIELDS.len()),
            b in proptest::collection::vec(proptest::option::of(0u64..100_000), FIELDS.len()),
        ) {
            let make = |v: &[Option<u64>]| {
                let mut s = Settings::default();
                for (f, x) in FIELDS.iter().zip(v) {
                    *s.slot(f.name).expect("slot") = *x;
                }
                s
            };
            let (lo, hi) = (make(&a), make(&b));
            let mut m = lo.overlay(&hi);
            for (i, f) in FIELDS.iter().enumerate() {
                prop_assert_eq!(*m.slot(f.name).expect("slot"), b[i].or(a[i]));
            }
            // Overlaying is idempotent and the empty set is its identity.
            prop_assert_eq!(m.overlay(&hi), m.clone());
            prop_assert_eq!(m.overlay(&Settings::default()), m);
        }
    }
}

//! Central configuration: the layers a desired setting can be set on, and which layer wins
//! for a device. The most specific wins, field by field: fleet, then site kind, then site,
//! then label, then the device itself.

use std::collections::BTreeMap;

use protocol::settings::Settings;
use serde::{Deserialize, Serialize};

use crate::labels::Labels;

str_enum!(
    /// Where a layer of settings applies, least specific first.
    Scope {
        /// Every device (key: empty).
        Fleet => "fleet",
        /// Devices at sites of a kind (key: `service_hall`, `enterprise_cluster`, …).
        SiteKind => "site_kind",
        /// Devices at one site (key: the site id).
        Site => "site",
        /// Devices carrying a label (key: `name=value`).
        Label => "label",
        /// One device (key: its id).
        Device => "device",
    }
);

/// One layer: a scope, its key, and the fields it sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub scope: Scope,
    pub key: String,
    pub settings: Settings,
}

/// What a device is, as far as the layers care.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement<'a> {
    pub device: &'a str,
    pub site: Option<&'a str>,
    pub site_kind: Option<&'a str>,
    pub labels: Option<&'a Labels>,
}

/// A device's desired settings, and for each field the layer it came from (`site:hall-1`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    pub settings: Settings,
    pub sources: BTreeMap<&'static str, String>,
}

impl Layer {
    /// Whether this layer applies to the device.
    pub fn applies(&self, p: &Placement<'_>) -> bool {
        match self.scope {
            Scope::Fleet => true,
            Scope::SiteKind => p.site_kind == Some(self.key.as_str()),
            Scope::Site => p.site == Some(self.key.as_str()),
            Scope::Label => self.key.split_once('=').is_some_and(|(k, v)| {
                p.labels
                    .is_some_and(|l| l.get(k).map(String::as_str) == Some(v))
            }),
            Scope::Device => p.device == self.key,
        }
    }

    /// `site:hall-1`, `fleet`.
    pub fn name(&self) -> String {
        if self.scope == Scope::Fleet {
            "fleet".into()
        } else {
            format!("{}:{}", self.scope, self.key)
        }
    }
}

/// The settings a device should run with: every layer that applies, the less specific first,
/// the more specific over it. Two label layers that both apply go in the order of their
/// keys (`board=…` before `district=…`): deterministic, and documented, rather than
/// guessed.
pub fn desired(layers: &[Layer], p: &Placement<'_>) -> Desired {
    let mut applying: Vec<&Layer> = layers.iter().filter(|l| l.applies(p)).collect();
    applying.sort_by(|a, b| {
        (Scope::ALL.iter().position(|s| *s == a.scope), &a.key)
            .cmp(&(Scope::ALL.iter().position(|s| *s == b.scope), &b.key))
    });
    let mut out = Desired::default();
    for l in applying {
        out.settings = out.settings.overlay(&l.settings);
        for (f, _) in l.settings.values() {
            out.sources.insert(f.name, l.name());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(scope: Scope, key: &str, s: Settings) -> Layer {
        Layer {
            scope,
            key: key.into(),
            settings: s,
        }
    }

    #[test]
    fn the_most_specific_layer_wins_field_by_field() {
        let layers = vec![
            layer(
                Scope::Device,
                "cab-1",
                Settings {
                    heartbeat_secs: Some(10),
                    ..Default::default()
                },
            ),
            layer(
                Scope::Fleet,
                "",
                Settings {
                    heartbeat_secs: Some(30),
                    door_open_alarm_secs: Some(120),
                    keypad_lockout_secs: Some(600),
                    ..Default::default()
                },
            ),
            layer(
                Scope::Site,
                "hall",
                Settings {
                    door_open_alarm_secs: Some(300),
                    ..Default::default()
                },
            ),
            layer(
                Scope::Label,
                "board=modbus-v2",
                Settings {
                    door_open_alarm_secs: Some(400),
                    ..Default::default()
                },
            ),
            layer(
                Scope::SiteKind,
                "service_hall",
                Settings {
                    keypad_lockout_secs: Some(900),
                    ..Default::default()
                },
            ),
        ];
        let labels: Labels = [("board".to_string(), "modbus-v2".to_string())].into();
        let at_hall = Placement {
            device: "cab-2",
            site: Some("hall"),
            site_kind: Some("service_hall"),
            labels: None,
        };
        let d = desired(&layers, &at_hall);
        assert_eq!(d.settings.heartbeat_secs, Some(30));
        assert_eq!(d.settings.door_open_alarm_secs, Some(300));
        assert_eq!(d.settings.keypad_lockout_secs, Some(900));
        assert_eq!(d.sources["door_open_alarm_secs"], "site:hall");
        assert_eq!(d.sources["keypad_lockout_secs"], "site_kind:service_hall");
        assert_eq!(d.sources["heartbeat_secs"], "fleet");

        let labelled = Placement {
            device: "cab-1",
            labels: Some(&labels),
            ..at_hall.clone()
        };
        let d = desired(&layers, &labelled);
        assert_eq!(d.settings.door_open_alarm_secs, Some(400));
        assert_eq!(d.settings.heartbeat_secs, Some(10));
        assert_eq!(d.sources["heartbeat_secs"], "device:cab-1");

        let elsewhere = Placement {
            device: "kiosk-9",
            ..Default::default()
        };
        let d = desired(&layers, &elsewhere);
        assert_eq!(d.settings.door_open_alarm_secs, Some(120));
        assert!(desired(&[], &elsewhere).settings.is_empty());
    }
}

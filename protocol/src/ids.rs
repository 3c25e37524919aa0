//! Validated identifiers: device ids, box numbers, and command, item and staff ids.
//!
//! Ids end up in MQTT topics, file names and SQL rows, so they are checked once at the edge and
//! carried as types afterwards.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("device id is empty; use 1 to 64 letters, digits, '-' or '_'")]
    EmptyDevice,
    #[error("device id {0:?} is longer than 64 characters")]
    DeviceTooLong(String),
    #[error(
        "device id {0:?} has a character other than ASCII letters, digits, '-' or '_', or does not start with a letter or digit"
    )]
    DeviceChars(String),
    #[error("box number 0 is invalid; boxes are numbered from 1")]
    BoxZero,
    #[error("command id {0:?} is invalid; use 1 to 64 letters, digits or '-'")]
    Command(String),
    #[error("item id {0:?} is invalid; use 1 to 64 letters, digits or '-'")]
    Item(String),
    #[error("staff id {0:?} is invalid; use 1 to 64 letters, digits or '-'")]
    Staff(String),
}

/// A cabinet or station device. It appears as `devices/{id}/...` in topics and as the common
/// name of the device's client certificate, so it excludes MQTT wildcards, `/`, `.` and `$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<DeviceId, IdError> {
        if s.is_empty() {
            return Err(IdError::EmptyDevice);
        }
        if s.len() > Self::MAX_LEN {
            return Err(IdError::DeviceTooLong(s.chars().take(80).collect()));
        }
        let first_ok = s.as_bytes()[0].is_ascii_alphanumeric();
        let rest_ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !first_ok || !rest_ok {
            return Err(IdError::DeviceChars(s.to_owned()));
        }
        Ok(DeviceId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for DeviceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceId::parse(s)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DeviceId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for DeviceId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DeviceId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A device: 1 to 64 ASCII letters, digits, '-' or '_', starting with a letter or digit; the common name of its certificate.",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        })
    }
}

/// A box (compartment) of a cabinet, numbered from 1 as printed on the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct BoxNo(u16);

impl BoxNo {
    pub fn new(n: u16) -> Result<BoxNo, IdError> {
        if n == 0 {
            Err(IdError::BoxZero)
        } else {
            Ok(BoxNo(n))
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }

    /// Every box of a cabinet with `count` boxes.
    pub fn all(count: u16) -> impl Iterator<Item = BoxNo> {
        (1..=count).map(BoxNo)
    }
}

impl fmt::Display for BoxNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for BoxNo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BoxNo::new(u16::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for BoxNo {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BoxNo".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "description": "A box of a cabinet, numbered from 1 as printed on the door.",
            "minimum": 1,
            "maximum": u16::MAX,
        })
    }
}

/// Opaque ids made of 1 to 64 ASCII letters, digits or '-': what the server assigns to
/// commands, items and staff. Checked once at the edge and carried as types afterwards.
macro_rules! simple_id {
    ($(#[$doc:meta])* $name:ident, $variant:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<$name, IdError> {
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if ok {
                    Ok($name(s.to_owned()))
                } else {
                    Err(IdError::$variant(s.chars().take(80).collect()))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": "^[A-Za-z0-9-]{1,64}$",
                })
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

simple_id!(
    /// A remote command. The server assigns it; the agent remembers every id it executed so
    /// that a redelivered command never pulses a lock twice.
    CommandId, Command
);
simple_id!(
    /// An item (reservation) in a box: one case, one flow, one code.
    ItemId, Item
);
simple_id!(
    /// A member of staff whose credential opens boxes; every staff open names them.
    StaffId, Staff
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        assert!(DeviceId::parse("cab-001").is_ok());
        assert!(DeviceId::parse("A_1").is_ok());
        for bad in [
            "",
            "-a",
            "a/b",
            "a+b",
            "a#",
            "a.b",
            "$sys",
            "ä",
            &"x".repeat(65),
        ] {
            assert!(DeviceId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn box_zero_rejected_on_the_wire() {
        assert!(serde_json::from_str::<BoxNo>("0").is_err());
        assert_eq!(serde_json::from_str::<BoxNo>("7").ok(), BoxNo::new(7).ok());
    }
}

//! MQTT topics: the only place where topic strings are built and parsed.
//!
//! Every topic of a device lives under `devices/{device_id}/`. The broker front uses
//! [`check_device_publish`] and [`check_device_subscribe`] to keep each device inside its own
//! subtree; the server uses [`DeviceTopic::parse`] to learn which device a message belongs to.

use crate::ids::{DeviceId, IdError};

pub const ROOT: &str = "devices";

/// The channels of one device. Direction matters: a device publishes only events, state,
/// acks, health, presence, certificate requests and release fetches; the server alone
/// publishes commands, receipts, codes, certificates, release updates and configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// device → server: batches of sequenced events (QoS 1).
    Events,
    /// device → server: retained snapshot of every box (QoS 1, retained).
    State,
    /// device → server: command acknowledgements (QoS 1).
    Acks,
    /// device → server: the agent's heartbeat with lock-bus, power and station status
    /// (QoS 0: a lost one is replaced by the next).
    Health,
    /// device → broker (retained, QoS 1): `online` after each CONNACK and the same topic as
    /// the device's last will (`offline`). Only an external broker publishes the will; the
    /// embedded front acknowledges both and reports sessions itself, exactly.
    Presence,
    /// server → device: remote commands.
    Commands,
    /// server → device: "stored up to seq N".
    Receipts,
    /// server → device: the full set of code grants and staff credentials the cabinet
    /// verifies offline (latest version wins).
    Codes,
    /// device → server: a certificate signing request before the device's certificate
    /// expires (QoS 1).
    Csr,
    /// server → device: the renewed certificate, or why not.
    Cert,
    /// server → device: agent releases — an offer to fetch one, and the chunks of its binary
    /// the device asked for.
    Update,
    /// device → server: asks for the next chunk of an offered release (QoS 1).
    Fetch,
    /// server → device: the settings the server wants it to run with (central
    /// configuration; latest version wins).
    Config,
    /// server → device: a request for recent log lines or a fresh doctor report.
    Diagnose,
    /// device → server: the answer to a diagnostics request (QoS 1).
    Diagnostics,
}

impl Channel {
    pub const ALL: [Channel; 15] = [
        Channel::Events,
        Channel::State,
        Channel::Acks,
        Channel::Health,
        Channel::Presence,
        Channel::Commands,
        Channel::Receipts,
        Channel::Codes,
        Channel::Csr,
        Channel::Cert,
        Channel::Update,
        Channel::Fetch,
        Channel::Config,
        Channel::Diagnose,
        Channel::Diagnostics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Events => "events",
            Channel::State => "state",
            Channel::Acks => "acks",
            Channel::Health => "health",
            Channel::Presence => "presence",
            Channel::Commands => "commands",
            Channel::Receipts => "receipts",
            Channel::Codes => "codes",
            Channel::Csr => "csr",
            Channel::Cert => "cert",
            Channel::Update => "update",
            Channel::Fetch => "fetch",
            Channel::Config => "config",
            Channel::Diagnose => "diagnose",
            Channel::Diagnostics => "diagnostics",
        }
    }

    fn from_str(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// What a device subscribes to (its own, exact topics): the server → device channels.
    pub const DEVICE_DOWNLINK: [Channel; 7] = [
        Channel::Commands,
        Channel::Receipts,
        Channel::Codes,
        Channel::Cert,
        Channel::Update,
        Channel::Config,
        Channel::Diagnose,
    ];

    /// Whether a device may publish on this channel of its own subtree.
    pub fn device_publishes(self) -> bool {
        matches!(
            self,
            Channel::Events
                | Channel::State
                | Channel::Acks
                | Channel::Health
                | Channel::Presence
                | Channel::Csr
                | Channel::Fetch
                | Channel::Diagnostics
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic {0:?} is not of the form devices/{{device_id}}/{{channel}}")]
    Shape(String),
    #[error("topic {topic:?} has an invalid device id: {source}")]
    Device { topic: String, source: IdError },
    #[error("topic {0:?} names an unknown channel")]
    UnknownChannel(String),
    #[error(
        "device {device} may not publish to {topic:?}: only its own events, state, acks, health, presence, csr and fetch"
    )]
    PublishDenied { device: String, topic: String },
    #[error(
        "device {device} may not subscribe to {filter:?}: only filters under devices/{device}/"
    )]
    SubscribeDenied { device: String, filter: String },
}

/// A parsed device topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTopic {
    pub device: DeviceId,
    pub channel: Channel,
}

impl DeviceTopic {
    pub fn new(device: DeviceId, channel: Channel) -> DeviceTopic {
        DeviceTopic { device, channel }
    }

    pub fn parse(topic: &str) -> Result<DeviceTopic, TopicError> {
        let mut parts = topic.split('/');
        let (Some(ROOT), Some(id), Some(channel), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TopicError::Shape(truncate(topic)));
        };
        let device = DeviceId::parse(id).map_err(|source| TopicError::Device {
            topic: truncate(topic),
            source,
        })?;
        let channel = Channel::from_str(channel)
            .ok_or_else(|| TopicError::UnknownChannel(truncate(topic)))?;
        Ok(DeviceTopic { device, channel })
    }

    pub fn to_topic(&self) -> String {
        device_topic(&self.device, self.channel)
    }
}

/// `devices/{id}/{channel}`.
pub fn device_topic(device: &DeviceId, channel: Channel) -> String {
    format!("{ROOT}/{device}/{}", channel.as_str())
}

/// `devices/+/{channel}`: what the server subscribes to.
pub fn all_devices_filter(channel: Channel) -> String {
    format!("{ROOT}/+/{}", channel.as_str())
}

/// `devices/#`: every topic of every device (the server's grant on an external broker).
pub fn every_device_filter() -> String {
    format!("{ROOT}/#")
}

/// `$share/{group}/devices/+/{channel}`: an MQTT shared subscription, through which an
/// external broker hands each message to one of the server replicas in `group`.
pub fn shared_filter(group: &str, channel: Channel) -> String {
    format!("$share/{group}/{}", all_devices_filter(channel))
}

/// `devices/{placeholder}/{channel}`: a broker ACL line's topic with the broker's own
/// stand-in for the client's name (mosquitto's `%u`, EMQX's `${username}`).
pub fn acl_pattern(placeholder: &str, channel: Channel) -> String {
    format!("{ROOT}/{placeholder}/{}", channel.as_str())
}

/// The AMQP routing key RabbitMQ's MQTT plugin gives a topic: levels joined by `.` instead of
/// `/` (`devices.{id}.{channel}`). Device ids hold no `.`, so the two forms map one to one.
pub fn routing_key(device: &DeviceId, channel: Channel) -> String {
    format!("{ROOT}.{device}.{}", channel.as_str())
}

/// `devices.*.{channel}`: the binding that takes one channel of every device.
pub fn all_devices_routing_key(channel: Channel) -> String {
    format!("{ROOT}.*.{}", channel.as_str())
}

/// The MQTT topic (or filter) a routing key (or binding key) stands for, as RabbitMQ's MQTT
/// plugin translates: `.` separates levels and `*` is `+`. `#` is `#` in both.
pub fn topic_of_routing_key(key: &str) -> String {
    key.split('.')
        .map(|level| if level == "*" { "+" } else { level })
        .collect::<Vec<_>>()
        .join("/")
}

/// A device topic from its routing key (what a server replica consuming over AMQP gets).
pub fn parse_routing_key(key: &str) -> Result<DeviceTopic, TopicError> {
    DeviceTopic::parse(&topic_of_routing_key(key))
}

/// The broker front's publish rule: a device publishes only its own events, state, acks,
/// health, presence, csr and fetch.
pub fn check_device_publish(device: &DeviceId, topic: &str) -> Result<Channel, TopicError> {
    let denied = || TopicError::PublishDenied {
        device: device.to_string(),
        topic: truncate(topic),
    };
    let parsed = DeviceTopic::parse(topic).map_err(|_| denied())?;
    if &parsed.device != device || !parsed.channel.device_publishes() {
        return Err(denied());
    }
    Ok(parsed.channel)
}

/// The broker front's subscribe rule: exactly the device's own `commands`, `receipts`,
/// `codes`, `cert` and `update`.
/// Nothing wider: the broker front delivers these straight to the device's session, and
/// a wildcard or another device's topic would let a device read what is not its own.
pub fn check_device_subscribe(device: &DeviceId, filter: &str) -> Result<Channel, TopicError> {
    match DeviceTopic::parse(filter) {
        Ok(t) if &t.device == device && Channel::DEVICE_DOWNLINK.contains(&t.channel) => {
            Ok(t.channel)
        }
        _ => Err(TopicError::SubscribeDenied {
            device: device.to_string(),
            filter: truncate(filter),
        }),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId::parse(s).expect("valid id")
    }

    #[test]
    fn build_and_parse_round_trip() {
        for channel in Channel::ALL {
            let t = device_topic(&id("cab-1"), channel);
            assert_eq!(
                DeviceTopic::parse(&t),
                Ok(DeviceTopic::new(id("cab-1"), channel))
            );
        }
    }

    #[test]
    fn parse_rejects_bad_shapes() {
        for bad in [
            "",
            "devices",
            "devices/a",
            "devices/a/events/x",
            "other/a/events",
            "devices//events",
            "devices/+/events",
            "devices/a/nope",
        ] {
            assert!(DeviceTopic::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn publish_rules() {
        let a = id("a");
        assert_eq!(
            check_device_publish(&a, "devices/a/events"),
            Ok(Channel::Events)
        );
        assert!(check_device_publish(&a, "devices/a/acks").is_ok());
        assert!(check_device_publish(&a, "devices/a/state").is_ok());
        assert!(check_device_publish(&a, "devices/a/health").is_ok());
        assert!(check_device_publish(&a, "devices/a/presence").is_ok());
        assert!(check_device_publish(&a, "devices/a/csr").is_ok());
        for bad in [
            "devices/b/events",
            "devices/b/health",
            "devices/b/presence",
            "devices/a/codes",
            "devices/a/commands",
            "devices/a/receipts",
            "devices/a/cert",
            "devices/b/csr",
            "devices/+/events",
            "devices/a/events/x",
            "x",
        ] {
            assert!(check_device_publish(&a, bad).is_err(), "{bad:?} allowed");
        }
    }

    #[test]
    fn shared_and_acl_topics() {
        assert_eq!(
            shared_filter("lockerfleet", Channel::Events),
            "$share/lockerfleet/devices/+/events"
        );
        assert_eq!(acl_pattern("%u", Channel::Codes), "devices/%u/codes");
    }

    #[test]
    fn routing_keys_are_topics_with_dots() {
        for channel in Channel::ALL {
            let key = routing_key(&id("cab-1"), channel);
            assert_eq!(key, format!("devices.cab-1.{}", channel.as_str()));
            assert_eq!(
                topic_of_routing_key(&key),
                device_topic(&id("cab-1"), channel)
            );
            assert_eq!(
                parse_routing_key(&key),
                Ok(DeviceTopic::new(id("cab-1"), channel))
            );
        }
        assert_eq!(
            topic_of_routing_key(&all_devices_routing_key(Channel::Events)),
            all_devices_filter(Channel::Events)
        );
        assert_eq!(topic_of_routing_key("devices.a.#"), "devices/a/#");
        // A `.` inside an MQTT level becomes a level of its own: never a device's topic.
        assert!(parse_routing_key("devices.a.b.events").is_err());
    }

    #[test]
    fn subscribe_rules() {
        let a = id("a");
        for ok in [
            "devices/a/commands",
            "devices/a/receipts",
            "devices/a/codes",
            "devices/a/cert",
        ] {
            assert!(check_device_subscribe(&a, ok).is_ok(), "{ok:?} refused");
        }
        for bad in [
            "devices/a/#",
            "devices/a/+",
            "devices/a/events",
            "devices/a/presence",
            "devices/a/csr",
            "devices/b/cert",
            "#",
            "devices/#",
            "devices/+/commands",
            "devices/b/commands",
            "devices/a/",
            "devices/ab/commands",
            "devices/a/#/x",
            "devices/a/co+",
            "devices/b/codes",
        ] {
            assert!(check_device_subscribe(&a, bad).is_err(), "{bad:?} allowed");
        }
    }
}

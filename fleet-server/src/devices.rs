//! How the services reach devices: who is online now ([`Online`], kept by
//! `runtime::presence`) and the way to send a device a message ([`Publisher`], the broker
//! front's downlink or the replica's MQTT client). The services and the runtime tasks both
//! use these; neither owns the other.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use broker::{Delivery, Downlink};
use protocol::{Channel, DeviceId};

/// Sends server → device messages (commands, receipts, code sets). Never waits; what could
/// not be delivered is counted, and each sender re-sends what matters (PROTOCOL.md, QoS of
/// server topics). Embedded: straight to the device's connection in the broker front.
/// External: published to the broker at QoS 1 through the replica's client (MQTT) or
/// connection (RabbitMQ).
#[derive(Clone)]
pub struct Publisher {
    route: Route,
}

#[derive(Clone)]
enum Route {
    Embedded(Downlink),
    External(rumqttc::AsyncClient),
    Rabbit(tokio::sync::mpsc::Sender<Outgoing>),
}

/// A server → device message on its way to the task that holds the RabbitMQ connection.
pub(crate) struct Outgoing {
    pub device: DeviceId,
    pub channel: Channel,
    pub payload: Vec<u8>,
}

impl Publisher {
    pub fn new(downlink: Downlink) -> Publisher {
        Publisher {
            route: Route::Embedded(downlink),
        }
    }

    pub fn external(client: rumqttc::AsyncClient) -> Publisher {
        Publisher {
            route: Route::External(client),
        }
    }

    pub(crate) fn rabbit(tx: tokio::sync::mpsc::Sender<Outgoing>) -> Publisher {
        Publisher {
            route: Route::Rabbit(tx),
        }
    }

    pub fn publish(&self, device: &DeviceId, channel: Channel, payload: Vec<u8>) -> Delivery {
        let outcome = match &self.route {
            Route::Embedded(downlink) => downlink.deliver(device, channel, payload),
            Route::External(client) => {
                let topic = protocol::topic::device_topic(device, channel);
                match client.try_publish(topic, rumqttc::QoS::AtLeastOnce, false, payload) {
                    Ok(()) => Delivery::Queued,
                    // The replica's request queue is full: the broker connection is down or
                    // slower than we publish.
                    Err(_) => Delivery::QueueFull,
                }
            }
            Route::Rabbit(tx) => {
                let out = Outgoing {
                    device: device.clone(),
                    channel,
                    payload,
                };
                match tx.try_send(out) {
                    Ok(()) => Delivery::Queued,
                    Err(_) => Delivery::QueueFull,
                }
            }
        };
        if outcome == Delivery::QueueFull {
            tracing::warn!(%device, ?channel, "device is not reading; server message dropped");
        }
        outcome
    }
}

/// Which devices are online now; shared with the command service.
#[derive(Clone, Default)]
pub struct Online {
    sessions: Arc<Mutex<HashMap<DeviceId, HashSet<u64>>>>,
}

impl Online {
    pub fn is_online(&self, device: &DeviceId) -> bool {
        self.sessions
            .lock()
            .map(|s| s.get(device).is_some_and(|v| !v.is_empty()))
            .unwrap_or(false)
    }

    /// Returns whether the device's online state changed, and the number online now.
    pub(crate) fn apply(&self, device: &DeviceId, session: u64, connected: bool) -> (bool, usize) {
        let Ok(mut map) = self.sessions.lock() else {
            return (false, 0);
        };
        let set = map.entry(device.clone()).or_default();
        let was_online = !set.is_empty();
        if connected {
            set.insert(session);
        } else {
            set.remove(&session);
        }
        let is_online = !set.is_empty();
        if !is_online {
            map.remove(device);
        }
        (was_online != is_online, map.len())
    }
}

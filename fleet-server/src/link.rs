//! The server's side of the broker: one reader task on rumqttd's in-process link that
//! dispatches device messages, and the [`Publisher`] that hands server messages to devices.

use std::time::Duration;

use broker::{Delivery, Downlink, LinkRx, Notification};
use protocol::{Channel, CommandAck, DeviceId, DeviceTopic, EventBatch, Heartbeat, StateSnapshot};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Sends server → device messages (commands, receipts, code sets) straight to the device's
/// connection in the broker front. Never waits; what could not be delivered is counted by
/// the front, and each sender re-sends what matters (PROTOCOL.md, QoS of server topics).
#[derive(Clone)]
pub struct Publisher {
    downlink: Downlink,
}

impl Publisher {
    pub fn new(downlink: Downlink) -> Publisher {
        Publisher { downlink }
    }

    pub fn publish(&self, device: &DeviceId, channel: Channel, payload: Vec<u8>) -> Delivery {
        let outcome = self.downlink.deliver(device, channel, payload);
        if outcome == Delivery::QueueFull {
            tracing::warn!(%device, ?channel, "device is not reading; server message dropped");
        }
        outcome
    }
}

/// Decoded device → server traffic.
#[derive(Debug)]
pub enum Inbound {
    Events(DeviceId, EventBatch),
    Snapshot(DeviceId, StateSnapshot),
    Heartbeat(DeviceId, Heartbeat),
}

/// Reads the link until cancelled, sending events and snapshots to the ingest writer and
/// acks to the command service. Bad messages are counted and logged with the device id.
pub async fn read(
    mut link_rx: LinkRx,
    ingest: mpsc::Sender<Inbound>,
    acks: mpsc::Sender<(DeviceId, CommandAck)>,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break,
            n = link_rx.next() => n,
        };
        let forward = match next {
            Ok(Some(Notification::Forward(f))) => f,
            // Without `wake`, the router parks this link forever once it had nothing to send.
            Ok(Some(Notification::Unschedule)) => {
                if let Err(e) = link_rx.wake().await {
                    tracing::error!(error = %e, "broker link wake failed");
                    break;
                }
                continue;
            }
            Ok(Some(_)) | Ok(None) => continue,
            Err(e) => {
                tracing::error!(error = %e, "broker link failed; ingest stops");
                // Give the process a moment to log before the owner notices.
                tokio::time::sleep(Duration::from_millis(10)).await;
                break;
            }
        };
        let publish = forward.publish;
        let Ok(topic) = std::str::from_utf8(&publish.topic) else {
            metrics.malformed("topic");
            continue;
        };
        let parsed = match DeviceTopic::parse(topic) {
            Ok(t) => t,
            Err(e) => {
                metrics.malformed("topic");
                tracing::warn!(error = %e, "message on an unexpected topic ignored");
                continue;
            }
        };
        let device = parsed.device;
        let sent = match parsed.channel {
            Channel::Events => {
                match decoded::<EventBatch>(&publish.payload, &device, "events", &metrics) {
                    Some(batch) => {
                        metrics.events_received.inc_by(batch.events.len() as u64);
                        ingest.send(Inbound::Events(device, batch)).await.is_ok()
                    }
                    None => true,
                }
            }
            Channel::State => {
                match decoded::<StateSnapshot>(&publish.payload, &device, "state", &metrics) {
                    Some(s) => ingest.send(Inbound::Snapshot(device, s)).await.is_ok(),
                    None => true,
                }
            }
            Channel::Acks => {
                match decoded::<CommandAck>(&publish.payload, &device, "acks", &metrics) {
                    Some(a) => acks.send((device, a)).await.is_ok(),
                    None => true,
                }
            }
            Channel::Health => {
                match decoded::<Heartbeat>(&publish.payload, &device, "health", &metrics) {
                    Some(h) => ingest.send(Inbound::Heartbeat(device, h)).await.is_ok(),
                    None => true,
                }
            }
            // Our own publications echo back only if subscribed; we are not.
            _ => true,
        };
        if !sent {
            break;
        }
    }
}

fn decoded<M: protocol::message::Message>(
    payload: &[u8],
    device: &DeviceId,
    channel: &str,
    metrics: &Metrics,
) -> Option<M> {
    match protocol::decode::<M>(payload) {
        Ok(m) => Some(m),
        Err(e) => {
            metrics.malformed(channel);
            tracing::warn!(%device, channel, error = %e, bytes = payload.len(), "malformed device message dropped");
            None
        }
    }
}

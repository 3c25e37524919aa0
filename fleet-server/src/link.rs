//! The server's in-process link into the broker: one reader task that dispatches device
//! messages, and one OS thread that publishes (rumqttd's link calls block on a channel).

use std::time::Duration;

use broker::{LinkRx, LinkTx, Notification, Packet, Publish};
use bytes::Bytes;
use protocol::{Channel, CommandAck, DeviceId, DeviceTopic, EventBatch, Heartbeat, StateSnapshot};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// A message the server sends to a device (or retains for subscribers).
#[derive(Debug)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Kept by the broker for later subscribers (presence).
    pub retain: bool,
}

/// Cloneable handle to the publisher thread.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<Outgoing>,
}

impl Publisher {
    /// Queues a message. Waits when the publisher is 10,000 messages behind, which slows
    /// ingest instead of growing memory.
    pub async fn publish(&self, device: &DeviceId, channel: Channel, payload: Vec<u8>) {
        let topic = protocol::topic::device_topic(device, channel);
        // Presence is the only state-like topic the server writes.
        let retain = channel == Channel::Presence;
        let out = Outgoing {
            topic,
            payload,
            retain,
        };
        if self.tx.send(out).await.is_err() {
            tracing::debug!("publisher stopped; message dropped during shutdown");
        }
    }
}

/// Decoded device → server traffic.
#[derive(Debug)]
pub enum Inbound {
    Events(DeviceId, EventBatch),
    Snapshot(DeviceId, StateSnapshot),
    Heartbeat(DeviceId, Heartbeat),
}

/// Subscribes the link to every device's events, state and acks, and starts the publisher
/// thread. Blocking calls run on the blocking pool.
pub async fn start(mut link_tx: LinkTx) -> std::io::Result<Publisher> {
    let link_tx = tokio::task::spawn_blocking(move || {
        for channel in [
            Channel::Events,
            Channel::State,
            Channel::Acks,
            Channel::Health,
        ] {
            link_tx
                .subscribe(protocol::topic::all_devices_filter(channel))
                .map_err(|e| std::io::Error::other(format!("subscribe: {e}")))?;
        }
        Ok::<_, std::io::Error>(link_tx)
    })
    .await
    .map_err(std::io::Error::other)??;
    let (tx, mut rx) = mpsc::channel::<Outgoing>(10_000);
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("mqtt-publisher".into())
        .spawn(move || {
            let mut link_tx = link_tx;
            while let Some(out) = rx.blocking_recv() {
                let result = if out.retain {
                    // `LinkTx::send` is async in name only (a blocking channel send inside);
                    // it is the one way to set the retain flag.
                    let publish =
                        Publish::new(Bytes::from(out.topic), Bytes::from(out.payload), true);
                    runtime
                        .block_on(link_tx.send(Packet::Publish(publish, None)))
                        .map(|_| ())
                } else {
                    link_tx.publish(out.topic, out.payload).map(|_| ())
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "broker link closed; publisher stops");
                    break;
                }
            }
        })?;
    Ok(Publisher { tx })
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

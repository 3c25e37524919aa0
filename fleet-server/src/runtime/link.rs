//! The server's side of the broker: [`Dispatch`] decodes device messages and hands them on,
//! fed by one reader task on rumqttd's in-process link (or by [`crate::runtime::bus`] on an external
//! broker); [`crate::devices::Publisher`] hands server messages to devices.

use std::time::Duration;

use broker::{LinkRx, Notification};
use protocol::{Channel, CommandAck, DeviceId, DeviceTopic, EventBatch, Heartbeat, StateSnapshot};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Decoded device → server traffic.
#[derive(Debug)]
pub enum Inbound {
    Events(DeviceId, EventBatch),
    Snapshot(DeviceId, StateSnapshot),
    Heartbeat(DeviceId, Heartbeat),
}

/// Where decoded device messages go: events, snapshots and heartbeats to the ingest writer,
/// acks to the command service, certificate requests to the renewal task. The same for the embedded link and an external broker.
#[derive(Clone)]
pub(crate) struct Dispatch {
    pub ingest: crate::runtime::ingest::Lanes,
    pub outcomes: mpsc::Sender<crate::commands::Outcome>,
    /// Certificate signing requests, to [`crate::runtime::renewal`].
    pub renewals: mpsc::Sender<(DeviceId, protocol::CertRequest)>,
    /// Devices' requests for release chunks, to `runtime::delivery`.
    pub fetches: mpsc::Sender<(DeviceId, protocol::FetchRequest)>,
    /// Cabinets' diagnostics answers, to `diagnostics::ingest`.
    pub diagnostics: mpsc::Sender<(DeviceId, protocol::DiagnosticsReport)>,
    pub metrics: Metrics,
}

impl Dispatch {
    /// Decodes and forwards one device message; bad messages are counted and logged with the
    /// device id. `false` once the receivers are gone (shutting down).
    pub(crate) async fn message(&self, topic: &[u8], payload: &[u8]) -> bool {
        let metrics = &self.metrics;
        let Ok(topic) = std::str::from_utf8(topic) else {
            metrics.malformed("topic");
            return true;
        };
        let parsed = match DeviceTopic::parse(topic) {
            Ok(t) => t,
            Err(e) => {
                metrics.malformed("topic");
                tracing::warn!(error = %e, "message on an unexpected topic ignored");
                return true;
            }
        };
        let device = parsed.device;
        match parsed.channel {
            Channel::Events => match decoded::<EventBatch>(payload, &device, "events", metrics) {
                Some(batch) => {
                    metrics.events_received.inc_by(batch.events.len() as u64);
                    note_unreadable(&batch, &device, metrics);
                    self.ingest
                        .of(&device)
                        .send(Inbound::Events(device, batch))
                        .await
                        .is_ok()
                }
                None => true,
            },
            Channel::State => match decoded::<StateSnapshot>(payload, &device, "state", metrics) {
                Some(s) => self
                    .ingest
                    .of(&device)
                    .send(Inbound::Snapshot(device, s))
                    .await
                    .is_ok(),
                None => true,
            },
            Channel::Acks => match decoded::<CommandAck>(payload, &device, "acks", metrics) {
                Some(a) => self
                    .outcomes
                    .send(crate::commands::Outcome::from_ack(device, a))
                    .await
                    .is_ok(),
                None => true,
            },
            Channel::Health => match decoded::<Heartbeat>(payload, &device, "health", metrics) {
                Some(h) => self
                    .ingest
                    .of(&device)
                    .send(Inbound::Heartbeat(device, h))
                    .await
                    .is_ok(),
                None => true,
            },
            Channel::Csr => {
                match decoded::<protocol::CertRequest>(payload, &device, "csr", metrics) {
                    // Never waits: a device flooding requests loses its own, nobody else's.
                    Some(r) => {
                        if self.renewals.try_send((device, r)).is_err() {
                            tracing::warn!(
                                "certificate requests are queueing up; one dropped (the device asks again)"
                            );
                        }
                        true
                    }
                    None => true,
                }
            }
            Channel::Fetch => {
                match decoded::<protocol::FetchRequest>(payload, &device, "fetch", metrics) {
                    // Never waits: the device asks again when no chunk comes.
                    Some(r) => {
                        if self.fetches.try_send((device, r)).is_err() {
                            tracing::warn!(
                                "release fetches are queueing up; one dropped (the device asks again)"
                            );
                        }
                        true
                    }
                    None => true,
                }
            }
            Channel::Diagnostics => {
                match decoded::<protocol::DiagnosticsReport>(
                    payload,
                    &device,
                    "diagnostics",
                    metrics,
                ) {
                    // Never waits: the server asks again until an answer is stored.
                    Some(r) => {
                        if self.diagnostics.try_send((device, r)).is_err() {
                            tracing::warn!("diagnostics answers are queueing up; one dropped");
                        }
                        true
                    }
                    None => true,
                }
            }
            // Our own publications echo back only if subscribed; we are not.
            _ => true,
        }
    }
}

/// Reads the embedded broker's link until cancelled, handing each message to `dispatch`.
pub(crate) async fn read(mut link_rx: LinkRx, dispatch: Dispatch, cancel: CancellationToken) {
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
        if !dispatch.message(&publish.topic, &publish.payload).await {
            break;
        }
    }
}

/// Counts and logs the events a newer agent sent that this server cannot read: they are
/// stored as sent (kind `unreadable`) and receipted, so the device's stream moves on.
fn note_unreadable(batch: &EventBatch, device: &DeviceId, metrics: &Metrics) {
    let mut unreadable = batch.events.iter().filter_map(|e| match &e.body {
        protocol::EventBody::Unreadable { reason, .. } => Some((e.seq, reason)),
        _ => None,
    });
    if let Some((seq, reason)) = unreadable.next() {
        let n = 1 + unreadable.count() as u64;
        metrics.events_unreadable.inc_by(n);
        tracing::warn!(%device, seq, events = n, %reason,
            "events this server cannot read (a newer agent?) stored as unreadable; upgrade the server");
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

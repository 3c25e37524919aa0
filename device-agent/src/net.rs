//! The MQTT driver: rumqttc's event loop turned into `Net` notices for the uplink, and the
//! presence words.

use std::sync::Arc;
use std::time::Duration;

use protocol::DeviceId;
use rumqttc::{Event, EventLoop, Packet, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Backoff;

pub(crate) enum Net {
    Connected,
    Disconnected,
    Message(String, bytes::Bytes),
}

/// This agent's word on its own presence, for an external broker to keep (retained) and to
/// publish as the last will.
pub(crate) fn presence(online: bool, reason: &str, at: i64) -> protocol::Presence {
    protocol::Presence {
        v: 1,
        online,
        ts: at,
        reason: reason.to_owned(),
    }
}

/// The broker addresses the agent may use (one, or the nodes of a cluster) and how to make
/// the connection options for one of them with the current certificate.
pub(crate) struct Nodes {
    pub(crate) addrs: Vec<(String, u16)>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) options: MakeOptions,
}

/// Makes the connection options for one address with a certificate.
pub(crate) type MakeOptions =
    Box<dyn Fn(&(String, u16), Arc<rustls::ClientConfig>) -> rumqttc::MqttOptions + Send>;

/// Keeps polling the MQTT event loop; after an error waits with exponential backoff and
/// jitter before the next poll reconnects, so a fleet never reconnects in lockstep. With
/// several addresses, a failed connection moves on to the next node (nothing in the protocol
/// changes: the outbox resends what was not receipted, wherever it lands).
pub(crate) async fn drive(
    mut eventloop: EventLoop,
    mut nodes: Nodes,
    tx: mpsc::Sender<Net>,
    mut new_tls: mpsc::Receiver<Arc<rustls::ClientConfig>>,
    cancel: CancellationToken,
    max_backoff: Duration,
    id: DeviceId,
) {
    let mut backoff = Backoff::new(max_backoff);
    let mut failures = 0u32;
    let mut node = 0usize;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(tls) = new_tls.recv() => {
                // A renewed certificate: drop the connection and make the next with it.
                nodes.tls = tls.clone();
                eventloop.mqtt_options.set_transport(Transport::tls_with_config(
                    rumqttc::TlsConfiguration::Rustls(tls),
                ));
                eventloop.clean();
                let _ = tx.send(Net::Disconnected).await;
                continue;
            }
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if ack.code == rumqttc::ConnectReturnCode::Success {
                    backoff.reset();
                    failures = 0;
                    let (host, port) = &nodes.addrs[node];
                    tracing::info!(device = %id, %host, port, "connected");
                    let _ = tx.send(Net::Connected).await;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let _ = tx.send(Net::Message(p.topic, p.payload)).await;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Net::Disconnected).await;
                failures += 1;
                let wait = backoff.next_wait();
                // The first failure after a session is news; the retries are not.
                if failures == 1 {
                    tracing::warn!(device = %id, error = %e, retry_in_ms = wait.as_millis() as u64, "connection lost");
                } else {
                    tracing::debug!(device = %id, error = %e, retry_in_ms = wait.as_millis() as u64, "reconnect failed");
                }
                if nodes.addrs.len() > 1 {
                    node = (node + 1) % nodes.addrs.len();
                    eventloop.mqtt_options = (nodes.options)(&nodes.addrs[node], nodes.tls.clone());
                    let (host, port) = &nodes.addrs[node];
                    tracing::debug!(device = %id, %host, port, "next broker node");
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

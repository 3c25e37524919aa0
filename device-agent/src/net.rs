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

/// Which of `nodes` broker addresses a device tries first: a stable hash of its id (FNV-1a),
/// so a fleet given the same list spreads evenly over a cluster's nodes and each cabinet
/// returns to the node it used before.
pub(crate) fn first_node(id: &DeviceId, nodes: usize) -> usize {
    if nodes < 2 {
        return 0;
    }
    let hash = id.as_str().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % nodes as u64) as usize
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_spreads_over_the_nodes_and_each_cabinet_keeps_its_own() {
        let mut per_node = [0usize; 3];
        for i in 0..3000 {
            let id = DeviceId::parse(&format!("cab-{i}")).expect("id");
            let n = first_node(&id, 3);
            assert_eq!(n, first_node(&id, 3), "stable");
            per_node[n] += 1;
        }
        // Even within a few percent: no node takes the whole fleet.
        assert!(
            per_node.iter().all(|n| (900..=1100).contains(n)),
            "{per_node:?}"
        );
        let one = DeviceId::parse("cab-1").expect("id");
        assert_eq!(first_node(&one, 1), 0);
        assert_eq!(first_node(&one, 0), 0);
    }
}

//! Starts rumqttd's router with two in-process links: the front publishes every device's
//! uplink messages on one, the server subscribes to them on the other.
//!
//! rumqttd makes its own threads and cannot be stopped; the router lives as long as the
//! process. Its link calls block (flume sends), so the front's publishes run on an OS thread
//! of their own, fed by a bounded channel whose back-pressure reaches each device's reads.

use std::collections::HashMap;

use bytes::Bytes;
use rumqttd::local::{LinkBuilder, LinkRx};
use rumqttd::{RouterConfig, SegmentConfig};
use tokio::sync::mpsc;

use crate::BrokerError;

/// A checked device → server message on its way into the router.
#[derive(Debug)]
pub(crate) struct Up {
    pub topic: Bytes,
    pub payload: Bytes,
}

/// Messages from all devices waiting for the router. When it is full, devices' reads wait.
const UPLINK_QUEUE: usize = 4096;

pub(crate) struct Internal {
    /// The server's link, subscribed to every device's uplink channels.
    pub link: LinkRx,
    /// Where the front puts checked device messages.
    pub uplink: mpsc::Sender<Up>,
}

/// The uplink filters are the only ones in the router: (channel, segment size, segments).
/// Each is a commit log kept in RAM up to size × count whether or not it has been read, so it
/// is sized to ride out a short stall of the server's reader (≈ 40,000 event batches), not
/// more: anything lost beyond that is re-sent by the devices, which keep it until receipted.
const FILTERS: [(protocol::Channel, usize, usize); 7] = [
    (protocol::Channel::Events, 4 * 1024 * 1024, 3),
    (protocol::Channel::Acks, 1024 * 1024, 2),
    (protocol::Channel::State, 2 * 1024 * 1024, 2),
    (protocol::Channel::Health, 1024 * 1024, 2),
    (protocol::Channel::Csr, 256 * 1024, 2),
    (protocol::Channel::Fetch, 256 * 1024, 2),
    // Reports are up to ~150 KB each and rare.
    (protocol::Channel::Diagnostics, 1024 * 1024, 2),
];

pub(crate) async fn start() -> Result<Internal, BrokerError> {
    tokio::task::spawn_blocking(start_blocking)
        .await
        .map_err(|e| BrokerError::Router(format!("router start panicked: {e}")))?
}

fn start_blocking() -> Result<Internal, BrokerError> {
    let custom_segment: HashMap<String, SegmentConfig> = FILTERS
        .iter()
        .map(|&(c, size, count)| {
            (
                protocol::topic::all_devices_filter(c),
                SegmentConfig {
                    max_segment_size: size,
                    max_segment_count: count,
                },
            )
        })
        .collect();
    let router_config = RouterConfig {
        // Two links (front and server); rumqttd sizes per-connection tables by this.
        max_connections: 8,
        max_outgoing_packet_count: 1000,
        // No other filter should ever exist; keep any stray one small.
        max_segment_size: 64 * 1024,
        max_segment_count: 1,
        custom_segment: Some(custom_segment),
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    };
    let router = rumqttd::Router::new(0, router_config);
    let router_tx = router.spawn();

    let (mut server_tx, server_rx, _) = LinkBuilder::new("fleet-server", router_tx.clone())
        .build()
        .map_err(|e| BrokerError::Router(format!("server link: {e}")))?;
    // Subscribed before the front accepts anyone: no device message can arrive unrouted.
    for (channel, _, _) in FILTERS {
        server_tx
            .subscribe(protocol::topic::all_devices_filter(channel))
            .map_err(|e| BrokerError::Router(format!("server subscribe: {e}")))?;
    }
    let (mut front_tx, mut front_rx, _) = LinkBuilder::new("lockerfleet-front", router_tx)
        .build()
        .map_err(|e| BrokerError::Router(format!("front link: {e}")))?;

    let (uplink, mut rx) = mpsc::channel::<Up>(UPLINK_QUEUE);
    std::thread::Builder::new()
        .name("mqtt-uplink".into())
        .spawn(move || {
            // The server's sending half is never used, but the link lives while it does.
            let _server_tx = server_tx;
            let mut sent = 0u64;
            while let Some(up) = rx.blocking_recv() {
                // QoS 0 inside the process: the device's QoS 1 was answered by the front,
                // and delivery is guaranteed end to end by receipts, not by the router.
                if let Err(e) = front_tx.publish(up.topic, up.payload) {
                    tracing::error!(error = %e, "router link closed; device messages stop");
                    break;
                }
                // The router answers QoS 0 publishes with nothing (only the link's CONNACK
                // waits there), but keep this link's notifications from piling up should
                // that ever change.
                sent += 1;
                if sent % 1024 == 1 {
                    while let Ok(Some(_)) = front_rx.recv_deadline(std::time::Instant::now()) {}
                }
            }
        })
        .map_err(|e| BrokerError::Router(format!("uplink thread: {e}")))?;

    Ok(Internal {
        link: server_rx,
        uplink,
    })
}

//! Starts rumqttd's router and its plain listener on a loopback port, and the server's link.
//!
//! rumqttd makes its own threads and runtimes and cannot be stopped; the router and listener
//! live as long as the process. Its calls block (flume sends), so they run off the async
//! workers.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::{ConnectionSettings, LinkType, RouterConfig, SegmentConfig, Server, ServerSettings};

use crate::BrokerError;

pub(crate) struct Internal {
    pub addr: SocketAddr,
    pub link: (LinkTx, LinkRx),
    /// Credentials the internal listener requires; only the front has them.
    pub login: (String, String),
}

const FRONT_USER: &str = "lockerfleet-front";

/// 32 random bytes from the OS as hex.
fn secret() -> Result<String, BrokerError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| BrokerError::Router("the OS random source failed".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The device → server filters hold the ingest backlog; they get a bigger commit log than
/// the per-device command and receipt filters, of which there are thousands: (channel,
/// segment size, segments). Heartbeats are small, QoS 0 and replaced by the next: 2 MiB holds
/// a minute of 10,000 devices beating every 30 s.
const BIG_FILTERS: [(protocol::Channel, usize, usize); 4] = [
    (protocol::Channel::Events, 16 * 1024 * 1024, 4),
    (protocol::Channel::Acks, 16 * 1024 * 1024, 4),
    (protocol::Channel::State, 16 * 1024 * 1024, 4),
    (protocol::Channel::Health, 1024 * 1024, 2),
];

pub(crate) async fn start(
    max_connections: usize,
    max_packet_size: usize,
) -> Result<Internal, BrokerError> {
    tokio::task::spawn_blocking(move || start_blocking(max_connections, max_packet_size))
        .await
        .map_err(|e| BrokerError::Router(format!("router start panicked: {e}")))?
}

fn start_blocking(max_connections: usize, max_packet_size: usize) -> Result<Internal, BrokerError> {
    let custom_segment: HashMap<String, SegmentConfig> = BIG_FILTERS
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
        // The front, the server's link, and headroom for sessions being replaced.
        max_connections: max_connections + 64,
        max_outgoing_packet_count: 1000,
        // Every device has its own command and receipt filters, each a commit log kept in
        // RAM up to size × count: small messages read at once, so 2 × 4 KiB each keeps
        // 10,000 devices under 200 MB even when every log is full.
        max_segment_size: 4 * 1024,
        max_segment_count: 2,
        custom_segment: Some(custom_segment),
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    };
    let router = rumqttd::Router::new(0, router_config);
    let router_tx = router.spawn();

    // The server's link must create filters on publish: without dynamic filters, rumqttd
    // disconnects a client that publishes to a topic nobody subscribes to yet (a command to a
    // device that is offline).
    let (link_tx, link_rx, _) = LinkBuilder::new("fleet-server", router_tx.clone())
        .dynamic_filters(true)
        .build()
        .map_err(|e| BrokerError::Router(format!("server link: {e}")))?;

    // rumqttd cannot report a port it bound itself, so reserve a free loopback port here and
    // hand it over. The window between drop and its bind is tiny and loopback-only; a failed
    // bind shows up below as a listener that never answers.
    let addr = {
        let probe = TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| BrokerError::Router(format!("no free loopback port: {e}")))?;
        probe
            .local_addr()
            .map_err(|e| BrokerError::Router(e.to_string()))?
    };
    let password = secret()?;
    let settings = ServerSettings {
        name: "internal".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: max_packet_size,
            max_inflight_count: 200,
            auth: Some(HashMap::from([(FRONT_USER.to_owned(), password.clone())])),
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let mut server = Server::new(settings, router_tx, rumqttd::protocol::v4::V4);
    std::thread::Builder::new()
        .name("mqtt-internal".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "internal MQTT listener runtime failed");
                    return;
                }
            };
            runtime.block_on(async {
                if let Err(e) = server.start(LinkType::Remote).await {
                    tracing::error!(error = ?e, "internal MQTT listener stopped");
                }
            });
        })
        .map_err(|e| BrokerError::Router(format!("listener thread: {e}")))?;

    // Wait until the listener answers so the front never forwards into nothing.
    for _ in 0..200 {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok() {
            return Ok(Internal {
                addr,
                link: (link_tx, link_rx),
                login: (FRONT_USER.to_owned(), password),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(BrokerError::Router(format!(
        "rumqttd did not start listening on {addr}"
    )))
}

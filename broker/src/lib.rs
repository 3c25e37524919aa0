//! The embedded MQTT broker: our own mutual-TLS front that owns every device session, with
//! rumqttd's router carrying device messages to the server.
//!
//! rumqttd routes messages well but has no usable TLS (a handshake blocks its accept loop), no
//! per-client topic rules, no connect/disconnect events, and a filter per device makes its
//! subscription matching quadratic in the fleet (see `STACK-NOTES.md`,
//! `docs/adr/0001-broker-front.md` and `docs/adr/0008-front-owns-sessions.md`). So [`front`]
//! owns the public port and the MQTT sessions: it terminates TLS with a handshake timeout,
//! takes the device id from the client certificate, checks every CONNECT, PUBLISH and SUBSCRIBE
//! against the device's own `devices/{id}/` subtree, answers keep-alives and acknowledgements,
//! reports each session's start and end exactly, publishes checked device messages into
//! rumqttd on one in-process link (the server reads them on another), and writes server →
//! device messages ([`Downlink`]) straight to the device's connection.
mod device_tls;
mod front;
mod router;
mod sessions;

pub use sessions::{Delivery, Downlink};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use protocol::DeviceId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use rumqttd::local::LinkRx;
pub use rumqttd::{Forward, Notification};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen for devices on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the internal MQTT router did not start: {0}")]
    Router(String),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error(transparent)]
    Certs(#[from] certs::CertError),
}

/// Limits and addresses of the device-facing listener.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The public (TLS) address devices connect to. Port 0 picks a free port; see
    /// [`Broker::local_addr`].
    pub listen: SocketAddr,
    pub max_connections: usize,
    /// Largest MQTT packet accepted from a device, in bytes.
    pub max_packet_size: usize,
    /// Time allowed for the TLS handshake and then for the MQTT CONNECT.
    pub handshake_timeout: Duration,
    /// TLS handshakes worked on at once (counted from the ClientHello). When a whole fleet
    /// reconnects, handshakes share the CPU: without a bound every one of them slows down past
    /// its client's timeout and all are wasted. With it, each finishes in milliseconds and the
    /// rest wait their turn (within `handshake_timeout` from accept, else they are closed and
    /// the device retries later).
    pub max_handshakes: usize,
    /// Of those, at most this many from one IP address: a client that says hello and then
    /// stalls holds a slot until `handshake_timeout`, and one address must not be able to
    /// hold them all. (Cabinets behind one NAT queue a moment longer, no more.)
    pub max_handshakes_per_ip: usize,
    /// Publishes per second a device may sustain (0: no limit) and its burst above that;
    /// beyond them the front stops reading from the device until its rate allows.
    pub publish_per_sec: u32,
    pub publish_burst: u32,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8883)),
            max_connections: 20_000,
            max_packet_size: 256 * 1024,
            handshake_timeout: Duration::from_secs(5),
            max_handshakes: 64,
            max_handshakes_per_ip: 16,
            publish_per_sec: 50,
            publish_burst: 500,
        }
    }
}

/// Why a device session ended, as the front saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The device sent DISCONNECT.
    ClientDisconnect,
    /// The device closed the socket without DISCONNECT.
    ClientClosed,
    /// Nothing came from the device for 1.5 × its keep-alive interval.
    KeepAliveTimeout,
    /// The same device connected again; this older session was closed.
    TakenOver,
    /// A socket error.
    Io(String),
    /// The device broke a topic or protocol rule and was disconnected.
    Violation(String),
    /// The device's certificate was revoked while it was connected.
    Revoked,
    /// The server is shutting down.
    Shutdown,
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::ClientDisconnect => f.write_str("client disconnected"),
            DisconnectReason::ClientClosed => f.write_str("connection closed by client"),
            DisconnectReason::KeepAliveTimeout => f.write_str("keep-alive timeout"),
            DisconnectReason::TakenOver => f.write_str("session taken over by a new connection"),
            DisconnectReason::Io(e) => write!(f, "network error: {e}"),
            DisconnectReason::Violation(e) => write!(f, "policy violation: {e}"),
            DisconnectReason::Revoked => f.write_str("certificate revoked"),
            DisconnectReason::Shutdown => f.write_str("server shutting down"),
        }
    }
}

/// Session start and end of a device, reported by the front for every session.
#[derive(Debug, Clone)]
pub enum PresenceEvent {
    Connected {
        device: DeviceId,
        /// Unique per session in this process: a device that reconnects has two for a
        /// moment (the new one is reported before the old one ends), and is online while
        /// any is open.
        session: u64,
        peer: SocketAddr,
        at: SystemTime,
    },
    Disconnected {
        device: DeviceId,
        session: u64,
        reason: DisconnectReason,
        at: SystemTime,
    },
}

/// Counters of the front, exported by the server's `/metrics`.
#[derive(Debug, Default)]
pub struct FrontStats {
    pub accepted: AtomicU64,
    pub active: AtomicU64,
    pub rejected_limit: AtomicU64,
    pub handshake_failed: AtomicU64,
    pub handshake_timeout: AtomicU64,
    /// Connections closed because no handshake slot freed up within the handshake timeout.
    pub handshake_queue_timeout: AtomicU64,
    pub identity_rejected: AtomicU64,
    pub violations: AtomicU64,
    pub sessions: AtomicU64,
    /// Server → device messages handed to a connection.
    pub downlink_queued: AtomicU64,
    /// Server → device messages for a device that was offline or not subscribed.
    pub downlink_undeliverable: AtomicU64,
    /// Server → device messages dropped because the device stopped reading.
    pub downlink_dropped_full: AtomicU64,
    /// Times a device's publish waited for its rate (`publish_per_sec`).
    pub publish_throttled: AtomicU64,
    /// Connections closed after their ClientHello because their address had
    /// `max_handshakes_per_ip` handshakes in progress until their handshake deadline (they
    /// wait for a turn of their address until then).
    pub handshake_refused_per_ip: AtomicU64,
}

impl FrontStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A running broker. Dropping it does not stop it: cancel the token given to [`Broker::start`].
pub struct Broker {
    tls: TlsHandle,
    local_addr: SocketAddr,
    stats: Arc<FrontStats>,
    /// The server's in-process link; taken once by [`Broker::take_link`].
    link: Option<LinkRx>,
    downlink: Downlink,
}

impl Broker {
    /// Starts rumqttd's router with the server's in-process link subscribed to every
    /// device's uplink channels, and the TLS front on `cfg.listen`. Presence events go to
    /// `presence`.
    pub async fn start(
        cfg: BrokerConfig,
        tls: Arc<rustls::ServerConfig>,
        presence: mpsc::Sender<PresenceEvent>,
        cancel: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Broker, BrokerError> {
        let internal = router::start().await?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| BrokerError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| BrokerError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let stats = Arc::new(FrontStats::default());
        let sessions = Arc::new(sessions::Sessions::default());
        let tls = TlsHandle(Arc::new(std::sync::RwLock::new(tls)));
        let front = front::Front {
            cfg,
            tls: tls.clone(),
            uplink: internal.uplink,
            sessions: sessions.clone(),
            presence,
            stats: stats.clone(),
            per_ip: front::PerIp::default(),
            cancel,
            tracker: tracker.clone(),
        };
        tracker.spawn(front.serve(listener));
        tracing::info!(%local_addr, "broker front listening");
        Ok(Broker {
            tls,
            local_addr,
            downlink: Downlink {
                sessions,
                stats: stats.clone(),
            },
            stats,
            link: Some(internal.link),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> Arc<FrontStats> {
        self.stats.clone()
    }

    /// The server's in-process link into the router, already subscribed to every device's
    /// events, state, acks, health and certificate requests.
    pub fn take_link(&mut self) -> Option<LinkRx> {
        self.link.take()
    }

    /// Sends server → device messages (commands, receipts, code sets) to connected devices.
    pub fn downlink(&self) -> Downlink {
        self.downlink.clone()
    }

    /// Where the front reads its TLS settings for each new connection: replaced to apply a
    /// new revocation list without a restart.
    pub fn tls(&self) -> TlsHandle {
        self.tls.clone()
    }
}

/// The front's TLS settings, swappable while it runs.
#[derive(Clone)]
pub struct TlsHandle(Arc<std::sync::RwLock<Arc<rustls::ServerConfig>>>);

impl TlsHandle {
    pub fn get(&self) -> Arc<rustls::ServerConfig> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// New connections use `config` from now on; open ones keep theirs.
    pub fn set(&self, config: Arc<rustls::ServerConfig>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = config;
    }
}

/// TLS settings for the device port: our server certificate, and a client certificate signed
/// by our CA required from every device.
pub fn server_tls(certs_dir: &Path) -> Result<Arc<rustls::ServerConfig>, BrokerError> {
    let roots = certs::load_roots(&certs_dir.join(certs::CA_CERT))?;
    let chain = certs::load_certs(&certs_dir.join(certs::SERVER_CERT))?;
    let key = certs::load_key(&certs_dir.join(certs::SERVER_KEY))?;
    // The CA's revocation list, when there is one: a revoked device fails the handshake.
    let crls = certs::load_crls(certs_dir)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .with_crls(crls)
        .build()
        .map_err(|e| BrokerError::Tls(format!("client verifier: {e}")))?;
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| BrokerError::Tls(format!("server certificate: {e}")))?;
    Ok(Arc::new(config))
}

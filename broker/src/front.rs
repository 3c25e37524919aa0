//! The device-facing TLS listener: identity from the client certificate, topic rules per
//! device, exact session start/end reports, and the bytes relayed to rumqttd on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use protocol::DeviceId;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{ConnAck, ConnectReturnCode, Error as MqttError, Login, Packet, Protocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{BrokerConfig, DisconnectReason, FrontStats, PresenceEvent};

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Time allowed for a TLS close_notify to a device.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// A device whose socket accepts nothing for this long is disconnected.
const STALLED_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Front {
    pub cfg: BrokerConfig,
    pub acceptor: TlsAcceptor,
    pub internal_addr: SocketAddr,
    /// Username and password the internal listener requires.
    pub internal_login: (String, String),
    pub presence: mpsc::Sender<PresenceEvent>,
    pub stats: Arc<FrontStats>,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Front {
    pub async fn serve(self, listener: TcpListener) {
        let this = Arc::new(self);
        let limit = Arc::new(Semaphore::new(this.cfg.max_connections));
        loop {
            let accepted = tokio::select! {
                _ = this.cancel.cancelled() => break,
                r = listener.accept() => r,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            inc(&this.stats.accepted);
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                inc(&this.stats.rejected_limit);
                tracing::warn!(%peer, limit = this.cfg.max_connections, "connection limit reached; refusing");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let conn = this.clone();
            this.tracker.spawn(async move {
                conn.stats.active.fetch_add(1, Ordering::Relaxed);
                conn.connection(tcp, peer).await;
                conn.stats.active.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            });
        }
    }

    async fn connection(&self, tcp: TcpStream, peer: SocketAddr) {
        let timeout = self.cfg.handshake_timeout;
        // Each connection runs in its own task and every wait before the session is bounded,
        // so an idle or slow client can hold only its own slot.
        let tls = match tokio::time::timeout(timeout, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                inc(&self.stats.handshake_failed);
                tracing::info!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                inc(&self.stats.handshake_timeout);
                tracing::info!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let device = match tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| certs::device_id_from_der(c.as_ref()))
        {
            Some(Ok(id)) => id,
            Some(Err(e)) => {
                inc(&self.stats.identity_rejected);
                tracing::warn!(%peer, error = %e, "client certificate names no valid device");
                return;
            }
            None => {
                inc(&self.stats.identity_rejected);
                tracing::warn!(%peer, "no client certificate");
                return;
            }
        };
        let (mut client_rx, mut client_tx) = tokio::io::split(tls);
        let max = self.cfg.max_packet_size;
        let mut from_client = BytesMut::with_capacity(4096);

        let connect =
            match tokio::time::timeout(timeout, read_packet(&mut client_rx, &mut from_client, max))
                .await
            {
                Ok(Ok(Some(p @ Packet::Connect(..)))) => p,
                Ok(Ok(Some(_))) => {
                    return self.refuse(&device, peer, &"first packet was not CONNECT");
                }
                Ok(Ok(None)) => return,
                Ok(Err(e)) => return self.refuse(&device, peer, &e),
                Err(_) => {
                    inc(&self.stats.handshake_timeout);
                    tracing::info!(%peer, %device, "no MQTT CONNECT in time");
                    return;
                }
            };
        let Packet::Connect(c, props, will, will_props, _login) = connect else {
            return self.refuse(&device, peer, &"first packet was not CONNECT");
        };
        let refusal = if c.client_id != device.as_str() {
            inc(&self.stats.identity_rejected);
            tracing::warn!(%peer, %device, client_id = %c.client_id,
                "MQTT client id differs from the certificate's device id; refused");
            Some(ConnectReturnCode::ClientIdentifierNotValid)
        } else if let Some(w) = &will {
            // rumqttd publishes a will without any topic check, so a will would let a device
            // speak on another device's topics. Presence comes from the front instead.
            inc(&self.stats.violations);
            tracing::warn!(%peer, %device, will_topic = %String::from_utf8_lossy(&w.topic),
                "CONNECT with a last will refused; LockerFleet reports presence itself");
            Some(ConnectReturnCode::NotAuthorized)
        } else {
            None
        };
        if let Some(code) = refusal {
            let mut out = BytesMut::new();
            let refusal = Packet::ConnAck(
                ConnAck {
                    session_present: false,
                    code,
                },
                None,
            );
            if V4.write(refusal, &mut out).is_ok() {
                let _ = client_tx.write_all(&out).await;
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, client_tx.shutdown()).await;
            }
            return;
        }
        // Only the front knows the internal listener's credentials: nothing else on this
        // machine can open a session as a device by going around the front.
        let login = Login {
            username: self.internal_login.0.clone(),
            password: self.internal_login.1.clone(),
        };
        let connect = Packet::Connect(c, props, None, will_props, Some(login));

        let upstream = match TcpStream::connect(self.internal_addr).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%device, error = %e, "internal broker unreachable");
                return;
            }
        };
        let _ = upstream.set_nodelay(true);
        let (mut broker_rx, mut broker_tx) = upstream.into_split();
        let mut out = BytesMut::new();
        if V4.write(connect, &mut out).is_err() || broker_tx.write_all(&out).await.is_err() {
            return;
        }
        // Counted from the moment rumqttd sees the CONNECT: rumqttd drops an older session
        // of the same id while handling it, and that session's end must not be mistaken for
        // the device going offline.
        let session = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        self.report(PresenceEvent::Connected {
            device: device.clone(),
            session,
            peer,
            at: SystemTime::now(),
        })
        .await;

        // The session exists once rumqttd accepts it; forward its CONNACK and only then
        // report the device online.
        let mut from_broker = BytesMut::with_capacity(4096);
        let accepted = match tokio::time::timeout(
            timeout,
            read_packet(&mut broker_rx, &mut from_broker, usize::MAX),
        )
        .await
        {
            Ok(Ok(Some(Packet::ConnAck(ack, props)))) => {
                let ok = ack.code == ConnectReturnCode::Success;
                out.clear();
                let written = V4.write(Packet::ConnAck(ack, props), &mut out).is_ok()
                    && client_tx.write_all(&out).await.is_ok()
                    && client_tx.flush().await.is_ok();
                ok && written
            }
            _ => false,
        };
        if !accepted {
            tracing::info!(%device, "broker did not accept the session");
            self.report(PresenceEvent::Disconnected {
                device,
                session,
                reason: DisconnectReason::Io("the broker refused the session".into()),
                at: SystemTime::now(),
            })
            .await;
            return;
        }
        inc(&self.stats.sessions);
        tracing::debug!(%device, %peer, session, "device connected");

        let reason = tokio::select! {
            r = self.uplink(&device, &mut client_rx, &mut broker_tx, from_client) => r,
            r = downlink(&mut broker_rx, &mut client_tx, from_broker) => r,
            _ = self.cancel.cancelled() => DisconnectReason::Shutdown,
        };
        if let DisconnectReason::Violation(v) = &reason {
            inc(&self.stats.violations);
            tracing::warn!(%device, %peer, violation = %v, "device disconnected for a policy violation");
        } else {
            tracing::debug!(%device, session, %reason, "device disconnected");
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, client_tx.shutdown()).await;
        self.report(PresenceEvent::Disconnected {
            device,
            session,
            reason,
            at: SystemTime::now(),
        })
        .await;
    }

    fn refuse(&self, device: &DeviceId, peer: SocketAddr, why: &dyn std::fmt::Display) {
        inc(&self.stats.violations);
        tracing::warn!(%device, %peer, reason = %why, "refused before session start");
    }

    async fn report(&self, event: PresenceEvent) {
        // Bounded channel: a slow consumer slows new sessions instead of losing reports.
        if self.presence.send(event).await.is_err() {
            tracing::debug!("presence consumer gone (shutting down)");
        }
    }

    /// Device → broker: every packet is parsed, checked, and re-encoded.
    async fn uplink<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &self,
        device: &DeviceId,
        client: &mut R,
        broker: &mut W,
        mut buf: BytesMut,
    ) -> DisconnectReason {
        let max = self.cfg.max_packet_size;
        let mut out = BytesMut::with_capacity(4096);
        let mut said_goodbye = false;
        loop {
            loop {
                // QoS 2 makes rumqttd hold each publish until PUBREL, without a bound: a
                // device could fill the router's memory. LockerFleet uses QoS 0 and 1 only.
                if buf
                    .first()
                    .is_some_and(|b| b >> 4 == 3 && (b >> 1) & 3 == 2)
                {
                    return DisconnectReason::Violation(
                        "QoS 2 publish; LockerFleet accepts QoS 0 and 1 only".into(),
                    );
                }
                let packet = match V4.read_mut(&mut buf, max) {
                    Ok(p) => p,
                    Err(MqttError::InsufficientBytes(_)) => break,
                    Err(e) => return DisconnectReason::Violation(format!("malformed packet: {e}")),
                };
                if let Err(v) = check(device, &packet) {
                    return DisconnectReason::Violation(v);
                }
                said_goodbye |= matches!(packet, Packet::Disconnect(..));
                if let Err(e) = V4.write(packet, &mut out) {
                    return DisconnectReason::Violation(format!("unencodable packet: {e}"));
                }
            }
            if !out.is_empty() {
                if let Err(e) = broker.write_all(&out).await {
                    return DisconnectReason::Io(format!("to broker: {e}"));
                }
                out.clear();
            }
            if said_goodbye {
                return DisconnectReason::ClientDisconnect;
            }
            match client.read_buf(&mut buf).await {
                Ok(0) => return DisconnectReason::ClientClosed,
                Ok(_) => {}
                Err(e) => return DisconnectReason::Io(e.to_string()),
            }
        }
    }
}

/// The rules a device's packets must follow after CONNECT.
fn check(device: &DeviceId, packet: &Packet) -> Result<(), String> {
    match packet {
        Packet::Publish(p, _) => {
            let topic =
                std::str::from_utf8(&p.topic).map_err(|_| "topic is not UTF-8".to_string())?;
            protocol::topic::check_device_publish(device, topic)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Packet::Subscribe(s, _) => s.filters.iter().try_for_each(|f| {
            protocol::topic::check_device_subscribe(device, &f.path)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
        Packet::Connect(..) => Err("second CONNECT on one connection".into()),
        Packet::PubRec(..) | Packet::PubRel(..) | Packet::PubComp(..) => {
            Err("QoS 2 flow packet; LockerFleet uses QoS 0 and 1 only".into())
        }
        _ => Ok(()),
    }
}

/// Broker → device: relayed byte for byte.
async fn downlink<W: AsyncWrite + Unpin>(
    broker: &mut tokio::net::tcp::OwnedReadHalf,
    client: &mut W,
    pending: BytesMut,
) -> DisconnectReason {
    if !pending.is_empty() {
        if let Err(e) = client.write_all(&pending).await {
            return DisconnectReason::Io(e.to_string());
        }
        if let Err(e) = client.flush().await {
            return DisconnectReason::Io(e.to_string());
        }
    }
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match broker.read(&mut buf).await {
            Ok(0) => return DisconnectReason::BrokerClosed,
            Ok(n) => n,
            Err(e) => return DisconnectReason::Io(e.to_string()),
        };
        // rumqttd leaves Nagle on for its sockets: its next small write (a command, a
        // receipt) waits until we acknowledge the previous one. Acknowledge at once instead
        // of after the delayed-ACK timer. The flag is not sticky, so set it after every read.
        let _ = socket2::SockRef::from(broker.as_ref()).set_tcp_quickack(true);
        // A device that stops reading must not hold its session (and the shutdown) forever.
        let write = async {
            client.write_all(&buf[..n]).await?;
            client.flush().await
        };
        match tokio::time::timeout(STALLED_WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return DisconnectReason::Io(e.to_string()),
            Err(_) => {
                return DisconnectReason::Io(format!(
                    "device did not read for {} s",
                    STALLED_WRITE_TIMEOUT.as_secs()
                ));
            }
        }
    }
}

/// Reads one whole packet. `Ok(None)` when the peer closed before sending one.
async fn read_packet<R: AsyncRead + Unpin>(
    rx: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Packet>, String> {
    loop {
        match V4.read_mut(buf, max) {
            Ok(p) => return Ok(Some(p)),
            Err(MqttError::InsufficientBytes(_)) => {}
            Err(e) => return Err(format!("malformed packet: {e}")),
        }
        match rx.read_buf(buf).await {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

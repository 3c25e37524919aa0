//! The device-facing TLS listener and MQTT 3.1.1 session: identity from the client
//! certificate, topic rules per device, keep-alive, exact session start/end reports, device
//! messages into the router, and server messages out to the device.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use protocol::DeviceId;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{Error as MqttError, QoS};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::device_tls::{DeviceTls, Hello};
use crate::router::Up;
use crate::sessions::{Down, Sessions};
use crate::{BrokerConfig, DisconnectReason, FrontStats, PresenceEvent};

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Time allowed for a TLS close_notify to a device.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// A device whose socket accepts nothing for this long is disconnected.
const STALLED_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Front {
    pub cfg: BrokerConfig,
    pub tls: crate::TlsHandle,
    /// Checked device messages into the router.
    pub uplink: mpsc::Sender<Up>,
    pub sessions: Arc<Sessions>,
    pub presence: mpsc::Sender<PresenceEvent>,
    pub stats: Arc<FrontStats>,
    pub per_ip: PerIp,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

type Limiter = governor::DefaultDirectRateLimiter;

/// TLS handshakes in progress per client address, and those waiting for a turn.
#[derive(Default)]
pub(crate) struct PerIp(
    std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (Arc<Semaphore>, usize)>>,
);

/// A connection's place among its address's handshakes: waiting, then holding a turn;
/// counted until dropped, so an address's entry goes with its last connection, cancelled
/// while waiting or not.
struct PerIpTurn<'a> {
    map: &'a PerIp,
    ip: std::net::IpAddr,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl PerIp {
    /// Waits for one of `limit` turns of `ip`. Cabinets behind one NAT share an address: they
    /// queue here (bounded by the caller's handshake deadline) instead of being closed and
    /// backing off, while one address still never holds more than `limit` of the server's
    /// handshake slots.
    async fn enter(&self, ip: std::net::IpAddr, limit: usize) -> PerIpTurn<'_> {
        // An IPv4 client on a dual-stack socket is one address, however it is written.
        let ip = ip.to_canonical();
        let (mut turn, turns) = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let (turns, users) = map
                .entry(ip)
                .or_insert_with(|| (Arc::new(Semaphore::new(limit.max(1))), 0));
            *users += 1;
            let turn = PerIpTurn {
                map: self,
                ip,
                permit: None,
            };
            (turn, turns.clone())
        };
        // The semaphore is never closed, so this only ends with a permit.
        turn.permit = turns.acquire_owned().await.ok();
        turn
    }
}

impl Drop for PerIpTurn<'_> {
    fn drop(&mut self) {
        let mut map = self.map.0.lock().unwrap_or_else(|e| e.into_inner());
        self.permit.take();
        if let Some((_, users)) = map.get_mut(&self.ip) {
            *users -= 1;
            if *users == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// A device's publish rate, or none when unlimited.
fn publish_limiter(cfg: &BrokerConfig) -> Option<Limiter> {
    let rate = std::num::NonZeroU32::new(cfg.publish_per_sec)?;
    let burst = std::num::NonZeroU32::new(cfg.publish_burst.max(1))?;
    Some(governor::RateLimiter::direct(
        governor::Quota::per_second(rate).allow_burst(burst),
    ))
}

/// How long until the limiter lets one more publish through; `None`: now (and counted).
fn publish_wait(limiter: Option<&Limiter>) -> Option<Duration> {
    use governor::clock::Clock;
    let limiter = limiter?;
    limiter
        .check()
        .err()
        .map(|not_until| not_until.wait_time_from(governor::clock::DefaultClock::default().now()))
}

/// A device through the handshake and its CONNECT, its session not started yet.
struct Admitted {
    tls: DeviceTls,
    device: DeviceId,
    /// What was read after the CONNECT (it may come with more).
    buf: BytesMut,
    /// The CONNECT's keep-alive, in seconds (0: none).
    keep_alive: u16,
}

/// The state of one accepted session.
struct Session<'a> {
    device: &'a DeviceId,
    id: u64,
}

impl Front {
    pub(crate) async fn serve(self, listener: TcpListener) {
        let this = Arc::new(self);
        let limit = Arc::new(Semaphore::new(this.cfg.max_connections));
        let handshakes = Arc::new(Semaphore::new(this.cfg.max_handshakes.max(1)));
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
            let (conn, handshakes) = (this.clone(), handshakes.clone());
            this.tracker.spawn(async move {
                conn.stats.active.fetch_add(1, Ordering::Relaxed);
                conn.connection(tcp, peer, &handshakes).await;
                conn.stats.active.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            });
        }
    }

    /// The TLS handshake and the CONNECT, checked: the device's stream, or `None` once it was
    /// refused (and counted) or went away.
    async fn admit(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        handshakes: &Semaphore,
    ) -> Option<Admitted> {
        let timeout = self.cfg.handshake_timeout;
        // Each connection runs in its own task and every wait before the session is bounded,
        // so an idle or slow client can hold only its own slot.
        let deadline = tokio::time::Instant::now() + timeout;
        // The ClientHello costs nothing to read; the cryptography after it does. A slot is
        // taken only once a client has said hello, so sockets that never speak hold none.
        let hello = Hello::read(tcp);
        let start = self.handshake_step(peer, tokio::time::timeout_at(deadline, hello).await);
        let start = start?;
        let turn = self.per_ip.enter(peer.ip(), self.cfg.max_handshakes_per_ip);
        let Ok(turn) = tokio::time::timeout_at(deadline, turn).await else {
            inc(&self.stats.handshake_refused_per_ip);
            tracing::debug!(%peer, "no handshake turn of this address in time; closed");
            return None;
        };
        let slot = match tokio::time::timeout_at(deadline, handshakes.acquire()).await {
            Ok(Ok(slot)) => slot,
            _ => {
                inc(&self.stats.handshake_queue_timeout);
                tracing::debug!(%peer, "no TLS handshake slot in time; closed");
                return None;
            }
        };
        let rest = start.handshake(self.tls.get());
        let accepted = tokio::time::timeout_at(deadline, rest).await;
        drop(slot);
        drop(turn);
        let mut tls = self.handshake_step(peer, accepted)?;
        let device = match tls
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| certs::device_id_from_der(c.as_ref()))
        {
            Some(Ok(id)) => id,
            Some(Err(e)) => {
                inc(&self.stats.identity_rejected);
                tracing::warn!(%peer, error = %e, "client certificate names no valid device");
                return None;
            }
            None => {
                inc(&self.stats.identity_rejected);
                tracing::warn!(%peer, "no client certificate");
                return None;
            }
        };
        let max = self.cfg.max_packet_size;
        let mut buf = BytesMut::new();

        let connect =
            match tokio::time::timeout(timeout, read_packet(&mut tls, &mut buf, max)).await {
                Ok(Ok(Some(Packet::Connect(c)))) => c,
                Ok(Ok(Some(_))) => {
                    self.refuse(&device, peer, &"first packet was not CONNECT");
                    return None;
                }
                Ok(Ok(None)) => return None,
                Ok(Err(e)) => {
                    self.refuse(&device, peer, &e);
                    return None;
                }
                Err(_) => {
                    inc(&self.stats.handshake_timeout);
                    tracing::info!(%peer, %device, "no MQTT CONNECT in time");
                    return None;
                }
            };
        let refusal = if connect.client_id != device.as_str() {
            inc(&self.stats.identity_rejected);
            tracing::warn!(%peer, %device, client_id = %connect.client_id,
                "MQTT client id differs from the certificate's device id; refused");
            Some(ConnectReturnCode::BadClientId)
        } else if let Some(w) = connect.last_will.as_ref().filter(|w| {
            w.topic != protocol::topic::device_topic(&device, protocol::Channel::Presence)
        }) {
            // A will is a message published in the device's name when it vanishes, on any
            // topic it names. The one allowed is the device's own `presence` (what an external
            // broker publishes); here it is never published: the front reports sessions itself.
            inc(&self.stats.violations);
            tracing::warn!(%peer, %device, will_topic = %w.topic,
                "CONNECT with a last will refused; LockerFleet reports presence itself");
            Some(ConnectReturnCode::NotAuthorized)
        } else {
            None
        };
        if let Some(code) = refusal {
            let mut out = BytesMut::new();
            if Packet::ConnAck(ConnAck::new(code, false))
                .write(&mut out, usize::MAX)
                .is_ok()
            {
                let _ = tls.write_all(&out).await;
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, tls.shutdown()).await;
            }
            return None;
        }
        Some(Admitted {
            tls,
            device,
            buf,
            keep_alive: connect.keep_alive,
        })
    }

    async fn connection(&self, tcp: TcpStream, peer: SocketAddr, handshakes: &Semaphore) {
        // The handshake's futures (rustls' acceptor, the CONNECT read, a refusal's write) are
        // large and done with once the session starts. Boxed, they are freed then; inline,
        // they sized every session's task for its whole life (4.9 KB where the session needs
        // 2.5; `a_session_task_is_no_larger_than_its_session` keeps it so).
        let Some(Admitted {
            mut tls,
            device,
            buf,
            keep_alive,
        }) = Box::pin(self.admit(tcp, peer, handshakes)).await
        else {
            return;
        };

        // The new session is reported before an older one of the same device is told to
        // end, so the device never looks offline for a moment while it reconnects.
        let session = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        self.report(PresenceEvent::Connected {
            device: device.clone(),
            session,
            peer,
            at: SystemTime::now(),
        })
        .await;
        let down = self.sessions.open(&device, session);
        let mut out = BytesMut::new();
        // Clean sessions only: nothing is kept for a device while it is away (PROTOCOL.md).
        let ack = Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false));
        let reason = if ack.write(&mut out, usize::MAX).is_err() {
            DisconnectReason::Io("CONNACK could not be encoded".into())
        } else if let Err(e) = write_out(&mut tls, &mut out).await {
            e
        } else {
            inc(&self.stats.sessions);
            tracing::debug!(%device, %peer, session, "device connected");
            let keep_alive = match keep_alive {
                0 => None,
                // MQTT 3.1.1 §3.1.2.10: one and a half keep-alive periods without a packet.
                s => Some(Duration::from_millis(u64::from(s) * 1500)),
            };
            let state = Session {
                device: &device,
                id: session,
            };
            self.session(&state, &mut tls, buf, down, keep_alive).await
        };
        self.sessions.close(&device, session);
        if let DisconnectReason::Violation(v) = &reason {
            inc(&self.stats.violations);
            tracing::warn!(%device, %peer, violation = %v, "device disconnected for a policy violation");
        } else {
            tracing::debug!(%device, session, %reason, "device disconnected");
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, tls.shutdown()).await;
        self.report(PresenceEvent::Disconnected {
            device,
            session,
            reason,
            at: SystemTime::now(),
        })
        .await;
    }

    /// The outcome of one stage of the TLS handshake, counted and logged when it failed.
    fn handshake_step<T>(
        &self,
        peer: SocketAddr,
        outcome: Result<std::io::Result<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        match outcome {
            Ok(Ok(t)) => Some(t),
            Ok(Err(e)) => {
                inc(&self.stats.handshake_failed);
                tracing::info!(%peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                inc(&self.stats.handshake_timeout);
                tracing::info!(%peer, "TLS handshake timed out");
                None
            }
        }
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

    /// The accepted session until it ends: device packets checked and answered, its
    /// messages into the router, server messages out, keep-alive watched.
    async fn session(
        &self,
        s: &Session<'_>,
        io: &mut DeviceTls,
        mut buf: BytesMut,
        mut down: crate::sessions::DownRx,
        keep_alive: Option<Duration>,
    ) -> DisconnectReason {
        let max = self.cfg.max_packet_size;
        let mut out = BytesMut::new();
        // Keep-alive 0 means none: the timer is then never polled nor reset.
        let idle = tokio::time::sleep(keep_alive.unwrap_or_default());
        tokio::pin!(idle);
        let limiter = publish_limiter(&self.cfg);
        // A publish over the device's rate, held (with the socket unread) until the rate
        // allows it: TCP backpressure slows the device, nothing is dropped, and server
        // messages still go out meanwhile.
        let mut held: Option<(Packet, tokio::time::Instant)> = None;
        loop {
            // Whole packets already read (the CONNECT may have come with more).
            loop {
                let packet = match held.take() {
                    Some((p, _)) => p,
                    None => {
                        // QoS 2 makes a broker hold each publish until PUBREL, without a
                        // bound. LockerFleet uses QoS 0 and 1 only.
                        if buf
                            .first()
                            .is_some_and(|b| b >> 4 == 3 && (b >> 1) & 3 == 2)
                        {
                            return DisconnectReason::Violation(
                                "QoS 2 publish; LockerFleet accepts QoS 0 and 1 only".into(),
                            );
                        }
                        match Packet::read(&mut buf, max) {
                            Ok(p) => p,
                            Err(MqttError::InsufficientBytes(_)) => break,
                            Err(e) => {
                                return DisconnectReason::Violation(format!(
                                    "malformed packet: {e}"
                                ));
                            }
                        }
                    }
                };
                if matches!(packet, Packet::Publish(_))
                    && let Some(wait) = publish_wait(limiter.as_ref())
                {
                    inc(&self.stats.publish_throttled);
                    held = Some((packet, tokio::time::Instant::now() + wait));
                    break;
                }
                match self.handle(s, packet, &mut out) {
                    Ok(Step::Answered) => {}
                    Ok(Step::Forward(up, ack)) => {
                        // Waits when the router is behind: the device's reads wait with it.
                        if self.uplink.send(up).await.is_err() {
                            return DisconnectReason::Shutdown;
                        }
                        // Answered once the message is in the router's queue, as any broker
                        // does: "in RAM". Delivery is guaranteed end to end by receipts
                        // (ADR 0004).
                        if let Some(pkid) = ack
                            && let Err(reason) =
                                reply_into(Packet::PubAck(PubAck::new(pkid)), &mut out)
                        {
                            return reason;
                        }
                    }
                    Ok(Step::Goodbye) => {
                        let _ = write_out(io, &mut out).await;
                        return DisconnectReason::ClientDisconnect;
                    }
                    Err(reason) => return reason,
                }
            }
            if let Err(e) = write_out(io, &mut out).await {
                return e;
            }
            // Read buffers are allocated as data comes and given back once it is handled:
            // ten thousand idle sessions hold none.
            if buf.is_empty() && buf.capacity() > 0 {
                buf = BytesMut::new();
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return DisconnectReason::Shutdown,
                d = down.recv() => {
                    let Some(first) = d else {
                        return if self.sessions.take_revoked(s.device, s.id) {
                            DisconnectReason::Revoked
                        } else {
                            DisconnectReason::TakenOver
                        };
                    };
                    encode_down(s, first, &mut out);
                    // Whatever else is queued goes in the same write.
                    while let Some(more) = down.try_recv() {
                        encode_down(s, more, &mut out);
                    }
                }
                // The device sent it: its keep-alive is met, however long it waited here.
                _ = tokio::time::sleep_until(held.as_ref().map_or_else(tokio::time::Instant::now, |h| h.1)), if held.is_some() => {
                    if let Some(limit) = keep_alive {
                        idle.as_mut().reset(tokio::time::Instant::now() + limit);
                    }
                }
                r = io.read_into(&mut buf), if held.is_none() => match r {
                    Ok(0) => return DisconnectReason::ClientClosed,
                    Ok(_) => {
                        if let Some(limit) = keep_alive {
                            idle.as_mut().reset(tokio::time::Instant::now() + limit);
                        }
                    }
                    Err(e) => return DisconnectReason::Io(e.to_string()),
                },
                _ = &mut idle, if keep_alive.is_some() => return DisconnectReason::KeepAliveTimeout,
            }
        }
    }

    /// One device packet, checked and answered into `out`; what it asks of the router is
    /// returned, not awaited here: this runs without I/O, so the session's task does not keep
    /// room for a packet's whole handling beside its send (680 B a session, where the send
    /// alone needs a third of it).
    fn handle(
        &self,
        s: &Session<'_>,
        packet: Packet,
        out: &mut BytesMut,
    ) -> Result<Step, DisconnectReason> {
        let reply = match packet {
            Packet::Publish(p) => {
                let channel = protocol::topic::check_device_publish(s.device, &p.topic)
                    .map_err(|e| DisconnectReason::Violation(e.to_string()))?;
                let Publish {
                    qos,
                    pkid,
                    topic,
                    payload,
                    ..
                } = p;
                // A device's own presence is meant for an external broker; the front's session
                // reports are exact, so here it is acknowledged and not passed on.
                let ack = (qos == QoS::AtLeastOnce).then_some(pkid);
                if channel == protocol::Channel::Presence {
                    ack.map(|pkid| Packet::PubAck(PubAck::new(pkid)))
                } else {
                    let up = Up {
                        topic: Bytes::from(topic),
                        payload,
                    };
                    return Ok(Step::Forward(up, ack));
                }
            }
            Packet::Subscribe(sub) => {
                let mut codes = Vec::with_capacity(sub.filters.len());
                for f in &sub.filters {
                    let channel = protocol::topic::check_device_subscribe(s.device, &f.path)
                        .map_err(|e| DisconnectReason::Violation(e.to_string()))?;
                    self.sessions.subscribe(s.device, s.id, channel, true);
                    // Server messages go out at QoS 0 (PROTOCOL.md); the grant echoes the
                    // request as a broker may deliver below it.
                    let granted = match f.qos {
                        QoS::AtMostOnce => QoS::AtMostOnce,
                        _ => QoS::AtLeastOnce,
                    };
                    codes.push(SubscribeReasonCode::Success(granted));
                }
                Some(Packet::SubAck(SubAck::new(sub.pkid, codes)))
            }
            Packet::Unsubscribe(u) => {
                for t in &u.topics {
                    if let Ok(channel) = protocol::topic::check_device_subscribe(s.device, t) {
                        self.sessions.subscribe(s.device, s.id, channel, false);
                    }
                }
                Some(Packet::UnsubAck(UnsubAck::new(u.pkid)))
            }
            Packet::PingReq => Some(Packet::PingResp),
            Packet::Disconnect => return Ok(Step::Goodbye),
            // Nothing the front sends asks for these; harmless.
            Packet::PubAck(_) | Packet::PingResp => None,
            Packet::Connect(_) => {
                return Err(DisconnectReason::Violation(
                    "second CONNECT on one connection".into(),
                ));
            }
            Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => {
                return Err(DisconnectReason::Violation(
                    "QoS 2 flow packet; LockerFleet uses QoS 0 and 1 only".into(),
                ));
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) => {
                return Err(DisconnectReason::Violation(
                    "a server-to-client packet sent by the device".into(),
                ));
            }
        };
        if let Some(r) = reply {
            reply_into(r, out)?;
        }
        Ok(Step::Answered)
    }
}

/// What a device packet asks of its session after [`Front::handle`].
enum Step {
    /// Answered (or nothing to answer).
    Answered,
    /// A message for the router, then its PUBACK if it had a packet id.
    Forward(Up, Option<u16>),
    /// The device said goodbye.
    Goodbye,
}

fn reply_into(reply: Packet, out: &mut BytesMut) -> Result<(), DisconnectReason> {
    reply
        .write(out, usize::MAX)
        .map(drop)
        .map_err(|e| DisconnectReason::Io(format!("reply not encodable: {e}")))
}

/// A server message as a QoS 0 PUBLISH on the device's own topic.
fn encode_down(s: &Session<'_>, d: Down, out: &mut BytesMut) {
    // Built per message, not kept per session: a cabinet gets a few a minute, and seven
    // topic strings held by each of 10,000 sessions were half a kilobyte apiece.
    let topic = protocol::topic::device_topic(s.device, d.channel);
    let publish = Publish::from_bytes(topic, QoS::AtMostOnce, d.payload);
    if let Err(e) = Packet::Publish(publish).write(out, usize::MAX) {
        tracing::error!(device = %s.device, error = %e, "server message not encodable; dropped");
    }
}

/// Writes what is pending. A device that stops reading must not hold its session (and the
/// shutdown) forever.
async fn write_out(io: &mut DeviceTls, out: &mut BytesMut) -> Result<(), DisconnectReason> {
    if out.is_empty() {
        return Ok(());
    }
    let result = match tokio::time::timeout(STALLED_WRITE_TIMEOUT, io.write_all(out)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(DisconnectReason::Io(e.to_string())),
        Err(_) => Err(DisconnectReason::Io(format!(
            "device did not read for {} s",
            STALLED_WRITE_TIMEOUT.as_secs()
        ))),
    };
    // Given back after every write: a session kept its largest message's worth otherwise
    // (1,000 cabinets downloading held 150 MB that way; BENCHMARKS.md, Rollouts), and its
    // last receipt's worth while idle.
    *out = BytesMut::new();
    result
}

/// Reads one whole packet. `Ok(None)` when the peer closed before sending one.
async fn read_packet(
    rx: &mut DeviceTls,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Packet>, String> {
    loop {
        match Packet::read(buf, max) {
            Ok(p) => return Ok(Some(p)),
            Err(MqttError::InsufficientBytes(_)) => {}
            Err(e) => return Err(format!("malformed packet: {e}")),
        }
        match rx.read_into(buf).await {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_address_waits_for_its_turns_and_its_entry_goes_with_its_last_connection() {
        let per_ip = PerIp::default();
        let ip: std::net::IpAddr = "192.0.2.7".parse().expect("ip");
        let first = per_ip.enter(ip, 1).await;
        // A second connection of the address waits; given up (its deadline), it leaves no trace.
        let waited = tokio::time::timeout(Duration::from_millis(20), per_ip.enter(ip, 1)).await;
        assert!(waited.is_err(), "a second turn while the only one is held");
        let third = per_ip.enter(ip, 1);
        tokio::pin!(third);
        assert!(
            futures_poll_once(third.as_mut()).await.is_none(),
            "still waiting"
        );
        drop(first);
        let third = third.await;
        assert_eq!(per_ip.0.lock().expect("map").len(), 1);
        // Another address is not held up by this one.
        let other = tokio::time::timeout(
            Duration::from_secs(5),
            per_ip.enter("192.0.2.8".parse().expect("ip"), 1),
        )
        .await
        .expect("another address's turn at once");
        drop((third, other));
        assert!(
            per_ip.0.lock().expect("map").is_empty(),
            "entries forgotten"
        );
    }

    /// Polls `f` once: its output if ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    /// Every connected cabinet holds its task for as long as it is connected: the handshake's
    /// futures must not size it (they did, 4.9 KB where the session needs 2.5).
    #[test]
    fn a_session_task_is_no_larger_than_its_session() {
        use std::mem::size_of;
        type Tls = DeviceTls;
        fn connection<F, Fut>(_: F) -> usize
        where
            F: FnOnce(&'static Front, TcpStream, SocketAddr, &'static Semaphore) -> Fut,
        {
            size_of::<Fut>()
        }
        fn session<F, Fut>(_: F) -> usize
        where
            F: FnOnce(
                &'static Front,
                &'static Session<'static>,
                &'static mut Tls,
                BytesMut,
                crate::sessions::DownRx,
                Option<Duration>,
            ) -> Fut,
        {
            size_of::<Fut>()
        }
        let task = connection(Front::connection);
        let needed = size_of::<Tls>() + session(Front::session);
        // Room for the session's own few words and the presence reports around it.
        assert!(
            task <= needed + 768,
            "a connection's task is {task} B, its session {needed} B"
        );
    }
}

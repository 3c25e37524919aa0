//! The MQTT driver: rumqttc's event loop turned into `Net` notices for the uplink, and the
//! presence words.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use protocol::DeviceId;
use rumqttc::{Event, EventLoop, Packet, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Backoff;

pub(crate) enum Net {
    Connected,
    Disconnected,
    /// Any other message from the server: its channel (`None`: a topic not ours to read),
    /// the topic as heard, the payload.
    Message(Option<protocol::Channel>, String, bytes::Bytes),
    /// A receipt, decoded where it was heard; `learned`: the new offset to the server's
    /// clock it taught the agent (already in use).
    Receipt {
        receipt: protocol::Receipt,
        learned: Option<i64>,
    },
}

/// Where the connection's task hands what it hears: commands on their own queue, so a
/// remote open starts at once instead of after the uplink loop's outbox work (reads and
/// deletes that wait for the disk: 100-170 ms at the city scenario's peak).
pub(crate) struct Heard {
    pub net: mpsc::Sender<Net>,
    pub commands: mpsc::Sender<bytes::Bytes>,
    /// The server's clock is learned from a receipt where it is heard, before any command
    /// heard after it is judged for expiry on it (commands skip the uplink loop's queue).
    pub clock: Arc<crate::Clock>,
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
    /// How long a node may hold publishes without acknowledging any before it is left for
    /// the next (with one node there is nowhere better to go: the agent waits).
    pub(crate) stall_after: Duration,
}

impl Nodes {
    /// Points the event loop at the node after `node` (its next connect goes there).
    fn next(&self, node: usize, eventloop: &mut EventLoop) -> usize {
        let next = (node + 1) % self.addrs.len();
        eventloop.mqtt_options = (self.options)(&self.addrs[next], self.tls.clone());
        next
    }
}

/// Whether the connected node still acknowledges what it is sent. A node can answer pings
/// and take publishes while passing none of them on: RabbitMQ 3.10 does when a cabinet
/// reconnects to it moments after the node leading the partitions' queues died, its new
/// session routing to the dead leader until that node returns (rabbitmq-server#9208, seen
/// here as heartbeats unheard for minutes). The broker's PUBACK waits for the queues'
/// confirm there, so publishes outstanding with no acknowledgement for a while are the sign;
/// a slow node that acknowledges some is making progress and is kept.
#[derive(Debug)]
pub(crate) struct AckWatch {
    stall_after: Duration,
    /// Since when publishes have been outstanding with no acknowledgement.
    waiting_since: Option<Instant>,
}

impl AckWatch {
    pub(crate) fn new(stall_after: Duration) -> AckWatch {
        AckWatch {
            stall_after,
            waiting_since: None,
        }
    }

    /// After each event: how many publishes are outstanding and whether one was just
    /// acknowledged.
    pub(crate) fn observe(&mut self, outstanding: u16, acked: bool, now: Instant) {
        if outstanding == 0 {
            self.waiting_since = None;
        } else if acked || self.waiting_since.is_none() {
            self.waiting_since = Some(now);
        }
    }

    /// A new connection: nothing is judged from the last one.
    pub(crate) fn reset(&mut self) {
        self.waiting_since = None;
    }

    /// When the node is judged stalled if nothing is acknowledged before.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.waiting_since.map(|s| s + self.stall_after)
    }
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
    tx: Heard,
    mut new_tls: mpsc::Receiver<Arc<rustls::ClientConfig>>,
    cancel: CancellationToken,
    max_backoff: Duration,
    id: DeviceId,
) {
    let mut backoff = Backoff::new(max_backoff);
    let mut failures = 0u32;
    let mut node = 0usize;
    let mut acks = AckWatch::new(nodes.stall_after);
    loop {
        // Only with somewhere else to go: alone, a node that is slow to acknowledge (its
        // server's ingest behind) is waited for rather than reconnected to again and again.
        let stall = acks.deadline().filter(|_| nodes.addrs.len() > 1);
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(tls) = new_tls.recv() => {
                // A renewed certificate: drop the connection and make the next with it.
                nodes.tls = tls.clone();
                eventloop.mqtt_options.set_transport(Transport::tls_with_config(
                    rumqttc::TlsConfiguration::Rustls(tls),
                ));
                eventloop.clean();
                acks.reset();
                let _ = tx.net.send(Net::Disconnected).await;
                continue;
            }
            _ = tokio::time::sleep_until(stall.unwrap_or_else(Instant::now)), if stall.is_some() => {
                let (host, port) = &nodes.addrs[node];
                tracing::warn!(device = %id, %host, port, outstanding = eventloop.state.inflight(),
                    waited_s = nodes.stall_after.as_secs(),
                    "the broker node acknowledges none of the messages sent to it; moving to the next node");
                // Clean sessions: what it held is dropped at the next CONNACK, as after any lost
                // connection. The outbox re-sends every unreceipted event and the subscriptions
                // are made again; a lost heartbeat or fast command ack has its durable twin.
                eventloop.clean();
                acks.reset();
                let _ = tx.net.send(Net::Disconnected).await;
                node = nodes.next(node, &mut eventloop);
                // Jittered like any reconnect: were a whole cluster to stop confirming, its
                // fleet would not move in step.
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(backoff.next_wait()) => {}
                }
                continue;
            }
            e = eventloop.poll() => e,
        };
        if let Ok(e) = &event {
            let acked = matches!(e, Event::Incoming(Packet::PubAck(_)));
            acks.observe(eventloop.state.inflight(), acked, Instant::now());
        }
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                acks.reset();
                if ack.code == rumqttc::ConnectReturnCode::Success {
                    backoff.reset();
                    failures = 0;
                    let (host, port) = &nodes.addrs[node];
                    tracing::info!(device = %id, %host, port, "connected");
                    let _ = tx.net.send(Net::Connected).await;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let channel = protocol::DeviceTopic::parse(&p.topic)
                    .map(|t| t.channel)
                    .ok();
                let heard = match channel {
                    Some(protocol::Channel::Commands) => {
                        let _ = tx.commands.send(p.payload).await;
                        None
                    }
                    Some(protocol::Channel::Receipts) => {
                        match protocol::decode::<protocol::Receipt>(&p.payload) {
                            Ok(receipt) => {
                                let learned = receipt.at.and_then(|at| tx.clock.learn(at));
                                Some(Net::Receipt { receipt, learned })
                            }
                            Err(e) => {
                                tracing::warn!(device = %id, error = %e, "bad receipt ignored");
                                None
                            }
                        }
                    }
                    _ => Some(Net::Message(channel, p.topic, p.payload)),
                };
                if let Some(heard) = heard {
                    let _ = tx.net.send(heard).await;
                }
            }
            Ok(_) => {}
            Err(e) => {
                acks.reset();
                let _ = tx.net.send(Net::Disconnected).await;
                failures += 1;
                let wait = backoff.next_wait();
                // The first failure after a session is news; the retries are not.
                if failures == 1 {
                    tracing::warn!(device = %id, error = %e, retry_in_ms = wait.as_millis() as u64, "connection lost");
                } else {
                    tracing::debug!(device = %id, error = %e, retry_in_ms = wait.as_millis() as u64, "reconnect failed");
                }
                if nodes.addrs.len() > 1 {
                    node = nodes.next(node, &mut eventloop);
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::BytesMut;
    use rumqttc::{AsyncClient, ConnAck, ConnectReturnCode, MqttOptions, PubAck, QoS};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::Clock;

    /// A broker node for the tests (plain TCP): answers connections, pings and subscriptions;
    /// publishes are acknowledged, and their topics told to `heard`, only when `acks`.
    async fn node(acks: bool, heard: mpsc::UnboundedSender<String>) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let sessions = Arc::new(AtomicUsize::new(0));
        let count = sessions.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let heard = heard.clone();
                tokio::spawn(async move {
                    let mut buf = BytesMut::new();
                    loop {
                        let packet = match Packet::read(&mut buf, 1 << 20) {
                            Ok(p) => p,
                            Err(rumqttc::Error::InsufficientBytes(_)) => {
                                if sock.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                continue;
                            }
                            Err(_) => return,
                        };
                        let reply = match packet {
                            Packet::Connect(_) => Some(Packet::ConnAck(ConnAck::new(
                                ConnectReturnCode::Success,
                                false,
                            ))),
                            Packet::PingReq => Some(Packet::PingResp),
                            Packet::Publish(p) if acks => {
                                let _ = heard.send(p.topic);
                                Some(Packet::PubAck(PubAck::new(p.pkid)))
                            }
                            _ => None,
                        };
                        if let Some(reply) = reply {
                            let mut out = BytesMut::new();
                            reply.write(&mut out, 1 << 20).expect("encode");
                            if sock.write_all(&out).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (port, sessions)
    }

    /// Drives a client over `ports` (plain TCP) that publishes at QoS 1 every 100 ms.
    fn client(ports: &[u16], stall_after: Duration, cancel: &CancellationToken) {
        let options = |(host, port): &(String, u16), _: Arc<rustls::ClientConfig>| {
            let mut o = MqttOptions::new("cab-1", host.clone(), *port);
            o.set_keep_alive(Duration::from_secs(5));
            o
        };
        let addrs: Vec<(String, u16)> = ports.iter().map(|p| ("127.0.0.1".into(), *p)).collect();
        let (client, eventloop) = AsyncClient::new(options(&addrs[0], tls()), 16);
        let (net_tx, mut net_rx) = mpsc::channel(64);
        let (commands, _commands_rx) = mpsc::channel(1);
        let (_tls_tx, tls_rx) = mpsc::channel(1);
        let nodes = Nodes {
            addrs,
            tls: tls(),
            options: Box::new(options),
            stall_after,
        };
        let id = DeviceId::parse("cab-1").expect("id");
        tokio::spawn(drive(
            eventloop,
            nodes,
            Heard {
                net: net_tx,
                commands,
                clock: Arc::new(Clock::new(0)),
            },
            tls_rx,
            cancel.clone(),
            Duration::from_millis(50),
            id,
        ));
        tokio::spawn(async move { while net_rx.recv().await.is_some() {} });
        let cancel = cancel.clone();
        tokio::spawn(async move {
            while !cancel.is_cancelled() {
                let _ = client.try_publish("devices/cab-1/health", QoS::AtLeastOnce, false, "{}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    fn tls() -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
    }

    /// A command reaches its queue while the uplink loop reads nothing (busy with its outbox):
    /// it used to wait behind the loop in the one queue everything heard went through. The
    /// receipt heard before it has already taught the agent the server's clock, on which the
    /// command's expiry is judged.
    #[tokio::test]
    async fn a_command_skips_the_queue_of_the_busy_uplink_loop() {
        let server_at = Clock::new(0).local_ms() + 3_600_000;
        let receipt = protocol::encode(&protocol::Receipt {
            v: 1,
            up_to: 0,
            at: Some(server_at),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = BytesMut::new();
            while !matches!(Packet::read(&mut buf, 1 << 20), Ok(Packet::Connect(_))) {
                if sock.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
            }
            let mut out = BytesMut::new();
            let said = [
                Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
                Packet::Publish(rumqttc::Publish::new(
                    "devices/cab-1/receipts",
                    QoS::AtMostOnce,
                    receipt,
                )),
                Packet::Publish(rumqttc::Publish::new(
                    "devices/cab-1/commands",
                    QoS::AtMostOnce,
                    "open box 1",
                )),
            ];
            for p in said {
                p.write(&mut out, 1 << 20).expect("encode");
            }
            let _ = sock.write_all(&out).await;
            // Held open until the test ends.
            let _ = sock.read_buf(&mut buf).await;
        });
        let options = |(host, port): &(String, u16), _: Arc<rustls::ClientConfig>| {
            MqttOptions::new("cab-1", host.clone(), *port)
        };
        let addrs = vec![("127.0.0.1".to_string(), port)];
        let (_client, eventloop) = AsyncClient::new(options(&addrs[0], tls()), 16);
        // Nobody reads the uplink loop's queue, as while it waits for its outbox.
        let (net_tx, _net_rx) = mpsc::channel(8);
        let (commands, mut heard_commands) = mpsc::channel(4);
        let (_tls_tx, tls_rx) = mpsc::channel(1);
        let cancel = CancellationToken::new();
        let clock = Arc::new(Clock::new(0));
        tokio::spawn(drive(
            eventloop,
            Nodes {
                addrs,
                tls: tls(),
                options: Box::new(options),
                stall_after: Duration::from_secs(5),
            },
            Heard {
                net: net_tx,
                commands,
                clock: clock.clone(),
            },
            tls_rx,
            cancel.clone(),
            Duration::from_millis(50),
            DeviceId::parse("cab-1").expect("id"),
        ));
        let command = tokio::time::timeout(Duration::from_secs(10), heard_commands.recv())
            .await
            .expect("the command while the uplink loop is busy")
            .expect("queue open");
        assert_eq!(&command[..], b"open box 1");
        let offset = clock.offset_ms();
        assert!(
            (3_590_000..=3_610_000).contains(&offset),
            "the receipt's clock learned before the command was handed on: {offset}"
        );
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_node_that_takes_publishes_and_acknowledges_none_is_left_for_the_next() {
        let (heard_tx, mut heard) = mpsc::unbounded_channel();
        let (silent, silent_sessions) = node(false, heard_tx.clone()).await;
        let (good, _) = node(true, heard_tx).await;
        let cancel = CancellationToken::new();
        client(&[silent, good], Duration::from_millis(500), &cancel);
        let topic = tokio::time::timeout(Duration::from_secs(10), heard.recv())
            .await
            .expect("the publishes reached the acknowledging node")
            .expect("a topic");
        assert_eq!(topic, "devices/cab-1/health");
        assert_eq!(silent_sessions.load(Ordering::SeqCst), 1);
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_lone_node_slow_to_acknowledge_is_waited_for_not_reconnected_to() {
        let (heard_tx, _heard) = mpsc::unbounded_channel();
        let (silent, sessions) = node(false, heard_tx).await;
        let cancel = CancellationToken::new();
        client(&[silent], Duration::from_millis(200), &cancel);
        // Many times the stall: a node to move to would have been tried by now.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(sessions.load(Ordering::SeqCst), 1);
        cancel.cancel();
    }

    #[test]
    fn the_watch_judges_time_without_an_acknowledgement_not_time_with_publishes_outstanding() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = AckWatch::new(Duration::from_secs(10));
        assert_eq!(w.deadline(), None);
        w.observe(1, false, t0);
        assert_eq!(w.deadline(), Some(t0 + 10 * s));
        // More sent without an answer: still judged from the first.
        w.observe(3, false, t0 + 4 * s);
        assert_eq!(w.deadline(), Some(t0 + 10 * s));
        // One acknowledged, others outstanding: progress, judged afresh.
        w.observe(2, true, t0 + 6 * s);
        assert_eq!(w.deadline(), Some(t0 + 16 * s));
        // All acknowledged: nothing to judge.
        w.observe(0, true, t0 + 7 * s);
        assert_eq!(w.deadline(), None);
        w.observe(1, false, t0 + 8 * s);
        w.reset();
        assert_eq!(w.deadline(), None);
    }

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

//! RabbitMQ broker tier (ADR 0024): the replica as an AMQP client of a RabbitMQ cluster whose
//! MQTT plugin carries the cabinets.
//!
//! The cabinets' uplink messages reach `amq.topic` with routing keys `devices.{id}.{channel}`.
//! Each replica declares the same topology: `amq.topic` → a consistent-hash exchange
//! (`lockerfleet.uplink`, hashed on the routing key, so on the device id) → N quorum queues
//! with a single active consumer (`lockerfleet.uplink.{i}`). Every replica consumes every
//! partition; RabbitMQ lets one of them at a time receive from each, so a device's messages
//! reach one replica in order, are replicated on the broker's nodes until acknowledged, and
//! move to another replica when that one dies. Presence words go to a queue of the replica's
//! own, so each one knows who is online. Server → device messages are published to
//! `amq.topic` with the device's routing key; the MQTT plugin delivers them to the device.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use protocol::{Channel, DeviceId, Presence};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::broker_auth::MQTT_EXCHANGE;
use crate::devices::{Online, Outgoing};
use crate::runtime::bus::BrokerUrl;
use crate::runtime::link::Dispatch;

/// The consistent-hash exchange between `amq.topic` and the partitions.
const UPLINK_EXCHANGE: &str = "lockerfleet.uplink";

/// Deliveries one partition may have unacknowledged at this replica: enough to keep ingest
/// busy, few enough that a dead replica leaves little to redeliver.
const PREFETCH: u16 = 512;

fn partition_queue(i: u16) -> String {
    format!("{UPLINK_EXCHANGE}.{i}")
}

/// The channels a device publishes that go through the ordered partitions (presence goes to
/// every replica instead).
fn partitioned_channels() -> impl Iterator<Item = Channel> {
    Channel::ALL
        .into_iter()
        .filter(|c| c.device_publishes() && *c != Channel::Presence)
}

/// How to reach the cluster: every node's AMQP listener (tried in turn), the replica's
/// certificate, and how many partitions (the same on every replica).
#[derive(Clone)]
pub(crate) struct Cluster {
    pub nodes: Vec<BrokerUrl>,
    pub tls: amq_protocol_tcp::OwnedTLSConfig,
    pub partitions: u16,
}

impl Cluster {
    /// The replicas' client certificate (`fleet-server.crt`) and the fleet CA, as read here.
    pub(crate) fn new(
        nodes: Vec<BrokerUrl>,
        certs_dir: &std::path::Path,
        partitions: u16,
    ) -> anyhow::Result<Cluster> {
        let id = certs::server_client_id();
        let read = |path: std::path::PathBuf| {
            std::fs::read(&path).with_context(|| {
                format!(
                    "reading {} (create the replicas' certificate with `fleet-certs issue --dir {} --device {}`)",
                    path.display(),
                    certs_dir.display(),
                    certs::SERVER_CLIENT
                )
            })
        };
        let ca = String::from_utf8(read(certs_dir.join(certs::CA_CERT))?)
            .context("the CA certificate is not PEM text")?;
        let tls = amq_protocol_tcp::OwnedTLSConfig {
            identity: Some(amq_protocol_tcp::OwnedIdentity::PKCS8 {
                pem: read(certs::device_cert_path(certs_dir, &id))?,
                key: read(certs::device_key_path(certs_dir, &id))?,
            }),
            cert_chain: Some(ca),
        };
        Ok(Cluster {
            nodes,
            tls,
            partitions,
        })
    }
}

fn s(v: impl Into<String>) -> ShortString {
    ShortString::from(v.into())
}

async fn connect(cluster: &Cluster, node: &BrokerUrl) -> lapin::Result<Connection> {
    // EXTERNAL: the broker takes the certificate's common name as the user.
    let uri = format!(
        "amqps://{}:{}/%2f?auth_mechanism=external&heartbeat=10&connection_timeout=5000",
        node.host, node.port
    );
    Connection::connect_with_config(
        &uri,
        ConnectionProperties::default()
            .with_connection_name(format!("fleet-server {}", std::process::id()).into()),
        cluster.tls.clone(),
        lapin::runtime::default_runtime()?,
    )
    .await
}

/// Declares the shared topology (idempotent: every replica does it on every connect).
async fn declare(channel: &lapin::Channel, partitions: u16) -> lapin::Result<()> {
    channel
        .exchange_declare(
            s(UPLINK_EXCHANGE),
            ExchangeKind::Custom("x-consistent-hash".into()),
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    for c in partitioned_channels() {
        channel
            .exchange_bind(
                s(UPLINK_EXCHANGE),
                s(MQTT_EXCHANGE),
                s(protocol::topic::all_devices_routing_key(c)),
                ExchangeBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    for i in 0..partitions {
        let mut args = FieldTable::default();
        args.insert(s("x-queue-type"), AMQPValue::LongString("quorum".into()));
        args.insert(s("x-single-active-consumer"), AMQPValue::Boolean(true));
        channel
            .queue_declare(
                s(partition_queue(i)),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
            )
            .await?;
        // The binding key of a consistent-hash exchange is the partition's weight.
        channel
            .queue_bind(
                s(partition_queue(i)),
                s(UPLINK_EXCHANGE),
                s("1"),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Where a replica's connection hands what it receives, and what it tells about itself.
pub(crate) struct Links {
    pub dispatch: Dispatch,
    /// Presence words (and "heard from" for a device held offline) to the presence task.
    pub presence: mpsc::Sender<(DeviceId, Presence)>,
    pub online: Online,
    /// Whether a node is connected now (`/healthz`).
    pub connected: Arc<crate::health::BrokerLink>,
}

/// One connection's life: declare, consume every partition and the presence words, publish
/// what the services send, until the connection fails or `cancel`.
async fn session(
    conn: &Connection,
    cluster: &Cluster,
    links: &Links,
    outgoing: &mut mpsc::Receiver<Outgoing>,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    let Links {
        dispatch,
        presence,
        online,
        connected,
    } = links;
    let setup = conn.create_channel().await?;
    declare(&setup, cluster.partitions).await?;
    // Presence: a queue of this replica's own, gone with its connection.
    let words = format!("lockerfleet.presence.{:08x}", rand::random::<u32>());
    setup
        .queue_declare(
            s(words.clone()),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    setup
        .queue_bind(
            s(words.clone()),
            s(MQTT_EXCHANGE),
            s(protocol::topic::all_devices_routing_key(Channel::Presence)),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let (deliveries_tx, mut deliveries) = mpsc::channel::<lapin::message::Delivery>(1024);
    let mut consumers = tokio::task::JoinSet::new();
    let mut queues: Vec<String> = (0..cluster.partitions).map(partition_queue).collect();
    queues.push(words);
    for queue in queues {
        // A channel per queue: its deliveries stay in order, its prefetch its own.
        let ch = conn.create_channel().await?;
        ch.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
        let mut consumer = ch
            .basic_consume(
                s(queue.clone()),
                s(format!("{queue}-{}", std::process::id())),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let tx = deliveries_tx.clone();
        consumers.spawn(async move {
            let _keep = ch;
            while let Some(d) = consumer.next().await {
                match d {
                    Ok(d) => {
                        if tx.send(d).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%queue, error = %e, "consumer stopped");
                        return;
                    }
                }
            }
        });
    }
    drop(deliveries_tx);
    let publish = conn.create_channel().await?;
    connected.up();
    tracing::info!(
        partitions = cluster.partitions,
        "consuming from the RabbitMQ cluster"
    );
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            // A partition without its consumer would stall its devices: start over.
            _ = consumers.join_next() => anyhow::bail!("a consumer stopped"),
            d = deliveries.recv() => {
                let Some(d) = d else { anyhow::bail!("the cluster closed the consumers") };
                deliver(&d, dispatch, presence, online).await;
                // After the hand-off to ingest: what a dying replica had taken but not stored
                // was never receipted, and its agent sends it again.
                d.acker.ack(BasicAckOptions::default()).await.context("acknowledging a delivery")?;
            }
            out = outgoing.recv() => {
                let Some(out) = out else { return Ok(()) };
                let mut headers = FieldTable::default();
                // The MQTT plugin delivers at this QoS (at most the device's subscription).
                // It must be a signed byte: 3.10 matches `{byte, Q}` and any other type
                // crashes the device's connection (seen in the lab as a reconnect loop).
                headers.insert(s("x-mqtt-publish-qos"), AMQPValue::ShortShortInt(1));
                publish
                    .basic_publish(
                        s(MQTT_EXCHANGE),
                        s(protocol::topic::routing_key(&out.device, out.channel)),
                        BasicPublishOptions::default(),
                        &out.payload,
                        BasicProperties::default().with_headers(headers),
                    )
                    .await
                    .context("publishing to a device")?;
            }
        }
    }
}

async fn deliver(
    d: &lapin::message::Delivery,
    dispatch: &Dispatch,
    presence: &mpsc::Sender<(DeviceId, Presence)>,
    online: &Online,
) {
    let topic = protocol::topic::topic_of_routing_key(d.routing_key.as_str());
    let parsed = protocol::topic::DeviceTopic::parse(&topic);
    // A device that speaks is connected, whatever this replica heard of its presence: its
    // `online` word may have come before this replica's queue existed (RabbitMQ keeps
    // retained words on one node only), and a node that died published no will.
    if let Ok(t) = &parsed
        && t.channel != Channel::Presence
        && !online.is_online(&t.device)
    {
        let word = Presence {
            v: 1,
            online: true,
            ts: crate::clock::now_ms(),
            reason: "heard from".into(),
        };
        let _ = presence.send((t.device.clone(), word)).await;
    }
    match parsed {
        Ok(t) if t.channel == Channel::Presence => match protocol::decode::<Presence>(&d.data) {
            Ok(word) => {
                let _ = presence.send((t.device, word)).await;
            }
            Err(e) => {
                dispatch.metrics.malformed("presence");
                tracing::warn!(device = %t.device, error = %e, "malformed presence message ignored");
            }
        },
        // `Dispatch` parses and checks the topic itself, and counts what is wrong.
        _ => {
            dispatch.message(topic.as_bytes(), &d.data).await;
        }
    }
}

/// Keeps a connection to some node of the cluster until `cancel`: on failure the next node is
/// tried, with the same backoff as the MQTT bus. While no node answers, the agents keep their
/// events and server messages are dropped (their senders re-send what matters).
pub(crate) async fn run(
    cluster: Cluster,
    links: Links,
    mut outgoing: mpsc::Receiver<Outgoing>,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut next = 0usize;
    while !cancel.is_cancelled() {
        let node = &cluster.nodes[next % cluster.nodes.len()];
        next += 1;
        let attempt = tokio::select! {
            _ = cancel.cancelled() => break,
            c = connect(&cluster, node) => c,
        };
        match attempt {
            Ok(conn) => {
                backoff = Duration::from_millis(100);
                let ended = session(&conn, &cluster, &links, &mut outgoing, &cancel).await;
                links.connected.down();
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    conn.close(200, s("replica stopping")),
                )
                .await;
                if let Err(e) = ended {
                    tracing::warn!(node = %format!("{}:{}", node.host, node.port), error = %format!("{e:#}"),
                        "lost the RabbitMQ node; trying the next");
                    // The node was fine a moment ago: try the next one at once.
                    continue;
                }
            }
            Err(e) => {
                tracing::warn!(node = %format!("{}:{}", node.host, node.port), error = %e,
                    retry_in_ms = backoff.as_millis() as u64, "cannot reach a RabbitMQ node");
            }
        }
        // Drop what waits for a connection rather than deliver it late: commands have their
        // own expiry and re-sends.
        while outgoing.try_recv().is_ok() {}
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_carry_every_uplink_but_presence() {
        let keys: Vec<String> = partitioned_channels()
            .map(protocol::topic::all_devices_routing_key)
            .collect();
        assert_eq!(
            keys,
            [
                "devices.*.events",
                "devices.*.state",
                "devices.*.acks",
                "devices.*.health",
                "devices.*.csr",
                "devices.*.fetch",
                "devices.*.diagnostics",
            ]
        );
        assert_eq!(partition_queue(3), "lockerfleet.uplink.3");
        assert!(partition_queue(0).starts_with(crate::broker_auth::RESOURCE_PREFIX));
    }
}

//! External broker mode: the server as an MQTT client of an existing broker (mosquitto, EMQX)
//! instead of running the embedded one, so several server replicas can share one fleet.
//!
//! Device traffic (events, state, acks, health) arrives through MQTT shared subscriptions
//! (`$share/{group}/devices/+/...`): the broker hands each message to one replica of the group.
//! Presence is read by every replica (a plain subscription to the devices' retained presence and
//! last wills), so each knows who is online to send commands. Nothing here is trusted more than
//! in embedded mode: every message is decoded and checked the same way ([`crate::runtime::link`]), the
//! database keeps events exactly once whichever replica stores them, and the agents keep every
//! event until a receipt says it is stored (ADR 0012).

use std::sync::Arc;
use std::time::Duration;

use protocol::{Channel, DeviceId, DeviceTopic, Presence};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::runtime::link::Dispatch;

/// Where the external broker listens, from `mqtts://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokerUrl {
    pub host: String,
    pub port: u16,
}

/// Which external broker: one MQTT broker (`mqtts://HOST:PORT`, shared subscriptions) or a
/// RabbitMQ cluster (`amqps://HOST:PORT,HOST:PORT,...`, its nodes' AMQP listeners; ADR 0024).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum External {
    Mqtt(BrokerUrl),
    Rabbit(Vec<BrokerUrl>),
}

impl External {
    pub(crate) fn parse(url: &str) -> Result<External, String> {
        if let Some(rest) = url.strip_prefix("amqps://") {
            let nodes = rest
                .split(',')
                .map(|node| {
                    let node = node.trim().trim_start_matches("amqps://");
                    BrokerUrl::host_port(node, url)
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(External::Rabbit(nodes));
        }
        BrokerUrl::parse(url).map(External::Mqtt)
    }
}

impl BrokerUrl {
    /// Only `mqtts://`: devices and replicas always use TLS with client certificates.
    pub(crate) fn parse(url: &str) -> Result<BrokerUrl, String> {
        let rest = url.strip_prefix("mqtts://").ok_or_else(|| {
            format!("{url:?} is neither an mqtts://HOST:PORT URL nor amqps://HOST:PORT,HOST:PORT,... (plain mqtt:// and amqp:// are not supported: devices and replicas authenticate with certificates)")
        })?;
        Self::host_port(rest, url)
    }

    fn host_port(rest: &str, url: &str) -> Result<BrokerUrl, String> {
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| {
            format!("{url:?} has no port; write HOST:PORT, e.g. mqtts://broker.example:8883")
        })?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(format!("{url:?} has no valid host"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{url:?} has no valid port (1-65535)"))?;
        Ok(BrokerUrl {
            host: host.to_owned(),
            port,
        })
    }
}

/// TLS for the replica: trust the fleet CA (the broker's certificate is issued by it), present
/// the replicas' client certificate (`fleet-server.crt`, written by `fleet-certs mosquitto`).
pub(crate) fn client_tls(certs_dir: &std::path::Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use anyhow::Context;
    let id = certs::server_client_id();
    let hint = || {
        format!(
            "loading the replicas' client certificate from {} (create it with `fleet-certs issue --dir {} --device {}`; `fleet-certs mosquitto` also does)",
            certs_dir.display(),
            certs_dir.display(),
            certs::SERVER_CLIENT
        )
    };
    let roots = certs::load_roots(&certs_dir.join(certs::CA_CERT)).with_context(hint)?;
    let chain = certs::load_certs(&certs::device_cert_path(certs_dir, &id)).with_context(hint)?;
    let key = certs::load_key(&certs::device_key_path(certs_dir, &id)).with_context(hint)?;
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .context("the replicas' client certificate and key do not match")?;
    Ok(Arc::new(config))
}

/// A client for one replica. The id is unique per process (the broker would otherwise
/// disconnect one replica for the other); the user name comes from the certificate.
pub(crate) fn client(
    url: &BrokerUrl,
    tls: Arc<rustls::ClientConfig>,
    max_packet_size: usize,
) -> (AsyncClient, EventLoop) {
    let id = format!("{}-{:08x}", certs::SERVER_CLIENT, rand::random::<u32>());
    let mut options = MqttOptions::new(id, url.host.clone(), url.port);
    options
        .set_keep_alive(Duration::from_secs(15))
        // Clean: what the broker queued for a dead replica is dropped, and the agents resend
        // it to the group (nothing is receipted that was not stored).
        .set_clean_session(true)
        .set_max_packet_size(max_packet_size, max_packet_size)
        .set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        ));
    let (client, mut eventloop) = AsyncClient::new(options, 4096);
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    eventloop.set_network_options(net);
    (client, eventloop)
}

/// The subscriptions of a replica: device traffic shared in `group`, presence for each.
pub(crate) fn subscriptions(group: &str) -> Vec<String> {
    // Every channel devices publish on, so a new one cannot be forgotten here; presence is
    // not shared: every replica keeps its own view of who is online.
    let mut filters: Vec<String> = Channel::ALL
        .into_iter()
        .filter(|c| c.device_publishes() && *c != Channel::Presence)
        .map(|c| protocol::topic::shared_filter(group, c))
        .collect();
    filters.push(protocol::topic::all_devices_filter(Channel::Presence));
    filters
}

/// Polls the replica's connection until cancelled: subscribes on every CONNACK, hands device
/// messages to [`Dispatch`] and presence to the presence task. Reconnects with backoff; while
/// it is away the agents keep their events and resend them to the group.
pub(crate) async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    group: String,
    dispatch: Dispatch,
    presence: mpsc::Sender<(DeviceId, Presence)>,
    connected: Arc<crate::health::BrokerLink>,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if ack.code != rumqttc::ConnectReturnCode::Success {
                    tracing::error!(code = ?ack.code, "external broker refused the replica");
                    continue;
                }
                backoff = Duration::from_millis(100);
                for filter in subscriptions(&group) {
                    if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        tracing::error!(%filter, error = %e, "subscribing failed");
                    }
                }
                connected.up();
                tracing::info!(%group, "connected to the external broker");
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    tracing::error!(
                        "the external broker refused a subscription: check its ACL gives the {} identity devices/# (fleet-certs mosquitto)",
                        certs::SERVER_CLIENT
                    );
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                // Presence is the replica's own concern; everything else goes to `Dispatch`,
                // which parses and checks the topic itself.
                if let Ok(t) = DeviceTopic::parse(&p.topic)
                    && t.channel == Channel::Presence
                {
                    match protocol::decode::<Presence>(&p.payload) {
                        Ok(word) => {
                            if presence.send((t.device, word)).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            dispatch.metrics.malformed("presence");
                            tracing::warn!(device = %t.device, error = %e, "malformed presence message ignored");
                        }
                    }
                    continue;
                }
                if !dispatch.message(p.topic.as_bytes(), &p.payload).await {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                connected.down();
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                    "external broker connection lost; agents keep their events meanwhile");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    let _ = client.try_disconnect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mqtts_urls_only() {
        assert_eq!(
            BrokerUrl::parse("mqtts://broker.example:8883"),
            Ok(BrokerUrl {
                host: "broker.example".into(),
                port: 8883
            })
        );
        assert_eq!(
            BrokerUrl::parse("mqtts://[::1]:18883/").map(|u| u.host),
            Ok("::1".into())
        );
        for bad in [
            "mqtt://broker:1883",
            "mqtts://broker",
            "mqtts://:8883",
            "mqtts://broker:0",
            "mqtts://broker:99999",
            "broker:8883",
        ] {
            let e = BrokerUrl::parse(bad).expect_err(bad);
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn parses_a_rabbitmq_cluster() {
        let node = |h: &str, p| BrokerUrl {
            host: h.into(),
            port: p,
        };
        assert_eq!(
            External::parse("amqps://a:5671, b:5672,amqps://c:5673"),
            Ok(External::Rabbit(vec![
                node("a", 5671),
                node("b", 5672),
                node("c", 5673)
            ]))
        );
        assert_eq!(
            External::parse("mqtts://m:8883"),
            Ok(External::Mqtt(node("m", 8883)))
        );
        for bad in ["amqps://a:5671,", "amqps://a", "amqp://a:5672"] {
            let e = External::parse(bad).expect_err(bad);
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn device_traffic_is_shared_and_presence_is_not() {
        assert_eq!(
            subscriptions("lf"),
            [
                "$share/lf/devices/+/events",
                "$share/lf/devices/+/state",
                "$share/lf/devices/+/acks",
                "$share/lf/devices/+/health",
                "$share/lf/devices/+/csr",
                "$share/lf/devices/+/fetch",
                "$share/lf/devices/+/diagnostics",
                "devices/+/presence",
            ]
        );
    }
}

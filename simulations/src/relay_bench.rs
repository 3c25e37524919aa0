//! The baseline of the durable-ingest benchmark: mosquitto (from the distribution) relaying
//! QoS 1 messages over mutually authenticated TLS from the same number of publishers, with
//! the same message size and window, to one subscriber of every device's events topic — what
//! our server is to the fleet, minus storing anything. Counted at the subscriber.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::{Channel, DeviceId};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};

/// Where mosquitto is: on PATH, or where Debian puts it.
fn mosquitto_binary() -> anyhow::Result<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")]);
    for dir in candidates {
        let exe = dir.join("mosquitto");
        if exe.is_file() {
            return Ok(exe);
        }
    }
    anyhow::bail!(
        "mosquitto is not installed: the baseline needs it (Debian/Ubuntu: apt-get install mosquitto)"
    )
}

/// A mosquitto broker on a free loopback port with our CA and server certificate, requiring
/// client certificates like our broker front. Killed when dropped. Its queue for the one
/// subscriber is unbounded (`max_queued_messages 0`): with a bound, a subscriber lagging by
/// more than it lost messages and the run waited out its deadline (it did at 200,000).
struct Mosquitto {
    child: std::process::Child,
    port: u16,
}

impl Mosquitto {
    async fn start(dir: &Path, certs: &Path) -> anyhow::Result<Mosquitto> {
        let exe = mosquitto_binary()?;
        let port = crate::lab::reserved_port()?;
        std::fs::create_dir_all(dir)?;
        let conf = dir.join("mosquitto.conf");
        let abs = |name: &str| certs.join(name).display().to_string();
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n\
                 cafile {}\ncertfile {}\nkeyfile {}\n\
                 require_certificate true\nuse_identity_as_username true\n\
                 allow_anonymous false\npersistence false\n\
                 max_inflight_messages 20\nmax_queued_messages 0\n\
                 set_tcp_nodelay true\nuser root\nlog_dest none\n",
                abs(certs::CA_CERT),
                abs(certs::SERVER_CERT),
                abs(certs::SERVER_KEY),
            ),
        )?;
        let child = std::process::Command::new(&exe)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "mosquitto did not listen on {port} within 10 s (config {})",
                conf.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Mosquitto { child, port })
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        // SIGKILL and reap at once: a bench ends here, nothing waits on the runtime.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(id: &str, port: u16, tls: Arc<rustls::ClientConfig>, inflight: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, "localhost", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_inflight(inflight)
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        ));
    o
}

/// Relays `messages` QoS 1 messages of `payload` from each of `ids` (window 20, as in our
/// raw bench) to one subscriber; returns how long until the subscriber had them all.
pub(crate) async fn mosquitto_relay(
    dir: &Path,
    certs_dir: &Path,
    ids: &[DeviceId],
    messages: u64,
    payload: Vec<u8>,
) -> anyhow::Result<Duration> {
    let broker = Mosquitto::start(dir, certs_dir).await?;
    let expected = messages * ids.len() as u64;
    let received = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let ready = Arc::new(tokio::sync::Notify::new());

    // The subscriber presents the first device's certificate (mosquitto needs one).
    let tls = device_agent::client_tls(certs_dir, &ids[0])?;
    let (sub, mut el) = AsyncClient::new(options("relay-subscriber", broker.port, tls, 100), 1024);
    let mut net = el.network_options();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    let filter = protocol::topic::all_devices_filter(Channel::Events);
    let (r, d, rd) = (received.clone(), done.clone(), ready.clone());
    let subscriber = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = sub.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => rd.notify_one(),
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    if r.fetch_add(1, Ordering::Relaxed) + 1 >= expected {
                        d.notify_one();
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "relay subscriber");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready.notified())
        .await
        .context("the subscriber did not subscribe at mosquitto within 10 s")?;

    let start = Arc::new(tokio::sync::Barrier::new(ids.len() + 1));
    let mut publishers = Vec::new();
    for id in ids {
        let tls = device_agent::client_tls(certs_dir, id)?;
        let (client, mut el) = AsyncClient::new(options(id.as_str(), broker.port, tls, 20), 64);
        let mut net = el.network_options();
        net.set_tcp_nodelay(true);
        el.set_network_options(net);
        let topic = protocol::topic::device_topic(id, Channel::Events);
        let (payload, start) = (payload.clone(), start.clone());
        let connected = Arc::new(tokio::sync::Notify::new());
        let c2 = connected.clone();
        let driver = tokio::spawn(async move {
            while let Ok(ev) = el.poll().await {
                if matches!(ev, Event::Incoming(Packet::ConnAck(_))) {
                    c2.notify_one();
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected.notified())
            .await
            .with_context(|| format!("{id} did not connect to mosquitto within 10 s"))?;
        publishers.push((
            tokio::spawn(async move {
                start.wait().await;
                for _ in 0..messages {
                    if client
                        .publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }),
            driver,
        ));
    }
    start.wait().await;
    let t0 = Instant::now();
    let finished = tokio::time::timeout(Duration::from_secs(600), done.notified()).await;
    let elapsed = t0.elapsed();
    for (p, d) in publishers {
        p.abort();
        d.abort();
    }
    subscriber.abort();
    drop(broker);
    finished.map_err(|_| {
        anyhow::anyhow!(
            "mosquitto relayed {} of {expected} messages within 600 s",
            received.load(Ordering::Relaxed)
        )
    })?;
    Ok(elapsed)
}

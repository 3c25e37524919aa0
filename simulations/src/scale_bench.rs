//! Scale benchmarks against a real `fleet-server` process: many mutually authenticated
//! devices connected at once (server RSS read from /proc), and a reconnect storm (the server
//! killed and restarted under them; time until every device is back and every event it
//! buffered meanwhile is stored). Devices are bare TLS MQTT clients with an in-memory outbox,
//! so the load generator stays small next to the server.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::{Channel, DeviceId, EventBatch, Receipt};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS, Transport};

#[derive(Debug, Clone, clap::Args)]
pub struct ScaleOptions {
    /// Devices connected at once.
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Then kill -9 the server, let every device buffer this many events, restart it and
    /// time until all are back and stored.
    #[arg(long)]
    pub storm: bool,
    #[arg(long, default_value_t = 3)]
    pub buffered_events: u64,
    /// TLS handshakes in flight at once while the fleet connects.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Longest reconnect wait, as the agent's `max_backoff_ms` (exponential from 100 ms,
    /// jittered ±50%, exactly the agent's policy).
    #[arg(long, default_value_t = 30_000)]
    pub max_backoff_ms: u64,
}

pub(crate) const TOKEN: &str = "bench-admin-token-0123456789";

/// The release `fleet-server` next to this binary as its own process (admin token
/// [`TOKEN`]), on the given addresses (port 0: any free one).
pub(crate) fn start_server(
    dir: &Path,
    mqtt: &str,
    http: &str,
) -> anyhow::Result<(Child, SocketAddr, SocketAddr)> {
    start_server_with(dir, mqtt, http, &[])
}

/// [`start_server`] with more flags.
pub(crate) fn start_server_with(
    dir: &Path,
    mqtt: &str,
    http: &str,
    extra: &[&str],
) -> anyhow::Result<(Child, SocketAddr, SocketAddr)> {
    let exe = std::env::current_exe()?
        .parent()
        .map(|d| d.join("fleet-server"))
        .context("no folder of fleet-sim")?;
    anyhow::ensure!(
        exe.exists(),
        "{} is not built (cargo build --release)",
        exe.display()
    );
    let mut child = Command::new(&exe)
        .args(["--data-dir", &dir.join("server").display().to_string()])
        .args(["--certs", &dir.join("certs").display().to_string()])
        .args(["--mqtt-listen", mqtt, "--http-listen", http])
        .args(["--admin-token", TOKEN])
        // Benchmarks measure what the server can do, not the rates a deployment allows.
        .args([
            "--device-publish-per-sec",
            "0",
            "--api-requests-per-sec",
            "0",
        ])
        .args(extra)
        .env("LOCKERFLEET_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let stdout = child.stdout.take().context("server stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("LOCKERFLEET_READY ") {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(60))
        .context("fleet-server did not print its ready line within 60 s")?;
    let addr = |key: &str| -> anyhow::Result<SocketAddr> {
        ready
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {key} in {ready:?}"))
    };
    Ok((child, addr("mqtt=")?, addr("http=")?))
}

/// The front's connection counters from the server's `/metrics`, to show where a storm's
/// time went (handshakes timed out or queued out, refused at the limit).
async fn print_front_counters(http: SocketAddr) {
    let Ok(res) = reqwest::get(format!("http://{http}/metrics")).await else {
        return;
    };
    let Ok(text) = res.text().await else { return };
    let wanted = [
        "lockerfleet_broker_connections_accepted_total",
        "lockerfleet_broker_sessions_total",
        "lockerfleet_broker_handshake_failed_total",
        "lockerfleet_broker_handshake_timeout_total",
        "lockerfleet_broker_handshake_queue_timeout_total",
        "lockerfleet_broker_connections_rejected_limit_total",
        "lockerfleet_broker_handshake_refused_per_ip_total",
    ];
    let found: Vec<String> = text
        .lines()
        .filter(|l| wanted.iter().any(|w| l.starts_with(w)))
        .map(|l| l.trim_start_matches("lockerfleet_broker_").to_owned())
        .collect();
    println!("  front since restart: {}", found.join(", "));
}

/// VmRSS and VmHWM of a process, in MB.
pub(crate) fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

/// One simulated device: its last recorded seq, what the server receipted, connection state.
pub(crate) struct Dev {
    last: AtomicU64,
    acked: AtomicU64,
    connected: AtomicBool,
}

/// Bare TLS MQTT devices with an in-memory outbox: they connect (each attempt paced by a
/// permit, reconnecting with the agent's backoff), resend what is not receipted after every
/// connect, and record events on demand. A load for the server, light for the bench.
pub(crate) struct LightFleet {
    pub(crate) devs: Vec<Arc<Dev>>,
    clients: Vec<AsyncClient>,
    topics: Vec<String>,
    health_topics: Vec<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The clients' failed attempts by kind (the error's variant), since the last
    /// [`LightFleet::failures`]: where a storm's time goes on the devices' side.
    failed: Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
}

impl LightFleet {
    pub(crate) fn connect(
        ids: &[DeviceId],
        certs: &Path,
        mqtt: SocketAddr,
        concurrency: usize,
        max_backoff: Duration,
    ) -> anyhow::Result<LightFleet> {
        let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut fleet = LightFleet {
            devs: Vec::new(),
            clients: Vec::new(),
            topics: Vec::new(),
            health_topics: Vec::new(),
            tasks: Vec::new(),
            failed: Arc::default(),
        };
        for id in ids {
            let dev = Arc::new(Dev {
                last: AtomicU64::new(1),
                acked: AtomicU64::new(0),
                connected: AtomicBool::new(false),
            });
            let tls = device_agent::client_tls(certs, id)?;
            let mut o = MqttOptions::new(id.as_str(), "localhost", mqtt.port());
            o.set_keep_alive(Duration::from_secs(60))
                .set_transport(Transport::tls_with_config(
                    rumqttc::TlsConfiguration::Rustls(tls),
                ));
            let (client, mut el) = AsyncClient::new(o, 16);
            let receipts = protocol::topic::device_topic(id, Channel::Receipts);
            let events = protocol::topic::device_topic(id, Channel::Events);
            fleet.devs.push(dev.clone());
            fleet.clients.push(client.clone());
            fleet.topics.push(events.clone());
            fleet
                .health_topics
                .push(protocol::topic::device_topic(id, Channel::Health));
            let gate = gate.clone();
            let failed = fleet.failed.clone();
            let mut backoff = device_agent::Backoff::new(max_backoff);
            fleet.tasks.push(tokio::spawn(async move {
                // Every connection attempt, first or after a failure, waits for one of the
                // gate's permits: on this machine the devices' TLS shares two cores with the
                // server, and ten thousand client handshakes at once would time out on the
                // bench's side. Real cabinets each have their own CPU.
                let mut permit = None;
                loop {
                    if permit.is_none() && !dev.connected.load(Ordering::Relaxed) {
                        permit = gate.clone().acquire_owned().await.ok();
                    }
                    match el.poll().await {
                        Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                            permit.take();
                            backoff.reset();
                            dev.connected.store(true, Ordering::Relaxed);
                            let _ = client.try_subscribe(receipts.clone(), QoS::AtLeastOnce);
                            // Everything not yet receipted, as an agent resends after a
                            // reconnect.
                            let from = dev.acked.load(Ordering::Relaxed) + 1;
                            let to = dev.last.load(Ordering::Relaxed);
                            if from <= to {
                                let _ = client.try_publish(
                                    events.clone(),
                                    QoS::AtLeastOnce,
                                    false,
                                    batch(from, to),
                                );
                            }
                        }
                        Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                            if let Ok(r) = protocol::decode::<Receipt>(&p.payload) {
                                dev.acked.fetch_max(r.up_to, Ordering::Relaxed);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            dev.connected.store(false, Ordering::Relaxed);
                            permit.take();
                            let kind = e.to_string();
                            let kind = kind.split(" (os error").next().unwrap_or("?");
                            let kind = kind.split(": https://").next().unwrap_or("?");
                            *failed
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .entry(kind.to_owned())
                                .or_default() += 1;
                            // As an agent does: a fleet that lost its server must not come
                            // back in lockstep.
                            tokio::time::sleep(backoff.next_wait()).await;
                        }
                    }
                }
            }));
        }
        Ok(fleet)
    }

    /// Device `i` records one more event and, when connected, publishes it (otherwise it
    /// stays buffered until the next connect resends it).
    pub(crate) fn record(&self, i: usize) {
        let dev = &self.devs[i];
        let seq = dev.last.fetch_add(1, Ordering::Relaxed) + 1;
        if dev.connected.load(Ordering::Relaxed) {
            let _ = self.clients[i].try_publish(
                self.topics[i].clone(),
                QoS::AtLeastOnce,
                false,
                batch(seq, seq),
            );
        }
    }

    /// Device `i` sends a routine heartbeat (30 s interval, nothing new but its uptime), as
    /// an agent does, at QoS 0; none while it is not connected.
    pub(crate) fn heartbeat(&self, i: usize, uptime_s: u64) {
        if !self.devs[i].connected.load(Ordering::Relaxed) {
            return;
        }
        let hb = protocol::Heartbeat {
            v: 1,
            ts: 0,
            interval_s: 30,
            profile: protocol::Profile::Locker,
            uptime_s,
            lock_bus: protocol::BusHealth::Ok,
            power: protocol::Power::Mains,
            outbox_pending: 0,
            station: None,
            clock_offset_ms: None,
        };
        let _ = self.clients[i].try_publish(
            self.health_topics[i].clone(),
            // As the agent sends them (PROTOCOL.md, Heartbeat).
            QoS::AtLeastOnce,
            false,
            protocol::encode(&hb),
        );
    }

    /// Every device records `n` more events at once (all buffered: for a server that is down).
    fn buffer(&self, n: u64) {
        for d in &self.devs {
            d.last.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The failed attempts by kind since the last call, and forgets them.
    fn failures(&self) -> String {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        let text = failed
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        failed.clear();
        if text.is_empty() { "none".into() } else { text }
    }

    fn any_connected(&self) -> bool {
        self.devs
            .iter()
            .any(|d| d.connected.load(Ordering::Relaxed))
    }

    /// Waits (up to 600 s) until every device is connected and receipted up to its last
    /// event; returns when all were first connected, counted from `since`.
    pub(crate) async fn wait_all_back(
        &self,
        since: Instant,
        what: &str,
    ) -> anyhow::Result<Duration> {
        let devs = &self.devs;
        let connected = |d: &Dev| d.connected.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut all_connected = None;
        loop {
            if all_connected.is_none() && devs.iter().all(|d| connected(d)) {
                all_connected = Some(since.elapsed());
            }
            if devs.iter().all(|d| {
                connected(d) && d.acked.load(Ordering::Relaxed) >= d.last.load(Ordering::Relaxed)
            }) {
                return Ok(all_connected.unwrap_or_else(|| since.elapsed()));
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "after 600 s only {} of {} devices {what}",
                devs.iter().filter(|d| connected(d)).count(),
                devs.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Events recorded and receipted (stored) over the whole fleet.
    pub(crate) fn totals(&self) -> (u64, u64) {
        self.devs.iter().fold((0, 0), |(l, a), d| {
            (
                l + d.last.load(Ordering::Relaxed),
                a + d.acked.load(Ordering::Relaxed),
            )
        })
    }

    pub(crate) fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn batch(from: u64, to: u64) -> Vec<u8> {
    let events = crate::bench::door_events(from..=to);
    protocol::encode(&EventBatch {
        v: 1,
        base: from,
        events,
    })
}

/// `scale-NNNNN`, the light devices' ids.
pub(crate) fn light_ids(n: usize) -> anyhow::Result<Vec<DeviceId>> {
    (0..n)
        .map(|n| DeviceId::parse(&format!("scale-{n:05}")).context("device id"))
        .collect()
}

pub async fn scale(opts: ScaleOptions) -> anyhow::Result<()> {
    let dir = crate::fleet::scratch_dir("lockerfleet-bench-scale");
    let _ = std::fs::remove_dir_all(&dir);
    let ids = light_ids(opts.devices)?;
    let t = Instant::now();
    crate::fleet::ensure_certs(&dir.join("certs"), &ids)?;
    eprintln!(
        "{} device certificates in {:.1} s",
        ids.len(),
        t.elapsed().as_secs_f64()
    );
    let (mut server, mqtt, http) = start_server(&dir, "127.0.0.1:0", "127.0.0.1:0")?;
    let idle = rss_mb(server.id());

    let started = Instant::now();
    let fleet = LightFleet::connect(
        &ids,
        &dir.join("certs"),
        mqtt,
        opts.connect_concurrency,
        Duration::from_millis(opts.max_backoff_ms),
    )?;
    fleet
        .wait_all_back(started, "connected with their first event stored")
        .await?;
    let connect_time = started.elapsed();
    let ramp_failures = fleet.failures();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss, hwm) = rss_mb(server.id());
    println!(
        "connections: {} mutually authenticated devices connected and their first event stored in {:.1} s",
        ids.len(),
        connect_time.as_secs_f64()
    );
    println!(
        "  fleet-server RSS: idle {:.0} MB; with all connected {rss:.0} MB (peak {hwm:.0} MB), {:.1} KB per device",
        idle.0,
        (rss - idle.0) * 1024.0 / ids.len() as f64
    );
    println!("  devices' failed attempts: {ramp_failures}");

    if opts.storm {
        let _ = server.kill();
        let _ = server.wait();
        // While the server is down every device records events into its outbox.
        fleet.buffer(opts.buffered_events);
        while fleet.any_connected() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "  devices' failed attempts while the server was down: {}",
            fleet.failures()
        );
        let restarted = Instant::now();
        let (s, _, _) = start_server(&dir, &mqtt.to_string(), &http.to_string())?;
        server = s;
        let ready = restarted.elapsed();
        let all_connected = fleet
            .wait_all_back(restarted, "back with their buffered events stored")
            .await?;
        let total = restarted.elapsed();
        println!(
            "reconnect storm: server killed (-9) under {} devices, each buffering {} events; restart → ready {:.1} s, all reconnected {:.1} s, all {} buffered events stored and receipted {:.1} s",
            ids.len(),
            opts.buffered_events,
            ready.as_secs_f64(),
            all_connected.as_secs_f64(),
            ids.len() as u64 * opts.buffered_events,
            total.as_secs_f64()
        );
        let (rss, hwm) = rss_mb(server.id());
        println!("  fleet-server RSS after the storm: {rss:.0} MB (peak {hwm:.0} MB)");
        println!(
            "  devices' failed attempts after the restart: {}",
            fleet.failures()
        );
        print_front_counters(http).await;
    }
    fleet.abort();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

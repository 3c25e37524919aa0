//! The cost of a rollout: a signed release of `--release-mb` rolled out in waves to
//! `--devices` simulated cabinets by a real `fleet-server` process, against the same fleet's
//! background events and remote opens without a rollout, measured side by side in one run.
//!
//! The cabinets are bare TLS MQTT clients, as in the scale benchmark, that also speak the
//! release protocol: they take the offer, fetch the binary chunk by chunk over their own
//! connection (asking again after a silence, as the agent does), check it against the signed
//! SHA-256 and report `downloading` … `succeeded` as durable, receipted events; installing is
//! instant. Remote opens go to a few real agents in this process.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use hdrhistogram::Histogram;
use protocol::message::MAX_CHUNK;
use protocol::release::Manifest;
use protocol::{
    Channel, DeviceId, Event, EventBatch, EventBody, FetchRequest, Receipt, ReleaseProgress,
    Update, UpdateBody,
};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS, Transport};
use serde_json::json;

use crate::api::ApiClient;
use crate::fleet::{Fleet, FleetSpec, cabinet_id, scratch_dir};

#[derive(Debug, Clone, clap::Args)]
pub struct RolloutOptions {
    /// Simulated cabinets the release goes to (they also carry the background events).
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Size of the release binary, MiB (random bytes, signed like a real release).
    #[arg(long, default_value_t = 12)]
    pub release_mb: usize,
    /// The deployment's waves, comma separated (`10,25%,100%`).
    #[arg(long, default_value = "10,25%,100%")]
    pub waves: String,
    /// The server's download budget (`release_bytes_per_sec`; its default is 2 MB/s).
    #[arg(long, default_value_t = 40_000_000)]
    pub release_bytes_per_sec: u64,
    /// Background load: occupancy events per second across the simulated cabinets.
    #[arg(long, default_value_t = 200.0)]
    pub background_events_per_sec: f64,
    /// Real agents (fake lock hardware) that the remote opens go to.
    #[arg(long, default_value_t = 10)]
    pub agents: usize,
    /// Length of the phase without a rollout, seconds.
    #[arg(long, default_value_t = 30)]
    pub baseline_secs: u64,
    /// Give up on the rollout after this long, seconds.
    #[arg(long, default_value_t = 1800)]
    pub timeout_secs: u64,
}

/// What every simulated cabinet adds to: ingest latency, downloads, outcomes.
#[derive(Default)]
struct Totals {
    /// Publish → receipt of background events, µs.
    ingest: Mutex<Option<Histogram<u64>>>,
    bytes: AtomicU64,
    chunks: AtomicU64,
    refetches: AtomicU64,
    succeeded: AtomicUsize,
    bad_hash: AtomicUsize,
}

impl Totals {
    fn record_ingest(&self, us: u64) {
        let mut h = self.ingest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = h.as_mut() {
            let _ = h.record(us);
        }
    }

    /// Starts a fresh ingest histogram; the previous one.
    fn take_ingest(&self) -> Option<Histogram<u64>> {
        let mut h = self.ingest.lock().unwrap_or_else(|e| e.into_inner());
        h.replace(Histogram::new(3).ok()?)
    }
}

/// One cabinet's durable events: recorded, sent, and dropped once receipted.
struct Outbox {
    next: u64,
    pending: VecDeque<(Event, Instant, bool)>,
}

impl Outbox {
    fn record(&mut self, body: EventBody, background: bool) -> Event {
        let ev = Event {
            seq: self.next,
            ts: now_ms(),
            body,
        };
        self.next += 1;
        self.pending
            .push_back((ev.clone(), Instant::now(), background));
        ev
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn encode(events: Vec<Event>) -> Vec<u8> {
    protocol::encode(&EventBatch {
        v: 1,
        base: events.first().map_or(1, |e| e.seq),
        events,
    })
}

/// A simulated cabinet as the background generator sees it.
struct Cab {
    client: AsyncClient,
    events: String,
    outbox: Mutex<Outbox>,
    connected: AtomicBool,
}

impl Cab {
    fn record(&self, body: EventBody, background: bool) {
        let ev = self
            .outbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(body, background);
        if self.connected.load(Ordering::Relaxed) {
            let _ =
                self.client
                    .try_publish(&self.events, QoS::AtLeastOnce, false, encode(vec![ev]));
        }
    }
}

/// The release being fetched.
struct Download {
    manifest: Manifest,
    offset: u64,
    hash: ring::digest::Context,
    asked: Instant,
}

fn fetch(client: &AsyncClient, id: &DeviceId, m: &Manifest, offset: u64) {
    let req = FetchRequest {
        v: 1,
        target: m.target.clone(),
        version: m.version.to_string(),
        offset,
        len: MAX_CHUNK,
    };
    let _ = client.try_publish(
        protocol::topic::device_topic(id, Channel::Fetch),
        QoS::AtLeastOnce,
        false,
        protocol::encode(&req),
    );
}

/// Runs one simulated cabinet until aborted.
fn spawn_cab(
    id: DeviceId,
    certs: &Path,
    mqtt: std::net::SocketAddr,
    gate: Arc<tokio::sync::Semaphore>,
    totals: Arc<Totals>,
) -> anyhow::Result<(Arc<Cab>, tokio::task::JoinHandle<()>)> {
    let tls = device_agent::client_tls(certs, &id)?;
    let mut o = MqttOptions::new(id.as_str(), "localhost", mqtt.port());
    o.set_keep_alive(Duration::from_secs(60))
        .set_max_packet_size(1024 * 1024, 1024 * 1024)
        .set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        ));
    let (client, mut el) = AsyncClient::new(o, 64);
    let cab = Arc::new(Cab {
        client: client.clone(),
        events: protocol::topic::device_topic(&id, Channel::Events),
        outbox: Mutex::new(Outbox {
            next: 1,
            pending: VecDeque::new(),
        }),
        connected: AtomicBool::new(false),
    });
    let me = cab.clone();
    let task = tokio::spawn(async move {
        let mut download: Option<Download> = None;
        let mut done: Option<String> = None;
        let mut permit = None;
        loop {
            if permit.is_none() && !me.connected.load(Ordering::Relaxed) {
                permit = gate.clone().acquire_owned().await.ok();
            }
            let next = tokio::time::timeout(Duration::from_secs(5), el.poll()).await;
            // A chunk that never came is asked for again, as the agent does.
            if let Some(d) = &mut download
                && d.asked.elapsed() > Duration::from_secs(15)
                && me.connected.load(Ordering::Relaxed)
            {
                totals.refetches.fetch_add(1, Ordering::Relaxed);
                d.asked = Instant::now();
                fetch(&client, &id, &d.manifest, d.offset);
            }
            let Ok(next) = next else { continue };
            match next {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    permit.take();
                    me.connected.store(true, Ordering::Relaxed);
                    for c in [Channel::Receipts, Channel::Update] {
                        let _ = client
                            .subscribe(protocol::topic::device_topic(&id, c), QoS::AtLeastOnce)
                            .await;
                    }
                    let unsent: Vec<Event> = me
                        .outbox
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .pending
                        .iter()
                        .map(|(e, _, _)| e.clone())
                        .collect();
                    for chunk in unsent.chunks(50) {
                        let _ = client.try_publish(
                            &me.events,
                            QoS::AtLeastOnce,
                            false,
                            encode(chunk.to_vec()),
                        );
                    }
                    if let Some(d) = &mut download {
                        d.asked = Instant::now();
                        fetch(&client, &id, &d.manifest, d.offset);
                    }
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    if let Ok(r) = protocol::decode::<Receipt>(&p.payload) {
                        let mut ob = me.outbox.lock().unwrap_or_else(|e| e.into_inner());
                        while ob.pending.front().is_some_and(|(e, _, _)| e.seq <= r.up_to) {
                            if let Some((_, at, true)) = ob.pending.pop_front() {
                                totals.record_ingest(at.elapsed().as_micros() as u64);
                            }
                        }
                        continue;
                    }
                    let Ok(u) = protocol::decode::<Update>(&p.payload) else {
                        continue;
                    };
                    match u.body {
                        UpdateBody::Offer { release, .. } => {
                            let Ok(m) = serde_json::from_str::<Manifest>(&release.manifest) else {
                                continue;
                            };
                            let version = m.version.to_string();
                            if done.as_deref() == Some(version.as_str())
                                || download
                                    .as_ref()
                                    .is_some_and(|d| d.manifest.version == m.version)
                            {
                                continue;
                            }
                            me.record(
                                EventBody::Release {
                                    version,
                                    state: ReleaseProgress::Downloading,
                                    reason: None,
                                },
                                false,
                            );
                            fetch(&client, &id, &m, 0);
                            download = Some(Download {
                                manifest: m,
                                offset: 0,
                                hash: ring::digest::Context::new(&ring::digest::SHA256),
                                asked: Instant::now(),
                            });
                        }
                        UpdateBody::Chunk {
                            offset, size, data, ..
                        } => {
                            let Some(d) = &mut download else { continue };
                            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&data)
                            else {
                                continue;
                            };
                            if offset != d.offset {
                                continue;
                            }
                            totals
                                .bytes
                                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                            totals.chunks.fetch_add(1, Ordering::Relaxed);
                            d.hash.update(&bytes);
                            d.offset += bytes.len() as u64;
                            if d.offset < size {
                                d.asked = Instant::now();
                                fetch(&client, &id, &d.manifest, d.offset);
                                continue;
                            }
                            let Some(d) = download.take() else { continue };
                            let version = d.manifest.version.to_string();
                            let sha = hex::encode(d.hash.finish().as_ref());
                            if sha != d.manifest.sha256 {
                                totals.bad_hash.fetch_add(1, Ordering::Relaxed);
                                me.record(
                                    EventBody::Release {
                                        version,
                                        state: ReleaseProgress::Refused,
                                        reason: Some(
                                            "the binary's SHA-256 is not the signed one".into(),
                                        ),
                                    },
                                    false,
                                );
                                continue;
                            }
                            // Staged, installed at once, confirmed: what a cabinet reports.
                            for state in [
                                ReleaseProgress::Downloaded,
                                ReleaseProgress::Installing,
                                ReleaseProgress::Confirming,
                                ReleaseProgress::Succeeded,
                            ] {
                                me.record(
                                    EventBody::Release {
                                        version: version.clone(),
                                        state,
                                        reason: None,
                                    },
                                    false,
                                );
                            }
                            totals.succeeded.fetch_add(1, Ordering::Relaxed);
                            done = Some(version);
                        }
                        UpdateBody::Unavailable { .. } => download = None,
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    me.connected.store(false, Ordering::Relaxed);
                    permit.take();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    Ok((cab, task))
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// What one phase measured.
struct Phase {
    secs: f64,
    opens: Histogram<u64>,
    ingest: Option<Histogram<u64>>,
    cpu_secs: f64,
    rss_max_mb: f64,
    stored_per_sec: f64,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

impl Phase {
    fn print(&self, name: &str) {
        println!(
            "  {name}: {:.0} s; server CPU {:.1} s = {:.0}% of one core, RSS max {:.0} MB",
            self.secs,
            self.cpu_secs,
            100.0 * self.cpu_secs / self.secs.max(0.001),
            self.rss_max_mb
        );
        println!(
            "    remote open (POST → opened): {} opens, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.opens.len(),
            ms(&self.opens, 0.5),
            ms(&self.opens, 0.99),
            self.opens.max() as f64 / 1000.0
        );
        if let Some(h) = &self.ingest {
            println!(
                "    background events (publish → stored → receipt): {:.0}/s stored, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                self.stored_per_sec,
                ms(h, 0.5),
                ms(h, 0.99),
                h.max() as f64 / 1000.0
            );
        }
    }
}

pub async fn rollout(opts: RolloutOptions) -> anyhow::Result<()> {
    let dir = scratch_dir("lockerfleet-bench-rollout");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let spec = FleetSpec {
        cabinets: opts.agents,
        sites: 1,
        activity_per_sec: 0.0,
        jam_rate: 0.0,
        close_after: Duration::from_millis(50),
        poll_interval_ms: 200,
        durability: device_agent::Durability::Normal,
        ..FleetSpec::default()
    };
    let agent_ids: Vec<_> = (0..spec.cabinets).map(|n| cabinet_id(&spec, n)).collect();
    let cab_ids = crate::scale_bench::light_ids(opts.devices)?;
    let certs = dir.join("certs");
    crate::fleet::ensure_certs(&certs, &[agent_ids.clone(), cab_ids.clone()].concat())?;

    // A release key, and a release of random bytes signed with it.
    let keys = dir.join("release-keys");
    certs::new_release_key(&keys, false)?;
    let key = certs::load_release_key(&keys.join(certs::RELEASE_KEY))?;
    let binary = dir.join("release.bin");
    let mut bytes = vec![0u8; opts.release_mb * 1024 * 1024];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), bytes.as_mut_slice());
    std::fs::write(&binary, &bytes)?;
    const TARGET: &str = "x86_64-unknown-linux-gnu";
    let signed = certs::sign_release(
        &key,
        &binary,
        &certs::ReleaseSpec {
            version: "9.0.0".into(),
            target: TARGET.into(),
            min_server_version: "0.1.0".into(),
            notes: "rollout benchmark".into(),
        },
    )?;

    let budget = opts.release_bytes_per_sec.to_string();
    let pubkey = keys.join(certs::RELEASE_PUB).display().to_string();
    let (mut server, mqtt, http) = crate::scale_bench::start_server_with(
        &dir,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[
            "--release-keys",
            &pubkey,
            "--release-bytes-per-sec",
            &budget,
        ],
    )?;
    let pid = server.id();
    let api = ApiClient::new(http, crate::scale_bench::TOKEN)?;
    let (s, r) = api
        .send(reqwest::Method::POST, "/api/v1/releases", &signed)
        .await?;
    anyhow::ensure!(s == 201, "registering the release: {s} {r}");
    api.put_bytes(&format!("/api/v1/releases/{TARGET}/9.0.0/binary"), bytes)
        .await?;

    let agents = Fleet::start(&spec, mqtt, &certs, &dir.join("agents")).await?;
    let totals = Arc::new(Totals::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let mut cabs = Vec::new();
    let mut tasks = Vec::new();
    for id in &cab_ids {
        let (cab, task) = spawn_cab(id.clone(), &certs, mqtt, gate.clone(), totals.clone())?;
        cabs.push(cab);
        tasks.push(task);
    }
    let t = Instant::now();
    // Every cabinet connected with its first event stored: known to the server.
    for c in &cabs {
        c.record(door(1), true);
    }
    loop {
        let connected = cabs
            .iter()
            .filter(|c| c.connected.load(Ordering::Relaxed))
            .count();
        let receipted = cabs
            .iter()
            .filter(|c| {
                c.outbox
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pending
                    .is_empty()
            })
            .count();
        if connected == cabs.len() && receipted == cabs.len() && agents.connected() == opts.agents {
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(300),
            "after 300 s {connected} of {} cabinets connected, {receipted} receipted",
            cabs.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "rollout: {} simulated cabinets connected in {:.1} s; release {} MiB; waves {}; server budget {:.1} MB/s; background {} events/s; opens to {} agents",
        cabs.len(),
        t.elapsed().as_secs_f64(),
        opts.release_mb,
        opts.waves,
        opts.release_bytes_per_sec as f64 / 1e6,
        opts.background_events_per_sec,
        opts.agents
    );

    // Background events, round robin, in 10 ms steps, for both phases.
    let background = {
        let cabs = cabs.clone();
        let rate = opts.background_events_per_sec;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let (mut owed, mut next, mut seq) = (0.0, 0usize, 0u64);
            loop {
                tick.tick().await;
                owed += rate / 100.0;
                while owed >= 1.0 {
                    seq += 1;
                    cabs[next % cabs.len()].record(door(seq), true);
                    next += 1;
                    owed -= 1.0;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Phase 1: no rollout.
    let baseline = phase(
        &api,
        &agent_ids,
        &totals,
        pid,
        &cabs,
        || async { Ok(false) },
        Duration::from_secs(opts.baseline_secs),
    )
    .await?;

    // Phase 2: the rollout, until the deployment completes.
    let devices: Vec<String> = cab_ids.iter().map(ToString::to_string).collect();
    let waves: Vec<&str> = opts.waves.split(',').map(str::trim).collect();
    let bytes0 = metric(&api, "lockerfleet_release_bytes_served").await;
    let (s, created) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/deployments",
            &json!({"target": TARGET, "version": "9.0.0", "devices": devices,
                    "waves": waves, "soak_secs": 0, "deadline_hours": 1}),
        )
        .await?;
    anyhow::ensure!(s == 201, "creating the deployment: {s} {created}");
    let id = created["deployment"]["id"]
        .as_str()
        .context("deployment id")?
        .to_owned();
    let started = Instant::now();
    let wave_marks = Arc::new(Mutex::new(Vec::<(u64, f64)>::new()));
    let final_state = Arc::new(Mutex::new(String::new()));
    let until_done = {
        let (api, id, marks, fin) = (
            api.clone(),
            id.clone(),
            wave_marks.clone(),
            final_state.clone(),
        );
        let timeout = Duration::from_secs(opts.timeout_secs);
        move || {
            let (api, id, marks, fin) = (api.clone(), id.clone(), marks.clone(), fin.clone());
            async move {
                let d = api.get(&format!("/api/v1/deployments/{id}")).await?;
                let wave = d["deployment"]["wave"].as_u64().unwrap_or(0);
                let state = d["deployment"]["state"].as_str().unwrap_or("").to_owned();
                {
                    let mut m = marks.lock().unwrap_or_else(|e| e.into_inner());
                    if m.last().is_none_or(|(w, _)| *w != wave) {
                        m.push((wave, started.elapsed().as_secs_f64()));
                    }
                }
                anyhow::ensure!(
                    started.elapsed() < timeout,
                    "the deployment is still {state} after {} s: {d}",
                    timeout.as_secs()
                );
                let over = matches!(state.as_str(), "completed" | "halted" | "cancelled");
                if over {
                    *fin.lock().unwrap_or_else(|e| e.into_inner()) = state;
                }
                Ok(over)
            }
        }
    };
    let rolling = phase(
        &api,
        &agent_ids,
        &totals,
        pid,
        &cabs,
        until_done,
        Duration::MAX,
    )
    .await?;
    let bytes = metric(&api, "lockerfleet_release_bytes_served").await - bytes0;
    background.abort();
    let (_, hwm) = crate::scale_bench::rss_mb(pid);

    let state = final_state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    println!(
        "  deployment {id}: {state} in {:.1} s; {} of {} cabinets succeeded, {} hash mismatches, {} chunks asked again",
        rolling.secs,
        totals.succeeded.load(Ordering::Relaxed),
        cabs.len(),
        totals.bad_hash.load(Ordering::Relaxed),
        totals.refetches.load(Ordering::Relaxed)
    );
    let marks = wave_marks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut line = String::from("    waves (start → next start):");
    for (i, (wave, at)) in marks.iter().enumerate() {
        let end = marks.get(i + 1).map_or(rolling.secs, |(_, t)| *t);
        line.push_str(&format!(" wave {wave} {:.1} s;", end - at));
    }
    println!("{line}");
    println!(
        "    served {:.0} MB ({:.1} MB/s over the rollout), {} chunks received by the cabinets; server RSS high-water {:.0} MB",
        bytes / 1e6,
        bytes / 1e6 / rolling.secs.max(0.001),
        totals.chunks.load(Ordering::Relaxed),
        hwm
    );
    baseline.print("without a rollout");
    rolling.print("during the rollout");

    for t in tasks {
        t.abort();
    }
    agents.shutdown().await;
    let _ = server.kill();
    let _ = server.wait();
    anyhow::ensure!(
        state == "completed",
        "the deployment ended {state}, not completed"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn door(seq: u64) -> EventBody {
    EventBody::Door {
        box_no: protocol::BoxNo::new((seq % 24 + 1) as u16).expect("box 1..=24"),
        open: seq.is_multiple_of(2),
    }
}

/// A counter from the server's `/metrics` (0 when absent).
async fn metric(api: &ApiClient, name: &str) -> f64 {
    api.metrics()
        .await
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(name) && !l.starts_with('#'))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Remote opens one after another (a new one every 100 ms) until `done` says so or `limit`
/// passes; the server's CPU, RSS and the background's latency over the same time.
async fn phase<F, Fut>(
    api: &ApiClient,
    agents: &[DeviceId],
    totals: &Totals,
    pid: u32,
    cabs: &[Arc<Cab>],
    done: F,
    limit: Duration,
) -> anyhow::Result<Phase>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    // Events the server stored and receipted so far, over every cabinet.
    let stored = |cabs: &[Arc<Cab>]| -> u64 {
        cabs.iter()
            .map(|c| {
                let ob = c.outbox.lock().unwrap_or_else(|e| e.into_inner());
                ob.next - 1 - ob.pending.len() as u64
            })
            .sum()
    };
    let stored0 = stored(cabs);
    totals.take_ingest();
    let cpu0 = cpu_secs(pid);
    let t = Instant::now();
    let mut opens = Histogram::<u64>::new(3)?;
    let mut rss_max: f64 = 0.0;
    let mut i = 0usize;
    let mut last_check = Instant::now();
    loop {
        if t.elapsed() >= limit {
            break;
        }
        if last_check.elapsed() >= Duration::from_millis(500) {
            last_check = Instant::now();
            rss_max = rss_max.max(crate::scale_bench::rss_mb(pid).0);
            if done().await? {
                break;
            }
        }
        let device = agents[i % agents.len()].to_string();
        let box_no = (i / agents.len()) as u16 % 24 + 1;
        i += 1;
        let o = api
            .open_and_wait(&device, box_no, "benchmark", Duration::from_secs(10))
            .await
            .with_context(|| format!("open #{i}"))?;
        anyhow::ensure!(o.status == "opened", "open #{i}: {}", o.status);
        opens.record(o.round_trip.as_micros() as u64)?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(Phase {
        secs,
        opens,
        ingest: totals.take_ingest(),
        cpu_secs: cpu_secs(pid) - cpu0,
        rss_max_mb: rss_max,
        stored_per_sec: (stored(cabs) - stored0) as f64 / secs,
    })
}

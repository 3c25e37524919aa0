//! Benchmark commands (not tests): durable ingest rate, remote-open round trip and the
//! one-time-code path, each on an embedded server in this process with agents over real TLS.
//! Results go to BENCHMARKS.md.

use api_types::items::ReservationRequest;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use device_agent::Durability;
use hdrhistogram::Histogram;

use crate::api::ApiClient;
use crate::fleet::{Fleet, FleetSpec, cabinet_id, scratch_dir};

#[derive(Debug, Clone, clap::Args)]
pub struct IngestOptions {
    /// Agents publishing at once.
    #[arg(long, default_value_t = 50)]
    pub agents: usize,
    /// Events each agent records (beyond its `started` event).
    #[arg(long, default_value_t = 2000)]
    pub events: u64,
    /// Database URL (default: SQLite in a scratch dir). For PostgreSQL, the server on which
    /// the run creates an empty database `lockerfleet_bench_ingest` and drops it afterwards.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Raw publishers instead of agents: each device is a bare MQTT client sending
    /// pre-built batches and waiting for receipts, so the figure is the server's ceiling
    /// and not the agents' outbox cost (all run on the same 2 cores).
    #[arg(long)]
    pub raw: bool,
    /// Events per MQTT message in raw mode.
    #[arg(long, default_value_t = 50)]
    pub batch: u64,
    /// The server's `ingest_writers` (0: its default, one on SQLite and four on PostgreSQL).
    #[arg(long, default_value_t = 0)]
    pub ingest_writers: usize,
    /// Raw mode: afterwards, in the same run, mosquitto (apt) relays messages of the same
    /// size from as many TLS publishers to one subscriber; prints both rates and the ratio.
    #[arg(long, requires = "raw")]
    pub compare_mosquitto: bool,
    /// Event batches each agent keeps unreceipted (agent mode; the agent's `in_flight`).
    #[arg(long, default_value_t = 1, conflicts_with = "raw")]
    pub agent_in_flight: usize,
}

#[derive(Debug, Clone, clap::Args)]
pub struct OpenOptions {
    /// Real agents (fake lock hardware) that the opens go to.
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Connected cabinets in all: beyond `--agents`, bare TLS MQTT devices with an
    /// in-memory outbox that carry the background load (a thousand real agents in one
    /// process are a thousand SQLite threads competing with the server for two cores;
    /// real cabinets each have their own CPU). Default: the agents only.
    #[arg(long)]
    pub devices: Option<usize>,
    /// Remote opens, one after another.
    #[arg(long, default_value_t = 300)]
    pub opens: usize,
    /// Background load: occupancy events per second across the fleet.
    #[arg(long, default_value_t = 0.0)]
    pub background_events_per_sec: f64,
    /// How the agents journal: `normal` (no fsync per commit, what thousands of simulated
    /// agents on one disk want) or `full` (the agent's default on a real cabinet: the
    /// pre-pulse journal write waits for the disk).
    #[arg(long, default_value = "normal", value_parser = durability)]
    pub agent_durability: Durability,
    /// Also write every open as a CSV line (server timestamps in epoch ms, round trip in
    /// µs), to see whether slow ones cluster in time.
    #[arg(long)]
    pub csv: Option<std::path::PathBuf>,
    /// Run the server as its own `fleet-server` process (as deployed) instead of inside
    /// this one: the agents and the load then share the CPU with it only through the OS
    /// scheduler, not through one async runtime's queues.
    #[arg(long)]
    pub server_process: bool,
}

/// `normal` or `full`, as the agent's config spells it.
fn durability(s: &str) -> Result<Durability, String> {
    match s {
        "normal" => Ok(Durability::Normal),
        "full" => Ok(Durability::Full),
        _ => Err(format!("{s:?}: expected normal or full")),
    }
}

async fn server(
    dir: &std::path::Path,
    database_url: Option<String>,
) -> anyhow::Result<fleet_server::RunningServer> {
    server_with(dir, database_url, 0).await
}

/// [`server`] with `ingest_writers` set (0: the server's default).
async fn server_with(
    dir: &std::path::Path,
    database_url: Option<String>,
    ingest_writers: usize,
) -> anyhow::Result<fleet_server::RunningServer> {
    fleet_server::start(fleet_server::ServerConfig {
        ingest_writers,
        data_dir: dir.join("server"),
        certs: Some(dir.join("certs")),
        mqtt_listen: "127.0.0.1:0".parse()?,
        http_listen: "127.0.0.1:0".parse()?,
        database_url,
        // Benchmarks measure what the server can do, not the rates a deployment allows.
        device_publish_per_sec: 0,
        api_requests_per_sec: 0,
        ..Default::default()
    })
    .await
}

/// Certificates, an embedded server (SQLite) and the fleet of `spec`, all under `dir`.
async fn embedded(
    dir: &std::path::Path,
    spec: &FleetSpec,
) -> anyhow::Result<(Vec<protocol::DeviceId>, fleet_server::RunningServer, Fleet)> {
    let ids: Vec<_> = (0..spec.cabinets).map(|n| cabinet_id(spec, n)).collect();
    crate::fleet::ensure_certs(&dir.join("certs"), &ids)?;
    let server = server(dir, None).await?;
    let fleet = Fleet::start(
        spec,
        server.mqtt_addr,
        &dir.join("certs"),
        &dir.join("agents"),
    )
    .await?;
    Ok((ids, server, fleet))
}

/// The database the ingest benchmarks create (and drop) on a PostgreSQL server they are given.
const SCRATCH_DB: &str = "lockerfleet_bench_ingest";

/// Events/s from the agents' first record to the last receipt, every event stored once.
pub async fn ingest(opts: IngestOptions) -> anyhow::Result<()> {
    if opts.raw {
        return ingest_raw(opts).await;
    }
    let dir = scratch_dir("lockerfleet-bench-ingest");
    let _ = std::fs::remove_dir_all(&dir);
    let spec = FleetSpec {
        cabinets: opts.agents,
        sites: 1,
        activity_per_sec: 1_000_000.0,
        activity_limit: Some(opts.events),
        jam_rate: 0.0,
        // Sensors are polled rarely: the load is the simulated activity, not the poll.
        poll_interval_ms: 1_000,
        durability: Durability::Normal,
        in_flight: opts.agent_in_flight,
        ..FleetSpec::default()
    };
    let ids: Vec<_> = (0..spec.cabinets).map(|n| cabinet_id(&spec, n)).collect();
    crate::fleet::ensure_certs(&dir.join("certs"), &ids)?;
    let db = crate::scratch_pg::for_bench(opts.database_url.clone(), SCRATCH_DB).await?;
    let server = server_with(&dir, db, opts.ingest_writers).await?;
    let expected = opts.agents as u64 * (opts.events + 1);
    let started = Instant::now();
    let fleet = Fleet::start(
        &spec,
        server.mqtt_addr,
        &dir.join("certs"),
        &dir.join("agents"),
    )
    .await?;
    let deadline = started + Duration::from_secs(600);
    loop {
        let (seq, receipted) = fleet.sequence_totals();
        if seq >= expected && receipted >= expected {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "ingest did not finish: {receipted}/{expected} receipted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let title = format!(
        "durable ingest: {} agents × {} events = {expected} events",
        opts.agents,
        opts.events + 1
    );
    let result = report_ingest(
        &server,
        title,
        "record → commit → receipt",
        expected,
        elapsed,
    )
    .await;
    fleet.shutdown().await;
    server.shutdown().await;
    crate::scratch_pg::after_bench(opts.database_url.as_deref(), SCRATCH_DB).await?;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Prints an ingest result and checks that exactly the expected events were stored.
async fn report_ingest(
    server: &fleet_server::RunningServer,
    title: String,
    path: &str,
    expected: u64,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let stored = server.store.totals().await?.events as u64;
    println!("{title}");
    println!("  stored (distinct): {stored}; expected {expected}");
    println!(
        "  elapsed: {:.2} s; rate: {:.0} events/s ({path})",
        elapsed.as_secs_f64(),
        expected as f64 / elapsed.as_secs_f64()
    );
    anyhow::ensure!(
        stored == expected,
        "stored {stored} events, expected {expected}"
    );
    Ok(())
}

enum Server {
    Embedded(Box<fleet_server::RunningServer>),
    Process(std::process::Child),
}

/// Remote-open round trip: API call → agent → door opened → status visible over the API.
pub async fn open(opts: OpenOptions) -> anyhow::Result<()> {
    let dir = scratch_dir("lockerfleet-bench-open");
    let _ = std::fs::remove_dir_all(&dir);
    let light = opts.devices.unwrap_or(0).saturating_sub(opts.agents);
    // The background load comes from the light devices when there are any.
    let agent_activity = if light == 0 {
        opts.background_events_per_sec / opts.agents.max(1) as f64
    } else {
        0.0
    };
    let spec = FleetSpec {
        cabinets: opts.agents,
        sites: 5,
        activity_per_sec: agent_activity,
        jam_rate: 0.0,
        close_after: Duration::from_millis(50),
        poll_interval_ms: 200,
        durability: opts.agent_durability,
        ..FleetSpec::default()
    };
    let ids: Vec<_> = (0..spec.cabinets).map(|n| cabinet_id(&spec, n)).collect();
    let light_ids = crate::scale_bench::light_ids(light)?;
    crate::fleet::ensure_certs(
        &dir.join("certs"),
        &[ids.clone(), light_ids.clone()].concat(),
    )?;
    let (server, mqtt, http, token) = if opts.server_process {
        let (child, mqtt, http) =
            crate::scale_bench::start_server(&dir, "127.0.0.1:0", "127.0.0.1:0")?;
        let token = crate::scale_bench::TOKEN.to_owned();
        (Server::Process(child), mqtt, http, token)
    } else {
        let s = server(&dir, None).await?;
        let (mqtt, http, token) = (s.mqtt_addr, s.http_addr, s.admin_token.clone());
        (Server::Embedded(Box::new(s)), mqtt, http, token)
    };
    let fleet = Fleet::start(&spec, mqtt, &dir.join("certs"), &dir.join("agents")).await?;
    let wait_until = Instant::now() + Duration::from_secs(60);
    while fleet.connected() < opts.agents {
        anyhow::ensure!(
            Instant::now() < wait_until,
            "only {} of {} agents connected",
            fleet.connected(),
            opts.agents
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load = if light > 0 {
        let fleet = crate::scale_bench::LightFleet::connect(
            &light_ids,
            &dir.join("certs"),
            mqtt,
            200,
            Duration::from_secs(5),
        )?;
        fleet
            .wait_all_back(Instant::now(), "connected with their first event stored")
            .await?;
        Some(Arc::new(fleet))
    } else {
        None
    };
    let background = load.clone().map(|fleet| {
        let rate = opts.background_events_per_sec;
        tokio::spawn(async move {
            // Round robin over the light devices, in 10 ms steps.
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let (mut owed, mut next) = (0.0, 0);
            loop {
                tick.tick().await;
                owed += rate / 100.0;
                while owed >= 1.0 {
                    fleet.record(next % fleet.devs.len());
                    next += 1;
                    owed -= 1.0;
                }
            }
        })
    });
    // Let every device's first snapshot land so its boxes exist.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let load_before = load.as_ref().map(|f| f.totals());
    let load_started = Instant::now();
    let api = ApiClient::new(http, &token)?;
    let mut round_trip = Histogram::<u64>::new(3)?;
    let mut server_side = Histogram::<u64>::new(3)?;
    let mut not_opened = 0;
    // Where the time goes, from the server's own timestamps (ms).
    let mut steps: Vec<(&str, Histogram<u64>)> =
        ["created → sent", "sent → delivered", "delivered → finished"]
            .into_iter()
            .map(|n| Ok::<_, hdrhistogram::CreationError>((n, Histogram::<u64>::new(3)?)))
            .collect::<Result<_, _>>()?;
    let mut csv = match &opts.csv {
        Some(path) => {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            );
            std::io::Write::write_all(
                &mut f,
                b"created_at,sent_at,delivered_at,finished_at,round_trip_us\n",
            )?;
            Some(f)
        }
        None => None,
    };
    for i in 0..opts.opens {
        let device = ids[i % ids.len()].to_string();
        let box_no = (i / ids.len()) as u16 % spec.boxes + 1;
        let o = api
            .open_and_wait(&device, box_no, "benchmark", Duration::from_secs(10))
            .await
            .with_context(|| format!("open #{i}"))?;
        if o.status != "opened" {
            not_opened += 1;
        }
        round_trip.record(o.round_trip.as_micros() as u64)?;
        if let Some(ms) = o.server_latency_ms {
            server_side.record(ms.max(0) as u64)?;
        }
        let at = |k: &str| o.command[k].as_i64();
        if let Some(csv) = &mut csv {
            use std::io::Write;
            let f = |k: &str| at(k).map(|v| v.to_string()).unwrap_or_default();
            writeln!(
                csv,
                "{},{},{},{},{}",
                f("created_at"),
                f("sent_at"),
                f("delivered_at"),
                f("finished_at"),
                o.round_trip.as_micros()
            )?;
        }
        let marks = [
            at("created_at"),
            at("sent_at"),
            at("delivered_at"),
            at("finished_at"),
        ];
        for (i, (_, h)) in steps.iter_mut().enumerate() {
            if let (Some(a), Some(b)) = (marks[i], marks[i + 1]) {
                h.record((b - a).max(0) as u64)?;
            }
        }
        // Let the door close again before the same box comes round.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let load_seconds = load_started.elapsed().as_secs_f64();
    if let Some(b) = background {
        b.abort();
    }
    println!(
        "remote open: {} opens over {} agents ({} connected cabinets, agents journal with durability={}), background {} events/s, server {}",
        opts.opens,
        opts.agents,
        opts.agents + light,
        format!("{:?}", opts.agent_durability).to_lowercase(),
        opts.background_events_per_sec,
        if opts.server_process {
            "in its own process"
        } else {
            "in this process"
        }
    );
    println!(
        "  round trip seen by the API client (POST → final status, long poll): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        round_trip.value_at_quantile(0.5) as f64 / 1000.0,
        round_trip.value_at_quantile(0.99) as f64 / 1000.0,
        round_trip.max() as f64 / 1000.0
    );
    println!(
        "  server-recorded (command created → door outcome stored): p50 {} ms, p99 {} ms",
        server_side.value_at_quantile(0.5),
        server_side.value_at_quantile(0.99)
    );
    for (name, h) in &steps {
        println!(
            "    {name}: p50 {} ms, p99 {} ms",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99)
        );
    }
    println!("  outcomes other than opened: {not_opened}");
    if let (Some(fleet), Some((recorded0, stored0))) = (&load, load_before) {
        // What the background really was: events the server stored and receipted meanwhile.
        let (recorded, stored) = fleet.totals();
        println!(
            "  background from {light} devices: {:.0} events/s recorded, {:.0} events/s stored and receipted",
            (recorded - recorded0) as f64 / load_seconds,
            (stored - stored0) as f64 / load_seconds
        );
    }
    if let Some(fleet) = load {
        fleet.abort();
    }
    fleet.shutdown().await;
    match server {
        Server::Embedded(s) => s.shutdown().await,
        Server::Process(mut child) => {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The server's ingest ceiling: bare TLS MQTT publishers with pre-built batches, a window of
/// 20 messages each, done when every device's receipt covers all its events.
async fn ingest_raw(opts: IngestOptions) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use protocol::{Channel, EventBatch, Receipt};
    use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS, Transport};

    anyhow::ensure!(
        opts.batch >= 1 && opts.batch <= 1000,
        "--batch must be 1..=1000"
    );
    let dir = scratch_dir("lockerfleet-bench-raw");
    let _ = std::fs::remove_dir_all(&dir);
    let spec = FleetSpec {
        cabinets: opts.agents,
        sites: 1,
        ..FleetSpec::default()
    };
    let ids: Vec<_> = (0..spec.cabinets).map(|n| cabinet_id(&spec, n)).collect();
    let certs_dir = dir.join("certs");
    crate::fleet::ensure_certs(&certs_dir, &ids)?;
    let db = crate::scratch_pg::for_bench(opts.database_url.clone(), SCRATCH_DB).await?;
    let server = server_with(&dir, db, opts.ingest_writers).await?;
    let total = opts.events;
    let mut tasks = Vec::new();
    let started = Instant::now();
    for id in ids.clone() {
        let tls = device_agent::client_tls(&certs_dir, &id)?;
        let mut o = MqttOptions::new(id.as_str(), "localhost", server.mqtt_addr.port());
        o.set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(1 << 20, 1 << 20)
            .set_transport(Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls),
            ));
        let (client, mut el) = AsyncClient::new(o, 64);
        let mut net = el.network_options();
        net.set_tcp_nodelay(true);
        el.set_network_options(net);
        let acked = Arc::new(AtomicU64::new(0));
        let notify = Arc::new(tokio::sync::Notify::new());
        let (a, n) = (acked.clone(), notify.clone());
        let receipts_topic = protocol::topic::device_topic(&id, Channel::Receipts);
        let sub = client.clone();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        let _ = sub.try_subscribe(receipts_topic.clone(), QoS::AtLeastOnce);
                        n.notify_one();
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                        if let Ok(r) = protocol::decode::<Receipt>(&p.payload) {
                            a.fetch_max(r.up_to, Ordering::SeqCst);
                            n.notify_one();
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let topic = protocol::topic::device_topic(&id, Channel::Events);
        let batch = opts.batch;
        tasks.push(tokio::spawn(async move {
            notify.notified().await; // connected and subscribing
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut sent = 0u64;
            let window = batch * 20;
            while acked.load(Ordering::SeqCst) < total {
                while sent < total && sent - acked.load(Ordering::SeqCst) < window {
                    let events = door_events(sent + 1..=(sent + batch).min(total));
                    let last = events.last().map(|e| e.seq).unwrap_or(sent);
                    let msg = EventBatch {
                        v: 1,
                        base: acked.load(Ordering::SeqCst) + 1,
                        events,
                    };
                    if client
                        .publish(
                            topic.clone(),
                            QoS::AtLeastOnce,
                            false,
                            protocol::encode(&msg),
                        )
                        .await
                        .is_err()
                    {
                        return;
                    }
                    sent = last;
                }
                let before = acked.load(Ordering::SeqCst);
                let _ = tokio::time::timeout(Duration::from_secs(3), notify.notified()).await;
                let now = acked.load(Ordering::SeqCst);
                if now == before && now < sent {
                    // No receipt progress for 3 s: resend from the mark, as agents do.
                    sent = now;
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed();
    let expected = total * opts.agents as u64;
    let title = format!(
        "durable ingest (raw publishers): {} devices × {total} events in batches of {}",
        opts.agents, opts.batch
    );
    let result = report_ingest(
        &server,
        title,
        "publish → commit → receipt",
        expected,
        elapsed,
    )
    .await;
    server.shutdown().await;
    crate::scratch_pg::after_bench(opts.database_url.as_deref(), SCRATCH_DB).await?;
    let result = match (result, opts.compare_mosquitto) {
        (Ok(()), true) => {
            let ours = expected as f64 / opts.batch as f64 / elapsed.as_secs_f64();
            let messages = total / opts.batch;
            let events = door_events(1..=opts.batch);
            let payload = protocol::encode(&EventBatch {
                v: 1,
                base: 1,
                events,
            });
            let size = payload.len();
            crate::relay_bench::mosquitto_relay(&dir.join("mosquitto"), &certs_dir, &ids, messages, payload)
                .await
                .map(|t| {
                    let relay = (messages * ids.len() as u64) as f64 / t.as_secs_f64();
                    println!(
                        "baseline: mosquitto relaying {} QoS 1 messages of {size} B from {} TLS publishers to one subscriber: {:.2} s; {relay:.0} messages/s",
                        messages * ids.len() as u64,
                        ids.len(),
                        t.as_secs_f64(),
                    );
                    println!(
                        "  ratio: LockerFleet stores and receipts {ours:.0} messages/s = {:.2}× mosquitto's relay rate",
                        ours / relay
                    );
                })
        }
        (r, _) => r,
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Door events with sequence numbers `seqs`, as the raw publishers send them.
pub(crate) fn door_events(seqs: std::ops::RangeInclusive<u64>) -> Vec<protocol::Event> {
    seqs.map(|seq| protocol::Event {
        seq,
        ts: seq as i64,
        body: protocol::EventBody::Door {
            box_no: protocol::BoxNo::new((seq % 24 + 1) as u16).expect("box 1..=24"),
            open: seq % 2 == 0,
        },
    })
    .collect()
}

#[derive(Debug, Clone, clap::Args)]
pub struct CodesOptions {
    /// Connected cabinets.
    #[arg(long, default_value_t = 10)]
    pub agents: usize,
    /// Boxes per cabinet.
    #[arg(long, default_value_t = 100)]
    pub boxes: u16,
    /// Reservations left waiting on every cabinet first, so each code is checked against
    /// this many grants and every code set carries them.
    #[arg(long, default_value_t = 50)]
    pub pending: usize,
    /// Measured reservations, each used at its cabinet's keypad.
    #[arg(long, default_value_t = 300)]
    pub codes: usize,
}

/// The service path with codes: reservation over HTTP, until the code verifies on the
/// cabinet (grant set delivered), keypad entry to open door, and until the server shows the
/// item in its box.
pub async fn codes(opts: CodesOptions) -> anyhow::Result<()> {
    use reqwest::Method;

    anyhow::ensure!(
        opts.pending + opts.codes.div_ceil(opts.agents.max(1)) <= usize::from(opts.boxes),
        "--pending plus the measured codes per cabinet must fit in --boxes"
    );
    let dir = scratch_dir("lockerfleet-bench-codes");
    let _ = std::fs::remove_dir_all(&dir);
    let spec = FleetSpec {
        cabinets: opts.agents,
        sites: 1,
        boxes: opts.boxes,
        activity_per_sec: 0.0,
        jam_rate: 0.0,
        close_after: Duration::from_millis(20),
        poll_interval_ms: 200,
        durability: Durability::Normal,
        ..FleetSpec::default()
    };
    let (ids, server, fleet) = embedded(&dir, &spec).await?;
    let admin = ApiClient::new(server.http_addr, &server.admin_token)?;
    let platform = crate::day::configure(&admin, &crate::layout::Layout::of(&spec)).await?;
    let reserve = |device: String| {
        let platform = platform.clone();
        async move {
            let body = ReservationRequest {
                flow: "dropoff".into(),
                case_number: "BENCH-1".into(),
                phone: "13800000000".into(),
                device_id: Some(device),
                ..ReservationRequest::default()
            };
            let (s, r) = platform
                .send(Method::POST, "/api/v1/reservations", &body)
                .await?;
            anyhow::ensure!(s == 201, "reservation refused: {s} {r}");
            Ok::<_, anyhow::Error>(r)
        }
    };
    for id in &ids {
        for _ in 0..opts.pending {
            reserve(id.to_string()).await?;
        }
    }
    let new = || Histogram::<u64>::new(3);
    let (mut h_reserve, mut h_usable, mut h_keypad, mut h_stored) =
        (new()?, new()?, new()?, new()?);
    let deadline = Duration::from_secs(30);
    for i in 0..opts.codes {
        let cab = &fleet.cabinets[i % fleet.cabinets.len()];
        let t0 = Instant::now();
        let r = reserve(cab.agent.id.to_string()).await?;
        h_reserve.record(t0.elapsed().as_micros() as u64)?;
        let code = r["code"].as_str().context("code")?.to_owned();
        let item = r["reservation_id"].as_str().context("id")?.to_owned();
        // Usable once the cabinet's own code book verifies it (no side effects).
        while cab
            .agent
            .codes
            .verify(&code, cab.agent.clock.now_ms())
            .is_err()
        {
            anyhow::ensure!(t0.elapsed() < deadline, "code never reached the cabinet");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        h_usable.record(t0.elapsed().as_micros() as u64)?;
        let t1 = Instant::now();
        let outcome = cab.keys.code(&code).await.context("agent stopped")?;
        h_keypad.record(t1.elapsed().as_micros() as u64)?;
        anyhow::ensure!(
            matches!(outcome, device_agent::EntryOutcome::Opened { .. }),
            "code {i} refused: {outcome:?}"
        );
        loop {
            let v = platform.get(&format!("/api/v1/items/{item}")).await?;
            if v["item"]["state"] == "in_box" {
                break;
            }
            anyhow::ensure!(t1.elapsed() < deadline, "use never reached the server");
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        h_stored.record(t1.elapsed().as_micros() as u64)?;
    }
    let sync_bytes = {
        let m = server
            .store
            .code_material(&ids[0])
            .await?
            .context("cabinet material")?;
        protocol::encode(&protocol::CodeSync {
            v: 1,
            version: 1,
            key: "0".repeat(64),
            grants: m.grants,
            staff: m.staff,
            report_since: None,
        })
        .len()
    };
    println!(
        "codes: {} cabinets × {} boxes, {} reservations pending on each, {} measured codes",
        opts.agents, opts.boxes, opts.pending, opts.codes
    );
    for (name, h) in [
        ("reservation (POST → 201 with code)", &h_reserve),
        ("reservation → code verifies on the cabinet", &h_usable),
        ("keypad entry → door open (verify, spend, pulse)", &h_keypad),
        ("keypad entry → item in_box in the API", &h_stored),
    ] {
        println!(
            "  {name}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0
        );
    }
    println!("  code set of one cabinet at the end: {sync_bytes} bytes");
    fleet.shutdown().await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

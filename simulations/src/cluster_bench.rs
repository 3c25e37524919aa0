//! `fleet-sim bench cluster`: the RabbitMQ broker tier (ADR 0024) against the single embedded
//! server in one run — durable ingest and the remote-open round trip through each, then, on
//! the cluster, a broker node killed (kill -9) and the time until every cabinet is back, has
//! opened a box on command and has its new events stored.
//!
//! Both topologies store in SQLite with one server process, so what differs is the broker
//! path: the embedded front hands messages to the server in-process; the cluster takes them
//! through an MQTT node, a consistent-hash exchange and a replicated quorum queue to the
//! replica over AMQP. Everything shares this machine's cores: three Erlang VMs, the server,
//! the agents and this client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::api::ApiClient;
use crate::fleet::{Fleet, FleetSpec, cabinet_id, scratch_dir};
use crate::lab::{RabbitCluster, RabbitSpec};

#[derive(clap::Args, Debug)]
pub struct ClusterOptions {
    /// Real agents (fake locks), the same fleet on both topologies.
    #[arg(long, default_value_t = 20)]
    pub agents: usize,
    /// Events each agent records as fast as it can for the ingest figure.
    #[arg(long, default_value_t = 2_000)]
    pub events: u64,
    /// Remote opens, one after another, on a quiet fleet.
    #[arg(long, default_value_t = 200)]
    pub opens: usize,
    /// RabbitMQ nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Bare TLS devices connected across the nodes after the ingest and open figures, for
    /// what each node holds per connection (0: skip).
    #[arg(long, default_value_t = 0)]
    pub connections: usize,
    /// The cluster script of this checkout.
    #[arg(long, default_value = "deploy/cluster/rabbitmq.sh")]
    pub script: PathBuf,
}

/// What one topology measured.
struct Figures {
    ingest_per_sec: f64,
    open_p50_ms: f64,
    open_p99_ms: f64,
}

fn spec(opts: &ClusterOptions, brokers: Option<String>) -> FleetSpec {
    FleetSpec {
        cabinets: opts.agents,
        sites: 1,
        boxes: 24,
        activity_per_sec: 1_000_000.0,
        activity_limit: Some(opts.events),
        jam_rate: 0.0,
        close_after: Duration::from_millis(50),
        poll_interval_ms: 200,
        brokers,
        ..FleetSpec::default()
    }
}

/// Connects `ids` as bare TLS devices spread over the nodes (each node's share on its own
/// listener) and waits until each is connected and its first event receipted; returns how
/// long that took and, per node, its VM's growth in MB and the devices it took.
async fn per_connection(
    rabbit: &RabbitCluster,
    certs: &std::path::Path,
    ids: &[protocol::DeviceId],
) -> anyhow::Result<(Duration, Vec<(f64, usize)>)> {
    let pids = rabbit.node_pids();
    let rss = |pids: &[Option<u32>]| -> Vec<f64> {
        pids.iter()
            .map(|p| p.map_or(0.0, |p| crate::scale_bench::rss_mb(p).0))
            .collect()
    };
    let before = rss(&pids);
    let share = ids.len().div_ceil(rabbit.mqtt.len());
    let started = Instant::now();
    let mut fleets = Vec::new();
    for (chunk, node) in ids.chunks(share).zip(&rabbit.mqtt) {
        fleets.push((
            chunk.len(),
            crate::scale_bench::LightFleet::connect(
                chunk,
                certs,
                *node,
                50,
                Duration::from_secs(5),
            )?,
        ));
    }
    for (_, f) in &fleets {
        f.wait_all_back(started, "connected and receipted").await?;
    }
    let took = started.elapsed();
    // Settled: queues made, first messages routed and acknowledged.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = rss(&pids);
    for (_, f) in &fleets {
        f.abort();
    }
    let growth = before
        .iter()
        .zip(&after)
        .zip(fleets.iter().map(|(n, _)| *n))
        .map(|((b, a), n)| (a - b, n))
        .collect();
    Ok((took, growth))
}

/// Ingest until every event is receipted, then remote opens one after another.
async fn measure(
    opts: &ClusterOptions,
    spec: &FleetSpec,
    fleet: &Fleet,
    api: &ApiClient,
    started: Instant,
) -> anyhow::Result<Figures> {
    let expected = opts.agents as u64 * (opts.events + 1);
    loop {
        let (seq, receipted) = fleet.sequence_totals();
        if seq >= expected && receipted >= expected {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "ingest did not finish: {receipted}/{expected} receipted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ingest_per_sec = expected as f64 / started.elapsed().as_secs_f64();
    let mut round_trip = Histogram::<u64>::new(3)?;
    for i in 0..opts.opens {
        let device = cabinet_id(spec, i % opts.agents).to_string();
        let box_no = (i / opts.agents) as u16 % spec.boxes + 1;
        let o = api
            .open_and_wait(&device, box_no, "benchmark", Duration::from_secs(10))
            .await
            .with_context(|| format!("open #{i}"))?;
        anyhow::ensure!(o.status == "opened", "open #{i}: {}", o.status);
        round_trip.record(o.round_trip.as_micros() as u64)?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(Figures {
        ingest_per_sec,
        open_p50_ms: round_trip.value_at_quantile(0.5) as f64 / 1000.0,
        open_p99_ms: round_trip.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

/// After `kill`: seconds until every cabinet is connected again, and until every cabinet
/// opened a box on command and had the door's events stored (receipted).
async fn recovery(
    spec: &FleetSpec,
    fleet: &Fleet,
    api: &ApiClient,
    kill: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64)> {
    let before: Vec<u64> = fleet
        .cabinets
        .iter()
        .map(|c| c.agent.stats.receipted.load(Ordering::Relaxed))
        .collect();
    let killed = Instant::now();
    kill()?;
    // Let the dead node's sessions notice before counting who is connected.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while fleet.connected() < fleet.cabinets.len() {
        anyhow::ensure!(
            killed.elapsed() < Duration::from_secs(120),
            "only {} of {} cabinets back after 120 s",
            fleet.connected(),
            fleet.cabinets.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connected = killed.elapsed().as_secs_f64();
    let mut opens = tokio::task::JoinSet::new();
    for i in 0..fleet.cabinets.len() {
        let device = cabinet_id(spec, i).to_string();
        let (api, box_no) = (api.clone(), spec.boxes);
        opens.spawn(async move {
            // The last box: the open phase's rotation leaves it closed in short runs.
            loop {
                let tried = api
                    .open_and_wait(
                        &device,
                        box_no,
                        "after a node died",
                        Duration::from_secs(10),
                    )
                    .await;
                match tried {
                    Ok(o) if o.status == "opened" => return Ok::<_, anyhow::Error>(()),
                    _ if killed.elapsed() < Duration::from_secs(120) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok(o) => anyhow::bail!("{device}: {}", o.status),
                    Err(e) => return Err(e.context(device)),
                }
            }
        });
    }
    while let Some(done) = opens.join_next().await {
        done??;
    }
    loop {
        let all = fleet
            .cabinets
            .iter()
            .zip(&before)
            .all(|(c, b)| c.agent.stats.receipted.load(Ordering::Relaxed) > *b);
        if all {
            break;
        }
        anyhow::ensure!(
            killed.elapsed() < Duration::from_secs(120),
            "not every cabinet's new events were stored within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((connected, killed.elapsed().as_secs_f64()))
}

pub async fn cluster(opts: ClusterOptions) -> anyhow::Result<()> {
    let base = scratch_dir("lockerfleet-bench-cluster");
    let _ = std::fs::remove_dir_all(&base);
    let ids: Vec<_> = (0..opts.agents)
        .map(|n| cabinet_id(&spec(&opts, None), n))
        .collect();
    let mut rows = Vec::new();

    // The single embedded server.
    {
        let dir = base.join("embedded");
        crate::fleet::ensure_certs(&dir.join("certs"), &ids)?;
        let (mut child, mqtt, http) =
            crate::scale_bench::start_server(&dir, "127.0.0.1:0", "127.0.0.1:0")?;
        let spec = spec(&opts, None);
        let api = ApiClient::new(http, crate::scale_bench::TOKEN)?;
        let started = Instant::now();
        let fleet = Fleet::start(&spec, mqtt, &dir.join("certs"), &dir.join("agents")).await?;
        let figures = measure(&opts, &spec, &fleet, &api, started).await;
        fleet.shutdown().await;
        let _ = child.kill();
        let _ = child.wait();
        rows.push(("embedded broker, one server", figures?));
    }

    // The RabbitMQ cluster and one replica.
    let dir = base.join("cluster");
    let certs = dir.join("certs");
    let light = crate::scale_bench::light_ids(opts.connections)?;
    crate::fleet::ensure_certs(
        &certs,
        &[ids.clone(), vec![certs::server_client_id()], light.clone()].concat(),
    )?;
    let fleet_server = std::env::current_exe()?
        .parent()
        .map(|d| d.join("fleet-server"))
        .context("no folder of fleet-sim")?;
    anyhow::ensure!(
        fleet_server.exists(),
        "{} is not built (cargo build --release)",
        fleet_server.display()
    );
    let rabbit = RabbitCluster::start(&RabbitSpec {
        script: &opts.script,
        dir: &dir.join("rabbitmq"),
        certs: &certs,
        nodes: opts.nodes,
        fleet_server: &fleet_server,
        auth_log: &|_| Ok(Stdio::null()),
        name: &format!("bench{}", std::process::id()),
    })?;
    let url = rabbit.amqps_url();
    let (mut child, _, http) = crate::scale_bench::start_server_with(
        &dir,
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--external-broker", &url],
    )?;
    let spec = spec(&opts, Some(rabbit.agent_servers()));
    let api = ApiClient::new(http, crate::scale_bench::TOKEN)?;
    // The replica's consumers are up before the fleet starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let unused: SocketAddr = "127.0.0.1:9".parse()?;
    let fleet = Fleet::start(&spec, unused, &certs, &dir.join("agents")).await?;
    let figures = measure(&opts, &spec, &fleet, &api, started).await;
    let memory = match (&figures, light.is_empty()) {
        (Ok(_), false) => Some(per_connection(&rabbit, &certs, &light).await),
        _ => None,
    };
    let recovered = match &figures {
        Ok(_) => Some(recovery(&spec, &fleet, &api, || rabbit.kill9(1)).await),
        Err(_) => None,
    };
    fleet.shutdown().await;
    let _ = child.kill();
    let _ = child.wait();
    drop(rabbit);
    rows.push(("RabbitMQ cluster, one replica", figures?));

    println!(
        "broker tier: {} agents × {} events, then {} remote opens one after another; SQLite, one server process; {} RabbitMQ nodes on the same machine",
        opts.agents,
        opts.events + 1,
        opts.opens,
        opts.nodes
    );
    println!("  | topology | durable ingest, events/s | remote open p50 | p99 |");
    for (name, f) in &rows {
        println!(
            "  | {name} | {:.0} | {:.1} ms | {:.1} ms |",
            f.ingest_per_sec, f.open_p50_ms, f.open_p99_ms
        );
    }
    let (e, c) = (&rows[0].1, &rows[1].1);
    println!(
        "  cluster / embedded: ingest {:.2}×, open p50 {:.1}×, p99 {:.1}×",
        c.ingest_per_sec / e.ingest_per_sec,
        c.open_p50_ms / e.open_p50_ms,
        c.open_p99_ms / e.open_p99_ms
    );
    if let Some(m) = memory {
        let (took, growth) = m?;
        let total: f64 = growth.iter().map(|(mb, _)| mb).sum();
        println!(
            "  {} bare TLS devices connected across the nodes (each receipted once) in {:.1} s; memory (VmRSS) grown per node: {}; {:.1} KB per connection over the cluster",
            light.len(),
            took.as_secs_f64(),
            growth
                .iter()
                .enumerate()
                .map(|(i, (mb, n))| format!("node {} +{mb:.0} MB for {n} of them", i + 1))
                .collect::<Vec<_>>()
                .join(", "),
            total * 1024.0 / light.len() as f64
        );
    }
    if let Some(r) = recovered {
        let (back, served) = r?;
        println!(
            "  broker node 1 killed (kill -9): every cabinet connected again after {back:.2} s; every cabinet opened a box on command and had its new events stored after {served:.2} s"
        );
    }
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}

//! `fleet-sim bench heartbeats`: what heartbeats cost the server with routine ones written
//! together (`heartbeat_flush_secs`, capacity model step 1) against each written when heard,
//! in one run: the same devices send the same heartbeats at the same rate to a `fleet-server`
//! process configured each way, with events flowing beside them; the server's CPU time, the
//! rows it wrote and the events it stored meanwhile are compared.

use std::time::{Duration, Instant};

use crate::fleet::scratch_dir;
use crate::scale_bench::{LightFleet, light_ids, start_server_with};

#[derive(clap::Args, Debug)]
pub struct HeartbeatOptions {
    /// Connected devices (bare TLS MQTT clients).
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// Heartbeats per second across them; default what the fleet sends at a 30 s interval
    /// (devices / 30; 1,000,000 cabinets send 33,000). Faster than that, each device's later
    /// heartbeat replaces its earlier one before a flush.
    #[arg(long)]
    pub per_sec: Option<f64>,
    /// Events per second beside them, so the writer also has its real work.
    #[arg(long, default_value_t = 200.0)]
    pub events_per_sec: f64,
    /// Seconds of load for each setting.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Store in PostgreSQL at this URL (an empty database) instead of SQLite.
    #[arg(long)]
    pub database_url: Option<String>,
}

/// Longer than a flush (10 s), for both settings.
const SETTLE_SECS: u64 = 12;

fn per_sec(opts: &HeartbeatOptions) -> f64 {
    opts.per_sec.unwrap_or(opts.devices as f64 / 30.0)
}

struct Run {
    cpu_secs: f64,
    received: f64,
    written: f64,
    transactions: f64,
    stored: f64,
    offered: usize,
}

async fn metric(http: std::net::SocketAddr, name: &str) -> f64 {
    let Ok(res) = reqwest::get(format!("http://{http}/metrics")).await else {
        return 0.0;
    };
    let text = res.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

async fn run(opts: &HeartbeatOptions, flush_secs: u64, tag: &str) -> anyhow::Result<Run> {
    let per_sec = per_sec(opts);
    let dir = scratch_dir(&format!("lockerfleet-bench-heartbeats-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let ids = light_ids(opts.devices)?;
    crate::fleet::ensure_certs(&dir.join("certs"), &ids)?;
    let config = dir.join("server.toml");
    std::fs::write(&config, format!("heartbeat_flush_secs = {flush_secs}\n"))?;
    let config = config.display().to_string();
    let mut extra = vec!["--config", config.as_str()];
    if let Some(url) = &opts.database_url {
        extra.extend(["--database-url", url.as_str()]);
    }
    let (mut child, mqtt, http) = start_server_with(&dir, "127.0.0.1:0", "127.0.0.1:0", &extra)?;
    let fleet = LightFleet::connect(&ids, &dir.join("certs"), mqtt, 200, Duration::from_secs(5))?;
    fleet
        .wait_all_back(Instant::now(), "connected with their first event stored")
        .await?;
    // Every device's first heartbeat is news (written at once) in both settings; the
    // comparison is of the steady state after it.
    for i in 0..fleet.devs.len() {
        fleet.heartbeat(i, 0);
    }
    tokio::time::sleep(Duration::from_secs(SETTLE_SECS)).await;
    let stored_before = metric(http, "lockerfleet_events_stored_total").await;
    let batches_before = metric(http, "lockerfleet_ingest_batches_total").await;
    let (received0, written0) = (
        metric(http, "lockerfleet_heartbeats_received_total").await,
        metric(http, "lockerfleet_heartbeats_written_total").await,
    );
    let cpu0 = crate::locust_bench::cpu_seconds(child.id());
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut owed_hb, mut owed_ev, mut next_hb, mut next_ev) = (0.0, 0.0, 0usize, 0usize);
    let mut uptime = 0u64;
    while started.elapsed() < Duration::from_secs(opts.seconds) {
        tick.tick().await;
        owed_hb += per_sec / 100.0;
        owed_ev += opts.events_per_sec / 100.0;
        while owed_hb >= 1.0 {
            if next_hb % fleet.devs.len() == 0 {
                uptime += 1;
            }
            fleet.heartbeat(next_hb % fleet.devs.len(), uptime);
            next_hb += 1;
            owed_hb -= 1.0;
        }
        while owed_ev >= 1.0 {
            fleet.record(next_ev % fleet.devs.len());
            next_ev += 1;
            owed_ev -= 1.0;
        }
    }
    // Let the last flush and the last events land before reading the counters: the same
    // wait for both settings, so both CPU windows are as long.
    tokio::time::sleep(Duration::from_secs(SETTLE_SECS)).await;
    let cpu = crate::locust_bench::cpu_seconds(child.id()) - cpu0;
    let transactions = metric(http, "lockerfleet_ingest_batches_total").await - batches_before;
    let received = metric(http, "lockerfleet_heartbeats_received_total").await - received0;
    let written = metric(http, "lockerfleet_heartbeats_written_total").await - written0;
    let stored = metric(http, "lockerfleet_events_stored_total").await - stored_before;
    fleet.abort();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(received > 0.0, "the server heard no heartbeats");
    Ok(Run {
        cpu_secs: cpu,
        received,
        written,
        transactions,
        stored,
        offered: next_ev,
    })
}

pub async fn heartbeats(opts: HeartbeatOptions) -> anyhow::Result<()> {
    let each = run(&opts, 0, "each").await?;
    let together = run(&opts, 10, "together").await?;
    println!(
        "heartbeats: {} devices, {:.0} heartbeats/s and {:.0} events/s for {} s per setting, {}",
        opts.devices,
        per_sec(&opts),
        opts.events_per_sec,
        opts.seconds,
        if opts.database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!(
        "  | heartbeats | heard | rows written | writer transactions | server CPU (load + {SETTLE_SECS} s) | events stored of offered |"
    );
    for (name, r) in [
        ("each written when heard (heartbeat_flush_secs = 0)", &each),
        ("routine ones together every 10 s (default)", &together),
    ] {
        println!(
            "  | {name} | {:.0} | {:.0} | {:.0} | {:.2} s | {:.0} of {} |",
            r.received, r.written, r.transactions, r.cpu_secs, r.stored, r.offered
        );
    }
    println!(
        "  together / each: writer transactions {:.2}×, server CPU {:.2}×",
        together.transactions / each.transactions.max(1.0),
        together.cpu_secs / each.cpu_secs.max(0.01)
    );
    Ok(())
}

//! `fleet-sim bench retention`: what a simulated year leaves in the database with retention
//! and without, per cabinet, and what the first retention pass over a year of rows (the day
//! retention is turned on, the heaviest pass there is) costs remote opens against opens with
//! no pass running, on one server process.
//!
//! The year is written at its own dates: items, codes, SMS, staff opens and usage rollups
//! through `fleet_server::backfill` (as the demo's history), then each day's device events
//! (door and occupancy changes for each use, at the rate the items imply), presence changes
//! and finished remote commands through the store. With retention, a pass runs at the end of
//! each simulated week, as the server's hourly passes would have by then.

use std::time::{Duration, Instant};

use anyhow::Context;
use fleet_server::store::retention::{PassReport, RetentionPolicy};
use fleet_server::store::{IngestBatch, NewCommand, Store};
use hdrhistogram::Histogram;
use protocol::{BoxNo, CommandId, CommandStatus, DeviceId, Event, EventBody};

use crate::api::ApiClient;
use crate::fleet::{Fleet, FleetSpec, cabinet_id, scratch_dir};
use crate::layout::Layout;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, clap::Args)]
pub struct RetentionOptions {
    /// Simulated days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    #[arg(long, default_value_t = 10)]
    pub cabinets: usize,
    #[arg(long, default_value_t = 2)]
    pub sites: usize,
    #[arg(long, default_value_t = 24)]
    pub boxes: u16,
    /// Run on this PostgreSQL server (postgres://USER@HOST:PORT/DB) instead of SQLite; two
    /// databases are created on it (lf_retention_keep, lf_retention_pruned) and dropped.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Seconds of remote opens with no pass running, before the first pass starts.
    #[arg(long, default_value_t = 40)]
    pub baseline_secs: u64,
    /// Skip the remote-open part (storage figures only).
    #[arg(long)]
    pub no_opens: bool,
    /// Only the year kept whole and the remote opens during its first pass (no year with
    /// retention to compare sizes with).
    #[arg(long)]
    pub opens_only: bool,
    /// The server's `retention.batch_rows` in the remote-open part.
    #[arg(long, default_value_t = 500)]
    pub batch_rows: u32,
    /// The server's `retention.pause_ms` in the remote-open part.
    #[arg(long, default_value_t = 20)]
    pub pause_ms: u64,
    /// Extra `[retention]` lines for the server in the remote-open part (e.g.
    /// `box_hours_days = 0`), to see what each class costs.
    #[arg(long)]
    pub server_retention: Vec<String>,
}

/// What one simulated year left.
struct Year {
    events: u64,
    bytes: i64,
    free: i64,
    removed: Vec<(String, u64)>,
}

pub async fn retention(o: RetentionOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        o.sites > 0 && o.cabinets > 0 && o.days >= 7,
        "--sites and --cabinets must be at least 1, --days at least 7"
    );
    let dir = scratch_dir("lockerfleet-bench-retention");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let spec = FleetSpec {
        sites: o.sites,
        cabinets: o.cabinets,
        boxes: o.boxes,
        activity_per_sec: 0.0,
        jam_rate: 0.0,
        close_after: Duration::from_millis(50),
        poll_interval_ms: 200,
        ..FleetSpec::default()
    };
    let now = fleet_server::now_ms();
    let urls = match &o.postgres {
        None => ["keep", "pruned"].map(|name| {
            format!(
                "sqlite://{}?mode=rwc",
                dir.join(name).join("fleet.db").display()
            )
        }),
        Some(base) => {
            let mut urls = Vec::new();
            for name in ["lf_retention_keep", "lf_retention_pruned"] {
                urls.push(crate::scratch_pg::fresh(base, name).await?);
            }
            [urls[0].clone(), urls[1].clone()]
        }
    };
    println!(
        "retention: {} simulated days, {} cabinets x {} boxes at {} sites, on {}",
        o.days,
        o.cabinets,
        o.boxes,
        o.sites,
        if o.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let mut years = Vec::new();
    let runs: &[(&String, bool)] = if o.opens_only {
        &[(&urls[0], false)]
    } else {
        &[(&urls[0], false), (&urls[1], true)]
    };
    for &(url, pruned) in runs {
        let t = Instant::now();
        let data_dir = dir.join(if pruned { "pruned" } else { "keep" });
        std::fs::create_dir_all(&data_dir)?;
        let year = simulate(&spec, url, &data_dir, o.days, now, pruned).await?;
        println!(
            "  {}: {:.0} s to write; {} events in all; database {:.1} MB ({:.1} MB of it free pages); {:.2} MB per cabinet per year{}",
            if pruned {
                "retention on (defaults)"
            } else {
                "retention off"
            },
            t.elapsed().as_secs_f64(),
            year.events,
            year.bytes as f64 / 1e6,
            year.free as f64 / 1e6,
            year.bytes as f64 / 1e6 / o.cabinets as f64 * 365.0 / f64::from(o.days),
            if year.removed.is_empty() {
                String::new()
            } else {
                format!("; removed {:?}", year.removed)
            }
        );
        years.push(year);
    }
    if let [keep, pruned] = years.as_slice() {
        println!(
            "  with/without: {:.2}x the bytes, {:.2}x the bytes in use (free pages left out)",
            pruned.bytes as f64 / keep.bytes.max(1) as f64,
            (pruned.bytes - pruned.free) as f64 / (keep.bytes - keep.free).max(1) as f64
        );
    }
    if !o.no_opens {
        opens_during_first_pass(&o, &spec, &dir, &urls[0]).await?;
    }
    if let Some(base) = &o.postgres {
        for name in ["lf_retention_keep", "lf_retention_pruned"] {
            crate::scratch_pg::remove(base, name).await?;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A year at its dates into `url`; with `pruned`, a retention pass (the defaults) at the end
/// of every simulated week.
async fn simulate(
    spec: &FleetSpec,
    url: &str,
    data_dir: &std::path::Path,
    days: u32,
    now: i64,
    pruned: bool,
) -> anyhow::Result<Year> {
    let cfg = fleet_server::ServerConfig {
        data_dir: data_dir.to_owned(),
        database_url: Some(url.to_owned()),
        ..Default::default()
    };
    let summary = crate::history::load(
        cfg,
        Layout::of(spec),
        days,
        2025,
        now,
        std::sync::Arc::new(()),
        true,
    )
    .await?;
    let store = Store::connect(url).await.context("reopening the year")?;
    // Each use moves a door twice and occupancy twice at least; with the keypad and staff
    // rounds about 8 events per reservation and 4 per staff open.
    let per_cabinet_day = ((8 * summary.reserved + 4 * summary.staff_opens) as f64
        / (spec.cabinets as f64 * f64::from(days)))
    .ceil()
    .max(1.0) as u64;
    let ids: Vec<DeviceId> = (0..spec.cabinets).map(|n| cabinet_id(spec, n)).collect();
    let start = now - i64::from(days) * DAY_MS;
    let mut seq = vec![0u64; ids.len()];
    let mut events = 0u64;
    let mut removed: Vec<(String, u64)> = Vec::new();
    let policy = RetentionPolicy {
        pause: Duration::ZERO,
        ..RetentionPolicy::default()
    };
    let never = || false;
    for day in 0..i64::from(days) {
        let t0 = start + day * DAY_MS;
        let mut batch = IngestBatch {
            received_at: t0 + DAY_MS / 2,
            ..IngestBatch::default()
        };
        for (i, id) in ids.iter().enumerate() {
            for k in 0..per_cabinet_day {
                seq[i] += 1;
                let box_no = BoxNo::new((k / 4) as u16 % spec.boxes + 1).context("box")?;
                let body = if k % 4 < 2 {
                    EventBody::Door {
                        box_no,
                        open: k % 2 == 0,
                    }
                } else {
                    EventBody::Occupancy {
                        box_no,
                        occupied: k % 2 == 0,
                    }
                };
                batch.events.push((
                    id.clone(),
                    Event {
                        seq: seq[i],
                        ts: t0 + (k as i64 * DAY_MS) / per_cabinet_day as i64,
                        body,
                    },
                ));
            }
            batch.marks.insert(id.clone(), seq[i]);
            events += per_cabinet_day;
            // A reconnect a day, and two remote opens.
            store
                .presence(id, day as u64, false, "network", t0 + 3_600_000)
                .await?;
            store
                .presence(id, day as u64 + 1, true, "connected", t0 + 3_660_000)
                .await?;
            for c in 0..2 {
                let at = t0 + 10 * 3_600_000 + c * 60_000;
                let cid = CommandId::parse(&format!(
                    "{:032x}",
                    (i as u128) << 64 | (day as u128) << 8 | c as u128
                ))
                .context("command id")?;
                store
                    .create_command(&NewCommand {
                        id: cid.clone(),
                        device: id.clone(),
                        box_no: BoxNo::new(1).context("box")?,
                        actor: "token:bench".into(),
                        reason: "retention benchmark".into(),
                        idempotency_key: None,
                        created_at: at,
                        expires_at: at + 30_000,
                        sent_at: Some(at),
                    })
                    .await?;
                store
                    .advance_command(&cid, CommandStatus::Opened, at + 400, None)
                    .await?;
            }
        }
        store.ingest(&batch).await?;
        if pruned && (day + 1) % 7 == 0 {
            let report = store.retention_pass(&policy, t0 + DAY_MS, &never).await?;
            add(&mut removed, &report);
        }
    }
    let (bytes, free) = store.database_bytes().await?;
    store.close().await;
    Ok(Year {
        events,
        bytes,
        free,
        removed,
    })
}

fn add(total: &mut Vec<(String, u64)>, report: &PassReport) {
    for (class, n) in &report.removed {
        let name = class.as_str().to_owned();
        match total.iter_mut().find(|(c, _)| *c == name) {
            Some((_, t)) => *t += n,
            None => total.push((name, *n)),
        }
    }
}

/// A server process on the year kept whole, retention on with the first pass after
/// `baseline_secs`: remote opens before it starts, and while it runs, on the same process.
async fn opens_during_first_pass(
    o: &RetentionOptions,
    spec: &FleetSpec,
    dir: &std::path::Path,
    url: &str,
) -> anyhow::Result<()> {
    // The server's data dir is where the kept year's SQLite file already is.
    let server_dir = dir.join("bench");
    std::fs::create_dir_all(&server_dir)?;
    if o.postgres.is_none() {
        std::fs::rename(dir.join("keep"), server_dir.join("server"))?;
    }
    let config = server_dir.join("retention.toml");
    std::fs::write(
        &config,
        format!(
            "[retention]\nevery_secs = {}\nbatch_rows = {}\npause_ms = {}\n{}\n",
            o.baseline_secs,
            o.batch_rows,
            o.pause_ms,
            o.server_retention.join("\n")
        ),
    )?;
    let config_s = config.display().to_string();
    let mut extra = vec!["--config", &config_s];
    if o.postgres.is_some() {
        extra.extend(["--database-url", url]);
    }
    let certs = server_dir.join("certs");
    crate::fleet::ensure_certs(&certs, &crate::fleet::device_ids(spec))?;
    let started = Instant::now();
    let (mut server, mqtt, http) =
        crate::scale_bench::start_server_with(&server_dir, "127.0.0.1:0", "127.0.0.1:0", &extra)?;
    let api = ApiClient::new(http, crate::scale_bench::TOKEN)?;
    let fleet = Fleet::start(spec, mqtt, &certs, &server_dir.join("agents")).await?;
    let t = Instant::now();
    while fleet.connected() < spec.cabinets {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(120),
            "only {} of {} agents connected after 120 s",
            fleet.connected(),
            spec.cabinets
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<DeviceId> = (0..spec.cabinets).map(|n| cabinet_id(spec, n)).collect();
    // The first pass starts `baseline_secs` after the server took the lead (at start).
    let first_pass = Duration::from_secs(o.baseline_secs);
    let mut before = Histogram::<u64>::new(3)?;
    let mut during = Histogram::<u64>::new(3)?;
    let mut i = 0usize;
    let pass_done = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("lockerfleet_retention_passes_total{status=\"done\"}"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            >= 1.0
    };
    let mut pass_started = None;
    let mut last_check = Instant::now();
    loop {
        let since = started.elapsed();
        let running = since >= first_pass + Duration::from_millis(500);
        if running && pass_started.is_none() {
            pass_started = Some(Instant::now());
        }
        if running && last_check.elapsed() >= Duration::from_millis(500) {
            last_check = Instant::now();
            if pass_done(&api.metrics().await?) {
                break;
            }
            anyhow::ensure!(
                since < first_pass + Duration::from_secs(1_800),
                "the first pass did not finish within 30 minutes"
            );
        }
        let in_gap = since + Duration::from_millis(1_500) >= first_pass && !running;
        let device = ids[i % ids.len()].to_string();
        let box_no = (i / ids.len()) as u16 % spec.boxes + 1;
        i += 1;
        let opened = api
            .open_and_wait(&device, box_no, "benchmark", Duration::from_secs(10))
            .await
            .with_context(|| format!("open #{i}"))?;
        anyhow::ensure!(opened.status == "opened", "open #{i}: {}", opened.status);
        let us = opened.round_trip.as_micros() as u64;
        if running {
            during.record(us)?;
        } else if !in_gap && since >= Duration::from_secs(3) {
            before.record(us)?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pass_secs = pass_started.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let metrics = api.metrics().await?;
    let rows: Vec<String> = metrics
        .lines()
        .filter(|l| l.starts_with("lockerfleet_retention_rows_total{"))
        .map(|l| l.replace("lockerfleet_retention_rows_total", ""))
        .collect();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "  first pass over the kept year on a running server: about {pass_secs:.0} s; removed {}",
        rows.join(", ")
    );
    for (name, h) in [("no pass running", &before), ("during the pass", &during)] {
        println!(
            "    remote open (POST → opened), {name}: {} opens, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            h.len(),
            ms(h, 0.5),
            ms(h, 0.99),
            h.max() as f64 / 1000.0
        );
    }
    println!(
        "    p99 during/before: {:.2}x",
        ms(&during, 0.99) / ms(&before, 0.99).max(0.001)
    );
    fleet.shutdown().await;
    let _ = server.kill();
    let _ = server.wait();
    Ok(())
}

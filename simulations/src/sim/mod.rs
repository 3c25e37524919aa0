//! `fleet-sim run SCENARIO.toml`: runs a scenario's plan against an embedded server or a
//! remote one, with real agents on fake hardware behind cuttable links, then checks the
//! run's invariants and writes its report. The simulated clock runs `acceleration` times
//! faster than the wall clock; every wait below is a simulated duration scaled to real time.

mod actors;
mod sample;
mod world;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use api_types::Role;
use api_types::cabinets::{BoxBody, CabinetBody};
use api_types::sites::SiteBody;
use api_types::staff::StaffBody;
use api_types::tokens::TokenBody;
use device_agent::{AgentConfig, Durability, FakeConfig, FakeLocks};
use protocol::DeviceId;
use reqwest::Method;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::{
    actors::act,
    sample::sample_loop,
    world::{Clock, Device, World},
};
use crate::api::ApiClient;
use crate::checks::{self, Ledger, Sample};
use crate::netem::Link;
use crate::scenario::Scenario;
use crate::schedule::{Action, Plan};

#[derive(Debug, Clone, clap::Args)]
pub struct RunOptions {
    /// The scenario file (see simulations/scenarios/).
    pub scenario: PathBuf,
    /// MQTT address (HOST:PORT) of a running fleet server; default an embedded one.
    #[arg(long, requires_all = ["api", "certs"])]
    pub server: Option<String>,
    /// With --server: its HTTP API, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub api: Option<String>,
    /// With --server: an admin token of that server.
    #[arg(long, env = "LOCKERFLEET_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// With --server: the certificate folder of that server's CA (`ca.crt`, `ca.key`);
    /// device certificates are issued there for the simulated cabinets.
    #[arg(long)]
    pub certs: Option<PathBuf>,
    /// With --server: the server's `offline_grace_secs` (wall clock), to know which network
    /// drops must raise `device_offline`.
    #[arg(long, default_value_t = 60)]
    pub remote_offline_grace: u64,
    /// Wall-clock seconds to run; the simulated span is this × the acceleration (default:
    /// the scenario's duration_hours).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seed of the plan (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write report.json, report.md and the plots (SVG) into this folder.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Embedded server's database (default SQLite in a scratch folder).
    #[arg(long)]
    pub database_url: Option<String>,
    /// No progress bar (also off when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Print the plan's summary and digest and stop: what the seed would do, without a
    /// server. Equal seeds print equal digests.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let mut scenario = Scenario::load(&opts.scenario)?;
    if let Some(d) = opts.duration {
        anyhow::ensure!(
            d > 0.0 && d.is_finite(),
            "--duration must be a positive number of seconds"
        );
        scenario.duration_hours = d * scenario.acceleration / 3600.0;
    }
    let seed = opts.seed.unwrap_or(scenario.seed);
    let duration_s = scenario.duration_hours * 3600.0;
    let plan = crate::schedule::plan(&scenario, seed, duration_s);
    eprintln!(
        "scenario {}: {} sites, {} cabinets, {} stations; {:.1} simulated hours at {}× ≈ {:.0} s; seed {seed}, plan {} actions ({}…)",
        scenario.name,
        scenario.sites.len(),
        plan.cabinets.len(),
        plan.stations.len(),
        scenario.duration_hours,
        scenario.acceleration,
        duration_s / scenario.acceleration,
        plan.actions.len(),
        &plan.digest[..12],
    );
    if opts.dry_run {
        println!("plan {}", plan.digest);
        for (at, what) in plan
            .actions
            .iter()
            .take(5)
            .map(|a| (a.at_s, a.what.label()))
        {
            println!("  {:>8.1} s  {what}", at);
        }
        for label in Action::LABELS {
            println!("{label} {}", plan.count(label));
        }
        return Ok(());
    }
    let scratch = crate::fleet::scratch_dir("lockerfleet-sim");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    // The server: embedded with the scenario's timers scaled, or the one given.
    let (server, mqtt, admin, certs_dir, offline_grace_real) = match &opts.server {
        None => {
            let certs_dir = scratch.join("certs");
            let ids: Vec<DeviceId> = all_ids(&plan)?;
            crate::fleet::ensure_certs(&certs_dir, &ids)?;
            let server = fleet_server::start(fleet_server::ServerConfig {
                data_dir: scratch.join("server"),
                certs: Some(certs_dir.clone()),
                mqtt_listen: "127.0.0.1:0".parse()?,
                http_listen: "127.0.0.1:0".parse()?,
                database_url: opts.database_url.clone(),
                offline_grace_secs: scenario.scaled_timer(scenario.timers.offline_grace_s),
                // One admin token stands for the whole service platform and every desk;
                // devices keep the default publish rate, as deployed.
                api_requests_per_sec: 0,
                ..Default::default()
            })
            .await
            .context("starting the embedded server")?;
            let admin = ApiClient::new(server.http_addr, &server.admin_token)?;
            let mqtt = server.mqtt_addr;
            let grace = scenario.scaled_timer(scenario.timers.offline_grace_s) as f64;
            (Some(server), mqtt, admin, certs_dir, grace)
        }
        Some(addr) => {
            let certs_dir = opts.certs.clone().context("--server needs --certs")?;
            anyhow::ensure!(
                certs_dir.join(certs::CA_KEY).exists(),
                "--certs {}: no CA key there; give the folder where `fleet-certs init` put ca.crt and ca.key",
                certs_dir.display()
            );
            let token = opts.token.clone().context(
                "--server needs --token (or LOCKERFLEET_ADMIN_TOKEN) with the admin role",
            )?;
            let api = opts.api.clone().context("--server needs --api")?;
            crate::fleet::ensure_certs(&certs_dir, &all_ids(&plan)?)?;
            let mqtt = tokio::net::lookup_host(addr.as_str())
                .await
                .with_context(|| format!("resolving --server {addr}"))?
                .next()
                .with_context(|| format!("--server {addr} resolves to no address"))?;
            let admin = ApiClient::from_base(&api, &token)?;
            (
                None,
                mqtt,
                admin,
                certs_dir,
                opts.remote_offline_grace as f64,
            )
        }
    };
    let result = run_world(
        scenario,
        plan,
        mqtt,
        admin,
        &certs_dir,
        &scratch,
        offline_grace_real,
        &opts,
    )
    .await;
    if let Some(s) = server {
        s.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let report = result?;
    let failed: Vec<_> = report.checks.iter().filter(|c| !c.passed).collect();
    if !failed.is_empty() {
        bail!(
            "{} invariant(s) broken: {}",
            failed.len(),
            failed
                .iter()
                .map(|c| format!("{} ({})", c.name, c.detail))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

fn all_ids(plan: &Plan) -> anyhow::Result<Vec<DeviceId>> {
    plan.cabinets
        .iter()
        .map(|c| c.id.as_str())
        .chain(plan.stations.iter().map(|(id, _)| id.as_str()))
        .map(|id| DeviceId::parse(id).with_context(|| format!("device id {id}")))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn run_world(
    scenario: Scenario,
    plan: Plan,
    mqtt: SocketAddr,
    admin: ApiClient,
    certs_dir: &Path,
    scratch: &Path,
    offline_grace_real: f64,
    opts: &RunOptions,
) -> anyhow::Result<crate::report::Report> {
    let net_cancel = CancellationToken::new();
    let net_tasks = TaskTracker::new();
    let agents_cancel = CancellationToken::new();
    let door_alarm = scenario.scaled_timer(scenario.timers.door_left_open_s);
    let mut devices = Vec::new();
    let stations = plan
        .stations
        .iter()
        .map(|(id, site)| (id.clone(), *site, true));
    let cabinets = plan.cabinets.iter().map(|c| (c.id.clone(), c.site, false));
    for (n, (id, site, is_station)) in cabinets.chain(stations).enumerate() {
        let id = DeviceId::parse(&id).with_context(|| format!("device id {id}"))?;
        let profile = if is_station {
            [
                protocol::Profile::Kiosk,
                protocol::Profile::TaxMachine,
                protocol::Profile::Printer,
            ][n % 3]
        } else {
            protocol::Profile::Locker
        };
        let boxes = scenario.sites[site].boxes_per_cabinet();
        let close_after =
            Duration::from_secs_f64(scenario.real_secs(scenario.timers.door_close_s).max(0.2));
        let link = Link::start(mqtt, net_cancel.clone(), &net_tasks).await?;
        let cfg = AgentConfig {
            id: id.to_string(),
            server: format!("localhost:{}", link.addr.port()),
            certs: certs_dir.to_owned(),
            data_dir: scratch.join("agents").join(id.as_str()),
            boxes,
            profile,
            poll_interval_ms: 100,
            durability: Durability::Normal,
            max_backoff_ms: 1_000,
            door_open_alarm_secs: door_alarm,
            // The keypad's guard counts wrong entries over simulated minutes, not real ones.
            keypad_window_secs: scenario.scaled_timer(600.0),
            keypad_lockout_secs: scenario.scaled_timer(900.0),
            heartbeat_secs: scenario.scaled_timer(30.0).min(30),
            ..AgentConfig::default()
        };
        let locks = Arc::new(FakeLocks::new(FakeConfig {
            boxes,
            close_after,
            jam_rate: 0.0,
            profile,
            pulse_log: None,
        }));
        let tls = device_agent::client_tls(certs_dir, &id)?;
        devices.push(Arc::new(Device {
            id,
            site,
            locks,
            link,
            cfg,
            tls,
            live: RwLock::new(None),
        }));
    }
    for d in &devices {
        let live = d.start_agent(&agents_cancel).await?;
        *d.live.write().await = Some(live);
    }
    let platform = configure(&admin, &scenario, &devices).await?;
    // Every device connected and its first snapshot in, before the clock starts.
    let deadline = Instant::now() + Duration::from_secs(60 + devices.len() as u64 / 20);
    loop {
        let mut up = 0;
        for d in &devices {
            if let Some(l) = d.live.read().await.as_ref()
                && l.agent
                    .stats
                    .connected
                    .load(std::sync::atomic::Ordering::Relaxed)
            {
                up += 1;
            }
        }
        if up == devices.len() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {up} of {} devices connected to {mqtt}",
            devices.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let by_id = devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.to_string(), i))
        .collect();
    let clock = Clock {
        started: Instant::now(),
        acceleration: scenario.acceleration,
        cancel: CancellationToken::new(),
    };
    let world = Arc::new(World {
        scenario,
        plan,
        devices,
        by_id,
        platform,
        admin,
        clock: clock.clone(),
        ledger: Mutex::new(Ledger::default()),
        tasks: TaskTracker::new(),
        pickups: Mutex::new(HashMap::new()),
        offline_grace_real,
        door_alarm_real: door_alarm as f64,
        agents_cancel: agents_cancel.clone(),
        busy: Mutex::new(Default::default()),
    });

    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampler_stop = CancellationToken::new();
    let sampler = tokio::spawn(sample_loop(
        world.clone(),
        samples.clone(),
        sampler_stop.clone(),
        !opts.quiet,
    ));
    // The plan, in order, each action as its own task at its simulated time.
    for (n, planned) in world.plan.actions.iter().enumerate() {
        if !clock.sleep_until_sim(planned.at_s).await {
            break;
        }
        let w = world.clone();
        let what = planned.what.clone();
        world.tasks.spawn(async move { act(w, n, what).await });
    }
    clock.sleep_until_sim(world.plan.duration_s).await;
    // The run is over: people stop waiting, every fault is put right, the fleet settles.
    clock.cancel.cancel();
    world.tasks.close();
    if tokio::time::timeout(Duration::from_secs(60), world.tasks.wait())
        .await
        .is_err()
    {
        world
            .ledger()
            .errors
            .push("simulated people were still busy 60 s after the end".into());
    }
    for d in &world.devices {
        d.link.set_down(false);
        d.locks.set_on_battery(false);
        if d.live.read().await.is_none() {
            match d.start_agent(&agents_cancel).await {
                Ok(l) => *d.live.write().await = Some(l),
                Err(e) => world.ledger().errors.push(format!("{e:#}")),
            }
        }
    }
    let settled = settle(&world, Duration::from_secs(60)).await;
    sampler_stop.cancel();
    let _ = sampler.await;
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    let ledger = world.ledger().clone();
    let totals = agent_totals(&world).await;
    let mut checks_done = checks::run_all(&world.admin, &ledger, &totals).await;
    if let Err(e) = settled {
        checks_done.insert(0, checks::Check::failed("fleet settled", format!("{e:#}")));
    }
    let report = crate::report::Report::new(
        &world.scenario,
        &world.plan,
        &ledger,
        samples,
        checks_done,
        clock.started.elapsed(),
    );
    println!("{}", report.markdown(false));
    if let Some(dir) = &opts.report {
        report.write(dir)?;
        eprintln!("report written to {}", dir.display());
    }
    for d in &world.devices {
        if let Some(l) = d.live.write().await.take() {
            l.agent.shutdown().await;
        }
    }
    net_cancel.cancel();
    net_tasks.close();
    net_tasks.wait().await;
    Ok(report)
}

/// Per device: the last seq its agent recorded and the highest the server receipted.
async fn agent_totals(world: &World) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    for d in &world.devices {
        if let Some(l) = d.live.read().await.as_ref() {
            out.push((
                d.id.to_string(),
                l.agent.outbox.last_seq(),
                l.agent
                    .stats
                    .receipted
                    .load(std::sync::atomic::Ordering::Relaxed),
            ));
        }
    }
    out
}

/// Waits until every agent is connected and everything it recorded is receipted.
async fn settle(world: &World, limit: Duration) -> anyhow::Result<()> {
    world
        .admin
        .get("/api/v1/me")
        .await
        .context("the server does not answer at the end of the run")?;
    let deadline = Instant::now() + limit;
    // Settled means nothing new for a second as well: a door a person pushed shut at the
    // very end is still an event to count.
    let mut previous = Vec::new();
    loop {
        let totals = agent_totals(world).await;
        let behind: Vec<_> = totals.iter().filter(|(_, last, r)| r < last).collect();
        if totals.len() == world.devices.len() && behind.is_empty() && totals == previous {
            return Ok(());
        }
        previous = totals.clone();
        if Instant::now() > deadline {
            bail!(
                "{} of {} devices still have events the server has not receipted after {limit:?} (first: {:?})",
                behind.len(),
                world.devices.len(),
                behind.first()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Sites, cabinets with their box sizes, a helper with a card per site, and a platform
/// token; returns the platform's client.
async fn configure(
    admin: &ApiClient,
    s: &Scenario,
    devices: &[Arc<Device>],
) -> anyhow::Result<ApiClient> {
    for site in &s.sites {
        let body = SiteBody {
            id: None,
            kind: site.kind.clone(),
            name: site.name.clone().unwrap_or_else(|| site.id.clone()),
            address: format!("{} (simulated)", site.id),
            lat: site.lat,
            lon: site.lon,
            lang: None,
            time_zone: None,
        };
        let (st, r) = admin
            .send(Method::PUT, &format!("/api/v1/sites/{}", site.id), &body)
            .await?;
        anyhow::ensure!(st < 300, "configuring site {}: {st} {r}", site.id);
        let (st, r) = admin
            .send(
                Method::POST,
                "/api/v1/staff",
                &StaffBody {
                    id: format!("sim-helper-{}", site.id),
                    name: format!("Helper at {}", site.id),
                    site_id: Some(site.id.clone()),
                    credential: format!("sim-card-{}", site.id),
                    phone: Some("+8613900000000".into()),
                    on_duty: true,
                },
            )
            .await?;
        anyhow::ensure!(
            st < 300 || st == 409,
            "adding staff of {}: {st} {r}",
            site.id
        );
    }
    for d in devices {
        let site = &s.sites[d.site];
        let boxes: Vec<BoxBody> = if d.cfg.profile.is_station() {
            Vec::new()
        } else {
            (1..=site.boxes_per_cabinet())
                .map(|b| BoxBody {
                    box_no: b,
                    size: site.size_of(b).to_owned(),
                    accessible: b <= site.accessible,
                })
                .collect()
        };
        let (st, r) = admin
            .send(
                Method::PUT,
                &format!("/api/v1/cabinets/{}", d.id),
                &CabinetBody {
                    site_id: site.id.clone(),
                    name: Some(d.id.to_string()),
                    boxes,
                },
            )
            .await?;
        anyhow::ensure!(st < 300, "configuring {}: {st} {r}", d.id);
    }
    let (st, r) = admin
        .send(
            Method::POST,
            "/api/v1/tokens",
            &TokenBody {
                name: format!("sim-platform-{}", s.name),
                role: Role::Platform,
                sites: None,
                expires_in_days: None,
                expires_at: None,
            },
        )
        .await?;
    anyhow::ensure!(st < 300, "creating the platform token: {st} {r}");
    Ok(admin.with_token(r["token"].as_str().context("token in answer")?))
}

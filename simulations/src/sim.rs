//! `fleet-sim run SCENARIO.toml`: runs a scenario's plan against an embedded server or a
//! remote one, with real agents on fake hardware behind cuttable links, then checks the
//! run's invariants and writes its report. The simulated clock runs `acceleration` times
//! faster than the wall clock; every wait below is a simulated duration scaled to real time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use device_agent::{AgentConfig, Durability, EntryOutcome, FakeConfig, FakeLocks, RunningAgent};
use protocol::{AckStatus, BoxNo, DeviceId, RejectReason};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::ApiClient;
use crate::checks::{self, CommandRecord, Injected, Ledger, Sample};
use crate::netem::Link;
use crate::scenario::{FlowKind, Scenario};
use crate::schedule::{Action, Person, Plan};

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

/// A simulated device: fake hardware, its link, and the agent (absent while restarting).
struct Device {
    id: DeviceId,
    site: usize,
    locks: Arc<FakeLocks>,
    link: Link,
    cfg: AgentConfig,
    tls: Arc<rustls::ClientConfig>,
    live: RwLock<Option<Live>>,
}

struct Live {
    agent: RunningAgent,
    keys: device_agent::SoftKeypadHandle,
}

impl Device {
    async fn start_agent(&self, cancel: &CancellationToken) -> anyhow::Result<Live> {
        let (keypad, keys) = device_agent::SoftKeypad::new();
        let agent = device_agent::start(
            self.cfg.clone(),
            self.locks.clone(),
            keypad,
            self.tls.clone(),
            cancel.child_token(),
        )
        .await
        .with_context(|| format!("starting agent {}", self.id))?;
        Ok(Live { agent, keys })
    }

    /// The agent's MQTT session number while it is running and connected: equal before and
    /// after a wait means the cabinet stayed online throughout it.
    async fn session(&self) -> Option<u64> {
        let live = self.live.read().await;
        let stats = &live.as_ref()?.agent.stats;
        stats
            .connected
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| stats.connects.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The agent is connected in the same session as `before` (from [`Device::session`]):
    /// no drop or restart happened in between.
    async fn stayed_online(&self, before: Option<u64>) -> bool {
        before.is_some() && self.session().await == before
    }

    /// The cabinet's own code book accepts `code` now (no side effects).
    async fn verifies(&self, code: &str) -> bool {
        match self.live.read().await.as_ref() {
            Some(l) => l.agent.codes.verify(code, l.agent.clock.now_ms()).is_ok(),
            None => false,
        }
    }

    /// The keypad, waiting while the agent restarts (a person waits at a rebooting cabinet).
    async fn keys(&self, sim: &Clock) -> Option<device_agent::SoftKeypadHandle> {
        loop {
            if let Some(l) = self.live.read().await.as_ref() {
                return Some(l.keys.clone());
            }
            if !sim.sleep_real(Duration::from_millis(50)).await {
                return None;
            }
        }
    }
}

/// The simulated clock and the run's cancellation.
#[derive(Clone)]
struct Clock {
    started: Instant,
    acceleration: f64,
    cancel: CancellationToken,
}

impl Clock {
    fn sim_now(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * self.acceleration
    }

    fn real(&self, sim_s: f64) -> Duration {
        Duration::from_secs_f64((sim_s / self.acceleration).max(0.0))
    }

    /// Sleeps `sim_s` simulated seconds; false when the run ends first.
    async fn sleep(&self, sim_s: f64) -> bool {
        self.sleep_real(self.real(sim_s)).await
    }

    async fn sleep_real(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    async fn sleep_until_sim(&self, sim_s: f64) -> bool {
        let at = self.started + self.real(sim_s);
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep_until(at.into()) => true,
        }
    }
}

/// Everything the people, staff and faults of a run share.
struct World {
    scenario: Scenario,
    plan: Plan,
    devices: Vec<Arc<Device>>,
    by_id: HashMap<String, usize>,
    platform: ApiClient,
    admin: ApiClient,
    clock: Clock,
    ledger: Mutex<Ledger>,
    tasks: TaskTracker,
    /// Pick-ups waiting for staff to deposit: item id → the person and their code.
    pickups: Mutex<HashMap<String, (Person, String)>>,
    /// Wall-clock seconds a device must be offline before `device_offline` is due.
    offline_grace_real: f64,
    door_alarm_real: f64,
    agents_cancel: CancellationToken,
    /// Boxes somebody is using right now (a forced open leaves them alone).
    busy: Mutex<std::collections::HashSet<(usize, u16)>>,
}

impl World {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn site_id(&self, site: usize) -> &str {
        &self.scenario.sites[site].id
    }

    fn staff_card(&self, site: usize) -> String {
        format!("sim-card-{}", self.site_id(site))
    }

    fn inject(
        &self,
        kind: &'static str,
        device: usize,
        box_no: Option<u16>,
        alarm: Option<&'static str>,
    ) {
        self.ledger().injected.push(Injected {
            kind: kind.to_owned(),
            device: self.devices[device].id.to_string(),
            box_no,
            at_ms: fleet_server::now_ms(),
            expect_alarm: alarm.map(str::to_owned),
        });
    }

    fn busy(&self, device: usize, b: u16, on: bool) -> bool {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            busy.insert((device, b))
        } else {
            busy.remove(&(device, b))
        }
    }
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
        let body = json!({
            "kind": site.kind,
            "name": site.name.clone().unwrap_or_else(|| site.id.clone()),
            "address": format!("{} (simulated)", site.id),
            "lat": site.lat,
            "lon": site.lon,
        });
        let (st, r) = admin
            .send(Method::PUT, &format!("/api/v1/sites/{}", site.id), &body)
            .await?;
        anyhow::ensure!(st < 300, "configuring site {}: {st} {r}", site.id);
        let (st, r) = admin
            .send(
                Method::POST,
                "/api/v1/staff",
                &json!({"id": format!("sim-helper-{}", site.id), "name": format!("Helper at {}", site.id),
                        "site_id": site.id, "credential": format!("sim-card-{}", site.id),
                        "phone": "+8613900000000", "on_duty": true}),
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
        let boxes: Vec<Value> = if d.cfg.profile.is_station() {
            Vec::new()
        } else {
            (1..=site.boxes_per_cabinet())
                .map(|b| json!({"box": b, "size": site.size_of(b), "accessible": b <= site.accessible}))
                .collect()
        };
        let (st, r) = admin
            .send(
                Method::PUT,
                &format!("/api/v1/cabinets/{}", d.id),
                &json!({"site_id": site.id, "name": d.id.as_str(), "boxes": boxes}),
            )
            .await?;
        anyhow::ensure!(st < 300, "configuring {}: {st} {r}", d.id);
    }
    let (st, r) = admin
        .send(
            Method::POST,
            "/api/v1/tokens",
            &json!({"name": format!("sim-platform-{}", s.name), "role": "platform"}),
        )
        .await?;
    anyhow::ensure!(st < 300, "creating the platform token: {st} {r}");
    Ok(admin.with_token(r["token"].as_str().context("token in answer")?))
}

async fn act(w: Arc<World>, n: usize, what: Action) {
    match what {
        Action::Arrival(p) => person(&w, n, p).await,
        Action::StaffRound { site } => staff_round(&w, site).await,
        Action::ForcedOpen {
            cabinet,
            box_no,
            open_s,
        } => {
            let d = &w.devices[cabinet];
            let Ok(b) = BoxNo::new(box_no) else { return };
            // Only a shut door nobody is using can be forced.
            if !w.busy(cabinet, box_no, true) {
                return;
            }
            // Reading the door must not touch it: a door a helper just opened closes by itself.
            let open = device_agent::LockDriver::door_open(&*d.locks, b)
                .await
                .unwrap_or(true);
            if open || d.locks.open_by_hand(b).is_err() {
                w.busy(cabinet, box_no, false);
                return;
            }
            w.inject("forced_open", cabinet, Some(box_no), Some("forced_open"));
            // Long enough for the agent's poll to see it, whatever the acceleration.
            let held = w.clock.real(open_s).max(Duration::from_millis(400));
            tokio::time::sleep(held).await;
            let _ = d.locks.close(b);
            w.busy(cabinet, box_no, false);
        }
        Action::NetworkDrop { cabinet, secs } => {
            let d = &w.devices[cabinet];
            if d.link.is_down() {
                return;
            }
            let real = w.clock.real(secs);
            // A drop near the grace could go either way: only clearly longer ones must alarm.
            let alarm = if real.as_secs_f64() > w.offline_grace_real + 2.0 {
                Some("device_offline")
            } else {
                None
            };
            w.inject("network_drop", cabinet, None, alarm);
            d.link.set_down(true);
            w.clock.sleep_real(real).await;
            d.link.set_down(false);
        }
        Action::PowerLoss { cabinet, secs } => {
            let d = &w.devices[cabinet];
            d.locks.set_on_battery(true);
            w.inject("power_loss", cabinet, None, Some("on_battery"));
            tokio::time::sleep(w.clock.real(secs).max(Duration::from_millis(500))).await;
            d.locks.set_on_battery(false);
        }
        Action::AgentRestart { cabinet } => {
            let d = &w.devices[cabinet];
            let Some(old) = d.live.write().await.take() else {
                return;
            };
            w.inject("agent_restart", cabinet, None, None);
            old.agent.shutdown().await;
            tokio::time::sleep(w.clock.real(5.0)).await;
            match d.start_agent(&w.agents_cancel).await {
                Ok(l) => *d.live.write().await = Some(l),
                Err(e) => w
                    .ledger()
                    .errors
                    .push(format!("restarting {}: {e:#}", d.id)),
            }
        }
        Action::RemoteOpen { cabinet, box_no } => {
            if !w.busy(cabinet, box_no, true) {
                return;
            }
            remote_open(
                &w,
                cabinet,
                box_no,
                "simulated hotline: caller at the cabinet",
            )
            .await;
            w.busy(cabinet, box_no, false);
        }
    }
}

/// The night desk opens a box and waits for the outcome; the command is recorded.
async fn remote_open(w: &World, device: usize, box_no: u16, reason: &str) -> Option<String> {
    let d = &w.devices[device];
    let id = d.id.to_string();
    let session = d.session().await;
    match w
        .admin
        .open_and_wait(&id, box_no, reason, Duration::from_secs(30))
        .await
    {
        Ok(o) => {
            let cabinet_online = d.stayed_online(session).await;
            w.ledger().commands.push(CommandRecord {
                id: o.command_id.clone(),
                device: id,
                box_no,
                status: o.status.clone(),
                round_trip_ms: o.round_trip.as_secs_f64() * 1000.0,
                cabinet_online,
            });
            Some(o.status)
        }
        Err(e) => {
            let mut l = w.ledger();
            l.command_errors.push(format!("{id} box {box_no}: {e:#}"));
            None
        }
    }
}

/// A code that is not this one: every digit moved by one.
fn wrong_code(code: &str) -> String {
    code.chars()
        .map(|c| {
            c.to_digit(10)
                .map_or(c, |d| char::from(b'0' + ((d + 1) % 10) as u8))
        })
        .collect()
}

async fn person(w: &World, n: usize, p: Person) {
    let now = fleet_server::now_ms();
    let mut body = json!({
        "flow": p.flow.name(),
        "case_number": format!("SIM-{}-{n}", w.plan.seed),
        "phone": format!("138{:08}", n % 100_000_000),
        "site_id": w.site_id(p.site),
        "size": p.size,
        "idempotency_key": format!("sim-{}-{}-{n}", w.plan.digest.get(..12).unwrap_or(""), w.plan.seed),
    });
    if p.flow == FlowKind::Supplement {
        body["deadline"] = json!(now + w.clock.real(p.deadline_s).as_millis() as i64);
    }
    let answer = w
        .platform
        .send(Method::POST, "/api/v1/reservations", &body)
        .await;
    let r = match answer {
        Ok((201, r)) => r,
        Ok((409, _)) => {
            w.ledger().refused += 1;
            return;
        }
        Ok((status, r)) => {
            w.ledger()
                .errors
                .push(format!("reservation answered {status}: {r}"));
            return;
        }
        Err(e) => {
            w.ledger().errors.push(format!("reservation: {e:#}"));
            return;
        }
    };
    w.ledger().reserved += 1;
    let (Some(item), Some(code), Some(device), Some(b)) = (
        r["reservation_id"].as_str(),
        r["code"].as_str(),
        r["device_id"]
            .as_str()
            .and_then(|d| w.by_id.get(d).copied()),
        r["box"].as_u64().map(|b| b as u16),
    ) else {
        w.ledger().errors.push(format!(
            "reservation answer without id, code, device or box: {r}"
        ));
        return;
    };
    if p.flow != FlowKind::Pickup {
        // How long until the cabinet's own code book accepts the new code; a cabinet offline
        // (a network drop, a restart) for part of the wait is counted apart: its code waits
        // on the reconnection, not on the server.
        let d = &w.devices[device];
        let t0 = Instant::now();
        let session = d.session().await;
        while !d.verifies(code).await && t0.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if d.verifies(code).await {
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            let online = d.stayed_online(session).await;
            let mut l = w.ledger();
            if online {
                l.code_ready_ms.push(ms);
            } else {
                l.code_ready_reconnecting_ms.push(ms);
            }
        }
    }
    if p.no_show {
        w.ledger().no_shows += 1;
        return;
    }
    if p.flow == FlowKind::Pickup {
        // Comes once staff have deposited the licence (see staff_round).
        w.pickups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(item.to_owned(), (p, code.to_owned()));
        return;
    }
    if !w.clock.sleep(p.walk_s).await {
        return;
    }
    visit(w, &p, code, device, b, true).await;
}

/// The person at the keypad: maybe a wrong code first, their code (retried while the cabinet
/// has not got it yet), the box used, the door shut (or left open), maybe the code again.
async fn visit(w: &World, p: &Person, code: &str, device: usize, b: u16, placing: bool) {
    let d = &w.devices[device];
    let Ok(box_no) = BoxNo::new(b) else { return };
    w.busy(device, b, true);
    if p.wrong_code {
        let wrong = wrong_code(code);
        if let Some(keys) = d.keys(&w.clock).await {
            let outcome = keys.code(&wrong).await;
            let mut l = w.ledger();
            l.wrong_codes += 1;
            if matches!(outcome, Some(EntryOutcome::Opened { .. })) {
                l.violations
                    .push(format!("wrong code {wrong} opened a box of {}", d.id));
            }
        }
    }
    let mut jam_armed = !p.jam;
    // A person tries for up to ten simulated minutes (at least five real seconds): a
    // cabinet offline since the reservation does not know the code yet, a locked keypad
    // opens again. While the cabinet does not know the code they wait instead of typing it
    // again and again: at high acceleration the milliseconds a code set takes to arrive are
    // simulated minutes, and repeated refusals would lock the keypad for everyone.
    let mut opened = None;
    let give_up = Instant::now() + w.clock.real(600.0).max(Duration::from_secs(5));
    let retry = w.clock.real(30.0).max(Duration::from_millis(200));
    while opened.is_none() {
        let Some(keys) = d.keys(&w.clock).await else {
            break;
        };
        let known = d.verifies(code).await;
        if !known && Instant::now() < give_up {
            if !w.clock.sleep_real(Duration::from_millis(20)).await {
                break;
            }
            continue;
        }
        if !jam_armed && known {
            // The jam is armed only for a pulse this code will cause.
            let _ = d.locks.jam_next(box_no);
            jam_armed = true;
        }
        match keys.code(code).await {
            Some(EntryOutcome::Opened {
                box_no: got,
                status,
            }) => {
                let mut l = w.ledger();
                *l.uses.entry(code.to_owned()).or_default() += 1;
                if got != box_no {
                    l.violations
                        .push(format!("code for box {b} of {} opened box {got}", d.id));
                }
                opened = Some(status);
            }
            Some(EntryOutcome::Rejected {
                reason: RejectReason::Used,
            }) => {
                w.ledger()
                    .violations
                    .push(format!("a fresh code of {} was refused as used", d.id));
                break;
            }
            Some(EntryOutcome::Rejected { .. } | EntryOutcome::LockedOut { .. }) | None => {
                if Instant::now() > give_up || !w.clock.sleep_real(retry).await {
                    w.ledger().gave_up += 1;
                    break;
                }
            }
        }
    }
    let Some(status) = opened else {
        w.busy(device, b, false);
        return;
    };
    if status == AckStatus::Jammed {
        w.inject("jam", device, Some(b), Some("lock_jam"));
        // The person calls the hotline; the operator opens the box remotely.
        remote_open(w, device, b, "simulated: lock jammed after a valid code").await;
    }
    let _ = d.locks.set_occupied(box_no, placing);
    if let Some(left) = p.left_open_s
        && d.locks.hold_open(box_no).unwrap_or(false)
    {
        let real = w.clock.real(left);
        // Only a door clearly open past the agent's alarm time must alarm.
        let alarm = (real.as_secs_f64() > w.door_alarm_real + 1.0).then_some("door_left_open");
        w.inject("door_left_open", device, Some(b), alarm);
        tokio::time::sleep(real).await;
        let _ = d.locks.close(box_no);
    }
    {
        let mut l = w.ledger();
        *l.done.entry(p.flow.name().to_owned()).or_default() += 1;
    }
    if p.replay {
        w.clock.sleep(60.0).await;
        if let Some(keys) = d.keys(&w.clock).await {
            let outcome = keys.code(code).await;
            let mut l = w.ledger();
            l.replays += 1;
            if matches!(outcome, Some(EntryOutcome::Opened { .. })) {
                *l.uses.entry(code.to_owned()).or_default() += 1;
            }
        }
    }
    w.busy(device, b, false);
}

/// The site's helper works the collect list (documents dropped, supplements) and the deposit
/// list (licences for pick-up) with their card, box by box.
async fn staff_round(w: &Arc<World>, site: usize) {
    let card = w.staff_card(site);
    for (list, placing) in [("collect", false), ("deposit", true)] {
        let items = match w
            .platform
            .get(&format!(
                "/api/v1/worklists/{list}?site={}",
                w.site_id(site)
            ))
            .await
        {
            Ok(v) => v["items"].as_array().cloned().unwrap_or_default(),
            Err(e) => {
                w.ledger().errors.push(format!("worklist {list}: {e:#}"));
                continue;
            }
        };
        for item in items {
            let (Some(id), Some(device), Some(b)) = (
                item["id"].as_str(),
                item["device_id"]
                    .as_str()
                    .and_then(|d| w.by_id.get(d).copied()),
                item["box"].as_u64().map(|b| b as u16),
            ) else {
                continue;
            };
            let Ok(box_no) = BoxNo::new(b) else { continue };
            let d = &w.devices[device];
            let Some(keys) = d.keys(&w.clock).await else {
                return;
            };
            match keys.staff(&card, b).await {
                Some(EntryOutcome::Opened { .. }) => {
                    let _ = d.locks.set_occupied(box_no, placing);
                    let mut l = w.ledger();
                    if placing {
                        l.deposited += 1;
                    } else {
                        l.collected += 1;
                    }
                }
                other => {
                    let why = match other {
                        Some(EntryOutcome::Rejected { reason }) => reason.as_str().to_owned(),
                        Some(EntryOutcome::LockedOut { .. }) => "locked_out".to_owned(),
                        Some(EntryOutcome::Opened { .. }) | None => "agent stopped".to_owned(),
                    };
                    *w.ledger().staff_refused.entry(why).or_default() += 1;
                    continue;
                }
            }
            if placing {
                let waiting = w
                    .pickups
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(id);
                if let Some((p, code)) = waiting {
                    // The SMS goes out; the person comes after their dwell time, as a task of
                    // its own while the helper moves on.
                    let w2 = w.clone();
                    w.tasks.spawn(async move {
                        if w2.clock.sleep(p.dwell_s).await {
                            visit(&w2, &p, &code, device, b, false).await;
                        }
                    });
                }
            }
            // The helper shuts the door before the next box.
            w.clock.sleep(w.scenario.timers.door_close_s).await;
        }
    }
}

/// Samples the fleet every few simulated minutes: receipts, recorded events and occupancy per site; feeds
/// the progress bar.
async fn sample_loop(
    w: Arc<World>,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: CancellationToken,
    progress: bool,
) {
    let bar = if progress {
        indicatif::ProgressBar::new(w.plan.duration_s as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] sim {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let sites: Vec<String> = w.scenario.sites.iter().map(|s| s.id.clone()).collect();
    // About every five simulated minutes, within a quarter second and five seconds of
    // wall clock.
    let every = (300.0 / w.scenario.acceleration).clamp(0.25, 5.0);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(every));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let totals = agent_totals(&w).await;
        let (recorded, receipted) = totals
            .iter()
            .fold((0, 0), |(a, b), (_, last, r)| (a + last, b + r));
        let mut occupancy = vec![None; sites.len()];
        if let Ok(v) = w.admin.get("/api/v1/overview").await {
            for s in v["sites"].as_array().into_iter().flatten() {
                if let Some(i) = sites.iter().position(|id| s["id"] == json!(id)) {
                    occupancy[i] = s["occupancy"].as_f64();
                }
            }
        }
        let sim_s = w.clock.sim_now().min(w.plan.duration_s);
        let line = {
            let l = w.ledger();
            format!(
                "{:>5.1} h | reserved {} refused {} | done {} | cmds {} | faults {} | events {receipted}/{recorded}",
                sim_s / 3600.0,
                l.reserved,
                l.refused,
                l.done.values().sum::<u64>(),
                l.commands.len(),
                l.injected.len()
            )
        };
        bar.set_position(sim_s as u64);
        bar.set_message(line);
        samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Sample {
                real_s: w.clock.started.elapsed().as_secs_f64(),
                sim_s,
                recorded,
                receipted,
                occupancy,
            });
    }
    bar.finish_and_clear();
}

//! `lockerfleet demo`: the whole system on embedded defaults — server, broker, SQLite, and a
//! simulated fleet of real agents over real TLS — with the operator console in the terminal,
//! or a status line every few seconds (`--headless`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use l10n::{Lang, t};
use rand::Rng;

use crate::api::ApiClient;
use crate::fleet::{Fleet, FleetSpec, cabinet_id};
use crate::layout::Layout;

/// The history's plan: the same demo, the same past (relative to its start).
const HISTORY_SEED: u64 = 2018;

#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Cabinets in the simulated fleet.
    #[arg(long, default_value_t = 50)]
    pub cabinets: usize,
    /// Sites the cabinets are spread over.
    #[arg(long, default_value_t = 5)]
    pub sites: usize,
    /// Boxes per cabinet.
    #[arg(long, default_value_t = 24)]
    pub boxes: u16,
    /// Station devices (self-service kiosks, tax machines, printers), spread over the sites.
    #[arg(long, default_value_t = 6)]
    pub stations: usize,
    /// Stop after this many seconds (exit 0); default: run until Ctrl-C.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Plain status lines instead of the operator console (the console needs a terminal;
    /// without one the demo is headless anyway).
    #[arg(long)]
    pub headless: bool,
    /// Set by [`main`]: run the console in this terminal (not headless, and a TTY).
    #[arg(skip)]
    pub console: bool,
    /// Where the demo keeps certificates, database and agent outboxes (reused across runs).
    #[arg(long, default_value = "lockerfleet-demo")]
    pub data_dir: PathBuf,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 5)]
    pub status_every: u64,
    /// Reservations per minute across the fleet (drop-offs, pick-ups, supplements), each
    /// followed by a simulated person at the keypad; 0 turns the service flows off.
    #[arg(long, default_value_t = 30.0)]
    pub flows_per_minute: f64,
    /// Days of history written before the live day starts (real times, the simulator's
    /// planner, the server's own rules), so usage, saturation, overdue items and the plan
    /// have figures at once; on a reused data dir only the days since its last run. 0: none.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(0..=90))]
    pub history_days: u32,
    /// The console's language: en or zh-CN (default: LC_ALL / LC_MESSAGES / LANG).
    #[arg(long, env = "LOCKERFLEET_LANG")]
    pub lang: Option<l10n::Lang>,
}

/// `lockerfleet demo` and `fleet-sim demo`: the console in a terminal (its logs go to a file
/// in the data dir, or they would scribble over it), status lines otherwise.
pub async fn main(mut opts: DemoOptions) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    opts.console = !opts.headless && std::io::stdout().is_terminal();
    if opts.console {
        std::fs::create_dir_all(&opts.data_dir)
            .with_context(|| format!("creating {}", opts.data_dir.display()))?;
        cli::init_tracing_to_file("warn,rumqttd=off", &opts.data_dir.join("demo.log"))?;
    } else {
        cli::init_tracing("warn,rumqttd=off");
    }
    run(opts).await
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    anyhow::ensure!(opts.cabinets > 0, "--cabinets must be at least 1");
    anyhow::ensure!(opts.sites > 0, "--sites must be at least 1");
    let certs_dir = opts.data_dir.join("certs");
    let spec = FleetSpec {
        sites: opts.sites,
        cabinets: opts.cabinets,
        boxes: opts.boxes,
        // Occupancy comes from people using the boxes (the day simulation), not from noise.
        activity_per_sec: 0.0,
        stations: opts.stations,
        ..FleetSpec::default()
    };
    let ids: Vec<_> = (0..spec.cabinets).map(|n| cabinet_id(&spec, n)).collect();
    crate::fleet::ensure_certs(&certs_dir, &ids)?;
    let lang = opts.lang.unwrap_or_else(Lang::from_env);
    let layout = Layout::in_lang(&spec, lang);
    let server_cfg = fleet_server::ServerConfig {
        data_dir: opts.data_dir.join("server"),
        certs: Some(certs_dir.clone()),
        mqtt_listen: "127.0.0.1:0".parse()?,
        http_listen: "127.0.0.1:0".parse()?,
        ..Default::default()
    };
    println!("{}", t!(lang, "demo-title"));
    if opts.history_days > 0 {
        let bar = std::sync::Arc::new(HistoryBar::new(opts.history_days, lang));
        let summary = crate::history::load(
            server_cfg.clone(),
            layout.clone(),
            opts.history_days,
            HISTORY_SEED,
            fleet_server::now_ms(),
            bar.clone(),
            true,
        )
        .await
        .context("writing the demo's history")?;
        bar.finish();
        println!("  {}", summary.line(lang));
    }

    let server = fleet_server::start(server_cfg)
        .await
        .context("starting the fleet server")?;
    let token_file = opts
        .data_dir
        .join("server/admin-token")
        .display()
        .to_string();
    println!(
        "{}",
        t!(
            lang,
            "demo-addresses",
            mqtt = server.mqtt_addr.to_string(),
            http = server.http_addr.to_string(),
            token = token_file.as_str()
        )
    );

    let fleet = Fleet::start_holding(
        &spec,
        server.mqtt_addr,
        &certs_dir,
        &opts.data_dir.join("agents"),
        &items_in_boxes(&server.store).await?,
    )
    .await
    .context("starting the simulated fleet")?;
    let fleet = std::sync::Arc::new(fleet);
    let api = ApiClient::new(server.http_addr, &server.admin_token)?;
    let platform = crate::day::configure(&api, &layout)
        .await
        .context("configuring sites, cabinets and staff")?;
    // The planning screen has a city to plan: the example in docs/planning, whose corner is
    // where the demo's sites stand.
    for (path, body) in [
        (
            "/api/v1/planning/demand",
            include_str!("../../docs/planning/demand.csv"),
        ),
        (
            "/api/v1/planning/candidates",
            include_str!("../../docs/planning/candidates.csv"),
        ),
    ] {
        platform
            .put_text(path, "text/csv", body)
            .await
            .context("uploading the example city's planning inputs")?;
    }
    let day_stats = std::sync::Arc::new(crate::day::DayStats::default());
    let day_cancel = tokio_util::sync::CancellationToken::new();
    let day_tasks = tokio_util::task::TaskTracker::new();
    crate::day::run(
        api.clone(),
        platform,
        fleet.clone(),
        spec.clone(),
        opts.flows_per_minute,
        day_stats.clone(),
        day_cancel.clone(),
        &day_tasks,
    );

    let stop = tokio_util::sync::CancellationToken::new();
    if let Some(secs) = opts.duration {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.cancel();
        });
    }
    let status = Status {
        store: server.store.clone(),
        fleet: fleet.clone(),
        api: api.clone(),
        ids,
        spec: spec.clone(),
        day: day_stats.clone(),
        every: Duration::from_secs(opts.status_every.max(1)),
        quiet: opts.console,
        lang,
    };
    if opts.console {
        // The console in this terminal; the people, faults and remote opens go on behind it.
        let behind = tokio::spawn(status.run(stop.clone()));
        let url = format!("http://{}", server.http_addr);
        let result = tui::run(
            &url,
            &server.admin_token,
            tui::Settings::in_lang(lang),
            stop.clone(),
        )
        .await;
        stop.cancel();
        let _ = behind.await;
        if let Err(e) = result {
            tracing::error!(error = %e, "console failed");
            eprintln!(
                "{}",
                t!(lang, "demo-console-failed", error = format!("{e:#}"))
            );
        }
    } else {
        let ctrl_c = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            ctrl_c.cancel();
        });
        status.run(stop.clone()).await;
    }
    println!("{}", t!(lang, "demo-stopping"));
    day_cancel.cancel();
    day_tasks.close();
    day_tasks.wait().await;
    match std::sync::Arc::try_unwrap(fleet) {
        Ok(fleet) => fleet.shutdown().await,
        Err(_) => tracing::warn!("fleet still shared at shutdown; agents stop with the process"),
    }
    server.shutdown().await;
    Ok(())
}

/// The boxes the server says hold an item (from the history, or a run before on this data
/// dir), by cabinet: their fake occupancy sensors start occupied, so a helper who takes the
/// item out finds it there.
async fn items_in_boxes(
    store: &fleet_server::store::Store,
) -> anyhow::Result<std::collections::HashMap<String, Vec<protocol::BoxNo>>> {
    let mut held: std::collections::HashMap<String, Vec<protocol::BoxNo>> = Default::default();
    for state in ["in_box", "overdue"] {
        for item in store.items(None, Some(state), None, 1_000_000).await? {
            if let Some(b) = u16::try_from(item.box_no)
                .ok()
                .and_then(|b| protocol::BoxNo::new(b).ok())
            {
                held.entry(item.device_id).or_default().push(b);
            }
        }
    }
    Ok(held)
}

/// The history's progress on the terminal: simulated days played, and what they held.
struct HistoryBar {
    bar: indicatif::ProgressBar,
    lang: Lang,
}

impl HistoryBar {
    fn new(days: u32, lang: Lang) -> HistoryBar {
        let bar = indicatif::ProgressBar::new(1000);
        bar.set_style(
            indicatif::ProgressStyle::with_template("  history {bar:30} {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(t!(lang, "demo-history-writing", days = days));
        if bar.is_hidden() {
            println!("  {}", t!(lang, "demo-history-start", days = days));
        }
        HistoryBar { bar, lang }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl crate::history::Progress for HistoryBar {
    fn at(&self, done_ms: i64, total_ms: i64, s: &crate::history::Summary) {
        self.bar
            .set_position((done_ms * 1000 / total_ms.max(1)).clamp(0, 1000) as u64);
        self.bar.set_message(t!(
            self.lang,
            "demo-history-progress",
            day = format!("{:.1}", done_ms as f64 / 86_400_000.0),
            days = format!("{:.1}", total_ms as f64 / 86_400_000.0),
            reserved = s.reserved,
            refused = s.refused
        ));
    }
}

/// The status lines (unless quiet, behind the console) and an operator's remote open every
/// 10 s, until stopped.
struct Status {
    store: fleet_server::store::Store,
    fleet: std::sync::Arc<Fleet>,
    api: ApiClient,
    ids: Vec<protocol::DeviceId>,
    spec: FleetSpec,
    day: std::sync::Arc<crate::day::DayStats>,
    every: Duration,
    quiet: bool,
    lang: Lang,
}

impl Status {
    async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let (fleet, api, ids, spec, day_stats) =
            (self.fleet, self.api, self.ids, self.spec, self.day);
        let started = Instant::now();
        let mut status_tick = tokio::time::interval(self.every);
        let mut open_tick = tokio::time::interval(Duration::from_secs(10));
        let mut opens: Vec<(String, u128)> = Vec::new();
        let mut open_errors = 0u64;
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(64);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = status_tick.tick() => {
                    if self.quiet { continue; }
                    let totals = self.store.totals().await.unwrap_or_default();
                    let (seq, receipted) = fleet.sequence_totals();
                    let mut lat: Vec<u128> = opens.iter().map(|(_, l)| *l).collect();
                    lat.sort_unstable();
                    let p50 = lat.get(lat.len() / 2).copied().unwrap_or(0);
                    let opened = opens.iter().filter(|(s, _)| s == "opened").count();
                    println!(
                        "[{:>4}s] {}",
                        started.elapsed().as_secs(),
                        t!(
                            self.lang,
                            "demo-status",
                            online = totals.online,
                            devices = spec.cabinets + spec.stations,
                            stations = spec.stations,
                            events = totals.events,
                            unreceipted = seq.saturating_sub(receipted),
                            boxes = totals.boxes,
                            occupied = totals.occupied,
                            open = totals.open_doors,
                            opens = opens.len(),
                            opened = opened,
                            other = opens.len() - opened,
                            errors = open_errors,
                            p50 = p50 as u64
                        )
                    );
                    println!("        {}", day_stats.line(self.lang));
                    let all = self
                        .store
                        .alarms(&fleet_server::store::AlarmFilter {
                            state: Some("all".into()),
                            limit: 10_000,
                            ..Default::default()
                        })
                        .await
                        .unwrap_or_default();
                    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
                    for a in all.iter().filter(|a| a.state.is_open()) {
                        *kinds.entry(a.kind.as_str()).or_default() += 1;
                    }
                    let open: usize = kinds.values().sum();
                    let acked = all
                        .iter()
                        .filter(|a| a.state == domain::alarms::AlarmState::Acknowledged)
                        .count();
                    let kinds: Vec<String> = kinds
                        .iter()
                        .map(|(k, n)| format!("{} {n}", t!(self.lang, "domain-alarm-kind", kind = *k)))
                        .collect();
                    println!(
                        "        {}",
                        t!(
                            self.lang,
                            "demo-alarms",
                            open = open,
                            acked = acked,
                            kinds = kinds.join(", "),
                            cleared = all.len() - open
                        )
                    );
                }
                _ = open_tick.tick() => {
                    // Somebody is stuck at a locker: an operator opens a box remotely.
                    let (device, box_no) = {
                        let mut rng = rand::thread_rng();
                        (ids[rng.gen_range(0..ids.len())].to_string(), rng.gen_range(1..=spec.boxes))
                    };
                    let api = api.clone();
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let r = api.open_and_wait(&device, box_no, "demo: citizen cannot open the box with the code", Duration::from_secs(40)).await;
                        let _ = done.send(r).await;
                    });
                }
                Some(r) = done_rx.recv() => match r {
                    Ok(o) => opens.push((o.status, o.round_trip.as_millis())),
                    Err(e) => {
                        open_errors += 1;
                        tracing::warn!(error = %e, "remote open in the demo failed");
                    }
                }
            }
        }
    }
}

//! `device-agent`: parses configuration (file, `LOCKERFLEET_*` env, flags) and runs one agent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use device_agent::{
    AgentConfig, FakeConfig, FakeLocks, Hardware, LockDriver, ModbusLocks, SoftKeypad,
};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "device-agent",
    version = device_agent::AGENT_VERSION,
    about = "LockerFleet device agent for one cabinet"
)]
struct Args {
    /// TOML config file; flags and LOCKERFLEET_* variables override its values.
    #[arg(long, env = "LOCKERFLEET_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Device id (the common name of its certificate).
    #[arg(long, env = "LOCKERFLEET_DEVICE_ID")]
    id: Option<String>,
    /// Broker address HOST:PORT.
    #[arg(long, env = "LOCKERFLEET_SERVER")]
    server: Option<String>,
    /// Folder with ca.crt, ID.crt, ID.key.
    #[arg(long, env = "LOCKERFLEET_CERTS")]
    certs: Option<PathBuf>,
    /// Number of boxes in the cabinet.
    #[arg(long, env = "LOCKERFLEET_BOXES")]
    boxes: Option<u16>,
    /// What the device is: locker, kiosk, tax_machine or printer (stations have no boxes).
    #[arg(long, env = "LOCKERFLEET_PROFILE", value_parser = parse_profile)]
    profile: Option<protocol::Profile>,
    /// Seconds between heartbeats (the server takes a device as gone after two missed).
    #[arg(long, env = "LOCKERFLEET_HEARTBEAT_SECS")]
    heartbeat_secs: Option<u64>,
    /// Lock hardware: `fake`, `modbus-tcp://HOST:PORT` or `modbus-rtu:///dev/ttyX?baud=9600`
    /// (the register map is the config file's `[modbus]` section).
    #[arg(long, env = "LOCKERFLEET_HARDWARE")]
    hardware: Option<String>,
    /// A Unix socket for the cabinet's screen application to type codes and staff entries.
    /// The language a technician reads (`doctor`, remote doctor reports): en or zh-CN
    /// (default: the config file's `lang`, else LC_ALL / LC_MESSAGES / LANG).
    #[arg(long, env = "LOCKERFLEET_LANG", global = true)]
    lang: Option<l10n::Lang>,
    #[arg(long, env = "LOCKERFLEET_KEYPAD_SOCKET")]
    keypad_socket: Option<PathBuf>,
    /// Outbox and command journal directory.
    #[arg(long, env = "LOCKERFLEET_AGENT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Longest wait between reconnect attempts, ms (backoff doubles up to it, with jitter).
    #[arg(long, env = "LOCKERFLEET_MAX_BACKOFF_MS")]
    max_backoff_ms: Option<u64>,
    /// Seconds a new agent version has to connect and pass its self-check before the
    /// supervisor goes back to the version before.
    #[arg(long, env = "LOCKERFLEET_TRIAL_SECS")]
    trial_secs: Option<u64>,
    /// Set by `device-agent supervise` for the agent it runs.
    #[arg(long, env = device_agent::supervisor::SUPERVISED_ENV, hide = true)]
    supervised: bool,
    /// Set by `device-agent supervise`: the version this run is on trial as.
    #[arg(long, env = device_agent::supervisor::TRIAL_ENV, hide = true)]
    trial: Option<String>,
    /// Fake hardware: share of unlock pulses that jam (0..1).
    #[arg(long)]
    fake_jam_rate: Option<f64>,
    /// Fake hardware: a door opened by a pulse closes after this many ms.
    #[arg(long)]
    fake_close_after_ms: Option<u64>,
    /// Fake hardware: simulated occupancy changes per second.
    #[arg(long)]
    fake_activity_per_sec: Option<f64>,
    /// Fake hardware: stop simulated activity after this many changes.
    #[arg(long)]
    fake_activity_limit: Option<u64>,
    /// Fake hardware: append every unlock pulse to this file (synced before the pulse).
    #[arg(long)]
    fake_pulse_log: Option<std::path::PathBuf>,
    /// Run with this machine's clock this many ms off (tests of clock handling).
    #[arg(long, allow_hyphen_values = true)]
    fake_clock_skew_ms: Option<i64>,
    /// Fake hardware: serve a control socket on this loopback address (port 0: any) to type
    /// at the keypad and move doors; the bound address is printed as
    /// `LOCKERFLEET_AGENT_CONTROL addr=...`.
    #[arg(long, env = "LOCKERFLEET_FAKE_CONTROL")]
    fake_control: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Check this cabinet without running it: certificate and days to expiry, clock, the
    /// server reachable with the certificate accepted, every box answering, disk space for the
    /// outbox. Prints PASS/FAIL per check; exits 1 if any fails. Safe beside a running agent.
    Doctor {
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the agent under a supervisor that installs new versions and keeps the cabinet on a
    /// good one: the version `releases/current` names (else this binary) with the arguments
    /// that follow, restarted when it stops; a new version runs on trial and is replaced by
    /// the one before unless it confirms itself within `trial_secs`. Put it first:
    /// `device-agent supervise --config /etc/lockerfleet/agent.toml`.
    Supervise {
        /// The agent's own flags, passed to every version as they are.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

impl Args {
    fn into_config(self) -> anyhow::Result<AgentConfig> {
        let mut cfg = match &self.config {
            Some(path) => AgentConfig::from_file(path)?,
            None => AgentConfig::default(),
        };
        macro_rules! overlay {
            ($($field:ident),*) => {$( if let Some(v) = self.$field { cfg.$field = v; } )*};
        }
        overlay!(
            id,
            server,
            certs,
            boxes,
            profile,
            heartbeat_secs,
            hardware,
            data_dir,
            max_backoff_ms,
            trial_secs
        );
        cfg.supervised = self.supervised;
        cfg.trial = self.trial;
        if self.lang.is_some() {
            cfg.lang = self.lang;
        }
        if let Some(v) = self.fake_jam_rate {
            cfg.fake.jam_rate = v;
        }
        if let Some(v) = self.fake_close_after_ms {
            cfg.fake.close_after_ms = v;
        }
        if let Some(v) = self.fake_activity_per_sec {
            cfg.fake.activity_per_sec = v;
        }
        if let Some(v) = self.fake_clock_skew_ms {
            cfg.fake.clock_skew_ms = v;
        }
        if self.fake_activity_limit.is_some() {
            cfg.fake.activity_limit = self.fake_activity_limit;
        }
        if self.fake_pulse_log.is_some() {
            cfg.fake.pulse_log = self.fake_pulse_log;
        }
        if self.keypad_socket.is_some() {
            cfg.keypad_socket = self.keypad_socket;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

fn parse_profile(s: &str) -> Result<protocol::Profile, String> {
    protocol::Profile::parse(s)
        .ok_or_else(|| format!("{s:?} is not a profile; use locker, kiosk, tax_machine or printer"))
}

fn main() -> std::process::ExitCode {
    cli::run_main_code(run)
}

/// How the agent ended: `INSTALL_EXIT` asks the supervisor to switch versions.
async fn run() -> anyhow::Result<std::process::ExitCode> {
    device_agent::logs::init("info,rumqttc=warn,sqlx=warn");
    let _ = rustls::crypto::ring::default_provider().install_default();

    let mut args = Args::parse();
    let command = args.command.take();
    if let Some(Cmd::Supervise { args: agent_args }) = command {
        return supervise(agent_args).await;
    }
    let control = args.fake_control;
    let cfg = args.into_config()?;
    let hardware = cfg.hardware()?;
    if let Some(Cmd::Doctor { json }) = command {
        match hardware {
            Hardware::Fake => doctor(&cfg, &fake_locks(&cfg), json).await?,
            Hardware::Modbus(bus) => doctor(&cfg, &modbus_locks(&cfg, bus)?, json).await?,
            Hardware::Gpio(chip) => doctor(&cfg, &gpio_locks(&cfg, chip)?, json).await?,
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    anyhow::ensure!(
        control.is_none() || hardware == Hardware::Fake,
        "--fake-control drives fake hardware; drop it or use --hardware fake"
    );
    match hardware {
        Hardware::Fake => {
            let fake = Arc::new(fake_locks(&cfg));
            serve(cfg, fake.clone(), Some(fake), control).await
        }
        Hardware::Modbus(bus) => {
            let locks = Arc::new(modbus_locks(&cfg, bus)?);
            tracing::info!(boards = ?locks.boards(), "lock boards");
            serve(cfg, locks, None, None).await
        }
        Hardware::Gpio(chip) => {
            let locks = Arc::new(gpio_locks(&cfg, chip)?);
            tracing::info!(lines = ?locks, "GPIO locks");
            serve(cfg, locks, None, None).await
        }
    }
}

fn gpio_locks(
    cfg: &AgentConfig,
    chip: std::path::PathBuf,
) -> anyhow::Result<device_agent::GpioLocks<device_agent::ChipLines>> {
    let lines = device_agent::ChipLines::new(chip, &cfg.gpio);
    device_agent::GpioLocks::new(lines, &cfg.gpio, cfg.boxes)
        .map_err(|why| anyhow::anyhow!("config value `gpio` {why}"))
}

fn fake_locks(cfg: &AgentConfig) -> FakeLocks {
    FakeLocks::new(FakeConfig {
        boxes: cfg.boxes,
        close_after: Duration::from_millis(cfg.fake.close_after_ms),
        jam_rate: cfg.fake.jam_rate,
        profile: cfg.profile,
        pulse_log: cfg.fake.pulse_log.clone(),
    })
}

fn modbus_locks(cfg: &AgentConfig, bus: device_agent::BusAddress) -> anyhow::Result<ModbusLocks> {
    ModbusLocks::new(bus, &cfg.modbus, cfg.boxes)
        .map_err(|why| anyhow::anyhow!("config value `modbus.boards` {why}"))
}

/// `device-agent supervise ARGS`: runs the current agent version with ARGS until a signal.
async fn supervise(agent_args: Vec<std::ffi::OsString>) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(
        std::env::args_os().nth(1).is_some_and(|a| a == "supervise"),
        "put `supervise` first and the agent's flags after it: \
         device-agent supervise --config /etc/lockerfleet/agent.toml"
    );
    let parsed = Args::try_parse_from(
        std::iter::once(std::ffi::OsString::from("device-agent")).chain(agent_args.iter().cloned()),
    )
    .map_err(|e| anyhow::anyhow!("the agent's flags after `supervise`: {e}"))?;
    anyhow::ensure!(
        parsed.command.is_none(),
        "`supervise` runs the agent; give it the agent's flags, not another command"
    );
    let cfg = parsed.into_config()?;
    let supervisor = device_agent::supervisor::Supervisor {
        data_dir: cfg.data_dir.clone(),
        factory: std::env::current_exe().context("the supervisor's own path")?,
        args: agent_args,
        trial: Duration::from_secs(cfg.trial_secs),
        restart_delay: Duration::from_secs(2),
        stop_timeout: Duration::from_secs(15),
    };
    tracing::info!(data_dir = %cfg.data_dir.display(), trial_secs = cfg.trial_secs, "supervising the agent");
    let cancel = CancellationToken::new();
    let signal = cancel.clone();
    tokio::spawn(async move {
        cli::shutdown_signal().await;
        signal.cancel();
    });
    supervisor
        .run(cancel)
        .await
        .with_context(|| format!("supervising the agent in {}", cfg.data_dir.display()))?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Runs the agent on `driver` until a signal (or an install for the supervisor); `fake` is the
/// same hardware when it is fake (its control socket and simulated activity).
async fn serve<D: LockDriver>(
    cfg: AgentConfig,
    driver: Arc<D>,
    fake: Option<Arc<FakeLocks>>,
    control: Option<std::net::SocketAddr>,
) -> anyhow::Result<std::process::ExitCode> {
    let id = protocol::DeviceId::parse(&cfg.id)?;
    // A certificate renewed earlier (identity.pem in the data dir) before the issued one.
    let now = device_agent::Clock::new(cfg.fake.clock_skew_ms).now_ms();
    let identity = device_agent::renew::load_identity(&cfg.certs, &cfg.data_dir, &id, now)?;
    tracing::info!(device = %id, certificate = %identity.source.display(), "identity");
    let tls = identity.tls;
    let cancel = CancellationToken::new();
    let activity = (cfg.fake.activity_per_sec, cfg.fake.activity_limit);
    let (boxes, hardware) = (cfg.boxes, cfg.hardware.clone());
    let supervised = cfg.supervised;
    let keypad_socket = cfg.keypad_socket.clone();
    let (keypad, keys) = SoftKeypad::new();
    let agent = device_agent::start(cfg, driver, keypad, tls, cancel.clone())
        .await
        .context("agent failed to start")?;
    if let Some(path) = &keypad_socket {
        device_agent::keypad_socket::serve(path, keys.clone(), cancel.child_token())
            .await
            .with_context(|| format!("keypad socket {}", path.display()))?;
        tracing::info!(socket = %path.display(), "keypad socket");
    }
    let mut sim = None;
    if let Some(fake) = fake {
        if let Some(addr) = control {
            let (bound, _task) = device_agent::control::serve(
                addr,
                fake.clone(),
                keys,
                agent.outbox.clone(),
                cancel.child_token(),
            )
            .await
            .with_context(|| format!("fake control socket on {addr}"))?;
            println!("LOCKERFLEET_AGENT_CONTROL addr={bound}");
        }
        sim = Some(tokio::spawn(device_agent::simulate_activity(
            fake,
            agent.recorder.clone(),
            activity.0,
            activity.1,
            cancel.clone(),
        )));
    }
    println!("LOCKERFLEET_AGENT_READY id={}", agent.id);
    device_agent::systemd::ready(&format!("running: {boxes} boxes on {hardware}"));
    let watchdog = tokio::spawn(device_agent::systemd::watchdog(
        agent.stats.clone(),
        cancel.clone(),
    ));
    let exit = tokio::select! {
        _ = cli::shutdown_signal() => None,
        _ = supervisor_gone(supervised) => None,
        _ = agent.install_requested() => Some(device_agent::supervisor::INSTALL_EXIT),
        _ = agent.restart_requested() => Some(device_agent::supervisor::RESTART_EXIT),
    };
    tracing::info!(?exit, "shutting down");
    device_agent::systemd::stopping();
    cancel.cancel();
    let _ = watchdog.await;
    if let Some(sim) = sim {
        let _ = sim.await;
    }
    agent.shutdown().await;
    Ok(exit.map_or(
        std::process::ExitCode::SUCCESS,
        std::process::ExitCode::from,
    ))
}

/// Completes when the supervisor that runs this agent is gone (the pipe it holds as our
/// stdin closes): an agent never outlives it, so no two versions run at once. Never
/// completes for an agent that is not supervised.
async fn supervisor_gone(supervised: bool) {
    if !supervised {
        return std::future::pending().await;
    }
    // A plain thread, not the runtime's blocking pool: the runtime would wait for a read
    // that never ends when the agent stops for another reason.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    let _ = rx.await;
    tracing::warn!("the supervisor is gone; stopping");
}

/// `device-agent doctor`: the checks, printed; an error (exit 1) when any failed.
async fn doctor<D: LockDriver>(cfg: &AgentConfig, locks: &D, json: bool) -> anyhow::Result<()> {
    let lang = cfg.lang();
    let checks = device_agent::doctor::run(cfg, locks, lang).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        print!("{}", device_agent::doctor::render(&checks, lang));
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    anyhow::ensure!(
        failed == 0,
        "{}",
        l10n::t!(
            lang,
            "doctor-summary-failed",
            failed = failed,
            total = checks.len()
        )
    );
    Ok(())
}

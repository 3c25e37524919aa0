//! The device agent: drives a cabinet's locks, records door and occupancy changes in a durable
//! outbox, sends them over mutual-TLS MQTT until receipted, and executes remote commands once.
//!
//! Tasks of one agent: the MQTT event loop (reconnects with backoff and jitter), the sensor
//! watcher, the uplink (the main loop: outbox → events, receipts, snapshot, command dispatch,
//! code grants), the keypad (codes and staff credentials verified locally), and one task per
//! command. A lock operation never waits on the network.

pub(crate) mod backoff;
mod central;
mod clock;
pub(crate) mod codes;
mod commands;
pub(crate) mod config;
pub mod control;
mod diagnose;
pub mod doctor;
pub(crate) mod driver;
mod entry;
pub(crate) mod faults;
pub(crate) mod gpio;
pub(crate) mod keypad;
pub mod keypad_socket;
pub mod logs;
pub(crate) mod modbus;
mod net;
pub(crate) mod outbox;
mod recorder;
pub mod renew;
pub(crate) mod serial;
pub(crate) mod simulate;
pub mod supervisor;
pub mod systemd;
mod tls;
mod update;
mod uplink;
mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use protocol::{
    AckStatus, BoxNo, BoxState, BusHealth, Channel, DeviceId, EventBody, FaultKind, Power,
};
use rumqttc::{AsyncClient, MqttOptions, QoS, Transport};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{
    commands::INTERRUPTED,
    entry::keypad_loop,
    net::{drive, presence},
    uplink::{Renew, uplink},
    watch::{HealthNow, watch},
};
pub use backoff::Backoff;
pub use clock::Clock;
pub use codes::CodeBook;
pub use config::{
    AgentConfig, BoardSettings, FakeSettings, GpioBias, GpioSettings, Hardware, ModbusSettings,
};
pub use driver::{BoxReading, DriverError, FakeConfig, FakeLocks, LockDriver, Signals};
pub use faults::Faults;
pub use gpio::{ChipLines, GpioLocks};
pub use keypad::{EntryOutcome, Keypad, KeypadEntry, SoftKeypad, SoftKeypadHandle};
pub use modbus::{BusAddress, ModbusLocks};
pub use outbox::{Durability, Outbox, OutboxError};
pub use recorder::Recorder;
pub use simulate::simulate_activity;
pub use tls::client_tls;

/// The version compiled into this binary (`build.rs`): what it reports and installs as.
pub const AGENT_VERSION: &str = env!("LOCKERFLEET_AGENT_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("TLS material for device {id} in {dir}: {source}")]
    Certs {
        id: String,
        dir: String,
        source: Box<certs::CertError>,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("lock hardware: {0}")]
    Driver(#[from] DriverError),
}

/// Live counters of one agent (the simulator and tests read them).
#[derive(Debug, Default)]
pub struct AgentStats {
    pub connected: AtomicBool,
    pub connects: AtomicU64,
    /// Highest seq the server has receipted.
    pub receipted: AtomicU64,
    pub last_seq: AtomicU64,
    pub commands: AtomicU64,
    /// Boxes opened from the keypad (codes and staff).
    pub keypad_opens: AtomicU64,
    /// Sensor polls completed (the systemd watchdog is fed while this moves).
    pub polls: AtomicU64,
}

/// A started agent.
pub struct RunningAgent {
    pub id: DeviceId,
    pub stats: Arc<AgentStats>,
    pub recorder: Arc<Recorder>,
    pub outbox: Arc<Outbox>,
    pub codes: Arc<CodeBook>,
    /// This agent's clock (its own skew, the server offset it learned).
    pub clock: Arc<Clock>,
    cancel: CancellationToken,
    install: CancellationToken,
    restart: CancellationToken,
    tracker: TaskTracker,
}

impl RunningAgent {
    /// Completes when the agent handed an install to its supervisor: stop it and exit with
    /// [`supervisor::INSTALL_EXIT`].
    pub async fn install_requested(&self) {
        self.install.cancelled().await
    }

    /// Completes when a stored configuration needs a restart and the cabinet is idle: stop
    /// it and exit with [`supervisor::RESTART_EXIT`].
    pub async fn restart_requested(&self) {
        self.restart.cancelled().await
    }

    /// Ordered stop: sensors and commands stop, the MQTT session closes, the outbox closes.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.outbox.close().await;
    }

    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

pub(crate) struct Ctx<D> {
    cfg: AgentConfig,
    id: DeviceId,
    driver: Arc<D>,
    outbox: Arc<Outbox>,
    recorder: Arc<Recorder>,
    clock: Arc<Clock>,
    client: AsyncClient,
    box_locks: Vec<Mutex<()>>,
    stats: Arc<AgentStats>,
    notify: Arc<Notify>,
    codes: Arc<CodeBook>,
    health: std::sync::Mutex<HealthNow>,
    started: Instant,
    /// Agent releases offered by the server: checked, fetched and staged (`update/`).
    staging: Mutex<update::Staging>,
    /// Commands being executed now (an install waits for none).
    commands_in_flight: AtomicUsize,
    /// When someone last pressed a key or finished an entry.
    keypad_at: std::sync::Mutex<Option<Instant>>,
    /// Cancelled once an install was handed to the supervisor.
    install: CancellationToken,
    /// Central configuration: what the server wants and what is in effect.
    central: Mutex<central::Central>,
    /// Cancelled when a stored configuration needs a restart and the cabinet is idle.
    restart: CancellationToken,
    /// The server's configuration sets, to the one task that applies them in order.
    config_tx: mpsc::Sender<protocol::ConfigSync>,
    /// One diagnostics answer at a time: a burst of requests never runs the board checks
    /// side by side.
    diagnosing: Mutex<()>,
}

impl<D> Ctx<D> {
    pub(crate) fn keypad_touched(&self) {
        if let Ok(mut at) = self.keypad_at.lock() {
            *at = Some(Instant::now());
        }
    }

    pub(crate) fn keypad_active_within(&self, d: Duration) -> bool {
        self.keypad_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|t| t.elapsed() < d)
    }
}

/// Starts an agent on `driver`. Opens the outbox, reads every sensor once, records a
/// `started` event, and connects.
pub async fn start<D: LockDriver, K: Keypad>(
    mut cfg: AgentConfig,
    driver: Arc<D>,
    keypad: K,
    tls: Arc<rustls::ClientConfig>,
    cancel: CancellationToken,
) -> Result<RunningAgent, AgentError> {
    cfg.validate()?;
    // The server's settings over the file's, before anything reads them.
    let mut central = central::Central::load(&mut cfg).await;
    logs::set_level(cfg.log_level);
    let id = DeviceId::parse(&cfg.id).map_err(|e| config::ConfigError::Invalid {
        key: "id",
        why: e.to_string(),
    })?;
    let mut addrs = cfg.server_addrs()?;
    // A fleet spreads over the broker nodes, each cabinet starting at its own (ADR 0024).
    let first = net::first_node(&id, addrs.len());
    addrs.rotate_left(first);
    let (outbox, recovered) = Outbox::open_or_recover(&cfg.data_dir, cfg.durability).await?;
    let outbox = Arc::new(outbox);
    let clock = Arc::new(Clock::new(cfg.fake.clock_skew_ms));
    // The last offset learned from the server, until a receipt brings a fresh one.
    let offset = outbox.clock_offset().await?;
    if offset != 0 {
        clock.restore(offset);
        tracing::info!(device = %id, offset_ms = offset, "judging times with the server clock offset learned before");
    }
    if let Some(r) = &recovered {
        tracing::error!(device = %id, moved_to = %r.moved_to, cause = %r.cause,
            salvaged = ?r.salvaged, "outbox file was damaged; started a fresh one");
        // The server hears of it as an event of its own, in order with what follows.
        outbox
            .append(clock.now_ms(), vec![EventBody::Lost { detail: r.detail() }])
            .await?;
    }
    let stats = Arc::new(AgentStats::default());
    let notify = Arc::new(Notify::new());

    let faults = Arc::new(
        Faults::load(
            outbox.clone(),
            driver.boxes(),
            // A door opening this soon after its pulse was opened by it.
            Duration::from_millis(cfg.jam_timeout_ms + 2_000),
            Duration::from_secs(cfg.door_open_alarm_secs),
        )
        .await?,
    );
    let mut known = Vec::with_capacity(usize::from(driver.boxes()));
    for b in BoxNo::all(driver.boxes()) {
        let door_open = driver.door_open(b).await?;
        if door_open {
            faults.door_open_at_start(b);
        } else {
            // Door faults that ended while the agent was down end now, once.
            for kind in [FaultKind::ForcedOpen, FaultKind::DoorLeftOpen] {
                faults
                    .clear(
                        Some(b),
                        kind,
                        protocol::evidence::say(protocol::evidence::Code::DoorClosedAtStart, &[]),
                        clock.now_ms(),
                    )
                    .await?;
            }
        }
        known.push(BoxState {
            box_no: b,
            door_open,
            occupied: driver.occupied(b).await?,
        });
    }
    let recorder = Arc::new(Recorder {
        known: Mutex::new(known),
        changed_at: Default::default(),
        outbox: outbox.clone(),
        clock: clock.clone(),
        notify: notify.clone(),
        stats: stats.clone(),
        faults,
    });
    outbox
        .append(
            clock.now_ms(),
            vec![EventBody::Started {
                boxes: driver.boxes(),
                agent_version: AGENT_VERSION.into(),
            }],
        )
        .await?;
    if let Some(event) = central.at_start() {
        outbox.append(clock.now_ms(), vec![event]).await?;
    }
    // A command the previous run journaled but never finished may or may not have pulsed
    // its lock: report it failed now (never pulse it again), so the server learns the truth
    // without waiting for a redelivery.
    for (command, b) in outbox.interrupted().await? {
        tracing::warn!(device = %id, %command, "command interrupted by a restart; reporting failed");
        outbox
            .finish_command(
                &command,
                b,
                AckStatus::Failed,
                Some(INTERRUPTED.into()),
                clock.now_ms(),
            )
            .await?;
    }
    let codes = Arc::new(CodeBook::load(id.clone(), outbox.clone(), cfg.lockout()).await?);
    let release_keys = match &cfg.release_keys {
        None => None,
        Some(path) => {
            Some(
                certs::load_trusted_keys(path).map_err(|e| config::ConfigError::Invalid {
                    key: "release_keys",
                    why: e.to_string(),
                })?,
            )
        }
    };
    let running = protocol::release::Version::parse(AGENT_VERSION).map_err(|why| {
        config::ConfigError::Invalid {
            key: "version",
            why,
        }
    })?;
    let staging = update::Staging::load(&cfg.data_dir, release_keys, running).await;
    // Same rule as commands: a code recorded as used but not reported may have pulsed its
    // lock; it stays spent and is reported now.
    for (item, b) in outbox.unreported_code_uses().await? {
        tracing::warn!(device = %id, %item, "code use interrupted by a restart; reporting it spent");
        outbox
            .finish_code_use(&item, b, AckStatus::Failed, clock.now_ms())
            .await?;
    }
    outbox
        .prune_code_uses(clock.now_ms() - 7 * 24 * 3_600_000)
        .await?;
    // How the last trial ended, as the supervisor wrote it: reported once recorded.
    if let Some((event, layout)) = update::install::take_outcome(&cfg.data_dir).await {
        outbox.append(clock.now_ms(), vec![event]).await?;
        if let Err(e) = layout.remove(update::layout::OUTCOME) {
            tracing::warn!(device = %id, error = %e, "cannot remove the reported trial outcome");
        }
    }
    stats.last_seq.store(outbox.last_seq(), Ordering::Relaxed);

    let options = {
        let (id, keep_alive, clock) = (id.clone(), cfg.keep_alive_secs, clock.clone());
        move |(host, port): &(String, u16), tls: Arc<rustls::ClientConfig>| {
            let mut options = MqttOptions::new(id.as_str(), host.as_str(), *port);
            options
                .set_keep_alive(Duration::from_secs(keep_alive))
                .set_clean_session(true)
                .set_max_packet_size(1024 * 1024, 1024 * 1024)
                .set_transport(Transport::tls_with_config(
                    rumqttc::TlsConfiguration::Rustls(tls),
                ))
                // An external broker publishes this when the connection dies without a
                // goodbye; the embedded front reports sessions itself and drops it
                // (PROTOCOL.md, Presence).
                .set_last_will(rumqttc::LastWill::new(
                    protocol::topic::device_topic(&id, Channel::Presence),
                    protocol::encode(&presence(false, "connection lost", clock.now_ms())),
                    QoS::AtLeastOnce,
                    true,
                ));
            options
        }
    };
    let (client, mut eventloop) = AsyncClient::new(options(&addrs[0], tls.clone()), 256);
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    eventloop.set_network_options(net);

    let (config_tx, config_rx) = mpsc::channel(8);
    let ctx = Arc::new(Ctx {
        box_locks: (0..driver.boxes()).map(|_| Mutex::new(())).collect(),
        cfg,
        id: id.clone(),
        driver,
        outbox: outbox.clone(),
        recorder: recorder.clone(),
        client,
        stats: stats.clone(),
        notify,
        codes: codes.clone(),
        health: std::sync::Mutex::new(HealthNow {
            lock_bus: BusHealth::Ok,
            power: Power::Unknown,
            station: None,
        }),
        clock: clock.clone(),
        started: Instant::now(),
        staging: Mutex::new(staging),
        commands_in_flight: AtomicUsize::new(0),
        keypad_at: std::sync::Mutex::new(None),
        install: CancellationToken::new(),
        central: Mutex::new(central),
        restart: CancellationToken::new(),
        config_tx,
        diagnosing: Mutex::new(()),
    });
    let install = ctx.install.clone();
    let restart = ctx.restart.clone();
    let tracker = TaskTracker::new();
    let (net_tx, net_rx) = mpsc::channel(1024);
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let (tls_tx, tls_rx) = mpsc::channel(1);
    let renewal = match renew::load_identity(
        &ctx.cfg.certs,
        &ctx.cfg.data_dir,
        &id,
        ctx.clock.now_ms(),
    ) {
        Ok(identity) => renew::Renewal::new(
            id.clone(),
            ctx.cfg.certs.clone(),
            ctx.cfg.data_dir.clone(),
            ctx.cfg.renew_before_days,
            identity.not_after_ms,
        ),
        Err(e) => {
            tracing::warn!(device = %id, error = %e, "certificate expiry unknown; no automatic renewal");
            renew::Renewal::new(
                id.clone(),
                ctx.cfg.certs.clone(),
                ctx.cfg.data_dir.clone(),
                0,
                0,
            )
        }
    };
    tracker.spawn(drive(
        eventloop,
        net::Nodes {
            addrs,
            tls,
            options: Box::new(options),
            // As long as the broker waits for a ping: a node that takes publishes for a
            // whole keep-alive and acknowledges none is no better than a silent one.
            stall_after: Duration::from_secs(ctx.cfg.keep_alive_secs),
        },
        net::Heard {
            net: net_tx,
            commands: commands_tx,
            clock: ctx.clock.clone(),
        },
        tls_rx,
        cancel.clone(),
        Duration::from_millis(ctx.cfg.max_backoff_ms),
        id.clone(),
    ));
    tracker.spawn(commands::receive(
        ctx.clone(),
        commands_rx,
        tracker.clone(),
        cancel.clone(),
    ));
    tracker.spawn(watch(ctx.clone(), cancel.clone()));
    tracker.spawn(central::run(ctx.clone(), config_rx, cancel.clone()));
    tracker.spawn(keypad_loop(ctx.clone(), keypad, cancel.clone()));
    if let Some(version) = ctx.cfg.trial.clone() {
        tracker.spawn(update::install::confirm(
            ctx.clone(),
            version,
            cancel.clone(),
        ));
    }
    tracker.spawn(uplink(
        ctx,
        net_rx,
        Renew {
            state: renewal,
            tls: tls_tx,
        },
        cancel.clone(),
        tracker.clone(),
    ));
    Ok(RunningAgent {
        id,
        stats,
        recorder,
        outbox,
        codes,
        clock,
        cancel,
        install,
        restart,
        tracker,
    })
}

#[cfg(test)]
mod tests;

//! The device agent: drives a cabinet's locks, records door and occupancy changes in a durable
//! outbox, sends them over mutual-TLS MQTT until receipted, and executes remote commands once.
//!
//! Tasks of one agent: the MQTT event loop (reconnects with backoff and jitter), the sensor
//! watcher, the uplink (the main loop: outbox → events, receipts, snapshot, command dispatch,
//! code grants), the keypad (codes and staff credentials verified locally), and one task per
//! command. A lock operation never waits on the network.

pub mod backoff;
pub mod codes;
pub mod config;
pub mod control;
pub mod doctor;
pub mod driver;
pub mod faults;
pub mod gpio;
pub mod keypad;
pub mod keypad_socket;
pub mod modbus;
pub mod outbox;
pub mod renew;
pub mod serial;
pub mod systemd;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use protocol::{
    AckStatus, BoxNo, BoxState, BusHealth, CertReply, Channel, CodeSync, Command, CommandAck,
    CommandAction, DeviceId, DeviceTopic, EventBatch, EventBody, FaultKind, Heartbeat, Power,
    Receipt, RejectReason, StateSnapshot, StationStatus,
};
use rand::Rng;
use rumqttc::{AsyncClient, ClientError, Event, EventLoop, MqttOptions, Packet, QoS, Transport};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use backoff::Backoff;
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

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

const INTERRUPTED: &str =
    "the agent restarted while executing this command; the lock is not pulsed again";

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

/// The server's clock minus this cabinet's, learned from receipts (`Receipt::at`). One per
/// process: an agent is a process; in-process simulators share the server's host clock.
static CLOCK_OFFSET_MS: AtomicI64 = AtomicI64::new(0);
/// A wrong real-time clock, for tests and demonstrations (`--fake-clock-skew-ms`).
static FAKE_SKEW_MS: AtomicI64 = AtomicI64::new(0);
/// Offsets closer than this to the current one are network delay, not a wrong clock.
const CLOCK_TOLERANCE_MS: i64 = 1_000;

/// This machine's own clock (epoch ms), however wrong.
pub(crate) fn local_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        + FAKE_SKEW_MS.load(Ordering::Relaxed)
}

/// Now on the server's clock, as far as this agent knows it: every time it stamps or judges
/// (event times, command expiry, code windows, lockouts) comes from here, so a cabinet whose
/// clock is hours off still judges server-issued times right once it has heard the server.
pub fn now_ms() -> i64 {
    local_ms() + CLOCK_OFFSET_MS.load(Ordering::Relaxed)
}

/// Makes this process's clock run `skew_ms` off the real one (tests of clock handling).
pub fn set_fake_clock_skew(skew_ms: i64) {
    FAKE_SKEW_MS.store(skew_ms, Ordering::Relaxed);
}

/// Recent offset samples (server time in a receipt minus local time at its arrival).
static SAMPLES: std::sync::Mutex<std::collections::VecDeque<i64>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());
/// Samples kept: a receipt delayed by a busy link or server gives a sample too low by its
/// delay, never too high, so the best estimate is the highest of the last few.
const SAMPLE_WINDOW: usize = 16;

/// The new offset when the best of the recent samples is further than the tolerance from
/// `current`.
fn adopt_offset(current: i64, samples: &std::collections::VecDeque<i64>) -> Option<i64> {
    let best = samples.iter().copied().max()?;
    ((best - current).abs() > CLOCK_TOLERANCE_MS).then_some(best)
}

/// Learns the server's clock from a receipt; the new offset when it changed.
fn learn_server_clock(server_at: i64) -> Option<i64> {
    let mut samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    if samples.len() == SAMPLE_WINDOW {
        samples.pop_front();
    }
    samples.push_back(server_at - local_ms());
    let offset = adopt_offset(CLOCK_OFFSET_MS.load(Ordering::Relaxed), &samples)?;
    CLOCK_OFFSET_MS.store(offset, Ordering::Relaxed);
    Some(offset)
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

/// TLS client settings: trust our CA, present the device's certificate.
pub fn client_tls(
    certs_dir: &std::path::Path,
    id: &DeviceId,
) -> Result<Arc<rustls::ClientConfig>, AgentError> {
    let err = |source| AgentError::Certs {
        id: id.to_string(),
        dir: certs_dir.display().to_string(),
        source: Box::new(source),
    };
    let roots = certs::load_roots(&certs_dir.join(certs::CA_CERT)).map_err(err)?;
    let chain = certs::load_certs(&certs::device_cert_path(certs_dir, id)).map_err(err)?;
    let key = certs::load_key(&certs::device_key_path(certs_dir, id)).map_err(err)?;
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| AgentError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Records sensor changes: compares with the last known state and appends what changed to
/// the outbox, under one lock so a snapshot always matches the outbox's last seq.
pub struct Recorder {
    known: Mutex<Vec<BoxState>>,
    /// When each box's state was last recorded (written under `known`'s lock): a sensor
    /// reading older than that is stale — a pulse's outcome, the keypad or the simulator
    /// recorded a newer truth meanwhile — and is dropped, not recorded as a change back.
    changed_at: std::sync::Mutex<std::collections::HashMap<u16, Instant>>,
    outbox: Arc<Outbox>,
    notify: Arc<Notify>,
    stats: Arc<AgentStats>,
    pub faults: Arc<Faults>,
}

impl Recorder {
    /// Records the state of one box as known now; appends an event per changed value.
    /// `true` when it wrote something.
    pub async fn observe(
        &self,
        b: BoxNo,
        door_open: bool,
        occupied: Option<bool>,
    ) -> Result<bool, OutboxError> {
        self.record(b, door_open, occupied, None).await
    }

    /// Records a sensor reading taken at `read_at`, unless the box's state was recorded
    /// after that (the next poll reads again).
    pub async fn observe_reading(
        &self,
        b: BoxNo,
        door_open: bool,
        occupied: Option<bool>,
        read_at: Instant,
    ) -> Result<bool, OutboxError> {
        self.record(b, door_open, occupied, Some(read_at)).await
    }

    async fn record(
        &self,
        b: BoxNo,
        door_open: bool,
        occupied: Option<bool>,
        read_at: Option<Instant>,
    ) -> Result<bool, OutboxError> {
        let mut known = self.known.lock().await;
        let Some(k) = known.get_mut(usize::from(b.get()) - 1) else {
            return Ok(false);
        };
        if let Some(read_at) = read_at {
            let changed_at = self.changed_at.lock().unwrap_or_else(|p| p.into_inner());
            if changed_at.get(&b.get()).is_some_and(|t| *t > read_at) {
                return Ok(false);
            }
        }
        let mut events = Vec::new();
        let door_changed = k.door_open != door_open;
        if door_changed {
            events.push(EventBody::Door {
                box_no: b,
                open: door_open,
            });
        }
        let was_occupied = k.occupied;
        let occupancy_changed = occupied.filter(|_| k.occupied != occupied);
        if let Some(o) = occupancy_changed {
            events.push(EventBody::Occupancy {
                box_no: b,
                occupied: o,
            });
        }
        if events.is_empty() {
            return Ok(false);
        }
        self.outbox.append(now_ms(), events).await?;
        k.door_open = door_open;
        if occupied.is_some() {
            k.occupied = occupied;
        }
        self.changed_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(b.get(), Instant::now());
        drop(known);
        let mut changes = Vec::new();
        if door_changed {
            changes = self.faults.door_changed(b, door_open);
        }
        if let Some(o) = occupancy_changed {
            changes.extend(self.faults.occupancy_changed(b, was_occupied, o, door_open));
        }
        let at = now_ms();
        for (kind, active, evidence) in changes {
            self.faults
                .level(Some(b), kind, active, evidence, at)
                .await?;
        }
        self.stats
            .last_seq
            .store(self.outbox.last_seq(), Ordering::Relaxed);
        self.notify.notify_one();
        Ok(true)
    }

    pub async fn snapshot(&self) -> StateSnapshot {
        let known = self.known.lock().await;
        StateSnapshot {
            v: 1,
            seq: self.outbox.last_seq(),
            ts: now_ms(),
            boxes: known.clone(),
        }
    }

    async fn current(&self, b: BoxNo) -> Option<BoxState> {
        self.known
            .lock()
            .await
            .get(usize::from(b.get()) - 1)
            .copied()
    }
}

/// A started agent.
pub struct RunningAgent {
    pub id: DeviceId,
    pub stats: Arc<AgentStats>,
    pub recorder: Arc<Recorder>,
    pub outbox: Arc<Outbox>,
    pub codes: Arc<CodeBook>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl RunningAgent {
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

struct Ctx<D> {
    cfg: AgentConfig,
    id: DeviceId,
    driver: Arc<D>,
    outbox: Arc<Outbox>,
    recorder: Arc<Recorder>,
    client: AsyncClient,
    box_locks: Vec<Mutex<()>>,
    stats: Arc<AgentStats>,
    notify: Arc<Notify>,
    codes: Arc<CodeBook>,
    health: std::sync::Mutex<HealthNow>,
    started: Instant,
}

enum Net {
    Connected,
    Disconnected,
    Message(String, bytes::Bytes),
}

/// Starts an agent on `driver`. Opens the outbox, reads every sensor once, records a
/// `started` event, and connects.
pub async fn start<D: LockDriver, K: Keypad>(
    cfg: AgentConfig,
    driver: Arc<D>,
    keypad: K,
    tls: Arc<rustls::ClientConfig>,
    cancel: CancellationToken,
) -> Result<RunningAgent, AgentError> {
    cfg.validate()?;
    let id = DeviceId::parse(&cfg.id).map_err(|e| config::ConfigError::Invalid {
        key: "id",
        why: e.to_string(),
    })?;
    let (host, port) = cfg.server_addr()?;
    let (outbox, recovered) = Outbox::open_or_recover(&cfg.data_dir, cfg.durability).await?;
    let outbox = Arc::new(outbox);
    // The last offset learned from the server, until a receipt brings a fresh one.
    let offset = outbox.clock_offset().await?;
    if offset != 0 {
        CLOCK_OFFSET_MS.store(offset, Ordering::Relaxed);
        tracing::info!(device = %id, offset_ms = offset, "judging times with the server clock offset learned before");
    }
    if let Some(r) = &recovered {
        tracing::error!(device = %id, moved_to = %r.moved_to, cause = %r.cause,
            salvaged = ?r.salvaged, "outbox file was damaged; started a fresh one");
        // The server hears of it as an event of its own, in order with what follows.
        outbox
            .append(now_ms(), vec![EventBody::Lost { detail: r.detail() }])
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
                    .clear(Some(b), kind, "door found closed at start".into(), now_ms())
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
        notify: notify.clone(),
        stats: stats.clone(),
        faults,
    });
    outbox
        .append(
            now_ms(),
            vec![EventBody::Started {
                boxes: driver.boxes(),
                agent_version: AGENT_VERSION.into(),
            }],
        )
        .await?;
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
                now_ms(),
            )
            .await?;
    }
    let codes = Arc::new(CodeBook::load(id.clone(), outbox.clone(), cfg.lockout()).await?);
    // Same rule as commands: a code recorded as used but not reported may have pulsed its
    // lock; it stays spent and is reported now.
    for (item, b) in outbox.unreported_code_uses().await? {
        tracing::warn!(device = %id, %item, "code use interrupted by a restart; reporting it spent");
        outbox
            .finish_code_use(&item, b, AckStatus::Failed, now_ms())
            .await?;
    }
    outbox
        .prune_code_uses(now_ms() - 7 * 24 * 3_600_000)
        .await?;
    stats.last_seq.store(outbox.last_seq(), Ordering::Relaxed);

    let mut options = MqttOptions::new(id.as_str(), host, port);
    options
        .set_keep_alive(Duration::from_secs(cfg.keep_alive_secs))
        .set_clean_session(true)
        .set_max_packet_size(1024 * 1024, 1024 * 1024)
        .set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        ))
        // An external broker publishes this when the connection dies without a goodbye; the
        // embedded front reports sessions itself and drops it (PROTOCOL.md, Presence).
        .set_last_will(rumqttc::LastWill::new(
            protocol::topic::device_topic(&id, Channel::Presence),
            protocol::encode(&presence(false, "connection lost")),
            QoS::AtLeastOnce,
            true,
        ));
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    eventloop.set_network_options(net);

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
        started: Instant::now(),
    });
    let tracker = TaskTracker::new();
    let (net_tx, net_rx) = mpsc::channel(1024);
    let (tls_tx, tls_rx) = mpsc::channel(1);
    let renewal = match renew::load_identity(&ctx.cfg.certs, &ctx.cfg.data_dir, &id) {
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
        net_tx,
        tls_rx,
        cancel.clone(),
        Duration::from_millis(ctx.cfg.max_backoff_ms),
        id.clone(),
    ));
    tracker.spawn(watch(ctx.clone(), cancel.clone()));
    tracker.spawn(keypad_loop(ctx.clone(), keypad, cancel.clone()));
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
        cancel,
        tracker,
    })
}

/// This agent's word on its own presence, for an external broker to keep (retained) and to
/// publish as the last will.
fn presence(online: bool, reason: &str) -> protocol::Presence {
    protocol::Presence {
        v: 1,
        online,
        ts: now_ms(),
        reason: reason.to_owned(),
    }
}

/// Keeps polling the MQTT event loop; after an error waits with exponential backoff and
/// jitter before the next poll reconnects, so a fleet never reconnects in lockstep.
async fn drive(
    mut eventloop: EventLoop,
    tx: mpsc::Sender<Net>,
    mut new_tls: mpsc::Receiver<Arc<rustls::ClientConfig>>,
    cancel: CancellationToken,
    max_backoff: Duration,
    id: DeviceId,
) {
    let mut backoff = Backoff::new(max_backoff);
    let mut failures = 0u32;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(tls) = new_tls.recv() => {
                // A renewed certificate: drop the connection and make the next with it.
                eventloop.mqtt_options.set_transport(Transport::tls_with_config(
                    rumqttc::TlsConfiguration::Rustls(tls),
                ));
                eventloop.clean();
                let _ = tx.send(Net::Disconnected).await;
                continue;
            }
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if ack.code == rumqttc::ConnectReturnCode::Success {
                    backoff.reset();
                    failures = 0;
                    tracing::info!(device = %id, "connected");
                    let _ = tx.send(Net::Connected).await;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let _ = tx.send(Net::Message(p.topic, p.payload)).await;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Net::Disconnected).await;
                failures += 1;
                let wait = backoff.next_wait();
                // The first failure after a session is news; the retries are not.
                if failures == 1 {
                    tracing::warn!(device = %id, error = %e, retry_in_ms = wait.as_millis() as u64, "connection lost");
                } else {
                    tracing::debug!(device = %id, error = %e, retry_in_ms = wait.as_millis() as u64, "reconnect failed");
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Polls in a row that must fail before the lock bus counts as unreachable: one lost frame on
/// an RS-485 bus is not a fault.
const BUS_FAIL_POLLS: u32 = 3;

/// What the last poll found about the device as a whole, for the heartbeat.
#[derive(Debug, Clone)]
struct HealthNow {
    lock_bus: BusHealth,
    power: Power,
    station: Option<StationStatus>,
}

/// Reads every sensor every `poll_interval_ms` and records changes; judges the lock bus,
/// power, tamper switch and a station's peripherals as levels.
async fn watch<D: LockDriver>(ctx: Arc<Ctx<D>>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(ctx.cfg.poll_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut bus_failures = 0u32;
    // A change that could not be recorded (disk full) is tried again every poll, since the
    // recorder only moves its known state on success: said once, and once when it recovers.
    let mut recording_fails = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let mut bus_error: Option<String> = None;
        let read_at = Instant::now();
        let readings = ctx.driver.sense().await;
        for (b, reading) in BoxNo::all(ctx.driver.boxes()).zip(readings) {
            match reading {
                Ok(r) => match ctx
                    .recorder
                    .observe_reading(b, r.door_open, r.occupied, read_at)
                    .await
                {
                    Err(e) if !recording_fails => {
                        recording_fails = true;
                        tracing::error!(device = %ctx.id, error = %e,
                            "recording a sensor change failed; retrying every poll (free space in the data dir)");
                    }
                    Err(_) => {}
                    Ok(true) if recording_fails => {
                        recording_fails = false;
                        tracing::warn!(device = %ctx.id, "the outbox takes writes again; changes seen meanwhile are recorded");
                    }
                    Ok(_) => {}
                },
                Err(e @ DriverError::NoSuchBox(_)) => {
                    tracing::debug!(device = %ctx.id, box_no = %b, error = %e, "sensor read failed")
                }
                // A silent board and a board refusing the register map both leave the
                // cabinet blind to its doors: lock-bus faults alike, with the reason.
                Err(e) => {
                    bus_error.get_or_insert_with(|| format!("box {b}: {e}"));
                }
            }
        }
        let signals = match ctx.driver.signals().await {
            Ok(s) => s,
            Err(e) => {
                bus_error.get_or_insert_with(|| format!("cabinet signals: {e}"));
                Signals::default()
            }
        };
        let station = ctx.driver.station().await.unwrap_or_else(|e| {
            bus_error.get_or_insert_with(|| format!("peripherals: {e}"));
            None
        });
        let mut changes: Vec<(FaultKind, bool, String)> = Vec::new();
        let lock_bus = if ctx.driver.boxes() == 0 {
            BusHealth::Absent
        } else if let Some(err) = &bus_error {
            bus_failures = bus_failures.saturating_add(1);
            if bus_failures >= BUS_FAIL_POLLS {
                let evidence = format!("no answer in {bus_failures} polls in a row ({err})");
                changes.push((FaultKind::LockBusUnreachable, true, evidence));
                BusHealth::Unreachable {
                    detail: err.clone(),
                }
            } else {
                BusHealth::Ok
            }
        } else {
            bus_failures = 0;
            changes.push((
                FaultKind::LockBusUnreachable,
                false,
                "the lock board answers again".into(),
            ));
            BusHealth::Ok
        };
        if let Some(on) = signals.on_battery {
            let evidence = if on {
                "mains lost; running on the battery"
            } else {
                "mains power is back"
            };
            changes.push((FaultKind::OnBattery, on, evidence.into()));
        }
        if let Some(open) = signals.tamper {
            let evidence = if open {
                "the enclosure's tamper switch is open"
            } else {
                "the tamper switch is closed again"
            };
            changes.push((FaultKind::Tamper, open, evidence.into()));
        }
        if let Some(st) = &station {
            for (kind, active) in st.faults() {
                let evidence = format!(
                    "the {} reports {} {}",
                    ctx.cfg.profile.as_str(),
                    kind.as_str(),
                    if active { "" } else { "no more" }
                );
                changes.push((kind, active, evidence.trim_end().to_owned()));
            }
        }
        for (b, open_for) in ctx.recorder.faults.left_open() {
            let evidence = format!("door open for {} s", open_for.as_secs());
            if let Err(e) = ctx
                .recorder
                .faults
                .raise(Some(b), FaultKind::DoorLeftOpen, evidence, now_ms())
                .await
            {
                tracing::error!(device = %ctx.id, error = %e, "recording a fault failed");
            }
        }
        let at = now_ms();
        for (kind, active, evidence) in changes {
            if let Err(e) = ctx
                .recorder
                .faults
                .level(None, kind, active, evidence, at)
                .await
            {
                tracing::error!(device = %ctx.id, error = %e, "recording a fault failed");
            }
        }
        let power = match signals.on_battery {
            Some(true) => Power::Battery,
            Some(false) => Power::Mains,
            None => Power::Unknown,
        };
        *ctx.health.lock().unwrap_or_else(|p| p.into_inner()) = HealthNow {
            lock_bus,
            power,
            station,
        };
        ctx.stats.polls.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends a heartbeat (QoS 0: the next one replaces a lost one).
fn heartbeat<D>(ctx: &Ctx<D>, acked: u64) {
    let now = ctx.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let hb = Heartbeat {
        v: 1,
        ts: now_ms(),
        interval_s: ctx.cfg.heartbeat_secs as u32,
        profile: ctx.cfg.profile,
        uptime_s: ctx.started.elapsed().as_secs(),
        lock_bus: now.lock_bus,
        power: now.power,
        outbox_pending: ctx.outbox.last_seq().saturating_sub(acked),
        station: now.station,
        clock_offset_ms: Some(CLOCK_OFFSET_MS.load(Ordering::Relaxed)),
    };
    let topic = protocol::topic::device_topic(&ctx.id, Channel::Health);
    if let Err(e) = ctx
        .client
        .try_publish(topic, QoS::AtMostOnce, false, protocol::encode(&hb))
    {
        tracing::debug!(device = %ctx.id, error = %e, "heartbeat not sent");
    }
}

/// The uplink state machine. `acked`: highest seq the server receipted; `sent`: highest seq
/// published on this connection. On (re)connect `sent = acked`, so everything unreceipted is
/// sent again in order; without receipt progress for a while it rewinds the same way.
/// The renewal state and the way to hand a renewed identity to the connection.
struct Renew {
    state: renew::Renewal,
    tls: mpsc::Sender<Arc<rustls::ClientConfig>>,
}

impl Renew {
    /// Publishes a signing request when renewal is due.
    fn check<D>(&mut self, ctx: &Ctx<D>) {
        if let Some(req) = self.state.due(now_ms()) {
            let topic = protocol::topic::device_topic(&ctx.id, Channel::Csr);
            if let Err(e) =
                ctx.client
                    .try_publish(topic, QoS::AtLeastOnce, false, protocol::encode(&req))
            {
                tracing::warn!(device = %ctx.id, error = %e, "signing request not sent");
            }
        }
    }

    fn on_reply(&mut self, reply: CertReply) {
        if let Some(tls) = self.state.on_reply(reply) {
            let _ = self.tls.try_send(tls);
        }
    }
}

async fn uplink<D: LockDriver>(
    ctx: Arc<Ctx<D>>,
    mut net: mpsc::Receiver<Net>,
    mut renew: Renew,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let mut acked = match ctx.outbox.oldest().await {
        Ok(Some(oldest)) => oldest - 1,
        Ok(None) => ctx.outbox.last_seq(),
        Err(e) => {
            tracing::error!(device = %ctx.id, error = %e, "outbox unreadable; uplink stops");
            return;
        }
    };
    let mut sent = acked;
    // Receipted rows are deleted in bulk (every tick, or every 1000 events): a delete per
    // receipt cost more than the send. Rows receipted but not yet deleted are only sent
    // again after a crash, and the server ignores duplicates.
    let mut deleted = acked;
    let mut connected = false;
    let mut last_progress = Instant::now();
    // While a batch is in flight, new events wait up to HOLD to travel together.
    let mut hold_until: Option<tokio::time::Instant> = None;
    // The last seq of each batch sent and not yet receipted (`in_flight`).
    let mut batch_ends: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
    let retransmit = Duration::from_millis(ctx.cfg.retransmit_after_ms);
    let events_topic = protocol::topic::device_topic(&ctx.id, Channel::Events);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut beat = tokio::time::interval(Duration::from_secs(ctx.cfg.heartbeat_secs));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = sleep_until_opt(hold_until) => {}
            _ = beat.tick() => if connected { heartbeat(&ctx, acked) },
            n = net.recv() => match n {
                None => break,
                Some(Net::Connected) => {
                    connected = true;
                    ctx.stats.connected.store(true, Ordering::Relaxed);
                    ctx.stats.connects.fetch_add(1, Ordering::Relaxed);
                    sent = acked;
                    last_progress = Instant::now();
                    for c in Channel::DEVICE_DOWNLINK {
                        let topic = protocol::topic::device_topic(&ctx.id, c);
                        if let Err(e) = ctx.client.try_subscribe(topic, QoS::AtLeastOnce) {
                            tracing::error!(device = %ctx.id, error = %e, "subscribe failed");
                        }
                    }
                    let topic = protocol::topic::device_topic(&ctx.id, Channel::Presence);
                    if let Err(e) = ctx.client.try_publish(topic, QoS::AtLeastOnce, true, protocol::encode(&presence(true, "connected"))) {
                        tracing::warn!(device = %ctx.id, error = %e, "presence not sent");
                    }
                    // The snapshot tells the server we are subscribed: it then sends any
                    // command that waited for us.
                    let snapshot = ctx.recorder.snapshot().await;
                    let topic = protocol::topic::device_topic(&ctx.id, Channel::State);
                    if let Err(e) = ctx.client.try_publish(topic, QoS::AtLeastOnce, true, protocol::encode(&snapshot)) {
                        tracing::warn!(device = %ctx.id, error = %e, "state snapshot not sent");
                    }
                    heartbeat(&ctx, acked);
                    beat.reset();
                    renew.check(&ctx);
                }
                Some(Net::Disconnected) => {
                    connected = false;
                    hold_until = None;
                    ctx.stats.connected.store(false, Ordering::Relaxed);
                }
                Some(Net::Message(topic, payload)) => {
                    match DeviceTopic::parse(&topic).map(|t| t.channel) {
                        Ok(Channel::Receipts) => match protocol::decode::<Receipt>(&payload) {
                            Ok(r) => {
                                if let Some(offset) = r.at.and_then(learn_server_clock) {
                                    tracing::warn!(device = %ctx.id, offset_ms = offset,
                                        "this cabinet's clock differs from the server's; judging times on the server's");
                                    if let Err(e) = ctx.outbox.set_clock_offset(offset).await {
                                        tracing::error!(device = %ctx.id, error = %e, "clock offset not kept");
                                    }
                                    // The server shows the offset (and alarms on a large one)
                                    // from the heartbeat: tell it now, not in heartbeat_secs.
                                    heartbeat(&ctx, acked);
                                }
                                if on_receipt(&ctx, r.up_to, &mut acked, &mut sent).await == Some(true) {
                                    last_progress = Instant::now();
                                }
                            }
                            Err(e) => tracing::warn!(device = %ctx.id, error = %e, "bad receipt ignored"),
                        },
                        Ok(Channel::Commands) => match protocol::decode::<Command>(&payload) {
                            Ok(cmd) => {
                                let c = ctx.clone();
                                tracker.spawn(async move { execute(c, cmd).await });
                            }
                            Err(e) => tracing::warn!(device = %ctx.id, error = %e, "bad command ignored"),
                        },
                        Ok(Channel::Cert) => match protocol::decode::<CertReply>(&payload) {
                            Ok(reply) => renew.on_reply(reply),
                            Err(e) => tracing::warn!(device = %ctx.id, error = %e, "bad certificate reply ignored"),
                        },
                        Ok(Channel::Codes) => match protocol::decode::<CodeSync>(&payload) {
                            Ok(sync) => {
                                let c = ctx.clone();
                                tracker.spawn(async move { apply_codes(&c, sync).await });
                            }
                            Err(e) => tracing::warn!(device = %ctx.id, error = %e, "bad code grants ignored"),
                        },
                        _ => tracing::debug!(device = %ctx.id, %topic, "message on an unexpected topic"),
                    }
                }
            },
            _ = ctx.notify.notified() => {}
            _ = tick.tick() => {
                if connected && sent > acked && last_progress.elapsed() >= retransmit {
                    tracing::info!(device = %ctx.id, from = acked + 1, to = sent, "no receipt; resending");
                    sent = acked;
                    last_progress = Instant::now();
                }
                delete_receipted(&ctx, acked, &mut deleted).await;
                if connected {
                    renew.check(&ctx);
                }
            }
        }
        if acked >= deleted + 1000 {
            delete_receipted(&ctx, acked, &mut deleted).await;
        }
        // Pump: send what the window allows. A receipt or a resend from `acked` ends the
        // batches at or below it.
        batch_ends.retain(|&end| end > acked && end <= sent);
        while connected
            && sent < ctx.outbox.last_seq()
            && sent - acked < ctx.cfg.window
            && batch_ends.len() < ctx.cfg.in_flight
        {
            let waiting = ctx.outbox.last_seq() - sent;
            if sent > acked && waiting < ctx.cfg.batch as u64 {
                let now = tokio::time::Instant::now();
                match hold_until {
                    None => {
                        hold_until = Some(now + HOLD);
                        break;
                    }
                    Some(t) if now < t => break,
                    Some(_) => {}
                }
            }
            hold_until = None;
            let events = match ctx.outbox.read_after(sent, ctx.cfg.batch as i64).await {
                Ok(e) if !e.is_empty() => e,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(device = %ctx.id, error = %e, "outbox read failed");
                    break;
                }
            };
            let last = events.last().map(|e| e.seq).unwrap_or(sent);
            let batch = EventBatch {
                v: 1,
                base: acked + 1,
                events,
            };
            match ctx.client.try_publish(
                events_topic.clone(),
                QoS::AtLeastOnce,
                false,
                protocol::encode(&batch),
            ) {
                Ok(()) => {
                    sent = last;
                    batch_ends.push_back(last);
                }
                // The client queue is full (slow link): try again on the next tick.
                Err(ClientError::TryRequest(_)) => break,
                Err(e) => {
                    tracing::warn!(device = %ctx.id, error = %e, "publish failed");
                    break;
                }
            }
        }
    }
    delete_receipted(&ctx, acked, &mut deleted).await;
    let _ = ctx.client.try_disconnect();
}

/// How long new events wait for company while a batch is in flight.
const HOLD: Duration = Duration::from_millis(2);

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn delete_receipted<D>(ctx: &Ctx<D>, acked: u64, deleted: &mut u64) {
    if acked <= *deleted {
        return;
    }
    match ctx.outbox.receipt(acked).await {
        Ok(_) => *deleted = acked,
        Err(e) => {
            tracing::error!(device = %ctx.id, error = %e, "deleting receipted events failed; will retry")
        }
    }
}

/// Applies a receipt to the in-memory mark (rows are deleted later, in bulk). Returns
/// `Some(true)` when it advanced the mark.
async fn on_receipt<D>(ctx: &Ctx<D>, up_to: u64, acked: &mut u64, sent: &mut u64) -> Option<bool> {
    if up_to > ctx.outbox.last_seq() {
        // The server has seen seqs this outbox never handed out: the outbox was replaced.
        tracing::warn!(device = %ctx.id, server_mark = up_to, local_last = ctx.outbox.last_seq(),
            "server knows newer sequence numbers than this outbox; renumbering pending events after them");
        match ctx.outbox.renumber_after(up_to).await {
            Ok(_) => {
                *acked = up_to;
                *sent = up_to;
                ctx.stats.receipted.store(up_to, Ordering::Relaxed);
                ctx.stats
                    .last_seq
                    .store(ctx.outbox.last_seq(), Ordering::Relaxed);
                return Some(true);
            }
            Err(e) => {
                tracing::error!(device = %ctx.id, error = %e, "renumbering failed");
                return None;
            }
        }
    }
    if up_to <= *acked {
        return Some(false);
    }
    *acked = up_to;
    if *sent < up_to {
        *sent = up_to;
    }
    ctx.stats.receipted.store(up_to, Ordering::Relaxed);
    Some(true)
}

/// Executes one command at most once. The journal entry is durable before the pulse; a
/// command found `executing` after a restart is reported failed, never pulsed again.
async fn execute<D: LockDriver>(ctx: Arc<Ctx<D>>, cmd: Command) {
    let CommandAction::Open { box_no } = cmd.action;
    let id = cmd.command_id.clone();
    if box_no.get() > ctx.driver.boxes() {
        return finish(
            &ctx,
            &cmd,
            box_no,
            AckStatus::Failed,
            Some(format!("box {box_no} does not exist on this cabinet")),
        )
        .await;
    }
    let _box = ctx.box_locks[usize::from(box_no.get()) - 1].lock().await;
    // Journal first (one statement in the common case): the entry is durable before the
    // pulse. Only when it was there already is it read, to tell a redelivery from a command
    // a previous run died executing.
    match ctx.outbox.begin_command(&id, box_no, now_ms()).await {
        Ok(true) => {}
        Ok(false) => match ctx.outbox.journal(&id).await {
            Ok(Some(outbox::Journal::Done(status, detail))) => {
                // A redelivery: repeat the outcome, do nothing else.
                return ack(&ctx, &cmd, status, detail);
            }
            Ok(Some(outbox::Journal::Executing)) => {
                return finish(
                    &ctx,
                    &cmd,
                    box_no,
                    AckStatus::Failed,
                    Some(INTERRUPTED.into()),
                )
                .await;
            }
            // Recorded a moment ago and gone now: nothing sane to do but not pulse.
            Ok(None) => return,
            Err(e) => return not_executed(&ctx, &cmd, "journal unreadable", &e),
        },
        Err(e) => return not_executed(&ctx, &cmd, "journal write failed", &e),
    }
    // Journaling waited for the disk and the outbox connection: look at the clock right
    // before the pulse.
    if let Some(late) = expired_by(&cmd) {
        let detail = format!("arrived or journaled {late} ms after its expiry; not executed");
        return finish(&ctx, &cmd, box_no, AckStatus::Expired, Some(detail)).await;
    }
    ctx.stats.commands.fetch_add(1, Ordering::Relaxed);
    ack(&ctx, &cmd, AckStatus::Delivered, None);
    let (status, detail) = open_box(&ctx, box_no).await;
    // The operator learns the door's outcome now; its records follow (ADR 0009).
    ack(&ctx, &cmd, status, detail.clone());
    record_outcome(&ctx, box_no, status, &detail).await;
    journal_outcome(&ctx, &cmd, box_no, status, detail).await;
}

/// The journal could not vouch for a command: it is not executed, and reported failed.
fn not_executed<D>(ctx: &Ctx<D>, cmd: &Command, what: &str, e: &dyn std::fmt::Display) {
    tracing::error!(device = %ctx.id, command = %cmd.command_id, error = %e, "{what}; command not executed");
    ack(ctx, cmd, AckStatus::Failed, Some(format!("{what}: {e}")));
}

/// How many ms past its `expires_at` the command is by this agent's clock, if it is.
fn expired_by(cmd: &Command) -> Option<i64> {
    let late = now_ms() - cmd.expires_at;
    (late >= 0).then_some(late)
}

/// Pulses the lock and watches the door sensor for the outcome. Records nothing: the
/// outcome is acked before it is journaled.
async fn open_box<D: LockDriver>(ctx: &Ctx<D>, b: BoxNo) -> (AckStatus, Option<String>) {
    match ctx.driver.door_open(b).await {
        Ok(true) => return (AckStatus::AlreadyOpen, None),
        Ok(false) => {}
        Err(e) => return (AckStatus::Failed, Some(format!("door sensor: {e}"))),
    }
    ctx.recorder.faults.pulsed(b);
    if let Err(e) = ctx.driver.unlock(b).await {
        return (AckStatus::Failed, Some(format!("unlock pulse: {e}")));
    }
    watch_door(ctx, b).await
}

/// A pulse and its records, for a door opened on the spot (keypad): nobody waits for an ack
/// in between, unlike a remote open.
async fn open_and_record<D: LockDriver>(ctx: &Ctx<D>, b: BoxNo) -> (AckStatus, Option<String>) {
    let (status, detail) = open_box(ctx, b).await;
    record_outcome(ctx, b, status, &detail).await;
    (status, detail)
}

/// What an outcome means for the cabinet's own records: the door event (now, not at the next
/// sensor poll) and the lock-jam fault raised or cleared.
async fn record_outcome<D: LockDriver>(
    ctx: &Ctx<D>,
    b: BoxNo,
    status: AckStatus,
    detail: &Option<String>,
) {
    let faults = &ctx.recorder.faults;
    let recorded = match status {
        AckStatus::Jammed => {
            let evidence = detail.clone().unwrap_or_default();
            faults
                .raise(Some(b), FaultKind::LockJam, evidence, now_ms())
                .await
        }
        AckStatus::Opened => {
            let occupied = ctx.recorder.current(b).await.and_then(|s| s.occupied);
            if let Err(e) = ctx.recorder.observe(b, true, occupied).await {
                tracing::error!(device = %ctx.id, error = %e, "recording door open failed");
            }
            let evidence = "the next pulse opened the door".to_owned();
            faults
                .clear(Some(b), FaultKind::LockJam, evidence, now_ms())
                .await
        }
        _ => Ok(false),
    };
    if let Err(e) = recorded {
        tracing::error!(device = %ctx.id, error = %e, "recording a lock fault failed");
    }
}

/// After a pulse: the door sensor tells whether the lock opened.
async fn watch_door<D: LockDriver>(ctx: &Ctx<D>, b: BoxNo) -> (AckStatus, Option<String>) {
    let deadline = Instant::now() + Duration::from_millis(ctx.cfg.jam_timeout_ms);
    loop {
        match ctx.driver.door_open(b).await {
            Ok(true) => return (AckStatus::Opened, None),
            Ok(false) if Instant::now() >= deadline => {
                return (
                    AckStatus::Jammed,
                    Some(format!(
                        "door sensor did not change within {} ms of the unlock pulse",
                        ctx.cfg.jam_timeout_ms
                    )),
                );
            }
            // Not faster than a bus poll: on Modbus every read is a request on the bus.
            Ok(false) => {
                tokio::time::sleep(Duration::from_millis(ctx.cfg.poll_interval_ms.clamp(2, 20)))
                    .await
            }
            Err(e) => return (AckStatus::Failed, Some(format!("door sensor: {e}"))),
        }
    }
}

/// Acks an outcome on the fast path, then journals it with its durable event.
async fn finish<D>(
    ctx: &Ctx<D>,
    cmd: &Command,
    b: BoxNo,
    status: AckStatus,
    detail: Option<String>,
) {
    ack(ctx, cmd, status, detail.clone());
    journal_outcome(ctx, cmd, b, status, detail).await;
}

/// Journals an outcome with its durable `command_result` event (which reaches the server
/// even when the fast ack was lost).
async fn journal_outcome<D>(
    ctx: &Ctx<D>,
    cmd: &Command,
    b: BoxNo,
    status: AckStatus,
    detail: Option<String>,
) {
    if let Err(e) = ctx
        .outbox
        .finish_command(&cmd.command_id, b, status, detail, now_ms())
        .await
    {
        tracing::error!(device = %ctx.id, command = %cmd.command_id, error = %e, "recording command outcome failed");
    }
    ctx.stats
        .last_seq
        .store(ctx.outbox.last_seq(), Ordering::Relaxed);
    ctx.notify.notify_one();
}

fn ack<D>(ctx: &Ctx<D>, cmd: &Command, status: AckStatus, detail: Option<String>) {
    let msg = CommandAck {
        v: 1,
        command_id: cmd.command_id.clone(),
        status,
        ts: now_ms(),
        detail,
    };
    let topic = protocol::topic::device_topic(&ctx.id, Channel::Acks);
    // Best effort: when the queue is full or we are offline, the outcome still reaches the
    // server as a `command_result` event through the outbox.
    if let Err(e) = ctx
        .client
        .try_publish(topic, QoS::AtLeastOnce, false, protocol::encode(&msg))
    {
        tracing::debug!(device = %ctx.id, error = %e, "ack not queued; the outbox copy will deliver it");
    }
}

async fn apply_codes<D>(ctx: &Ctx<D>, sync: CodeSync) {
    let version = sync.version;
    let grants = sync.grants.len();
    match ctx.codes.apply(sync, now_ms()).await {
        Ok(true) => {
            tracing::info!(device = %ctx.id, version, grants, "code grants applied");
            ctx.stats
                .last_seq
                .store(ctx.outbox.last_seq(), Ordering::Relaxed);
            ctx.notify.notify_one();
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(device = %ctx.id, error = %e, "storing code grants failed; the server will send them again")
        }
    }
}

/// Serves the keypad: one entry at a time, verified against the local code book.
async fn keypad_loop<D: LockDriver, K: Keypad>(
    ctx: Arc<Ctx<D>>,
    mut keypad: K,
    cancel: CancellationToken,
) {
    loop {
        // The lockout is a fault while it lasts: raised when it starts (also found at a
        // restart), cleared when it ends.
        let until = sync_lockout_fault(&ctx).await;
        let entry = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = sleep_until_ms(until) => continue,
            e = keypad.next() => match e {
                Some(e) => e,
                None => break,
            },
        };
        let outcome = handle_entry(&ctx, entry).await;
        keypad.show(&outcome).await;
        ctx.stats
            .last_seq
            .store(ctx.outbox.last_seq(), Ordering::Relaxed);
        ctx.notify.notify_one();
    }
}

/// Raises or clears the `keypad_locked` fault to match the code book; returns when the
/// lock ends if it is on.
async fn sync_lockout_fault<D>(ctx: &Ctx<D>) -> Option<i64> {
    let (until, now) = (ctx.codes.locked_until(), now_ms());
    let locked = until > now;
    let faults = &ctx.recorder.faults;
    let changed = if locked {
        let evidence = format!("repeated wrong entries; locked until {until} (agent clock)");
        faults
            .raise(None, FaultKind::KeypadLocked, evidence, now)
            .await
    } else {
        let evidence = "the lock ended".to_owned();
        faults
            .clear(None, FaultKind::KeypadLocked, evidence, now)
            .await
    };
    match changed {
        Ok(true) => {
            ctx.stats
                .last_seq
                .store(ctx.outbox.last_seq(), Ordering::Relaxed);
            ctx.notify.notify_one();
        }
        Ok(false) => {}
        Err(e) => tracing::error!(device = %ctx.id, error = %e, "recording the keypad lock failed"),
    }
    locked.then_some(until)
}

async fn sleep_until_ms(at: Option<i64>) {
    match at {
        Some(t) => {
            let wait = (t - now_ms()).max(0) as u64;
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        None => std::future::pending().await,
    }
}

/// One keypad entry: lockout, verification, durable spend, pulse, event. Never waits on the
/// network.
async fn handle_entry<D: LockDriver>(ctx: &Ctx<D>, entry: KeypadEntry) -> EntryOutcome {
    let now = now_ms();
    let staff_entry = matches!(entry, KeypadEntry::Staff { .. });
    let rejected = |reason, item| {
        if staff_entry {
            EventBody::StaffRejected { reason }
        } else {
            EventBody::CodeRejected { reason, item }
        }
    };
    let until = ctx.codes.locked_until();
    if until > now {
        record(ctx, rejected(RejectReason::LockedOut, None)).await;
        return EntryOutcome::LockedOut { until };
    }
    let verdict = match entry {
        KeypadEntry::Code(code) => match ctx.codes.verify(&code, now) {
            Ok(m) => Ok((m.box_no, Some(m), None)),
            Err(r) => Err(r),
        },
        KeypadEntry::Staff { credential, box_no } => {
            match BoxNo::new(box_no)
                .ok()
                .filter(|b| b.get() <= ctx.driver.boxes())
            {
                None => Err(codes::Refusal {
                    reason: RejectReason::NoSuchBox,
                    item: None,
                }),
                Some(b) => match ctx.codes.verify_staff(&credential).await {
                    Some(staff) => Ok((b, None, Some(staff))),
                    None => Err(codes::Refusal {
                        reason: if protocol::code::check_staff_credential(&credential).is_ok() {
                            RejectReason::Unknown
                        } else {
                            RejectReason::Malformed
                        },
                        item: None,
                    }),
                },
            }
        }
    };
    let (b, code, staff) = match verdict {
        Ok(v) => v,
        Err(refusal) => {
            record(ctx, rejected(refusal.reason, refusal.item.clone())).await;
            if refusal.counts() {
                match ctx.codes.failure(now).await {
                    Ok(Some(until)) => return EntryOutcome::LockedOut { until },
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(device = %ctx.id, error = %e, "recording a wrong entry failed")
                    }
                }
            }
            return EntryOutcome::Rejected {
                reason: refusal.reason,
            };
        }
    };
    if let Some(m) = &code {
        match ctx.codes.spend(m, now).await {
            Ok(true) => {}
            Ok(false) => {
                return EntryOutcome::Rejected {
                    reason: RejectReason::Used,
                };
            }
            Err(e) => {
                // Not recorded as used, so not opened: a code must never work twice.
                tracing::error!(device = %ctx.id, error = %e, "recording a code use failed; box not opened");
                return EntryOutcome::Rejected {
                    reason: RejectReason::Unknown,
                };
            }
        }
    }
    if staff.is_some()
        && let Err(e) = ctx.codes.deposited(b, now).await
    {
        tracing::error!(device = %ctx.id, error = %e, "recording a deposit failed");
    }
    let (status, detail) = {
        let _box = ctx.box_locks[usize::from(b.get()) - 1].lock().await;
        open_and_record(ctx, b).await
    };
    if let Some(d) = detail {
        tracing::warn!(device = %ctx.id, r#box = %b, status = ?status, detail = %d, "keypad open did not succeed");
    }
    let done = now_ms();
    let written = match (code, staff) {
        (Some(m), _) => ctx.outbox.finish_code_use(&m.item, b, status, done).await,
        (None, Some(staff)) => ctx
            .outbox
            .append(
                done,
                vec![EventBody::StaffOpen {
                    staff,
                    box_no: b,
                    status,
                }],
            )
            .await
            .map(|_| ()),
        (None, None) => Ok(()),
    };
    if let Err(e) = written {
        tracing::error!(device = %ctx.id, error = %e, "recording a keypad open failed");
    }
    ctx.stats.keypad_opens.fetch_add(1, Ordering::Relaxed);
    EntryOutcome::Opened { box_no: b, status }
}

async fn record<D>(ctx: &Ctx<D>, body: EventBody) {
    if let Err(e) = ctx.outbox.append(now_ms(), vec![body]).await {
        tracing::error!(device = %ctx.id, error = %e, "recording a keypad event failed");
    }
}

/// Simulated people at a fake cabinet: toggles box occupancy at `per_sec` (Poisson arrivals),
/// each toggle exactly one event, until `limit` toggles or cancellation.
pub async fn simulate_activity(
    fake: Arc<FakeLocks>,
    recorder: Arc<Recorder>,
    per_sec: f64,
    limit: Option<u64>,
    cancel: CancellationToken,
) {
    if per_sec <= 0.0 {
        return;
    }
    let mut done = 0u64;
    let boxes = fake.boxes();
    while limit.is_none_or(|l| done < l) {
        let wait = {
            let mut rng = rand::thread_rng();
            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
            Duration::from_secs_f64(-u.ln() / per_sec)
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        let Ok(b) = BoxNo::new(rand::thread_rng().gen_range(1..=boxes)) else {
            continue;
        };
        let Some(current) = recorder.current(b).await else {
            continue;
        };
        let occupied = !current.occupied.unwrap_or(false);
        // The simulated person opened and shut the door between two polls: said before the
        // sensor changes, so the sensor poll never sees the change without the door cycle.
        recorder.faults.door_cycled(b);
        if fake.set_occupied(b, occupied).is_err() {
            continue;
        }
        if let Err(e) = recorder.observe(b, current.door_open, Some(occupied)).await {
            tracing::error!(error = %e, "recording simulated activity failed");
            continue;
        }
        done += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_clock_is_adopted_only_beyond_network_delay() {
        let window = |s: &[i64]| s.iter().copied().collect::<std::collections::VecDeque<_>>();
        // Two hours behind: adopted at the first receipt.
        assert_eq!(adopt_offset(0, &window(&[7_200_000])), Some(7_200_000));
        // 300 ms of transit: not a wrong clock.
        assert_eq!(adopt_offset(0, &window(&[-300])), None);
        // A receipt delayed 4 s by a busy server, among prompt ones: the delay is not taken
        // for a clock change (it only ever makes a sample lower).
        assert_eq!(adopt_offset(0, &window(&[-20, -4_000, -35])), None);
        assert_eq!(
            adopt_offset(7_200_000, &window(&[7_199_990, 7_196_000])),
            None
        );
        // The clock was fixed meanwhile: back to zero once the old samples are gone.
        assert_eq!(adopt_offset(7_200_000, &window(&[7_199_990, -10])), None);
        assert_eq!(adopt_offset(7_200_000, &window(&[-10, -40])), Some(-10));
    }
    use protocol::CommandId;

    async fn ctx(dir: &std::path::Path, jam_rate: f64) -> (Arc<Ctx<FakeLocks>>, Arc<FakeLocks>) {
        ctx_of(
            dir,
            FakeConfig {
                close_after: Duration::from_secs(60),
                jam_rate,
                ..FakeConfig::locker(4)
            },
        )
        .await
    }

    async fn ctx_of(
        dir: &std::path::Path,
        fc: FakeConfig,
    ) -> (Arc<Ctx<FakeLocks>>, Arc<FakeLocks>) {
        let profile = fc.profile;
        let fake = Arc::new(FakeLocks::new(fc));
        let boxes = fake.boxes();
        let outbox = Arc::new(Outbox::open(dir, Durability::Normal).await.expect("outbox"));
        let stats = Arc::new(AgentStats::default());
        let notify = Arc::new(Notify::new());
        let known = BoxNo::all(boxes)
            .map(|b| BoxState {
                box_no: b,
                door_open: false,
                occupied: Some(false),
            })
            .collect();
        let faults = Arc::new(
            Faults::load(
                outbox.clone(),
                boxes,
                Duration::from_millis(2_100),
                Duration::from_secs(120),
            )
            .await
            .expect("faults"),
        );
        let recorder = Arc::new(Recorder {
            known: Mutex::new(known),
            changed_at: Default::default(),
            outbox: outbox.clone(),
            notify: notify.clone(),
            stats: stats.clone(),
            faults,
        });
        // A client whose event loop never runs: acks queue up and are never sent, which is
        // what an agent without network does.
        let (client, _eventloop) = AsyncClient::new(MqttOptions::new("cab-t", "localhost", 1), 64);
        let cfg = AgentConfig {
            id: "cab-t".into(),
            jam_timeout_ms: 100,
            poll_interval_ms: 5,
            profile,
            ..AgentConfig::default()
        };
        let id = DeviceId::parse("cab-t").expect("id");
        let codes = Arc::new(
            CodeBook::load(id.clone(), outbox.clone(), cfg.lockout())
                .await
                .expect("code book"),
        );
        let ctx = Arc::new(Ctx {
            box_locks: (0..boxes).map(|_| Mutex::new(())).collect(),
            cfg,
            id,
            driver: fake.clone(),
            outbox,
            recorder,
            client,
            stats,
            notify,
            codes,
            health: std::sync::Mutex::new(HealthNow {
                lock_bus: BusHealth::Ok,
                power: Power::Unknown,
                station: None,
            }),
            started: Instant::now(),
        });
        (ctx, fake)
    }

    /// Runs the sensor poll until `done` holds for the recorded fault changes.
    async fn poll_until(
        ctx: &Arc<Ctx<FakeLocks>>,
        what: &str,
        done: impl Fn(&[(u16, FaultKind, bool)]) -> bool,
    ) -> Vec<(u16, FaultKind, bool)> {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(watch(ctx.clone(), cancel.clone()));
        let deadline = Instant::now() + Duration::from_secs(5);
        let found = loop {
            let f = faults_in(&events(ctx).await);
            if done(&f) {
                break f;
            }
            assert!(Instant::now() < deadline, "{what}: only {f:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        cancel.cancel();
        let _ = task.await;
        found
    }

    #[tokio::test]
    async fn bus_power_and_tamper_are_raised_and_cleared_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let (ctx, fake) = ctx(dir.path(), 0.0).await;
        fake.set_bus_down(true);
        fake.set_on_battery(true);
        fake.set_tamper(true);
        let raised = [
            (0, FaultKind::LockBusUnreachable, true),
            (0, FaultKind::OnBattery, true),
            (0, FaultKind::Tamper, true),
        ];
        let f = poll_until(&ctx, "raised", |f| raised.iter().all(|r| f.contains(r))).await;
        assert_eq!(f.len(), 3, "each raised once: {f:?}");
        assert!(matches!(
            ctx.health.lock().expect("health").lock_bus,
            BusHealth::Unreachable { .. }
        ));
        assert_eq!(ctx.health.lock().expect("health").power, Power::Battery);
        fake.set_bus_down(false);
        fake.set_on_battery(false);
        fake.set_tamper(false);
        let f = poll_until(&ctx, "cleared", |f| f.len() >= 6).await;
        let mut cleared: Vec<_> = f[3..].to_vec();
        cleared.sort();
        assert_eq!(
            cleared,
            vec![
                (0, FaultKind::LockBusUnreachable, false),
                (0, FaultKind::OnBattery, false),
                (0, FaultKind::Tamper, false),
            ]
        );
        assert_eq!(ctx.health.lock().expect("health").lock_bus, BusHealth::Ok);
    }

    #[tokio::test]
    async fn station_peripherals_raise_their_faults() {
        let dir = tempfile::tempdir().expect("tmp");
        let (ctx, fake) = ctx_of(
            dir.path(),
            FakeConfig {
                profile: protocol::Profile::Printer,
                ..FakeConfig::locker(0)
            },
        )
        .await;
        fake.set_station(|s| {
            s.paper = protocol::Level::Low;
            s.paper_jam = true;
        })
        .expect("station");
        let f = poll_until(&ctx, "paper", |f| f.len() >= 2).await;
        assert_eq!(
            f,
            vec![
                (0, FaultKind::PaperLow, true),
                (0, FaultKind::PaperJam, true)
            ]
        );
        // Out replaces low; the jam is cleared.
        fake.set_station(|s| {
            s.paper = protocol::Level::Out;
            s.paper_jam = false;
        })
        .expect("station");
        let f = poll_until(&ctx, "out", |f| f.len() >= 5).await;
        assert_eq!(
            f[2..].to_vec(),
            vec![
                (0, FaultKind::PaperLow, false),
                (0, FaultKind::PaperOut, true),
                (0, FaultKind::PaperJam, false)
            ]
        );
        assert_eq!(
            ctx.health.lock().expect("health").lock_bus,
            BusHealth::Absent
        );
    }

    #[tokio::test]
    async fn occupancy_changing_behind_a_shut_door_is_a_sensor_fault() {
        let dir = tempfile::tempdir().expect("tmp");
        let (ctx, _fake) = ctx(dir.path(), 0.0).await;
        let b1 = BoxNo::new(1).expect("box");
        let r = &ctx.recorder;
        // Behind a shut door: fault; the reading going back clears it.
        r.observe(b1, false, Some(true)).await.expect("observe");
        r.observe(b1, false, Some(false)).await.expect("observe");
        // A real use: pulse, open, place, shut; no fault.
        assert_eq!(open_and_record(&ctx, b1).await.0, AckStatus::Opened);
        r.observe(b1, true, Some(true)).await.expect("observe");
        r.observe(b1, false, Some(true)).await.expect("observe");
        // Emptied behind the shut door: fault; the door opening clears it (and is forced).
        r.observe(b1, false, Some(false)).await.expect("observe");
        r.observe(b1, true, Some(false)).await.expect("observe");
        let f: Vec<_> = faults_in(&events(&ctx).await)
            .into_iter()
            .filter(|f| f.1 == FaultKind::SensorFault)
            .collect();
        assert_eq!(
            f,
            vec![
                (1, FaultKind::SensorFault, true),
                (1, FaultKind::SensorFault, false),
                (1, FaultKind::SensorFault, true),
                (1, FaultKind::SensorFault, false),
            ]
        );
    }

    fn faults_in(events: &[EventBody]) -> Vec<(u16, FaultKind, bool)> {
        events
            .iter()
            .filter_map(|e| match e {
                EventBody::Fault {
                    box_no,
                    fault,
                    active,
                    ..
                } => Some((box_no.map_or(0, BoxNo::get), *fault, *active)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_door_opened_without_a_pulse_is_forced_open_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let b2 = BoxNo::new(2).expect("box");
        {
            let (ctx, fake) = ctx(dir.path(), 0.0).await;
            fake.open_by_hand(b2).expect("open");
            ctx.recorder
                .observe(b2, true, Some(false))
                .await
                .expect("observe");
            // The same reading again changes nothing.
            ctx.recorder
                .observe(b2, true, Some(false))
                .await
                .expect("observe");
            assert_eq!(
                faults_in(&events(&ctx).await),
                vec![(2, FaultKind::ForcedOpen, true)]
            );
            ctx.outbox.close().await;
        }
        // A restart with the door still open does not raise it again.
        let (ctx, _fake) = ctx(dir.path(), 0.0).await;
        assert!(
            ctx.recorder
                .faults
                .is_active(Some(b2), FaultKind::ForcedOpen)
        );
        assert!(
            !ctx.recorder
                .faults
                .raise(Some(b2), FaultKind::ForcedOpen, String::new(), now_ms())
                .await
                .expect("raise"),
            "raised twice"
        );
    }

    #[tokio::test]
    async fn a_pulsed_door_is_not_forced_and_closing_clears() {
        let dir = tempfile::tempdir().expect("tmp");
        let (ctx, fake) = ctx(dir.path(), 0.0).await;
        let b1 = BoxNo::new(1).expect("box");
        assert_eq!(open_and_record(&ctx, b1).await.0, AckStatus::Opened);
        assert!(
            faults_in(&events(&ctx).await).is_empty(),
            "a pulsed open is no fault"
        );
        fake.close(b1).expect("close");
        ctx.recorder
            .observe(b1, false, Some(false))
            .await
            .expect("observe");
        // Now by hand: forced; closing clears it, once.
        fake.open_by_hand(b1).expect("open");
        ctx.recorder
            .observe(b1, true, Some(false))
            .await
            .expect("observe");
        ctx.recorder
            .observe(b1, false, Some(false))
            .await
            .expect("observe");
        assert_eq!(
            faults_in(&events(&ctx).await),
            vec![
                (1, FaultKind::ForcedOpen, true),
                (1, FaultKind::ForcedOpen, false)
            ]
        );
    }

    #[tokio::test]
    async fn a_jam_is_raised_and_cleared_by_the_next_good_pulse() {
        let dir = tempfile::tempdir().expect("tmp");
        let b3 = BoxNo::new(3).expect("box");
        {
            let (jammy, _fake) = ctx(dir.path(), 1.0).await;
            assert_eq!(open_and_record(&jammy, b3).await.0, AckStatus::Jammed);
            assert_eq!(open_and_record(&jammy, b3).await.0, AckStatus::Jammed);
            jammy.outbox.close().await;
        }
        // Repaired and restarted: the first good pulse clears the jam.
        let (fixed, _fake) = ctx(dir.path(), 0.0).await;
        assert_eq!(open_and_record(&fixed, b3).await.0, AckStatus::Opened);
        assert_eq!(
            faults_in(&events(&fixed).await),
            vec![
                (3, FaultKind::LockJam, true),
                (3, FaultKind::LockJam, false)
            ]
        );
    }

    #[tokio::test]
    async fn a_keypad_lock_is_a_fault_while_it_lasts_also_across_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let (ctx, _fake) = ctx(dir.path(), 0.0).await;
            ctx.outbox
                .lock_keypad(now_ms() + 300, 5, now_ms())
                .await
                .expect("lock");
            ctx.outbox.close().await;
        }
        // Restarted while locked: the code book knows, and the fault is raised once.
        let (ctx, _fake) = ctx(dir.path(), 0.0).await;
        let until = sync_lockout_fault(&ctx).await.expect("locked");
        assert!(sync_lockout_fault(&ctx).await.is_some());
        sleep_until_ms(Some(until)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(sync_lockout_fault(&ctx).await, None);
        assert_eq!(
            faults_in(&events(&ctx).await),
            vec![
                (0, FaultKind::KeypadLocked, true),
                (0, FaultKind::KeypadLocked, false)
            ]
        );
    }

    const MASTER: &[u8] = b"test master secret";

    /// A grant set as the server would send it: (item, box, code, window, needs deposit).
    fn sync(version: u64, grants: &[(&str, u16, &str, i64, i64, bool)]) -> CodeSync {
        let device = DeviceId::parse("cab-t").expect("id");
        let key = protocol::code::CabinetKey::derive(MASTER, &device);
        let salt = [7u8; 16];
        CodeSync {
            v: 1,
            version,
            key: key.to_hex(),
            grants: grants
                .iter()
                .map(|(item, b, code, nb, na, dep)| {
                    let item = protocol::ItemId::parse(item).expect("item");
                    let box_no = BoxNo::new(*b).expect("box");
                    let binding = protocol::code::Binding {
                        device: &device,
                        item: &item,
                        box_no,
                        not_before: *nb,
                        not_after: *na,
                    };
                    protocol::CodeGrant {
                        tag: protocol::code::code_tag(&key, &binding, code),
                        item,
                        box_no,
                        not_before: *nb,
                        not_after: *na,
                        needs_deposit: *dep,
                    }
                })
                .collect(),
            staff: vec![protocol::StaffCredential {
                staff: protocol::StaffId::parse("helper-1").expect("staff"),
                salt: "07".repeat(16),
                hash: protocol::code::staff_hash("card-0042", &salt, 10),
                iterations: 10,
            }],
        }
    }

    /// Item it-1, box 1, code 48151623, valid for ten minutes.
    async fn one_grant(ctx: &Ctx<FakeLocks>, now: i64) {
        let s = sync(
            1,
            &[("it-1", 1, "48151623", now - 1000, now + 600_000, false)],
        );
        assert!(ctx.codes.apply(s, now).await.expect("apply"));
    }

    fn code(c: &str) -> KeypadEntry {
        KeypadEntry::Code(c.into())
    }

    fn opened(b: u16) -> EntryOutcome {
        EntryOutcome::Opened {
            box_no: BoxNo::new(b).expect("box"),
            status: AckStatus::Opened,
        }
    }

    fn rejected(reason: RejectReason) -> EntryOutcome {
        EntryOutcome::Rejected { reason }
    }

    async fn events(ctx: &Ctx<FakeLocks>) -> Vec<EventBody> {
        ctx.outbox
            .read_after(0, 1000)
            .await
            .expect("read")
            .into_iter()
            .map(|e| e.body)
            .collect()
    }

    /// A poll's reading taken before a pulse's outcome (or the keypad, or the simulator)
    /// recorded a newer state is stale: recording it would log a change back and forth.
    #[tokio::test]
    async fn a_reading_older_than_the_last_record_is_dropped() {
        let dir = tempfile::tempdir().expect("tmp");
        let (ctx, _fake) = ctx(dir.path(), 0.0).await;
        let b = BoxNo::new(1).expect("box");
        let read_at = Instant::now();
        assert!(
            ctx.recorder
                .observe(b, true, Some(false))
                .await
                .expect("record")
        );
        let stale = ctx
            .recorder
            .observe_reading(b, false, Some(false), read_at)
            .await
            .expect("stale");
        assert!(!stale, "a reading from before the record");
        let fresh = ctx
            .recorder
            .observe_reading(b, false, Some(false), Instant::now())
            .await
            .expect("fresh");
        assert!(fresh, "the next poll's reading is the truth");
        let doors: Vec<EventBody> = events(&ctx)
            .await
            .into_iter()
            .filter(|e| matches!(e, EventBody::Door { .. }))
            .collect();
        assert_eq!(doors.len(), 2, "{doors:?}");
    }

    #[tokio::test]
    async fn a_code_opens_its_box_once_also_after_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let now = now_ms();
        {
            let (ctx, fake) = ctx(dir.path(), 0.0).await;
            assert!(
                ctx.codes
                    .apply(
                        sync(
                            1,
                            &[("it-1", 2, "48151623", now - 1000, now + 60_000, false)]
                        ),
                        now
                    )
                    .await
                    .expect("apply")
            );
            assert_eq!(handle_entry(&ctx, code("48151623")).await, opened(2));
            fake.close(BoxNo::new(2).expect("box")).expect("close");
            assert_eq!(
                handle_entry(&ctx, code("48151623")).await,
                rejected(RejectReason::Used)
            );
            assert_eq!(fake.pulses(), 1);
            let ev = events(&ctx).await;
            assert!(ev.iter().any(|e| matches!(e, EventBody::CodeUsed { item, status: AckStatus::Opened, .. } if item.as_str() == "it-1")));
            assert!(
                ev.iter()
                    .any(|e| matches!(e, EventBody::CodesApplied { version: 1 }))
            );
            ctx.outbox.close().await;
        }
        // A restart, and the server (not yet told) sends the same grant again.
        let (ctx, fake) = ctx(dir.path(), 0.0).await;
        assert!(
            ctx.codes
                .apply(
                    sync(
                        2,
                        &[("it-1", 2, "48151623", now - 1000, now + 60_000, false)]
                    ),
                    now
                )
                .await
                .expect("apply")
        );
        assert_eq!(
            handle_entry(&ctx, code("48151623")).await,
            rejected(RejectReason::Used)
        );
        assert_eq!(fake.pulses(), 0);
    }

    #[tokio::test]
    async fn windows_deposits_and_other_cabinets_codes_are_judged_locally() {
        let dir = tempfile::tempdir().expect("tmp");
        let (ctx, fake) = ctx(dir.path(), 0.0).await;
        let now = now_ms();
        let s = sync(
            5,
            &[
                ("early", 1, "11111111", now + 60_000, now + 120_000, false),
                ("late", 2, "22222222", now - 120_000, now - 60_000, false),
                ("pickup", 3, "33333333", now - 1000, now + 60_000, true),
            ],
        );
        assert!(ctx.codes.apply(s.clone(), now).await.expect("apply"));
        assert!(
            !ctx.codes.apply(s, now).await.expect("same version"),
            "a repeat is ignored"
        );
        assert_eq!(
            handle_entry(&ctx, code("11111111")).await,
            rejected(RejectReason::NotYetValid)
        );
        assert_eq!(
            handle_entry(&ctx, code("22222222")).await,
            rejected(RejectReason::Expired)
        );
        assert_eq!(
            handle_entry(&ctx, code("33333333")).await,
            rejected(RejectReason::NotReady)
        );
        // Staff load box 3 (offline as far as the agent knows): the pick-up code now works.
        let staff = KeypadEntry::Staff {
            credential: "card-0042".into(),
            box_no: 3,
        };
        assert_eq!(handle_entry(&ctx, staff).await, opened(3));
        fake.close(BoxNo::new(3).expect("box")).expect("close");
        assert_eq!(handle_entry(&ctx, code("33333333")).await, opened(3));
        assert_eq!(fake.pulses(), 2);
        let ev = events(&ctx).await;
        assert!(ev.iter().any(
            |e| matches!(e, EventBody::StaffOpen { staff, .. } if staff.as_str() == "helper-1")
        ));
        // None of that counted as guessing.
        assert_eq!(ctx.codes.locked_until(), 0);
    }

    #[tokio::test]
    async fn five_wrong_codes_lock_the_keypad_across_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let now = now_ms();
        {
            let (ctx, fake) = ctx(dir.path(), 0.0).await;
            one_grant(&ctx, now).await;
            for wrong in ["00000001", "00000002", "12", "00000004"] {
                assert!(matches!(
                    handle_entry(&ctx, code(wrong)).await,
                    EntryOutcome::Rejected { .. }
                ));
            }
            let wrong_staff = KeypadEntry::Staff {
                credential: "card-9999".into(),
                box_no: 1,
            };
            assert!(matches!(
                handle_entry(&ctx, wrong_staff).await,
                EntryOutcome::LockedOut { .. }
            ));
            // Locked: even the right code is refused, and nothing is pulsed.
            assert!(matches!(
                handle_entry(&ctx, code("48151623")).await,
                EntryOutcome::LockedOut { .. }
            ));
            assert_eq!(fake.pulses(), 0);
            let ev = events(&ctx).await;
            assert_eq!(
                ev.iter()
                    .filter(|e| matches!(e, EventBody::KeypadLocked { failures: 5, .. }))
                    .count(),
                1
            );
            assert!(ev.iter().any(|e| matches!(
                e,
                EventBody::CodeRejected {
                    reason: RejectReason::LockedOut,
                    ..
                }
            )));
            ctx.outbox.close().await;
        }
        let (ctx, fake) = ctx(dir.path(), 0.0).await;
        assert!(
            matches!(
                handle_entry(&ctx, code("48151623")).await,
                EntryOutcome::LockedOut { .. }
            ),
            "a restart does not unlock"
        );
        assert_eq!(fake.pulses(), 0);
    }

    #[tokio::test]
    async fn a_code_use_interrupted_by_a_restart_stays_spent_and_is_reported() {
        let dir = tempfile::tempdir().expect("tmp");
        let now = now_ms();
        {
            let (ctx, _fake) = ctx(dir.path(), 0.0).await;
            one_grant(&ctx, now).await;
            let m = ctx.codes.verify("48151623", now).expect("verifies");
            // Recorded as spent, then the process "dies" before the pulse is reported.
            assert!(ctx.codes.spend(&m, now).await.expect("spend"));
            ctx.outbox.close().await;
        }
        let (ctx, fake) = ctx(dir.path(), 0.0).await;
        assert_eq!(
            handle_entry(&ctx, code("48151623")).await,
            rejected(RejectReason::Used)
        );
        assert_eq!(fake.pulses(), 0);
        let unreported = ctx.outbox.unreported_code_uses().await.expect("read");
        assert_eq!(
            unreported.len(),
            1,
            "the test ctx does not run start(); start() reports these"
        );
    }

    fn open_cmd(id: &str, box_no: u16, expires_in_ms: i64) -> Command {
        Command {
            v: 1,
            command_id: CommandId::parse(id).expect("id"),
            issued_at: now_ms(),
            expires_at: now_ms() + expires_in_ms,
            action: CommandAction::Open {
                box_no: BoxNo::new(box_no).expect("box"),
            },
        }
    }

    async fn journal(ctx: &Ctx<FakeLocks>, id: &str) -> Option<outbox::Journal> {
        ctx.outbox
            .journal(&CommandId::parse(id).expect("id"))
            .await
            .expect("journal")
    }

    #[tokio::test]
    async fn a_command_delivered_twice_pulses_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ctx, fake) = ctx(dir.path(), 0.0).await;
        let cmd = open_cmd("c1", 2, 30_000);
        execute(ctx.clone(), cmd.clone()).await;
        execute(ctx.clone(), cmd).await;
        assert_eq!(fake.pulses(), 1);
        assert_eq!(
            journal(&ctx, "c1").await,
            Some(outbox::Journal::Done(AckStatus::Opened, None))
        );
    }

    #[tokio::test]
    async fn an_expired_command_is_never_pulsed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ctx, fake) = ctx(dir.path(), 0.0).await;
        execute(ctx.clone(), open_cmd("c2", 1, -1)).await;
        assert_eq!(fake.pulses(), 0);
        assert!(matches!(
            journal(&ctx, "c2").await,
            Some(outbox::Journal::Done(AckStatus::Expired, Some(_)))
        ));
        assert!(
            !fake
                .door_open(BoxNo::new(1).expect("box"))
                .await
                .expect("read")
        );
    }

    #[tokio::test]
    async fn a_command_interrupted_by_a_restart_is_not_pulsed_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cmd = open_cmd("c3", 1, 30_000);
        {
            // The previous process journaled the command and died around the pulse.
            let (ctx, _) = ctx(dir.path(), 0.0).await;
            let b = BoxNo::new(1).expect("box");
            assert!(
                ctx.outbox
                    .begin_command(&cmd.command_id, b, now_ms())
                    .await
                    .expect("begin")
            );
            ctx.outbox.close().await;
        }
        let (ctx, fake) = ctx(dir.path(), 0.0).await;
        execute(ctx.clone(), cmd).await;
        assert_eq!(fake.pulses(), 0);
        assert!(matches!(
            journal(&ctx, "c3").await,
            Some(outbox::Journal::Done(AckStatus::Failed, Some(_)))
        ));
    }

    #[tokio::test]
    async fn outcomes_come_from_the_door_sensor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ctx, fake) = ctx(dir.path(), 1.0).await;
        execute(ctx.clone(), open_cmd("j1", 3, 30_000)).await;
        assert!(matches!(
            journal(&ctx, "j1").await,
            Some(outbox::Journal::Done(AckStatus::Jammed, Some(_)))
        ));
        fake.open_by_hand(BoxNo::new(4).expect("box"))
            .expect("open");
        execute(ctx.clone(), open_cmd("a1", 4, 30_000)).await;
        assert_eq!(
            journal(&ctx, "a1").await,
            Some(outbox::Journal::Done(AckStatus::AlreadyOpen, None))
        );
        assert_eq!(fake.pulses(), 1, "an open door is not pulsed");
        // Every outcome also went into the outbox as a durable event.
        let events = ctx.outbox.read_after(0, 100).await.expect("read");
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e.body, EventBody::CommandResult { .. }))
                .count(),
            2
        );
    }
}

//! A fleet of real device agents with fake hardware, in one process, over real TLS MQTT.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use device_agent::{AgentConfig, Durability, FakeConfig, FakeLocks, FakeSettings, RunningAgent};
use protocol::DeviceId;
use tokio_util::sync::CancellationToken;

/// Shape and behaviour of a simulated fleet.
#[derive(Debug, Clone)]
pub(crate) struct FleetSpec {
    pub sites: usize,
    pub cabinets: usize,
    pub boxes: u16,
    /// Simulated occupancy changes per second, per cabinet.
    pub activity_per_sec: f64,
    /// Stop each cabinet's activity after this many changes.
    pub activity_limit: Option<u64>,
    pub jam_rate: f64,
    pub close_after: Duration,
    pub poll_interval_ms: u64,
    pub durability: Durability,
    /// Station devices (kiosk, tax machine, printer in turn), spread over the sites.
    pub stations: usize,
    /// Event batches an agent keeps unreceipted (`AgentConfig::in_flight`).
    pub in_flight: usize,
    /// The agents' `server` (several nodes, comma separated) instead of the given address.
    pub brokers: Option<String>,
}

impl Default for FleetSpec {
    fn default() -> Self {
        FleetSpec {
            sites: 5,
            cabinets: 50,
            boxes: 24,
            activity_per_sec: 0.2,
            activity_limit: None,
            jam_rate: 0.02,
            close_after: Duration::from_secs(4),
            poll_interval_ms: 100,
            durability: Durability::Normal,
            stations: 0,
            in_flight: AgentConfig::default().in_flight,
            brokers: None,
        }
    }
}

/// `site-S-cab-NN`: cabinets spread over sites round-robin.
pub(crate) fn cabinet_id(spec: &FleetSpec, n: usize) -> DeviceId {
    let site = n % spec.sites.max(1) + 1;
    let index = n / spec.sites.max(1) + 1;
    DeviceId::parse(&format!("site-{site}-cab-{index:02}"))
        .expect("generated cabinet ids are valid device ids")
}

/// `site-S-stn-NN`: station devices spread over sites round-robin, profiles in turn.
pub(crate) fn station_id(spec: &FleetSpec, n: usize) -> (DeviceId, protocol::Profile) {
    let site = n % spec.sites.max(1) + 1;
    let index = n / spec.sites.max(1) + 1;
    let id = DeviceId::parse(&format!("site-{site}-stn-{index:02}"))
        .expect("generated station ids are valid device ids");
    let profiles = [
        protocol::Profile::Kiosk,
        protocol::Profile::TaxMachine,
        protocol::Profile::Printer,
    ];
    (id, profiles[n % profiles.len()])
}

/// Every device id of the fleet: cabinets, then stations.
pub(crate) fn device_ids(spec: &FleetSpec) -> Vec<DeviceId> {
    (0..spec.cabinets)
        .map(|n| cabinet_id(spec, n))
        .chain((0..spec.stations).map(|n| station_id(spec, n).0))
        .collect()
}

/// Makes the CA (first run) and a certificate for every cabinet that has none yet.
pub(crate) fn ensure_certs(dir: &Path, ids: &[DeviceId]) -> anyhow::Result<()> {
    if !dir.join(certs::CA_CERT).exists() {
        certs::init(dir, false).with_context(|| format!("creating CA in {}", dir.display()))?;
    }
    let ca = certs::Ca::load(dir)?;
    for id in ids {
        if !certs::device_cert_path(dir, id).exists() {
            ca.issue_device(dir, id, false)?;
        }
    }
    Ok(())
}

pub(crate) struct Cabinet {
    pub agent: RunningAgent,
    pub locks: Arc<FakeLocks>,
    /// Types at the cabinet's fake keypad.
    pub keys: device_agent::SoftKeypadHandle,
}

pub(crate) struct Fleet {
    pub cabinets: Vec<Cabinet>,
    /// Station devices: the same agent with a station profile and no boxes.
    pub stations: Vec<Cabinet>,
    cancel: CancellationToken,
    activity: tokio_util::task::TaskTracker,
}

impl Fleet {
    /// Starts every cabinet's agent against `server`, with certificates from `certs_dir` and
    /// outboxes under `data_root/ID`.
    pub(crate) async fn start(
        spec: &FleetSpec,
        server: SocketAddr,
        certs_dir: &Path,
        data_root: &Path,
    ) -> anyhow::Result<Fleet> {
        Fleet::start_holding(spec, server, certs_dir, data_root, &HashMap::new()).await
    }

    /// [`Fleet::start`] with items already in some boxes: their occupancy sensors read
    /// occupied from the agent's first look (a sensor that changed behind a shut door while
    /// the agent watched would be a sensor fault).
    pub(crate) async fn start_holding(
        spec: &FleetSpec,
        server: SocketAddr,
        certs_dir: &Path,
        data_root: &Path,
        occupied: &HashMap<String, Vec<protocol::BoxNo>>,
    ) -> anyhow::Result<Fleet> {
        ensure_certs(certs_dir, &device_ids(spec))?;
        let cancel = CancellationToken::new();
        let activity = tokio_util::task::TaskTracker::new();
        let devices = (0..spec.cabinets)
            .map(|n| (cabinet_id(spec, n), protocol::Profile::Locker))
            .chain((0..spec.stations).map(|n| station_id(spec, n)));
        let mut cabinets = Vec::with_capacity(spec.cabinets);
        let mut stations = Vec::with_capacity(spec.stations);
        for (id, profile) in devices {
            let cfg = AgentConfig {
                id: id.to_string(),
                server: spec
                    .brokers
                    .clone()
                    .unwrap_or_else(|| format!("localhost:{}", server.port())),
                certs: certs_dir.to_owned(),
                data_dir: data_root.join(id.as_str()),
                boxes: spec.boxes,
                profile,
                poll_interval_ms: spec.poll_interval_ms,
                durability: spec.durability,
                in_flight: spec.in_flight,
                fake: FakeSettings {
                    close_after_ms: spec.close_after.as_millis() as u64,
                    jam_rate: spec.jam_rate,
                    activity_per_sec: spec.activity_per_sec,
                    activity_limit: spec.activity_limit,
                    pulse_log: None,
                    clock_skew_ms: 0,
                },
                ..AgentConfig::default()
            };
            let locks = Arc::new(FakeLocks::new(FakeConfig {
                boxes: spec.boxes,
                close_after: spec.close_after,
                jam_rate: spec.jam_rate,
                profile,
                pulse_log: None,
            }));
            for b in occupied.get(id.as_str()).into_iter().flatten() {
                locks
                    .set_occupied(*b, true)
                    .with_context(|| format!("box {b} of {id}"))?;
            }
            let tls = device_agent::client_tls(certs_dir, &id)?;
            let (keypad, keys) = device_agent::SoftKeypad::new();
            let agent = device_agent::start(cfg, locks.clone(), keypad, tls, cancel.child_token())
                .await
                .with_context(|| format!("starting agent {id}"))?;
            let device = Cabinet { agent, locks, keys };
            if profile.is_station() {
                stations.push(device);
                continue;
            }
            activity.spawn(device_agent::simulate_activity(
                device.locks.clone(),
                device.agent.recorder.clone(),
                spec.activity_per_sec,
                spec.activity_limit,
                cancel.child_token(),
            ));
            cabinets.push(device);
        }
        Ok(Fleet {
            cabinets,
            stations,
            cancel,
            activity,
        })
    }

    pub(crate) fn connected(&self) -> usize {
        self.cabinets
            .iter()
            .filter(|c| {
                c.agent
                    .stats
                    .connected
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .count()
    }

    /// Events handed out by agents, and how many of them the server has receipted.
    pub(crate) fn sequence_totals(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.cabinets.iter().fold((0, 0), |(s, r), c| {
            (
                s + c.agent.outbox.last_seq(),
                r + c.agent.stats.receipted.load(Relaxed),
            )
        })
    }

    pub(crate) async fn shutdown(self) {
        self.cancel.cancel();
        self.activity.close();
        self.activity.wait().await;
        for c in self.cabinets.into_iter().chain(self.stations) {
            c.agent.shutdown().await;
        }
    }
}

/// A data dir for a throwaway run.
pub(crate) fn scratch_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()))
}

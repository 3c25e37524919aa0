//! What a run's people, staff and faults share: the devices with their cuttable links and
//! agents, the simulated clock, the ledger of what was done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use device_agent::{AgentConfig, FakeLocks, RunningAgent};
use protocol::DeviceId;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::ApiClient;
use crate::checks::{Injected, Ledger};
use crate::netem::Link;
use crate::scenario::Scenario;
use crate::schedule::{Person, Plan};

/// A simulated device: fake hardware, its link, and the agent (absent while restarting).
pub(super) struct Device {
    pub(super) id: DeviceId,
    pub(super) site: usize,
    pub(super) locks: Arc<FakeLocks>,
    pub(super) link: Link,
    pub(super) cfg: AgentConfig,
    pub(super) tls: Arc<rustls::ClientConfig>,
    pub(super) live: RwLock<Option<Live>>,
}

pub(super) struct Live {
    pub(super) agent: RunningAgent,
    pub(super) keys: device_agent::SoftKeypadHandle,
}

impl Device {
    pub(super) async fn start_agent(&self, cancel: &CancellationToken) -> anyhow::Result<Live> {
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
    pub(super) async fn session(&self) -> Option<u64> {
        let live = self.live.read().await;
        let stats = &live.as_ref()?.agent.stats;
        stats
            .connected
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| stats.connects.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The agent is connected in the same session as `before` (from [`Device::session`]):
    /// no drop or restart happened in between.
    pub(super) async fn stayed_online(&self, before: Option<u64>) -> bool {
        before.is_some() && self.session().await == before
    }

    /// The cabinet's own code book accepts `code` now (no side effects).
    pub(super) async fn verifies(&self, code: &str) -> bool {
        match self.live.read().await.as_ref() {
            Some(l) => l.agent.codes.verify(code, l.agent.clock.now_ms()).is_ok(),
            None => false,
        }
    }

    /// The keypad, waiting while the agent restarts (a person waits at a rebooting cabinet).
    pub(super) async fn keys(&self, sim: &Clock) -> Option<device_agent::SoftKeypadHandle> {
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
pub(super) struct Clock {
    pub(super) started: Instant,
    pub(super) acceleration: f64,
    pub(super) cancel: CancellationToken,
}

impl Clock {
    pub(super) fn sim_now(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * self.acceleration
    }

    pub(super) fn real(&self, sim_s: f64) -> Duration {
        Duration::from_secs_f64((sim_s / self.acceleration).max(0.0))
    }

    /// Sleeps `sim_s` simulated seconds; false when the run ends first.
    pub(super) async fn sleep(&self, sim_s: f64) -> bool {
        self.sleep_real(self.real(sim_s)).await
    }

    pub(super) async fn sleep_real(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    pub(super) async fn sleep_until_sim(&self, sim_s: f64) -> bool {
        let at = self.started + self.real(sim_s);
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep_until(at.into()) => true,
        }
    }
}

/// Everything the people, staff and faults of a run share.
pub(super) struct World {
    pub(super) scenario: Scenario,
    pub(super) plan: Plan,
    pub(super) devices: Vec<Arc<Device>>,
    pub(super) by_id: HashMap<String, usize>,
    pub(super) platform: ApiClient,
    pub(super) admin: ApiClient,
    pub(super) clock: Clock,
    pub(super) ledger: Mutex<Ledger>,
    pub(super) tasks: TaskTracker,
    /// Pick-ups waiting for staff to deposit: item id → the person and their code.
    pub(super) pickups: Mutex<HashMap<String, (Person, String)>>,
    /// Wall-clock seconds a device must be offline before `device_offline` is due.
    pub(super) offline_grace_real: f64,
    pub(super) door_alarm_real: f64,
    pub(super) agents_cancel: CancellationToken,
    /// Boxes somebody is using right now (a forced open leaves them alone).
    pub(super) busy: Mutex<std::collections::HashSet<(usize, u16)>>,
}

impl World {
    pub(super) fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn site_id(&self, site: usize) -> &str {
        &self.scenario.sites[site].id
    }

    pub(super) fn staff_card(&self, site: usize) -> String {
        format!("sim-card-{}", self.site_id(site))
    }

    /// Notes an injected fault and the alarm it must raise; its place in the ledger.
    pub(super) fn inject(
        &self,
        kind: &'static str,
        device: usize,
        box_no: Option<u16>,
        alarm: Option<&'static str>,
    ) -> usize {
        let mut ledger = self.ledger();
        ledger.injected.push(Injected {
            kind: kind.to_owned(),
            device: self.devices[device].id.to_string(),
            box_no,
            at_ms: fleet_server::now_ms(),
            expect_alarm: alarm.map(str::to_owned),
        });
        ledger.injected.len() - 1
    }

    pub(super) fn busy(&self, device: usize, b: u16, on: bool) -> bool {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            busy.insert((device, b))
        } else {
            busy.remove(&(device, b))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio_util::sync::CancellationToken;

    use super::Clock;

    fn clock(acceleration: f64) -> Clock {
        Clock {
            started: Instant::now(),
            acceleration,
            cancel: CancellationToken::new(),
        }
    }

    #[test]
    fn simulated_seconds_scale_to_real_time() {
        let c = clock(60.0);
        // A simulated hour at 60× is a real minute; the past is no wait at all.
        assert_eq!(c.real(3_600.0), Duration::from_secs(60));
        assert_eq!(c.real(-5.0), Duration::ZERO);
        assert!(c.sim_now() < 60.0, "a fresh clock is near zero");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_ends_early_when_the_run_ends() {
        let c = clock(1.0);
        assert!(c.sleep(1.0).await, "a whole sleep");
        c.cancel.cancel();
        assert!(!c.sleep(3_600.0).await, "cut short by the run's end");
        assert!(!c.sleep_until_sim(7_200.0).await);
    }
}

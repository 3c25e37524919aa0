//! Simulated people at a fake cabinet (the agent's fake mode and the fleet simulator).

use std::sync::Arc;
use std::time::Duration;

use protocol::BoxNo;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::{FakeLocks, LockDriver};

use crate::recorder::Recorder;

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

//! systemd service integration (`Type=notify`): READY once the agent runs, STOPPING on the
//! way out, and a watchdog fed only while the sensor watcher keeps polling — a wedged agent
//! stops pinging and systemd restarts it (`WatchdogSec=` in the unit). Outside systemd (no
//! `NOTIFY_SOCKET`) every call does nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::AgentStats;

/// Tells systemd the agent is up, with a one-line status for `systemctl status`.
pub fn ready(status: &str) {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]) {
        tracing::warn!(error = %e, "could not tell systemd the agent is ready");
    }
}

pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// Feeds systemd's watchdog while the agent's sensor watcher polls; returns at once when the
/// unit has no `WatchdogSec=`.
pub async fn watchdog(stats: Arc<AgentStats>, cancel: CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    tracing::info!(period_ms = period.as_millis() as u64, "systemd watchdog on");
    feed(
        period,
        || stats.polls.load(Ordering::Relaxed),
        || {
            if let Err(e) = sd_notify::notify(&[NotifyState::Watchdog]) {
                tracing::warn!(error = %e, "watchdog ping failed");
            }
        },
        cancel,
    )
    .await;
}

/// Pings every half `period` if `polls` moved since the last look; otherwise withholds the
/// ping (said once) so that systemd restarts a process whose watcher is stuck.
async fn feed(
    period: Duration,
    polls: impl Fn() -> u64,
    mut ping: impl FnMut(),
    cancel: CancellationToken,
) {
    let every = (period / 2).max(Duration::from_millis(10));
    let mut seen = polls();
    let mut withheld = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let now = polls();
        if now != seen {
            seen = now;
            withheld = false;
            ping();
        } else if !withheld {
            withheld = true;
            tracing::error!(
                stalled_ms = every.as_millis() as u64,
                "the sensor watcher has not polled; withholding the watchdog ping so systemd restarts the agent"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pings_only_while_the_watcher_polls() {
        let polls = Arc::new(AtomicU64::new(0));
        let pings = Arc::new(AtomicU64::new(0));
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let (polls, pings, cancel) = (polls.clone(), pings.clone(), cancel.clone());
            async move {
                feed(
                    Duration::from_secs(2),
                    move || polls.load(Ordering::Relaxed),
                    move || {
                        pings.fetch_add(1, Ordering::Relaxed);
                    },
                    cancel,
                )
                .await
            }
        });
        // Let the feeder take its first look before the watcher moves.
        tokio::time::sleep(Duration::from_millis(1)).await;
        for _ in 0..3 {
            polls.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(1_001)).await;
        }
        assert_eq!(pings.load(Ordering::Relaxed), 3, "one ping per half period");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            pings.load(Ordering::Relaxed),
            3,
            "a stuck watcher gets no ping"
        );
        polls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1_001)).await;
        assert_eq!(
            pings.load(Ordering::Relaxed),
            4,
            "pings again once it polls"
        );
        cancel.cancel();
        task.await.expect("feed ends on cancel");
    }
}

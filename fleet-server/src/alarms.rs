//! The alarm sweeps: a device offline past its grace raises `device_offline` (which
//! suppresses its box alarms) and clears it when the device is back; active alarms nobody
//! acknowledged escalate.
//!
//! Presence itself is exact (the broker front reports every session's start and end); the
//! grace keeps a flap — a reconnect within it — from raising anything.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{DEVICE_OFFLINE, Store, StoreError};

#[derive(Debug, Clone, Copy)]
pub struct AlarmSettings {
    pub offline_grace: Duration,
    pub escalate_after: Duration,
}

/// Runs [`sweep_once`] every second until cancelled.
pub async fn sweep(store: Store, settings: AlarmSettings, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = sweep_once(&store, settings, crate::now_ms()).await {
            tracing::warn!(error = %e, "alarm sweep failed; retrying in a second");
        }
    }
}

pub async fn sweep_once(store: &Store, s: AlarmSettings, now: i64) -> Result<(), StoreError> {
    let grace = s.offline_grace.as_millis() as i64;
    for (device, reason) in store.offline_past_grace(now, grace).await? {
        let evidence = format!(
            "offline for more than {} s ({})",
            s.offline_grace.as_secs(),
            reason
                .as_deref()
                .unwrap_or("no session since the server started")
        );
        store
            .server_alarm(&device, DEVICE_OFFLINE, true, &evidence, now)
            .await?;
    }
    for device in store.back_online().await? {
        store
            .server_alarm(&device, DEVICE_OFFLINE, false, "back online", now)
            .await?;
    }
    for a in store
        .escalate_alarms(now, s.escalate_after.as_millis() as i64)
        .await?
    {
        tracing::warn!(alarm = %a.id, device = %a.device_id, kind = %a.kind, severity = %a.severity,
            "alarm escalated: nobody acknowledged it");
    }
    Ok(())
}

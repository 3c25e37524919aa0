//! Device presence from the broker front's exact session reports.
//!
//! A device is online while it has at least one open session; a reconnect that overlaps the old
//! session (the front reports the new one before it ends the old) never shows a false offline.
//! Operators see presence through the API and its change stream; in the embedded broker no
//! MQTT client but a device can subscribe, so no `presence` topic is published.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use broker::PresenceEvent;
use protocol::DeviceId;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::store::Store;

/// Which devices are online now; shared with the command service.
#[derive(Clone, Default)]
pub struct Online {
    sessions: Arc<Mutex<HashMap<DeviceId, HashSet<u64>>>>,
}

impl Online {
    pub fn is_online(&self, device: &DeviceId) -> bool {
        self.sessions
            .lock()
            .map(|s| s.get(device).is_some_and(|v| !v.is_empty()))
            .unwrap_or(false)
    }

    /// Returns whether the device's online state changed, and the number online now.
    fn apply(&self, device: &DeviceId, session: u64, connected: bool) -> (bool, usize) {
        let Ok(mut map) = self.sessions.lock() else {
            return (false, 0);
        };
        let set = map.entry(device.clone()).or_default();
        let was_online = !set.is_empty();
        if connected {
            set.insert(session);
        } else {
            set.remove(&session);
        }
        let is_online = !set.is_empty();
        if !is_online {
            map.remove(device);
        }
        (was_online != is_online, map.len())
    }
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Consumes presence reports until the front stops.
pub async fn run(
    mut rx: mpsc::Receiver<PresenceEvent>,
    online: Online,
    store: Store,
    metrics: Metrics,
    changes: crate::changes::Changes,
) {
    while let Some(event) = rx.recv().await {
        let (device, session, connected, reason, at) = match event {
            PresenceEvent::Connected {
                device,
                session,
                peer,
                at,
            } => (device, session, true, format!("connected from {peer}"), at),
            PresenceEvent::Disconnected {
                device,
                session,
                reason,
                at,
            } => (device, session, false, reason.to_string(), at),
        };
        let (changed, count) = online.apply(&device, session, connected);
        metrics.devices_online.set(count as i64);
        let at = ms(at);
        // Every session start and end is logged, also the overlapping ones.
        if let Err(e) = store
            .presence(&device, session, online.is_online(&device), &reason, at)
            .await
        {
            tracing::error!(%device, error = %e, "recording presence failed");
        }
        if changed {
            changes.device(device.as_str());
            tracing::info!(%device, online = connected, %reason, "presence");
        }
    }
}

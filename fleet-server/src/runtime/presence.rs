//! Device presence from the broker front's exact session reports.
//!
//! A device is online while it has at least one open session; a reconnect that overlaps the old
//! session (the front reports the new one before it ends the old) never shows a false offline.
//! Operators see presence through the API and its change stream; in the embedded broker no
//! MQTT client but a device can subscribe, so no `presence` topic is published.

use std::time::{SystemTime, UNIX_EPOCH};

use broker::PresenceEvent;
use protocol::DeviceId;
use tokio::sync::mpsc;

use crate::devices::Online;
use crate::metrics::Metrics;
use crate::store::Store;

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// External broker mode: consumes the devices' own presence words (retained `online` after
/// each connect, the broker's last will `offline` when a connection dies) until the replica's
/// client stops. Every replica reads every word so that each knows who is online; the database
/// logs a transition once, whichever replica writes it first ([`Store::presence_change`]).
pub(crate) async fn run_external(
    mut rx: mpsc::Receiver<(DeviceId, protocol::Presence)>,
    online: Online,
    store: Store,
    metrics: Metrics,
    changes: crate::changes::Changes,
) {
    while let Some((device, word)) = rx.recv().await {
        // One session per device as the broker sees it: the broker replaces an old
        // connection of the same client id before the new one says it is online.
        let (changed, count) = online.apply(&device, 0, word.online);
        metrics.devices_online.set(count as i64);
        // The will was written when the device connected; the time it is heard is now.
        let at = crate::clock::now_ms();
        let reason = if word.online {
            "connected (external broker)".to_owned()
        } else {
            format!("{} (external broker)", truncate(&word.reason))
        };
        match store
            .presence_change(&device, word.online, &reason, at)
            .await
        {
            Ok(true) => changes.device(device.as_str()),
            Ok(false) => {}
            Err(e) => tracing::error!(%device, error = %e, "recording presence failed"),
        }
        if changed {
            changes.device(device.as_str());
            tracing::info!(%device, online = word.online, %reason, "presence");
        }
    }
}

/// A device's reason, kept short: it is the device's word, stored and shown as is.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(120) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Consumes presence reports until the front stops.
pub(crate) async fn run(
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

//! The alarm sweeps: a device offline past its grace raises `device_offline` (which
//! suppresses its box alarms) and clears it when the device is back; active alarms nobody
//! acknowledged escalate; new critical and major alarms, and escalations, go to the site's
//! on-duty staff by SMS, at most `notify_per_site_hour` alarms per site and hour.
//!
//! Presence comes in layers: the broker session is exact (the broker front reports every
//! session's start and end), and heartbeats catch an agent that hangs behind a live session.
//! A device is offline when its session has been down, or its heartbeats missing for
//! [`HEARTBEAT_MISSES`](crate::store::HEARTBEAT_MISSES) intervals, longer than the grace; the
//! grace keeps a flap (a reconnect within it) from raising anything.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::changes::{Change, Changes};
use crate::store::{Store, StoreError};
use domain::alarms::AlarmKind;
use protocol::evidence::Code;

#[derive(Debug, Clone, Copy)]
pub struct AlarmSettings {
    pub offline_grace: Duration,
    pub escalate_after: Duration,
    /// Most alarms per site told to on-duty staff in any hour.
    pub notify_per_site_hour: i64,
    /// The language of the staff's SMS where the site sets none.
    pub lang: l10n::Lang,
    /// The clock of a site that names no time zone (the server's `utc_offset_minutes`), the
    /// same the citizens' SMS use.
    pub utc_offset_minutes: i32,
}

/// Since when this replica hears the devices: heartbeats it could not have heard are no
/// evidence that a device stopped sending them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hearing {
    /// The external broker link is down: no heartbeat is judged missing.
    Deaf,
    /// Listening since this time (ms): a heartbeat counts as missing only from then.
    Since(i64),
}

/// Runs [`sweep_once`] every second until cancelled; `health` says whether the external
/// broker (if any) is connected.
pub async fn sweep(
    store: Store,
    settings: AlarmSettings,
    changes: Changes,
    health: crate::health::Health,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = crate::clock::now_ms();
        // A lost link to the external broker made every device look hung: their heartbeats
        // stopped arriving because this replica stopped listening.
        let hearing = health.hearing_since().map_or(Hearing::Deaf, Hearing::Since);
        match sweep_once(&store, settings, now, hearing).await {
            Ok(true) => changes.send(Change::Alarms),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "alarm sweep failed; retrying in a second"),
        }
    }
}

/// One pass; `true` when it changed any alarm.
pub async fn sweep_once(
    store: &Store,
    s: AlarmSettings,
    now: i64,
    hearing: Hearing,
) -> Result<bool, StoreError> {
    let grace = s.offline_grace.as_millis() as i64;
    let mut changed = false;
    for (device, reason) in store.offline_past_grace(now, grace).await? {
        let evidence = protocol::evidence::say(
            Code::Offline,
            &[
                &s.offline_grace.as_secs().to_string(),
                reason
                    .as_deref()
                    .unwrap_or("no session since the server started"),
            ],
        );
        store
            .server_alarm(&device, AlarmKind::DeviceOffline, true, &evidence, now)
            .await?;
        changed = true;
    }
    let lost = match hearing {
        Hearing::Deaf => Vec::new(),
        Hearing::Since(since) => store.heartbeat_lost(now, grace, since).await?,
    };
    for (device, last_sign) in lost {
        let evidence = protocol::evidence::say(
            Code::HeartbeatLost,
            &[&((now - last_sign) / 1000).to_string()],
        );
        store
            .log_presence(&device, "heartbeat", false, &evidence, now)
            .await?;
        store
            .server_alarm(&device, AlarmKind::DeviceOffline, true, &evidence, now)
            .await?;
        changed = true;
    }
    for device in store.back_online(now).await? {
        let evidence = &protocol::evidence::say(Code::BackOnline, &[]);
        store
            .log_presence(&device, "heartbeat", true, evidence, now)
            .await?;
        store
            .server_alarm(&device, AlarmKind::DeviceOffline, false, evidence, now)
            .await?;
        changed = true;
    }
    let escalated = store
        .escalate_alarms(now, s.escalate_after.as_millis() as i64)
        .await?;
    let new = store.alarms_to_notify(now).await?;
    if escalated.is_empty() && new.is_empty() {
        return Ok(changed);
    }
    // In each site's language (sites and templates are read only when someone is told).
    let book = crate::sms_text::SmsBook::load(store, s.lang, s.utc_offset_minutes).await?;
    for a in escalated {
        tracing::warn!(alarm = %a.id, device = %a.device_id, kind = %a.kind, severity = %a.severity,
            "alarm escalated: nobody acknowledged it");
        let sms = book.alarm_sms(&a, true);
        let outcome = store
            .notify_alarm(&a, &|to| sms.body(to), s.notify_per_site_hour, now)
            .await?;
        tracing::info!(alarm = %a.id, outcome, "escalation told to on-duty staff");
        changed = true;
    }
    for a in new {
        let sms = book.alarm_sms(&a, false);
        let outcome = store
            .notify_alarm(&a, &|to| sms.body(to), s.notify_per_site_hour, now)
            .await?;
        tracing::info!(alarm = %a.id, kind = %a.kind, outcome, "alarm told to on-duty staff");
        changed = true;
    }
    Ok(changed)
}

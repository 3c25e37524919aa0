//! The sensor watcher: polls the lock hardware, records changes and faults, and sends the
//! heartbeat.

use protocol::evidence::Code;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol::{BoxNo, BusHealth, Channel, FaultKind, Heartbeat, Power, StationStatus};
use rumqttc::QoS;
use tokio_util::sync::CancellationToken;

use crate::{Ctx, DriverError, LockDriver, Signals};

/// Polls in a row that must fail before the lock bus counts as unreachable: one lost frame on
/// an RS-485 bus is not a fault.
pub(crate) const BUS_FAIL_POLLS: u32 = 3;

/// What the last poll found about the device as a whole, for the heartbeat.
#[derive(Debug, Clone)]
pub(crate) struct HealthNow {
    pub(crate) lock_bus: BusHealth,
    pub(crate) power: Power,
    pub(crate) station: Option<StationStatus>,
}

/// Reads every sensor every `poll_interval_ms` and records changes; judges the lock bus,
/// power, tamper switch and a station's peripherals as levels.
pub(crate) async fn watch<D: LockDriver>(ctx: Arc<Ctx<D>>, cancel: CancellationToken) {
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
                let evidence = protocol::evidence::say(
                    Code::BusSilent,
                    &[&bus_failures.to_string(), err.as_str()],
                );
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
                protocol::evidence::say(Code::BusBack, &[]),
            ));
            BusHealth::Ok
        };
        if let Some(on) = signals.on_battery {
            let code = if on { Code::MainsLost } else { Code::MainsBack };
            changes.push((FaultKind::OnBattery, on, protocol::evidence::say(code, &[])));
        }
        if let Some(open) = signals.tamper {
            let code = if open {
                Code::TamperOpen
            } else {
                Code::TamperClosed
            };
            changes.push((FaultKind::Tamper, open, protocol::evidence::say(code, &[])));
        }
        if let Some(st) = &station {
            for (kind, active) in st.faults() {
                let code = if active {
                    Code::StationReports
                } else {
                    Code::StationClears
                };
                let evidence =
                    protocol::evidence::say(code, &[ctx.cfg.profile.as_str(), kind.as_str()]);
                changes.push((kind, active, evidence));
            }
        }
        for (b, open_for) in ctx.recorder.faults.left_open() {
            let evidence =
                protocol::evidence::say(Code::DoorOpenFor, &[&open_for.as_secs().to_string()]);
            if let Err(e) = ctx
                .recorder
                .faults
                .raise(
                    Some(b),
                    FaultKind::DoorLeftOpen,
                    evidence,
                    ctx.clock.now_ms(),
                )
                .await
            {
                tracing::error!(device = %ctx.id, error = %e, "recording a fault failed");
            }
        }
        let at = ctx.clock.now_ms();
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

/// Sends a heartbeat, at QoS 1 though the next one replaces a lost one: its acknowledgement
/// is what tells a broker node that stopped passing messages on (`net::AckWatch`).
pub(crate) fn heartbeat<D>(ctx: &Ctx<D>, acked: u64) {
    let now = ctx.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let hb = Heartbeat {
        v: 1,
        ts: ctx.clock.now_ms(),
        interval_s: ctx.cfg.heartbeat_secs as u32,
        profile: ctx.cfg.profile,
        uptime_s: ctx.started.elapsed().as_secs(),
        lock_bus: now.lock_bus,
        power: now.power,
        outbox_pending: ctx.outbox.last_seq().saturating_sub(acked),
        station: now.station,
        clock_offset_ms: Some(ctx.clock.offset_ms()),
    };
    let topic = protocol::topic::device_topic(&ctx.id, Channel::Health);
    if let Err(e) = ctx
        .client
        .try_publish(topic, QoS::AtLeastOnce, false, protocol::encode(&hb))
    {
        tracing::debug!(device = %ctx.id, error = %e, "heartbeat not sent");
    }
}

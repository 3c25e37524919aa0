//! Fault detection at the cabinet: each condition raised once when it begins and cleared once
//! when it ends, with its evidence, also across restarts (the active set lives in the outbox
//! database, changed in the same transaction as its event).
//!
//! Door faults come from the sensor readings the [`crate::Recorder`] sees: a door that opens
//! with no unlock pulse shortly before is forced open; a door open longer than
//! `door_open_alarm_secs` is left open. A pulse whose door does not move is a lock jam until
//! the next pulse opens it. An occupancy reading that changes while the door stayed shut (no
//! pulse, no opening seen since the last legitimate change) contradicts the door sensor: a
//! sensor fault, cleared when the reading returns or the door next opens.
//!
//! Device-wide conditions (lock bus, power, tamper, a station's peripherals) are levels the
//! agent reads each poll and passes to [`Faults::level`].

use protocol::evidence::Code;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use protocol::{BoxNo, FaultKind};

use crate::outbox::{Outbox, OutboxError};

pub struct Faults {
    outbox: Arc<Outbox>,
    active: Mutex<HashSet<(u16, FaultKind)>>,
    /// Per box: when its lock was last pulsed, and since when its door is open.
    boxes: Mutex<Vec<BoxTrack>>,
    /// A door opening this soon after a pulse was opened by it.
    pulse_grace: Duration,
    /// Milliseconds; changed live by central configuration.
    door_open_alarm_ms: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone, Copy, Default)]
struct BoxTrack {
    pulsed: Option<Instant>,
    open_since: Option<Instant>,
    /// The door opened or the lock was pulsed since the last legitimate occupancy change.
    cycled: bool,
    /// Occupancy as last legitimately changed (what a shut door should keep reading).
    baseline: Option<bool>,
}

fn key(b: Option<BoxNo>) -> u16 {
    b.map_or(0, BoxNo::get)
}

impl Faults {
    pub async fn load(
        outbox: Arc<Outbox>,
        boxes: u16,
        pulse_grace: Duration,
        door_open_alarm: Duration,
    ) -> Result<Faults, OutboxError> {
        let active = outbox.active_faults().await?.into_iter().collect();
        Ok(Faults {
            outbox,
            active: Mutex::new(active),
            boxes: Mutex::new(vec![BoxTrack::default(); usize::from(boxes)]),
            pulse_grace,
            door_open_alarm_ms: std::sync::atomic::AtomicU64::new(
                door_open_alarm.as_millis() as u64
            ),
        })
    }

    fn set(&self) -> MutexGuard<'_, HashSet<(u16, FaultKind)>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tracks(&self) -> MutexGuard<'_, Vec<BoxTrack>> {
        self.boxes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_active(&self, b: Option<BoxNo>, kind: FaultKind) -> bool {
        self.set().contains(&(key(b), kind))
    }

    pub fn active(&self) -> Vec<(u16, FaultKind)> {
        let mut v: Vec<_> = self.set().iter().copied().collect();
        v.sort();
        v
    }

    /// Raises a fault unless it is active; `true` when this call raised it.
    pub async fn raise(
        &self,
        b: Option<BoxNo>,
        kind: FaultKind,
        evidence: String,
        at: i64,
    ) -> Result<bool, OutboxError> {
        self.level(b, kind, true, evidence, at).await
    }

    /// Clears a fault if it is active; `true` when this call cleared it.
    pub async fn clear(
        &self,
        b: Option<BoxNo>,
        kind: FaultKind,
        evidence: String,
        at: i64,
    ) -> Result<bool, OutboxError> {
        self.level(b, kind, false, evidence, at).await
    }

    /// Raises or clears a condition, as read (bus, power, tamper, peripherals); `true` when
    /// this call changed it.
    pub async fn level(
        &self,
        b: Option<BoxNo>,
        kind: FaultKind,
        active: bool,
        evidence: String,
        at: i64,
    ) -> Result<bool, OutboxError> {
        if self.is_active(b, kind) == active {
            return Ok(false);
        }
        let changed = self.outbox.set_fault(b, kind, active, evidence, at).await?;
        if active {
            self.set().insert((key(b), kind));
        } else {
            self.set().remove(&(key(b), kind));
        }
        if changed {
            let what = if active {
                "fault raised"
            } else {
                "fault cleared"
            };
            tracing::info!(r#box = key(b), fault = kind.as_str(), "{what}");
        }
        Ok(changed)
    }

    /// The lock of `b` is about to be pulsed.
    pub fn pulsed(&self, b: BoxNo) {
        if let Some(t) = self.tracks().get_mut(usize::from(b.get()) - 1) {
            t.pulsed = Some(Instant::now());
            t.cycled = true;
        }
    }

    /// The door of `b` opened and shut between two sensor polls (too fast to be seen): the
    /// next occupancy change is legitimate. Used by simulated people.
    pub fn door_cycled(&self, b: BoxNo) {
        if let Some(t) = self.tracks().get_mut(usize::from(b.get()) - 1) {
            t.cycled = true;
        }
    }

    /// The occupancy reading of `b` changed from `old` to `new`; `door_open` is the door now.
    /// Returns the sensor-fault change to record, if any.
    pub fn occupancy_changed(
        &self,
        b: BoxNo,
        old: Option<bool>,
        new: bool,
        door_open: bool,
    ) -> Option<(FaultKind, bool, String)> {
        let mut tracks = self.tracks();
        let t = tracks.get_mut(usize::from(b.get()) - 1)?;
        let baseline = *t.baseline.get_or_insert(old.unwrap_or(new));
        if door_open || t.cycled {
            // The opening that explains this change explains no later one behind a shut door.
            t.baseline = Some(new);
            t.cycled = false;
            return None;
        }
        let word = |o: bool| if o { "occupied" } else { "empty" };
        if new == baseline {
            Some((
                FaultKind::SensorFault,
                false,
                protocol::evidence::say(Code::OccupancyAgain, &[word(new)]),
            ))
        } else {
            Some((
                FaultKind::SensorFault,
                true,
                protocol::evidence::say(Code::OccupancyChanged, &[word(new)]),
            ))
        }
    }

    /// A door reading changed. Returns the fault changes to record, in order.
    pub fn door_changed(&self, b: BoxNo, open: bool) -> Vec<(FaultKind, bool, String)> {
        let mut tracks = self.tracks();
        let Some(t) = tracks.get_mut(usize::from(b.get()) - 1) else {
            return Vec::new();
        };
        if open {
            t.open_since = Some(Instant::now());
            t.cycled = true;
            // Someone can see into the box now: its occupancy is judged afresh.
            let resolved = (
                FaultKind::SensorFault,
                false,
                protocol::evidence::say(Code::DoorOpenedJudged, &[]),
            );
            // A pulse authorises one opening: the next one needs a pulse of its own.
            let authorised = t
                .pulsed
                .take()
                .is_some_and(|p| p.elapsed() <= self.pulse_grace);
            if authorised {
                vec![resolved]
            } else {
                vec![
                    resolved,
                    (
                        FaultKind::ForcedOpen,
                        true,
                        protocol::evidence::say(
                            Code::ForcedOpen,
                            &[&self.pulse_grace.as_millis().to_string()],
                        ),
                    ),
                ]
            }
        } else {
            t.open_since = None;
            let closed = protocol::evidence::say(Code::DoorClosed, &[]);
            vec![
                (FaultKind::ForcedOpen, false, closed.clone()),
                (FaultKind::DoorLeftOpen, false, closed),
            ]
        }
    }

    pub fn door_open_alarm(&self) -> Duration {
        Duration::from_millis(
            self.door_open_alarm_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// From the next check on: a door already open longer raises its fault then.
    pub fn set_door_open_alarm(&self, d: Duration) {
        self.door_open_alarm_ms
            .store(d.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// The door of `b` was found open at start: it counts from now.
    pub fn door_open_at_start(&self, b: BoxNo) {
        if let Some(t) = self.tracks().get_mut(usize::from(b.get()) - 1) {
            t.open_since = Some(Instant::now());
        }
    }

    /// Boxes whose door has been open longer than the alarm time, with how long.
    pub fn left_open(&self) -> Vec<(BoxNo, Duration)> {
        let alarm = self.door_open_alarm();
        self.tracks()
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let since = t.open_since?.elapsed();
                let b = BoxNo::new(u16::try_from(i + 1).ok()?).ok()?;
                (since > alarm).then_some((b, since))
            })
            .collect()
    }
}

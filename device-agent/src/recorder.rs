//! Sensor changes into the outbox: compared with the last known state, under one lock so a
//! snapshot always matches the outbox's last seq.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use protocol::{BoxNo, BoxState, EventBody, StateSnapshot};
use tokio::sync::{Mutex, Notify};

use crate::{AgentStats, Faults, Outbox, OutboxError};

use crate::clock::Clock;

/// Records sensor changes: compares with the last known state and appends what changed to
/// the outbox, under one lock so a snapshot always matches the outbox's last seq.
pub struct Recorder {
    pub(crate) known: Mutex<Vec<BoxState>>,
    /// When each box's state was last recorded (written under `known`'s lock): a sensor
    /// reading older than that is stale — a pulse's outcome, the keypad or the simulator
    /// recorded a newer truth meanwhile — and is dropped, not recorded as a change back.
    pub(crate) changed_at: std::sync::Mutex<std::collections::HashMap<u16, Instant>>,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) clock: Arc<Clock>,
    pub(crate) notify: Arc<Notify>,
    pub(crate) stats: Arc<AgentStats>,
    pub faults: Arc<Faults>,
}

impl Recorder {
    /// Records the state of one box as known now; appends an event per changed value.
    /// `true` when it wrote something.
    pub async fn observe(
        &self,
        b: BoxNo,
        door_open: bool,
        occupied: Option<bool>,
    ) -> Result<bool, OutboxError> {
        self.record(b, door_open, occupied, None).await
    }

    /// Records a sensor reading taken at `read_at`, unless the box's state was recorded
    /// after that (the next poll reads again).
    pub async fn observe_reading(
        &self,
        b: BoxNo,
        door_open: bool,
        occupied: Option<bool>,
        read_at: Instant,
    ) -> Result<bool, OutboxError> {
        self.record(b, door_open, occupied, Some(read_at)).await
    }

    pub(crate) async fn record(
        &self,
        b: BoxNo,
        door_open: bool,
        occupied: Option<bool>,
        read_at: Option<Instant>,
    ) -> Result<bool, OutboxError> {
        let mut known = self.known.lock().await;
        let Some(k) = known.get_mut(usize::from(b.get()) - 1) else {
            return Ok(false);
        };
        if let Some(read_at) = read_at {
            let changed_at = self.changed_at.lock().unwrap_or_else(|p| p.into_inner());
            if changed_at.get(&b.get()).is_some_and(|t| *t > read_at) {
                return Ok(false);
            }
        }
        let mut events = Vec::new();
        let door_changed = k.door_open != door_open;
        if door_changed {
            events.push(EventBody::Door {
                box_no: b,
                open: door_open,
            });
        }
        let was_occupied = k.occupied;
        let occupancy_changed = occupied.filter(|_| k.occupied != occupied);
        if let Some(o) = occupancy_changed {
            events.push(EventBody::Occupancy {
                box_no: b,
                occupied: o,
            });
        }
        if events.is_empty() {
            return Ok(false);
        }
        self.outbox.append(self.clock.now_ms(), events).await?;
        k.door_open = door_open;
        if occupied.is_some() {
            k.occupied = occupied;
        }
        self.changed_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(b.get(), Instant::now());
        drop(known);
        let mut changes = Vec::new();
        if door_changed {
            changes = self.faults.door_changed(b, door_open);
        }
        if let Some(o) = occupancy_changed {
            changes.extend(self.faults.occupancy_changed(b, was_occupied, o, door_open));
        }
        let at = self.clock.now_ms();
        for (kind, active, evidence) in changes {
            self.faults
                .level(Some(b), kind, active, evidence, at)
                .await?;
        }
        self.stats
            .last_seq
            .store(self.outbox.last_seq(), Ordering::Relaxed);
        self.notify.notify_one();
        Ok(true)
    }

    pub async fn snapshot(&self) -> StateSnapshot {
        let known = self.known.lock().await;
        StateSnapshot {
            v: 1,
            seq: self.outbox.last_seq(),
            ts: self.clock.now_ms(),
            boxes: known.clone(),
        }
    }

    pub(crate) async fn current(&self, b: BoxNo) -> Option<BoxState> {
        self.known
            .lock()
            .await
            .get(usize::from(b.get()) - 1)
            .copied()
    }
}

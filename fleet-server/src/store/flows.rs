//! What the locker service's storage modules share: the transaction type, what an ingest
//! transaction changed besides events (`Effects`), which cabinets a sweep may judge
//! (`Presence`), and the audit rows of keypad events and configuration changes.
//!
//! Every state change of an item happens in one transaction together with its history row,
//! its audit row, its notifications (transactional outbox) and the bump of its cabinet's code
//! version, so a crash never leaves one without the others (`items::transition`).

use protocol::{BoxNo, DeviceId};

use super::StoreError;

pub(super) type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// What an ingest transaction changed besides events: the service acts on it after commit.
#[derive(Debug, Default)]
pub struct Effects {
    /// Cabinets whose code grants changed.
    pub codes_changed: Vec<DeviceId>,
    /// New notifications are waiting.
    pub notify: bool,
    /// What cabinets' `command_result` events did to their commands.
    pub commands: Vec<super::CommandReport>,
}

impl Effects {
    /// Notes that a cabinet's code grants changed (once per cabinet).
    pub(crate) fn codes_change(&mut self, device: DeviceId) {
        if !self.codes_changed.contains(&device) {
            self.codes_changed.push(device);
        }
    }

    /// Adds what another transaction of the same batch changed.
    pub fn merge(&mut self, other: Effects) {
        for device in other.codes_changed {
            self.codes_change(device);
        }
        self.notify |= other.notify;
        self.commands.extend(other.commands);
    }
}

/// Which cabinets a time-up sweep may judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Only cabinets online for longer than the grace: a code used offline may still be on
    /// its way from the others (the live server).
    Live,
    /// Every cabinet, as online throughout: a history written at its own times
    /// (`crate::backfill`), where no cabinet is connected yet and none was ever offline.
    Assumed,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn audit(
    tx: &mut Tx<'_>,
    ts: i64,
    actor: &str,
    action: &str,
    device: &DeviceId,
    box_no: Option<BoxNo>,
    item: Option<&str>,
    outcome: &str,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    super::audit::append(
        tx,
        &super::audit::AuditEntry {
            id: &id,
            ts,
            actor,
            action,
            device: Some(device.as_str()),
            box_no: box_no.map(|b| i64::from(b.get())),
            item,
            outcome: Some(outcome),
            reason,
            ..Default::default()
        },
    )
    .await
}

/// A configuration change by a person or token, in the same transaction as the change.
pub(super) async fn admin_audit(
    tx: &mut Tx<'_>,
    ts: i64,
    actor: &str,
    action: &str,
    device: Option<&str>,
    box_no: Option<i64>,
    what: &str,
) -> Result<(), StoreError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    super::audit::append(
        tx,
        &super::audit::AuditEntry {
            id: &id,
            ts,
            actor,
            action,
            device,
            box_no,
            reason: Some(what),
            ..Default::default()
        },
    )
    .await
}

//! What a cabinet's keypad, code and fault events change, applied inside the ingest
//! transaction once per new `(device, seq)`.

use domain::flows::Trigger;
use protocol::{DeviceId, EventBody};
use sqlx::AssertSqlSafe;

use super::flows::{Effects, Tx, audit};
use super::items::{ITEM_COLS, ItemRow, history_detail, transition};
use super::{Store, StoreError};

/// How far a cabinet's clock may lag the server's before a staff open is judged older than
/// the item in its box.
pub(super) const STAFF_OPEN_SKEW_MS: i64 = 60_000;

impl Store {
    /// Applies one *new* keypad event of `device` inside the ingest transaction: item
    /// transitions, audit, notifications and code versions. Called once per stored event.
    pub(super) async fn apply_keypad_event(
        tx: &mut Tx<'_>,
        device: &DeviceId,
        ts: i64,
        body: &EventBody,
        now: i64,
        webhooks: bool,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        match body {
            EventBody::CodeUsed {
                item,
                box_no,
                status,
            } => {
                let status = format!("{status:?}").to_lowercase();
                audit(
                    tx,
                    ts,
                    "keypad",
                    "code_open",
                    device,
                    Some(*box_no),
                    Some(item.as_str()),
                    &status,
                    None,
                )
                .await?;
                let row = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {ITEM_COLS} FROM items WHERE item_id = $1 AND device_id = $2"
                )))
                .bind(item.as_str())
                .bind(device.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                match row.as_ref().map(ItemRow::from_row).transpose()? {
                    Some(i) => {
                        let detail = format!("code used at the cabinet (lock: {status})");
                        let to = transition(
                            tx,
                            &i,
                            Trigger::CodeUsed,
                            "citizen",
                            Some(&detail),
                            now,
                            webhooks,
                            effects,
                        )
                        .await?;
                        if to.is_none() {
                            tracing::warn!(%device, item = %i.id, state = %i.state,
                                "code used for an item not waiting for it; recorded in its history");
                            history_detail(
                                tx,
                                &i.id,
                                now,
                                i.state.as_str(),
                                "citizen",
                                Some(&format!(
                                    "code used at {ts} while the item was {}; no change",
                                    i.state
                                )),
                            )
                            .await?;
                        }
                    }
                    None => {
                        tracing::warn!(%device, %item, "code used for an item this cabinet does not hold")
                    }
                }
            }
            EventBody::CodeRejected { reason, item } => {
                audit(
                    tx,
                    ts,
                    "keypad",
                    "code_rejected",
                    device,
                    None,
                    item.as_ref().map(|i| i.as_str()),
                    reason.as_str(),
                    None,
                )
                .await?;
            }
            EventBody::KeypadLocked { until, failures } => {
                audit(
                    tx,
                    ts,
                    "keypad",
                    "keypad_locked",
                    device,
                    None,
                    None,
                    "locked",
                    Some(&format!("{failures} wrong entries; locked until {until}")),
                )
                .await?;
            }
            EventBody::StaffRejected { reason } => {
                audit(
                    tx,
                    ts,
                    "keypad",
                    "staff_rejected",
                    device,
                    None,
                    None,
                    reason.as_str(),
                    None,
                )
                .await?;
            }
            EventBody::StaffOpen {
                staff,
                box_no,
                status,
            } => {
                let actor = format!("staff:{staff}");
                let status = format!("{status:?}").to_lowercase();
                let row = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {ITEM_COLS} FROM items WHERE device_id = $1 AND box_no = $2 AND holds_box = 1"
                )))
                .bind(device.as_str())
                .bind(i64::from(box_no.get()))
                .fetch_optional(&mut **tx)
                .await?;
                let item = row.as_ref().map(ItemRow::from_row).transpose()?;
                audit(
                    tx,
                    ts,
                    &actor,
                    "staff_open",
                    device,
                    Some(*box_no),
                    item.as_ref().map(|i| i.id.as_str()),
                    &status,
                    None,
                )
                .await?;
                // A staff open that happened offline before this item was reserved (the box
                // looked free to the server) is not about this item. The times come from two
                // clocks: allow them a minute of disagreement.
                let item = match item {
                    Some(i) if ts + STAFF_OPEN_SKEW_MS < i.created_at => {
                        tracing::warn!(%device, r#box = %box_no, item = %i.id, opened_at = ts,
                            reserved_at = i.created_at, "staff open older than the item in the box; not applied to it");
                        None
                    }
                    other => other,
                };
                if let Some(i) = item {
                    let detail = format!("opened by {staff} at the cabinet (lock: {status})");
                    if transition(
                        tx,
                        &i,
                        Trigger::StaffOpen,
                        &actor,
                        Some(&detail),
                        now,
                        webhooks,
                        effects,
                    )
                    .await?
                    .is_none()
                    {
                        history_detail(tx, &i.id, now, i.state.as_str(), &actor, Some(&detail))
                            .await?;
                    }
                }
            }
            EventBody::Fault {
                box_no,
                fault,
                active,
                evidence,
            } => {
                Store::apply_fault(tx, device, *box_no, *fault, *active, evidence, ts, now).await?;
            }
            EventBody::CodesApplied { version } => {
                sqlx::query(
                    "UPDATE cabinets SET codes_applied = CASE WHEN $1 > codes_applied THEN $1 ELSE codes_applied END
                     WHERE device_id = $2",
                )
                .bind(i64::try_from(*version).unwrap_or(i64::MAX))
                .bind(device.as_str())
                .execute(&mut **tx)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether an event is one [`Store::apply_keypad_event`] acts on (keypad, code and fault
/// events: each changes items or alarms, so each is applied once, when new).
pub(super) fn is_keypad_event(body: &EventBody) -> bool {
    matches!(
        body,
        EventBody::CodeUsed { .. }
            | EventBody::CodeRejected { .. }
            | EventBody::KeypadLocked { .. }
            | EventBody::StaffOpen { .. }
            | EventBody::StaffRejected { .. }
            | EventBody::CodesApplied { .. }
            | EventBody::Fault { .. }
    )
}

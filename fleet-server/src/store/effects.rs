//! What a cabinet's events change beyond being stored — keypad and staff opens (items, audit,
//! notifications), code set confirmations, faults (alarms), release and configuration reports
//! (the device's row, audit) — applied inside the ingest transaction once per new
//! `(device, seq)`.

use domain::keypad;
use protocol::{DeviceId, EventBody};
use sqlx::AssertSqlSafe;

use super::flows::{Effects, Tx, audit};
use super::items::{ITEM_COLS, ItemRow, history_detail, transition};
use super::{Store, StoreError};

impl Store {
    /// Applies one *new* event of `device` that [`has_effects`] inside the ingest transaction: what the
    /// event means is decided by `domain::keypad` (audit line, item change); this looks the
    /// item up and writes the audit row, the transition or its note, notifications and code
    /// versions. Called once per stored event.
    pub(super) async fn apply_event_effects(
        tx: &mut Tx<'_>,
        device: &DeviceId,
        ts: i64,
        body: &EventBody,
        now: i64,
        webhooks: bool,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        match body {
            EventBody::CodeUsed { item, status, .. } => {
                if let Some(line) = keypad::audit_line(body) {
                    write_audit(tx, ts, device, &line).await?;
                }
                let row = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {ITEM_COLS} FROM items WHERE item_id = $1 AND device_id = $2"
                )))
                .bind(item.as_str())
                .bind(device.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                match row.as_ref().map(ItemRow::from_row).transpose()? {
                    Some(i) => {
                        let change = keypad::code_used(*status, ts, i.state);
                        if !apply_change(tx, &i, &change, now, webhooks, effects).await? {
                            tracing::warn!(%device, item = %i.id, state = %i.state,
                                "code used for an item not waiting for it; recorded in its history");
                        }
                    }
                    None => {
                        tracing::warn!(%device, %item, "code used for an item this cabinet does not hold")
                    }
                }
            }
            EventBody::StaffOpen {
                staff,
                box_no,
                status,
            } => {
                let row = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {ITEM_COLS} FROM items WHERE device_id = $1 AND box_no = $2 AND holds_box = 1"
                )))
                .bind(device.as_str())
                .bind(i64::from(box_no.get()))
                .fetch_optional(&mut **tx)
                .await?;
                let item = row.as_ref().map(ItemRow::from_row).transpose()?;
                if let Some(mut line) = keypad::audit_line(body) {
                    line.item = item.as_ref().map(|i| i.id.clone());
                    write_audit(tx, ts, device, &line).await?;
                }
                if let Some(i) = item {
                    match keypad::staff_open(staff.as_str(), *status, ts, i.created_at) {
                        Some(change) => {
                            apply_change(tx, &i, &change, now, webhooks, effects).await?;
                        }
                        None => {
                            tracing::warn!(%device, r#box = %box_no, item = %i.id, opened_at = ts,
                                reserved_at = i.created_at, "staff open older than the item in the box; not applied to it");
                        }
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
            EventBody::Release {
                version,
                state,
                reason,
            } => {
                let state = state.as_str();
                sqlx::query(
                    "UPDATE devices SET release_version = $1, release_state = $2,
                       release_reason = $3, release_at = $4
                     WHERE device_id = $5 AND (release_at IS NULL OR release_at <= $4)",
                )
                .bind(version)
                .bind(state)
                .bind(reason.as_deref())
                .bind(ts)
                .bind(device.as_str())
                .execute(&mut **tx)
                .await?;
                // Every step on the cabinet is in the audit log; a refusal with its reason.
                device_report(tx, ts, &format!("release_{state}"), device, version, reason).await?;
            }
            EventBody::Config {
                version,
                state,
                settings,
                reason,
            } => {
                let settings = settings
                    .as_ref()
                    .map(|s| serde_json::to_string(s).unwrap_or_default());
                sqlx::query(
                    "UPDATE devices SET config_version = $1, config_state = $2,
                       config_reason = $3, config_settings = COALESCE($4, config_settings),
                       config_at = $5
                     WHERE device_id = $6 AND (config_at IS NULL OR config_at <= $5)",
                )
                .bind(version)
                .bind(state.as_str())
                .bind(reason.as_deref())
                .bind(settings)
                .bind(ts)
                .bind(device.as_str())
                .execute(&mut **tx)
                .await?;
                // A refusal is news to an operator; an applied set is in the device's row.
                if *state != protocol::ConfigProgress::Applied {
                    let action = format!("config_{}", state.as_str());
                    device_report(tx, ts, &action, device, version, reason).await?;
                }
            }
            EventBody::CodesApplied {
                version,
                spent,
                dropped,
            } => {
                sqlx::query(
                    "UPDATE cabinets SET codes_applied = CASE WHEN $1 > codes_applied THEN $1 ELSE codes_applied END
                     WHERE device_id = $2",
                )
                .bind(i64::try_from(*version).unwrap_or(i64::MAX))
                .bind(device.as_str())
                .execute(&mut **tx)
                .await?;
                let answer = super::reconcile::Answer {
                    version: *version,
                    spent,
                    dropped,
                };
                super::reconcile::reconcile_codes(tx, device, answer, now, webhooks, effects)
                    .await?;
            }
            other => {
                if let Some(line) = keypad::audit_line(other) {
                    write_audit(tx, ts, device, &line).await?;
                }
            }
        }
        Ok(())
    }
}

/// The audit row of a keypad event, in the ingest transaction.
/// The audit line of what a device reported about itself (a release step, a configuration
/// waiting or refused): by `device`, naming the version and why.
async fn device_report(
    tx: &mut Tx<'_>,
    ts: i64,
    action: &str,
    device: &DeviceId,
    version: &str,
    reason: &Option<String>,
) -> Result<(), StoreError> {
    audit(
        tx,
        ts,
        "device",
        action,
        device,
        None,
        None,
        version,
        reason.as_deref(),
    )
    .await
}

async fn write_audit(
    tx: &mut Tx<'_>,
    ts: i64,
    device: &DeviceId,
    line: &keypad::AuditLine,
) -> Result<(), StoreError> {
    audit(
        tx,
        ts,
        &line.actor,
        line.action,
        device,
        line.box_no,
        line.item.as_deref(),
        &line.result,
        line.detail.as_deref(),
    )
    .await
}

/// Moves the item as the keypad event asks; where the state machine does not take the
/// trigger, notes the event in the item's history instead. `true` when the item moved.
pub(super) async fn apply_change(
    tx: &mut Tx<'_>,
    item: &ItemRow,
    change: &keypad::ItemChange,
    now: i64,
    webhooks: bool,
    effects: &mut Effects,
) -> Result<bool, StoreError> {
    let moved = transition(
        tx,
        item,
        change.trigger,
        &change.actor,
        Some(&change.detail),
        now,
        webhooks,
        effects,
    )
    .await?
    .is_some();
    if !moved {
        history_detail(
            tx,
            &item.id,
            now,
            item.state.as_str(),
            &change.actor,
            Some(&change.note_if_refused),
        )
        .await?;
    }
    Ok(moved)
}

/// Whether an event is one [`Store::apply_event_effects`] acts on (keypad, code, fault,
/// release and configuration events: each changes items, alarms or the device's row, so each
/// is applied once, when new).
pub(super) fn has_effects(body: &EventBody) -> bool {
    matches!(
        body,
        EventBody::CodeUsed { .. }
            | EventBody::CodeRejected { .. }
            | EventBody::KeypadLocked { .. }
            | EventBody::StaffOpen { .. }
            | EventBody::StaffRejected { .. }
            | EventBody::CodesApplied { .. }
            | EventBody::Fault { .. }
            | EventBody::Release { .. }
            | EventBody::Config { .. }
    )
}

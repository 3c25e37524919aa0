//! Events lost by the server: sequence numbers a cabinet deleted after the server's receipt
//! that the database does not hold (a restore from an older backup, or a database lost some
//! other way). Found when the cabinet's `base` passes the stored receipt mark; recorded per
//! device with the reason, and counted on one `events_lost` alarm for the fleet.

use domain::alarms::AlarmKind;
use protocol::DeviceId;
use protocol::evidence::{Code, say};
use sqlx::Row;

use super::alarms::{Condition, upsert_alarm};
use super::flows::Tx;
use super::{Store, StoreError};

/// Why events were lost.
pub const REASON_RESTORE: &str = "restore";
pub const REASON_UNKNOWN: &str = "unknown";

/// One device's lost range, inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub device: DeviceId,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// A recorded gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapRow {
    pub device_id: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub detected_at: i64,
    /// `restore` or `unknown`.
    pub reason: String,
}

/// Records `gaps` (before the batch's own events are stored) and raises or bumps the fleet's
/// `events_lost` alarm.
pub(super) async fn write_gaps(tx: &mut Tx<'_>, gaps: &[Gap], now: i64) -> Result<(), StoreError> {
    if gaps.is_empty() {
        return Ok(());
    }
    let restored_at: Option<i64> =
        sqlx::query_scalar("SELECT restored_at FROM restores ORDER BY restored_at DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    for g in gaps {
        // Lost with the restore when nothing the device sent was stored since: its newest
        // stored event came from the backup.
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(received_at) FROM events WHERE device_id = $1")
                .bind(g.device.as_str())
                .fetch_one(&mut **tx)
                .await?;
        let reason = match restored_at {
            Some(r) if newest.is_none_or(|n| n < r) => REASON_RESTORE,
            _ => REASON_UNKNOWN,
        };
        tracing::warn!(device = %g.device, first = g.first_seq, last = g.last_seq, reason,
            "events the server had receipted are not in its database: recorded as lost");
        sqlx::query(
            "INSERT INTO event_gaps (device_id, first_seq, last_seq, detected_at, reason)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id, first_seq) DO NOTHING",
        )
        .bind(g.device.as_str())
        .bind(g.first_seq as i64)
        .bind(g.last_seq as i64)
        .bind(now)
        .bind(reason)
        .execute(&mut **tx)
        .await?;
    }
    // One alarm for the fleet: what was lost since it opened.
    let open = sqlx::query(
        "SELECT device_id, first_seen FROM alarms WHERE kind = $1 AND state <> 'cleared' LIMIT 1",
    )
    .bind(AlarmKind::EventsLost.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let (device, since) = match &open {
        Some(r) => (
            r.try_get::<String, _>("device_id")?,
            r.try_get("first_seen")?,
        ),
        None => (gaps[0].device.as_str().to_owned(), now),
    };
    let totals = sqlx::query(
        "SELECT COUNT(DISTINCT device_id) AS cabinets,
                CAST(COALESCE(SUM(last_seq - first_seq + 1), 0) AS BIGINT) AS events,
                CAST(COALESCE(SUM(CASE WHEN reason = 'restore' THEN 1 ELSE 0 END), 0) AS BIGINT) AS restored
         FROM event_gaps WHERE detected_at >= $1",
    )
    .bind(since)
    .fetch_one(&mut **tx)
    .await?;
    let (cabinets, events, restored): (i64, i64, i64) = (
        totals.try_get("cabinets")?,
        totals.try_get("events")?,
        totals.try_get("restored")?,
    );
    let code = if restored > 0 {
        Code::EventsLostRestore
    } else {
        Code::EventsLost
    };
    let evidence = say(code, &[&events.to_string(), &cabinets.to_string()]);
    upsert_alarm(
        tx,
        &Condition {
            device: &device,
            box_no: 0,
            kind: AlarmKind::EventsLost,
        },
        true,
        &evidence,
        now,
        now,
    )
    .await
}

impl Store {
    /// Recorded gaps, newest first.
    pub async fn event_gaps(&self, limit: i64) -> Result<Vec<GapRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT device_id, first_seq, last_seq, detected_at, reason FROM event_gaps
             ORDER BY detected_at DESC, device_id, first_seq LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GapRow {
                    device_id: r.try_get("device_id")?,
                    first_seq: r.try_get("first_seq")?,
                    last_seq: r.try_get("last_seq")?,
                    detected_at: r.try_get("detected_at")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }
}

//! Devices as operators read them: the list, one device with its boxes, stored events and
//! presence rows, fleet totals.

use protocol::DeviceId;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError};

impl Store {
    pub async fn devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("{DEVICE_SELECT} ORDER BY device_id")))
            .fetch_all(&self.pool)
            .await?;
        let mut labels = self.all_labels().await?;
        rows.iter()
            .map(|r| {
                let mut d = DeviceRow::from_row(r)?;
                d.labels = labels.remove(&d.id).unwrap_or_default();
                Ok(d)
            })
            .collect()
    }

    pub async fn device(&self, id: &DeviceId) -> Result<Option<DeviceDetail>, StoreError> {
        let Some(row) = sqlx::query(AssertSqlSafe(format!(
            "{DEVICE_SELECT} WHERE device_id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let mut device = DeviceRow::from_row(&row)?;
        device.labels = self.labels(id).await?;
        let boxes = sqlx::query(
            "SELECT box_no, door_open, door_changed_at, occupied, occupied_changed_at
             FROM boxes WHERE device_id = $1 ORDER BY box_no",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        let boxes = boxes
            .iter()
            .map(|r| {
                let last_change = [
                    r.try_get::<Option<i64>, _>("door_changed_at")?,
                    r.try_get::<Option<i64>, _>("occupied_changed_at")?,
                ]
                .into_iter()
                .flatten()
                .max();
                Ok(BoxRow {
                    box_no: r.try_get("box_no")?,
                    door: if r.try_get::<i64, _>("door_open")? != 0 {
                        "open"
                    } else {
                        "closed"
                    },
                    occupied: r.try_get::<Option<i64>, _>("occupied")?.map(|o| o != 0),
                    last_change,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(DeviceDetail { device, boxes }))
    }

    pub async fn device_exists(&self, id: &DeviceId) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT boxes FROM devices WHERE device_id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Events of one device in sequence order, after `after`.
    pub async fn events(
        &self,
        id: &DeviceId,
        after: u64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, ts, received_at, kind, box_no, body FROM events
             WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id.as_str())
        .bind(after as i64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let body: String = r.try_get("body")?;
                Ok(EventRow {
                    seq: r.try_get("seq")?,
                    ts: r.try_get("ts")?,
                    received_at: r.try_get("received_at")?,
                    kind: r.try_get("kind")?,
                    box_no: r.try_get("box_no")?,
                    body: serde_json::from_str(&body)
                        .map_err(|e| StoreError::Corrupt(format!("event body: {e}")))?,
                })
            })
            .collect()
    }

    /// Counts for the status line and metrics.
    pub async fn totals(&self) -> Result<Totals, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM events) AS events,
                    (SELECT COUNT(*) FROM devices) AS devices,
                    (SELECT COUNT(*) FROM devices WHERE online = 1) AS online,
                    (SELECT COUNT(*) FROM boxes) AS boxes,
                    (SELECT COUNT(*) FROM boxes WHERE door_open = 1) AS open_doors,
                    (SELECT COUNT(*) FROM boxes WHERE occupied = 1) AS occupied",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Totals {
            events: row.try_get("events")?,
            devices: row.try_get("devices")?,
            online: row.try_get("online")?,
            boxes: row.try_get("boxes")?,
            open_doors: row.try_get("open_doors")?,
            occupied: row.try_get("occupied")?,
        })
    }
}

const DEVICE_SELECT: &str = "SELECT device_id, boxes, agent_version, online, last_seen,
    presence_changed_at, presence_reason, acked_seq, profile, heartbeat_at, heartbeat_secs,
    uptime_s, lock_bus, lock_bus_detail, power, outbox_pending, station, clock_offset_ms,
    release_version, release_state, release_reason, release_at FROM devices";

/// Heartbeats a device may miss before it counts as gone (one lost QoS 0 heartbeat is not
/// news).
pub const HEARTBEAT_MISSES: i64 = 2;

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    pub id: String,
    /// The broker session is up (the first presence layer).
    pub online: bool,
    pub boxes: i64,
    pub agent_version: Option<String>,
    pub last_seen: Option<i64>,
    pub presence_changed_at: Option<i64>,
    pub presence_reason: Option<String>,
    pub acked_seq: i64,
    /// `locker`, `kiosk`, `tax_machine` or `printer`, from the heartbeat.
    pub profile: Option<String>,
    /// When the server last received a heartbeat (server clock).
    pub heartbeat_at: Option<i64>,
    pub heartbeat_secs: Option<i64>,
    pub uptime_s: Option<i64>,
    /// `ok`, `unreachable` or `absent` (no lock board), as the last heartbeat said.
    pub lock_bus: Option<String>,
    pub lock_bus_detail: Option<String>,
    /// `mains`, `battery` or `unknown`.
    pub power: Option<String>,
    /// Events the agent holds that the server has not receipted.
    pub outbox_pending: Option<i64>,
    /// A station device's peripherals: paper, toner, paper_jam, needs_service.
    pub station: Option<serde_json::Value>,
    /// How far the server's clock is ahead of the cabinet's (ms), from its last heartbeat;
    /// absent before the first or from older agents.
    pub clock_offset_ms: Option<i64>,
    /// The presence layers judged now.
    pub layers: Layers,
    /// The last release offered to it, as the device reported: version, `downloading`,
    /// `downloaded` or `refused`, why, and when (device clock).
    pub release: Option<(String, String, Option<String>, i64)>,
    /// What an administrator labelled it with.
    pub labels: domain::labels::Labels,
}

/// Presence in layers: each can fail on its own, and each is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Layers {
    /// `up` or `down`: the broker session, exact from the broker front.
    pub session: &'static str,
    /// `fresh`, `late` (more than two intervals without one) or `none` (never received).
    pub heartbeat: &'static str,
    /// `ok`, `unreachable`, `absent` or `unknown` (no heartbeat yet).
    pub lock_bus: String,
}

impl DeviceRow {
    fn from_row(r: &AnyRow) -> Result<DeviceRow, StoreError> {
        let online = r.try_get::<i64, _>("online")? != 0;
        let heartbeat_at: Option<i64> = r.try_get("heartbeat_at")?;
        let heartbeat_secs: Option<i64> = r.try_get("heartbeat_secs")?;
        let lock_bus: Option<String> = r.try_get("lock_bus")?;
        let heartbeat = match (heartbeat_at, heartbeat_secs) {
            (Some(at), Some(secs))
                if crate::clock::now_ms() <= at + HEARTBEAT_MISSES * secs.max(1) * 1000 =>
            {
                "fresh"
            }
            (Some(_), _) => "late",
            (None, _) => "none",
        };
        let station: Option<String> = r.try_get("station")?;
        Ok(DeviceRow {
            id: r.try_get("device_id")?,
            online,
            boxes: r.try_get("boxes")?,
            agent_version: r.try_get("agent_version")?,
            last_seen: r.try_get("last_seen")?,
            presence_changed_at: r.try_get("presence_changed_at")?,
            presence_reason: r.try_get("presence_reason")?,
            acked_seq: r.try_get("acked_seq")?,
            profile: r.try_get("profile")?,
            heartbeat_at,
            heartbeat_secs,
            uptime_s: r.try_get("uptime_s")?,
            layers: Layers {
                session: if online { "up" } else { "down" },
                heartbeat,
                lock_bus: lock_bus.clone().unwrap_or_else(|| "unknown".into()),
            },
            lock_bus,
            lock_bus_detail: r.try_get("lock_bus_detail")?,
            power: r.try_get("power")?,
            outbox_pending: r.try_get("outbox_pending")?,
            station: station.and_then(|s| serde_json::from_str(&s).ok()),
            clock_offset_ms: r.try_get("clock_offset_ms")?,
            release: match (
                r.try_get::<Option<String>, _>("release_version")?,
                r.try_get::<Option<String>, _>("release_state")?,
                r.try_get::<Option<i64>, _>("release_at")?,
            ) {
                (Some(v), Some(s), Some(at)) => Some((v, s, r.try_get("release_reason")?, at)),
                _ => None,
            },
            labels: Default::default(),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoxRow {
    pub box_no: i64,
    /// `open` or `closed`.
    pub door: &'static str,
    pub occupied: Option<bool>,
    pub last_change: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceDetail {
    pub device: DeviceRow,
    pub boxes: Vec<BoxRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub seq: i64,
    pub ts: i64,
    pub received_at: i64,
    pub kind: String,
    pub box_no: Option<i64>,
    /// The event as the device sent it (see PROTOCOL.md, EventBatch).
    pub body: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PresenceRow {
    pub ts: i64,
    /// The broker session number (0 on rows the server judged from heartbeats).
    pub session: i64,
    pub online: bool,
    pub reason: String,
    /// `session` (from the broker front) or `heartbeat` (the server's alarm sweep).
    pub layer: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub events: i64,
    pub devices: i64,
    pub online: i64,
    pub boxes: i64,
    pub open_doors: i64,
    pub occupied: i64,
}

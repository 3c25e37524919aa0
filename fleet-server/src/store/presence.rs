//! Presence: sessions as the broker front reported them, and the log of transitions.

use protocol::DeviceId;
use sqlx::{AssertSqlSafe, Row};

use super::{DbKind, LEADER_LOCK, Leadership, PresenceRow, Store, StoreError};

impl Store {
    /// Records a presence change exactly as the broker front reported it.
    pub async fn presence(
        &self,
        device: &DeviceId,
        session: u64,
        online: bool,
        reason: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        self.record_presence(device, session, online, reason, at, false)
            .await
            .map(|_| ())
    }

    /// A device's presence as one of several server replicas heard it (external broker):
    /// changes the device and logs the transition only if it is one, so every replica may
    /// report the same word and it is logged once. `true` when it changed.
    pub async fn presence_change(
        &self,
        device: &DeviceId,
        online: bool,
        reason: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        self.record_presence(device, 0, online, reason, at, true)
            .await
    }

    /// The device's presence columns and a log row; with `only_changes`, both only when the
    /// stored state differs (concurrent writers: the row lock decides who logs).
    async fn record_presence(
        &self,
        device: &DeviceId,
        session: u64,
        online: bool,
        reason: &str,
        at: i64,
        only_changes: bool,
    ) -> Result<bool, StoreError> {
        const UPSERT: &str = "INSERT INTO devices (device_id, created_at, online, last_seen, presence_changed_at, presence_reason)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (device_id) DO UPDATE SET online = excluded.online,
               last_seen = excluded.last_seen, presence_changed_at = excluded.presence_changed_at,
               presence_reason = excluded.presence_reason";
        const IF_CHANGED: &str = " WHERE devices.online <> excluded.online";
        let sql = if only_changes {
            format!("{UPSERT}{IF_CHANGED}")
        } else {
            UPSERT.to_owned()
        };
        let mut tx = self.writer.begin().await?;
        let changed = sqlx::query(AssertSqlSafe(sql))
            .bind(device.as_str())
            .bind(at)
            .bind(i64::from(online))
            .bind(at)
            .bind(at)
            .bind(reason)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if changed {
            sqlx::query(
                "INSERT INTO presence_log (device_id, ts, session, online, reason) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(device.as_str())
            .bind(at)
            .bind(session as i64)
            .bind(i64::from(online))
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Tries to become the replica that runs the fleet-wide background work (sweeps,
    /// notifications): on PostgreSQL a session advisory lock on a connection of its own,
    /// released by PostgreSQL when that connection dies (a killed replica frees it within
    /// its TCP timeout). On SQLite there is only one server: always granted.
    pub async fn try_lead(&self) -> Result<Option<Leadership>, StoreError> {
        if self.kind == DbKind::Sqlite {
            return Ok(Some(Leadership(None)));
        }
        let mut conn = self.pool.acquire().await?.detach();
        // Advisory locks are per cluster: keyed by the database too, so fleets in two
        // databases of one cluster each have their leader.
        let held: i32 = sqlx::query_scalar(
            "SELECT CASE WHEN pg_try_advisory_lock($1, hashtext(current_database())) THEN 1 ELSE 0 END",
        )
        .bind(LEADER_LOCK)
        .fetch_one(&mut conn)
        .await?;
        Ok((held == 1).then_some(Leadership(Some(conn))))
    }

    /// At start-up nobody is connected yet: the embedded broker's sessions died with the
    /// previous process.
    pub async fn mark_all_offline(&self, at: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE devices SET online = 0, presence_changed_at = $1, presence_reason = 'server restarted'
             WHERE online = 1",
        )
        .bind(at)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected())
    }

    /// The devices the database holds online (the view a replica starts from when no broker
    /// tells it the current state).
    pub async fn online_devices(&self) -> Result<Vec<DeviceId>, StoreError> {
        let rows = sqlx::query("SELECT device_id FROM devices WHERE online = 1")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| DeviceId::parse(r.get::<&str, _>(0)).ok())
            .collect())
    }

    pub async fn presence_log(
        &self,
        device: &DeviceId,
        limit: i64,
    ) -> Result<Vec<PresenceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT ts, session, online, reason, layer FROM presence_log WHERE device_id = $1
             ORDER BY ts DESC LIMIT $2",
        )
        .bind(device.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PresenceRow {
                    ts: r.try_get("ts")?,
                    session: r.try_get("session")?,
                    online: r.try_get::<i64, _>("online")? != 0,
                    reason: r.try_get("reason")?,
                    layer: r.try_get("layer")?,
                })
            })
            .collect()
    }
}

//! Retention: what leaves the database, and when, in small batches beside live traffic.
//!
//! Each class of rows has an age after which it goes (or, for hourly box rollups, is folded
//! into one row per day). A pass works device by device or a few hundred rows at a time, each
//! step its own short transaction, so the writer is never held long: ingest and remote opens
//! queue behind at most one step (`fleet-sim bench retention` measures it). What a pass did
//! is kept in `retention_marks` (how far each class has been cleared, rows removed in all),
//! which the next pass starts from and `GET /v1/system/retention` shows.
//! `docs/adr/0026-retention.md` says why these defaults and these rules.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};

use super::usage::{DAY_MS, day_start};
use super::{DbKind, Store, StoreError};

/// What each class keeps, in days; `None` keeps it whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Device events, by the time the server received them; only those the device's receipt
    /// mark covers (an event not yet receipted is never removed).
    pub events: Option<u32>,
    /// Presence changes (sessions, heartbeats, reconnects).
    pub presence: Option<u32>,
    /// Finished remote commands, by their expiry.
    pub commands: Option<u32>,
    /// Sent and given-up notifications (SMS, webhooks), by their last attempt.
    pub notifications: Option<u32>,
    /// Cleared alarms and their history, by when last seen.
    pub alarms: Option<u32>,
    /// Finished items (collected, returned, expired) and their history, by when finished.
    pub items: Option<u32>,
    /// Hourly box rollups older than this become one row per local day (cabinet and site
    /// rollups are kept hourly).
    pub box_hours: Option<u32>,
    /// Local time zone of the day boundaries the box rollups fold to, minutes east of UTC.
    pub utc_offset_minutes: i32,
    /// Rows at most per step (one short transaction).
    pub batch_rows: u32,
    /// Rest between steps, so queued writers go first.
    pub pause: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            events: Some(90),
            presence: Some(90),
            commands: Some(90),
            notifications: Some(30),
            alarms: Some(365),
            items: None,
            box_hours: Some(90),
            utc_offset_minutes: 0,
            batch_rows: 500,
            pause: Duration::from_millis(20),
        }
    }
}

/// The classes, in the order a pass takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Events,
    Presence,
    Commands,
    Notifications,
    Alarms,
    Items,
    BoxHours,
}

impl Class {
    pub const ALL: [Class; 7] = [
        Class::Events,
        Class::Presence,
        Class::Commands,
        Class::Notifications,
        Class::Alarms,
        Class::Items,
        Class::BoxHours,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Events => "events",
            Class::Presence => "presence",
            Class::Commands => "commands",
            Class::Notifications => "notifications",
            Class::Alarms => "alarms",
            Class::Items => "items",
            Class::BoxHours => "box_hours",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Days the policy keeps this class; `None`: kept whole.
    pub fn days(self, p: &RetentionPolicy) -> Option<u32> {
        match self {
            Class::Events => p.events,
            Class::Presence => p.presence,
            Class::Commands => p.commands,
            Class::Notifications => p.notifications,
            Class::Alarms => p.alarms,
            Class::Items => p.items,
            Class::BoxHours => p.box_hours,
        }
    }
}

/// One class's state: cleared up to `before` (epoch ms), `rows` removed in all, last pass at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionMark {
    pub class: Class,
    pub before: i64,
    pub rows: i64,
    pub at: i64,
}

/// What one pass removed (or folded), per class, and how many steps it took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub removed: Vec<(Class, u64)>,
    pub steps: u64,
}

impl PassReport {
    pub fn of(&self, class: Class) -> u64 {
        self.removed
            .iter()
            .filter(|(c, _)| *c == class)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Store {
    /// Every class's mark (classes never cleared are absent).
    pub async fn retention_marks(&self) -> Result<Vec<RetentionMark>, StoreError> {
        let rows = sqlx::query("SELECT class, before_ms, rows_removed, at FROM retention_marks")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let name: String = r.try_get("class")?;
            let Some(class) = Class::parse(&name) else {
                return Err(StoreError::Corrupt(format!(
                    "retention_marks names an unknown class {name:?}"
                )));
            };
            out.push(RetentionMark {
                class,
                before: r.try_get("before_ms")?,
                rows: r.try_get("rows_removed")?,
                at: r.try_get("at")?,
            });
        }
        out.sort_by_key(|m| Class::ALL.iter().position(|c| *c == m.class));
        Ok(out)
    }

    /// When finished items before some time were removed: usage cannot be rebuilt from what
    /// is left without losing theirs.
    pub async fn items_pruned_before(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT before_ms FROM retention_marks WHERE class = 'items' AND rows_removed > 0",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// One pass of every class the policy limits, as of `now`. Stops between steps when
    /// `stop` says so (the marks then keep what was done).
    pub async fn retention_pass(
        &self,
        policy: &RetentionPolicy,
        now: i64,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        let marks = self.retention_marks().await?;
        // Read once a pass: the classes kept per device walk the same list.
        let devices = self.retention_devices().await?;
        for class in Class::ALL {
            let Some(days) = class.days(policy) else {
                continue;
            };
            if stop() {
                break;
            }
            let mut cutoff = now - i64::from(days) * DAY_MS;
            let offset_ms = i64::from(policy.utc_offset_minutes) * 60_000;
            if class == Class::BoxHours {
                // Only whole local days fold.
                cutoff = day_start(cutoff, offset_ms);
            }
            let from = marks
                .iter()
                .find(|m| m.class == class)
                .map_or(0, |m| m.before);
            let mut step = Step {
                store: self,
                devices: &devices,
                policy,
                stop,
                steps: 0,
            };
            let (removed, done) = match class {
                Class::Events => step.events(cutoff).await?,
                Class::Presence => step.presence(cutoff).await?,
                Class::Commands => step.commands(cutoff).await?,
                Class::Notifications => step.notifications(cutoff).await?,
                Class::Alarms => step.alarms(cutoff).await?,
                Class::Items => step.items(cutoff).await?,
                Class::BoxHours => step.box_hours(from, cutoff, offset_ms).await?,
            };
            report.steps += step.steps;
            report.removed.push((class, removed));
            // A pass cut short keeps the old mark: box hours resume from it.
            let before = if done { cutoff.max(from) } else { from };
            sqlx::query(
                "INSERT INTO retention_marks (class, before_ms, rows_removed, at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (class) DO UPDATE SET before_ms = excluded.before_ms,
                   rows_removed = retention_marks.rows_removed + excluded.rows_removed,
                   at = excluded.at",
            )
            .bind(class.as_str())
            .bind(before)
            .bind(removed as i64)
            .bind(now)
            .execute(&self.writer)
            .await?;
        }
        Ok(report)
    }

    /// The database's size in bytes, and how many of them are free pages SQLite reuses
    /// before it grows the file (PostgreSQL: 0, its free space is inside the tables).
    pub async fn database_bytes(&self) -> Result<(i64, i64), StoreError> {
        match self.kind {
            DbKind::Sqlite => {
                let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
                    .fetch_one(&self.pool)
                    .await?;
                let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
                    .fetch_one(&self.pool)
                    .await?;
                let size: i64 = sqlx::query_scalar("PRAGMA page_size")
                    .fetch_one(&self.pool)
                    .await?;
                Ok((pages * size, free * size))
            }
            DbKind::Postgres => Ok((
                sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(&self.pool)
                    .await?,
                0,
            )),
        }
    }

    /// Devices that may have per-device rows: those that ever connected and those configured.
    async fn retention_devices(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT device_id FROM devices UNION SELECT device_id FROM cabinets ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

/// One class's work in a pass: counts steps and rests between them.
struct Step<'a> {
    store: &'a Store,
    devices: &'a [String],
    policy: &'a RetentionPolicy,
    stop: &'a (dyn Fn() -> bool + Sync),
    steps: u64,
}

impl Step<'_> {
    fn limit(&self) -> i64 {
        i64::from(self.policy.batch_rows.max(1))
    }

    /// After a step: rest so that writers queued behind it go first; false when told to stop.
    async fn rest(&mut self) -> bool {
        self.steps += 1;
        if !self.policy.pause.is_zero() {
            tokio::time::sleep(self.policy.pause).await;
        }
        !(self.stop)()
    }

    /// Runs `sql` (binding `cutoff` and the batch limit as $1, $2) until it removes fewer
    /// rows than the limit. Returns (rows, finished).
    async fn batched(&mut self, sql: &str, cutoff: i64) -> Result<(u64, bool), StoreError> {
        let mut removed = 0;
        loop {
            let n = sqlx::query(AssertSqlSafe(sql.to_owned()))
                .bind(cutoff)
                .bind(self.limit())
                .execute(&self.store.writer)
                .await?
                .rows_affected();
            removed += n;
            if n < self.limit() as u64 {
                return Ok((removed, true));
            }
            if !self.rest().await {
                return Ok((removed, false));
            }
        }
    }

    /// Events receipted and received before `cutoff`, walking each device's oldest first by
    /// sequence number (the primary key), so no index on time is needed: the server receives
    /// a device's events in sequence order.
    async fn events(&mut self, cutoff: i64) -> Result<(u64, bool), StoreError> {
        let mut removed = 0;
        for device in self.devices {
            loop {
                let acked: i64 =
                    sqlx::query_scalar("SELECT acked_seq FROM devices WHERE device_id = $1")
                        .bind(device)
                        .fetch_optional(&self.store.pool)
                        .await?
                        .unwrap_or(0);
                let oldest = sqlx::query(
                    "SELECT seq, received_at FROM events WHERE device_id = $1 ORDER BY seq LIMIT $2",
                )
                .bind(device)
                .bind(self.limit())
                .fetch_all(&self.store.pool)
                .await?;
                let mut last = None;
                for r in &oldest {
                    let (seq, at): (i64, i64) = (r.try_get("seq")?, r.try_get("received_at")?);
                    if at >= cutoff || seq > acked {
                        break;
                    }
                    last = Some(seq);
                }
                let Some(last) = last else { break };
                let n = sqlx::query("DELETE FROM events WHERE device_id = $1 AND seq <= $2")
                    .bind(device)
                    .bind(last)
                    .execute(&self.store.writer)
                    .await?
                    .rows_affected();
                removed += n;
                if !self.rest().await {
                    return Ok((removed, false));
                }
                if (oldest.len() as i64) < self.limit() || n < oldest.len() as u64 {
                    break;
                }
            }
        }
        Ok((removed, true))
    }

    async fn presence(&mut self, cutoff: i64) -> Result<(u64, bool), StoreError> {
        let mut removed = 0;
        for device in self.devices {
            loop {
                let n = sqlx::query(
                    "DELETE FROM presence_log WHERE device_id = $1 AND ts IN
                       (SELECT ts FROM presence_log WHERE device_id = $1 AND ts < $2
                        ORDER BY ts LIMIT $3)",
                )
                .bind(device)
                .bind(cutoff)
                .bind(self.limit())
                .execute(&self.store.writer)
                .await?
                .rows_affected();
                removed += n;
                if n == 0 {
                    break;
                }
                if !self.rest().await {
                    return Ok((removed, false));
                }
                if n < self.limit() as u64 {
                    break;
                }
            }
        }
        Ok((removed, true))
    }

    async fn commands(&mut self, cutoff: i64) -> Result<(u64, bool), StoreError> {
        self.batched(
            "DELETE FROM commands WHERE command_id IN
               (SELECT command_id FROM commands WHERE status_rank = 3 AND expires_at < $1
                ORDER BY expires_at LIMIT $2)",
            cutoff,
        )
        .await
    }

    async fn notifications(&mut self, cutoff: i64) -> Result<(u64, bool), StoreError> {
        let mut removed = 0;
        for state in ["sent", "failed"] {
            let (n, done) = self
                .batched(
                    &format!(
                        "DELETE FROM notifications WHERE notification_id IN
                           (SELECT notification_id FROM notifications
                            WHERE state = '{state}' AND next_attempt_at < $1
                            ORDER BY next_attempt_at LIMIT $2)"
                    ),
                    cutoff,
                )
                .await?;
            removed += n;
            if !done {
                return Ok((removed, false));
            }
        }
        Ok((removed, true))
    }

    /// A parent table and its history rows, in one transaction per batch so no history is
    /// left without its parent. `pick` selects the parents' ids ($1 cutoff, $2 limit).
    async fn with_history(
        &mut self,
        pick: &str,
        parent: &str,
        history: &str,
        key: &str,
        cutoff: i64,
    ) -> Result<(u64, bool), StoreError> {
        let mut removed = 0;
        loop {
            let mut tx = self.store.writer.begin().await?;
            let h = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {history} WHERE {key} IN ({pick})"
            )))
            .bind(cutoff)
            .bind(self.limit())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let n = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {parent} WHERE {key} IN ({pick})"
            )))
            .bind(cutoff)
            .bind(self.limit())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            removed += n + h;
            if n < self.limit() as u64 {
                return Ok((removed, true));
            }
            if !self.rest().await {
                return Ok((removed, false));
            }
        }
    }

    async fn alarms(&mut self, cutoff: i64) -> Result<(u64, bool), StoreError> {
        self.with_history(
            "SELECT alarm_id FROM alarms WHERE state = 'cleared' AND last_seen < $1
             ORDER BY last_seen LIMIT $2",
            "alarms",
            "alarm_history",
            "alarm_id",
            cutoff,
        )
        .await
    }

    async fn items(&mut self, cutoff: i64) -> Result<(u64, bool), StoreError> {
        self.with_history(
            "SELECT item_id FROM items WHERE finished_at < $1 ORDER BY finished_at LIMIT $2",
            "items",
            "item_history",
            "item_id",
            cutoff,
        )
        .await
    }

    /// Folds each box's hourly rollups of whole local days in `[from, cutoff)` into the
    /// day's first hour: sums are kept, so any report over whole days reads the same; only
    /// the hour of day is lost. Box by box, so each step reads a range of the primary key
    /// (device, box, hour), about `batch_rows` rows (24 a day).
    async fn box_hours(
        &mut self,
        from: i64,
        cutoff: i64,
        offset_ms: i64,
    ) -> Result<(u64, bool), StoreError> {
        let days_per_step = i64::from((self.policy.batch_rows / 24).max(1));
        let mut folded = 0;
        for device in self.devices {
            let boxes: Vec<i64> = sqlx::query_scalar(
                "SELECT DISTINCT box_no FROM usage_box_hour WHERE device_id = $1 ORDER BY 1",
            )
            .bind(device)
            .fetch_all(&self.store.pool)
            .await?;
            for box_no in boxes {
                let start = if from > 0 {
                    from
                } else {
                    let first: Option<i64> = sqlx::query_scalar(
                        "SELECT MIN(hour) FROM usage_box_hour WHERE device_id = $1 AND box_no = $2",
                    )
                    .bind(device)
                    .bind(box_no)
                    .fetch_one(&self.store.pool)
                    .await?;
                    match first {
                        Some(h) => day_start(h, offset_ms),
                        None => continue,
                    }
                };
                let mut lo = start;
                while lo < cutoff {
                    let hi = (lo + days_per_step * DAY_MS).min(cutoff);
                    let n = self.fold(device, box_no, lo, hi, offset_ms).await?;
                    folded += n;
                    lo = hi;
                    if n > 0 && !self.rest().await {
                        return Ok((folded, false));
                    }
                }
            }
        }
        Ok((folded, true))
    }

    /// One step of [`Step::box_hours`]: the box's hours in `[lo, hi)` folded into their days.
    async fn fold(
        &self,
        device: &str,
        box_no: i64,
        lo: i64,
        hi: i64,
        offset_ms: i64,
    ) -> Result<u64, StoreError> {
        // Both statements work on the box's rows in [lo, hi); $5 and $6 make day boundaries.
        let on_range = |sql: &'static str| {
            sqlx::query(sql)
                .bind(device)
                .bind(box_no)
                .bind(lo)
                .bind(hi)
                .bind(offset_ms + DAY_MS)
                .bind(DAY_MS)
        };
        let mut tx = self.store.writer.begin().await?;
        on_range(
            "INSERT INTO usage_box_hour
               (device_id, box_no, hour, occupied_ms, held_ms, oos_ms, uses, unmet)
             SELECT device_id, box_no, hour - ((hour + $5) % $6),
               SUM(occupied_ms), SUM(held_ms), SUM(oos_ms), SUM(uses), SUM(unmet)
             FROM usage_box_hour
             WHERE device_id = $1 AND box_no = $2 AND hour >= $3 AND hour < $4
             GROUP BY 1, 2, 3
             ON CONFLICT (device_id, box_no, hour) DO UPDATE SET
               occupied_ms = excluded.occupied_ms, held_ms = excluded.held_ms,
               oos_ms = excluded.oos_ms, uses = excluded.uses, unmet = excluded.unmet",
        )
        .execute(&mut *tx)
        .await?;
        let n = on_range(
            "DELETE FROM usage_box_hour
             WHERE device_id = $1 AND box_no = $2 AND hour >= $3 AND hour < $4
               AND (hour + $5) % $6 <> 0",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::usage::HOUR_MS;

    #[test]
    fn days_start_at_local_midnight() {
        let beijing = 8 * HOUR_MS;
        // 2026-12-05T01:30Z is 09:30 in Beijing: its day began at 2026-12-04T16:00Z.
        let t = 1_796_434_200_000;
        assert_eq!(day_start(t, beijing), t - 9 * HOUR_MS - 30 * 60_000);
        assert_eq!(day_start(t, 0), t - HOUR_MS - 30 * 60_000);
        assert_eq!(
            day_start(day_start(t, beijing), beijing),
            day_start(t, beijing)
        );
        // West of UTC.
        assert_eq!(day_start(t, -5 * HOUR_MS), t - (20 * HOUR_MS + 30 * 60_000));
    }

    #[test]
    fn classes_round_trip_their_names() {
        for c in Class::ALL {
            assert_eq!(Class::parse(c.as_str()), Some(c));
        }
        assert_eq!(Class::parse("audit"), None);
    }
}

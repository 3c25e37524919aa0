//! The code book: the grants the cabinet verifies offline, every code used (recorded before
//! the pulse), local deposits, the keypad's wrong-entry count and lockout, and the learned
//! clock offset, so neither a restart nor an offline period lets a code work twice or resets
//! a lockout.

use protocol::{AckStatus, BoxNo, CodeGrant, DroppedGrant, EventBody, ItemId, SpentCode};
use sqlx::Row;

use super::{Outbox, OutboxError, id_box_rows};

impl Outbox {
    /// The stored code grant set (JSON of a `CodeSync`), if any.
    pub async fn code_sync(&self) -> Result<Option<String>, OutboxError> {
        Ok(
            sqlx::query_scalar("SELECT body FROM code_sync WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Replaces the grant set and records `codes_applied` in one transaction, and forgets
    /// local deposits of items no longer granted.
    pub async fn store_code_sync(
        &self,
        version: u64,
        body: &str,
        granted: &[ItemId],
        spent: Vec<SpentCode>,
        dropped: Vec<DroppedGrant>,
        at: i64,
    ) -> Result<(), OutboxError> {
        let _numbering = self.numbering.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO code_sync (id, version, body) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, body = excluded.body",
        )
        .bind(version as i64)
        .bind(body)
        .execute(&mut *tx)
        .await?;
        // Item ids are letters, digits and '-' only (checked by `ItemId`): safe to quote.
        let keep: Vec<String> = granted
            .iter()
            .map(|i| format!("'{}'", i.as_str()))
            .collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM deposits WHERE item NOT IN ({})",
            keep.join(",")
        )))
        .execute(&mut *tx)
        .await?;
        let events = self
            .insert_events(
                &mut tx,
                at,
                vec![EventBody::CodesApplied {
                    version,
                    spent,
                    dropped,
                }],
            )
            .await?;
        tx.commit().await?;
        self.publish_numbers(&events);
        Ok(())
    }

    /// Items whose code was used, and when.
    pub async fn code_uses(&self) -> Result<Vec<(String, i64)>, OutboxError> {
        let rows = sqlx::query("SELECT item, used_at FROM code_uses")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("item")?, r.try_get("used_at")?)))
            .collect()
    }

    /// Records a code as used before its lock is pulsed, with its grant; `false` when it
    /// already was.
    pub async fn begin_code_use(&self, grant: &CodeGrant, at: i64) -> Result<bool, OutboxError> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "INSERT OR IGNORE INTO code_uses (item, box_no, used_at, not_after) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(grant.item.as_str())
        .bind(i64::from(grant.box_no.get()))
        .bind(at)
        .bind(grant.not_after)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            sqlx::query("INSERT OR REPLACE INTO used_grants (item, body) VALUES (?1, ?2)")
                .bind(grant.item.as_str())
                .bind(serde_json::to_string(grant).unwrap_or_default())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// The grants of codes used here since `since`, with the time of each use.
    pub async fn used_grants_since(
        &self,
        since: i64,
    ) -> Result<Vec<(CodeGrant, i64)>, OutboxError> {
        let rows = sqlx::query(
            "SELECT g.body, u.used_at FROM used_grants g JOIN code_uses u ON u.item = g.item
             WHERE u.used_at >= ?1 ORDER BY u.used_at",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let body: String = r.try_get("body")?;
            // Written by this agent; one it cannot read is left out, not fatal.
            if let Ok(g) = serde_json::from_str::<CodeGrant>(&body) {
                out.push((g, r.try_get("used_at")?));
            }
        }
        Ok(out)
    }

    /// The `code_used` event of a use, atomic with marking it reported.
    pub async fn finish_code_use(
        &self,
        item: &ItemId,
        b: BoxNo,
        status: AckStatus,
        at: i64,
    ) -> Result<(), OutboxError> {
        let _numbering = self.numbering.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE code_uses SET reported = 1 WHERE item = ?1")
            .bind(item.as_str())
            .execute(&mut *tx)
            .await?;
        let body = EventBody::CodeUsed {
            item: item.clone(),
            box_no: b,
            status,
        };
        let events = self.insert_events(&mut tx, at, vec![body]).await?;
        tx.commit().await?;
        self.publish_numbers(&events);
        Ok(())
    }

    /// Code uses recorded but not reported: the previous run died around the pulse.
    pub async fn unreported_code_uses(&self) -> Result<Vec<(ItemId, BoxNo)>, OutboxError> {
        let rows = sqlx::query("SELECT item, box_no FROM code_uses WHERE reported = 0")
            .fetch_all(&self.pool)
            .await?;
        id_box_rows(&rows, "item", ItemId::parse)
    }

    /// Forgets uses whose window ended long ago (their grants are gone by then).
    pub async fn prune_code_uses(&self, before: i64) -> Result<u64, OutboxError> {
        let n = sqlx::query("DELETE FROM code_uses WHERE reported = 1 AND not_after < ?1")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM used_grants WHERE item NOT IN (SELECT item FROM code_uses)")
            .execute(&self.pool)
            .await?;
        Ok(n)
    }

    pub async fn deposits(&self) -> Result<Vec<String>, OutboxError> {
        Ok(sqlx::query_scalar("SELECT item FROM deposits")
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn record_deposit(&self, item: &ItemId, at: i64) -> Result<(), OutboxError> {
        sqlx::query("INSERT OR IGNORE INTO deposits (item, at) VALUES (?1, ?2)")
            .bind(item.as_str())
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a wrong entry; returns the wrong entries since `window_start`.
    pub async fn keypad_failure(&self, at: i64, window_start: i64) -> Result<u32, OutboxError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM keypad_failures WHERE ts < ?1")
            .bind(window_start)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO keypad_failures (ts) VALUES (?1)")
            .bind(at)
            .execute(&mut *tx)
            .await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM keypad_failures")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n as u32)
    }

    /// Locks the keypad until `until` and starts a fresh count, with the `keypad_locked`
    /// event in the same transaction.
    pub async fn lock_keypad(&self, until: i64, failures: u32, at: i64) -> Result<(), OutboxError> {
        let _numbering = self.numbering.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE meta SET value = ?1 WHERE key = 'keypad_locked_until'")
            .bind(until)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM keypad_failures")
            .execute(&mut *tx)
            .await?;
        let events = self
            .insert_events(
                &mut tx,
                at,
                vec![EventBody::KeypadLocked { until, failures }],
            )
            .await?;
        tx.commit().await?;
        self.publish_numbers(&events);
        Ok(())
    }

    /// The server's clock minus this cabinet's, as last learned: a restart judges times with
    /// it before the first receipt arrives.
    pub async fn clock_offset(&self) -> Result<i64, OutboxError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'clock_offset_ms'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Fake hardware only (the control socket's `disk full|ok`): makes every write that
    /// needs a new page fail as on a full disk (SQLite's `max_page_count`, on the outbox's one
    /// connection), or lifts that again.
    pub async fn simulate_disk_full(&self, full: bool) -> Result<(), OutboxError> {
        let mut conn = self.pool.acquire().await?;
        let pages: i64 = if full {
            sqlx::query_scalar("PRAGMA page_count")
                .fetch_one(&mut *conn)
                .await?
        } else {
            // SQLite's own ceiling.
            4_294_967_294
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA max_page_count = {pages}"
        )))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn set_clock_offset(&self, offset_ms: i64) -> Result<(), OutboxError> {
        sqlx::query("UPDATE meta SET value = ?1 WHERE key = 'clock_offset_ms'")
            .bind(offset_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn keypad_locked_until(&self) -> Result<i64, OutboxError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'keypad_locked_until'")
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }
}

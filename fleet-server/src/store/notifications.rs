//! The notification outbox (SMS and webhooks): queued in the transaction of their cause,
//! taken when due, marked sent or failed.

use sqlx::Row;

use super::flows::Tx;
use super::{Store, StoreError};

/// A notification due for sending.
#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub id: String,
    pub channel: String,
    pub item_id: Option<String>,
    pub event: String,
    pub body: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
}

impl Store {
    pub async fn due_notifications(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT notification_id, channel, item_id, event, body, attempts, created_at
             FROM notifications WHERE state = 'pending' AND next_attempt_at <= $1
             ORDER BY next_attempt_at, notification_id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NotificationRow {
                    id: r.try_get("notification_id")?,
                    channel: r.try_get("channel")?,
                    item_id: r.try_get("item_id")?,
                    event: r.try_get("event")?,
                    body: r.try_get("body")?,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Marks a notification sent and wipes its body (it may have held a code).
    pub async fn notification_sent(&self, id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notifications SET state = 'sent', sent_at = $1, body = NULL,
               attempts = attempts + 1, last_error = NULL WHERE notification_id = $2",
        )
        .bind(at)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Marks every notification due by `until` sent at the time it fell due, bodies wiped:
    /// for a history written at its own times, whose people had their SMS then.
    pub async fn notifications_sent_when_due(&self, until: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE notifications SET state = 'sent', sent_at = next_attempt_at, body = NULL,
               attempts = attempts + 1, last_error = NULL
             WHERE state = 'pending' AND next_attempt_at <= $1",
        )
        .bind(until)
        .execute(&self.writer)
        .await?
        .rows_affected())
    }

    /// Records a failed attempt: retried at `next`, or given up (`failed`, body wiped).
    pub async fn notification_failed(
        &self,
        id: &str,
        error: &str,
        next: Option<i64>,
    ) -> Result<(), StoreError> {
        let q = match next {
            Some(_) => {
                "UPDATE notifications SET attempts = attempts + 1, last_error = $1,
                   next_attempt_at = $2 WHERE notification_id = $3"
            }
            None => {
                "UPDATE notifications SET attempts = attempts + 1, last_error = $1,
                   state = 'failed', body = NULL, next_attempt_at = COALESCE($2, next_attempt_at)
                 WHERE notification_id = $3"
            }
        };
        sqlx::query(q)
            .bind(error)
            .bind(next)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Counts of notifications by state (metrics and tests).
    pub async fn notification_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT channel, state, COUNT(*) AS n FROM notifications GROUP BY channel, state ORDER BY channel, state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("channel")?, r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }
}

pub(super) async fn enqueue(
    tx: &mut Tx<'_>,
    channel: &str,
    item: Option<&str>,
    event: &str,
    body: Option<&str>,
    state: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO notifications (notification_id, channel, item_id, event, body, state,
                                    created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(uuid::Uuid::new_v4().simple().to_string())
    .bind(channel)
    .bind(item)
    .bind(event)
    .bind(body)
    .bind(state)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

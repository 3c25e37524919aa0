//! The command journal (each command id recorded before its lock is pulsed, so none runs
//! twice, also across restarts) and the fault conditions that must survive a restart.

use protocol::{AckStatus, BoxNo, CommandId, EventBody, FaultKind};
use sqlx::Row;

use super::{Journal, Outbox, OutboxError, id_box_rows, parse_status, status_str};

impl Outbox {
    pub async fn journal(&self, id: &CommandId) -> Result<Option<Journal>, OutboxError> {
        let row = sqlx::query("SELECT status, detail FROM journal WHERE command_id = ?1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let status: Option<String> = row.try_get("status")?;
        let detail: Option<String> = row.try_get("detail")?;
        Ok(Some(match status.and_then(|s| parse_status(&s)) {
            Some(s) => Journal::Done(s, detail),
            None => Journal::Executing,
        }))
    }

    /// Commands journaled but never finished: a previous run died while executing them.
    pub async fn interrupted(&self) -> Result<Vec<(CommandId, BoxNo)>, OutboxError> {
        let rows = sqlx::query("SELECT command_id, box_no FROM journal WHERE status IS NULL")
            .fetch_all(&self.pool)
            .await?;
        id_box_rows(&rows, "command_id", CommandId::parse)
    }

    /// Records a command before acting on it; `false` when it was already recorded.
    pub async fn begin_command(
        &self,
        id: &CommandId,
        b: BoxNo,
        at: i64,
    ) -> Result<bool, OutboxError> {
        let r = sqlx::query(
            "INSERT OR IGNORE INTO journal (command_id, box_no, received_at) VALUES (?1, ?2, ?3)",
        )
        .bind(id.as_str())
        .bind(i64::from(b.get()))
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records the outcome of a command together with its durable event, in one transaction
    /// (a crash between the two would leave a finished command with no outcome to send).
    pub async fn finish_command(
        &self,
        id: &CommandId,
        b: BoxNo,
        status: AckStatus,
        detail: Option<String>,
        at: i64,
    ) -> Result<(), OutboxError> {
        let _numbering = self.numbering.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO journal (command_id, box_no, received_at, status, detail, done_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?3)
             ON CONFLICT (command_id) DO UPDATE SET status = excluded.status,
               detail = excluded.detail, done_at = excluded.done_at",
        )
        .bind(id.as_str())
        .bind(i64::from(b.get()))
        .bind(at)
        .bind(status_str(status))
        .bind(detail.as_deref())
        .execute(&mut *tx)
        .await?;
        let body = EventBody::CommandResult {
            command_id: id.clone(),
            box_no: b,
            status,
            detail,
        };
        let events = self.insert_events(&mut tx, at, vec![body]).await?;
        tx.commit().await?;
        self.publish_numbers(&events);
        Ok(())
    }

    /// Fault conditions active when the last run stopped: (box or 0 for the device, kind).
    pub async fn active_faults(&self) -> Result<Vec<(u16, FaultKind)>, OutboxError> {
        let rows = sqlx::query("SELECT box_no, kind FROM faults")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let b: i64 = r.try_get("box_no")?;
            let kind: String = r.try_get("kind")?;
            match (u16::try_from(b), FaultKind::parse(&kind)) {
                (Ok(b), Some(k)) => out.push((b, k)),
                _ => tracing::error!(box_no = b, %kind, "fault row not understood; ignored"),
            }
        }
        Ok(out)
    }

    /// Raises or clears a fault with its event, in one transaction; `false` (and no event)
    /// when it already was in that state.
    pub async fn set_fault(
        &self,
        b: Option<BoxNo>,
        kind: FaultKind,
        active: bool,
        evidence: String,
        at: i64,
    ) -> Result<bool, OutboxError> {
        let _numbering = self.numbering.lock().await;
        let mut tx = self.pool.begin().await?;
        let box_key = b.map_or(0, |b| i64::from(b.get()));
        let changed = if active {
            sqlx::query("INSERT OR IGNORE INTO faults (box_no, kind, since) VALUES (?1, ?2, ?3)")
                .bind(box_key)
                .bind(kind.as_str())
                .bind(at)
                .execute(&mut *tx)
                .await?
        } else {
            sqlx::query("DELETE FROM faults WHERE box_no = ?1 AND kind = ?2")
                .bind(box_key)
                .bind(kind.as_str())
                .execute(&mut *tx)
                .await?
        }
        .rows_affected()
            == 1;
        if !changed {
            return Ok(false);
        }
        let body = EventBody::Fault {
            box_no: b,
            fault: kind,
            active,
            evidence,
        };
        let events = self.insert_events(&mut tx, at, vec![body]).await?;
        tx.commit().await?;
        self.publish_numbers(&events);
        Ok(true)
    }
}

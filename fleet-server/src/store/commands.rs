//! Remote commands: creation with its audit row, the forward-only lifecycle (`status_rank`),
//! pending, expired and stale commands.

use protocol::{BoxNo, CommandId, CommandStatus, DeviceId};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError, audit};

impl Store {
    /// Inserts a command and its audit row. With an idempotency key already used by the same
    /// actor, returns the existing command instead.
    pub async fn create_command(&self, c: &NewCommand) -> Result<CreateOutcome, StoreError> {
        if let Some(key) = &c.idempotency_key
            && let Some(existing) = self.command_by_key(&c.actor, key).await?
        {
            return Ok(CreateOutcome::Existing(Box::new(existing)));
        }
        let initial = c.status();
        let mut tx = self.writer.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO commands (command_id, device_id, box_no, action, status, status_rank, actor,
                                   reason, idempotency_key, created_at, expires_at, sent_at)
             VALUES ($1, $2, $3, 'open', $9, $10, $4, $5, $6, $7, $8, $11)
             ON CONFLICT DO NOTHING",
        )
        .bind(c.id.as_str())
        .bind(c.device.as_str())
        .bind(i64::from(c.box_no.get()))
        .bind(&c.actor)
        .bind(&c.reason)
        .bind(c.idempotency_key.as_deref())
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(initial.as_str())
        .bind(initial.rank())
        .bind(c.sent_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // Lost a race with the same idempotency key.
            tx.rollback().await?;
            let key = c.idempotency_key.as_deref().unwrap_or_default();
            return match self.command_by_key(&c.actor, key).await? {
                Some(existing) => Ok(CreateOutcome::Existing(Box::new(existing))),
                None => Err(StoreError::Corrupt("command insert conflicted".into())),
            };
        }
        audit::append(
            &mut tx,
            &audit::AuditEntry {
                id: c.id.as_str(),
                ts: c.created_at,
                actor: &c.actor,
                action: "remote_open",
                device: Some(c.device.as_str()),
                box_no: Some(i64::from(c.box_no.get())),
                command: Some(c.id.as_str()),
                reason: Some(&c.reason),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(CreateOutcome::Created)
    }

    async fn command_by_key(
        &self,
        actor: &str,
        key: &str,
    ) -> Result<Option<CommandRow>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "{COMMAND_SELECT} WHERE actor = $1 AND idempotency_key = $2"
        )))
        .bind(actor)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(CommandRow::from_row).transpose()
    }

    pub async fn command(&self, id: &str) -> Result<Option<CommandRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        command_on(&mut conn, id).await
    }

    /// Moves a command forward in its lifecycle. Never backwards; a physical outcome from the
    /// door (opened, jammed, ...) may replace `expired`, since the door is the truth.
    /// Returns the row when it changed.
    pub async fn advance_command(
        &self,
        id: &CommandId,
        status: CommandStatus,
        at: i64,
        detail: Option<&str>,
    ) -> Result<Option<CommandRow>, StoreError> {
        let mut conn = self.writer.acquire().await?;
        advance_on(&mut conn, id, None, status, at, detail).await
    }

    /// Commands still waiting for delivery (queued or sent) and not yet expired.
    pub async fn pending_commands(
        &self,
        device: Option<&DeviceId>,
        now: i64,
    ) -> Result<Vec<CommandRow>, StoreError> {
        let rows =
            match device {
                Some(d) => {
                    sqlx::query(AssertSqlSafe(format!(
                    "{COMMAND_SELECT} WHERE status_rank < 2 AND expires_at > $1 AND device_id = $2
                     ORDER BY created_at"
                )))
                    .bind(now)
                    .bind(d.as_str())
                    .fetch_all(&self.pool)
                    .await?
                }
                None => sqlx::query(AssertSqlSafe(format!(
                    "{COMMAND_SELECT} WHERE status_rank < 2 AND expires_at > $1 ORDER BY created_at"
                )))
                .bind(now)
                .fetch_all(&self.pool)
                .await?,
            };
        rows.iter().map(CommandRow::from_row).collect()
    }

    /// Expires every command not delivered by its deadline; returns them.
    pub async fn expire_commands(&self, now: i64) -> Result<Vec<CommandRow>, StoreError> {
        let due = format!("{COMMAND_SELECT} WHERE status_rank < 2 AND expires_at <= $1");
        self.advance_selected(
            due,
            now,
            now,
            CommandStatus::Expired,
            "not delivered within its time to live",
        )
        .await
    }

    /// Fails commands delivered longer than `max_age_ms` ago without an outcome (the agent
    /// died mid-command and never came back); returns them.
    pub async fn fail_stale_delivered(
        &self,
        now: i64,
        max_age_ms: i64,
    ) -> Result<Vec<CommandRow>, StoreError> {
        let stale = format!("{COMMAND_SELECT} WHERE status = 'delivered' AND delivered_at <= $1");
        let detail = format!(
            "no outcome from the device within {} s of delivery",
            max_age_ms / 1000
        );
        self.advance_selected(stale, now - max_age_ms, now, CommandStatus::Failed, &detail)
            .await
    }

    /// Advances every command `select` (one `$1` parameter) finds; returns those that moved.
    async fn advance_selected(
        &self,
        select: String,
        param: i64,
        now: i64,
        status: CommandStatus,
        detail: &str,
    ) -> Result<Vec<CommandRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(select))
            .bind(param)
            .fetch_all(&self.pool)
            .await?;
        let mut moved = Vec::new();
        for row in rows.iter().map(CommandRow::from_row) {
            let id = row?.command_id;
            if let Some(r) = self.advance_command(&id, status, now, Some(detail)).await? {
                moved.push(r);
            }
        }
        Ok(moved)
    }
}

/// [`Store::advance_command`] on a connection, or inside a transaction: ingest applies a
/// cabinet's durable `command_result` with the event that carries it. With `device`, only
/// that cabinet's command moves.
pub(super) async fn advance_on(
    conn: &mut sqlx::AnyConnection,
    id: &CommandId,
    device: Option<&DeviceId>,
    status: CommandStatus,
    at: i64,
    detail: Option<&str>,
) -> Result<Option<CommandRow>, StoreError> {
    let column = match status {
        CommandStatus::Queued => return Ok(None),
        CommandStatus::Sent => "sent_at",
        CommandStatus::Delivered => "delivered_at",
        _ => "finished_at",
    };
    let physical = status.is_terminal() && status != CommandStatus::Expired;
    // Only an undelivered command can expire: a `delivered` that lands between the sweep's
    // read and this update must win.
    let below = if status == CommandStatus::Expired {
        CommandStatus::Delivered.rank()
    } else {
        status.rank()
    };
    // An outcome replacing `expired` also replaces its "not delivered" detail.
    let sql = format!(
        "UPDATE commands SET status = $1, status_rank = $2, {column} = $3,
                detail = CASE WHEN status = 'expired' THEN $4 ELSE COALESCE($4, detail) END
         WHERE command_id = $5 AND (status_rank < $6 OR ($7 = 1 AND status = 'expired'))
           AND ($8 IS NULL OR device_id = $8)
         RETURNING {COMMAND_COLUMNS}"
    );
    // RETURNING (SQLite ≥ 3.35, PostgreSQL): one statement on the writer instead of an
    // update and a read, as this runs twice on every remote open.
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(status.as_str())
        .bind(status.rank())
        .bind(at)
        .bind(detail)
        .bind(id.as_str())
        .bind(below)
        .bind(i64::from(physical))
        .bind(device.map(DeviceId::as_str))
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(CommandRow::from_row).transpose()
}

/// Whether a command in `from` moves on a report of `to`, by [`Store::advance_command`]'s
/// rule: never backwards, only an undelivered command expires, and a physical outcome from
/// the door may replace `expired`.
pub fn moves(from: CommandStatus, to: CommandStatus) -> bool {
    let physical = to.is_terminal() && to != CommandStatus::Expired;
    let below = match to {
        CommandStatus::Queued => return false,
        CommandStatus::Expired => CommandStatus::Delivered.rank(),
        _ => to.rank(),
    };
    from.rank() < below || (physical && from == CommandStatus::Expired)
}

/// A command as stored, read on a connection or inside a transaction.
pub(super) async fn command_on(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<Option<CommandRow>, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "{COMMAND_SELECT} WHERE command_id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(CommandRow::from_row).transpose()
}

/// What a cabinet's durable `command_result` did to its command in the ingest transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandReport {
    /// The command as stored after it.
    pub row: CommandRow,
    /// Its status before.
    pub was: CommandStatus,
    /// Whether the report moved it (a repeat, or an outcome storage refuses, does not).
    pub moved: bool,
}

macro_rules! command_columns {
    () => {
        "command_id, device_id, box_no, action, status, actor, reason, idempotency_key,
         created_at, expires_at, sent_at, delivered_at, finished_at, detail"
    };
}
const COMMAND_COLUMNS: &str = command_columns!();
const COMMAND_SELECT: &str = concat!("SELECT ", command_columns!(), " FROM commands");

pub enum CreateOutcome {
    Created,
    Existing(Box<CommandRow>),
}

pub struct NewCommand {
    pub id: CommandId,
    pub device: DeviceId,
    pub box_no: BoxNo,
    pub actor: String,
    pub reason: String,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Stored as already `sent` at this time: the caller publishes it right after the
    /// commit, which saves the remote-open path a second write.
    pub sent_at: Option<i64>,
}

impl NewCommand {
    /// The status it is created with.
    pub fn status(&self) -> CommandStatus {
        if self.sent_at.is_some() {
            CommandStatus::Sent
        } else {
            CommandStatus::Queued
        }
    }

    /// The row as [`Store::create_command`] stores it.
    pub fn row(&self) -> CommandRow {
        let status = self.status();
        CommandRow {
            command_id: self.id.clone(),
            device_id: self.device.clone(),
            box_no: self.box_no,
            action: "open".into(),
            status,
            actor: self.actor.clone(),
            reason: self.reason.clone(),
            idempotency_key: self.idempotency_key.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            sent_at: self.sent_at,
            delivered_at: None,
            finished_at: None,
            detail: None,
            latency_ms: None,
        }
    }
}

/// A stored command, typed: the API maps it to `api_types::commands::Command`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRow {
    pub command_id: CommandId,
    pub device_id: DeviceId,
    pub box_no: BoxNo,
    /// `open`, the one action so far.
    pub action: String,
    pub status: CommandStatus,
    pub actor: String,
    pub reason: String,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub detail: Option<String>,
    /// From the API call to the outcome at the door, when there is one.
    pub latency_ms: Option<i64>,
}

impl CommandRow {
    /// This row after a report of `status` at `at`, as [`Store::advance_command`] leaves it,
    /// or `None` where storage refuses the move: never backwards, only an undelivered command
    /// expires, and a physical outcome from the door may replace `expired` (with its detail).
    /// The same rule in memory lets the API show an outcome before its write (ADR 0030).
    pub fn advanced(
        &self,
        status: CommandStatus,
        at: i64,
        detail: Option<&str>,
    ) -> Option<CommandRow> {
        if !moves(self.status, status) {
            return None;
        }
        let expired = self.status == CommandStatus::Expired;
        let mut row = self.clone();
        match status {
            CommandStatus::Sent => row.sent_at = Some(at),
            CommandStatus::Delivered => row.delivered_at = Some(at),
            _ => {
                row.finished_at = Some(at);
                row.latency_ms = Some(at - row.created_at);
            }
        }
        let detail = detail.map(str::to_owned);
        row.detail = if expired {
            detail
        } else {
            detail.or(row.detail)
        };
        row.status = status;
        Some(row)
    }

    fn from_row(r: &AnyRow) -> Result<CommandRow, StoreError> {
        let created_at: i64 = r.try_get("created_at")?;
        let finished_at: Option<i64> = r.try_get("finished_at")?;
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("a command's {what}: {e}"))
        };
        let box_no: i64 = r.try_get("box_no")?;
        Ok(CommandRow {
            command_id: CommandId::parse(&r.try_get::<String, _>("command_id")?)
                .map_err(|e| corrupt("id", &e))?,
            device_id: DeviceId::parse(&r.try_get::<String, _>("device_id")?)
                .map_err(|e| corrupt("device", &e))?,
            box_no: u16::try_from(box_no)
                .ok()
                .and_then(|b| BoxNo::new(b).ok())
                .ok_or_else(|| corrupt("box", &box_no))?,
            action: r.try_get("action")?,
            status: super::parse_col("command status", r.try_get("status")?, CommandStatus::parse)?,
            actor: r.try_get("actor")?,
            reason: r.try_get("reason")?,
            idempotency_key: r.try_get("idempotency_key")?,
            created_at,
            expires_at: r.try_get("expires_at")?,
            sent_at: r.try_get("sent_at")?,
            delivered_at: r.try_get("delivered_at")?,
            finished_at,
            detail: r.try_get("detail")?,
            latency_ms: finished_at.map(|f| f - created_at),
        })
    }
}

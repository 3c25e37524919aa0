//! The durable outbox, command journal and code book: one SQLite file in the agent's data dir.
//!
//! Every event gets its sequence number and is committed here before anything is sent, and is
//! deleted only when the server's receipt covers it. The journal records each command id
//! before its lock is pulsed, so no command is executed twice, also across restarts. The code
//! book keeps the grants the cabinet verifies offline, every code used (recorded before the
//! pulse, like the journal), local deposits and the keypad's wrong-entry count, so neither a
//! restart nor an offline period lets a code work twice or resets a lockout.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use protocol::{AckStatus, BoxNo, Event, EventBody};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("outbox write failed (disk full or file damaged?): {0}")]
    Db(#[from] sqlx::Error),
    #[error("cannot create data dir {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

impl OutboxError {
    /// Another process holds the outbox (a running agent: it keeps the file locked).
    pub fn is_busy(&self) -> bool {
        let (OutboxError::Open { source, .. } | OutboxError::Db(source)) = self else {
            return false;
        };
        matches!(source, sqlx::Error::Database(db) if db.code().as_deref() == Some("5"))
    }
}

/// How hard the outbox syncs. `Full` survives power loss; `Normal` survives process crashes
/// and is what a simulator with thousands of agents in one process wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    Full,
    Normal,
}

/// What the journal knows about a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Journal {
    /// Recorded, lock maybe pulsed, outcome not yet recorded.
    Executing,
    Done(AckStatus, Option<String>),
}

pub struct Outbox {
    pool: SqlitePool,
    last_seq: AtomicU64,
    /// Held from reading `last_seq` to publishing the new one, so two appends never take the
    /// same number.
    numbering: tokio::sync::Mutex<()>,
}

/// What `open_or_recover` found when the outbox file was damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Where the damaged file now is (kept for inspection, never read again).
    pub moved_to: String,
    /// What SQLite said was wrong.
    pub cause: String,
    /// Rows copied into the fresh outbox, per table (`outbox`, `journal`, `code_uses`, ...).
    pub salvaged: Vec<(&'static str, u64)>,
}

impl Recovered {
    /// The text of the `lost` event that tells the server.
    pub fn detail(&self) -> String {
        let salvaged: Vec<String> = self
            .salvaged
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        let salvaged = if salvaged.is_empty() {
            "nothing readable".to_owned()
        } else {
            salvaged.join(", ")
        };
        format!(
            "outbox file damaged ({}); moved to {}; salvaged: {salvaged}; events recorded but not \
             salvaged are lost",
            self.cause, self.moved_to
        )
    }
}

/// SQLite's answers for a file that is not (or no longer) a sound database.
fn is_damage(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("11" | "26")),
        _ => false,
    }
}

/// Tables copied out of a damaged file, each on its own: what reads is kept.
const SALVAGE: [(&str, &str); 8] = [
    ("outbox", "seq, event"),
    (
        "journal",
        "command_id, box_no, received_at, status, detail, done_at",
    ),
    ("code_uses", "item, box_no, used_at, not_after, reported"),
    ("deposits", "item, at"),
    ("keypad_failures", "ts"),
    ("meta", "key, value"),
    ("faults", "box_no, kind, since"),
    ("code_sync", "id, version, body"),
];

impl Outbox {
    /// Opens the outbox; when the file is damaged (not a database, or failing SQLite's quick
    /// check) it is moved aside, a fresh outbox is created, and every table that can still
    /// be read is copied over. A damaged file must not keep the agent from starting: a
    /// restart loop would stop the cabinet for good, while a fresh outbox keeps it working.
    pub async fn open_or_recover(
        dir: &Path,
        durability: Durability,
    ) -> Result<(Outbox, Option<Recovered>), OutboxError> {
        let cause = match Outbox::open(dir, durability).await {
            Ok(outbox) => match outbox.quick_check().await {
                Ok(()) => return Ok((outbox, None)),
                Err(why) => {
                    outbox.close().await;
                    why
                }
            },
            Err(OutboxError::Open { source, .. } | OutboxError::Db(source))
                if is_damage(&source) =>
            {
                source.to_string()
            }
            Err(other) => return Err(other),
        };
        let path = dir.join("outbox.db");
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let moved = dir.join(format!("outbox.db.damaged-{stamp}"));
        let move_err = |source| OutboxError::Dir {
            path: moved.display().to_string(),
            source,
        };
        std::fs::rename(&path, &moved).map_err(move_err)?;
        for suffix in ["-wal", "-shm"] {
            let side = dir.join(format!("outbox.db{suffix}"));
            if side.exists() {
                let to = dir.join(format!("outbox.db.damaged-{stamp}{suffix}"));
                std::fs::rename(&side, &to).map_err(move_err)?;
            }
        }
        let outbox = Outbox::open(dir, durability).await?;
        let salvaged = outbox.salvage(&moved).await;
        Ok((
            outbox,
            Some(Recovered {
                moved_to: moved.display().to_string(),
                cause,
                salvaged,
            }),
        ))
    }

    /// SQLite's quick check: `Err` with its first complaint when the file is damaged.
    async fn quick_check(&self) -> Result<(), String> {
        match sqlx::query_scalar::<_, String>("PRAGMA quick_check(1)")
            .fetch_one(&self.pool)
            .await
        {
            Ok(answer) if answer == "ok" => Ok(()),
            Ok(answer) => Err(format!("quick check: {answer}")),
            Err(e) if is_damage(&e) => Err(e.to_string()),
            // Not damage (a busy file, say): let the normal path report it.
            Err(_) => Ok(()),
        }
    }

    /// Copies what can be read from the damaged file at `from` into this (fresh) outbox.
    async fn salvage(&self, from: &Path) -> Vec<(&'static str, u64)> {
        let attach = sqlx::query("ATTACH DATABASE ?1 AS damaged")
            .bind(from.display().to_string())
            .execute(&self.pool)
            .await;
        if attach.is_err() {
            return Vec::new();
        }
        let mut salvaged = Vec::new();
        for (table, columns) in SALVAGE {
            let copy = format!(
                "INSERT OR REPLACE INTO main.{table} ({columns}) SELECT {columns} FROM damaged.{table}"
            );
            if let Ok(done) = sqlx::query(sqlx::AssertSqlSafe(copy))
                .execute(&self.pool)
                .await
            {
                salvaged.push((table, done.rows_affected()));
            }
        }
        let _ = sqlx::query("DETACH DATABASE damaged")
            .execute(&self.pool)
            .await;
        // Numbering continues after what was salvaged.
        if let Ok(next) = sqlx::query_scalar::<_, i64>(
            "SELECT MAX((SELECT value FROM meta WHERE key = 'next_seq'),
                        COALESCE((SELECT MAX(seq) FROM outbox), 0) + 1)",
        )
        .fetch_one(&self.pool)
        .await
        {
            self.last_seq
                .store(next.max(1) as u64 - 1, Ordering::SeqCst);
        }
        salvaged
    }

    pub async fn open(dir: &Path, durability: Durability) -> Result<Outbox, OutboxError> {
        std::fs::create_dir_all(dir).map_err(|source| OutboxError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("outbox.db");
        let open_err = |source| OutboxError::Open {
            path: path.display().to_string(),
            source,
        };
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            // One process owns the outbox: hold the file lock instead of taking it per
            // transaction (a second agent on the same data dir fails to start instead).
            .locking_mode(sqlx::sqlite::SqliteLockingMode::Exclusive);
        // One connection: the agent's writes are few and must not interleave.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        for ddl in [
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, event TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS journal (
                command_id TEXT PRIMARY KEY, box_no INTEGER NOT NULL, received_at INTEGER NOT NULL,
                status TEXT, detail TEXT, done_at INTEGER)",
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 1)",
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('keypad_locked_until', 0)",
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('clock_offset_ms', 0)",
            "CREATE TABLE IF NOT EXISTS code_sync (
                id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, body TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS code_uses (
                item TEXT PRIMARY KEY, box_no INTEGER NOT NULL, used_at INTEGER NOT NULL,
                not_after INTEGER NOT NULL, reported INTEGER NOT NULL DEFAULT 0)",
            // The grant of each use (code_uses' rows): what a restored server may ask back.
            "CREATE TABLE IF NOT EXISTS used_grants (item TEXT PRIMARY KEY, body TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS deposits (item TEXT PRIMARY KEY, at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS keypad_failures (ts INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS faults (
                box_no INTEGER NOT NULL, kind TEXT NOT NULL, since INTEGER NOT NULL,
                PRIMARY KEY (box_no, kind))",
        ] {
            sqlx::query(ddl).execute(&pool).await?;
        }
        // Numbers in use are either still in the outbox or below the floor that receipts
        // raise (see `receipt`).
        let next: i64 = sqlx::query_scalar(
            "SELECT MAX((SELECT value FROM meta WHERE key = 'next_seq'),
                        COALESCE((SELECT MAX(seq) FROM outbox), 0) + 1)",
        )
        .fetch_one(&pool)
        .await?;
        Ok(Outbox {
            pool,
            last_seq: AtomicU64::new(next.max(1) as u64 - 1),
            numbering: tokio::sync::Mutex::new(()),
        })
    }

    /// The newest sequence number handed out.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::SeqCst)
    }

    /// Numbers and stores events in one statement (atomic on its own); returns them as sent.
    pub async fn append(&self, ts: i64, bodies: Vec<EventBody>) -> Result<Vec<Event>, OutboxError> {
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        // `last_seq` changes only after a commit and under this lock, so the next number is
        // known without reading it back.
        let _numbering = self.numbering.lock().await;
        let mut conn = self.pool.acquire().await?;
        let events = self.insert_events(&mut conn, ts, bodies).await?;
        self.publish_numbers(&events);
        Ok(events)
    }

    /// Numbers `bodies` after `last_seq` and inserts them on `conn` (a transaction, where
    /// the caller needs them atomic with its own write). Hold `numbering` around it and call
    /// [`Outbox::publish_numbers`] after the commit.
    async fn insert_events(
        &self,
        conn: &mut sqlx::SqliteConnection,
        ts: i64,
        bodies: Vec<EventBody>,
    ) -> Result<Vec<Event>, OutboxError> {
        let next = self.last_seq() + 1;
        let events: Vec<Event> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Event {
                seq: next + i as u64,
                ts,
                body,
            })
            .collect();
        let mut sql = String::from("INSERT INTO outbox (seq, event) VALUES ");
        for i in 0..events.len() {
            sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in &events {
            q = q
                .bind(e.seq as i64)
                .bind(serde_json::to_string(e).unwrap_or_default());
        }
        q.execute(&mut *conn).await?;
        Ok(events)
    }

    fn publish_numbers(&self, events: &[Event]) {
        if let Some(last) = events.last() {
            self.last_seq.store(last.seq, Ordering::SeqCst);
        }
    }

    /// Up to `limit` events with `seq > after`, in order. A row that no longer decodes is
    /// sent as a `lost` event under its sequence number, so the server's receipts can move
    /// past it instead of waiting forever for a gap to fill.
    pub async fn read_after(&self, after: u64, limit: i64) -> Result<Vec<Event>, OutboxError> {
        let rows =
            sqlx::query("SELECT seq, event FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .bind(after as i64)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get("seq")?;
            let text: String = row.try_get("event")?;
            match serde_json::from_str::<Event>(&text) {
                Ok(e) => out.push(e),
                Err(e) => {
                    tracing::error!(seq, error = %e, "outbox row does not decode; sending it as lost");
                    out.push(Event {
                        seq: seq as u64,
                        ts: 0,
                        body: EventBody::Lost {
                            detail: format!("outbox row unreadable: {e}"),
                        },
                    });
                }
            }
        }
        Ok(out)
    }

    /// Deletes every event the receipt covers. The numbering floor is raised in the same
    /// transaction, so a number is never handed out again once its row is gone.
    pub async fn receipt(&self, up_to: u64) -> Result<u64, OutboxError> {
        let up_to = up_to.min(self.last_seq()) as i64;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE meta SET value = MAX(value, ?1 + 1) WHERE key = 'next_seq'")
            .bind(up_to)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM outbox WHERE seq <= ?1")
            .bind(up_to)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }

    /// The server knows sequence numbers beyond any this outbox handed out: the outbox was
    /// replaced (reinstall, new disk). Renumber what is waiting to follow the server's mark,
    /// so nothing is mistaken for a duplicate.
    pub async fn renumber_after(&self, server_mark: u64) -> Result<u64, OutboxError> {
        let _numbering = self.numbering.lock().await;
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT seq, event FROM outbox ORDER BY seq")
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM outbox").execute(&mut *tx).await?;
        let mut next = server_mark as i64 + 1;
        for row in &rows {
            let text: String = row.try_get("event")?;
            let Ok(mut event) = serde_json::from_str::<Event>(&text) else {
                continue;
            };
            event.seq = next as u64;
            sqlx::query("INSERT INTO outbox (seq, event) VALUES (?1, ?2)")
                .bind(next)
                .bind(serde_json::to_string(&event).unwrap_or_default())
                .execute(&mut *tx)
                .await?;
            next += 1;
        }
        sqlx::query("UPDATE meta SET value = ?1 WHERE key = 'next_seq'")
            .bind(next)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.last_seq.store(next as u64 - 1, Ordering::SeqCst);
        Ok(rows.len() as u64)
    }

    /// Oldest sequence number still waiting for a receipt.
    pub async fn oldest(&self) -> Result<Option<u64>, OutboxError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(v.map(|s| s as u64))
    }

    pub async fn pending(&self) -> Result<u64, OutboxError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `(id, box)` pairs from rows with an id column and `box_no`; a row whose values no longer
/// parse is logged and skipped (it cannot be acted on, and must not stop the others).
fn id_box_rows<T, E>(
    rows: &[sqlx::sqlite::SqliteRow],
    id_column: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<(T, BoxNo)>, OutboxError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get(id_column)?;
        let b: i64 = row.try_get("box_no")?;
        match parse(&id)
            .ok()
            .zip(u16::try_from(b).ok().and_then(|b| BoxNo::new(b).ok()))
        {
            Some(p) => out.push(p),
            None => tracing::error!(%id, box_no = b, "{id_column} row with invalid ids ignored"),
        }
    }
    Ok(out)
}

fn status_str(s: AckStatus) -> &'static str {
    match s {
        AckStatus::Delivered => "delivered",
        AckStatus::Opened => "opened",
        AckStatus::AlreadyOpen => "already_open",
        AckStatus::Jammed => "jammed",
        AckStatus::Failed => "failed",
        AckStatus::Expired => "expired",
    }
}

fn parse_status(s: &str) -> Option<AckStatus> {
    [
        AckStatus::Opened,
        AckStatus::AlreadyOpen,
        AckStatus::Jammed,
        AckStatus::Failed,
        AckStatus::Expired,
    ]
    .into_iter()
    .find(|a| status_str(*a) == s)
}

mod codebook;
mod journal;

#[cfg(test)]
mod tests;

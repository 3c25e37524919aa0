//! Storage: the one place that speaks SQL, on SQLite (default) or PostgreSQL through `sqlx::Any`.
//!
//! Writes that carry device data go through [`Store::ingest`], one transaction per batch, so
//! the cost of a commit is shared by many events; everything is idempotent on
//! `(device_id, seq)` so a retransmitted event is stored once.

mod alarms;
pub mod audit;
mod flows;
mod overview;
mod planning;
mod schema;
mod tokens;
pub mod usage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use protocol::{BoxNo, CommandId, CommandStatus, DeviceId, Event, EventBody, StateSnapshot};
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};

pub use alarms::{
    AlarmAction, AlarmFilter, AlarmRow, CLOCK_SKEW, DEVICE_OFFLINE, REOPEN_WINDOW_MS, SEVERITIES,
    severity,
};
pub use flows::{
    Allocated, BoxConfig, BoxView, CabinetRow, DutyChange, Effects, HistoryRow, Issued, ItemRow,
    NewItem, NotificationRow, Placement, Presence, SiteRow, StaffRow,
};
pub use overview::BoxCounts;
pub use planning::Measured;
pub use schema::SCHEMA_VERSION;
pub use tokens::{NewToken, TokenRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error(
        "database schema version {found} is newer than this server's {supported}; upgrade the server"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
    /// The request asked for something that cannot be answered as asked (the text says why).
    #[error("{0}")]
    Invalid(String),
    /// The database's files could not be opened or synced: storage is unusable until the
    /// disk is fixed (full, read-only, failing).
    #[error("database file {path}: {source}; check the disk and the data directory")]
    File {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    /// The dialect of an open connection (inside a transaction, where `Store::kind` is not
    /// at hand).
    fn of(conn: &sqlx::AnyConnection) -> DbKind {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            DbKind::Sqlite
        } else {
            DbKind::Postgres
        }
    }
}

/// Connection pool plus the dialect differences that matter.
#[derive(Clone)]
pub struct Store {
    /// Reads.
    pool: AnyPool,
    /// Writes. On SQLite a single connection: writers queue here without SQLite's busy
    /// handler, whose sleeps (1, 2, 5 ... 25 ms) showed up as command-latency spikes. On
    /// PostgreSQL the same pool as reads.
    writer: AnyPool,
    kind: DbKind,
    /// Whether item changes queue webhooks to the service platform.
    webhooks: bool,
    /// SQLite's write-ahead log, synced by [`Store::ingest`] after its commit, outside the
    /// writer (ADR 0010). `None` on PostgreSQL and for in-memory databases.
    wal: Option<Arc<Wal>>,
}

/// `pg_advisory_lock` class of the leading replica ("LFLD"); the database's name is the key.
const LEADER_LOCK: i32 = 0x4c46_4c44;

/// Held leadership ([`Store::try_lead`]); dropping it closes the connection and frees the lock.
pub struct Leadership(Option<sqlx::AnyConnection>);

impl Leadership {
    /// Whether the lock is still held: its connection still answers.
    pub async fn alive(&mut self) -> bool {
        let Some(conn) = &mut self.0 else {
            return true;
        };
        let ping = sqlx::query("SELECT 1").execute(&mut *conn);
        matches!(
            tokio::time::timeout(Duration::from_secs(2), ping).await,
            Ok(Ok(_))
        )
    }
}

/// The open `-wal` file and its path (for the error when syncing it fails).
struct Wal {
    path: String,
    file: std::fs::File,
}

/// Rows written per multi-row INSERT: 7 parameters a row stays under SQLite's 32766.
const ROWS_PER_INSERT: usize = 500;

impl Store {
    /// Connects, applies the schema, and checks its version. `url` is `sqlite://...` or
    /// `postgres://...`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else {
            DbKind::Postgres
        };
        // How long a request waits for a connection. On PostgreSQL a dead server makes the
        // pool retry connecting until this runs out, so every API call of an outage would
        // hang for it: 3 s answers 503 while a client still waits; the ingest writer retries
        // on its own. SQLite's only wait is for its one writer, which ingest's cost budget
        // releases within a second.
        let acquire = match kind {
            DbKind::Sqlite => Duration::from_secs(10),
            DbKind::Postgres => Duration::from_secs(3),
        };
        let options = |max| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(acquire)
        };
        let (pool, writer) = if kind == DbKind::Sqlite {
            let sqlite = |max| {
                // No ping before each use: an embedded file has no server to lose, and the
                // ping is one more hand-off to the connection's thread per transaction.
                options(max)
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the single writer. NORMAL syncs at
                            // checkpoints; `Store::ingest` syncs the log itself after its
                            // commits, outside the writer (ADR 0010). No
                            // automatic checkpoints: the one that happened to run inside a
                            // command's commit cost 10-20 ms; `Store::checkpoint` runs them off
                            // the latency path instead.
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = NORMAL",
                                "PRAGMA busy_timeout = 10000",
                                "PRAGMA wal_autocheckpoint = 0",
                            ] {
                                sqlx::query(pragma).execute(&mut *conn).await?;
                            }
                            Ok(())
                        })
                    })
            };
            let writer = sqlite(1).connect(url).await?;
            (sqlite(4).connect(url).await?, writer)
        } else {
            let pool = options(8).connect(url).await?;
            (pool.clone(), pool)
        };
        let mut store = Store {
            pool,
            writer,
            kind,
            webhooks: false,
            wal: None,
        };
        store.migrate().await?;
        if kind == DbKind::Sqlite {
            store.wal = store.open_wal().await?;
        }
        Ok(store)
    }

    /// Queue a webhook to the service platform for every item change from now on.
    pub fn with_webhooks(mut self, on: bool) -> Store {
        self.webhooks = on;
        self
    }

    /// The writer pool, for tests that must change rows behind the store's back (tampering
    /// with the audit log) — nothing else writes past the store's methods.
    #[doc(hidden)]
    pub fn writer_for_tests(&self) -> &AnyPool {
        &self.writer
    }

    pub fn kind(&self) -> DbKind {
        self.kind
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .execute(&self.writer)
            .await?;
        let found: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            .fetch_one(&self.writer)
            .await?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for (version, statements) in schema::MIGRATIONS {
            if *version <= found {
                continue;
            }
            // One transaction per version: PostgreSQL rolls DDL back on failure; SQLite too.
            let mut tx = self.writer.begin().await?;
            for statement in *statements {
                sqlx::query(*statement).execute(&mut *tx).await?;
            }
            if *version == 6 {
                // Rollups of what happened before they existed, from item history.
                usage::rebuild(&mut tx).await?;
            }
            if *version == 9 {
                let chained = audit::chain_backlog(&mut tx).await?;
                tracing::info!(rows = chained, "audit log rows chained");
            }
            if *version == 10 {
                audit::guard(&mut tx, self.kind).await?;
            }
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(*version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// The main database's `-wal` file, opened to be synced (never written through).
    async fn open_wal(&self) -> Result<Option<Arc<Wal>>, StoreError> {
        let file: String =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(&self.writer)
                .await?;
        if file.is_empty() {
            return Ok(None);
        }
        let path = format!("{file}-wal");
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(file) => Ok(Some(Arc::new(Wal { path, file }))),
            Err(source) => Err(StoreError::File { path, source }),
        }
    }

    /// Cheap liveness probe for `/healthz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// Moves the SQLite write-ahead log into the database file (and syncs it), on a read
    /// connection so the writer never waits for the disk. A no-op on PostgreSQL.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if self.kind == DbKind::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_all(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        let _ = self.checkpoint().await;
        self.writer.close().await;
        self.pool.close().await;
    }

    // ---------------------------------------------------------------------------- ingest

    /// Stores a batch of events and snapshots in one transaction: events deduplicated on
    /// `(device_id, seq)`, box state advanced only by newer sequence numbers, devices' receipt
    /// marks raised. Returns how many events were new.
    pub async fn ingest(&self, batch: &IngestBatch) -> Result<u64, StoreError> {
        Ok(self.ingest_with_effects(batch).await?.0)
    }

    /// [`Store::ingest`], also returning what the keypad events in it changed.
    pub async fn ingest_with_effects(
        &self,
        batch: &IngestBatch,
    ) -> Result<(u64, Effects), StoreError> {
        let mut conn = self.writer.acquire().await?;
        let result = self.ingest_tx(&mut conn, batch).await?;
        // A receipt lets the device delete its copy, so this commit must survive a power
        // cut. SQLite (WAL, synchronous = NORMAL) wrote it to the log without syncing; sync
        // the log here, after handing the writer back, so command writes do not queue behind
        // the disk (ADR 0010). Syncing the file also makes every earlier commit durable.
        drop(conn);
        if let Some(wal) = &self.wal {
            let log = wal.clone();
            let synced = tokio::task::spawn_blocking(move || log.file.sync_data())
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            if let Err(source) = synced {
                return Err(StoreError::File {
                    path: wal.path.clone(),
                    source,
                });
            }
        }
        Ok(result)
    }

    async fn ingest_tx(
        &self,
        conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
        batch: &IngestBatch,
    ) -> Result<(u64, Effects), StoreError> {
        let mut tx = sqlx::Connection::begin(&mut **conn).await?;
        let now = batch.received_at;
        let mut inserted = 0;
        let mut effects = Effects::default();

        // Devices first, so every later row has its device; every device of the batch, in
        // id order, so that two writers (server replicas on one PostgreSQL) take the device
        // row locks in the same order and never deadlock on them. Marks only rise.
        let mut devices: Vec<&DeviceId> = batch
            .marks
            .keys()
            .chain(batch.snapshots.iter().map(|(d, _)| d))
            .chain(batch.heartbeats.iter().map(|(d, _)| d))
            .collect();
        devices.sort();
        devices.dedup();
        for device in devices {
            let mark = batch.marks.get(device).copied().unwrap_or(0);
            sqlx::query(
                "INSERT INTO devices (device_id, created_at, last_seen, acked_seq) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen,
                   acked_seq = CASE WHEN excluded.acked_seq > devices.acked_seq
                                    THEN excluded.acked_seq ELSE devices.acked_seq END",
            )
            .bind(device.as_str())
            .bind(now)
            .bind(now)
            .bind(mark as i64)
            .execute(&mut *tx)
            .await?;
        }

        // Keypad events change items: each is inserted on its own and acted on only when it
        // is new, so a retransmitted staff open never moves the next item in that box.
        let (keypad, plain): (Vec<_>, Vec<_>) = batch
            .events
            .iter()
            .partition(|(_, e)| flows::is_keypad_event(&e.body));
        for (device, event) in keypad {
            let new = sqlx::query(
                "INSERT INTO events (device_id, seq, ts, received_at, kind, box_no, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id, seq) DO NOTHING",
            )
            .bind(device.as_str())
            .bind(event.seq as i64)
            .bind(event.ts)
            .bind(now)
            .bind(event.body.kind())
            .bind(event.body.box_no().map(|b| i64::from(b.get())))
            .bind(serde_json::to_string(&event.body).unwrap_or_default())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if new == 1 {
                inserted += 1;
                Store::apply_keypad_event(
                    &mut tx,
                    device,
                    event.ts,
                    &event.body,
                    now,
                    self.webhooks,
                    &mut effects,
                )
                .await?;
            }
        }
        for chunk in plain.chunks(ROWS_PER_INSERT) {
            let sql = multi_row(
                self.kind,
                "INSERT INTO events (device_id, seq, ts, received_at, kind, box_no, body) VALUES ",
                7,
                chunk.len(),
                " ON CONFLICT (device_id, seq) DO NOTHING",
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (device, event) in chunk {
                q = q
                    .bind(device.as_str())
                    .bind(event.seq as i64)
                    .bind(event.ts)
                    .bind(now)
                    .bind(event.body.kind())
                    .bind(event.body.box_no().map(|b| i64::from(b.get())))
                    .bind(serde_json::to_string(&event.body).unwrap_or_default());
            }
            inserted += q.execute(&mut *tx).await?.rows_affected();
        }

        // Latest door and occupancy per box in this batch; older ones would lose anyway.
        let mut doors: HashMap<(&DeviceId, BoxNo), (bool, u64, i64)> = HashMap::new();
        let mut occupancy: HashMap<(&DeviceId, BoxNo), (bool, u64, i64)> = HashMap::new();
        for (device, event) in &batch.events {
            let slot = match &event.body {
                EventBody::Door { box_no, open } => Some((&mut doors, *box_no, *open)),
                EventBody::Occupancy { box_no, occupied } => {
                    Some((&mut occupancy, *box_no, *occupied))
                }
                EventBody::Started {
                    boxes,
                    agent_version,
                } => {
                    self.started(&mut tx, device, *boxes, agent_version).await?;
                    None
                }
                _ => None,
            };
            if let Some((map, box_no, value)) = slot {
                let entry = map
                    .entry((device, box_no))
                    .or_insert((value, event.seq, event.ts));
                if event.seq >= entry.1 {
                    *entry = (value, event.seq, event.ts);
                }
            }
        }
        self.upsert_box_field(&mut tx, BoxField::Door, &doors)
            .await?;
        self.upsert_box_field(&mut tx, BoxField::Occupied, &occupancy)
            .await?;

        for (device, snapshot) in &batch.snapshots {
            self.apply_snapshot(&mut tx, device, snapshot, now).await?;
        }
        for (device, hb) in &batch.heartbeats {
            apply_heartbeat(&mut tx, device, hb, now).await?;
        }
        tx.commit().await?;
        Ok((inserted, effects))
    }

    async fn started(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        device: &DeviceId,
        boxes: u16,
        agent_version: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE devices SET boxes = $1, agent_version = $2 WHERE device_id = $3")
            .bind(i64::from(boxes))
            .bind(agent_version)
            .bind(device.as_str())
            .execute(&mut **tx)
            .await?;
        let numbers: Vec<i64> = (1..=i64::from(boxes)).collect();
        for chunk in numbers.chunks(ROWS_PER_INSERT) {
            let sql = multi_row(
                self.kind,
                "INSERT INTO boxes (device_id, box_no) VALUES ",
                2,
                chunk.len(),
                " ON CONFLICT (device_id, box_no) DO NOTHING",
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for n in chunk {
                q = q.bind(device.as_str()).bind(*n);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    async fn upsert_box_field(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        field: BoxField,
        latest: &HashMap<(&DeviceId, BoxNo), (bool, u64, i64)>,
    ) -> Result<(), StoreError> {
        let (value, seq, at) = field.columns();
        let rows: Vec<_> = latest.iter().collect();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let sql = multi_row(
                self.kind,
                &format!("INSERT INTO boxes (device_id, box_no, {value}, {seq}, {at}) VALUES "),
                5,
                chunk.len(),
                &format!(
                    " ON CONFLICT (device_id, box_no) DO UPDATE SET {value} = excluded.{value},
                      {seq} = excluded.{seq}, {at} = excluded.{at}
                      WHERE boxes.{seq} < excluded.{seq}"
                ),
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((device, box_no), (v, s, t)) in chunk {
                q = q
                    .bind(device.as_str())
                    .bind(i64::from(box_no.get()))
                    .bind(i64::from(*v))
                    .bind(*s as i64)
                    .bind(*t);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// A snapshot sets every box it names, unless an event newer than the snapshot already did.
    async fn apply_snapshot(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        device: &DeviceId,
        snapshot: &StateSnapshot,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut doors = HashMap::new();
        let mut occupancy = HashMap::new();
        for b in &snapshot.boxes {
            doors.insert((device, b.box_no), (b.door_open, snapshot.seq, snapshot.ts));
            if let Some(o) = b.occupied {
                occupancy.insert((device, b.box_no), (o, snapshot.seq, snapshot.ts));
            }
        }
        sqlx::query(
            "INSERT INTO devices (device_id, created_at, last_seen, boxes) VALUES ($1, $2, $3, $4)
             ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen,
               boxes = CASE WHEN excluded.boxes > devices.boxes THEN excluded.boxes ELSE devices.boxes END",
        )
        .bind(device.as_str())
        .bind(now)
        .bind(now)
        .bind(snapshot.boxes.len() as i64)
        .execute(&mut **tx)
        .await?;
        // `<=`: a snapshot taken at the same seq as the last event is at least as fresh.
        self.upsert_box_field(tx, BoxField::Door, &doors).await?;
        self.upsert_box_field(tx, BoxField::Occupied, &occupancy)
            .await?;
        Ok(())
    }

    /// The receipt mark stored for a device (0 if unknown).
    pub async fn acked_seq(&self, device: &DeviceId) -> Result<u64, StoreError> {
        let mark: Option<i64> =
            sqlx::query_scalar("SELECT acked_seq FROM devices WHERE device_id = $1")
                .bind(device.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(mark.unwrap_or(0).max(0) as u64)
    }

    /// Highest stored seq above `after` such that every seq in between is stored: used to
    /// re-derive a receipt mark when events arrived out of order.
    pub async fn stored_seqs_after(
        &self,
        device: &DeviceId,
        after: u64,
        limit: i64,
    ) -> Result<Vec<u64>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM events WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(device.as_str())
        .bind(after as i64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|s| s as u64).collect())
    }

    // ---------------------------------------------------------------------------- presence

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

    // ---------------------------------------------------------------------------- queries

    pub async fn devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!("{DEVICE_SELECT} ORDER BY device_id")))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(DeviceRow::from_row).collect()
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
        let device = DeviceRow::from_row(&row)?;
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

    // ---------------------------------------------------------------------------- commands

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
        let row = sqlx::query(AssertSqlSafe(format!(
            "{COMMAND_SELECT} WHERE command_id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(CommandRow::from_row).transpose()
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
            .fetch_optional(&self.writer)
            .await?;
        row.as_ref().map(CommandRow::from_row).transpose()
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
            let id = CommandId::parse(&row?.command_id)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if let Some(r) = self.advance_command(&id, status, now, Some(detail)).await? {
                moved.push(r);
            }
        }
        Ok(moved)
    }

    // ---------------------------------------------------------------------------- audit

    /// Newest first: remote opens with their command's current result and latency, code
    /// uses and refusals, staff opens and keypad lockouts.
    /// `sites`: only rows of devices in these sites' cabinets (configuration and token rows
    /// have no device: every site's business).
    pub async fn audit(
        &self,
        device: Option<&DeviceId>,
        sites: Sites<'_>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let base =
            "SELECT a.audit_id, a.ts, a.actor, a.action, a.device_id, a.box_no, a.command_id,
                           a.item_id, a.reason, COALESCE(c.status, a.outcome) AS status,
                           c.finished_at, c.created_at AS c_created, c.detail, a.seq, a.hash
                    FROM audit a LEFT JOIN commands c ON c.command_id = a.command_id";
        let in_sites = match sites {
            None => "1 = 1".to_owned(),
            Some(_) => format!(
                "a.device_id IN (SELECT device_id FROM cabinets WHERE {})",
                sites_sql("site_id", 3, sites)
            ),
        };
        let rows = bind_sites(
            sqlx::query(AssertSqlSafe(format!(
                "{base} WHERE ($1 IS NULL OR a.device_id = $1) AND {in_sites}
                 ORDER BY a.ts DESC, a.audit_id LIMIT $2"
            )))
            .bind(device.map(DeviceId::as_str))
            .bind(limit),
            sites,
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let finished: Option<i64> = r.try_get("finished_at")?;
                let created: Option<i64> = r.try_get("c_created")?;
                Ok(AuditRow {
                    id: r.try_get("audit_id")?,
                    ts: r.try_get("ts")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    device_id: r.try_get("device_id")?,
                    box_no: r.try_get("box_no")?,
                    command_id: r.try_get("command_id")?,
                    item_id: r.try_get("item_id")?,
                    reason: r.try_get("reason")?,
                    result: r.try_get("status")?,
                    detail: r.try_get("detail")?,
                    latency_ms: finished.zip(created).map(|(f, c)| f - c),
                    seq: r.try_get("seq")?,
                    hash: r.try_get("hash")?,
                })
            })
            .collect()
    }
}

macro_rules! command_columns {
    () => {
        "command_id, device_id, box_no, action, status, actor, reason, idempotency_key,
         created_at, expires_at, sent_at, delivered_at, finished_at, detail"
    };
}
const COMMAND_COLUMNS: &str = command_columns!();
const COMMAND_SELECT: &str = concat!("SELECT ", command_columns!(), " FROM commands");

#[derive(Clone, Copy)]
enum BoxField {
    Door,
    Occupied,
}

impl BoxField {
    fn columns(self) -> (&'static str, &'static str, &'static str) {
        match self {
            BoxField::Door => ("door_open", "door_seq", "door_changed_at"),
            BoxField::Occupied => ("occupied", "occupied_seq", "occupied_changed_at"),
        }
    }
}

/// The two append-only histories: of items and of alarms.
#[derive(Debug, Clone, Copy)]
pub(crate) enum History {
    Item,
    Alarm,
}

impl History {
    fn insert_sql(self) -> &'static str {
        match self {
            History::Item => {
                "INSERT INTO item_history (item_id, at, state, actor, detail) VALUES ($1, $2, $3, $4, $5)"
            }
            History::Alarm => {
                "INSERT INTO alarm_history (alarm_id, at, state, actor, detail) VALUES ($1, $2, $3, $4, $5)"
            }
        }
    }

    fn select_sql(self) -> &'static str {
        match self {
            History::Item => {
                "SELECT at, state, actor, detail FROM item_history WHERE item_id = $1 ORDER BY at, state"
            }
            History::Alarm => {
                "SELECT at, state, actor, detail FROM alarm_history WHERE alarm_id = $1 ORDER BY at"
            }
        }
    }
}

/// Appends one history row inside a transaction.
pub(crate) async fn write_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    of: History,
    id: &str,
    at: i64,
    state: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(of.insert_sql())
        .bind(id)
        .bind(at)
        .bind(state)
        .bind(actor)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// The history of an item or alarm, oldest first.
    pub(crate) async fn read_history(
        &self,
        of: History,
        id: &str,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let rows = sqlx::query(of.select_sql())
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(HistoryRow {
                    at: r.try_get("at")?,
                    state: r.try_get("state")?,
                    actor: r.try_get("actor")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}

/// The sites a read is limited to: `None`, every site; otherwise these (none: nothing).
pub type Sites<'a> = Option<&'a [String]>;

/// `column IN ($first, …)` for a list of sites, or a condition every row meets; the caller
/// binds the sites in order after its other parameters (`bind_sites`).
fn sites_sql(column: &str, first: usize, sites: Sites<'_>) -> String {
    match sites {
        None => "1 = 1".to_owned(),
        Some([]) => "1 = 0".to_owned(),
        Some(list) => {
            let params: Vec<String> = (first..first + list.len())
                .map(|i| format!("${i}"))
                .collect();
            format!("{column} IN ({})", params.join(", "))
        }
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind_sites<'q>(mut q: AnyQuery<'q>, sites: Sites<'q>) -> AnyQuery<'q> {
    for site in sites.unwrap_or_default() {
        q = q.bind(site.as_str());
    }
    q
}

/// `prefix ($1, $2, ...), (...), ... suffix` for `rows` rows of `cols` parameters.
///
/// On SQLite the placeholders are anonymous `?`: SQLite looks named ones (`$n`) up by a
/// linear scan, at prepare and at every bind, which made a 3,500-parameter insert quadratic
/// (a tenth of all CPU in the ingest benchmark).
fn multi_row(kind: DbKind, prefix: &str, cols: usize, rows: usize, suffix: &str) -> String {
    let mut sql = String::with_capacity(prefix.len() + rows * cols * 5 + suffix.len());
    sql.push_str(prefix);
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            match kind {
                DbKind::Sqlite => sql.push('?'),
                DbKind::Postgres => {
                    sql.push('$');
                    sql.push_str(&(r * cols + c + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(suffix);
    sql
}

/// Records a heartbeat as received now (the server's clock judges freshness, not the agent's).
async fn apply_heartbeat(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    device: &DeviceId,
    hb: &protocol::Heartbeat,
    now: i64,
) -> Result<(), StoreError> {
    let (bus, detail) = match &hb.lock_bus {
        protocol::BusHealth::Ok => ("ok", None),
        protocol::BusHealth::Unreachable { detail } => ("unreachable", Some(detail.as_str())),
        protocol::BusHealth::Absent => ("absent", None),
    };
    let station = hb
        .station
        .as_ref()
        .and_then(|s| serde_json::to_string(s).ok());
    sqlx::query(
        "INSERT INTO devices (device_id, created_at, last_seen, profile, heartbeat_at, heartbeat_secs,
                              uptime_s, lock_bus, lock_bus_detail, power, outbox_pending, station,
                              clock_offset_ms)
         VALUES ($1, $2, $2, $3, $2, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen,
           profile = excluded.profile, heartbeat_at = excluded.heartbeat_at,
           heartbeat_secs = excluded.heartbeat_secs, uptime_s = excluded.uptime_s,
           lock_bus = excluded.lock_bus, lock_bus_detail = excluded.lock_bus_detail,
           power = excluded.power, outbox_pending = excluded.outbox_pending,
           station = excluded.station, clock_offset_ms = excluded.clock_offset_ms",
    )
    .bind(device.as_str())
    .bind(now)
    .bind(hb.profile.as_str())
    .bind(i64::from(hb.interval_s))
    .bind(i64::try_from(hb.uptime_s).unwrap_or(i64::MAX))
    .bind(bus)
    .bind(detail)
    .bind(hb.power.as_str())
    .bind(i64::try_from(hb.outbox_pending).unwrap_or(i64::MAX))
    .bind(station)
    .bind(hb.clock_offset_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What storing an event costs the one writer, in plain events (one row of a multi-row
/// insert, ≈ 15 µs). A keypad event runs its own statements (audit, item, history, usage,
/// notifications: about ten, ≈ 0.8 ms in the city scenario's bursts), so the ingest sizes
/// its transactions by cost, not count: a burst of staff rounds then holds the writer for
/// tens of milliseconds at a time instead of a second, and a remote open or a reservation
/// waits for one such slice.
pub fn event_cost(body: &EventBody) -> usize {
    if flows::is_keypad_event(body) {
        KEYPAD_EVENT_COST
    } else {
        1
    }
}

/// See [`event_cost`].
pub const KEYPAD_EVENT_COST: usize = 50;
/// A state snapshot writes every box of its cabinet (see [`event_cost`]).
pub const SNAPSHOT_COST: usize = 50;
/// A heartbeat updates its device's health (see [`event_cost`]).
pub const HEARTBEAT_COST: usize = 4;

/// What one ingest transaction writes.
#[derive(Debug, Default)]
pub struct IngestBatch {
    pub received_at: i64,
    pub events: Vec<(DeviceId, Event)>,
    pub snapshots: Vec<(DeviceId, StateSnapshot)>,
    pub heartbeats: Vec<(DeviceId, protocol::Heartbeat)>,
    /// New receipt mark per device that sent something in this batch.
    pub marks: HashMap<DeviceId, u64>,
}

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
            command_id: self.id.to_string(),
            device_id: self.device.to_string(),
            box_no: i64::from(self.box_no.get()),
            action: "open".into(),
            status: status.as_str().into(),
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

const DEVICE_SELECT: &str = "SELECT device_id, boxes, agent_version, online, last_seen,
    presence_changed_at, presence_reason, acked_seq, profile, heartbeat_at, heartbeat_secs,
    uptime_s, lock_bus, lock_bus_detail, power, outbox_pending, station, clock_offset_ms FROM devices";

/// Heartbeats a device may miss before it counts as gone (one lost QoS 0 heartbeat is not
/// news).
pub const HEARTBEAT_MISSES: i64 = 2;

/// A column's text as one of our enums; anything else is a corrupt row, named.
pub(crate) fn parse_col<T>(
    what: &str,
    text: String,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(&text).ok_or_else(|| StoreError::Corrupt(format!("{what} {text:?} is not known")))
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
    #[schema(value_type = Option<Object>)]
    pub station: Option<serde_json::Value>,
    /// How far the server's clock is ahead of the cabinet's (ms), from its last heartbeat;
    /// absent before the first or from older agents.
    pub clock_offset_ms: Option<i64>,
    /// The presence layers judged now.
    pub layers: Layers,
}

/// Presence in layers: each can fail on its own, and each is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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
        })
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BoxRow {
    #[serde(rename = "box")]
    pub box_no: i64,
    /// `open` or `closed`.
    #[schema(value_type = String)]
    pub door: &'static str,
    pub occupied: Option<bool>,
    pub last_change: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: DeviceRow,
    pub boxes: Vec<BoxRow>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventRow {
    pub seq: i64,
    pub ts: i64,
    pub received_at: i64,
    pub kind: String,
    #[serde(rename = "box")]
    pub box_no: Option<i64>,
    /// The event as the device sent it (see PROTOCOL.md, EventBatch).
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CommandRow {
    pub command_id: String,
    pub device_id: String,
    #[serde(rename = "box")]
    pub box_no: i64,
    pub action: String,
    pub status: String,
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
    fn from_row(r: &AnyRow) -> Result<CommandRow, StoreError> {
        let created_at: i64 = r.try_get("created_at")?;
        let finished_at: Option<i64> = r.try_get("finished_at")?;
        Ok(CommandRow {
            command_id: r.try_get("command_id")?,
            device_id: r.try_get("device_id")?,
            box_no: r.try_get("box_no")?,
            action: r.try_get("action")?,
            status: r.try_get("status")?,
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

    pub fn status(&self) -> Option<CommandStatus> {
        CommandStatus::parse(&self.status)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    pub id: String,
    pub ts: i64,
    pub actor: String,
    pub action: String,
    pub device_id: Option<String>,
    #[serde(rename = "box")]
    pub box_no: Option<i64>,
    pub command_id: Option<String>,
    pub item_id: Option<String>,
    pub reason: Option<String>,
    /// The command's status now (its outcome once it has one); for keypad entries the
    /// outcome (`opened`, or why a code was refused).
    pub result: Option<String>,
    pub detail: Option<String>,
    pub latency_ms: Option<i64>,
    /// The row's place in the audit hash chain and its hash (`fleet-server audit verify`).
    pub seq: Option<i64>,
    pub hash: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::multi_row;

    #[test]
    fn multi_row_placeholders() {
        use super::DbKind;
        assert_eq!(
            multi_row(DbKind::Postgres, "INSERT INTO t VALUES ", 2, 2, " X"),
            "INSERT INTO t VALUES ($1,$2),($3,$4) X"
        );
        assert_eq!(
            multi_row(DbKind::Sqlite, "INSERT INTO t VALUES ", 2, 2, " X"),
            "INSERT INTO t VALUES (?,?),(?,?) X"
        );
    }

    #[tokio::test]
    async fn a_file_database_has_its_write_ahead_log_to_sync() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("tmp");
        let db = dir.path().join("fleet.db");
        let store = super::Store::connect(&format!("sqlite://{}?mode=rwc", db.display()))
            .await
            .expect("connect");
        let wal = &store
            .wal
            .as_ref()
            .expect("a file database syncs its log")
            .file;
        // The handle is the log SQLite writes: a commit makes it grow.
        let before = wal.metadata().expect("stat").len();
        store
            .insert_token(&super::NewToken {
                hash: "t",
                name: "night desk",
                role: "viewer",
                sites: None,
                expires_at: None,
                created_by: "admin",
                created_at: 1,
            })
            .await
            .expect("write");
        assert!(wal.metadata().expect("stat").len() > before);
        store.close().await;
        let memory = super::Store::connect("sqlite::memory:")
            .await
            .expect("memory");
        assert!(memory.wal.is_none(), "nothing to sync in memory");
    }
}

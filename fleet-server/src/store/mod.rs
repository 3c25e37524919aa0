//! Storage: the one place that speaks SQL, on SQLite (default) or PostgreSQL through `sqlx::Any`.
//!
//! Writes that carry device data go through [`Store::ingest`], one transaction per batch, so
//! the cost of a commit is shared by many events; everything is idempotent on
//! `(device_id, seq)` so a retransmitted event is stored once.

mod alarms;
pub mod audit;
mod cabinets;
mod codes;
mod commands;
mod config;
pub(crate) mod db_url;
mod deployments;
mod devices;
mod diagnostics;
mod effects;
mod flows;
pub mod gaps;
mod history;
mod ingest;
mod ingest_pg;
mod items;
mod labels;
mod notifications;
mod overview;
mod planning;
mod presence;
pub(crate) mod primary;
mod reconcile;
mod releases;
mod restores;
pub mod retention;
mod schema;
mod sites;
mod sms;
mod staff;
mod tokens;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use protocol::DeviceId;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use alarms::{AlarmAction, AlarmFilter, AlarmRow};
pub use audit::AuditRow;
pub use cabinets::{BoxConfig, BoxView, CabinetRow};
pub use codes::CodeMaterial;
pub use commands::{CommandReport, CommandRow, CreateOutcome, NewCommand, moves};
pub use config::{AppliedConfig, ConfigFacts, LayerRow};
pub use deployments::{DeploymentRow, DeviceNow, RolloutRow, Selector};
pub use devices::{
    BoxRow, DeviceDetail, DeviceRow, EventRow, HEARTBEAT_MISSES, Layers, PresenceRow, Totals,
};
pub use diagnostics::{DiagnosticRow, DiagnosticState};
pub use flows::{Effects, Presence};
pub(crate) use history::{History, write_history};
pub use ingest::{
    EFFECTS_EVENT_COST, HEARTBEAT_COST, IngestBatch, SNAPSHOT_COST, Stored, TURN_COST, event_cost,
};
pub use items::{Allocated, HistoryRow, Issued, ItemRow, NewItem, Placement};
pub use notifications::NotificationRow;
pub use overview::BoxCounts;
pub use planning::Measured;
pub use reconcile::RECOVERED_BY;
pub use releases::{Registered, ReleaseRow, ReleaseState};
pub use restores::RestoreRow;
pub use schema::SCHEMA_VERSION;
pub use sites::SiteRow;
pub use sms::SmsTemplateRow;
pub use staff::{DutyChange, StaffRow};
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
    /// The database settings are wrong (the text says how).
    #[error("{0}")]
    Config(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    /// The database a URL names: `sqlite:…` is SQLite, anything else PostgreSQL.
    pub fn of_url(url: &str) -> DbKind {
        if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else {
            DbKind::Postgres
        }
    }

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
    /// PostgreSQL named with several hosts (a primary and its standbys): each one's URL, and
    /// the one connected to now ([`Store::follow_primary`]).
    hosts: Arc<Vec<String>>,
    current: Arc<std::sync::Mutex<String>>,
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
        Store::open(url, true, 0).await
    }

    /// [`Store::connect`] for a server with `writers` ingest lanes: on PostgreSQL each holds
    /// a connection while it writes, so the pool has that many beyond the eight the API,
    /// commands and sweeps share.
    pub async fn connect_for_writers(url: &str, writers: usize) -> Result<Store, StoreError> {
        Store::open(url, true, writers).await
    }

    /// A write transaction that changes rows shared between cabinets (a site's usage
    /// rollups, cabinets' code versions, the fleet-wide alarms, the audit chain), the audit
    /// chain's lock taken first. Every such transaction (ingest's too, see `ingest_tx`) takes
    /// shared rows only after that one lock, so on PostgreSQL they queue behind each other
    /// instead of deadlocking; SQLite has one writer and no lock to take.
    pub(crate) async fn begin_shared(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        let mut tx = self.writer.begin().await?;
        audit::lock_chain(&mut tx).await?;
        Ok(tx)
    }

    /// Opens the database without changing its schema (a backup reads; it does not migrate
    /// an older database as a side effect). Returns its schema version; refuses one newer
    /// than this build's, or a database with no schema at all.
    pub async fn connect_as_is(url: &str) -> Result<(Store, i64), StoreError> {
        let store = Store::open(url, false, 0).await?;
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
            .fetch_one(&store.pool)
            .await
            .map_err(|_| {
                StoreError::Config(
                    "the database has no LockerFleet schema (no schema_version table): \
                         is this the server's database?"
                        .into(),
                )
            })?;
        let found = found.unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok((store, found))
    }

    async fn open(url: &str, migrate: bool, writers: usize) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let kind = DbKind::of_url(url);
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
            let hosts = primary::hosts(url)?;
            let url = if hosts.len() > 1 {
                // A failover may be under way while the server starts: wait for a primary.
                let until = std::time::Instant::now() + Duration::from_secs(60);
                loop {
                    if let Some(url) = primary::find(&hosts).await {
                        break url;
                    }
                    if std::time::Instant::now() > until {
                        return Err(StoreError::Config(format!(
                            "none of the database hosts accepts writes (tried {}): is a primary up?",
                            hosts
                                .iter()
                                .map(|h| db_url::redact(h))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            } else {
                url.to_owned()
            };
            let several = hosts.len() > 1;
            let pool = options(8 + writers.min(64) as u32)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        // Never a standby's connection, even for a moment after a switch.
                        if several {
                            let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                                .fetch_one(&mut *conn)
                                .await?;
                            if standby {
                                return Err(sqlx::Error::Configuration(
                                    "this host is a standby now; the store follows the primary"
                                        .into(),
                                ));
                            }
                        }
                        Ok(())
                    })
                })
                .connect(&url)
                .await?;
            let store = Store {
                pool: pool.clone(),
                writer: pool,
                kind,
                webhooks: false,
                wal: None,
                hosts: Arc::new(hosts),
                current: Arc::new(std::sync::Mutex::new(url)),
            };
            if migrate {
                store.migrate().await?;
            }
            return Ok(store);
        };
        let mut store = Store {
            pool,
            writer,
            kind,
            webhooks: false,
            wal: None,
            hosts: Arc::new(Vec::new()),
            current: Arc::new(std::sync::Mutex::new(String::new())),
        };
        if migrate {
            store.migrate().await?;
        }
        if kind == DbKind::Sqlite {
            store.wal = store.open_wal().await?;
        }
        Ok(store)
    }

    /// Whether the database was named with several hosts (a primary and standbys).
    pub fn has_standbys(&self) -> bool {
        self.hosts.len() > 1
    }

    /// Checks that the host written to is still the primary; if it is gone or became a
    /// standby, finds the one that is and sends new connections there. Returns the new
    /// primary's URL (without password) when it moved.
    pub async fn follow_primary(&self) -> Option<String> {
        if !self.has_standbys() {
            return None;
        }
        let still = tokio::time::timeout(
            Duration::from_secs(3),
            sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()").fetch_one(&self.pool),
        )
        .await;
        if matches!(still, Ok(Ok(false))) {
            return None;
        }
        let url = primary::find(&self.hosts).await?;
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if *current == url {
            return None;
        }
        let options = match <sqlx::any::AnyConnectOptions as std::str::FromStr>::from_str(&url) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "the primary's URL does not parse");
                return None;
            }
        };
        self.pool.set_connect_options(options);
        *current = url.clone();
        Some(db_url::redact(&url))
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

impl Store {
    /// Devices' heartbeats as received (each with its own receive time), one multi-row
    /// statement per [`ROWS_PER_INSERT`] devices in id order, in one transaction. A row never
    /// goes back in time: an older heartbeat (another replica's flush) leaves a newer one.
    async fn write_heartbeats(
        &self,
        conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
        heartbeats: &[(DeviceId, protocol::Heartbeat, i64)],
    ) -> Result<(), StoreError> {
        let mut rows: Vec<&(DeviceId, protocol::Heartbeat, i64)> = heartbeats.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
        // One row per device (the newest): a statement may not touch a row twice.
        rows.dedup_by(|later, first| later.0 == first.0);
        let mut tx = sqlx::Connection::begin(&mut **conn).await?;
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let sql = multi_row(
                self.kind,
                "INSERT INTO devices (device_id, created_at, last_seen, profile, heartbeat_at, heartbeat_secs,
                                      uptime_s, lock_bus, lock_bus_detail, power, outbox_pending, station,
                                      clock_offset_ms) VALUES ",
                13,
                chunk.len(),
                " ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen,
                   profile = excluded.profile, heartbeat_at = excluded.heartbeat_at,
                   heartbeat_secs = excluded.heartbeat_secs, uptime_s = excluded.uptime_s,
                   lock_bus = excluded.lock_bus, lock_bus_detail = excluded.lock_bus_detail,
                   power = excluded.power, outbox_pending = excluded.outbox_pending,
                   station = excluded.station, clock_offset_ms = excluded.clock_offset_ms
                 WHERE devices.heartbeat_at IS NULL OR devices.heartbeat_at <= excluded.heartbeat_at",
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (device, hb, at) in chunk {
                let (bus, detail) = match &hb.lock_bus {
                    protocol::BusHealth::Ok => ("ok", None),
                    protocol::BusHealth::Unreachable { detail } => {
                        ("unreachable", Some(detail.clone()))
                    }
                    protocol::BusHealth::Absent => ("absent", None),
                };
                let station = hb
                    .station
                    .as_ref()
                    .and_then(|s| serde_json::to_string(s).ok());
                q = q
                    .bind(device.as_str())
                    .bind(*at)
                    .bind(*at)
                    .bind(hb.profile.as_str())
                    .bind(*at)
                    .bind(i64::from(hb.interval_s))
                    .bind(i64::try_from(hb.uptime_s).unwrap_or(i64::MAX))
                    .bind(bus)
                    .bind(detail)
                    .bind(hb.power.as_str())
                    .bind(i64::try_from(hb.outbox_pending).unwrap_or(i64::MAX))
                    .bind(station)
                    .bind(hb.clock_offset_ms);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A column's text as one of our enums; anything else is a corrupt row, named.
pub(crate) fn parse_col<T>(
    what: &str,
    text: String,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(&text).ok_or_else(|| StoreError::Corrupt(format!("{what} {text:?} is not known")))
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

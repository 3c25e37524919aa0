//! The audit log as a hash chain: every row carries a sequence number and the SHA-256 of its
//! content and of the row before it, so an edited, inserted or removed row breaks the chain
//! at that point and `fleet-server audit verify` names it.
//!
//! Rows are appended only inside the writer's transactions (`append`). On SQLite the single
//! writer connection serialises the head read and the insert; on PostgreSQL, where writes run
//! on several connections (and, scaled out, several servers), a transaction-scoped advisory
//! lock does, held until the change commits. The unique index on `seq` is the backstop: a
//! fork is refused, never stored. What the chain cannot show is the removal of the newest rows: `verify` prints the head
//! (sequence and hash) so an operator can record it elsewhere and compare later (SECURITY.md).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use tokio_stream::StreamExt;

use protocol::DeviceId;
use sqlx::AssertSqlSafe;

use super::{Sites, Store, StoreError, bind_sites, sites_sql};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// The `prev` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit row to append.
#[derive(Debug, Default, Clone)]
pub struct AuditEntry<'a> {
    pub id: &'a str,
    pub ts: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub device: Option<&'a str>,
    pub box_no: Option<i64>,
    pub command: Option<&'a str>,
    pub item: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// The hash of a row: SHA-256 over the previous row's hash, a newline and the row's fields as
/// a JSON array (serde_json writes one array one way, so the input is canonical).
pub fn chain_hash(prev: &str, seq: i64, e: &AuditEntry<'_>) -> String {
    let fields = serde_json::to_string(&(
        seq, e.id, e.ts, e.actor, e.action, e.device, e.box_no, e.command, e.item, e.outcome,
        e.reason,
    ))
    .unwrap_or_default(); // serialising strings and integers cannot fail
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(prev.as_bytes());
    ctx.update(b"\n");
    ctx.update(fields.as_bytes());
    hex::encode(ctx.finish())
}

/// The chain's newest row, through the unique index on `seq`.
const HEAD: &str = "SELECT seq, hash FROM audit WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1";

/// `(seq, hash)` of the head row, or `(0, GENESIS)` for an empty chain.
fn head_of(row: Option<AnyRow>) -> Result<(i64, String), StoreError> {
    match row {
        Some(r) => Ok((r.try_get("seq")?, r.try_get("hash")?)),
        None => Ok((0, GENESIS.to_owned())),
    }
}

/// The archived prefix's last row, where the chain continues when every row was archived.
const ANCHOR: &str = "SELECT seq, hash FROM audit_anchor ORDER BY seq DESC LIMIT 1";

async fn head(tx: &mut Tx<'_>) -> Result<(i64, String), StoreError> {
    let row = match sqlx::query(HEAD).fetch_optional(&mut **tx).await? {
        Some(r) => Some(r),
        None => sqlx::query(ANCHOR).fetch_optional(&mut **tx).await?,
    };
    head_of(row)
}

/// The advisory lock key of the audit chain on PostgreSQL ("LFAUDIT" in ASCII).
const CHAIN_LOCK: i64 = 0x004c_4641_5544_4954;

/// Appends an administrative row (who did what, to which device, with a description) under
/// a fresh id: the shape releases, deployments, labels and configuration share.
pub(crate) async fn note(
    tx: &mut Tx<'_>,
    at: i64,
    by: &str,
    action: &str,
    device: Option<&str>,
    what: &str,
) -> Result<(), StoreError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    append(
        tx,
        &AuditEntry {
            id: &id,
            ts: at,
            actor: by,
            action,
            device,
            reason: Some(what),
            ..Default::default()
        },
    )
    .await
}

/// Takes the chain's lock for the rest of the caller's transaction (PostgreSQL; SQLite has
/// one writer). Released at commit or rollback; taken again later in the same transaction
/// at no cost.
pub(crate) async fn lock_chain(tx: &mut Tx<'_>) -> Result<(), StoreError> {
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CHAIN_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Appends one row at the head of the chain, inside the caller's transaction.
pub(crate) async fn append(tx: &mut Tx<'_>, e: &AuditEntry<'_>) -> Result<(), StoreError> {
    lock_chain(tx).await?;
    let (last, prev) = head(tx).await?;
    let seq = last + 1;
    let hash = chain_hash(&prev, seq, e);
    sqlx::query(
        "INSERT INTO audit (audit_id, ts, actor, action, device_id, box_no, command_id, item_id,
                            outcome, reason, seq, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(e.id)
    .bind(e.ts)
    .bind(e.actor)
    .bind(e.action)
    .bind(e.device)
    .bind(e.box_no)
    .bind(e.command)
    .bind(e.item)
    .bind(e.outcome)
    .bind(e.reason)
    .bind(seq)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A stored row's fields (what its hash covers, with its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AuditFields {
    pub id: String,
    pub ts: i64,
    pub actor: String,
    pub action: String,
    pub device: Option<String>,
    pub box_no: Option<i64>,
    pub command: Option<String>,
    pub item: Option<String>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
}

impl AuditFields {
    fn from_row(r: &AnyRow) -> Result<AuditFields, StoreError> {
        Ok(AuditFields {
            id: r.try_get("audit_id")?,
            ts: r.try_get("ts")?,
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            device: r.try_get("device_id")?,
            box_no: r.try_get("box_no")?,
            command: r.try_get("command_id")?,
            item: r.try_get("item_id")?,
            outcome: r.try_get("outcome")?,
            reason: r.try_get("reason")?,
        })
    }

    fn entry(&self) -> AuditEntry<'_> {
        AuditEntry {
            id: &self.id,
            ts: self.ts,
            actor: &self.actor,
            action: &self.action,
            device: self.device.as_deref(),
            box_no: self.box_no,
            command: self.command.as_deref(),
            item: self.item.as_deref(),
            outcome: self.outcome.as_deref(),
            reason: self.reason.as_deref(),
        }
    }
}

const COLUMNS: &str =
    "audit_id, ts, actor, action, device_id, box_no, command_id, item_id, outcome, reason";

/// Makes the database itself refuse to change or remove audit rows (schema v10). It stops
/// mistakes and casual edits; an owner of the database can drop the triggers, which is what
/// the chain is for.
pub(crate) async fn guard(tx: &mut Tx<'_>, kind: super::DbKind) -> Result<(), StoreError> {
    let statements: &[&str] = match kind {
        super::DbKind::Sqlite => &[
            "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
             BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
            "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
             BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
        ],
        super::DbKind::Postgres => &[
            "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
            "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
             FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
        ],
    };
    for s in statements {
        sqlx::query(*s).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Chains the rows written before the chain existed (schema v9), oldest first, so a database
/// upgraded in place is covered from its first row.
pub(crate) async fn chain_backlog(tx: &mut Tx<'_>) -> Result<u64, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit WHERE seq IS NULL ORDER BY ts, audit_id"
    )))
    .fetch_all(&mut **tx)
    .await?;
    // Schema v9: no archive (v21) can exist yet, so the head is the table's alone.
    let (mut seq, mut prev) = head_of(sqlx::query(HEAD).fetch_optional(&mut **tx).await?)?;
    for r in &rows {
        let row = AuditFields::from_row(r)?;
        seq += 1;
        let hash = chain_hash(&prev, seq, &row.entry());
        sqlx::query("UPDATE audit SET seq = $1, hash = $2 WHERE audit_id = $3")
            .bind(seq)
            .bind(&hash)
            .bind(&row.id)
            .execute(&mut **tx)
            .await?;
        prev = hash;
    }
    Ok(rows.len() as u64)
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The chain in the database continues after this row of an archive (0: from the first).
    pub starts_after: i64,
    /// Rows checked.
    pub rows: u64,
    /// The newest row's sequence number and hash: record them elsewhere to detect later
    /// removal of the newest rows.
    pub head_seq: i64,
    pub head_hash: String,
    /// The first row where the chain does not hold, and why; `None` when it holds.
    pub broken: Option<Break>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The sequence number expected at this point of the chain.
    pub seq: i64,
    pub audit_id: Option<String>,
    pub why: String,
}

/// One archived audit row: the row's fields, its place in the chain and its hash (a line of
/// a `fleet-server audit archive` file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ArchivedRow {
    pub seq: i64,
    pub hash: String,
    #[serde(flatten)]
    pub fields: AuditFields,
}

impl ArchivedRow {
    /// The row's hash recomputed from `prev` (the row before it).
    pub fn recompute(&self, prev: &str) -> String {
        chain_hash(prev, self.seq, &self.fields.entry())
    }
}

impl Store {
    /// The last archived row (`seq`, `hash`): the chain in the database continues after it.
    pub async fn audit_anchor(&self) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query(ANCHOR).fetch_optional(&self.pool).await?;
        row.map(|r| Ok((r.try_get("seq")?, r.try_get("hash")?)))
            .transpose()
    }

    /// The chained rows after the anchor up to the last one written before `before` (epoch
    /// ms), in chain order: what an archive up to that time holds.
    pub async fn audit_to_archive(&self, before: i64) -> Result<Vec<ArchivedRow>, StoreError> {
        let after = self.audit_anchor().await?.map_or(0, |(s, _)| s);
        let upto: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(seq) FROM audit WHERE seq IS NOT NULL AND seq > $1 AND ts < $2",
        )
        .bind(after)
        .bind(before)
        .fetch_one(&self.pool)
        .await?;
        let Some(upto) = upto else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, seq, hash FROM audit WHERE seq > $1 AND seq <= $2 ORDER BY seq"
        )))
        .bind(after)
        .bind(upto)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ArchivedRow {
                    seq: r.try_get("seq")?,
                    hash: r.try_get("hash")?,
                    fields: AuditFields::from_row(r)?,
                })
            })
            .collect()
    }

    /// Removes the archived rows up to `seq` (whose hash is `hash`) and records them as the
    /// chain's anchor, in one transaction; the append-only triggers are set aside inside it
    /// and made again before it commits.
    pub async fn drop_archived_audit(
        &self,
        seq: i64,
        hash: &str,
        archive: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let stored: Option<String> = sqlx::query_scalar("SELECT hash FROM audit WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?;
        if stored.as_deref() != Some(hash) {
            return Err(StoreError::Conflict(format!(
                "audit row {seq} is not the one archived (hash differs or it is gone): nothing removed"
            )));
        }
        match self.kind {
            super::DbKind::Sqlite => {
                sqlx::query("DROP TRIGGER IF EXISTS audit_no_delete")
                    .execute(&mut *tx)
                    .await?;
            }
            super::DbKind::Postgres => {
                sqlx::query("DROP TRIGGER IF EXISTS audit_no_change ON audit")
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let removed = sqlx::query("DELETE FROM audit WHERE seq <= $1")
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        guard(&mut tx, self.kind).await?;
        sqlx::query(
            "INSERT INTO audit_anchor (seq, hash, archived_at, archive) VALUES ($1, $2, $3, $4)",
        )
        .bind(seq)
        .bind(hash)
        .bind(now)
        .bind(archive)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// The chain's newest row: its sequence number and hash (0 and [`GENESIS`] when empty).
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let row = match sqlx::query(HEAD).fetch_optional(&self.pool).await? {
            Some(r) => Some(r),
            None => sqlx::query(ANCHOR).fetch_optional(&self.pool).await?,
        };
        head_of(row)
    }

    /// Walks the whole audit log in chain order and recomputes every hash. Streams the rows
    /// (memory stays flat however long the log) and stops at the first break.
    pub async fn verify_audit(&self) -> Result<Verdict, StoreError> {
        let (anchor_seq, anchor_hash) = self
            .audit_anchor()
            .await?
            .unwrap_or((0, GENESIS.to_owned()));
        self.verify_audit_from(anchor_seq, &anchor_hash).await
    }

    /// [`Store::verify_audit`] from a given row of the chain (the end of verified archives).
    pub async fn verify_audit_from(
        &self,
        after_seq: i64,
        after_hash: &str,
    ) -> Result<Verdict, StoreError> {
        let mut verdict = Verdict {
            starts_after: after_seq,
            rows: 0,
            head_seq: after_seq,
            head_hash: after_hash.to_owned(),
            broken: None,
        };
        let unchained: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE seq IS NULL")
            .fetch_one(&self.pool)
            .await?;
        let sql = format!(
            "SELECT {COLUMNS}, seq, hash FROM audit WHERE seq IS NOT NULL AND seq > $1 ORDER BY seq"
        );
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after_seq)
            .fetch(&self.pool);
        while let Some(r) = rows.next().await.transpose()? {
            let row = AuditFields::from_row(&r)?;
            let seq: i64 = r.try_get("seq")?;
            let stored: String = r.try_get("hash")?;
            let expected = verdict.head_seq + 1;
            let why = if seq != expected {
                Some(format!(
                    "sequence jumps from {} to {seq}: rows {expected} to {} are missing",
                    verdict.head_seq,
                    seq - 1
                ))
            } else if chain_hash(&verdict.head_hash, seq, &row.entry()) != stored {
                Some(
                    "hash does not match the row's content and the row before it: the row was \
                     changed, or a row before it was"
                        .to_owned(),
                )
            } else {
                None
            };
            if let Some(why) = why {
                verdict.broken = Some(Break {
                    seq: expected,
                    audit_id: Some(row.id),
                    why,
                });
                return Ok(verdict);
            }
            verdict.rows += 1;
            verdict.head_seq = seq;
            verdict.head_hash = stored;
        }
        if unchained > 0 {
            verdict.broken = Some(Break {
                seq: verdict.head_seq + 1,
                audit_id: None,
                why: format!(
                    "{unchained} rows carry no place in the chain: they were inserted outside \
                     the server"
                ),
            });
        }
        Ok(verdict)
    }
}

impl Store {
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
                 ORDER BY a.ts DESC, a.seq DESC, a.audit_id LIMIT $2"
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

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: String,
    pub ts: i64,
    pub actor: String,
    pub action: String,
    pub device_id: Option<String>,
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
    use super::*;

    fn entry(id: &str) -> AuditEntry<'_> {
        AuditEntry {
            id,
            ts: 1,
            actor: "desk",
            action: "remote_open",
            device: Some("cab-1"),
            box_no: Some(3),
            reason: Some("stuck"),
            ..AuditEntry::default()
        }
    }

    #[test]
    fn every_field_and_the_previous_hash_change_the_hash() {
        let base = chain_hash(GENESIS, 1, &entry("a"));
        assert_eq!(base.len(), 64);
        assert_eq!(base, chain_hash(GENESIS, 1, &entry("a")));
        assert_ne!(base, chain_hash(GENESIS, 2, &entry("a")));
        assert_ne!(base, chain_hash(&base, 1, &entry("a")));
        assert_ne!(base, chain_hash(GENESIS, 1, &entry("b")));
        let mut e = entry("a");
        e.reason = Some("stuck ");
        assert_ne!(base, chain_hash(GENESIS, 1, &e));
        let mut e = entry("a");
        e.box_no = None;
        assert_ne!(base, chain_hash(GENESIS, 1, &e));
        // A value moved from one field to its neighbour is a different row.
        let mut e = entry("a");
        e.item = e.reason.take();
        assert_ne!(base, chain_hash(GENESIS, 1, &e));
    }

    /// A database upgraded to v9 has rows without a place: the migration chains them oldest
    /// first, after any chained rows, and `verify` then accepts the whole log.
    #[tokio::test]
    async fn rows_from_before_the_chain_are_chained_oldest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.expect("store");
        let mut tx = store.writer.begin().await.expect("tx");
        append(&mut tx, &entry("first")).await.expect("append");
        for (id, ts) in [("late", 30), ("early", 20)] {
            sqlx::query(
                "INSERT INTO audit (audit_id, ts, actor, action) VALUES ($1, $2, 'x', 'y')",
            )
            .bind(id)
            .bind(ts)
            .execute(&mut *tx)
            .await
            .expect("old row");
        }
        tx.commit().await.expect("commit");
        assert!(store.verify_audit().await.expect("verify").broken.is_some());
        // Chaining updates rows: it runs before the v10 guard in a real upgrade.
        for t in ["audit_no_update", "audit_no_delete"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER {t}")))
                .execute(&store.writer)
                .await
                .expect("drop guard");
        }
        let mut tx = store.writer.begin().await.expect("tx");
        assert_eq!(chain_backlog(&mut tx).await.expect("chain"), 2);
        tx.commit().await.expect("commit");
        let v = store.verify_audit().await.expect("verify");
        assert_eq!((v.rows, v.broken), (3, None));
        let order: Vec<String> = sqlx::query_scalar("SELECT audit_id FROM audit ORDER BY seq")
            .fetch_all(&store.pool)
            .await
            .expect("order");
        assert_eq!(order, ["first", "early", "late"]);
        store.close().await;
    }
}

//! Agent releases: the signed manifest (kept as the exact text that was signed), the binary,
//! and their life: registered, binary uploaded (then available to deploy), withdrawn. Every
//! step is audited in its transaction. The signature and the binary's hash are checked by the
//! caller before anything is written here (`api/releases.rs`).

use protocol::release::{Manifest, SignedRelease, Version};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit;
use super::{Store, StoreError, parse_col};

/// Where a release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseState {
    /// Registered; its binary is not uploaded yet.
    AwaitingBinary,
    /// Signed, complete and deployable.
    Available,
    /// Taken back by an operator: never deployed again.
    Withdrawn,
}

impl ReleaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseState::AwaitingBinary => "awaiting_binary",
            ReleaseState::Available => "available",
            ReleaseState::Withdrawn => "withdrawn",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseRow {
    pub manifest: Manifest,
    /// The manifest's text, key and signature exactly as signed, for cabinets to verify again.
    pub signed: SignedRelease,
    pub created_at: i64,
    pub created_by: String,
    pub uploaded_at: Option<i64>,
    pub withdrawn_at: Option<i64>,
    pub withdrawn_by: Option<String>,
    pub withdraw_note: Option<String>,
}

impl ReleaseRow {
    pub fn state(&self) -> ReleaseState {
        match (self.withdrawn_at, self.uploaded_at) {
            (Some(_), _) => ReleaseState::Withdrawn,
            (None, Some(_)) => ReleaseState::Available,
            (None, None) => ReleaseState::AwaitingBinary,
        }
    }

    fn from_row(r: &AnyRow) -> Result<ReleaseRow, StoreError> {
        let text: String = r.try_get("manifest")?;
        let manifest = parse_col("release manifest", text.clone(), |t| {
            serde_json::from_str::<Manifest>(t).ok()
        })?;
        Ok(ReleaseRow {
            manifest,
            signed: SignedRelease {
                v: 1,
                manifest: text,
                key_id: r.try_get("key_id")?,
                signature: r.try_get("signature")?,
            },
            created_at: r.try_get("created_at")?,
            created_by: r.try_get("created_by")?,
            uploaded_at: r.try_get("uploaded_at")?,
            withdrawn_at: r.try_get("withdrawn_at")?,
            withdrawn_by: r.try_get("withdrawn_by")?,
            withdraw_note: r.try_get("withdraw_note")?,
        })
    }

    fn describe(&self) -> String {
        format!(
            "device-agent {} for {} ({} bytes, sha256 {}, key {})",
            self.manifest.version,
            self.manifest.target,
            self.manifest.size,
            self.manifest.sha256,
            self.signed.key_id
        )
    }
}

const COLUMNS: &str = "manifest, key_id, signature, created_at, created_by, uploaded_at,
    withdrawn_at, withdrawn_by, withdraw_note";

/// What registering a release found.
#[derive(Debug)]
pub enum Registered {
    New(Box<ReleaseRow>),
    /// The same target and version exist already (a release is never replaced: its bytes may
    /// be on cabinets).
    Exists(Box<ReleaseRow>),
}

/// One release's row, read on `conn` (a transaction's or the pool's).
async fn row_of(
    conn: &mut sqlx::AnyConnection,
    target: &str,
    version: &str,
) -> Result<Option<ReleaseRow>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM releases WHERE target = $1 AND version = $2"
    )))
    .bind(target)
    .bind(version)
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(ReleaseRow::from_row).transpose()
}

impl Store {
    /// Registers a verified release (its binary follows) and audits it.
    pub async fn register_release(
        &self,
        manifest: &Manifest,
        signed: &SignedRelease,
        by: &str,
        at: i64,
    ) -> Result<Registered, StoreError> {
        let (target, version) = (&manifest.target, manifest.version.to_string());
        let mut tx = self.writer.begin().await?;
        // One statement decides, so two replicas registering at once cannot both insert.
        let inserted = sqlx::query(
            "INSERT INTO releases (target, version, major, minor, patch, manifest, key_id,
                                   signature, size, sha256, notes, created_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (target, version) DO NOTHING",
        )
        .bind(target)
        .bind(&version)
        .bind(i64::from(manifest.version.major))
        .bind(i64::from(manifest.version.minor))
        .bind(i64::from(manifest.version.patch))
        .bind(&signed.manifest)
        .bind(&signed.key_id)
        .bind(&signed.signature)
        .bind(manifest.size as i64)
        .bind(&manifest.sha256)
        .bind(&manifest.notes)
        .bind(at)
        .bind(by)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            let existing = row_of(&mut tx, target, &version).await?;
            tx.rollback().await?;
            return existing
                .map(|r| Registered::Exists(Box::new(r)))
                .ok_or_else(|| StoreError::Corrupt(format!("release {version} vanished")));
        }
        let row = ReleaseRow {
            manifest: manifest.clone(),
            signed: signed.clone(),
            created_at: at,
            created_by: by.to_owned(),
            uploaded_at: None,
            withdrawn_at: None,
            withdrawn_by: None,
            withdraw_note: None,
        };
        audit::note(&mut tx, at, by, "release_registered", None, &row.describe()).await?;
        tx.commit().await?;
        Ok(Registered::New(Box::new(row)))
    }

    /// Stores the binary of a registered release (already checked against its manifest) and
    /// makes it available. `None`: no such release.
    pub async fn store_release_binary(
        &self,
        target: &str,
        version: Version,
        bytes: &[u8],
        by: &str,
        at: i64,
    ) -> Result<Option<ReleaseRow>, StoreError> {
        let v = version.to_string();
        let mut tx = self.writer.begin().await?;
        let changed = sqlx::query(
            "UPDATE releases SET uploaded_at = $1
             WHERE target = $2 AND version = $3 AND uploaded_at IS NULL AND withdrawn_at IS NULL",
        )
        .bind(at)
        .bind(target)
        .bind(&v)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            sqlx::query("INSERT INTO release_binaries (target, version, data) VALUES ($1, $2, $3)")
                .bind(target)
                .bind(&v)
                .bind(bytes.to_vec())
                .execute(&mut *tx)
                .await?;
        }
        let Some(row) = row_of(&mut tx, target, &v).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        if changed == 1 {
            audit::note(&mut tx, at, by, "release_uploaded", None, &row.describe()).await?;
        }
        tx.commit().await?;
        Ok(Some(row))
    }

    /// Withdraws a release: it is never deployed again (cabinets running it keep it until a
    /// newer one is deployed). `None`: no such release.
    pub async fn withdraw_release(
        &self,
        target: &str,
        version: Version,
        by: &str,
        note: &str,
        at: i64,
    ) -> Result<Option<ReleaseRow>, StoreError> {
        let v = version.to_string();
        let mut tx = self.writer.begin().await?;
        let changed = sqlx::query(
            "UPDATE releases SET withdrawn_at = $1, withdrawn_by = $2, withdraw_note = $3
             WHERE target = $4 AND version = $5 AND withdrawn_at IS NULL",
        )
        .bind(at)
        .bind(by)
        .bind(note)
        .bind(target)
        .bind(&v)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let Some(row) = row_of(&mut tx, target, &v).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        if changed == 1 {
            let what = format!("{}: {note}", row.describe());
            audit::note(&mut tx, at, by, "release_withdrawn", None, &what).await?;
        }
        tx.commit().await?;
        Ok(Some(row))
    }

    /// Audits that a release was offered to a device.
    pub async fn audit_release_offer(
        &self,
        device: &protocol::DeviceId,
        row: &ReleaseRow,
        by: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let what = row.describe();
        audit::note(
            &mut tx,
            at,
            by,
            "release_offered",
            Some(device.as_str()),
            &what,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn release(
        &self,
        target: &str,
        version: Version,
    ) -> Result<Option<ReleaseRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        row_of(&mut conn, target, &version.to_string()).await
    }

    /// Every release, newest version first within each target.
    pub async fn releases(&self) -> Result<Vec<ReleaseRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM releases
             ORDER BY target, major DESC, minor DESC, patch DESC"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ReleaseRow::from_row).collect()
    }

    /// A release's whole binary (`None`: none uploaded): what the delivery task serves a
    /// rollout's chunks from, read once instead of once per chunk.
    pub async fn release_binary(
        &self,
        target: &str,
        version: Version,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row =
            sqlx::query("SELECT data FROM release_binaries WHERE target = $1 AND version = $2")
                .bind(target)
                .bind(version.to_string())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| r.try_get::<Vec<u8>, _>("data"))
            .transpose()
            .map_err(StoreError::from)
    }

    /// Up to `len` bytes of a release's binary from `offset`: what a cabinet downloads, chunk
    /// by chunk. `None`: no binary for that release.
    pub async fn release_chunk(
        &self,
        target: &str,
        version: Version,
        offset: u64,
        len: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        // substr counts from 1 on both databases, for bytes of a BLOB/BYTEA alike; PostgreSQL
        // has it for INTEGER positions only (releases are bounded well below 2 GiB).
        let row = sqlx::query(
            "SELECT substr(data, CAST($1 AS INTEGER), CAST($2 AS INTEGER)) AS chunk FROM release_binaries
             WHERE target = $3 AND version = $4",
        )
        .bind(offset as i64 + 1)
        .bind(i64::from(len))
        .bind(target)
        .bind(version.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get::<Vec<u8>, _>("chunk"))
            .transpose()
            .map_err(StoreError::from)
    }
}

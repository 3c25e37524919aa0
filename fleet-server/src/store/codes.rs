//! The code grants each cabinet verifies offline: their material and versions.

use protocol::{BoxNo, CodeGrant, DeviceId, ItemId, StaffCredential};
use sqlx::Row;

use super::flows::Tx;
use super::{Store, StoreError};

/// One cabinet's code set as the store holds it.
#[derive(Debug, Clone)]
pub struct CodeMaterial {
    pub version: i64,
    pub grants: Vec<CodeGrant>,
    pub staff: Vec<StaffCredential>,
    /// The backup's time, while the cabinet has not confirmed a set made after a restore.
    pub report_since: Option<i64>,
}

impl Store {
    /// Everything one cabinet verifies offline, at its current version.
    ///
    /// Read on a reader connection, so a burst of code sets does not queue on the one writer
    /// behind ingest. One read transaction, the version read first: on SQLite the reads share
    /// a snapshot; on PostgreSQL (a snapshot per statement) the grants can only be newer than
    /// the version, never older, so a cabinet that confirms the version has every grant of
    /// it, and a newer version is sent again anyway.
    pub async fn code_material(
        &self,
        device: &DeviceId,
    ) -> Result<Option<CodeMaterial>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(cab) = sqlx::query(
            "SELECT site_id, codes_version, codes_applied FROM cabinets WHERE device_id = $1",
        )
        .bind(device.as_str())
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let site: String = cab.try_get("site_id")?;
        let version: i64 = cab.try_get("codes_version")?;
        let applied: i64 = cab.try_get("codes_applied")?;
        // A restore moved every cabinet's version to its time (`record_restore`): until the
        // cabinet confirms a set from after it, the set asks what happened since the backup.
        let report_since: Option<i64> = sqlx::query_scalar(
            "SELECT backup_taken_at FROM restores WHERE restored_at > $1
             ORDER BY restored_at DESC LIMIT 1",
        )
        .bind(applied)
        .fetch_optional(&mut *tx)
        .await?;
        let grants = live_grants(&mut tx, device).await?;
        let rows = sqlx::query(
            "SELECT staff_id, salt, hash, iterations FROM staff
             WHERE active = 1 AND (site_id IS NULL OR site_id = $1) ORDER BY staff_id",
        )
        .bind(&site)
        .fetch_all(&mut *tx)
        .await?;
        let mut staff = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("staff_id")?;
            staff.push(StaffCredential {
                staff: protocol::StaffId::parse(&id)
                    .map_err(|e| StoreError::Corrupt(format!("staff {id:?}: {e}")))?,
                salt: r.try_get("salt")?,
                hash: r.try_get("hash")?,
                iterations: u32::try_from(r.try_get::<i64, _>("iterations")?).unwrap_or(1),
            });
        }
        tx.commit().await?;
        Ok(Some(CodeMaterial {
            version,
            grants,
            staff,
            report_since,
        }))
    }

    /// How many items were ever issued a code (they depend on the master secret).
    pub async fn codes_issued(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items WHERE code_tag IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    /// Online cabinets whose confirmed code version lags (the server resends their sets).
    pub async fn codes_lagging(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT c.device_id FROM cabinets c JOIN devices d ON d.device_id = c.device_id
             WHERE d.online = 1 AND c.codes_applied < c.codes_version
             ORDER BY c.device_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

/// A new code version for one cabinet: later than the last and than now, so versions keep
/// rising even across a database restore.
pub(super) async fn bump_codes(tx: &mut Tx<'_>, device: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE cabinets SET codes_version = CASE WHEN codes_version + 1 > $1
                                                  THEN codes_version + 1 ELSE $1 END
         WHERE device_id = $2",
    )
    .bind(now)
    .bind(device)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Every cabinet of a site (all sites for `None`) gets a new code version.
pub(super) async fn bump_site_codes(
    tx: &mut Tx<'_>,
    site: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE cabinets SET codes_version = CASE WHEN codes_version + 1 > $1
                                                  THEN codes_version + 1 ELSE $1 END
         WHERE $2 IS NULL OR site_id = $2",
    )
    .bind(now)
    .bind(site)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The code grants a cabinet's set carries: drop-offs and supplements reserved, pick-ups
/// awaiting deposit or in their box. Also what a new code must differ from (a code two of a
/// cabinet's grants accept opens the first of them).
pub(super) async fn live_grants(
    tx: &mut Tx<'_>,
    device: &DeviceId,
) -> Result<Vec<CodeGrant>, StoreError> {
    let rows = sqlx::query(
        "SELECT item_id, flow, box_no, valid_from, valid_until, code_tag, state FROM items
         WHERE device_id = $1 AND code_tag IS NOT NULL AND (
           (flow IN ('dropoff', 'supplement') AND state = 'reserved')
           OR (flow = 'pickup' AND state IN ('awaiting_deposit', 'in_box')))
         ORDER BY item_id",
    )
    .bind(device.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let mut grants = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("item_id")?;
        let box_no: i64 = r.try_get("box_no")?;
        let state: String = r.try_get("state")?;
        let (Ok(item), Some(b)) = (
            ItemId::parse(&id),
            u16::try_from(box_no).ok().and_then(|n| BoxNo::new(n).ok()),
        ) else {
            return Err(StoreError::Corrupt(format!("item {id:?} box {box_no}")));
        };
        grants.push(CodeGrant {
            item,
            box_no: b,
            not_before: r.try_get("valid_from")?,
            not_after: r.try_get("valid_until")?,
            tag: r.try_get("code_tag")?,
            needs_deposit: state == "awaiting_deposit",
            pickup: r.try_get::<String, _>("flow")? == "pickup",
        });
    }
    Ok(grants)
}

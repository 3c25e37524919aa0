//! Labels on devices (`board=modbus-v2`): read with the devices, replaced whole by an
//! administrator, audited with what they were before.

use std::collections::HashMap;

use domain::labels::Labels;
use protocol::DeviceId;
use sqlx::Row;

use super::audit;
use super::{Store, StoreError};

impl Store {
    /// One device's labels (none when it has never been labelled).
    pub async fn labels(&self, device: &DeviceId) -> Result<Labels, StoreError> {
        let rows =
            sqlx::query("SELECT label_key, label_value FROM device_labels WHERE device_id = $1")
                .bind(device.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("label_key")?, r.try_get("label_value")?)))
            .collect()
    }

    /// Every labelled device's labels.
    pub async fn all_labels(&self) -> Result<HashMap<String, Labels>, StoreError> {
        let rows = sqlx::query("SELECT device_id, label_key, label_value FROM device_labels")
            .fetch_all(&self.pool)
            .await?;
        let mut out: HashMap<String, Labels> = HashMap::new();
        for r in rows {
            out.entry(r.try_get("device_id")?)
                .or_default()
                .insert(r.try_get("label_key")?, r.try_get("label_value")?);
        }
        Ok(out)
    }

    /// Replaces a device's labels (already checked by `domain::labels::check`), audited with
    /// the set before and after; returns the set before.
    pub async fn set_labels(
        &self,
        device: &DeviceId,
        labels: &Labels,
        by: &str,
        at: i64,
    ) -> Result<Labels, StoreError> {
        let mut tx = self.writer.begin().await?;
        let rows =
            sqlx::query("SELECT label_key, label_value FROM device_labels WHERE device_id = $1")
                .bind(device.as_str())
                .fetch_all(&mut *tx)
                .await?;
        let before = rows
            .iter()
            .map(|r| Ok((r.try_get("label_key")?, r.try_get("label_value")?)))
            .collect::<Result<Labels, StoreError>>()?;
        if &before == labels {
            tx.rollback().await?;
            return Ok(before);
        }
        sqlx::query("DELETE FROM device_labels WHERE device_id = $1")
            .bind(device.as_str())
            .execute(&mut *tx)
            .await?;
        for (k, v) in labels {
            sqlx::query(
                "INSERT INTO device_labels (device_id, label_key, label_value) VALUES ($1, $2, $3)",
            )
            .bind(device.as_str())
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        let what = format!("labels {} → {}", show(&before), show(labels));
        audit::note(&mut tx, at, by, "labels_set", Some(device.as_str()), &what).await?;
        tx.commit().await?;
        Ok(before)
    }
}

/// `{a=1, b=2}`, or `{}`.
fn show(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

//! Staff: registration with their credential, deactivation, duty and phones.

use protocol::DeviceId;
use sqlx::Row;

use super::codes::bump_site_codes;
use super::flows::admin_audit;
use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct StaffRow {
    pub id: String,
    pub name: String,
    pub site_id: Option<String>,
    pub active: bool,
    pub created_at: i64,
    /// Masked; alarm notifications go to it while on duty.
    pub phone: Option<String>,
    /// Receives SMS of the site's alarms.
    pub on_duty: bool,
}

/// What putting staff on duty found.
pub enum DutyChange {
    Done,
    NotFound,
    NoPhone,
}

impl Store {
    /// `row.phone` is shown masked; `phone` is the number stored.
    pub async fn insert_staff(
        &self,
        row: &StaffRow,
        phone: Option<&str>,
        salt_hex: &str,
        hash_hex: &str,
        iterations: u32,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_shared().await?;
        let n = sqlx::query(
            "INSERT INTO staff (staff_id, name, site_id, salt, hash, iterations, created_at,
                                phone, on_duty)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (staff_id) DO NOTHING",
        )
        .bind(&row.id)
        .bind(&row.name)
        .bind(row.site_id.as_deref())
        .bind(salt_hex)
        .bind(hash_hex)
        .bind(i64::from(iterations))
        .bind(row.created_at)
        .bind(phone)
        .bind(i64::from(row.on_duty))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            bump_site_codes(&mut tx, row.site_id.as_deref(), row.created_at).await?;
            let what = format!(
                "staff {} {:?} of {}",
                row.id,
                row.name,
                row.site_id.as_deref().unwrap_or("every site")
            );
            admin_audit(
                &mut tx,
                row.created_at,
                actor,
                "staff_added",
                None,
                None,
                &what,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Deactivates a member of staff: their credential leaves every cabinet with the next
    /// code version. `false` when unknown.
    pub async fn deactivate_staff(
        &self,
        id: &str,
        now: i64,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_shared().await?;
        let site: Option<Option<String>> =
            sqlx::query_scalar("SELECT site_id FROM staff WHERE staff_id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(site) = site else {
            return Ok(false);
        };
        sqlx::query("UPDATE staff SET active = 0 WHERE staff_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        bump_site_codes(&mut tx, site.as_deref(), now).await?;
        let what = format!("staff {id}");
        admin_audit(&mut tx, now, actor, "staff_deactivated", None, None, &what).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn staff(&self) -> Result<Vec<StaffRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT staff_id, name, site_id, active, created_at, phone, on_duty FROM staff
             ORDER BY staff_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StaffRow {
                    id: r.try_get("staff_id")?,
                    name: r.try_get("name")?,
                    site_id: r.try_get("site_id")?,
                    active: r.try_get::<i64, _>("active")? != 0,
                    created_at: r.try_get("created_at")?,
                    phone: r
                        .try_get::<Option<String>, _>("phone")?
                        .as_deref()
                        .map(domain::flows::mask_phone),
                    on_duty: r.try_get::<i64, _>("on_duty")? != 0,
                })
            })
            .collect()
    }

    /// Puts a member of staff on or off duty. `Ok(None)`: unknown; `Err(BadRequest)`-like
    /// refusals are the caller's (a phone is needed to go on duty).
    /// Audits a device certificate the server issued on the device's own request.
    pub async fn certificate_renewed(
        &self,
        device: &DeviceId,
        serial_hex: &str,
        not_after_ms: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let what = format!("serial {serial_hex}, valid until {not_after_ms} (epoch ms)");
        let actor = format!("device:{device}");
        admin_audit(
            &mut tx,
            now,
            &actor,
            "certificate_renewed",
            Some(device.as_str()),
            None,
            &what,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_on_duty(
        &self,
        id: &str,
        on: bool,
        now: i64,
        actor: &str,
    ) -> Result<DutyChange, StoreError> {
        let mut tx = self.writer.begin().await?;
        let phone: Option<Option<String>> =
            sqlx::query_scalar("SELECT phone FROM staff WHERE staff_id = $1 AND active = 1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        match phone {
            None => Ok(DutyChange::NotFound),
            Some(None) if on => Ok(DutyChange::NoPhone),
            Some(_) => {
                sqlx::query("UPDATE staff SET on_duty = $1 WHERE staff_id = $2")
                    .bind(i64::from(on))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let action = if on {
                    "staff_on_duty"
                } else {
                    "staff_off_duty"
                };
                let what = format!("staff {id}");
                admin_audit(&mut tx, now, actor, action, None, None, &what).await?;
                tx.commit().await?;
                Ok(DutyChange::Done)
            }
        }
    }
}

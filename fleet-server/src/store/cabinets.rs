//! Cabinets and their boxes: placement at a site, box configuration and service, the box
//! views operators see.

use domain::flows::{BoxStatus, ItemState, Size};
use protocol::{BoxNo, DeviceId};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::flows::admin_audit;
use super::{Sites, Store, StoreError, bind_sites, sites_sql, usage};
use super::{
    codes::bump_codes,
    items::{ITEM_COLS, ItemRow},
};

#[derive(Debug, Clone, PartialEq)]
pub struct CabinetRow {
    pub id: String,
    pub site_id: String,
    pub name: String,
    /// Version of the code grants the server holds for this cabinet.
    pub codes_version: i64,
    /// Version the cabinet confirmed; behind `codes_version` while a change travels.
    pub codes_applied: i64,
    pub online: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoxConfig {
    pub box_no: i64,
    pub size: Size,
    pub accessible: bool,
    pub in_service: bool,
    pub service_note: Option<String>,
}

/// A box as operators see it: configuration, sensors and the item holding it.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxView {
    pub config: BoxConfig,
    pub state: BoxStatus,
    pub door_open: Option<bool>,
    pub item: Option<ItemRow>,
}

impl Store {
    /// Creates or updates a cabinet and the configuration of the boxes given (others keep
    /// theirs). Bumps its code version so it receives its site's staff credentials.
    pub async fn upsert_cabinet(
        &self,
        device: &DeviceId,
        site_id: &str,
        name: &str,
        boxes: &[(BoxNo, Size, bool)],
        now: i64,
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_shared().await?;
        sqlx::query(
            "INSERT INTO cabinets (device_id, site_id, name, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (device_id) DO UPDATE SET site_id = excluded.site_id,
               name = excluded.name, updated_at = excluded.updated_at",
        )
        .bind(device.as_str())
        .bind(site_id)
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (b, size, accessible) in boxes {
            sqlx::query(
                "INSERT INTO box_config (device_id, box_no, size, accessible, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (device_id, box_no) DO UPDATE SET size = excluded.size,
                   accessible = excluded.accessible",
            )
            .bind(device.as_str())
            .bind(i64::from(b.get()))
            .bind(size.as_str())
            .bind(i64::from(*accessible))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        bump_codes(&mut tx, device.as_str(), now).await?;
        let what = format!(
            "cabinet {name:?} at site {site_id}; {} boxes configured",
            boxes.len()
        );
        let d = Some(device.as_str());
        admin_audit(&mut tx, now, actor, "cabinet_configured", d, None, &what).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes a box out of service (or back) at `now`; `false` when the box is not configured.
    /// The time out of service is credited to the usage rollups when the box returns.
    pub async fn set_box_service(
        &self,
        device: &DeviceId,
        b: BoxNo,
        in_service: bool,
        note: Option<&str>,
        now: i64,
        actor: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let action = if in_service {
            "box_in_service"
        } else {
            "box_out_of_service"
        };
        let box_no = Some(i64::from(b.get()));
        let d = Some(device.as_str());
        let note_text = note.unwrap_or_default();
        let row = sqlx::query(
            "SELECT b.in_service, b.out_since, c.site_id FROM box_config b
             JOIN cabinets c ON c.device_id = b.device_id
             WHERE b.device_id = $1 AND b.box_no = $2",
        )
        .bind(device.as_str())
        .bind(i64::from(b.get()))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let was_in: bool = row.try_get::<i64, _>("in_service")? != 0;
        let out_since: Option<i64> = row.try_get("out_since")?;
        let site: String = row.try_get("site_id")?;
        sqlx::query(
            "UPDATE box_config SET in_service = $1, service_note = $2,
               out_since = CASE WHEN $1 = 1 THEN NULL ELSE COALESCE(out_since, $3) END
             WHERE device_id = $4 AND box_no = $5",
        )
        .bind(i64::from(in_service))
        .bind(note)
        .bind(now)
        .bind(device.as_str())
        .bind(i64::from(b.get()))
        .execute(&mut *tx)
        .await?;
        admin_audit(&mut tx, now, actor, action, d, box_no, note_text).await?;
        if in_service
            && !was_in
            && let Some(since) = out_since
        {
            let place = usage::Place {
                site: Some(&site),
                device: Some(device.as_str()),
                box_no: Some(i64::from(b.get())),
            };
            usage::apply(
                &mut tx,
                place,
                &[usage::Op::OutOfService {
                    from: since,
                    to: now,
                }],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn cabinets(&self, sites: Sites<'_>) -> Result<Vec<CabinetRow>, StoreError> {
        let rows = bind_sites(
            sqlx::query(AssertSqlSafe(format!(
                "{CABINET_SELECT} WHERE {} ORDER BY c.device_id",
                sites_sql("c.site_id", 1, sites)
            ))),
            sites,
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(CabinetRow::from_row).collect()
    }

    pub async fn cabinet(&self, device: &DeviceId) -> Result<Option<CabinetRow>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "{CABINET_SELECT} WHERE c.device_id = $1"
        )))
        .bind(device.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(CabinetRow::from_row).transpose()
    }
}

pub(super) const CABINET_SELECT: &str = "SELECT c.device_id, c.site_id, c.name, c.codes_version,
        c.codes_applied, COALESCE(d.online, 0) AS online
    FROM cabinets c LEFT JOIN devices d ON d.device_id = c.device_id";

impl CabinetRow {
    fn from_row(r: &AnyRow) -> Result<CabinetRow, StoreError> {
        Ok(CabinetRow {
            id: r.try_get("device_id")?,
            site_id: r.try_get("site_id")?,
            name: r.try_get("name")?,
            codes_version: r.try_get("codes_version")?,
            codes_applied: r.try_get("codes_applied")?,
            online: r.try_get::<i64, _>("online")? != 0,
        })
    }
}

impl Store {
    /// Every configured box of a cabinet with its sensors and the item holding it.
    pub async fn box_views(&self, device: &DeviceId) -> Result<Vec<BoxView>, StoreError> {
        let rows = sqlx::query(
            "SELECT b.box_no, b.size, b.accessible, b.in_service, b.service_note, s.door_open
             FROM box_config b LEFT JOIN boxes s ON s.device_id = b.device_id AND s.box_no = b.box_no
             WHERE b.device_id = $1 ORDER BY b.box_no",
        )
        .bind(device.as_str())
        .fetch_all(&self.pool)
        .await?;
        let items = self.items_holding(device).await?;
        rows.iter()
            .map(|r| {
                let config = BoxConfig {
                    box_no: r.try_get("box_no")?,
                    size: super::parse_col("box size", r.try_get("size")?, Size::parse)?,
                    accessible: r.try_get::<i64, _>("accessible")? != 0,
                    in_service: r.try_get::<i64, _>("in_service")? != 0,
                    service_note: r.try_get("service_note")?,
                };
                let item = items.iter().find(|i| i.box_no == config.box_no).cloned();
                let state = match (&item, config.in_service) {
                    (Some(i), _) if matches!(i.state, ItemState::InBox | ItemState::Overdue) => {
                        BoxStatus::Occupied
                    }
                    (Some(_), _) => BoxStatus::Reserved,
                    (None, false) => BoxStatus::OutOfService,
                    (None, true) => BoxStatus::Free,
                };
                Ok(BoxView {
                    state,
                    door_open: r.try_get::<Option<i64>, _>("door_open")?.map(|d| d != 0),
                    config,
                    item,
                })
            })
            .collect()
    }

    async fn items_holding(&self, device: &DeviceId) -> Result<Vec<ItemRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ITEM_COLS} FROM items WHERE device_id = $1 AND holds_box = 1"
        )))
        .bind(device.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ItemRow::from_row).collect()
    }
}

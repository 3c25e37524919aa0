//! Storage of the locker service flows: sites, cabinets and boxes, staff, items with their
//! history, unmet demand, the code grants each cabinet holds, and the notification outbox.
//!
//! Every state change of an item happens in one transaction together with its history row,
//! its audit row, its notifications (transactional outbox) and the bump of its cabinet's code
//! version, so a crash never leaves one without the others.

use protocol::{BoxNo, CodeGrant, DeviceId, EventBody, ItemId, StaffCredential};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{History, Sites, Store, StoreError, bind_sites, sites_sql, usage, write_history};
use domain::flows::{Flow, ItemState, SiteKind, Size, Trigger, next_state, webhook_event};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteRow {
    pub id: String,
    pub kind: SiteKind,
    pub name: String,
    pub address: String,
    pub lat: f64,
    pub lon: f64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl SiteRow {
    fn from_row(r: &AnyRow) -> Result<SiteRow, StoreError> {
        Ok(SiteRow {
            id: r.try_get("site_id")?,
            kind: super::parse_col("site kind", r.try_get("kind")?, SiteKind::parse)?,
            name: r.try_get("name")?,
            address: r.try_get("address")?,
            lat: r.try_get("lat")?,
            lon: r.try_get("lon")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BoxConfig {
    #[serde(rename = "box")]
    pub box_no: i64,
    pub size: String,
    pub accessible: bool,
    pub in_service: bool,
    pub service_note: Option<String>,
}

/// A box as operators see it: configuration, sensors and the item holding it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BoxView {
    #[serde(flatten)]
    pub config: BoxConfig,
    /// free, reserved, occupied or out_of_service.
    #[schema(value_type = String)]
    pub state: &'static str,
    pub door_open: Option<bool>,
    pub item: Option<ItemRow>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemRow {
    pub id: String,
    pub flow: String,
    pub case_number: String,
    /// Masked: the full number stays in the database for SMS.
    pub phone: String,
    #[serde(skip)]
    pub phone_full: String,
    pub site_id: String,
    pub device_id: String,
    #[serde(rename = "box")]
    pub box_no: i64,
    pub size: String,
    pub state: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub valid_from: i64,
    pub valid_until: i64,
    pub deadline: Option<i64>,
    pub due_by: Option<i64>,
    pub in_box_at: Option<i64>,
    pub deposited_by: Option<String>,
    pub finished_at: Option<i64>,
    pub finished_by: Option<String>,
    pub late_deposit: bool,
    #[serde(skip)]
    pub reminded_at: Option<i64>,
}

const ITEM_COLS: &str =
    "item_id, flow, case_number, phone, site_id, device_id, box_no, size, state,
    created_by, created_at, updated_at, valid_from, valid_until, deadline, due_by, in_box_at,
    deposited_by, finished_at, finished_by, late_deposit, reminded_at";

impl ItemRow {
    fn from_row(r: &AnyRow) -> Result<ItemRow, StoreError> {
        let phone: String = r.try_get("phone")?;
        Ok(ItemRow {
            id: r.try_get("item_id")?,
            flow: r.try_get("flow")?,
            case_number: r.try_get("case_number")?,
            phone: domain::flows::mask_phone(&phone),
            phone_full: phone,
            site_id: r.try_get("site_id")?,
            device_id: r.try_get("device_id")?,
            box_no: r.try_get("box_no")?,
            size: r.try_get("size")?,
            state: r.try_get("state")?,
            created_by: r.try_get("created_by")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            valid_from: r.try_get("valid_from")?,
            valid_until: r.try_get("valid_until")?,
            deadline: r.try_get("deadline")?,
            due_by: r.try_get("due_by")?,
            in_box_at: r.try_get("in_box_at")?,
            deposited_by: r.try_get("deposited_by")?,
            finished_at: r.try_get("finished_at")?,
            finished_by: r.try_get("finished_by")?,
            late_deposit: r.try_get::<i64, _>("late_deposit")? != 0,
            reminded_at: r.try_get("reminded_at")?,
        })
    }

    pub fn flow(&self) -> Result<Flow, StoreError> {
        Flow::parse(&self.flow).ok_or_else(|| {
            StoreError::Corrupt(format!("item {} has flow {:?}", self.id, self.flow))
        })
    }

    pub fn state(&self) -> Result<ItemState, StoreError> {
        ItemState::parse(&self.state).ok_or_else(|| {
            StoreError::Corrupt(format!("item {} has state {:?}", self.id, self.state))
        })
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryRow {
    pub at: i64,
    pub state: String,
    pub actor: String,
    pub detail: Option<String>,
}

/// A reservation to store, with everything computed but the box.
pub struct NewItem {
    pub id: ItemId,
    pub flow: Flow,
    pub case_number: String,
    pub phone: String,
    pub size: Size,
    pub accessible: bool,
    pub created_by: String,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub valid_from: i64,
    pub valid_until: i64,
    pub deadline: Option<i64>,
    pub due_by: Option<i64>,
}

/// Where a reservation may go: sites in order of preference, or one cabinet.
pub struct Placement {
    pub sites: Vec<String>,
    pub device: Option<DeviceId>,
}

/// What the service issues once the box is known: the code's tag and the SMS to send.
pub struct Issued {
    pub code_tag: String,
    /// Sealed SMS body; held until deposit for pick-ups.
    pub sms_sealed: String,
}

pub struct Allocated {
    pub item: ItemRow,
}

/// A notification due for sending.
#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub id: String,
    pub channel: String,
    pub item_id: Option<String>,
    pub event: String,
    pub body: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
}

/// What an ingest transaction changed besides events: the service acts on it after commit.
#[derive(Debug, Default)]
pub struct Effects {
    /// Cabinets whose code grants changed.
    pub codes_changed: Vec<DeviceId>,
    /// New notifications are waiting.
    pub notify: bool,
}

/// Which cabinets a time-up sweep may judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Only cabinets online for longer than the grace: a code used offline may still be on
    /// its way from the others (the live server).
    Live,
    /// Every cabinet, as online throughout: a history written at its own times
    /// (`crate::backfill`), where no cabinet is connected yet and none was ever offline.
    Assumed,
}

/// How far a cabinet's clock may lag the server's before a staff open is judged older than
/// the item in its box.
const STAFF_OPEN_SKEW_MS: i64 = 60_000;

/// The SQL `CASE` giving a size its rank, for "smallest fitting box first".
const SIZE_RANK: &str = "CASE b.size WHEN 'S' THEN 0 WHEN 'M' THEN 1 ELSE 2 END";

impl Store {
    // ------------------------------------------------------------------------- sites

    /// Creates or replaces a site; `true` when it was new.
    pub async fn upsert_site(&self, s: &SiteRow, actor: &str) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let existed: Option<String> =
            sqlx::query_scalar("SELECT site_id FROM sites WHERE site_id = $1")
                .bind(&s.id)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO sites (site_id, kind, name, address, lat, lon, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             ON CONFLICT (site_id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
               address = excluded.address, lat = excluded.lat, lon = excluded.lon,
               updated_at = excluded.updated_at",
        )
        .bind(&s.id)
        .bind(s.kind.as_str())
        .bind(&s.name)
        .bind(&s.address)
        .bind(s.lat)
        .bind(s.lon)
        .bind(s.updated_at)
        .execute(&mut *tx)
        .await?;
        let what = format!(
            "site {} {:?} ({}) at {}, {}",
            s.id, s.name, s.kind, s.lat, s.lon
        );
        let action = if existed.is_none() {
            "site_created"
        } else {
            "site_changed"
        };
        admin_audit(&mut tx, s.updated_at, actor, action, None, None, &what).await?;
        tx.commit().await?;
        Ok(existed.is_none())
    }

    pub async fn sites(&self) -> Result<Vec<SiteRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT site_id, kind, name, address, lat, lon, created_at, updated_at
             FROM sites ORDER BY site_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SiteRow::from_row).collect()
    }

    pub async fn site(&self, id: &str) -> Result<Option<SiteRow>, StoreError> {
        let row = sqlx::query(
            "SELECT site_id, kind, name, address, lat, lon, created_at, updated_at
             FROM sites WHERE site_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(SiteRow::from_row).transpose()
    }

    // ------------------------------------------------------------------------- cabinets

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
        let mut tx = self.writer.begin().await?;
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

const CABINET_SELECT: &str = "SELECT c.device_id, c.site_id, c.name, c.codes_version,
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
                    size: r.try_get("size")?,
                    accessible: r.try_get::<i64, _>("accessible")? != 0,
                    in_service: r.try_get::<i64, _>("in_service")? != 0,
                    service_note: r.try_get("service_note")?,
                };
                let item = items.iter().find(|i| i.box_no == config.box_no).cloned();
                let state = match (&item, config.in_service) {
                    (Some(i), _) if i.state == "in_box" || i.state == "overdue" => "occupied",
                    (Some(_), _) => "reserved",
                    (None, false) => "out_of_service",
                    (None, true) => "free",
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

    // ------------------------------------------------------------------------- staff

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
        let mut tx = self.writer.begin().await?;
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
        let mut tx = self.writer.begin().await?;
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

    // ------------------------------------------------------------------------- reservations

    /// Allocates the smallest free box that fits, in the sites' order, on an online cabinet
    /// where there is one (an offline cabinet gets the code only when it reconnects), and
    /// stores the item with its history and SMS in one transaction. `None` when nothing is free (recorded
    /// as unmet demand).
    pub async fn reserve(
        &self,
        item: &NewItem,
        placement: &Placement,
        issue: impl Fn(&DeviceId, BoxNo) -> Result<Issued, StoreError>,
    ) -> Result<Option<Allocated>, StoreError> {
        // PostgreSQL: two requests may pick the same box; the unique index refuses the
        // second, which tries again with what is left.
        for _attempt in 0..5 {
            match self.try_reserve(item, placement, &issue).await {
                Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => {
                    if let Some(key) = &item.idempotency_key
                        && self.item_by_key(&item.created_by, key).await?.is_some()
                    {
                        return Err(StoreError::Conflict(format!(
                            "idempotency key {key:?} was already used for another reservation"
                        )));
                    }
                    continue;
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict(
            "boxes are being allocated concurrently; retry".into(),
        ))
    }

    async fn try_reserve(
        &self,
        item: &NewItem,
        placement: &Placement,
        issue: &impl Fn(&DeviceId, BoxNo) -> Result<Issued, StoreError>,
    ) -> Result<Option<Allocated>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let sizes: Vec<&str> = item.size.and_larger().map(Size::as_str).collect();
        let mut found = None;
        for site in &placement.sites {
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT b.device_id, b.box_no, b.size FROM box_config b
                 JOIN cabinets c ON c.device_id = b.device_id
                 LEFT JOIN devices d ON d.device_id = b.device_id
                 WHERE c.site_id = $1 AND ($2 IS NULL OR b.device_id = $2) AND b.in_service = 1
                   AND b.size IN ($3, $4, $5) AND ($6 = 0 OR b.accessible = 1)
                   AND NOT EXISTS (SELECT 1 FROM items i WHERE i.device_id = b.device_id
                                   AND i.box_no = b.box_no AND i.holds_box = 1)
                 ORDER BY COALESCE(d.online, 0) DESC, {SIZE_RANK}, b.accessible, b.device_id, b.box_no
                 LIMIT 1"
            )))
            .bind(site)
            .bind(placement.device.as_ref().map(|d| d.as_str()))
            .bind(sizes.first().copied().unwrap_or("L"))
            .bind(sizes.get(1).copied().unwrap_or("L"))
            .bind(sizes.get(2).copied().unwrap_or("L"))
            .bind(i64::from(item.accessible))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = row {
                let device: String = r.try_get("device_id")?;
                let box_no: i64 = r.try_get("box_no")?;
                let size: String = r.try_get("size")?;
                found = Some((site.clone(), device, box_no, size));
                break;
            }
        }
        let Some((site, device, box_no, size)) = found else {
            sqlx::query(
                "INSERT INTO unmet_demand (at, site_id, device_id, flow, size, reason)
                 VALUES ($1, $2, $3, $4, $5, 'no_free_box')",
            )
            .bind(item.created_at)
            .bind(placement.sites.first().map(String::as_str))
            .bind(placement.device.as_ref().map(|d| d.as_str()))
            .bind(item.flow.as_str())
            .bind(item.size.as_str())
            .execute(&mut *tx)
            .await?;
            let place = usage::Place {
                site: placement.sites.first().map(String::as_str),
                device: placement.device.as_ref().map(|d| d.as_str()),
                box_no: None,
            };
            usage::apply(
                &mut tx,
                place,
                &[usage::Op::Unmet {
                    at: item.created_at,
                }],
            )
            .await?;
            tx.commit().await?;
            return Ok(None);
        };
        let device_id = DeviceId::parse(&device)
            .map_err(|e| StoreError::Corrupt(format!("cabinet id {device:?}: {e}")))?;
        let b = u16::try_from(box_no)
            .ok()
            .and_then(|n| BoxNo::new(n).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("box {box_no} of {device}")))?;
        let issued = issue(&device_id, b)?;
        let state = match item.flow {
            Flow::Pickup => ItemState::AwaitingDeposit,
            Flow::Dropoff | Flow::Supplement => ItemState::Reserved,
        };
        sqlx::query(
            "INSERT INTO items (item_id, flow, case_number, phone, site_id, device_id, box_no, size,
                state, holds_box, created_by, idempotency_key, created_at, updated_at, valid_from,
                valid_until, deadline, due_by, code_tag)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11, $12, $12, $13, $14, $15, $16, $17)",
        )
        .bind(item.id.as_str())
        .bind(item.flow.as_str())
        .bind(&item.case_number)
        .bind(&item.phone)
        .bind(&site)
        .bind(&device)
        .bind(box_no)
        .bind(&size)
        .bind(state.as_str())
        .bind(&item.created_by)
        .bind(item.idempotency_key.as_deref())
        .bind(item.created_at)
        .bind(item.valid_from)
        .bind(item.valid_until)
        .bind(item.deadline)
        .bind(item.due_by)
        .bind(&issued.code_tag)
        .execute(&mut *tx)
        .await?;
        history(
            &mut tx,
            item.id.as_str(),
            item.created_at,
            state,
            &item.created_by,
            None,
        )
        .await?;
        // The code SMS goes now for drop-offs; for pick-ups it waits until staff have loaded
        // the box ("held"), and is released by the deposit.
        let sms_state = if item.flow == Flow::Pickup {
            "held"
        } else {
            "pending"
        };
        enqueue(
            &mut tx,
            "sms",
            Some(item.id.as_str()),
            "code",
            Some(&issued.sms_sealed),
            sms_state,
            item.created_at,
        )
        .await?;
        bump_codes(&mut tx, &device, item.created_at).await?;
        tx.commit().await?;
        let item = self
            .item(item.id.as_str())
            .await?
            .ok_or_else(|| StoreError::Corrupt("reserved item vanished".into()))?;
        Ok(Some(Allocated { item }))
    }

    pub async fn item_by_key(
        &self,
        created_by: &str,
        key: &str,
    ) -> Result<Option<ItemRow>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ITEM_COLS} FROM items WHERE created_by = $1 AND idempotency_key = $2"
        )))
        .bind(created_by)
        .bind(key)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(ItemRow::from_row).transpose()
    }

    pub async fn item(&self, id: &str) -> Result<Option<ItemRow>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ITEM_COLS} FROM items WHERE item_id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(ItemRow::from_row).transpose()
    }

    pub async fn item_history(&self, id: &str) -> Result<Vec<HistoryRow>, StoreError> {
        self.read_history(History::Item, id).await
    }

    /// Items by case number and/or state, newest first.
    pub async fn items(
        &self,
        case_number: Option<&str>,
        state: Option<&str>,
        sites: Sites<'_>,
        limit: i64,
    ) -> Result<Vec<ItemRow>, StoreError> {
        let rows = bind_sites(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {ITEM_COLS} FROM items WHERE ($1 IS NULL OR case_number = $1)
                   AND ($2 IS NULL OR state = $2) AND {}
                 ORDER BY created_at DESC, item_id LIMIT $3",
                sites_sql("site_id", 4, sites)
            )))
            .bind(case_number)
            .bind(state)
            .bind(limit),
            sites,
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ItemRow::from_row).collect()
    }

    /// Applies `trigger` to an item from outside the ingest path (cancel, sweeps).
    /// Returns the new state, or `None` when the item is unknown or the trigger does not
    /// apply to its state. Webhooks are queued only where the server has a webhook URL.
    pub async fn trigger_item(
        &self,
        id: &str,
        trigger: Trigger,
        actor: &str,
        detail: Option<&str>,
        now: i64,
    ) -> Result<Option<(ItemState, Effects)>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ITEM_COLS} FROM items WHERE item_id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(item) = row.as_ref().map(ItemRow::from_row).transpose()? else {
            return Ok(None);
        };
        let mut effects = Effects::default();
        let to = transition(
            &mut tx,
            &item,
            trigger,
            actor,
            detail,
            now,
            self.webhooks,
            &mut effects,
        )
        .await?;
        tx.commit().await?;
        Ok(to.map(|s| (s, effects)))
    }

    // ------------------------------------------------------------------------- sweeps

    /// Items whose window has passed, on cabinets that have been online long enough for any
    /// code used while offline to have arrived (see ARCHITECTURE.md, "time-up").
    pub async fn items_timed_out(
        &self,
        now: i64,
        grace_ms: i64,
        limit: i64,
        presence: Presence,
    ) -> Result<Vec<ItemRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ITEM_COLS} FROM items i
             WHERE i.state IN ('reserved', 'awaiting_deposit', 'in_box')
               AND NOT (i.state = 'in_box' AND i.flow <> 'pickup')
               AND i.valid_until + $1 < $2
               AND ($4 = 1 OR EXISTS (SELECT 1 FROM devices d WHERE d.device_id = i.device_id
                           AND d.online = 1 AND d.presence_changed_at + $1 < $2))
             ORDER BY i.valid_until LIMIT $3"
        )))
        .bind(grace_ms)
        .bind(now)
        .bind(limit)
        .bind(i64::from(presence == Presence::Assumed))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ItemRow::from_row).collect()
    }

    /// Flags pick-ups not deposited by their day's end; returns the items newly flagged.
    pub async fn flag_late_deposits(&self, now: i64) -> Result<Vec<ItemRow>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let items = items_where(
            &mut tx,
            "state = 'awaiting_deposit' AND late_deposit = 0 AND due_by IS NOT NULL AND due_by < $1",
            &[now],
        )
        .await?;
        for i in &items {
            sqlx::query("UPDATE items SET late_deposit = 1, updated_at = $1 WHERE item_id = $2")
                .bind(now)
                .bind(&i.id)
                .execute(&mut *tx)
                .await?;
            history_detail(
                &mut tx,
                &i.id,
                now,
                &i.state,
                "system",
                Some("not deposited on its day (same-day rule)"),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(items)
    }

    /// Pick-ups in the box whose window ends within `before_ms` and that were not reminded:
    /// queues one reminder SMS each.
    pub async fn queue_reminders(
        &self,
        now: i64,
        before_ms: i64,
        body: impl Fn(&ItemRow) -> String,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let items = items_where(
            &mut tx,
            "state = 'in_box' AND flow = 'pickup' AND reminded_at IS NULL AND valid_until - $1 < $2",
            &[before_ms, now],
        )
        .await?;
        for i in &items {
            sqlx::query("UPDATE items SET reminded_at = $1 WHERE item_id = $2")
                .bind(now)
                .bind(&i.id)
                .execute(&mut *tx)
                .await?;
            enqueue(
                &mut tx,
                "sms",
                Some(&i.id),
                "reminder",
                Some(&body(i)),
                "pending",
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(items.len() as u64)
    }

    // ------------------------------------------------------------------------- work lists

    /// Dropped documents and supplements waiting for staff, oldest first.
    pub async fn worklist_collect(&self, sites: Sites<'_>) -> Result<Vec<ItemRow>, StoreError> {
        self.worklist(
            "state = 'in_box' AND flow IN ('dropoff', 'supplement')",
            "in_box_at",
            sites,
        )
        .await
    }

    /// Pick-ups waiting for staff to load their box, the earliest due first.
    pub async fn worklist_deposit(&self, sites: Sites<'_>) -> Result<Vec<ItemRow>, StoreError> {
        self.worklist("state = 'awaiting_deposit'", "due_by", sites)
            .await
    }

    /// Items past their time: overdue ones, late deposits, and drop-offs waiting for
    /// collection since before `collect_before`.
    pub async fn worklist_overdue(
        &self,
        sites: Sites<'_>,
        collect_before: i64,
    ) -> Result<Vec<ItemRow>, StoreError> {
        let rows = bind_sites(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {ITEM_COLS} FROM items WHERE {} AND (
                    (state = 'overdue')
                    OR (state = 'awaiting_deposit' AND late_deposit = 1)
                    OR (state = 'in_box' AND flow <> 'pickup' AND in_box_at < $1))
                 ORDER BY updated_at, item_id LIMIT 10000",
                sites_sql("site_id", 2, sites)
            )))
            .bind(collect_before),
            sites,
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ItemRow::from_row).collect()
    }

    async fn worklist(
        &self,
        condition: &str,
        order: &str,
        sites: Sites<'_>,
    ) -> Result<Vec<ItemRow>, StoreError> {
        let rows = bind_sites(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {ITEM_COLS} FROM items WHERE {condition} AND {}
                 ORDER BY {order}, item_id LIMIT 10000",
                sites_sql("site_id", 1, sites)
            ))),
            sites,
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ItemRow::from_row).collect()
    }

    /// Reservations refused for lack of a free box, per site (planners read this).
    pub async fn unmet_demand(&self, since: i64) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT site_id, COUNT(*) AS n FROM unmet_demand WHERE at >= $1 GROUP BY site_id ORDER BY site_id",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("site_id")?, r.try_get("n")?)))
            .collect()
    }

    // ------------------------------------------------------------------------- code sync

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
    ) -> Result<Option<(i64, Vec<CodeGrant>, Vec<StaffCredential>)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(cab) =
            sqlx::query("SELECT site_id, codes_version FROM cabinets WHERE device_id = $1")
                .bind(device.as_str())
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(None);
        };
        let site: String = cab.try_get("site_id")?;
        let version: i64 = cab.try_get("codes_version")?;
        let rows = sqlx::query(
            "SELECT item_id, box_no, valid_from, valid_until, code_tag, state FROM items
             WHERE device_id = $1 AND code_tag IS NOT NULL AND (
               (flow IN ('dropoff', 'supplement') AND state = 'reserved')
               OR (flow = 'pickup' AND state IN ('awaiting_deposit', 'in_box')))
             ORDER BY item_id",
        )
        .bind(device.as_str())
        .fetch_all(&mut *tx)
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
            });
        }
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
        Ok(Some((version, grants, staff)))
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

    // ------------------------------------------------------------------------- notifications

    pub async fn due_notifications(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT notification_id, channel, item_id, event, body, attempts, created_at
             FROM notifications WHERE state = 'pending' AND next_attempt_at <= $1
             ORDER BY next_attempt_at, notification_id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NotificationRow {
                    id: r.try_get("notification_id")?,
                    channel: r.try_get("channel")?,
                    item_id: r.try_get("item_id")?,
                    event: r.try_get("event")?,
                    body: r.try_get("body")?,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Marks a notification sent and wipes its body (it may have held a code).
    pub async fn notification_sent(&self, id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE notifications SET state = 'sent', sent_at = $1, body = NULL,
               attempts = attempts + 1, last_error = NULL WHERE notification_id = $2",
        )
        .bind(at)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Marks every notification due by `until` sent at the time it fell due, bodies wiped:
    /// for a history written at its own times, whose people had their SMS then.
    pub async fn notifications_sent_when_due(&self, until: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE notifications SET state = 'sent', sent_at = next_attempt_at, body = NULL,
               attempts = attempts + 1, last_error = NULL
             WHERE state = 'pending' AND next_attempt_at <= $1",
        )
        .bind(until)
        .execute(&self.writer)
        .await?
        .rows_affected())
    }

    /// Records a failed attempt: retried at `next`, or given up (`failed`, body wiped).
    pub async fn notification_failed(
        &self,
        id: &str,
        error: &str,
        next: Option<i64>,
    ) -> Result<(), StoreError> {
        let q = match next {
            Some(_) => {
                "UPDATE notifications SET attempts = attempts + 1, last_error = $1,
                   next_attempt_at = $2 WHERE notification_id = $3"
            }
            None => {
                "UPDATE notifications SET attempts = attempts + 1, last_error = $1,
                   state = 'failed', body = NULL, next_attempt_at = COALESCE($2, next_attempt_at)
                 WHERE notification_id = $3"
            }
        };
        sqlx::query(q)
            .bind(error)
            .bind(next)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Counts of notifications by state (metrics and tests).
    pub async fn notification_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT channel, state, COUNT(*) AS n FROM notifications GROUP BY channel, state ORDER BY channel, state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("channel")?, r.try_get("state")?, r.try_get("n")?)))
            .collect()
    }

    // ------------------------------------------------------------------------- history

    /// Applies one keypad event of `device` as if it had arrived at `at` (the cabinet's own
    /// time too), with no event row: a history written at its own times (`crate::backfill`)
    /// must not take sequence numbers the real agent will use. The same rules as ingest.
    pub async fn apply_keypad_event_at(
        &self,
        device: &DeviceId,
        body: &EventBody,
        at: i64,
    ) -> Result<Effects, StoreError> {
        if !is_keypad_event(body) {
            return Err(StoreError::Invalid(format!(
                "a {} event is not a keypad event; only keypad, code and fault events can be \
                 applied outside ingest",
                body.kind()
            )));
        }
        let mut tx = self.writer.begin().await?;
        let mut effects = Effects::default();
        Store::apply_keypad_event(&mut tx, device, at, body, at, self.webhooks, &mut effects)
            .await?;
        tx.commit().await?;
        Ok(effects)
    }

    /// The latest time anything happened to an item or a refused reservation: where a history
    /// load resumes on a database that already has one.
    pub async fn latest_item_activity(&self) -> Result<Option<i64>, StoreError> {
        let items: Option<i64> = sqlx::query_scalar("SELECT MAX(updated_at) FROM items")
            .fetch_one(&self.pool)
            .await?;
        let unmet: Option<i64> = sqlx::query_scalar("SELECT MAX(at) FROM unmet_demand")
            .fetch_one(&self.pool)
            .await?;
        Ok(items.max(unmet))
    }

    // ------------------------------------------------------------------------- ingest hook

    /// Applies one *new* keypad event of `device` inside the ingest transaction: item
    /// transitions, audit, notifications and code versions. Called once per stored event.
    pub(super) async fn apply_keypad_event(
        tx: &mut Tx<'_>,
        device: &DeviceId,
        ts: i64,
        body: &EventBody,
        now: i64,
        webhooks: bool,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        match body {
            EventBody::CodeUsed {
                item,
                box_no,
                status,
            } => {
                let status = format!("{status:?}").to_lowercase();
                audit(
                    tx,
                    ts,
                    "keypad",
                    "code_open",
                    device,
                    Some(*box_no),
                    Some(item.as_str()),
                    &status,
                    None,
                )
                .await?;
                let row = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {ITEM_COLS} FROM items WHERE item_id = $1 AND device_id = $2"
                )))
                .bind(item.as_str())
                .bind(device.as_str())
                .fetch_optional(&mut **tx)
                .await?;
                match row.as_ref().map(ItemRow::from_row).transpose()? {
                    Some(i) => {
                        let detail = format!("code used at the cabinet (lock: {status})");
                        let to = transition(
                            tx,
                            &i,
                            Trigger::CodeUsed,
                            "citizen",
                            Some(&detail),
                            now,
                            webhooks,
                            effects,
                        )
                        .await?;
                        if to.is_none() {
                            tracing::warn!(%device, item = %i.id, state = %i.state,
                                "code used for an item not waiting for it; recorded in its history");
                            history_detail(
                                tx,
                                &i.id,
                                now,
                                &i.state,
                                "citizen",
                                Some(&format!(
                                    "code used at {ts} while the item was {}; no change",
                                    i.state
                                )),
                            )
                            .await?;
                        }
                    }
                    None => {
                        tracing::warn!(%device, %item, "code used for an item this cabinet does not hold")
                    }
                }
            }
            EventBody::CodeRejected { reason, item } => {
                audit(
                    tx,
                    ts,
                    "keypad",
                    "code_rejected",
                    device,
                    None,
                    item.as_ref().map(|i| i.as_str()),
                    reason.as_str(),
                    None,
                )
                .await?;
            }
            EventBody::KeypadLocked { until, failures } => {
                audit(
                    tx,
                    ts,
                    "keypad",
                    "keypad_locked",
                    device,
                    None,
                    None,
                    "locked",
                    Some(&format!("{failures} wrong entries; locked until {until}")),
                )
                .await?;
            }
            EventBody::StaffRejected { reason } => {
                audit(
                    tx,
                    ts,
                    "keypad",
                    "staff_rejected",
                    device,
                    None,
                    None,
                    reason.as_str(),
                    None,
                )
                .await?;
            }
            EventBody::StaffOpen {
                staff,
                box_no,
                status,
            } => {
                let actor = format!("staff:{staff}");
                let status = format!("{status:?}").to_lowercase();
                let row = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {ITEM_COLS} FROM items WHERE device_id = $1 AND box_no = $2 AND holds_box = 1"
                )))
                .bind(device.as_str())
                .bind(i64::from(box_no.get()))
                .fetch_optional(&mut **tx)
                .await?;
                let item = row.as_ref().map(ItemRow::from_row).transpose()?;
                audit(
                    tx,
                    ts,
                    &actor,
                    "staff_open",
                    device,
                    Some(*box_no),
                    item.as_ref().map(|i| i.id.as_str()),
                    &status,
                    None,
                )
                .await?;
                // A staff open that happened offline before this item was reserved (the box
                // looked free to the server) is not about this item. The times come from two
                // clocks: allow them a minute of disagreement.
                let item = match item {
                    Some(i) if ts + STAFF_OPEN_SKEW_MS < i.created_at => {
                        tracing::warn!(%device, r#box = %box_no, item = %i.id, opened_at = ts,
                            reserved_at = i.created_at, "staff open older than the item in the box; not applied to it");
                        None
                    }
                    other => other,
                };
                if let Some(i) = item {
                    let detail = format!("opened by {staff} at the cabinet (lock: {status})");
                    if transition(
                        tx,
                        &i,
                        Trigger::StaffOpen,
                        &actor,
                        Some(&detail),
                        now,
                        webhooks,
                        effects,
                    )
                    .await?
                    .is_none()
                    {
                        history_detail(tx, &i.id, now, &i.state, &actor, Some(&detail)).await?;
                    }
                }
            }
            EventBody::Fault {
                box_no,
                fault,
                active,
                evidence,
            } => {
                Store::apply_fault(tx, device, *box_no, *fault, *active, evidence, ts, now).await?;
            }
            EventBody::CodesApplied { version } => {
                sqlx::query(
                    "UPDATE cabinets SET codes_applied = CASE WHEN $1 > codes_applied THEN $1 ELSE codes_applied END
                     WHERE device_id = $2",
                )
                .bind(i64::try_from(*version).unwrap_or(i64::MAX))
                .bind(device.as_str())
                .execute(&mut **tx)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Items matching `condition` (SQL with `$1..` bound to `binds`), inside a transaction.
async fn items_where(
    tx: &mut Tx<'_>,
    condition: &str,
    binds: &[i64],
) -> Result<Vec<ItemRow>, StoreError> {
    let mut q = sqlx::query(AssertSqlSafe(format!(
        "SELECT {ITEM_COLS} FROM items WHERE {condition}"
    )));
    for b in binds {
        q = q.bind(*b);
    }
    let rows = q.fetch_all(&mut **tx).await?;
    rows.iter().map(ItemRow::from_row).collect()
}

/// Whether an event is one [`Store::apply_keypad_event`] acts on (keypad, code and fault
/// events: each changes items or alarms, so each is applied once, when new).
pub(super) fn is_keypad_event(body: &EventBody) -> bool {
    matches!(
        body,
        EventBody::CodeUsed { .. }
            | EventBody::CodeRejected { .. }
            | EventBody::KeypadLocked { .. }
            | EventBody::StaffOpen { .. }
            | EventBody::StaffRejected { .. }
            | EventBody::CodesApplied { .. }
            | EventBody::Fault { .. }
    )
}

/// Moves an item along the state machine, guarded on its current state, with history,
/// webhook and code version. `None` when the trigger does not apply.
#[allow(clippy::too_many_arguments)]
async fn transition(
    tx: &mut Tx<'_>,
    item: &ItemRow,
    trigger: Trigger,
    actor: &str,
    detail: Option<&str>,
    now: i64,
    webhooks: bool,
    effects: &mut Effects,
) -> Result<Option<ItemState>, StoreError> {
    let (flow, from) = (item.flow()?, item.state()?);
    let Some(to) = next_state(flow, from, trigger) else {
        return Ok(None);
    };
    let in_box = to == ItemState::InBox;
    let deposited = in_box && flow == Flow::Pickup;
    let finished = to.is_final();
    let n = sqlx::query(
        "UPDATE items SET state = $1, holds_box = $2, updated_at = $3,
           in_box_at = CASE WHEN $4 = 1 THEN $3 ELSE in_box_at END,
           deposited_by = CASE WHEN $5 = 1 THEN $6 ELSE deposited_by END,
           finished_at = CASE WHEN $7 = 1 THEN $3 ELSE finished_at END,
           finished_by = CASE WHEN $7 = 1 THEN $6 ELSE finished_by END
         WHERE item_id = $8 AND state = $9",
    )
    .bind(to.as_str())
    .bind(i64::from(to.holds_box(flow)))
    .bind(now)
    .bind(i64::from(in_box))
    .bind(i64::from(deposited))
    .bind(actor)
    .bind(i64::from(finished))
    .bind(&item.id)
    .bind(from.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(None);
    }
    history(tx, &item.id, now, to, actor, detail).await?;
    let ops = usage::item_ops(flow, from, to, item.created_at, item.in_box_at, now);
    if !ops.is_empty() {
        let place = usage::Place {
            site: Some(&item.site_id),
            device: Some(&item.device_id),
            box_no: Some(item.box_no),
        };
        usage::apply(tx, place, &ops).await?;
    }
    if deposited {
        // The code SMS was held until the licence is in the box.
        let released = sqlx::query(
            "UPDATE notifications SET state = 'pending', next_attempt_at = $1
             WHERE item_id = $2 AND state = 'held'",
        )
        .bind(now)
        .bind(&item.id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        effects.notify |= released > 0;
    }
    if finished || matches!(to, ItemState::Overdue) {
        // A terminal item never gets its held code SMS.
        sqlx::query("UPDATE notifications SET state = 'dropped', body = NULL WHERE item_id = $1 AND state = 'held'")
            .bind(&item.id)
            .execute(&mut **tx)
            .await?;
    }
    if webhooks && let Some(event) = webhook_event(flow, from, to) {
        let body = serde_json::json!({
            "event": event,
            "item_id": item.id,
            "case_number": item.case_number,
            "flow": item.flow,
            "state": to.as_str(),
            "site_id": item.site_id,
            "device_id": item.device_id,
            "box": item.box_no,
            "at": now,
            "actor": actor,
        })
        .to_string();
        enqueue(
            tx,
            "webhook",
            Some(&item.id),
            event,
            Some(&body),
            "pending",
            now,
        )
        .await?;
        effects.notify = true;
    }
    bump_codes(tx, &item.device_id, now).await?;
    if let Ok(d) = DeviceId::parse(&item.device_id)
        && !effects.codes_changed.contains(&d)
    {
        effects.codes_changed.push(d);
    }
    Ok(Some(to))
}

async fn history(
    tx: &mut Tx<'_>,
    item: &str,
    at: i64,
    state: ItemState,
    actor: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    history_detail(tx, item, at, state.as_str(), actor, detail).await
}

async fn history_detail(
    tx: &mut Tx<'_>,
    item: &str,
    at: i64,
    state: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    write_history(tx, History::Item, item, at, state, actor, detail).await
}

#[allow(clippy::too_many_arguments)]
async fn audit(
    tx: &mut Tx<'_>,
    ts: i64,
    actor: &str,
    action: &str,
    device: &DeviceId,
    box_no: Option<BoxNo>,
    item: Option<&str>,
    outcome: &str,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    super::audit::append(
        tx,
        &super::audit::AuditEntry {
            id: &id,
            ts,
            actor,
            action,
            device: Some(device.as_str()),
            box_no: box_no.map(|b| i64::from(b.get())),
            item,
            outcome: Some(outcome),
            reason,
            ..Default::default()
        },
    )
    .await
}

/// A configuration change by a person or token, in the same transaction as the change.
async fn admin_audit(
    tx: &mut Tx<'_>,
    ts: i64,
    actor: &str,
    action: &str,
    device: Option<&str>,
    box_no: Option<i64>,
    what: &str,
) -> Result<(), StoreError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    super::audit::append(
        tx,
        &super::audit::AuditEntry {
            id: &id,
            ts,
            actor,
            action,
            device,
            box_no,
            reason: Some(what),
            ..Default::default()
        },
    )
    .await
}

async fn enqueue(
    tx: &mut Tx<'_>,
    channel: &str,
    item: Option<&str>,
    event: &str,
    body: Option<&str>,
    state: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO notifications (notification_id, channel, item_id, event, body, state,
                                    created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(uuid::Uuid::new_v4().simple().to_string())
    .bind(channel)
    .bind(item)
    .bind(event)
    .bind(body)
    .bind(state)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A new code version for one cabinet: later than the last and than now, so versions keep
/// rising even across a database restore.
async fn bump_codes(tx: &mut Tx<'_>, device: &str, now: i64) -> Result<(), StoreError> {
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
async fn bump_site_codes(tx: &mut Tx<'_>, site: Option<&str>, now: i64) -> Result<(), StoreError> {
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

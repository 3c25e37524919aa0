//! Items: reservations and their placement in a box, cancellations, the sweeps (expiry,
//! overdue, reminders), the helpers' work lists, and every item transition with its history.

use domain::flows::{Flow, ItemState, Size, Trigger, next_state, webhook_event};
use protocol::{BoxNo, CodeGrant, DeviceId, EventBody, ItemId};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::flows::{Effects, Presence, Tx};
use super::{History, Sites, Store, StoreError, bind_sites, sites_sql, usage, write_history};
use super::{codes::bump_codes, effects::has_effects, notifications::enqueue};

/// A stored item, typed: the API maps it to `api_types::items::Item`.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    pub id: String,
    pub flow: Flow,
    pub case_number: String,
    /// Masked: the full number stays in the database for SMS.
    pub phone: String,
    pub phone_full: String,
    pub site_id: String,
    pub device_id: String,
    pub box_no: i64,
    pub size: Size,
    pub state: ItemState,
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
    pub reminded_at: Option<i64>,
}

pub(super) const ITEM_COLS: &str =
    "item_id, flow, case_number, phone, site_id, device_id, box_no, size, state,
    created_by, created_at, updated_at, valid_from, valid_until, deadline, due_by, in_box_at,
    deposited_by, finished_at, finished_by, late_deposit, reminded_at";

impl ItemRow {
    pub(super) fn from_row(r: &AnyRow) -> Result<ItemRow, StoreError> {
        let phone: String = r.try_get("phone")?;
        Ok(ItemRow {
            id: r.try_get("item_id")?,
            flow: super::parse_col("item flow", r.try_get("flow")?, Flow::parse)?,
            case_number: r.try_get("case_number")?,
            phone: domain::flows::mask_phone(&phone),
            phone_full: phone,
            site_id: r.try_get("site_id")?,
            device_id: r.try_get("device_id")?,
            box_no: r.try_get("box_no")?,
            size: super::parse_col("item size", r.try_get("size")?, Size::parse)?,
            state: super::parse_col("item state", r.try_get("state")?, ItemState::parse)?,
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
}

#[derive(Debug, Clone, PartialEq)]
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

/// The SQL `CASE` giving a size its rank, for "smallest fitting box first".
pub(super) const SIZE_RANK: &str = "CASE b.size WHEN 'S' THEN 0 WHEN 'M' THEN 1 ELSE 2 END";

impl Store {
    /// Allocates the smallest free box that fits, in the sites' order, on an online cabinet
    /// where there is one (an offline cabinet gets the code only when it reconnects), and
    /// stores the item with its history and SMS in one transaction. `None` when nothing is free (recorded
    /// as unmet demand).
    pub async fn reserve(
        &self,
        item: &NewItem,
        placement: &Placement,
        issue: impl Fn(&str, &DeviceId, BoxNo, &[CodeGrant]) -> Result<Issued, StoreError>,
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
        issue: &impl Fn(&str, &DeviceId, BoxNo, &[CodeGrant]) -> Result<Issued, StoreError>,
    ) -> Result<Option<Allocated>, StoreError> {
        let mut tx = self.begin_shared().await?;
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
        // The cabinet's grants as its next set will carry them, read in this transaction: the
        // new code must be accepted by none of them.
        let live = super::codes::live_grants(&mut tx, &device_id).await?;
        let issued = issue(&site, &device_id, b, &live)?;
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
        let mut tx = self.begin_shared().await?;
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
                i.state.as_str(),
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
        // An item rebuilt from a cabinet's grant after a restore has no phone to remind.
        let items = items_where(
            &mut tx,
            "state = 'in_box' AND flow = 'pickup' AND reminded_at IS NULL AND phone <> ''
             AND valid_until - $1 < $2",
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

    // ------------------------------------------------------------------------- history

    /// Applies one keypad event of `device` as if it had arrived at `at` (the cabinet's own
    /// time too), with no event row: a history written at its own times (`crate::backfill`)
    /// must not take sequence numbers the real agent will use. The same rules as ingest.
    pub async fn apply_event_effects_at(
        &self,
        device: &DeviceId,
        body: &EventBody,
        at: i64,
    ) -> Result<Effects, StoreError> {
        if !has_effects(body) {
            return Err(StoreError::Invalid(format!(
                "a {} event is not a keypad event; only keypad, code and fault events can be \
                 applied outside ingest",
                body.kind()
            )));
        }
        let mut tx = self.writer.begin().await?;
        let mut effects = Effects::default();
        Store::apply_event_effects(&mut tx, device, at, body, at, self.webhooks, &mut effects)
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
}

/// Items matching `condition` (SQL with `$1..` bound to `binds`), inside a transaction.
pub(super) async fn items_where(
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

/// Moves an item along the state machine, guarded on its current state, with history,
/// webhook and code version. `None` when the trigger does not apply.
#[allow(clippy::too_many_arguments)]
pub(super) async fn transition(
    tx: &mut Tx<'_>,
    item: &ItemRow,
    trigger: Trigger,
    actor: &str,
    detail: Option<&str>,
    now: i64,
    webhooks: bool,
    effects: &mut Effects,
) -> Result<Option<ItemState>, StoreError> {
    let (flow, from) = (item.flow, item.state);
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
    if let Ok(d) = DeviceId::parse(&item.device_id) {
        effects.codes_change(d);
    }
    Ok(Some(to))
}

pub(super) async fn history(
    tx: &mut Tx<'_>,
    item: &str,
    at: i64,
    state: ItemState,
    actor: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    history_detail(tx, item, at, state.as_str(), actor, detail).await
}

pub(super) async fn history_detail(
    tx: &mut Tx<'_>,
    item: &str,
    at: i64,
    state: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    write_history(tx, History::Item, item, at, state, actor, detail).await
}

//! What a cabinet says back when it applies a code set (`codes_applied.spent` and `.dropped`),
//! set against the items: after the server was restored from an older backup, the codes issued
//! since and the uses of codes since are on the cabinets only. Items the server still has move
//! as the lost events would have moved them; items it lost are rebuilt from the grant, so the
//! citizen's code keeps working and nothing is issued again. In the ingest transaction.

use domain::flows::{Flow, ItemState, Trigger, next_state};
use domain::keypad::ItemChange;
use protocol::{DeviceId, DroppedGrant, SpentCode};
use sqlx::{AssertSqlSafe, Row};

use super::StoreError;
use super::codes::bump_codes;
use super::effects::apply_change;
use super::flows::{Effects, Tx, audit};
use super::items::{ITEM_COLS, ItemRow, history_detail};

/// `created_by` of an item rebuilt from a cabinet's grant: the service platform that made it
/// knows it by its id; its case number and phone were lost with the server's copy.
pub const RECOVERED_BY: &str = "recovered";

/// A cabinet's answer to a set that asked (`report_since`): its `codes_applied` lists.
pub(super) struct Answer<'a> {
    pub version: u64,
    pub spent: &'a [SpentCode],
    pub dropped: &'a [DroppedGrant],
}

pub(super) async fn reconcile_codes(
    tx: &mut Tx<'_>,
    device: &DeviceId,
    answer: Answer<'_>,
    now: i64,
    webhooks: bool,
    effects: &mut Effects,
) -> Result<(), StoreError> {
    let Answer {
        version,
        spent,
        dropped,
    } = answer;
    for s in spent {
        if let Some(item) = item_of(tx, device, s.item.as_str()).await? {
            used_late(tx, &item, s.used_at, version, now, webhooks, effects).await?;
        }
    }
    for d in dropped {
        match item_of(tx, device, d.grant.item.as_str()).await? {
            // Left out on purpose (cancelled, expired, collected): only a use it missed counts.
            Some(item) => {
                if let Some(at) = d.used_at {
                    used_late(tx, &item, at, version, now, webhooks, effects).await?;
                }
            }
            None => recover(tx, device, d, version, now, effects).await?,
        }
    }
    Ok(())
}

async fn item_of(
    tx: &mut Tx<'_>,
    device: &DeviceId,
    item: &str,
) -> Result<Option<ItemRow>, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {ITEM_COLS} FROM items WHERE item_id = $1 AND device_id = $2"
    )))
    .bind(item)
    .bind(device.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(ItemRow::from_row).transpose()
}

/// A use the server never heard of, where the item still waits for it.
async fn used_late(
    tx: &mut Tx<'_>,
    item: &ItemRow,
    used_at: i64,
    version: u64,
    now: i64,
    webhooks: bool,
    effects: &mut Effects,
) -> Result<(), StoreError> {
    if next_state(item.flow, item.state, Trigger::CodeUsed).is_none() {
        return Ok(());
    }
    let change = ItemChange {
        trigger: Trigger::CodeUsed,
        actor: "citizen".into(),
        detail: format!(
            "code used at the cabinet at {used_at}, reported when it applied code set {version} \
             (the use's own event was lost, as after a restore from backup)"
        ),
        note_if_refused: format!(
            "code use at {used_at} reported with code set {version}; the item had moved on"
        ),
    };
    apply_change(tx, item, &change, now, webhooks, effects).await?;
    Ok(())
}

/// Rebuilds an item the server lost from the cabinet's grant: same id, box, window and code
/// tag (so the next code set carries the grant again and the citizen's code works), in the
/// state the cabinet knows.
async fn recover(
    tx: &mut Tx<'_>,
    device: &DeviceId,
    d: &DroppedGrant,
    version: u64,
    now: i64,
    effects: &mut Effects,
) -> Result<(), StoreError> {
    let g = &d.grant;
    let Some(site) = sqlx::query("SELECT site_id FROM cabinets WHERE device_id = $1")
        .bind(device.as_str())
        .fetch_optional(&mut **tx)
        .await?
    else {
        tracing::warn!(%device, item = %g.item, "a grant of a cabinet with no site: not recovered");
        return Ok(());
    };
    let site: String = site.try_get("site_id")?;
    let flow = if g.pickup {
        Flow::Pickup
    } else {
        Flow::Dropoff
    };
    let loaded = !g.needs_deposit || d.deposited;
    let state = match (flow, d.used_at) {
        (Flow::Pickup, Some(_)) => ItemState::PickedUp,
        (Flow::Pickup, None) if loaded => ItemState::InBox,
        (Flow::Pickup, None) => ItemState::AwaitingDeposit,
        (_, Some(_)) => ItemState::InBox,
        (_, None) => ItemState::Reserved,
    };
    let box_no = i64::from(g.box_no.get());
    // The box may be held by an item this (older) database still thinks is there: the
    // recovered one does not take it over; its history says so, for staff to look.
    let holder: Option<String> = sqlx::query(
        "SELECT item_id FROM items WHERE device_id = $1 AND box_no = $2 AND holds_box = 1",
    )
    .bind(device.as_str())
    .bind(box_no)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| r.try_get("item_id"))
    .transpose()?;
    let holds_box = state.holds_box(flow) && holder.is_none();
    let in_box_at = match state {
        ItemState::InBox if flow == Flow::Dropoff => d.used_at,
        ItemState::InBox | ItemState::PickedUp => Some(g.not_before),
        _ => None,
    };
    let finished_at = (state == ItemState::PickedUp)
        .then_some(d.used_at)
        .flatten();
    sqlx::query(
        "INSERT INTO items (item_id, flow, case_number, phone, site_id, device_id, box_no, size,
            state, holds_box, created_by, created_at, updated_at, valid_from, valid_until,
            code_tag, in_box_at, finished_at, finished_by)
         VALUES ($1, $2, '', '', $3, $4, $5,
            COALESCE((SELECT size FROM box_config WHERE device_id = $4 AND box_no = $5), 'M'),
            $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(g.item.as_str())
    .bind(flow.as_str())
    .bind(&site)
    .bind(device.as_str())
    .bind(box_no)
    .bind(state.as_str())
    .bind(i64::from(holds_box))
    .bind(RECOVERED_BY)
    .bind(now)
    .bind(g.not_before)
    .bind(g.not_after)
    .bind(&g.tag)
    .bind(in_box_at)
    .bind(finished_at)
    .bind(finished_at.map(|_| "citizen"))
    .execute(&mut **tx)
    .await?;
    let mut detail = format!(
        "rebuilt from cabinet {device}'s code grant (box {}, reported when it applied code set \
         {version}): the server's copy was older than the item, as after a restore from backup; \
         the code stays valid, nothing was issued again",
        g.box_no
    );
    if let Some(at) = d.used_at {
        detail.push_str(&format!("; code used at the cabinet at {at}"));
    }
    if let Some(other) = &holder {
        detail.push_str(&format!(
            "; box {} is held by item {other} in this database: check the box",
            g.box_no
        ));
    }
    history_detail(
        tx,
        g.item.as_str(),
        now,
        state.as_str(),
        RECOVERED_BY,
        Some(&detail),
    )
    .await?;
    audit(
        tx,
        now,
        "device",
        "item_recovered",
        device,
        Some(g.box_no),
        Some(g.item.as_str()),
        state.as_str(),
        Some(&detail),
    )
    .await?;
    tracing::warn!(%device, item = %g.item, state = state.as_str(), "item rebuilt from the cabinet's code grant");
    if state.holds_box(flow) || !state.is_final() {
        bump_codes(tx, device.as_str(), now).await?;
        effects.codes_change(device.clone());
    }
    Ok(())
}

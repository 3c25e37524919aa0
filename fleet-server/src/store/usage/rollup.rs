//! The hourly rollups kept in step with the change that causes them, inside its transaction:
//! an item's or an out-of-service box's interval is credited to the hours it spans when it
//! ends, and `rebuild` replays them all from history.

use sqlx::{AssertSqlSafe, Row};

use super::{HOUR_MS, StoreError, Tx};
use domain::flows::{Flow, ItemState};

/// Where a rollup change lands: the box, its cabinet and its site.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    pub site: Option<&'a str>,
    pub device: Option<&'a str>,
    pub box_no: Option<i64>,
}

/// One hour's change to a rollup row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub occupied_ms: i64,
    pub held_ms: i64,
    pub oos_ms: i64,
    pub uses: i64,
    pub unmet: i64,
}

/// What a change adds: an interval of a measure, or one count at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Occupied { from: i64, to: i64 },
    Held { from: i64, to: i64 },
    OutOfService { from: i64, to: i64 },
    Use { at: i64 },
    Unmet { at: i64 },
}

/// Whether an item in `state` is physically in its box (the occupancy rate's numerator).
pub fn in_box(flow: Flow, state: ItemState) -> bool {
    state.holds_box(flow) && matches!(state, ItemState::InBox | ItemState::Overdue)
}

/// The rollup operations of an item moving `from` → `to` at `now`: the single rule the live
/// path and the rebuild share.
pub(crate) fn item_ops(
    flow: Flow,
    from: ItemState,
    to: ItemState,
    held_since: i64,
    in_box_since: Option<i64>,
    now: i64,
) -> Vec<Op> {
    let mut ops = Vec::new();
    let (was_in, is_in) = (in_box(flow, from), in_box(flow, to));
    if !was_in && is_in {
        ops.push(Op::Use { at: now });
    }
    if was_in
        && !is_in
        && let Some(since) = in_box_since
    {
        ops.push(Op::Occupied {
            from: since,
            to: now,
        });
    }
    if from.holds_box(flow) && !to.holds_box(flow) {
        ops.push(Op::Held {
            from: held_since,
            to: now,
        });
    }
    ops
}

/// Splits `op` into per-hour deltas (hour start → delta).
pub(crate) fn split(op: Op) -> Vec<(i64, Delta)> {
    let interval = |from: i64, to: i64, set: fn(&mut Delta, i64)| {
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            let hour = t.div_euclid(HOUR_MS) * HOUR_MS;
            let end = (hour + HOUR_MS).min(to);
            let mut d = Delta::default();
            set(&mut d, end - t);
            out.push((hour, d));
            t = end;
        }
        out
    };
    let hour = |at: i64| at.div_euclid(HOUR_MS) * HOUR_MS;
    match op {
        Op::Occupied { from, to } => interval(from, to, |d, ms| d.occupied_ms = ms),
        Op::Held { from, to } => interval(from, to, |d, ms| d.held_ms = ms),
        Op::OutOfService { from, to } => interval(from, to, |d, ms| d.oos_ms = ms),
        Op::Use { at } => vec![(
            hour(at),
            Delta {
                uses: 1,
                ..Delta::default()
            },
        )],
        Op::Unmet { at } => vec![(
            hour(at),
            Delta {
                unmet: 1,
                ..Delta::default()
            },
        )],
    }
}

const SET_SUMS: &str = "occupied_ms = {t}.occupied_ms + excluded.occupied_ms,
    held_ms = {t}.held_ms + excluded.held_ms, oos_ms = {t}.oos_ms + excluded.oos_ms,
    uses = {t}.uses + excluded.uses, unmet = {t}.unmet + excluded.unmet";

/// Rows per upsert statement (8 parameters each), well below the databases' bind limits
/// and where `sqlx::Any`'s per-bind cost is still linear (BENCHMARKS.md, "Usage reports").
pub(super) const ROWS_PER_STATEMENT: usize = 250;

impl std::ops::AddAssign for Delta {
    fn add_assign(&mut self, d: Delta) {
        self.occupied_ms += d.occupied_ms;
        self.held_ms += d.held_ms;
        self.oos_ms += d.oos_ms;
        self.uses += d.uses;
        self.unmet += d.unmet;
    }
}

/// `ops` summed per hour: one row per hour, so that one statement never updates a row twice
/// (PostgreSQL refuses that).
pub(crate) fn merge(ops: &[Op]) -> Vec<(i64, Delta)> {
    let mut hours: std::collections::BTreeMap<i64, Delta> = Default::default();
    for op in ops {
        for (hour, d) in split(*op) {
            *hours.entry(hour).or_default() += d;
        }
    }
    hours.into_iter().collect()
}

/// Credits `ops` to the box, cabinet and site rollups of `place`, inside the caller's
/// transaction: one multi-row upsert per table (an item that sat in its box for two days
/// touches 48 hours; one statement per hour made it hundreds of statements).
pub(crate) async fn apply(tx: &mut Tx<'_>, place: Place<'_>, ops: &[Op]) -> Result<(), StoreError> {
    let rows = merge(ops);
    let kind = crate::store::DbKind::of(tx);
    // Table, key columns, and the key: an id, and a box number for the box table only.
    let tables = [
        (
            "usage_box_hour",
            "device_id, box_no",
            place.device.zip(place.box_no).map(|(d, b)| (d, Some(b))),
        ),
        (
            "usage_cabinet_hour",
            "device_id",
            place.device.map(|d| (d, None)),
        ),
        ("usage_site_hour", "site_id", place.site.map(|s| (s, None))),
    ];
    for (table, keys, key) in tables {
        let Some((id, box_no)) = key else { continue };
        let width = 7 + usize::from(box_no.is_some());
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = crate::store::multi_row(
                kind,
                &format!(
                    "INSERT INTO {table} ({keys}, hour, occupied_ms, held_ms, oos_ms, uses, unmet)
                     VALUES "
                ),
                width,
                chunk.len(),
                &format!(
                    " ON CONFLICT ({keys}, hour) DO UPDATE SET {}",
                    SET_SUMS.replace("{t}", table)
                ),
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (hour, d) in chunk {
                q = q.bind(id);
                if let Some(b) = box_no {
                    q = q.bind(b);
                }
                q = q
                    .bind(*hour)
                    .bind(d.occupied_ms)
                    .bind(d.held_ms)
                    .bind(d.oos_ms)
                    .bind(d.uses)
                    .bind(d.unmet);
            }
            q.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Rebuilds the item-derived rollups (occupied, held, uses, unmet) from item history and the
/// unmet-demand log, inside `tx`. Out-of-service time has no other record and is kept.
/// Runs once when a database is upgraded to the rollup schema; also a repair.
pub(crate) async fn rebuild(tx: &mut Tx<'_>) -> Result<u64, StoreError> {
    for table in ["usage_box_hour", "usage_cabinet_hour", "usage_site_hour"] {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {table} SET occupied_ms = 0, held_ms = 0, uses = 0, unmet = 0"
        )))
        .execute(&mut **tx)
        .await?;
    }
    let items = sqlx::query("SELECT item_id, flow, site_id, device_id, box_no FROM items")
        .fetch_all(&mut **tx)
        .await?;
    let mut replayed = 0u64;
    for it in &items {
        let id: String = it.try_get("item_id")?;
        let flow_s: String = it.try_get("flow")?;
        let Some(flow) = Flow::parse(&flow_s) else {
            return Err(StoreError::Corrupt(format!(
                "item {id} has flow {flow_s:?}"
            )));
        };
        let (site, device): (String, String) = (it.try_get("site_id")?, it.try_get("device_id")?);
        let box_no: i64 = it.try_get("box_no")?;
        let steps =
            sqlx::query("SELECT at, state FROM item_history WHERE item_id = $1 ORDER BY at")
                .bind(&id)
                .fetch_all(&mut **tx)
                .await?;
        let mut prev: Option<(ItemState, i64)> = None;
        let (mut held_since, mut in_box_since) = (0i64, None);
        let mut ops = Vec::new();
        for s in &steps {
            let at: i64 = s.try_get("at")?;
            let name: String = s.try_get("state")?;
            // History also records non-state notes (late deposits, reminders): skip them.
            let Some(state) = ItemState::parse(&name) else {
                continue;
            };
            match prev {
                None => held_since = at,
                Some((from, _)) if from == state => continue,
                Some((from, _)) => {
                    ops.extend(item_ops(flow, from, state, held_since, in_box_since, at));
                }
            }
            if in_box(flow, state) && !prev.is_some_and(|(p, _)| in_box(flow, p)) {
                in_box_since = Some(at);
            }
            prev = Some((state, at));
        }
        if !ops.is_empty() {
            let place = Place {
                site: Some(&site),
                device: Some(&device),
                box_no: Some(box_no),
            };
            apply(tx, place, &ops).await?;
            replayed += 1;
        }
    }
    let unmet = sqlx::query("SELECT at, site_id, device_id FROM unmet_demand")
        .fetch_all(&mut **tx)
        .await?;
    for u in &unmet {
        let at: i64 = u.try_get("at")?;
        let site: Option<String> = u.try_get("site_id")?;
        let device: Option<String> = u.try_get("device_id")?;
        let place = Place {
            site: site.as_deref(),
            device: device.as_deref(),
            box_no: None,
        };
        apply(tx, place, &[Op::Unmet { at }]).await?;
    }
    Ok(replayed)
}

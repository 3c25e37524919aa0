//! Usage rollups and the reports planners read: occupancy rate, turnover, peak hour and unmet
//! demand by box, cabinet, site, site kind or the whole fleet, per hour or per day.
//!
//! Rollups are maintained incrementally in the same transaction as the change that causes
//! them (an item moving, a refused reservation, a box taken out of service): an interval is
//! credited to the hours it spans when it ends. A report sums the closed intervals from the
//! hourly rollups and adds what is still open (items in boxes now, boxes out of service now)
//! from current state, which is bounded by the number of boxes, not by history.

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError};
pub use api_types::usage::{SiteSaturation, UsageFigures, UsageReport};
use domain::flows::{Flow, ItemState, SiteKind};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Local midnight of the day `t` falls in, for a zone `offset_ms` east of UTC.
pub fn day_start(t: i64, offset_ms: i64) -> i64 {
    (t + offset_ms).div_euclid(DAY_MS) * DAY_MS - offset_ms
}
/// The longest range a report covers, in hours (400 days): bounded work per request.
pub const MAX_HOURS: i64 = 400 * 24;

mod rollup;

use rollup::ROWS_PER_STATEMENT;
pub use rollup::in_box;
pub(super) use rollup::{Op, Place, apply, item_ops, rebuild};

/// Which rollup table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Box,
    Cabinet,
    Site,
}

/// One hour of one box, cabinet or site (`key` is the device or site id).
#[derive(Debug, Clone, Default)]
pub struct RollupRow {
    pub key: String,
    pub box_no: Option<i64>,
    pub hour: i64,
    pub occupied_ms: i64,
    pub held_ms: i64,
    pub oos_ms: i64,
    pub uses: i64,
    pub unmet: i64,
}

// ------------------------------------------------------------------------------ reports

/// What a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Fleet,
    Kind(String),
    Site(String),
    Cabinet(String),
    Box(String, i64),
}

impl Scope {
    pub fn name(&self) -> &'static str {
        match self {
            Scope::Fleet => "fleet",
            Scope::Kind(_) => "kind",
            Scope::Site(_) => "site",
            Scope::Cabinet(_) => "cabinet",
            Scope::Box(..) => "box",
        }
    }

    pub fn id(&self) -> Option<String> {
        match self {
            Scope::Fleet => None,
            Scope::Kind(s) | Scope::Site(s) | Scope::Cabinet(s) => Some(s.clone()),
            Scope::Box(d, b) => Some(format!("{d}/{b}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub scope: Scope,
    pub from: i64,
    pub to: i64,
    pub bucket: Bucket,
    /// The service's local time offset: days start at local midnight.
    pub utc_offset_ms: i64,
    pub now: i64,
}

/// Per-hour sums of one group (a scope, or a site within one).
#[derive(Debug, Clone, Default)]
struct Hours {
    /// Box-milliseconds existing (before subtracting out of service), per hour.
    capacity: Vec<i64>,
    occupied: Vec<i64>,
    held: Vec<i64>,
    oos: Vec<i64>,
    uses: Vec<i64>,
    unmet: Vec<i64>,
    boxes: i64,
}

impl Hours {
    fn new(n: usize) -> Hours {
        Hours {
            capacity: vec![0; n],
            occupied: vec![0; n],
            held: vec![0; n],
            oos: vec![0; n],
            uses: vec![0; n],
            unmet: vec![0; n],
            boxes: 0,
        }
    }

    /// Adds the part of `[from, to)` inside each hour of the range starting at `start`.
    fn spread(v: &mut [i64], start: i64, from: i64, to: i64, weight: i64) {
        let n = v.len() as i64;
        let (from, to) = (from.max(start), to.min(start + n * HOUR_MS));
        let mut t = from;
        while t < to {
            let i = (t - start) / HOUR_MS;
            let end = (start + (i + 1) * HOUR_MS).min(to);
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| v.get_mut(i)) {
                *slot += (end - t) * weight;
            }
            t = end;
        }
    }
}

/// The sums of the group a result row belongs to (column `k`), created empty on first use.
fn group_of<'g>(
    groups: &'g mut HashMap<String, Hours>,
    r: &sqlx::any::AnyRow,
    n: usize,
) -> Result<&'g mut Hours, StoreError> {
    Ok(groups
        .entry(r.try_get("k")?)
        .or_insert_with(|| Hours::new(n)))
}

/// SQL for the scope: a WHERE fragment for each table (aliases `u` rollup, `i` items,
/// `b` box_config joined to `c` cabinets) and its binds.
struct ScopeSql {
    rollup_table: &'static str,
    rollup_where: String,
    items_where: String,
    boxes_where: String,
    text: Option<String>,
    number: Option<i64>,
}

impl ScopeSql {
    fn of(scope: &Scope) -> ScopeSql {
        let kind = "IN (SELECT site_id FROM sites WHERE kind = $1)";
        let (table, r, i, b, text, number) = match scope {
            Scope::Fleet => (
                "usage_site_hour",
                "1 = 1".into(),
                "1 = 1".into(),
                "1 = 1".into(),
                None,
                None,
            ),
            Scope::Kind(k) => (
                "usage_site_hour",
                format!("u.site_id {kind}"),
                format!("i.site_id {kind}"),
                format!("c.site_id {kind}"),
                Some(k.clone()),
                None,
            ),
            Scope::Site(s) => (
                "usage_site_hour",
                "u.site_id = $1".into(),
                "i.site_id = $1".into(),
                "c.site_id = $1".into(),
                Some(s.clone()),
                None,
            ),
            Scope::Cabinet(d) => (
                "usage_cabinet_hour",
                "u.device_id = $1".into(),
                "i.device_id = $1".into(),
                "b.device_id = $1".into(),
                Some(d.clone()),
                None,
            ),
            Scope::Box(d, n) => (
                "usage_box_hour",
                "u.device_id = $1 AND u.box_no = $2".into(),
                "i.device_id = $1 AND i.box_no = $2".into(),
                "b.device_id = $1 AND b.box_no = $2".into(),
                Some(d.clone()),
                Some(*n),
            ),
        };
        ScopeSql {
            rollup_table: table,
            rollup_where: r,
            items_where: i,
            boxes_where: b,
            text,
            number,
        }
    }

    /// The number of the first placeholder after the scope's own.
    fn next(&self) -> usize {
        1 + usize::from(self.text.is_some()) + usize::from(self.number.is_some())
    }

    fn bind<'q>(
        &self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        if let Some(t) = &self.text {
            q = q.bind(t.clone());
        }
        if let Some(n) = self.number {
            q = q.bind(n);
        }
        q
    }
}

impl Store {
    /// Per-hour sums for `scope` over `[start, start + n hours)`, grouped by site when
    /// `by_site` (for saturation), else in one group keyed "".
    async fn usage_hours(
        &self,
        scope: &Scope,
        start: i64,
        n: usize,
        now: i64,
        by_site: bool,
    ) -> Result<HashMap<String, Hours>, StoreError> {
        let sql = ScopeSql::of(scope);
        let end = start + n as i64 * HOUR_MS;
        let (p, q) = (sql.next(), sql.next() + 1);
        // The group key column, and its GROUP BY entry (PostgreSQL refuses a constant there).
        let key = |col: &str| {
            if by_site {
                col.to_owned()
            } else {
                "''".to_owned()
            }
        };
        let group = |col: &str| {
            if by_site {
                format!("{col}, ")
            } else {
                String::new()
            }
        };
        let mut groups: HashMap<String, Hours> = HashMap::new();

        let rows = sql
            .bind(sqlx::query(AssertSqlSafe(format!(
                "SELECT {k} AS k, u.hour, CAST(SUM(u.occupied_ms) AS BIGINT) AS occupied,
                   CAST(SUM(u.held_ms) AS BIGINT) AS held, CAST(SUM(u.oos_ms) AS BIGINT) AS oos,
                   CAST(SUM(u.uses) AS BIGINT) AS uses, CAST(SUM(u.unmet) AS BIGINT) AS unmet
                 FROM {t} u WHERE {w} AND u.hour >= ${p} AND u.hour < ${q}
                 GROUP BY {g}u.hour",
                k = key("u.site_id"),
                g = group("u.site_id"),
                t = sql.rollup_table,
                w = sql.rollup_where,
            ))))
            .bind(start)
            .bind(end)
            .fetch_all(&self.pool)
            .await?;
        for r in &rows {
            let g = group_of(&mut groups, r, n)?;
            let hour: i64 = r.try_get("hour")?;
            let Some(i) = usize::try_from((hour - start) / HOUR_MS)
                .ok()
                .filter(|i| *i < n)
            else {
                continue;
            };
            g.occupied[i] += sum(r, "occupied")?;
            g.held[i] += sum(r, "held")?;
            g.oos[i] += sum(r, "oos")?;
            g.uses[i] += sum(r, "uses")?;
            g.unmet[i] += sum(r, "unmet")?;
        }

        // Items holding a box now: their open intervals up to now. The states (every state
        // that can hold a box) let the (state, site) index skip the finished items.
        let open = sql
            .bind(sqlx::query(AssertSqlSafe(format!(
                "SELECT {k} AS k, i.flow, i.state, i.created_at, i.in_box_at FROM items i
                 WHERE i.holds_box = 1 AND {w}
                   AND i.state IN ('reserved', 'awaiting_deposit', 'in_box', 'overdue')",
                k = key("i.site_id"),
                w = sql.items_where,
            ))))
            .fetch_all(&self.pool)
            .await?;
        for r in &open {
            let g = group_of(&mut groups, r, n)?;
            let created: i64 = r.try_get("created_at")?;
            Hours::spread(&mut g.held, start, created, now, 1);
            let (flow, state): (String, String) = (r.try_get("flow")?, r.try_get("state")?);
            if let (Some(f), Some(s)) = (Flow::parse(&flow), ItemState::parse(&state))
                && in_box(f, s)
                && let Some(since) = r.try_get::<Option<i64>, _>("in_box_at")?
            {
                Hours::spread(&mut g.occupied, start, since, now, 1);
            }
        }

        // Boxes: existing since their creation; out of service now since `out_since`.
        let boxes = sql
            .bind(sqlx::query(AssertSqlSafe(format!(
                "SELECT {k} AS k, COALESCE(b.created_at, c.created_at) AS since,
                   b.in_service, b.out_since, COUNT(*) AS n
                 FROM box_config b JOIN cabinets c ON c.device_id = b.device_id
                 WHERE {w}
                 GROUP BY {g}COALESCE(b.created_at, c.created_at), b.in_service, b.out_since",
                k = key("c.site_id"),
                g = group("c.site_id"),
                w = sql.boxes_where,
            ))))
            .fetch_all(&self.pool)
            .await?;
        for r in &boxes {
            let g = group_of(&mut groups, r, n)?;
            let since: i64 = r.try_get("since")?;
            let count: i64 = r.try_get("n")?;
            g.boxes += count;
            Hours::spread(&mut g.capacity, start, since, now, count);
            if r.try_get::<i64, _>("in_service")? == 0 {
                let out: i64 = r.try_get::<Option<i64>, _>("out_since")?.unwrap_or(since);
                Hours::spread(&mut g.oos, start, out, now, count);
            }
        }
        Ok(groups)
    }

    /// A usage report: figures per bucket and in total, and the peak hour.
    pub async fn usage(&self, q: &UsageQuery) -> Result<UsageReport, StoreError> {
        let (start, end) = range(q)?;
        let n = ((end - start) / HOUR_MS) as usize;
        let groups = self.usage_hours(&q.scope, start, n, q.now, false).await?;
        let hours = groups.into_values().next().unwrap_or_else(|| Hours::new(n));
        let bucket_ms = match q.bucket {
            Bucket::Hour => HOUR_MS,
            Bucket::Day => DAY_MS,
        };
        let mut buckets = Vec::new();
        let mut b = start;
        while b < end {
            let (i, j) = (
                ((b - start) / HOUR_MS) as usize,
                (((b + bucket_ms).min(end) - start) / HOUR_MS) as usize,
            );
            buckets.push(figures(&hours, b, i, j));
            b += bucket_ms;
        }
        // Peak hour: occupied over in service, per local hour of day across the range.
        let mut by_hour = [(0i64, 0i64); 24];
        for i in 0..n {
            let local = (start + i as i64 * HOUR_MS + q.utc_offset_ms).rem_euclid(DAY_MS) / HOUR_MS;
            let slot = &mut by_hour[local as usize];
            slot.0 += hours.occupied[i];
            slot.1 += (hours.capacity[i] - hours.oos[i]).max(0);
        }
        let peak = by_hour
            .iter()
            .enumerate()
            .filter(|(_, (_, cap))| *cap > 0)
            .map(|(h, (occ, cap))| (h as u8, (*occ as f64 / *cap as f64).min(1.0)))
            .fold(None::<(u8, f64)>, |best, (h, r)| match best {
                Some((_, br)) if br >= r => best,
                _ => Some((h, r)),
            });
        Ok(UsageReport {
            scope: q.scope.name().into(),
            id: q.scope.id(),
            from: start,
            to: end,
            bucket: q.bucket.as_str().into(),
            boxes: hours.boxes,
            totals: figures(&hours, start, 0, n),
            peak_hour: peak.map(|(h, _)| h),
            peak_hour_occupancy: peak.map(|(_, r)| r).unwrap_or(0.0),
            buckets,
        })
    }

    /// Sites whose daily occupancy reached `rate` on at least `days` of the last `window`
    /// local days (today excluded: it is not over).
    pub async fn saturation(
        &self,
        now: i64,
        utc_offset_ms: i64,
        rate: f64,
        days: u32,
        window: u32,
    ) -> Result<Vec<SiteSaturation>, StoreError> {
        let today = day_start(now, utc_offset_ms);
        let start = today - i64::from(window) * DAY_MS;
        let n = (i64::from(window) * 24) as usize;
        let groups = self.usage_hours(&Scope::Fleet, start, n, now, true).await?;
        let sites = self.sites().await?;
        let mut out = Vec::with_capacity(sites.len());
        for s in sites {
            let hours = groups.get(&s.id).cloned().unwrap_or_else(|| Hours::new(n));
            let daily: Vec<f64> = (0..window as usize)
                .map(|d| figures(&hours, start + d as i64 * DAY_MS, d * 24, d * 24 + 24).occupancy)
                .collect();
            let above = daily.iter().filter(|r| **r >= rate).count() as u32;
            out.push(SiteSaturation {
                site_id: s.id,
                name: s.name,
                kind: s.kind,
                boxes: hours.boxes,
                days_above: above,
                saturated: above >= days,
                occupancy: figures(&hours, start, 0, n).occupancy,
                daily,
            });
        }
        Ok(out)
    }

    /// Every site's figures per hour for `n` hours from `start` (site, kind, hours): the
    /// export's and the planner's view, in one pass over the rollups.
    pub async fn site_hours(
        &self,
        start: i64,
        n: usize,
        now: i64,
    ) -> Result<Vec<(String, SiteKind, Vec<UsageFigures>)>, StoreError> {
        let groups = self.usage_hours(&Scope::Fleet, start, n, now, true).await?;
        let sites = self.sites().await?;
        Ok(sites
            .into_iter()
            .map(|s| {
                let h = groups.get(&s.id).cloned().unwrap_or_else(|| Hours::new(n));
                let hours = (0..n)
                    .map(|i| figures(&h, start + i as i64 * HOUR_MS, i, i + 1))
                    .collect();
                (s.id, s.kind, hours)
            })
            .collect())
    }

    /// Writes hourly rollup rows as they are, replacing any present: for benchmarks and
    /// imports of history kept elsewhere, not for the live path (which adds to them).
    pub async fn load_rollups(&self, level: Level, rows: &[RollupRow]) -> Result<(), StoreError> {
        let (table, keys) = match level {
            Level::Box => ("usage_box_hour", "device_id, box_no, hour"),
            Level::Cabinet => ("usage_cabinet_hour", "device_id, hour"),
            Level::Site => ("usage_site_hour", "site_id, hour"),
        };
        let per_row = keys.split(',').count() + 5;
        let mut tx = self.writer.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let sql = super::multi_row(
                self.kind,
                &format!(
                    "INSERT INTO {table} ({keys}, occupied_ms, held_ms, oos_ms, uses, unmet) VALUES "
                ),
                per_row,
                chunk.len(),
                &format!(
                    " ON CONFLICT ({keys}) DO UPDATE SET occupied_ms = excluded.occupied_ms,
                      held_ms = excluded.held_ms, oos_ms = excluded.oos_ms, uses = excluded.uses,
                      unmet = excluded.unmet"
                ),
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for r in chunk {
                q = q.bind(r.key.clone());
                if level == Level::Box {
                    q = q.bind(r.box_no.unwrap_or(0));
                }
                q = q
                    .bind(r.hour)
                    .bind(r.occupied_ms)
                    .bind(r.held_ms)
                    .bind(r.oos_ms)
                    .bind(r.uses)
                    .bind(r.unmet);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Rebuilds the item-derived rollups from history (see [`rebuild`]); returns the number
    /// of items replayed.
    pub async fn rebuild_usage(&self) -> Result<u64, StoreError> {
        if let Some(before) = self.items_pruned_before().await? {
            return Err(StoreError::Invalid(format!(
                "usage cannot be rebuilt: retention removed items finished before {before} \
                 (epoch ms), and a rebuild replays items, so their usage would be lost; \
                 the rollups as kept are the record"
            )));
        }
        let mut tx = self.writer.begin().await?;
        let n = rebuild(&mut tx).await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// Hour-aligned `[start, end)` of a query; days align to local midnight.
fn range(q: &UsageQuery) -> Result<(i64, i64), StoreError> {
    if q.to <= q.from {
        return Err(StoreError::Invalid(format!(
            "`to` ({}) must be after `from` ({})",
            q.to, q.from
        )));
    }
    let (start, end) = match q.bucket {
        Bucket::Hour => (
            q.from.div_euclid(HOUR_MS) * HOUR_MS,
            (q.to + HOUR_MS - 1).div_euclid(HOUR_MS) * HOUR_MS,
        ),
        Bucket::Day => {
            let day = |t: i64| day_start(t, q.utc_offset_ms);
            let s = day(q.from);
            let e = day(q.to - 1) + DAY_MS;
            // Offsets that are not whole hours: hours stay UTC-aligned, days round down.
            (
                s.div_euclid(HOUR_MS) * HOUR_MS,
                e.div_euclid(HOUR_MS) * HOUR_MS,
            )
        }
    };
    if (end - start) / HOUR_MS > MAX_HOURS {
        return Err(StoreError::Invalid(format!(
            "the range spans {} hours; a report covers at most {MAX_HOURS} (400 days): narrow `from`/`to`",
            (end - start) / HOUR_MS
        )));
    }
    Ok((start, end))
}

fn sum(r: &sqlx::any::AnyRow, col: &str) -> Result<i64, StoreError> {
    // SUM over BIGINT is NUMERIC on PostgreSQL, which `sqlx::Any` cannot decode: the
    // queries cast it back to BIGINT.
    Ok(r.try_get::<Option<i64>, _>(col)?.unwrap_or(0))
}

/// The figures of hours `[i, j)` of `h`, labelled `start`.
fn figures(h: &Hours, start: i64, i: usize, j: usize) -> UsageFigures {
    let total = |v: &[i64]| v.get(i..j).map(|s| s.iter().sum::<i64>()).unwrap_or(0);
    let in_service = (total(&h.capacity) - total(&h.oos)).max(0);
    let (occupied, held, uses) = (total(&h.occupied), total(&h.held), total(&h.uses));
    let rate = |x: i64| {
        if in_service > 0 {
            (x as f64 / in_service as f64).clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    let box_days = in_service as f64 / DAY_MS as f64;
    UsageFigures {
        start,
        box_hours: in_service as f64 / HOUR_MS as f64,
        occupied_hours: occupied as f64 / HOUR_MS as f64,
        held_hours: held as f64 / HOUR_MS as f64,
        occupancy: rate(occupied),
        held_rate: rate(held),
        uses,
        turnover: if box_days > 0.0 {
            uses as f64 / box_days
        } else {
            0.0
        },
        unmet: total(&h.unmet),
    }
}

#[cfg(test)]
mod tests;

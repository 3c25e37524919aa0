//! The fleet at a glance, per site: devices online, boxes by state, open alarms and the last
//! 24 hours of use. One query per figure family, aggregated in SQL, so a console refreshing
//! it over 1,000 cabinets stays cheap.

use api_types::live::SiteOverview;
use domain::flows::SiteKind;
use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// Per site, at `now`; `day_start` is local midnight (the usage rate's day).
    pub async fn overview(
        &self,
        now: i64,
        day_start: i64,
    ) -> Result<Vec<SiteOverview>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.site_id, s.kind, s.name,
               (SELECT COUNT(*) FROM cabinets c WHERE c.site_id = s.site_id) AS devices,
               (SELECT COUNT(*) FROM cabinets c JOIN devices d ON d.device_id = c.device_id
                 WHERE c.site_id = s.site_id AND d.online = 1) AS devices_online,
               (SELECT COUNT(*) FROM box_config b JOIN cabinets c ON c.device_id = b.device_id
                 WHERE c.site_id = s.site_id) AS boxes,
               (SELECT COUNT(*) FROM box_config b JOIN cabinets c ON c.device_id = b.device_id
                 WHERE c.site_id = s.site_id AND b.in_service = 0) AS out_of_service,
               (SELECT COUNT(*) FROM items i WHERE i.site_id = s.site_id AND i.holds_box = 1
                 AND i.state IN ('in_box', 'overdue')) AS occupied,
               (SELECT COUNT(*) FROM items i WHERE i.site_id = s.site_id AND i.holds_box = 1
                 AND i.state NOT IN ('in_box', 'overdue')) AS reserved,
               (SELECT COUNT(DISTINCT a.device_id || ':' || a.box_no) FROM alarms a
                 WHERE a.site_id = s.site_id AND a.state <> 'cleared' AND a.box_no > 0) AS faulty,
               (SELECT COUNT(*) FROM alarms a WHERE a.site_id = s.site_id
                 AND a.state <> 'cleared') AS alarms_open
             FROM sites s ORDER BY s.site_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let since = now - 24 * 3_600_000;
        let uses = sqlx::query(
            "SELECT i.site_id, (h.at - $1) / 3600000 AS hour, COUNT(*) AS n
             FROM item_history h JOIN items i ON i.item_id = h.item_id
             WHERE h.state = 'in_box' AND h.at >= $1 AND h.at <= $2
             GROUP BY i.site_id, (h.at - $1) / 3600000",
        )
        .bind(since)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        // Milliseconds items spent in a box today: those still in one, and those that left
        // today (found by `finished_at`, indexed).
        let held = sqlx::query(
            "SELECT site_id, CAST(COALESCE(SUM($1 - CASE WHEN in_box_at > $2 THEN in_box_at ELSE $2 END), 0) AS BIGINT) AS ms
             FROM items WHERE holds_box = 1 AND state IN ('in_box', 'overdue')
               AND in_box_at IS NOT NULL AND in_box_at < $1
             GROUP BY site_id
             UNION ALL
             SELECT site_id, CAST(COALESCE(SUM(finished_at - CASE WHEN in_box_at > $2 THEN in_box_at ELSE $2 END), 0) AS BIGINT) AS ms
             FROM items WHERE finished_at >= $2 AND finished_at <= $1
               AND in_box_at IS NOT NULL AND in_box_at < finished_at
             GROUP BY site_id",
        )
        .bind(now)
        .bind(day_start)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("site_id")?;
            let boxes: i64 = r.try_get("boxes")?;
            let out_of_service: i64 = r.try_get("out_of_service")?;
            let occupied: i64 = r.try_get("occupied")?;
            let reserved: i64 = r.try_get("reserved")?;
            let in_service = (boxes - out_of_service).max(0);
            let mut held_ms = 0i64;
            for h in &held {
                if h.try_get::<String, _>("site_id")? == id {
                    held_ms += h.try_get::<i64, _>("ms")?;
                }
            }
            let day_ms = (now - day_start).max(1);
            let mut uses_24h = vec![0i64; 24];
            for u in &uses {
                let site: String = u.try_get("site_id")?;
                let hour: i64 = u.try_get("hour")?;
                if site == id
                    && let Some(slot) = usize::try_from(hour)
                        .ok()
                        .and_then(|h| uses_24h.get_mut(h.min(23)))
                {
                    *slot += u.try_get::<i64, _>("n")?;
                }
            }
            out.push(SiteOverview {
                kind: super::parse_col("site kind", r.try_get("kind")?, SiteKind::parse)?,
                name: r.try_get("name")?,
                devices: r.try_get("devices")?,
                devices_online: r.try_get("devices_online")?,
                free: (in_service - occupied - reserved).max(0),
                occupancy: if in_service > 0 {
                    ((occupied + reserved) as f64 / in_service as f64).min(1.0)
                } else {
                    0.0
                },
                usage_today: if in_service > 0 {
                    (held_ms as f64 / (in_service as f64 * day_ms as f64)).clamp(0.0, 1.0)
                } else {
                    0.0
                },
                boxes,
                occupied,
                reserved,
                out_of_service,
                faulty: r.try_get("faulty")?,
                alarms_open: r.try_get("alarms_open")?,
                uses_24h,
                id,
            });
        }
        Ok(out)
    }
}

/// Boxes by state across the fleet (the `/metrics` gauges): counted directly, without the
/// overview's per-site usage figures, so a scrape stays cheap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoxCounts {
    pub free: i64,
    pub occupied: i64,
    pub reserved: i64,
    pub out_of_service: i64,
    /// Boxes with an open alarm.
    pub faulty: i64,
}

impl Store {
    pub async fn box_counts(&self) -> Result<BoxCounts, StoreError> {
        let r = sqlx::query(
            "SELECT
               (SELECT COUNT(*) FROM box_config b JOIN cabinets c ON c.device_id = b.device_id) AS boxes,
               (SELECT COUNT(*) FROM box_config b JOIN cabinets c ON c.device_id = b.device_id
                 WHERE b.in_service = 0) AS out_of_service,
               (SELECT COUNT(*) FROM items WHERE state IN ('in_box', 'overdue')
                 AND holds_box = 1) AS occupied,
               (SELECT COUNT(*) FROM items WHERE state IN ('reserved', 'awaiting_deposit')
                 AND holds_box = 1) AS reserved,
               (SELECT COUNT(DISTINCT a.device_id || ':' || a.box_no) FROM alarms a
                 WHERE a.state <> 'cleared' AND a.box_no > 0) AS faulty",
        )
        .fetch_one(&self.pool)
        .await?;
        let boxes: i64 = r.try_get("boxes")?;
        let out_of_service: i64 = r.try_get("out_of_service")?;
        let occupied: i64 = r.try_get("occupied")?;
        let reserved: i64 = r.try_get("reserved")?;
        Ok(BoxCounts {
            free: (boxes - out_of_service - occupied - reserved).max(0),
            occupied,
            reserved,
            out_of_service,
            faulty: r.try_get("faulty")?,
        })
    }
}

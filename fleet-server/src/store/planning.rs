//! The planner's stored inputs (demand points, candidate sites, each replaced as a whole by
//! an upload) and the measured usage of the sites in service it starts from.

use sqlx::Row;

use super::usage::{DAY_MS, HOUR_MS};
use super::{Store, StoreError};
use domain::planner::{Candidate, DemandPoint, ExistingSite};

/// What the fleet measured over a period, for the planner.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub sites: Vec<ExistingSite>,
    /// Mean hours an item stayed in its box (occupied hours ÷ uses), when anything was used.
    pub dwell_hours: Option<f64>,
}

impl Store {
    /// Replaces the demand points with `points` (one transaction: a failed upload leaves the
    /// previous set).
    pub async fn replace_demand(&self, points: &[DemandPoint]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM planning_demand")
            .execute(&mut *tx)
            .await?;
        for d in points {
            sqlx::query(
                "INSERT INTO planning_demand (point_id, name, lat, lon, enterprises, monthly_cases,
                                              cases_known, cluster)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&d.id)
            .bind(&d.name)
            .bind(d.lat)
            .bind(d.lon)
            .bind(i64::from(d.enterprises))
            .bind(d.monthly_cases.unwrap_or(0.0))
            .bind(i64::from(d.monthly_cases.is_some()))
            .bind(d.cluster.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn demand_points(&self) -> Result<Vec<DemandPoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT point_id, name, lat, lon, enterprises, monthly_cases, cases_known, cluster
             FROM planning_demand ORDER BY point_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DemandPoint {
                    id: r.try_get("point_id")?,
                    name: r.try_get("name")?,
                    lat: r.try_get("lat")?,
                    lon: r.try_get("lon")?,
                    enterprises: u32::try_from(r.try_get::<i64, _>("enterprises")?).unwrap_or(0),
                    monthly_cases: if r.try_get::<i64, _>("cases_known")? != 0 {
                        Some(r.try_get("monthly_cases")?)
                    } else {
                        None
                    },
                    cluster: r.try_get("cluster")?,
                })
            })
            .collect()
    }

    /// Replaces the candidate sites with `list`.
    pub async fn replace_candidates(&self, list: &[Candidate]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM planning_candidates")
            .execute(&mut *tx)
            .await?;
        for c in list {
            sqlx::query(
                "INSERT INTO planning_candidates (candidate_id, name, lat, lon, max_boxes)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&c.id)
            .bind(&c.name)
            .bind(c.lat)
            .bind(c.lon)
            .bind(c.max_boxes.map(i64::from))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn candidate_sites(&self) -> Result<Vec<Candidate>, StoreError> {
        let rows = sqlx::query(
            "SELECT candidate_id, name, lat, lon, max_boxes FROM planning_candidates
             ORDER BY candidate_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Candidate {
                    id: r.try_get("candidate_id")?,
                    name: r.try_get("name")?,
                    lat: r.try_get("lat")?,
                    lon: r.try_get("lon")?,
                    max_boxes: r
                        .try_get::<Option<i64>, _>("max_boxes")?
                        .and_then(|b| u32::try_from(b).ok()),
                })
            })
            .collect()
    }

    /// Every site's occupancy, busiest-hour occupancy and unmet demand over the last `days`
    /// whole hours, from the usage rollups.
    pub async fn measured(
        &self,
        now: i64,
        utc_offset_ms: i64,
        days: u32,
    ) -> Result<Measured, StoreError> {
        let n = (i64::from(days) * 24) as usize;
        let start = now.div_euclid(HOUR_MS) * HOUR_MS - n as i64 * HOUR_MS;
        let hours = self.site_hours(start, n, now).await?;
        let sites = self.sites().await?;
        let (mut occupied, mut uses) = (0.0, 0i64);
        let mut out = Vec::new();
        for (id, _kind, h) in hours {
            let Some(site) = sites.iter().find(|s| s.id == id) else {
                continue;
            };
            let box_hours: f64 = h.iter().map(|x| x.box_hours).sum();
            let occ_hours: f64 = h.iter().map(|x| x.occupied_hours).sum();
            occupied += occ_hours;
            uses += h.iter().map(|x| x.uses).sum::<i64>();
            let mut by_hour = [(0.0f64, 0.0f64); 24];
            for x in &h {
                let local = ((x.start + utc_offset_ms).rem_euclid(DAY_MS) / HOUR_MS) as usize;
                by_hour[local].0 += x.occupied_hours;
                by_hour[local].1 += x.box_hours;
            }
            let peak = by_hour
                .iter()
                .filter(|(_, cap)| *cap > 0.0)
                .map(|(o, cap)| o / cap)
                .fold(0.0, f64::max);
            let boxes = self.site_boxes(&id).await?;
            out.push(ExistingSite {
                id,
                name: site.name.clone(),
                lat: site.lat,
                lon: site.lon,
                boxes,
                occupancy: if box_hours > 0.0 {
                    occ_hours / box_hours
                } else {
                    0.0
                },
                peak_occupancy: peak.min(1.0),
                // Per day the site had boxes: a site set up a week ago is not judged by a
                // month in which it could turn nobody away.
                unmet_per_day: h.iter().map(|x| x.unmet).sum::<i64>() as f64
                    / (h.iter().filter(|x| x.box_hours > 0.0).count() as f64 / 24.0).max(1.0),
            });
        }
        Ok(Measured {
            sites: out,
            dwell_hours: (uses > 0).then(|| occupied / uses as f64),
        })
    }

    async fn site_boxes(&self, site: &str) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM box_config b JOIN cabinets c ON c.device_id = b.device_id
             WHERE c.site_id = $1 AND b.in_service = 1",
        )
        .bind(site)
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(n).unwrap_or(0))
    }
}

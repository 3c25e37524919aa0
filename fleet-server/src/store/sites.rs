//! Sites: where cabinets stand (service halls, enterprise clusters, stations).

use domain::flows::SiteKind;
use l10n::Lang;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::flows::admin_audit;
use super::{Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct SiteRow {
    pub id: String,
    pub kind: SiteKind,
    pub name: String,
    pub address: String,
    pub lat: f64,
    pub lon: f64,
    /// The language its citizens' SMS are written in; none: the server's default.
    pub lang: Option<Lang>,
    /// IANA time zone its times read in; none: the language's default (Asia/Shanghai for
    /// zh-CN) or the server's offset.
    pub time_zone: Option<String>,
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
            lang: r
                .try_get::<Option<String>, _>("lang")?
                .map(|l| super::parse_col("site language", l, |s| s.parse().ok()))
                .transpose()?,
            time_zone: r.try_get("time_zone")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

impl Store {
    /// Creates or replaces a site; `true` when it was new.
    pub async fn upsert_site(&self, s: &SiteRow, actor: &str) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let existed: Option<String> =
            sqlx::query_scalar("SELECT site_id FROM sites WHERE site_id = $1")
                .bind(&s.id)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO sites (site_id, kind, name, address, lat, lon, created_at, updated_at,
                lang, time_zone)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)
             ON CONFLICT (site_id) DO UPDATE SET kind = excluded.kind, name = excluded.name,
               address = excluded.address, lat = excluded.lat, lon = excluded.lon,
               updated_at = excluded.updated_at, lang = excluded.lang,
               time_zone = excluded.time_zone",
        )
        .bind(&s.id)
        .bind(s.kind.as_str())
        .bind(&s.name)
        .bind(&s.address)
        .bind(s.lat)
        .bind(s.lon)
        .bind(s.updated_at)
        .bind(s.lang.map(Lang::tag))
        .bind(s.time_zone.as_deref())
        .execute(&mut *tx)
        .await?;
        let what = format!(
            "site {} {:?} ({}) at {}, {}; language {}, time zone {}",
            s.id,
            s.name,
            s.kind,
            s.lat,
            s.lon,
            s.lang.map_or("default", Lang::tag),
            s.time_zone.as_deref().unwrap_or("default")
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
            "SELECT site_id, kind, name, address, lat, lon, lang, time_zone, created_at, updated_at
             FROM sites ORDER BY site_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SiteRow::from_row).collect()
    }

    pub async fn site(&self, id: &str) -> Result<Option<SiteRow>, StoreError> {
        let row = sqlx::query(
            "SELECT site_id, kind, name, address, lat, lon, lang, time_zone, created_at, updated_at
             FROM sites WHERE site_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(SiteRow::from_row).transpose()
    }
}

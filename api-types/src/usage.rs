//! Usage reports, the site × hour heatmap and saturation (`/api/v1/usage…`).

use domain::flows::SiteKind;
use serde::{Deserialize, Serialize};

/// One bucket's figures (or a whole report's totals).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct UsageFigures {
    /// Bucket start (epoch ms); the report's start for totals.
    pub start: i64,
    /// Box-hours in service: boxes existing and in service, up to now.
    pub box_hours: f64,
    /// Box-hours with an item in the box.
    pub occupied_hours: f64,
    /// Box-hours held by an item at all (reserved, awaiting deposit or in the box).
    pub held_hours: f64,
    /// Occupancy rate: occupied ÷ in service (0..=1). The document's box usage rate.
    pub occupancy: f64,
    /// Held ÷ in service (0..=1): what was not free for a new reservation.
    pub held_rate: f64,
    /// Items placed in a box.
    pub uses: i64,
    /// Turnover: uses per box in service per day.
    pub turnover: f64,
    /// Reservations refused because no box was free.
    pub unmet: i64,
}

/// `GET /api/v1/usage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct UsageReport {
    /// fleet, kind, site, cabinet or box.
    pub scope: String,
    /// Kind, site or cabinet id, or `cabinet/box`; absent for the fleet.
    pub id: Option<String>,
    /// Start of the first bucket (epoch ms).
    pub from: i64,
    /// End of the last bucket (exclusive, epoch ms).
    pub to: i64,
    /// hour or day (local days).
    pub bucket: String,
    /// Boxes in the scope now.
    pub boxes: i64,
    pub totals: UsageFigures,
    /// The local hour of day (0..=23) with the highest occupancy over the range; absent
    /// when nothing was in service.
    pub peak_hour: Option<u8>,
    pub peak_hour_occupancy: f64,
    pub buckets: Vec<UsageFigures>,
}

/// One site's saturation over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct SiteSaturation {
    pub site_id: String,
    pub name: String,
    pub kind: SiteKind,
    pub boxes: i64,
    /// Days of the window whose occupancy reached the rate.
    pub days_above: u32,
    pub saturated: bool,
    /// Occupancy over the whole window.
    pub occupancy: f64,
    /// Occupancy per local day of the window, oldest first.
    pub daily: Vec<f64>,
}

/// `GET /api/v1/usage/saturation`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Saturation {
    pub rate: f64,
    pub days: u32,
    pub window: u32,
    /// First day of the window (epoch ms, local midnight).
    pub from: i64,
    pub sites: Vec<SiteSaturation>,
}

/// One site's last hours.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct SiteHours {
    pub site_id: String,
    pub kind: SiteKind,
    /// Occupancy per hour, oldest first; the last is the current hour so far.
    pub occupancy: Vec<f64>,
    pub uses: Vec<i64>,
    pub unmet: Vec<i64>,
}

/// `GET /api/v1/usage/sites`: the console's site × hour heatmap in one answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct SitesHours {
    /// Start of the first hour (epoch ms).
    pub from: i64,
    pub sites: Vec<SiteHours>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// fleet (default), kind, site, cabinet or box.
    #[serde(default)]
    pub scope: Option<String>,
    /// The site kind, site id or cabinet id; for a box `CABINET/BOX` (e.g. `cab-01/3`).
    #[serde(default)]
    pub id: Option<String>,
    /// Start: epoch ms or a local date `YYYY-MM-DD` (default: 7 days before `to`).
    #[serde(default)]
    pub from: Option<String>,
    /// End, exclusive: epoch ms or a local date `YYYY-MM-DD`, meaning the end of that day
    /// (default: now).
    #[serde(default)]
    pub to: Option<String>,
    /// hour or day (default day; days start at local midnight).
    #[serde(default)]
    pub bucket: Option<String>,
    /// json (default) or csv.
    #[serde(default)]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SaturationParams {
    /// Occupancy a day must reach to count (0..1, default the configured `saturation_rate`).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Days at or above the rate that make a site saturated (default `saturation_days`).
    #[serde(default)]
    pub days: Option<u32>,
    /// The last this many whole local days are judged (default `saturation_window_days`).
    #[serde(default)]
    pub window: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SitesParams {
    /// Hours back from now, the current hour included (1..=168, default 24).
    #[serde(default)]
    pub hours: Option<usize>,
}

//! Sites (`/api/v1/sites…`).

use domain::flows::SiteKind;
use serde::{Deserialize, Serialize};

/// A site: a service hall, an enterprise cluster, a station or a community.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Site {
    pub id: String,
    pub kind: SiteKind,
    pub name: String,
    pub address: String,
    pub lat: f64,
    pub lon: f64,
    /// `en` or `zh-CN`: the language its citizens' SMS are written in (none: the server's).
    pub lang: Option<String>,
    /// IANA time zone its times read in (none: Asia/Shanghai for zh-CN, else the server's
    /// offset).
    pub time_zone: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SiteBody {
    /// Required on POST; on PUT the path names the site.
    #[serde(default)]
    pub id: Option<String>,
    /// service_hall, enterprise_cluster, station or community.
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub address: String,
    pub lat: f64,
    pub lon: f64,
    /// `en` or `zh-CN`: the language of SMS to this site's citizens.
    #[serde(default)]
    pub lang: Option<String>,
    /// An IANA time zone, e.g. `Asia/Shanghai`.
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct SitesList {
    pub sites: Vec<Site>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct SiteDetail {
    pub site: Site,
    pub cabinets: Vec<crate::cabinets::Cabinet>,
}

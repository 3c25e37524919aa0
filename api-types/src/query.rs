//! Query parameters several endpoints share (`?site=`, `?limit=&device=`).

use serde::{Deserialize, Serialize};

/// `?site=`: a list limited to one site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SiteQuery {
    /// Only this site.
    #[serde(default)]
    pub site: Option<String>,
}

/// `?limit=&device=`: a newest-first list, optionally of one device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct LimitQuery {
    /// 1 to 10000 (default 100).
    pub limit: Option<i64>,
    /// Only this device.
    pub device: Option<String>,
}

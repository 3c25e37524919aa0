//! Cabinets and their boxes (`/api/v1/cabinets…`).

use domain::flows::{BoxStatus, Size};
use serde::{Deserialize, Serialize};

use crate::items::Item;

/// A cabinet (or station device) placed at a site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Cabinet {
    pub id: String,
    pub site_id: String,
    pub name: String,
    /// Version of the code grants the server holds for this cabinet.
    pub codes_version: i64,
    /// Version the cabinet confirmed; behind `codes_version` while a change travels.
    pub codes_applied: i64,
    pub online: bool,
}

/// A box as operators see it: configuration, sensors and the item holding it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct BoxView {
    #[serde(rename = "box")]
    pub box_no: u16,
    pub size: Size,
    pub accessible: bool,
    pub in_service: bool,
    pub service_note: Option<String>,
    pub state: BoxStatus,
    pub door_open: Option<bool>,
    pub item: Option<Item>,
}

/// `GET /api/v1/cabinets/{id}`: one cabinet with its boxes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct CabinetDetail {
    pub cabinet: Cabinet,
    pub boxes: Vec<BoxView>,
}

/// `GET /api/v1/cabinets`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct CabinetsList {
    pub cabinets: Vec<Cabinet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CabinetBody {
    pub site_id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Boxes to configure; boxes not listed keep their configuration.
    #[serde(default)]
    pub boxes: Vec<BoxBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BoxBody {
    #[serde(rename = "box")]
    pub box_no: u16,
    /// S, M or L.
    pub size: String,
    #[serde(default)]
    pub accessible: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServiceBody {
    pub in_service: bool,
    #[serde(default)]
    pub note: Option<String>,
}

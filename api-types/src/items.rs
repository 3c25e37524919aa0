//! Reservations and items (`/api/v1/items`, `/api/v1/reservations`) and the helpers' work
//! lists (`/api/v1/worklists/…`).

use domain::flows::{Flow, ItemState, Size};
use serde::{Deserialize, Serialize};

use crate::History;

/// An item: an application, a licence or a deposit, and the box that holds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Item {
    pub id: String,
    pub flow: Flow,
    pub case_number: String,
    /// Masked: the full number stays in the database for SMS.
    pub phone: String,
    pub site_id: String,
    pub device_id: String,
    #[serde(rename = "box")]
    pub box_no: u16,
    pub size: Size,
    pub state: ItemState,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub valid_from: i64,
    pub valid_until: i64,
    pub deadline: Option<i64>,
    pub due_by: Option<i64>,
    pub in_box_at: Option<i64>,
    pub deposited_by: Option<String>,
    pub finished_at: Option<i64>,
    pub finished_by: Option<String>,
    pub late_deposit: bool,
}

/// `GET /api/v1/items`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ItemsList {
    pub items: Vec<Item>,
}

/// `GET /api/v1/items/{id}`: the item and its history, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ItemDetail {
    pub item: Item,
    pub history: Vec<History>,
}

/// One entry of a work list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct WorklistItem {
    #[serde(flatten)]
    pub item: Item,
    /// Since it went into the box (or was reserved, if it is not in one).
    pub age_ms: i64,
}

/// `GET /api/v1/worklists/{collect,deposit,overdue}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Worklist {
    pub count: usize,
    pub items: Vec<WorklistItem>,
}

/// `POST /api/v1/reservations`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReservationRequest {
    /// dropoff, supplement or pickup.
    pub flow: String,
    pub case_number: String,
    /// The applicant's mobile number for the SMS.
    pub phone: String,
    /// One of: a site, a cabinet, or coordinates to find the nearest site with a free box.
    #[serde(default)]
    pub site_id: Option<String>,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub near: Option<Near>,
    /// S, M or L (default S); a larger box is used when none of this size is free.
    #[serde(default)]
    pub size: Option<String>,
    /// Only boxes marked accessible (low height).
    #[serde(default)]
    pub accessible: bool,
    /// Code window, epoch ms; defaults from the server configuration.
    #[serde(default)]
    pub valid_from: Option<i64>,
    #[serde(default)]
    pub valid_until: Option<i64>,
    /// Supplements: the deadline of the accept-with-deficiencies notice (required). The code
    /// is valid until then.
    #[serde(default)]
    pub deadline: Option<i64>,
    /// Retrying with the same key never allocates a second box.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The applicant's language for the SMS (`en`, `zh-CN`); default: the site's.
    #[serde(default)]
    pub lang: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Near {
    pub lat: f64,
    pub lon: f64,
}

/// The answer to a reservation: the item, and its one-time code in the answer that created
/// it only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Reservation {
    pub reservation_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub created: bool,
    /// Set when an earlier reservation with the same idempotency key is returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(flatten)]
    pub item: Item,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct UnmetDemand {
    pub sites: Vec<UnmetSite>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct UnmetSite {
    pub site_id: Option<String>,
    /// Reservations refused for lack of a free box.
    pub refused: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SinceQuery {
    /// Epoch ms (default: all time).
    #[serde(default)]
    pub since: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    #[serde(default)]
    pub case_number: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub limit: Option<i64>,
}

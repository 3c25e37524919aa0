//! Staff (`/api/v1/staff…`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Staff {
    pub id: String,
    pub name: String,
    pub site_id: Option<String>,
    pub active: bool,
    pub created_at: i64,
    /// Masked; alarm notifications go to it while on duty.
    pub phone: Option<String>,
    /// Receives SMS of the site's alarms.
    pub on_duty: bool,
}

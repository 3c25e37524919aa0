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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StaffBody {
    pub id: String,
    pub name: String,
    /// The site whose cabinets accept this person; none: every site.
    #[serde(default)]
    pub site_id: Option<String>,
    /// PIN or card id; hashed, never stored or returned.
    pub credential: String,
    /// For alarm notifications: 5 to 20 digits, optionally with a leading +.
    #[serde(default)]
    pub phone: Option<String>,
    /// Receives SMS of the alarms of their site (every site without one); needs a phone.
    #[serde(default)]
    pub on_duty: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct StaffList {
    pub staff: Vec<Staff>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct StaffDeactivated {
    pub id: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DutyBody {
    pub on_duty: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Duty {
    pub id: String,
    pub on_duty: bool,
}

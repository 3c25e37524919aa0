//! Health (`GET /healthz`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct HealthBody {
    /// `ok` or `degraded`.
    pub status: String,
    /// `ok`, or what is wrong with the database.
    pub database: String,
    /// External broker mode only: `ok`, or why this replica cannot reach the broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
}

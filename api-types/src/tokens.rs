//! API tokens (`/api/v1/tokens…`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub role: String,
    /// The sites this token is limited to; absent: every site.
    pub sites: Option<Vec<String>>,
    pub created_at: i64,
    pub created_by: Option<String>,
    /// Epoch ms after which the token is refused; absent: never.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

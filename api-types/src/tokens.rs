//! API tokens (`/api/v1/tokens…`).

use serde::{Deserialize, Serialize};

use crate::Role;

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// Who or what holds the token (1 to 100 characters); shown in the audit log.
    pub name: String,
    pub role: Role,
    /// Limit the token to these sites (each must exist); absent: every site.
    pub sites: Option<Vec<String>>,
    /// 1 to 3650 days (default 90).
    pub expires_in_days: Option<u32>,
    /// Or an exact end (epoch ms, in the future and within 3650 days), e.g. a contract's.
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub row: Token,
    /// Shown once; stored only as a hash.
    pub token: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct TokensList {
    pub tokens: Vec<Token>,
}

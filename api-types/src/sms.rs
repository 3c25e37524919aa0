//! SMS templates (`/api/v1/sms-templates`): what citizens read with their code, per site and
//! language, written by administrators with `{placeholders}`.

use serde::{Deserialize, Serialize};

/// One template in effect: written by an administrator, or the built-in text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct SmsTemplate {
    /// None: fleet-wide.
    pub site_id: Option<String>,
    /// `en` or `zh-CN`.
    pub lang: String,
    /// dropoff, supplement or pickup.
    pub flow: String,
    /// With `{code}` (required), `{case}`, `{cabinet}`, `{box}`, `{site}`, `{until}`;
    /// `{{` and `}}` are literal braces.
    pub text: String,
    /// `builtin`, `fleet` or `site`.
    pub source: String,
    pub updated_by: Option<String>,
    pub updated_at: Option<i64>,
    /// The text rendered with example values, as a citizen would read it.
    pub example: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct SmsTemplates {
    pub templates: Vec<SmsTemplate>,
}

/// `PUT /api/v1/sms-templates`: set one template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SmsTemplateBody {
    /// None: the fleet-wide template.
    #[serde(default)]
    pub site_id: Option<String>,
    pub lang: String,
    pub flow: String,
    pub text: String,
}

/// `GET /api/v1/sms-templates?site_id=…` (the templates in effect at that site) and
/// `DELETE /api/v1/sms-templates?site_id=…&lang=…&flow=…` (back to the fleet's or the
/// built-in text).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[serde(default, deny_unknown_fields)]
pub struct SmsTemplatesQuery {
    pub site_id: Option<String>,
    pub lang: Option<String>,
    pub flow: Option<String>,
}

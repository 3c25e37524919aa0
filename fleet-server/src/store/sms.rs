//! SMS templates per site (or fleet-wide), language and flow, as administrators wrote them
//! (checked by `domain::sms::Template` before they get here); every change audited.

use domain::flows::Flow;
use l10n::Lang;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::flows::admin_audit;
use super::{Store, StoreError, parse_col};

/// A template as stored; `site_id` none: the fleet-wide one.
#[derive(Debug, Clone, PartialEq)]
pub struct SmsTemplateRow {
    pub site_id: Option<String>,
    pub lang: Lang,
    pub flow: Flow,
    pub body: String,
    pub updated_by: String,
    pub updated_at: i64,
}

impl SmsTemplateRow {
    fn from_row(r: &AnyRow) -> Result<SmsTemplateRow, StoreError> {
        let site: String = r.try_get("site_id")?;
        Ok(SmsTemplateRow {
            site_id: (!site.is_empty()).then_some(site),
            lang: parse_col("template language", r.try_get("lang")?, |s| s.parse().ok())?,
            flow: parse_col("template flow", r.try_get("flow")?, Flow::parse)?,
            body: r.try_get("body")?,
            updated_by: r.try_get("updated_by")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

/// How the audit log names a template's place.
fn scope(site: Option<&str>) -> String {
    site.map_or_else(|| "fleet".to_owned(), |s| format!("site {s}"))
}

impl Store {
    /// Creates or replaces a template.
    pub async fn set_sms_template(&self, t: &SmsTemplateRow) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO sms_templates (site_id, lang, flow, body, updated_by, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (site_id, lang, flow) DO UPDATE SET body = excluded.body,
               updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(t.site_id.as_deref().unwrap_or(""))
        .bind(t.lang.tag())
        .bind(t.flow.as_str())
        .bind(&t.body)
        .bind(&t.updated_by)
        .bind(t.updated_at)
        .execute(&mut *tx)
        .await?;
        let what = format!(
            "{} SMS template for {} in {}: {:?}",
            t.flow,
            scope(t.site_id.as_deref()),
            t.lang,
            t.body
        );
        admin_audit(
            &mut tx,
            t.updated_at,
            &t.updated_by,
            "sms_template_set",
            None,
            None,
            &what,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a template (the built-in text applies again); `false` when there was none.
    pub async fn reset_sms_template(
        &self,
        site: Option<&str>,
        lang: Lang,
        flow: Flow,
        actor: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let gone =
            sqlx::query("DELETE FROM sms_templates WHERE site_id = $1 AND lang = $2 AND flow = $3")
                .bind(site.unwrap_or(""))
                .bind(lang.tag())
                .bind(flow.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
        if gone {
            let what = format!("{flow} SMS template for {} in {lang}", scope(site));
            admin_audit(&mut tx, at, actor, "sms_template_reset", None, None, &what).await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    /// Every template, fleet-wide ones first.
    pub async fn sms_templates(&self) -> Result<Vec<SmsTemplateRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT site_id, lang, flow, body, updated_by, updated_at FROM sms_templates
             ORDER BY site_id, lang, flow",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SmsTemplateRow::from_row).collect()
    }
}

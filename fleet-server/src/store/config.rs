//! Central configuration in storage: the layers of desired settings (one row per scope and
//! key, with its revision), and what each device reports in effect.

use domain::config::{Layer, Scope};
use domain::labels::Labels;
use protocol::settings::Settings;
use sqlx::Row;

use super::audit;
use super::{Store, StoreError};

/// One stored layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    pub layer: Layer,
    /// Rises with every change of this layer.
    pub revision: i64,
    pub updated_at: i64,
    pub updated_by: String,
}

/// What the configuration loop needs of one device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigFacts {
    pub device: String,
    pub online: bool,
    pub site: Option<String>,
    pub site_kind: Option<String>,
    pub labels: Labels,
    pub applied: Option<AppliedConfig>,
}

/// What a device last reported of its configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppliedConfig {
    pub version: String,
    /// `applied`, `waiting_restart` or `refused`.
    pub state: String,
    pub reason: Option<String>,
    /// The settings in effect, from its last `applied` report.
    pub settings: Option<Settings>,
    /// Device clock.
    pub at: i64,
}

impl Store {
    /// Every layer, least specific first.
    pub async fn config_layers(&self) -> Result<Vec<LayerRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT scope, scope_key, settings, revision, updated_at, updated_by
             FROM config_layers",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let scope: String = r.try_get("scope")?;
            let Some(scope) = Scope::parse(&scope) else {
                return Err(StoreError::Corrupt(format!(
                    "config_layers has an unknown scope {scope:?}"
                )));
            };
            let json: String = r.try_get("settings")?;
            let settings = serde_json::from_str(&json).map_err(|e| {
                StoreError::Corrupt(format!("config layer settings are not JSON: {e}"))
            })?;
            out.push(LayerRow {
                layer: Layer {
                    scope,
                    key: r.try_get("scope_key")?,
                    settings,
                },
                revision: r.try_get("revision")?,
                updated_at: r.try_get("updated_at")?,
                updated_by: r.try_get("updated_by")?,
            });
        }
        out.sort_by_key(|l| {
            (
                Scope::ALL.iter().position(|s| *s == l.layer.scope),
                l.layer.key.clone(),
            )
        });
        Ok(out)
    }

    /// Sets a layer (already checked); an empty set removes it. Audited with the settings
    /// before and after. Returns the row now (`None` once removed).
    pub async fn set_config_layer(
        &self,
        scope: Scope,
        key: &str,
        settings: &Settings,
        by: &str,
        at: i64,
    ) -> Result<Option<LayerRow>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let before: Option<(String, i64)> = sqlx::query_as(
            "SELECT settings, revision FROM config_layers WHERE scope = $1 AND scope_key = $2",
        )
        .bind(scope.as_str())
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let json = serde_json::to_string(settings).unwrap_or_default();
        let revision = before.as_ref().map_or(1, |(_, r)| r + 1);
        if settings.is_empty() {
            sqlx::query("DELETE FROM config_layers WHERE scope = $1 AND scope_key = $2")
                .bind(scope.as_str())
                .bind(key)
                .execute(&mut *tx)
                .await?;
        } else if before.is_some() {
            sqlx::query(
                "UPDATE config_layers SET settings = $1, revision = $2, updated_at = $3,
                   updated_by = $4 WHERE scope = $5 AND scope_key = $6",
            )
            .bind(&json)
            .bind(revision)
            .bind(at)
            .bind(by)
            .bind(scope.as_str())
            .bind(key)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO config_layers (scope, scope_key, settings, revision, updated_at,
                   updated_by) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(scope.as_str())
            .bind(key)
            .bind(&json)
            .bind(revision)
            .bind(at)
            .bind(by)
            .execute(&mut *tx)
            .await?;
        }
        let layer = Layer {
            scope,
            key: key.to_string(),
            settings: settings.clone(),
        };
        let what = format!(
            "{} revision {revision}: {} → {}",
            layer.name(),
            before.as_ref().map_or("{}", |(s, _)| s.as_str()),
            json
        );
        audit::note(
            &mut tx,
            at,
            by,
            "config_set",
            (scope == Scope::Device).then_some(key),
            &what,
        )
        .await?;
        tx.commit().await?;
        Ok((!settings.is_empty()).then_some(LayerRow {
            layer,
            revision,
            updated_at: at,
            updated_by: by.to_string(),
        }))
    }

    /// Every known device (or one) with its placement and reported configuration.
    pub async fn config_facts(&self, only: Option<&str>) -> Result<Vec<ConfigFacts>, StoreError> {
        let sql = "SELECT d.device_id AS device_id, d.online AS online, c.site_id AS site_id,
                    s.kind AS kind, d.config_version AS config_version,
                    d.config_state AS config_state, d.config_reason AS config_reason,
                    d.config_settings AS config_settings, d.config_at AS config_at
             FROM devices d LEFT JOIN cabinets c ON c.device_id = d.device_id
             LEFT JOIN sites s ON s.site_id = c.site_id";
        let rows = match only {
            Some(id) => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{sql} WHERE d.device_id = $1")))
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!("{sql} ORDER BY d.device_id")))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut labels = self.all_labels().await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let device: String = r.try_get("device_id")?;
            let applied = match (
                r.try_get::<Option<String>, _>("config_version")?,
                r.try_get::<Option<String>, _>("config_state")?,
                r.try_get::<Option<i64>, _>("config_at")?,
            ) {
                (Some(version), Some(state), Some(at)) => Some(AppliedConfig {
                    version,
                    state,
                    reason: r.try_get("config_reason")?,
                    settings: r
                        .try_get::<Option<String>, _>("config_settings")?
                        .and_then(|s| serde_json::from_str(&s).ok()),
                    at,
                }),
                _ => None,
            };
            out.push(ConfigFacts {
                labels: labels.remove(&device).unwrap_or_default(),
                device,
                online: r.try_get::<i64, _>("online")? != 0,
                site: r.try_get("site_id")?,
                site_kind: r.try_get("kind")?,
                applied,
            });
        }
        Ok(out)
    }
}

//! Deployments: a release rolled out to a set of devices in waves. The deployment row holds
//! what was asked (release, window, waves, thresholds, soak, deadline) and where it stands
//! (state, the wave under way); one row per targeted device holds its wave and its rollout
//! state. Every change of a deployment's state is audited in its transaction.

use domain::deployments::{DeploymentState, DeviceRollout, Thresholds};
use domain::labels::Labels;
use protocol::DeviceId;
use protocol::release::MaintenanceWindow;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit;
use super::{Store, StoreError, parse_col};

/// A deployment as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRow {
    pub id: String,
    pub target: String,
    pub version: String,
    pub rollback: bool,
    pub window: Option<MaintenanceWindow>,
    /// The wave sizes as asked (`1`, `25%`, …), comma-separated.
    pub waves: String,
    pub thresholds: Thresholds,
    pub soak_secs: i64,
    /// Pause after each wave until an operator starts the next.
    pub manual: bool,
    pub deadline_at: i64,
    pub state: DeploymentState,
    pub reason: Option<String>,
    /// The wave under way, from 0.
    pub wave: i64,
    pub wave_started_at: Option<i64>,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
}

/// One device of a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRow {
    pub device: DeviceId,
    pub wave: i64,
    pub state: DeviceRollout,
    pub reason: Option<String>,
    /// The version it ran when its wave started (what a halted wave goes back to).
    pub from_version: Option<String>,
    pub offered_at: Option<i64>,
    pub succeeded_at: Option<i64>,
    pub updated_at: i64,
}

const COLUMNS: &str = "deployment_id, target, version, rollback, window_from, window_to,
    utc_offset_minutes, waves, success_percent, max_failures_percent, soak_secs, manual,
    deadline_at, state, reason, wave, wave_started_at, created_at, created_by, updated_at";

impl DeploymentRow {
    fn from_row(r: &AnyRow) -> Result<DeploymentRow, StoreError> {
        let window = match (
            r.try_get::<Option<String>, _>("window_from")?,
            r.try_get::<Option<String>, _>("window_to")?,
        ) {
            (Some(from), Some(to)) => Some(MaintenanceWindow {
                from,
                to,
                utc_offset_minutes: r.try_get::<i64, _>("utc_offset_minutes")? as i16,
            }),
            _ => None,
        };
        Ok(DeploymentRow {
            id: r.try_get("deployment_id")?,
            target: r.try_get("target")?,
            version: r.try_get("version")?,
            rollback: r.try_get::<i64, _>("rollback")? != 0,
            window,
            waves: r.try_get("waves")?,
            thresholds: Thresholds {
                success_percent: r.try_get::<i64, _>("success_percent")?.clamp(0, 100) as u8,
                max_failures_percent: r.try_get::<i64, _>("max_failures_percent")?.clamp(0, 100)
                    as u8,
            },
            soak_secs: r.try_get("soak_secs")?,
            manual: r.try_get::<i64, _>("manual")? != 0,
            deadline_at: r.try_get("deadline_at")?,
            state: parse_col(
                "deployment state",
                r.try_get("state")?,
                DeploymentState::parse,
            )?,
            reason: r.try_get("reason")?,
            wave: r.try_get("wave")?,
            wave_started_at: r.try_get("wave_started_at")?,
            created_at: r.try_get("created_at")?,
            created_by: r.try_get("created_by")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

impl RolloutRow {
    fn from_row(r: &AnyRow) -> Result<RolloutRow, StoreError> {
        Ok(RolloutRow {
            device: parse_col("device id", r.try_get("device_id")?, |s| {
                DeviceId::parse(s).ok()
            })?,
            wave: r.try_get("wave")?,
            state: parse_col("rollout state", r.try_get("state")?, DeviceRollout::parse)?,
            reason: r.try_get("reason")?,
            from_version: r.try_get("from_version")?,
            offered_at: r.try_get("offered_at")?,
            succeeded_at: r.try_get("succeeded_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

/// What the engine learns of a targeted device in one look.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceNow {
    pub online: bool,
    pub agent_version: Option<String>,
    /// Its newest `release` report: version, state word, reason, at (its clock).
    pub report: Option<(String, String, Option<String>, i64)>,
    /// When its newest critical alarm was first seen, if it has one.
    pub critical_since: Option<i64>,
}

/// Which devices a deployment is for: those matching every filter given (an empty filter
/// does not filter).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    pub devices: Vec<String>,
    pub sites: Vec<String>,
    pub site_kinds: Vec<String>,
    pub profiles: Vec<String>,
    /// Every one of these labels.
    pub labels: Labels,
}

impl Selector {
    /// Filters nothing: the whole fleet.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
            && self.sites.is_empty()
            && self.site_kinds.is_empty()
            && self.profiles.is_empty()
            && self.labels.is_empty()
    }
}

impl Store {
    /// The devices a deployment may target: those with a cabinet record on one of `sites`
    /// (or of a site of one of `site_kinds`), of one of `profiles`, or named in `devices`;
    /// every filter given must hold. Sorted by id, so waves are the same on every replica.
    pub async fn deployment_targets(&self, select: &Selector) -> Result<Vec<DeviceId>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.device_id AS device_id, d.profile AS profile, c.site_id AS site_id,
                    s.kind AS kind
             FROM devices d LEFT JOIN cabinets c ON c.device_id = d.device_id
             LEFT JOIN sites s ON s.site_id = c.site_id
             ORDER BY d.device_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let labels = if select.labels.is_empty() {
            Default::default()
        } else {
            self.all_labels().await?
        };
        let none = Labels::new();
        let mut out = Vec::new();
        for r in rows {
            let id: String = r.try_get("device_id")?;
            let profile = r
                .try_get::<Option<String>, _>("profile")?
                .unwrap_or_else(|| "locker".into());
            let site: Option<String> = r.try_get("site_id")?;
            let kind: Option<String> = r.try_get("kind")?;
            let keep = (select.devices.is_empty() || select.devices.contains(&id))
                && (select.sites.is_empty()
                    || site.as_ref().is_some_and(|s| select.sites.contains(s)))
                && (select.site_kinds.is_empty()
                    || kind.as_ref().is_some_and(|k| select.site_kinds.contains(k)))
                && (select.profiles.is_empty() || select.profiles.contains(&profile))
                && domain::labels::matches(labels.get(&id).unwrap_or(&none), &select.labels);
            if keep && let Ok(d) = DeviceId::parse(&id) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Stores a new deployment and its devices (`waves[i]` the devices of wave i), audited.
    pub async fn create_deployment(
        &self,
        d: &DeploymentRow,
        waves: &[Vec<DeviceId>],
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO deployments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
             $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        )))
        .bind(&d.id)
        .bind(&d.target)
        .bind(&d.version)
        .bind(i64::from(d.rollback))
        .bind(d.window.as_ref().map(|w| w.from.clone()))
        .bind(d.window.as_ref().map(|w| w.to.clone()))
        .bind(
            d.window
                .as_ref()
                .map_or(0, |w| i64::from(w.utc_offset_minutes)),
        )
        .bind(&d.waves)
        .bind(i64::from(d.thresholds.success_percent))
        .bind(i64::from(d.thresholds.max_failures_percent))
        .bind(d.soak_secs)
        .bind(i64::from(d.manual))
        .bind(d.deadline_at)
        .bind(d.state.as_str())
        .bind(d.reason.as_deref())
        .bind(d.wave)
        .bind(d.wave_started_at)
        .bind(d.created_at)
        .bind(&d.created_by)
        .bind(d.updated_at)
        .execute(&mut *tx)
        .await?;
        for (i, wave) in waves.iter().enumerate() {
            for device in wave {
                sqlx::query(
                    "INSERT INTO deployment_devices (deployment_id, device_id, wave, state,
                                                     updated_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&d.id)
                .bind(device.as_str())
                .bind(i as i64)
                .bind(DeviceRollout::Pending.as_str())
                .bind(d.created_at)
                .execute(&mut *tx)
                .await?;
            }
        }
        let sizes: Vec<String> = waves.iter().map(|w| w.len().to_string()).collect();
        let what = format!(
            "device-agent {} for {} to {} devices in waves of {}",
            d.version,
            d.target,
            waves.iter().map(Vec::len).sum::<usize>(),
            sizes.join(", ")
        );
        audit::note(
            &mut tx,
            d.created_at,
            &d.created_by,
            "deployment_created",
            None,
            &what,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn deployment(&self, id: &str) -> Result<Option<DeploymentRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployments WHERE deployment_id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(DeploymentRow::from_row).transpose()
    }

    /// Every deployment, newest first.
    pub async fn deployments(&self) -> Result<Vec<DeploymentRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployments ORDER BY created_at DESC, deployment_id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(DeploymentRow::from_row).collect()
    }

    /// Deployments the engine still works on: running, and halted ones taking a wave back.
    pub async fn active_deployments(&self) -> Result<Vec<DeploymentRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployments WHERE state IN ('running', 'halted')
             ORDER BY created_at, deployment_id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(DeploymentRow::from_row).collect()
    }

    /// The devices of a deployment, by wave then id.
    pub async fn rollouts(&self, id: &str) -> Result<Vec<RolloutRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT device_id, wave, state, reason, from_version, offered_at, succeeded_at,
                    updated_at
             FROM deployment_devices WHERE deployment_id = $1 ORDER BY wave, device_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RolloutRow::from_row).collect()
    }

    /// Records where one device of a deployment stands.
    pub async fn set_rollout(&self, id: &str, r: &RolloutRow) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deployment_devices SET state = $1, reason = $2, from_version = $3,
                    offered_at = $4, succeeded_at = $5, updated_at = $6
             WHERE deployment_id = $7 AND device_id = $8",
        )
        .bind(r.state.as_str())
        .bind(r.reason.as_deref())
        .bind(r.from_version.as_deref())
        .bind(r.offered_at)
        .bind(r.succeeded_at)
        .bind(r.updated_at)
        .bind(id)
        .bind(r.device.as_str())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Moves a deployment to `state` (and `wave`), audited as `action` with `what`, unless
    /// it is already final (`false` then, nothing changed).
    #[allow(clippy::too_many_arguments)]
    pub async fn set_deployment(
        &self,
        id: &str,
        state: DeploymentState,
        wave: i64,
        reason: Option<&str>,
        action: &str,
        by: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let changed = sqlx::query(
            "UPDATE deployments SET state = $1, wave = $2, reason = $3, updated_at = $4,
                    wave_started_at = CASE WHEN wave = $2 THEN wave_started_at ELSE $4 END
             WHERE deployment_id = $5 AND state NOT IN ('completed', 'cancelled')
               AND (state <> 'halted' OR $1 = 'cancelled')",
        )
        .bind(state.as_str())
        .bind(wave)
        .bind(reason)
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let what = match reason {
            Some(r) => format!("deployment {id}, wave {}: {r}", wave + 1),
            None => format!("deployment {id}, wave {}", wave + 1),
        };
        audit::note(&mut tx, at, by, action, None, &what).await?;
        // The platform's webhook hears when a deployment halts or completes.
        if self.webhooks && matches!(state, DeploymentState::Halted | DeploymentState::Completed) {
            let r = sqlx::query("SELECT target, version FROM deployments WHERE deployment_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let event = format!("deployment_{}", state.as_str());
            let body = serde_json::json!({
                "event": event,
                "deployment_id": id,
                "target": r.try_get::<String, _>("target")?,
                "version": r.try_get::<String, _>("version")?,
                "wave": wave + 1,
                "reason": reason,
                "at": at,
            })
            .to_string();
            super::notifications::enqueue(
                &mut tx,
                "webhook",
                None,
                &event,
                Some(&body),
                "pending",
                at,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deployments by state, and the devices of those not finished (running, paused,
    /// halted) by rollout state: the Prometheus gauges.
    pub async fn deployment_counts(
        &self,
    ) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>), StoreError> {
        let deployments =
            sqlx::query("SELECT state, COUNT(*) AS n FROM deployments GROUP BY state")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
        let devices = sqlx::query(
            "SELECT dd.state AS state, COUNT(*) AS n FROM deployment_devices dd
             JOIN deployments d ON d.deployment_id = dd.deployment_id
             WHERE d.state IN ('running', 'paused', 'halted') GROUP BY dd.state",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("state")?, r.try_get("n")?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((deployments, devices))
    }

    /// What the engine needs of each device: presence, version, newest release report, and
    /// its newest active critical alarm.
    pub async fn devices_now(
        &self,
        ids: &[DeviceId],
    ) -> Result<std::collections::HashMap<DeviceId, DeviceNow>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for id in ids {
            let Some(r) = sqlx::query(
                "SELECT online, agent_version, release_version, release_state, release_reason,
                        release_at,
                        (SELECT MAX(first_seen) FROM alarms a
                          WHERE a.device_id = d.device_id AND a.severity = 'critical'
                            AND a.state <> 'cleared') AS critical_since
                 FROM devices d WHERE device_id = $1",
            )
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            else {
                continue;
            };
            let report = match (
                r.try_get::<Option<String>, _>("release_version")?,
                r.try_get::<Option<String>, _>("release_state")?,
                r.try_get::<Option<i64>, _>("release_at")?,
            ) {
                (Some(v), Some(s), Some(at)) => Some((v, s, r.try_get("release_reason")?, at)),
                _ => None,
            };
            out.insert(
                id.clone(),
                DeviceNow {
                    online: r.try_get::<i64, _>("online")? != 0,
                    agent_version: r.try_get("agent_version")?,
                    report,
                    critical_since: r.try_get("critical_since")?,
                },
            );
        }
        Ok(out)
    }
}

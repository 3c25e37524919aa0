//! Deployments: a release rolled out to many devices in waves. [`Deployments::create`] checks
//! what is asked and splits the targets into waves (a canary first); [`Deployments::step`],
//! run every second on the leading replica, moves each running deployment on: it offers the
//! release (with `install` and the window) to the devices of the wave under way as they are
//! online, follows their `release` reports, judges the wave against its thresholds after the
//! soak time (`domain::deployments`), and starts the next wave, completes, or halts and
//! offers the version before back to the wave's devices that took the new one. Everything it
//! knows is in the database, so a new leader carries on where the last one stopped.

use std::collections::HashMap;

use domain::deployments::{
    DeploymentState, DeviceRollout, Thresholds, WaveSize, WaveVerdict, judge, split,
};
use protocol::release::{MaintenanceWindow, Version};
use protocol::{Channel, DeviceId, Update, UpdateBody};

use crate::devices::{Online, Publisher};
use crate::store::{
    DeploymentRow, DeviceNow, ReleaseRow, ReleaseState, RolloutRow, Selector, Store, StoreError,
};

/// An offer without any report after this long is sent again (offers go at QoS 0).
const REOFFER_MS: i64 = 30_000;
/// A device's report counts for an offer if its clock says it came at most this much before
/// the offer (the agent's clock follows the server's, within network delay).
const CLOCK_SLACK_MS: i64 = 5_000;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DeploymentError {
    /// What was asked cannot be done; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The deployment is in a state that does not allow it.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A deployment as asked.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub target: String,
    pub version: String,
    pub rollback: bool,
    pub select: Selector,
    pub waves: Vec<String>,
    pub window: Option<MaintenanceWindow>,
    pub thresholds: Thresholds,
    pub soak_secs: u64,
    pub manual: bool,
    pub deadline_hours: u32,
}

#[derive(Clone)]
pub(crate) struct Deployments {
    pub store: Store,
    pub publisher: Publisher,
    pub online: Online,
    pub metrics: crate::metrics::Metrics,
}

fn invalid(s: impl Into<String>) -> DeploymentError {
    DeploymentError::Invalid(s.into())
}

impl Deployments {
    /// Checks `spec`, picks its devices and waves, and stores it running.
    pub(crate) async fn create(
        &self,
        spec: Spec,
        by: &str,
        now: i64,
    ) -> Result<(DeploymentRow, Vec<RolloutRow>), DeploymentError> {
        let version =
            Version::parse(&spec.version).map_err(|e| invalid(format!("field `version`: {e}")))?;
        let release = self
            .store
            .release(&spec.target, version)
            .await?
            .ok_or_else(|| {
                invalid(format!(
                    "no release {} for {}; GET /api/v1/releases lists them",
                    spec.version, spec.target
                ))
            })?;
        if release.state() != ReleaseState::Available {
            return Err(invalid(format!(
                "release {} for {} is {}, not available",
                spec.version,
                spec.target,
                release.state().as_str()
            )));
        }
        if let Some(w) = &spec.window {
            w.check()
                .map_err(|e| invalid(format!("field `window`: {e}")))?;
        }
        let waves = if spec.waves.is_empty() {
            vec!["1".to_owned(), "100%".to_owned()]
        } else {
            spec.waves.clone()
        };
        if waves.len() > 20 {
            return Err(invalid("field `waves`: at most 20 waves"));
        }
        let sizes = waves
            .iter()
            .map(|w| WaveSize::parse(w))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("field `waves`: {e}")))?;
        let t = spec.thresholds;
        if t.success_percent > 100 || t.max_failures_percent > 100 {
            return Err(invalid(
                "fields `success_percent` and `max_failures_percent` are 0 to 100",
            ));
        }
        if spec.soak_secs > 7 * 86_400 {
            return Err(invalid("field `soak_secs`: at most 7 days (604800)"));
        }
        if !(1..=24 * 90).contains(&spec.deadline_hours) {
            return Err(invalid("field `deadline_hours`: 1 to 2160 (90 days)"));
        }
        let select = &spec.select;
        for (field, ids) in [
            ("devices", &select.devices),
            ("sites", &select.sites),
            ("site_kinds", &select.site_kinds),
            ("profiles", &select.profiles),
        ] {
            if ids.len() > 10_000 || ids.iter().any(|i| i.is_empty() || i.len() > 64) {
                return Err(invalid(format!(
                    "field `{field}`: at most 10000 names of 1 to 64 characters"
                )));
            }
        }
        domain::labels::check(&select.labels)
            .map_err(|e| invalid(format!("field `labels`: {e}")))?;
        if select.is_empty() {
            return Err(invalid(
                "name the devices: `devices`, `sites`, `site_kinds`, `profiles` or `labels` (an empty target would be the whole fleet; say so with profiles)",
            ));
        }
        let targets = self.store.deployment_targets(select).await?;
        let unknown: Vec<&String> = select
            .devices
            .iter()
            .filter(|d| !targets.iter().any(|t| t.as_str() == d.as_str()))
            .collect();
        let only_listed = Selector {
            devices: select.devices.clone(),
            ..Default::default()
        };
        if !unknown.is_empty() && *select == only_listed {
            return Err(invalid(format!(
                "field `devices`: {} never connected",
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if targets.is_empty() {
            return Err(invalid("no device matches the target"));
        }
        let counts = split(targets.len(), &sizes);
        let mut waves_of = Vec::with_capacity(counts.len());
        let mut rest = targets.into_iter();
        for n in &counts {
            waves_of.push(rest.by_ref().take(*n).collect::<Vec<_>>());
        }
        let id = format!("dep-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let row = DeploymentRow {
            id: id.clone(),
            target: spec.target,
            version: version.to_string(),
            rollback: spec.rollback,
            window: spec.window,
            waves: waves.join(","),
            thresholds: t,
            soak_secs: spec.soak_secs as i64,
            manual: spec.manual,
            deadline_at: now + i64::from(spec.deadline_hours) * 3_600_000,
            state: DeploymentState::Running,
            reason: None,
            wave: 0,
            wave_started_at: Some(now),
            created_at: now,
            created_by: by.to_owned(),
            updated_at: now,
        };
        self.store.create_deployment(&row, &waves_of).await?;
        let rollouts = self.store.rollouts(&id).await?;
        tracing::info!(deployment = %id, version = %row.version, devices = rollouts.len(), waves = ?counts, "deployment created");
        Ok((row, rollouts))
    }

    pub(crate) async fn get(
        &self,
        id: &str,
    ) -> Result<(DeploymentRow, Vec<RolloutRow>), DeploymentError> {
        let d = self.store.deployment(id).await?.ok_or_else(|| {
            DeploymentError::NotFound(format!(
                "no deployment {id}; GET /api/v1/deployments lists them"
            ))
        })?;
        let r = self.store.rollouts(id).await?;
        Ok((d, r))
    }

    /// An operator's pause, resume (also: start the next wave of a manual deployment) or
    /// cancel.
    pub(crate) async fn act(
        &self,
        id: &str,
        action: &str,
        note: Option<&str>,
        by: &str,
        now: i64,
    ) -> Result<(DeploymentRow, Vec<RolloutRow>), DeploymentError> {
        let (d, _) = self.get(id).await?;
        let (to, audit) = match (action, d.state) {
            ("pause", DeploymentState::Running) => (DeploymentState::Paused, "deployment_paused"),
            ("resume", DeploymentState::Paused) => (DeploymentState::Running, "deployment_resumed"),
            ("cancel", s)
                if !matches!(s, DeploymentState::Completed | DeploymentState::Cancelled) =>
            {
                (DeploymentState::Cancelled, "deployment_cancelled")
            }
            _ => {
                return Err(DeploymentError::Conflict(format!(
                    "deployment {id} is {}: it cannot {action}",
                    d.state.as_str()
                )));
            }
        };
        let reason = note.map(str::to_owned).or(d.reason.clone());
        self.store
            .set_deployment(id, to, d.wave, reason.as_deref(), audit, by, now)
            .await?;
        self.get(id).await
    }

    /// Runs [`Deployments::step`] every second until `cancel` (on the leading replica).
    pub(crate) async fn run(self, cancel: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.step(crate::clock::now_ms()).await {
                tracing::warn!(error = %e, "deployments cannot be read; retrying");
            }
        }
    }

    /// One pass over every deployment under way.
    pub(crate) async fn step(&self, now: i64) -> Result<(), StoreError> {
        for d in self.store.active_deployments().await? {
            if let Err(e) = self.step_one(&d, now).await {
                tracing::error!(deployment = %d.id, error = %e, "deployment step failed; retrying");
            }
        }
        let (deployments, devices) = self.store.deployment_counts().await?;
        self.metrics.deployments(&deployments, &devices);
        Ok(())
    }

    async fn step_one(&self, d: &DeploymentRow, now: i64) -> Result<(), StoreError> {
        let rollouts = self.store.rollouts(&d.id).await?;
        let ids: Vec<DeviceId> = rollouts.iter().map(|r| r.device.clone()).collect();
        let devices = self.store.devices_now(&ids).await?;
        let version = Version::parse(&d.version).map_err(StoreError::Corrupt)?;
        let release = self.store.release(&d.target, version).await?;
        if d.state == DeploymentState::Halted {
            return self.follow_rollbacks(d, &rollouts, &devices, now).await;
        }
        let Some(release) = release.filter(|r| r.state() == ReleaseState::Available) else {
            self.halt(d, &rollouts, "the release was withdrawn", now)
                .await?;
            return Ok(());
        };
        let mut outcomes = Vec::new();
        let mut wave = Vec::new();
        for r in rollouts.iter().filter(|r| r.wave == d.wave) {
            let now_dev = devices.get(&r.device);
            let mut next = self.advance(d, &release, r, now_dev, now);
            let counts = outcome(d, &next, now_dev, now);
            if counts == Some(false) && next.state == DeviceRollout::Succeeded {
                next.state = DeviceRollout::Failed;
                next.reason = Some(if now > d.deadline_at {
                    "not online long enough to soak by the deployment's deadline".into()
                } else {
                    "a critical alarm was raised after the install".into()
                });
                next.updated_at = now;
            }
            if next != *r {
                self.store.set_rollout(&d.id, &next).await?;
            }
            outcomes.push(counts);
            wave.push(next);
        }
        match judge(&outcomes, d.thresholds) {
            WaveVerdict::Going => Ok(()),
            WaveVerdict::Passed => {
                let last = !rollouts.iter().any(|r| r.wave > d.wave);
                if last {
                    let why = format!("{} devices run {}", rollouts.len(), d.version);
                    self.store
                        .set_deployment(
                            &d.id,
                            DeploymentState::Completed,
                            d.wave,
                            Some(&why),
                            "deployment_completed",
                            "server",
                            now,
                        )
                        .await?;
                    tracing::info!(deployment = %d.id, "deployment completed");
                } else {
                    let (state, why) = if d.manual {
                        (
                            DeploymentState::Paused,
                            format!("wave {} passed; resume to start the next", d.wave + 1),
                        )
                    } else {
                        (
                            DeploymentState::Running,
                            format!("wave {} passed", d.wave + 1),
                        )
                    };
                    self.store
                        .set_deployment(
                            &d.id,
                            state,
                            d.wave + 1,
                            Some(&why),
                            "deployment_wave_passed",
                            "server",
                            now,
                        )
                        .await?;
                    tracing::info!(deployment = %d.id, wave = d.wave + 2, "next wave");
                }
                Ok(())
            }
            WaveVerdict::Failed { failures, of } => {
                let reasons: Vec<String> = wave
                    .iter()
                    .filter(|r| r.state.is_failure())
                    .take(3)
                    .map(|r| {
                        format!(
                            "{}: {}",
                            r.device,
                            r.reason.as_deref().unwrap_or(r.state.as_str())
                        )
                    })
                    .collect();
                let why = format!(
                    "wave {}: {failures} of {of} failed ({})",
                    d.wave + 1,
                    reasons.join("; ")
                );
                self.halt(d, &wave, &why, now).await
            }
        }
    }

    /// Where one device of the wave under way goes next.
    fn advance(
        &self,
        d: &DeploymentRow,
        release: &ReleaseRow,
        r: &RolloutRow,
        now_dev: Option<&DeviceNow>,
        now: i64,
    ) -> RolloutRow {
        let mut next = r.clone();
        let online = now_dev.is_some_and(|n| n.online) && self.online.is_online(&r.device);
        let past_deadline = now > d.deadline_at;
        match r.state {
            DeviceRollout::Pending => {
                if past_deadline {
                    next.state = DeviceRollout::Failed;
                    next.reason = Some("offline until the deployment's deadline".into());
                } else if online {
                    let running = now_dev.and_then(|n| n.agent_version.clone());
                    if running.as_deref() == Some(d.version.as_str()) && !d.rollback {
                        next.state = DeviceRollout::Succeeded;
                        next.reason = Some("already runs this version".into());
                        next.succeeded_at = Some(now);
                    } else {
                        self.offer(d, release, &r.device);
                        next.state = DeviceRollout::Offered;
                        next.offered_at = Some(now);
                        next.from_version = running;
                    }
                }
            }
            s if !s.is_final() => {
                if let Some((v, word, reason, at)) = now_dev.and_then(|n| n.report.as_ref())
                    && *v == d.version
                    && at + CLOCK_SLACK_MS >= r.offered_at.unwrap_or(0)
                    && let Some(state) = DeviceRollout::from_report(word)
                {
                    next.state = state;
                    next.reason = reason.clone();
                    if state == DeviceRollout::Succeeded {
                        next.succeeded_at = Some(now);
                    }
                } else if s == DeviceRollout::Offered
                    && online
                    && now - r.offered_at.unwrap_or(0) > REOFFER_MS
                {
                    self.offer(d, release, &r.device);
                    next.offered_at = Some(now);
                }
                if past_deadline && !next.state.is_final() {
                    next.state = DeviceRollout::Failed;
                    next.reason = Some(format!(
                        "not done by the deployment's deadline (last: {})",
                        r.state.as_str()
                    ));
                }
            }
            _ => {}
        }
        if next != *r {
            next.updated_at = now;
        }
        next
    }

    fn offer(&self, d: &DeploymentRow, release: &ReleaseRow, device: &DeviceId) {
        let update = Update {
            v: protocol::PROTOCOL_VERSION,
            body: UpdateBody::Offer {
                release: release.signed.clone(),
                rollback: d.rollback,
                install: true,
                window: d.window.clone(),
            },
        };
        self.publisher
            .publish(device, Channel::Update, protocol::encode(&update));
    }

    /// Stops the deployment and offers the version before back to the wave's devices that
    /// took the new one (when that version is a stored release).
    async fn halt(
        &self,
        d: &DeploymentRow,
        rollouts: &[RolloutRow],
        why: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        tracing::warn!(deployment = %d.id, reason = %why, "deployment halted");
        if !self
            .store
            .set_deployment(
                &d.id,
                DeploymentState::Halted,
                d.wave,
                Some(why),
                "deployment_halted",
                "server",
                now,
            )
            .await?
        {
            return Ok(());
        }
        for r in rollouts.iter().filter(|r| r.wave == d.wave) {
            let mut next = r.clone();
            match r.state {
                DeviceRollout::Succeeded
                | DeviceRollout::Installing
                | DeviceRollout::Confirming => match self.back_to(d, r).await? {
                    Ok(release) => {
                        let back = DeploymentRow {
                            rollback: true,
                            ..d.clone()
                        };
                        self.offer(&back, &release, &r.device);
                        next.state = DeviceRollout::RollingBack;
                        next.offered_at = Some(now);
                        next.reason = Some(format!(
                            "the deployment halted: going back to {}",
                            release.manifest.version
                        ));
                    }
                    Err(why) => next.reason = Some(why),
                },
                s if !s.is_final() => {
                    next.state = DeviceRollout::Failed;
                    next.reason = Some("the deployment halted before this device finished".into());
                }
                _ => {}
            }
            if next != *r {
                next.updated_at = now;
                self.store.set_rollout(&d.id, &next).await?;
            }
        }
        Ok(())
    }

    /// The release of the version a device ran before, if it can go back to it.
    async fn back_to(
        &self,
        d: &DeploymentRow,
        r: &RolloutRow,
    ) -> Result<Result<ReleaseRow, String>, StoreError> {
        let Some(from) = r.from_version.as_deref() else {
            return Ok(Err(
                "cannot go back: the version it ran before is unknown".into()
            ));
        };
        let Ok(v) = Version::parse(from) else {
            return Ok(Err(format!("cannot go back to {from:?}: not a version")));
        };
        Ok(match self.store.release(&d.target, v).await? {
            Some(rel) if rel.state() == ReleaseState::Available => Ok(rel),
            _ => Err(format!(
                "cannot go back to {from}: no available release of it for {} (upload it and deploy it)",
                d.target
            )),
        })
    }

    /// A halted deployment: devices taken back report the version before.
    async fn follow_rollbacks(
        &self,
        d: &DeploymentRow,
        rollouts: &[RolloutRow],
        devices: &HashMap<DeviceId, DeviceNow>,
        now: i64,
    ) -> Result<(), StoreError> {
        for r in rollouts
            .iter()
            .filter(|r| r.state == DeviceRollout::RollingBack)
        {
            let back = devices
                .get(&r.device)
                .and_then(|n| n.report.as_ref())
                .filter(|(v, s, _, at)| {
                    Some(v.as_str()) == r.from_version.as_deref()
                        && s == "succeeded"
                        && at + CLOCK_SLACK_MS >= r.offered_at.unwrap_or(0)
                });
            if back.is_some() {
                let mut next = r.clone();
                next.state = DeviceRollout::RolledBack;
                next.reason = Some(format!(
                    "the deployment halted; back on {}",
                    r.from_version.as_deref().unwrap_or("?")
                ));
                next.updated_at = now;
                self.store.set_rollout(&d.id, &next).await?;
            }
        }
        Ok(())
    }
}

/// How a device of the wave under way counts for the wave: succeeded and soaked (online, no
/// critical alarm since), failed, or not yet.
fn outcome(
    d: &DeploymentRow,
    r: &RolloutRow,
    now_dev: Option<&DeviceNow>,
    now: i64,
) -> Option<bool> {
    match r.state {
        DeviceRollout::Succeeded => {
            let since = r.succeeded_at.unwrap_or(now);
            if now_dev
                .and_then(|n| n.critical_since)
                .is_some_and(|c| c >= since)
            {
                return Some(false);
            }
            let soaked = now - since >= d.soak_secs * 1000;
            if soaked && now_dev.is_some_and(|n| n.online) {
                Some(true)
            } else if now > d.deadline_at {
                Some(false)
            } else {
                None
            }
        }
        s if s.is_failure() => Some(false),
        _ => None,
    }
}

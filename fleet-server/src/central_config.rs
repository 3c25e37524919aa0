//! Central configuration: administrators set desired agent settings on layers (fleet, site
//! kind, site, label, device); the leading replica sends each online device its merged set
//! until the device reports it in effect, and counts the devices that drift.
//!
//! A set is named by its content (`Settings::version`), so every replica computes the same
//! version for the same layers and "drift" is desired version ≠ reported version.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use domain::config::{Desired, Layer, Placement, Scope, desired};
use protocol::settings::Settings;
use protocol::{Channel, ConfigSync, DeviceId};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::devices::{Online, Publisher};
use crate::store::{ConfigFacts, LayerRow, Store, StoreError};

/// A device that has not reported the set it was sent gets it again after this.
const RESEND: Duration = Duration::from_secs(30);
/// Between passes when nothing changed here (another replica's change shows up by then).
const PASS: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// Refused input: the field and why.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub(crate) struct CentralConfig {
    pub(crate) store: Store,
    pub(crate) publisher: Publisher,
    pub(crate) online: Online,
    pub(crate) metrics: crate::metrics::Metrics,
    /// Woken when a layer changes on this replica.
    pub(crate) changed: Arc<Notify>,
}

/// One device's desired and reported configuration.
#[derive(Debug, Clone)]
pub(crate) struct DeviceConfig {
    pub(crate) facts: ConfigFacts,
    pub(crate) desired: Desired,
}

impl DeviceConfig {
    /// The reported set is not the desired one (or was refused, or waits for a restart).
    pub(crate) fn drift(&self) -> bool {
        drifts(&self.desired.settings, &self.facts)
    }
}

fn drifts(desired: &Settings, facts: &ConfigFacts) -> bool {
    match &facts.applied {
        None => !desired.is_empty(),
        Some(a) => a.state != "applied" || a.version != desired.version(),
    }
}

fn placement(f: &ConfigFacts) -> Placement<'_> {
    Placement {
        device: &f.device,
        site: f.site.as_deref(),
        site_kind: f.site_kind.as_deref(),
        labels: Some(&f.labels),
    }
}

impl CentralConfig {
    /// Checks and stores one layer (an empty set removes it), then wakes the sender.
    pub(crate) async fn set_layer(
        &self,
        scope: &str,
        key: &str,
        settings: Settings,
        by: &str,
        at: i64,
    ) -> Result<Option<LayerRow>, ConfigError> {
        let invalid = |s: String| ConfigError::Invalid(s);
        let scope = Scope::parse(scope).ok_or_else(|| {
            ConfigError::NotFound(format!(
                "no configuration scope {scope:?}: one of {}",
                Scope::choices()
            ))
        })?;
        match scope {
            Scope::Fleet if !key.is_empty() => {
                return Err(invalid(
                    "the fleet layer has no key: PUT /api/v1/config/fleet".into(),
                ));
            }
            Scope::SiteKind if domain::flows::SiteKind::parse(key).is_none() => {
                return Err(invalid(format!(
                    "site kind {key:?} is not one of {}",
                    domain::flows::SiteKind::choices()
                )));
            }
            Scope::Site if self.store.site(key).await?.is_none() => {
                return Err(ConfigError::NotFound(format!(
                    "no site {key:?}: create it first (POST /api/v1/sites)"
                )));
            }
            Scope::Label => {
                domain::labels::parse_pair(key)
                    .map_err(|e| invalid(format!("label layer key: {e}")))?;
            }
            Scope::Device => {
                DeviceId::parse(key).map_err(|e| invalid(format!("device {key:?}: {e}")))?;
            }
            _ => {}
        }
        settings
            .check()
            .map_err(|e| invalid(format!("field `settings`: {e}")))?;
        let row = self
            .store
            .set_config_layer(scope, key, &settings, by, at)
            .await?;
        self.changed.notify_one();
        Ok(row)
    }

    /// What the layers want of every known device (or one), with what it reported.
    pub(crate) async fn devices(
        &self,
        only: Option<&DeviceId>,
    ) -> Result<Vec<DeviceConfig>, StoreError> {
        let layers: Vec<Layer> = self
            .store
            .config_layers()
            .await?
            .into_iter()
            .map(|l| l.layer)
            .collect();
        let facts = self.store.config_facts(only.map(DeviceId::as_str)).await?;
        Ok(facts
            .into_iter()
            .map(|f| DeviceConfig {
                desired: desired(&layers, &placement(&f)),
                facts: f,
            })
            .collect())
    }

    /// On the leading replica: each pass sends every online device whose reported set is
    /// not the desired one its set (again after [`RESEND`] without an answer), and sets the
    /// drift gauge.
    pub(crate) async fn run(self, cancel: CancellationToken) {
        let mut sent: HashMap<String, (String, Instant)> = HashMap::new();
        loop {
            match self.devices(None).await {
                Ok(all) => {
                    let mut drifting = 0;
                    for d in &all {
                        if !d.drift() {
                            sent.remove(&d.facts.device);
                            continue;
                        }
                        drifting += 1;
                        if d.facts
                            .applied
                            .as_ref()
                            .is_some_and(|a| a.state == "refused")
                            && d.facts.applied.as_ref().map(|a| &a.version)
                                == Some(&d.desired.settings.version())
                        {
                            // The device said why it cannot; sending it again changes nothing.
                            continue;
                        }
                        let Ok(id) = DeviceId::parse(&d.facts.device) else {
                            continue;
                        };
                        if !self.online.is_online(&id) {
                            continue;
                        }
                        let version = d.desired.settings.version();
                        let due = sent
                            .get(&d.facts.device)
                            .is_none_or(|(v, at)| *v != version || at.elapsed() >= RESEND);
                        if due {
                            self.send(&id, &version, &d.desired.settings);
                            sent.insert(d.facts.device.clone(), (version, Instant::now()));
                        }
                    }
                    self.metrics.config_drift.set(drifting);
                }
                Err(e) => tracing::warn!(error = %e, "reading configuration failed; retrying"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(PASS) => {}
            }
        }
    }

    fn send(&self, device: &DeviceId, version: &str, settings: &Settings) {
        let msg = ConfigSync {
            v: protocol::PROTOCOL_VERSION,
            version: version.to_string(),
            settings: settings.clone(),
        };
        self.publisher
            .publish(device, Channel::Config, protocol::encode(&msg));
        self.metrics.config_syncs.inc();
        tracing::debug!(%device, version, "configuration sent");
    }
}

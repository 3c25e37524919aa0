//! Health as `/healthz` reports it: the database's last known state and, in external broker
//! mode, whether this replica is connected to the broker.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// The link to the external broker: since when it has been up (epoch ms), 0 while down. A
/// time, not a flag: an outage shorter than a sweep's second must still be seen, since the
/// heartbeats sent during it were never heard.
#[derive(Debug, Default)]
pub struct BrokerLink(AtomicI64);

impl BrokerLink {
    pub fn up(&self) {
        self.0
            .store(crate::clock::now_ms().max(1), Ordering::Relaxed);
    }

    pub fn down(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// When the link last came up; `None` while it is down.
    pub fn since(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

#[derive(Clone, Default)]
pub struct Health {
    /// What each ingest lane's last database call failed with, until its next success: one
    /// lane retrying a batch is a problem however well the others go.
    db_errors: Arc<Mutex<std::collections::BTreeMap<usize, String>>>,
    /// Set once an external broker is in use; the embedded one cannot be away.
    external: Arc<AtomicBool>,
    broker: Arc<BrokerLink>,
}

impl Health {
    /// Ingest lane `lane` stored a batch.
    pub fn database_ok(&self, lane: usize) {
        if let Ok(mut e) = self.db_errors.lock() {
            e.remove(&lane);
        }
    }

    /// Ingest lane `lane` failed to store (and retries).
    pub fn database_failed(&self, lane: usize, err: &dyn std::fmt::Display) {
        if let Ok(mut e) = self.db_errors.lock() {
            e.insert(lane, err.to_string());
        }
    }

    /// The link state the external broker's client keeps.
    pub fn broker_link(&self) -> Arc<BrokerLink> {
        self.external.store(true, Ordering::Relaxed);
        self.broker.clone()
    }

    /// Since when this replica hears the devices: always for the embedded broker
    /// (`Some(i64::MIN)`), else since its link to the external one came up; `None` while down.
    pub fn hearing_since(&self) -> Option<i64> {
        if self.external.load(Ordering::Relaxed) {
            self.broker.since()
        } else {
            Some(i64::MIN)
        }
    }

    /// `None` when the database is healthy, else what is wrong.
    pub fn problem(&self) -> Option<String> {
        self.db_errors
            .lock()
            .ok()
            .and_then(|e| e.values().next().cloned())
    }

    /// The external broker: `None` in embedded mode, else `Ok` or what is wrong.
    pub fn broker(&self) -> Option<Result<(), String>> {
        self.external.load(Ordering::Relaxed).then(|| {
            if self.broker.since().is_some() {
                Ok(())
            } else {
                Err("not connected to the external MQTT broker (see the server log)".to_owned())
            }
        })
    }
}

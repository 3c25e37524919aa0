//! Health as `/healthz` reports it: the database's last known state and, in external broker
//! mode, whether this replica is connected to the broker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Health {
    db_error: Arc<Mutex<Option<String>>>,
    /// Set once an external broker is in use; the embedded one cannot be away.
    external: Arc<AtomicBool>,
    broker_connected: Arc<AtomicBool>,
}

impl Health {
    pub fn database_ok(&self) {
        if let Ok(mut e) = self.db_error.lock() {
            *e = None;
        }
    }

    pub fn database_failed(&self, err: &dyn std::fmt::Display) {
        if let Ok(mut e) = self.db_error.lock() {
            *e = Some(err.to_string());
        }
    }

    /// The flag the external broker's client keeps: connected or not.
    pub fn broker_flag(&self) -> Arc<AtomicBool> {
        self.external.store(true, Ordering::Relaxed);
        self.broker_connected.clone()
    }

    /// `None` when the database is healthy, else what is wrong.
    pub fn problem(&self) -> Option<String> {
        self.db_error.lock().ok().and_then(|e| e.clone())
    }

    /// The external broker: `None` in embedded mode, else `Ok` or what is wrong.
    pub fn broker(&self) -> Option<Result<(), String>> {
        self.external.load(Ordering::Relaxed).then(|| {
            if self.broker_connected.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("not connected to the external MQTT broker (see the server log)".to_owned())
            }
        })
    }
}

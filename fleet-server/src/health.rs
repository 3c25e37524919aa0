//! Health as `/healthz` reports it: the database's last known state.

use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Health {
    db_error: Arc<Mutex<Option<String>>>,
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

    /// `None` when healthy, else what is wrong.
    pub fn problem(&self) -> Option<String> {
        self.db_error.lock().ok().and_then(|e| e.clone())
    }
}

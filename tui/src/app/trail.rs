//! The operator's own trail this session: every remote open, acknowledgement and deployment
//! change they made, with its outcome as it arrives (`t` shows it). Kept in memory only: the
//! server's audit log is the record; this is the operator's "what did I just do".

use super::{App, DeployAct};

/// What the operator did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deed {
    Open { device: String, box_no: u16 },
    Ack { alarm: String },
    Deploy { id: String, act: DeployAct },
}

/// How it went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Sent; no answer yet (a remote open: its latest status).
    Pending(Option<String>),
    /// Done, with the final status (a remote open's `opened`, `jammed` …) and latency.
    Done(String, Option<i64>),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrailEntry {
    /// Local time it was asked (epoch ms).
    pub at: i64,
    pub deed: Deed,
    /// The reason or note the operator gave.
    pub why: String,
    pub outcome: Outcome,
    /// A remote open's command id, once the server accepted it.
    pub command: Option<String>,
}

/// The most entries kept (the oldest go first).
pub const TRAIL_MAX: usize = 200;

impl App {
    pub(super) fn trail_begin(&mut self, deed: Deed, why: &str) {
        if self.trail.len() == TRAIL_MAX {
            self.trail.remove(0);
        }
        self.trail.push(TrailEntry {
            at: self.clock_ms,
            deed,
            why: why.to_owned(),
            outcome: Outcome::Pending(None),
            command: None,
        });
    }

    /// The newest still-pending entry `matches` picks.
    fn trail_pending(&mut self, matches: impl Fn(&TrailEntry) -> bool) -> Option<&mut TrailEntry> {
        self.trail
            .iter_mut()
            .rev()
            .find(|e| matches!(e.outcome, Outcome::Pending(_)) && matches(e))
    }

    pub(super) fn trail_open_accepted(&mut self, c: &crate::model::Command) {
        if let Some(e) = self.trail_pending(|e| {
            e.command.is_none()
                && e.deed
                    == Deed::Open {
                        device: c.device_id.clone(),
                        box_no: c.box_no,
                    }
        }) {
            e.command = Some(c.command_id.clone());
            e.outcome = Outcome::Pending(Some(c.status.as_str().to_owned()));
        }
    }

    pub(super) fn trail_open_refused(&mut self, error: &str) {
        if let Some(e) =
            self.trail_pending(|e| matches!(e.deed, Deed::Open { .. }) && e.command.is_none())
        {
            e.outcome = Outcome::Failed(error.to_owned());
        }
    }

    pub(super) fn trail_command(&mut self, c: &crate::model::Command) {
        if let Some(e) = self.trail_pending(|e| e.command.as_deref() == Some(&c.command_id)) {
            e.outcome = if c.is_final() {
                Outcome::Done(c.status.as_str().to_owned(), c.latency_ms)
            } else {
                Outcome::Pending(Some(c.status.as_str().to_owned()))
            };
        }
    }

    pub(super) fn trail_acked(&mut self, result: &Result<String, String>) {
        let settle = |e: &mut TrailEntry, r: &Result<String, String>| {
            e.outcome = match r {
                Ok(_) => Outcome::Done("acknowledged".into(), None),
                Err(why) => Outcome::Failed(why.clone()),
            };
        };
        let id = result.as_ref().ok().cloned();
        if let Some(e) = self.trail_pending(|e| match (&e.deed, &id) {
            (Deed::Ack { alarm }, Some(id)) => alarm == id,
            (Deed::Ack { .. }, None) => true,
            _ => false,
        }) {
            settle(e, result);
        }
    }

    pub(super) fn trail_deployed(&mut self, result: &Result<String, String>) {
        let id = result.as_ref().ok().cloned();
        if let Some(e) = self.trail_pending(|e| match (&e.deed, &id) {
            (Deed::Deploy { id: d, .. }, Some(id)) => d == id,
            (Deed::Deploy { .. }, None) => true,
            _ => false,
        }) {
            e.outcome = match result {
                Ok(_) => Outcome::Done("changed".into(), None),
                Err(why) => Outcome::Failed(why.clone()),
            };
        }
    }
}

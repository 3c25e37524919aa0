//! This cabinet's idea of the server's clock, learned from receipts: one per agent, so agents
//! simulated in one process (the fleet simulator) each keep their own, as real cabinets do.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Offsets closer than this to the current one are network delay, not a wrong clock.
const CLOCK_TOLERANCE_MS: i64 = 1_000;
/// Samples kept: a receipt delayed by a busy link or server gives a sample too low by its
/// delay, never too high, so the best estimate is the highest of the last few.
const SAMPLE_WINDOW: usize = 16;

/// An agent's clock: the machine's own (however wrong), and the server's as far as this agent
/// has learned it from receipts (`Receipt::at`).
#[derive(Debug, Default)]
pub struct Clock {
    /// A wrong real-time clock, for tests and demonstrations (`fake.clock_skew_ms`).
    skew_ms: i64,
    /// The server's clock minus this machine's.
    offset_ms: AtomicI64,
    /// Recent offset samples (server time in a receipt minus local time at its arrival).
    samples: Mutex<VecDeque<i64>>,
}

impl Clock {
    /// This machine's clock, `skew_ms` off (0: as it is).
    pub fn new(skew_ms: i64) -> Clock {
        Clock {
            skew_ms,
            ..Clock::default()
        }
    }

    /// This machine's own clock (epoch ms), however wrong.
    pub fn local_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
            + self.skew_ms
    }

    /// Now on the server's clock, as far as this agent knows it: every time it stamps or
    /// judges (event times, command expiry, code windows, lockouts) comes from here, so a
    /// cabinet whose clock is hours off still judges server-issued times right once it has
    /// heard the server.
    pub fn now_ms(&self) -> i64 {
        self.local_ms() + self.offset_ms()
    }

    /// The server's clock minus this machine's, as learned so far.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Starts from an offset learned before (kept in the outbox across restarts).
    pub(crate) fn restore(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }

    /// Learns the server's clock from a receipt; the new offset when it changed.
    pub(crate) fn learn(&self, server_at: i64) -> Option<i64> {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == SAMPLE_WINDOW {
            samples.pop_front();
        }
        samples.push_back(server_at - self.local_ms());
        let offset = adopt_offset(self.offset_ms(), &samples)?;
        self.offset_ms.store(offset, Ordering::Relaxed);
        Some(offset)
    }
}

/// The new offset when the best of the recent samples is further than the tolerance from
/// `current`.
pub(crate) fn adopt_offset(current: i64, samples: &VecDeque<i64>) -> Option<i64> {
    let best = samples.iter().copied().max()?;
    ((best - current).abs() > CLOCK_TOLERANCE_MS).then_some(best)
}

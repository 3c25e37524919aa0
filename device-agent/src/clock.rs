//! This cabinet's idea of the server's clock, learned from receipts.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The server's clock minus this cabinet's, learned from receipts (`Receipt::at`). One per
/// process: an agent is a process; in-process simulators share the server's host clock.
pub(crate) static CLOCK_OFFSET_MS: AtomicI64 = AtomicI64::new(0);
/// A wrong real-time clock, for tests and demonstrations (`--fake-clock-skew-ms`).
pub(crate) static FAKE_SKEW_MS: AtomicI64 = AtomicI64::new(0);
/// Offsets closer than this to the current one are network delay, not a wrong clock.
pub(crate) const CLOCK_TOLERANCE_MS: i64 = 1_000;

/// This machine's own clock (epoch ms), however wrong.
pub(crate) fn local_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        + FAKE_SKEW_MS.load(Ordering::Relaxed)
}

/// Now on the server's clock, as far as this agent knows it: every time it stamps or judges
/// (event times, command expiry, code windows, lockouts) comes from here, so a cabinet whose
/// clock is hours off still judges server-issued times right once it has heard the server.
pub fn now_ms() -> i64 {
    local_ms() + CLOCK_OFFSET_MS.load(Ordering::Relaxed)
}

/// Makes this process's clock run `skew_ms` off the real one (tests of clock handling).
pub fn set_fake_clock_skew(skew_ms: i64) {
    FAKE_SKEW_MS.store(skew_ms, Ordering::Relaxed);
}

/// Recent offset samples (server time in a receipt minus local time at its arrival).
pub(crate) static SAMPLES: std::sync::Mutex<std::collections::VecDeque<i64>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());
/// Samples kept: a receipt delayed by a busy link or server gives a sample too low by its
/// delay, never too high, so the best estimate is the highest of the last few.
pub(crate) const SAMPLE_WINDOW: usize = 16;

/// The new offset when the best of the recent samples is further than the tolerance from
/// `current`.
pub(crate) fn adopt_offset(current: i64, samples: &std::collections::VecDeque<i64>) -> Option<i64> {
    let best = samples.iter().copied().max()?;
    ((best - current).abs() > CLOCK_TOLERANCE_MS).then_some(best)
}

/// Learns the server's clock from a receipt; the new offset when it changed.
pub(crate) fn learn_server_clock(server_at: i64) -> Option<i64> {
    let mut samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    if samples.len() == SAMPLE_WINDOW {
        samples.pop_front();
    }
    samples.push_back(server_at - local_ms());
    let offset = adopt_offset(CLOCK_OFFSET_MS.load(Ordering::Relaxed), &samples)?;
    CLOCK_OFFSET_MS.store(offset, Ordering::Relaxed);
    Some(offset)
}

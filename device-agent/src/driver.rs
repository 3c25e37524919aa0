//! The `LockDriver` port (what the agent needs from lock hardware) and its `fake` adapter.
//!
//! The port is small on purpose so that a GPIO board (relay per box, reed switch per door) and
//! an RS-485 lock board (Modbus coils and inputs, polled) both fit: pulse one lock, read one
//! door, read one optional occupancy sensor. Every call may fail and may take time (a bus).

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protocol::BoxNo;
use rand::Rng;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("box {0} does not exist on this cabinet")]
    NoSuchBox(BoxNo),
    #[error("lock board did not answer: {0}")]
    Unreachable(String),
}

pub trait LockDriver: Send + Sync + 'static {
    /// Number of boxes, numbered 1..=n.
    fn boxes(&self) -> u16;
    /// Sends the unlock pulse. Says nothing about whether the door opened: read the sensor.
    fn unlock(&self, b: BoxNo) -> impl Future<Output = Result<(), DriverError>> + Send;
    /// `true` when the door sensor reads open.
    fn door_open(&self, b: BoxNo) -> impl Future<Output = Result<bool, DriverError>> + Send;
    /// `None` when the box has no occupancy sensor.
    fn occupied(&self, b: BoxNo) -> impl Future<Output = Result<Option<bool>, DriverError>> + Send;
}

/// Settings of the fake lock hardware.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub boxes: u16,
    /// A door opened by a pulse closes by itself after this long (the person shuts it).
    pub close_after: Duration,
    /// Share of unlock pulses that do nothing (jammed lock), 0.0..=1.0.
    pub jam_rate: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct FakeBox {
    open: bool,
    close_at: Option<Instant>,
    occupied: bool,
}

/// In-memory doors: open on unlock (unless jammed) and close after `close_after`.
/// Tests and the simulator also act as the person at the locker through its methods.
#[derive(Debug)]
pub struct FakeLocks {
    cfg: FakeConfig,
    boxes: Mutex<Vec<FakeBox>>,
    pulses: std::sync::atomic::AtomicU64,
}

impl FakeLocks {
    pub fn new(cfg: FakeConfig) -> FakeLocks {
        FakeLocks {
            boxes: Mutex::new(vec![FakeBox::default(); usize::from(cfg.boxes)]),
            cfg,
            pulses: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn with_box<T>(&self, b: BoxNo, f: impl FnOnce(&mut FakeBox) -> T) -> Result<T, DriverError> {
        let mut boxes = self
            .boxes
            .lock()
            .map_err(|_| DriverError::Unreachable("fake board state poisoned".into()))?;
        let fb = boxes
            .get_mut(usize::from(b.get()) - 1)
            .ok_or(DriverError::NoSuchBox(b))?;
        if fb.close_at.is_some_and(|t| Instant::now() >= t) {
            fb.open = false;
            fb.close_at = None;
        }
        Ok(f(fb))
    }

    /// Someone opens the door by hand (it stays open until [`FakeLocks::close`]).
    pub fn open_by_hand(&self, b: BoxNo) -> Result<(), DriverError> {
        self.with_box(b, |fb| {
            fb.open = true;
            fb.close_at = None;
        })
    }

    pub fn close(&self, b: BoxNo) -> Result<(), DriverError> {
        self.with_box(b, |fb| {
            fb.open = false;
            fb.close_at = None;
        })
    }

    pub fn set_occupied(&self, b: BoxNo, occupied: bool) -> Result<(), DriverError> {
        self.with_box(b, |fb| fb.occupied = occupied)
    }

    /// Unlock pulses sent so far (tests check that a command never pulses twice).
    pub fn pulses(&self) -> u64 {
        self.pulses.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl LockDriver for FakeLocks {
    fn boxes(&self) -> u16 {
        self.cfg.boxes
    }

    async fn unlock(&self, b: BoxNo) -> Result<(), DriverError> {
        let jammed =
            self.cfg.jam_rate > 0.0 && rand::thread_rng().gen_bool(self.cfg.jam_rate.min(1.0));
        let close_after = self.cfg.close_after;
        self.with_box(b, |fb| {
            if !jammed {
                fb.open = true;
                fb.close_at = Some(Instant::now() + close_after);
            }
        })?;
        self.pulses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn door_open(&self, b: BoxNo) -> Result<bool, DriverError> {
        self.with_box(b, |fb| fb.open)
    }

    async fn occupied(&self, b: BoxNo) -> Result<Option<bool>, DriverError> {
        self.with_box(b, |fb| Some(fb.occupied))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: u16) -> BoxNo {
        BoxNo::new(n).expect("box")
    }

    #[tokio::test]
    async fn doors_open_on_unlock_and_close_later() {
        let f = FakeLocks::new(FakeConfig {
            boxes: 2,
            close_after: Duration::from_millis(30),
            jam_rate: 0.0,
        });
        assert!(!f.door_open(b(1)).await.expect("read"));
        f.unlock(b(1)).await.expect("unlock");
        assert!(f.door_open(b(1)).await.expect("read"));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(!f.door_open(b(1)).await.expect("read"));
        assert!(f.door_open(b(3)).await.is_err());
    }

    #[tokio::test]
    async fn jammed_locks_stay_shut() {
        let f = FakeLocks::new(FakeConfig {
            boxes: 1,
            close_after: Duration::from_secs(1),
            jam_rate: 1.0,
        });
        f.unlock(b(1)).await.expect("pulse sent");
        assert!(!f.door_open(b(1)).await.expect("read"));
        assert_eq!(f.pulses(), 1);
    }
}

//! The `LockDriver` port (what the agent needs from the device's hardware) and its `fake`
//! adapter.
//!
//! The port is small on purpose so that a GPIO board (relay per box, reed switch per door) and
//! an RS-485 lock board (Modbus coils and inputs, polled) both fit: pulse one lock, read one
//! door, read one optional occupancy sensor. Every call may fail and may take time (a bus).
//! Two optional reads have defaults for hardware without them: cabinet signals (power supply,
//! tamper switch) and, on station devices (kiosk, tax machine, printer), the peripherals'
//! status. A station has no boxes; it is the same port with `boxes() == 0`.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protocol::{BoxNo, Level, Profile, StationStatus};
use rand::Rng;

#[derive(Debug, Clone, thiserror::Error)]
pub enum DriverError {
    #[error("box {0} does not exist on this cabinet")]
    NoSuchBox(BoxNo),
    #[error("lock board did not answer: {0}")]
    Unreachable(String),
    /// The board answered, with an error: the register map does not fit the board.
    #[error("lock board refused: {0}")]
    Refused(String),
}

/// One box's sensors as one poll read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxReading {
    pub door_open: bool,
    /// `None` when the box has no occupancy sensor.
    pub occupied: Option<bool>,
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
    /// Every box's sensors, one result per box in box order. The default asks box by box; a
    /// bus adapter reads each board in one request.
    fn sense(&self) -> impl Future<Output = Vec<Result<BoxReading, DriverError>>> + Send {
        async {
            let mut out = Vec::with_capacity(usize::from(self.boxes()));
            for b in BoxNo::all(self.boxes()) {
                let reading = async {
                    Ok(BoxReading {
                        door_open: self.door_open(b).await?,
                        occupied: self.occupied(b).await?,
                    })
                };
                out.push(reading.await);
            }
            out
        }
    }
    /// Cabinet-wide signals; `None` fields where the hardware has no such sensor.
    fn signals(&self) -> impl Future<Output = Result<Signals, DriverError>> + Send {
        async { Ok(Signals::default()) }
    }
    /// A station device's peripherals; `None` on a locker cabinet.
    fn station(&self) -> impl Future<Output = Result<Option<StationStatus>, DriverError>> + Send {
        async { Ok(None) }
    }
}

/// Cabinet-wide signals of the hardware.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// The supply switched to the battery (mains lost).
    pub on_battery: Option<bool>,
    /// The enclosure's tamper switch is open.
    pub tamper: Option<bool>,
}

/// Settings of the fake lock hardware.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub boxes: u16,
    /// A door opened by a pulse closes by itself after this long (the person shuts it).
    pub close_after: Duration,
    /// Share of unlock pulses that do nothing (jammed lock), 0.0..=1.0.
    pub jam_rate: f64,
    /// A station profile gives the fake peripherals of that device.
    pub profile: Profile,
    /// Appends `box N` and syncs, before each pulse takes effect: a record that survives the
    /// agent being killed, so tests can prove a command never pulses twice across restarts.
    pub pulse_log: Option<std::path::PathBuf>,
}

impl FakeConfig {
    /// A locker cabinet of `boxes` boxes whose doors close 3 s after a pulse.
    pub fn locker(boxes: u16) -> FakeConfig {
        FakeConfig {
            boxes,
            close_after: Duration::from_secs(3),
            jam_rate: 0.0,
            profile: Profile::Locker,
            pulse_log: None,
        }
    }
}

/// What tests and people can break on the fake hardware besides doors.
#[derive(Debug, Clone, Copy, Default)]
struct FakeExtras {
    /// Every board call fails, as when the RS-485 bus is cut.
    bus_down: bool,
    on_battery: bool,
    tamper: bool,
    station: Option<StationStatus>,
}

#[derive(Debug, Clone, Copy, Default)]
struct FakeBox {
    open: bool,
    close_at: Option<Instant>,
    occupied: bool,
    /// The next unlock pulse does nothing (a fault armed by a test or the simulator).
    jam_next: bool,
}

/// In-memory doors: open on unlock (unless jammed) and close after `close_after`.
/// Tests and the simulator also act as the person at the locker through its methods.
#[derive(Debug)]
pub struct FakeLocks {
    cfg: FakeConfig,
    boxes: Mutex<Vec<FakeBox>>,
    pulses: std::sync::atomic::AtomicU64,
    extras: Mutex<FakeExtras>,
}

impl FakeLocks {
    pub fn new(cfg: FakeConfig) -> FakeLocks {
        // A printer has toner; the kiosk's and the tax machine's receipt printers are thermal.
        let station = match cfg.profile {
            Profile::Locker => None,
            Profile::Printer => Some(StationStatus::default()),
            Profile::Kiosk | Profile::TaxMachine => Some(StationStatus {
                toner: Level::Absent,
                ..StationStatus::default()
            }),
        };
        let boxes = if cfg.profile.is_station() {
            0
        } else {
            cfg.boxes
        };
        FakeLocks {
            boxes: Mutex::new(vec![FakeBox::default(); usize::from(boxes)]),
            cfg: FakeConfig { boxes, ..cfg },
            pulses: std::sync::atomic::AtomicU64::new(0),
            extras: Mutex::new(FakeExtras {
                station,
                ..FakeExtras::default()
            }),
        }
    }

    fn extras(&self) -> std::sync::MutexGuard<'_, FakeExtras> {
        self.extras.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts (or restores) the lock bus: every board call fails until restored.
    pub fn set_bus_down(&self, down: bool) {
        self.extras().bus_down = down;
    }

    pub fn set_on_battery(&self, on: bool) {
        self.extras().on_battery = on;
    }

    pub fn set_tamper(&self, open: bool) {
        self.extras().tamper = open;
    }

    /// Changes the fake peripherals of a station device.
    pub fn set_station(
        &self,
        f: impl FnOnce(&mut StationStatus),
    ) -> Result<StationStatus, DriverError> {
        let mut extras = self.extras();
        let status = extras.station.as_mut().ok_or_else(|| {
            DriverError::Unreachable("this fake device is a locker cabinet, not a station".into())
        })?;
        f(status);
        Ok(*status)
    }

    fn bus(&self) -> Result<(), DriverError> {
        if self.extras().bus_down {
            return Err(DriverError::Unreachable(
                "lock board did not answer (fake bus cut)".into(),
            ));
        }
        Ok(())
    }

    fn with_box<T>(&self, b: BoxNo, f: impl FnOnce(&mut FakeBox) -> T) -> Result<T, DriverError> {
        self.bus()?;
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

    /// Jams the box's lock for one pulse: the next unlock leaves the door shut. The
    /// simulator injects jams this way so that a seeded run jams the same opens.
    pub fn jam_next(&self, b: BoxNo) -> Result<(), DriverError> {
        self.with_box(b, |fb| fb.jam_next = true)
    }

    /// Keeps an open door open (the person walks away without shutting it) until
    /// [`FakeLocks::close`]. Does nothing to a shut door.
    pub fn hold_open(&self, b: BoxNo) -> Result<bool, DriverError> {
        self.with_box(b, |fb| {
            if fb.open {
                fb.close_at = None;
            }
            fb.open
        })
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
        self.bus()?;
        if let Some(path) = &self.cfg.pulse_log {
            log_pulse(path, b).await.map_err(|e| {
                DriverError::Unreachable(format!("fake pulse log {}: {e}", path.display()))
            })?;
        }
        self.with_box(b, |fb| {
            if !jammed && !std::mem::take(&mut fb.jam_next) {
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

    async fn signals(&self) -> Result<Signals, DriverError> {
        let e = *self.extras();
        Ok(Signals {
            on_battery: Some(e.on_battery),
            tamper: Some(e.tamper),
        })
    }

    async fn station(&self) -> Result<Option<StationStatus>, DriverError> {
        Ok(self.extras().station)
    }
}

async fn log_pulse(path: &std::path::Path, b: BoxNo) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    f.write_all(format!("box {}\n", b.get()).as_bytes()).await?;
    f.sync_data().await
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
            close_after: Duration::from_millis(30),
            ..FakeConfig::locker(2)
        });
        assert!(!f.door_open(b(1)).await.expect("read"));
        f.unlock(b(1)).await.expect("unlock");
        assert!(f.door_open(b(1)).await.expect("read"));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(!f.door_open(b(1)).await.expect("read"));
        assert!(f.door_open(b(3)).await.is_err());
    }

    #[tokio::test]
    async fn an_armed_jam_takes_one_pulse() {
        let f = FakeLocks::new(FakeConfig::locker(1));
        f.jam_next(b(1)).expect("arm");
        f.unlock(b(1)).await.expect("pulse sent");
        assert!(!f.door_open(b(1)).await.expect("read"), "jammed once");
        f.unlock(b(1)).await.expect("pulse sent");
        assert!(
            f.door_open(b(1)).await.expect("read"),
            "the next pulse opens"
        );
        assert!(f.hold_open(b(1)).expect("hold"));
    }

    #[tokio::test]
    async fn jammed_locks_stay_shut() {
        let f = FakeLocks::new(FakeConfig {
            jam_rate: 1.0,
            ..FakeConfig::locker(1)
        });
        f.unlock(b(1)).await.expect("pulse sent");
        assert!(!f.door_open(b(1)).await.expect("read"));
        assert_eq!(f.pulses(), 1);
    }

    #[tokio::test]
    async fn a_cut_bus_fails_every_call_until_restored() {
        let f = FakeLocks::new(FakeConfig::locker(1));
        f.set_bus_down(true);
        assert!(matches!(
            f.door_open(b(1)).await,
            Err(DriverError::Unreachable(_))
        ));
        assert!(f.unlock(b(1)).await.is_err());
        assert_eq!(f.pulses(), 0, "a pulse that never reached the board");
        f.set_bus_down(false);
        assert!(f.unlock(b(1)).await.is_ok());
    }

    #[tokio::test]
    async fn stations_have_peripherals_and_no_boxes() {
        let printer = FakeLocks::new(FakeConfig {
            profile: Profile::Printer,
            ..FakeConfig::locker(24)
        });
        assert_eq!(printer.boxes(), 0);
        let s = printer
            .set_station(|s| s.paper = Level::Low)
            .expect("a station");
        assert_eq!(printer.station().await.expect("read"), Some(s));
        assert_eq!(s.toner, Level::Ok);
        let kiosk = FakeLocks::new(FakeConfig {
            profile: Profile::Kiosk,
            ..FakeConfig::locker(1)
        });
        let s = kiosk.station().await.expect("read").expect("station");
        assert_eq!(s.toner, Level::Absent, "thermal receipt printer");
        let locker = FakeLocks::new(FakeConfig::locker(1));
        assert!(locker.set_station(|s| s.paper_jam = true).is_err());
        assert_eq!(locker.station().await.expect("read"), None);
    }
}

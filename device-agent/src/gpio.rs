//! The GPIO lock adapter: small cabinets wired straight to relays (one output line per lock)
//! and reed switches (one input line per door, optionally one per occupancy sensor), on a
//! Linux GPIO character device (`gpiocdev`).
//!
//! The chip sits behind the small [`Lines`] trait (set one output, read many inputs, in
//! physical levels) so the adapter's logic — the map, active-low wiring, pulses, errors — is
//! tested through a mock where no GPIO chip exists. The chip's lines are requested on first
//! use and held for the life of the process (no other program can drive a lock meanwhile);
//! a failed call drops the request and asks again next time, so a cabinet whose chip is
//! missing still starts and reports a lock-bus fault.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use protocol::BoxNo;

use crate::config::{GpioBias, GpioSettings};
use crate::driver::{BoxReading, DriverError, LockDriver};

/// What the adapter needs from a GPIO chip, in physical levels (true = high).
pub trait Lines: Send + Sync + 'static {
    fn set(&self, line: u32, high: bool) -> Result<(), String>;
    /// The levels of `lines`, in the same order.
    fn get(&self, lines: &[u32]) -> Result<Vec<bool>, String>;
}

/// Checks `settings` against a cabinet of `boxes`: one lock and one door line per box,
/// occupancy lines for every box or none, no line used twice.
pub(crate) fn check_map(settings: &GpioSettings, boxes: u16) -> Result<(), String> {
    let n = usize::from(boxes);
    for (name, lines) in [
        ("lock_lines", &settings.lock_lines),
        ("door_lines", &settings.door_lines),
    ] {
        if lines.len() != n {
            return Err(format!(
                "{name} lists {} lines but the cabinet has boxes = {boxes}; one per box, box 1 first",
                lines.len()
            ));
        }
    }
    if !settings.occupancy_lines.is_empty() && settings.occupancy_lines.len() != n {
        return Err(format!(
            "occupancy_lines lists {} lines; one per box ({boxes}) or none",
            settings.occupancy_lines.len()
        ));
    }
    let mut all: Vec<u32> = settings
        .lock_lines
        .iter()
        .chain(&settings.door_lines)
        .chain(&settings.occupancy_lines)
        .copied()
        .collect();
    all.sort_unstable();
    if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!(
            "line {} is used twice; each line has one job",
            w[0]
        ));
    }
    Ok(())
}

/// Locks and sensors on GPIO lines.
pub struct GpioLocks<L: Lines> {
    lines: L,
    cfg: GpioSettings,
    boxes: u16,
    /// Door lines then occupancy lines: what one poll reads.
    inputs: Vec<u32>,
}

impl<L: Lines> std::fmt::Debug for GpioLocks<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpioLocks")
            .field("boxes", &self.boxes)
            .field("lock_lines", &self.cfg.lock_lines)
            .field("door_lines", &self.cfg.door_lines)
            .finish_non_exhaustive()
    }
}

impl<L: Lines> GpioLocks<L> {
    pub fn new(lines: L, settings: &GpioSettings, boxes: u16) -> Result<GpioLocks<L>, String> {
        check_map(settings, boxes)?;
        Ok(GpioLocks {
            lines,
            cfg: settings.clone(),
            boxes,
            inputs: settings.inputs(),
        })
    }

    fn index(&self, b: BoxNo) -> Result<usize, DriverError> {
        let i = usize::from(b.get()) - 1;
        if i < usize::from(self.boxes) {
            Ok(i)
        } else {
            Err(DriverError::NoSuchBox(b))
        }
    }

    fn read(&self, lines: &[u32]) -> Result<Vec<bool>, DriverError> {
        self.lines.get(lines).map_err(DriverError::Unreachable)
    }

    fn lock(&self, line: u32, on: bool) -> Result<(), DriverError> {
        // An active-low relay board switches on with a low level.
        self.lines
            .set(line, on != self.cfg.locks_active_low)
            .map_err(DriverError::Unreachable)
    }
}

impl<L: Lines> LockDriver for GpioLocks<L> {
    fn boxes(&self) -> u16 {
        self.boxes
    }

    async fn unlock(&self, b: BoxNo) -> Result<(), DriverError> {
        let line = self.cfg.lock_lines[self.index(b)?];
        self.lock(line, true)?;
        tokio::time::sleep(Duration::from_millis(self.cfg.pulse_ms)).await;
        // A relay left on holds the solenoid: try the release twice before giving up.
        if let Err(e) = self.lock(line, false) {
            tracing::warn!(box_no = %b, line, error = %e, "releasing the lock relay failed; trying again");
            self.lock(line, false)?;
        }
        Ok(())
    }

    async fn door_open(&self, b: BoxNo) -> Result<bool, DriverError> {
        let line = self.cfg.door_lines[self.index(b)?];
        let high = self.read(&[line])?;
        Ok(high.first().copied().unwrap_or(false) != self.cfg.doors_active_low)
    }

    async fn occupied(&self, b: BoxNo) -> Result<Option<bool>, DriverError> {
        let i = self.index(b)?;
        let Some(&line) = self.cfg.occupancy_lines.get(i) else {
            return Ok(None);
        };
        let high = self.read(&[line])?;
        Ok(high.first().map(|h| *h != self.cfg.occupancy_active_low))
    }

    async fn sense(&self) -> Vec<Result<BoxReading, DriverError>> {
        let n = usize::from(self.boxes);
        match self.read(&self.inputs) {
            Ok(levels) if levels.len() == self.inputs.len() => (0..n)
                .map(|i| {
                    Ok(BoxReading {
                        door_open: levels[i] != self.cfg.doors_active_low,
                        occupied: levels
                            .get(n + i)
                            .filter(|_| !self.cfg.occupancy_lines.is_empty())
                            .map(|h| *h != self.cfg.occupancy_active_low),
                    })
                })
                .collect(),
            Ok(levels) => {
                let e = DriverError::Unreachable(format!(
                    "the chip answered {} of {} lines",
                    levels.len(),
                    self.inputs.len()
                ));
                vec![Err(e); n]
            }
            Err(e) => vec![Err(e); n],
        }
    }
}

/// The real chip: `/dev/gpiochipN`, lock lines as outputs (off), door and occupancy lines as
/// inputs with the configured bias, requested on first use.
pub struct ChipLines {
    chip: PathBuf,
    cfg: GpioSettings,
    request: Mutex<Option<gpiocdev::Request>>,
}

impl ChipLines {
    pub fn new(chip: PathBuf, settings: &GpioSettings) -> ChipLines {
        ChipLines {
            chip,
            cfg: settings.clone(),
            request: Mutex::new(None),
        }
    }

    fn open(&self) -> Result<gpiocdev::Request, String> {
        use gpiocdev::line::{Bias, Value};
        let bias = match self.cfg.bias {
            GpioBias::PullUp => Some(Bias::PullUp),
            GpioBias::PullDown => Some(Bias::PullDown),
            GpioBias::None => None,
        };
        let inputs = self.cfg.inputs();
        let off = if self.cfg.locks_active_low {
            Value::Active
        } else {
            Value::Inactive
        };
        gpiocdev::Request::builder()
            .on_chip(&self.chip)
            .with_consumer("lockerfleet-agent")
            .with_lines(&self.cfg.lock_lines)
            .as_output(off)
            .with_lines(&inputs)
            .as_input()
            .with_bias(bias)
            .request()
            .map_err(|e| format!("GPIO chip {}: {e}", self.chip.display()))
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&gpiocdev::Request) -> Result<T, gpiocdev::Error>,
    ) -> Result<T, String> {
        let mut held = self.request.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_none() {
            *held = Some(self.open()?);
        }
        let Some(req) = held.as_ref() else {
            return Err(format!("GPIO chip {}: not requested", self.chip.display()));
        };
        f(req).map_err(|e| {
            // Asked again next time: the chip may have been reset or replugged.
            *held = None;
            format!("GPIO chip {}: {e}", self.chip.display())
        })
    }
}

impl Lines for ChipLines {
    fn set(&self, line: u32, high: bool) -> Result<(), String> {
        use gpiocdev::line::Value;
        let v = if high { Value::Active } else { Value::Inactive };
        self.with(|req| req.set_value(line, v))
    }

    fn get(&self, lines: &[u32]) -> Result<Vec<bool>, String> {
        use gpiocdev::line::{Value, Values};
        self.with(|req| {
            let mut values = Values::from_offsets(lines);
            req.values(&mut values)?;
            Ok(lines
                .iter()
                .map(|l| values.get(*l) == Some(Value::Active))
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;

    /// A GPIO chip in memory: levels per line, every write logged, and relays that spring
    /// their door open (lock line → door line) like a real cabinet.
    #[derive(Default)]
    struct MockLines {
        levels: Mutex<HashMap<u32, bool>>,
        writes: Mutex<Vec<(u32, bool)>>,
        reads: Mutex<u32>,
        spring: HashMap<u32, (u32, bool)>,
        dead: Mutex<bool>,
    }

    impl Lines for Arc<MockLines> {
        fn set(&self, line: u32, high: bool) -> Result<(), String> {
            if *self.dead.lock().expect("dead") {
                return Err("GPIO chip /dev/gpiochip0: No such device (os error 19)".into());
            }
            self.writes.lock().expect("writes").push((line, high));
            let mut levels = self.levels.lock().expect("levels");
            levels.insert(line, high);
            if let Some((door, open_level)) = self.spring.get(&line)
                && high
            {
                levels.insert(*door, *open_level);
            }
            Ok(())
        }

        fn get(&self, lines: &[u32]) -> Result<Vec<bool>, String> {
            if *self.dead.lock().expect("dead") {
                return Err("GPIO chip /dev/gpiochip0: No such device (os error 19)".into());
            }
            *self.reads.lock().expect("reads") += 1;
            let levels = self.levels.lock().expect("levels");
            Ok(lines
                .iter()
                .map(|l| levels.get(l).copied().unwrap_or(false))
                .collect())
        }
    }

    fn settings() -> GpioSettings {
        GpioSettings {
            lock_lines: vec![5, 6, 13],
            door_lines: vec![17, 27, 22],
            occupancy_lines: vec![],
            pulse_ms: 10,
            ..GpioSettings::default()
        }
    }

    fn b(n: u16) -> BoxNo {
        BoxNo::new(n).expect("box")
    }

    #[tokio::test]
    async fn a_pulse_switches_the_relay_on_then_off_and_the_door_reads_open() {
        let mock = Arc::new(MockLines {
            spring: HashMap::from([(6, (27, true))]),
            ..MockLines::default()
        });
        let locks = GpioLocks::new(mock.clone(), &settings(), 3).expect("map");
        assert!(!locks.door_open(b(2)).await.expect("read"));
        locks.unlock(b(2)).await.expect("pulse");
        assert_eq!(*mock.writes.lock().expect("w"), [(6, true), (6, false)]);
        assert!(locks.door_open(b(2)).await.expect("read"));
        let before = *mock.reads.lock().expect("reads");
        let all: Vec<bool> = locks
            .sense()
            .await
            .into_iter()
            .map(|r| r.expect("read").door_open)
            .collect();
        assert_eq!(all, [false, true, false]);
        assert_eq!(
            *mock.reads.lock().expect("reads") - before,
            1,
            "one read per poll"
        );
        assert_eq!(locks.occupied(b(1)).await.expect("read"), None);
        assert!(matches!(
            locks.unlock(b(4)).await,
            Err(DriverError::NoSuchBox(_))
        ));
    }

    #[tokio::test]
    async fn active_low_relays_and_reed_switches_are_inverted() {
        let mock = Arc::new(MockLines::default());
        let cfg = GpioSettings {
            locks_active_low: true,
            doors_active_low: true,
            occupancy_lines: vec![40, 41, 42],
            occupancy_active_low: false,
            ..settings()
        };
        let locks = GpioLocks::new(mock.clone(), &cfg, 3).expect("map");
        // Doors read low = open when active low; 22 high = box 3 shut.
        mock.levels.lock().expect("levels").extend([
            (17, true),
            (27, false),
            (22, true),
            (41, true),
        ]);
        let r: Vec<BoxReading> = locks
            .sense()
            .await
            .into_iter()
            .map(|r| r.expect("read"))
            .collect();
        assert_eq!(
            r.iter().map(|r| r.door_open).collect::<Vec<_>>(),
            [false, true, false]
        );
        assert_eq!(
            r.iter().map(|r| r.occupied).collect::<Vec<_>>(),
            [Some(false), Some(true), Some(false)]
        );
        locks.unlock(b(1)).await.expect("pulse");
        assert_eq!(
            *mock.writes.lock().expect("w"),
            [(5, false), (5, true)],
            "on is low, off is high"
        );
    }

    #[tokio::test]
    async fn a_dead_chip_fails_every_box_with_its_reason() {
        let mock = Arc::new(MockLines::default());
        let locks = GpioLocks::new(mock.clone(), &settings(), 3).expect("map");
        *mock.dead.lock().expect("dead") = true;
        let readings = locks.sense().await;
        assert_eq!(readings.len(), 3);
        for r in readings {
            let e = r.expect_err("dead chip").to_string();
            assert!(e.contains("/dev/gpiochip0: No such device"), "{e}");
        }
        assert!(locks.unlock(b(1)).await.is_err());
        *mock.dead.lock().expect("dead") = false;
        assert!(locks.sense().await.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_missing_chip_is_named_and_asked_again() {
        let lines = ChipLines::new(PathBuf::from("/dev/gpiochip-lockerfleet-none"), &settings());
        let locks = GpioLocks::new(lines, &settings(), 3).expect("map");
        for _ in 0..2 {
            let e = locks
                .sense()
                .await
                .remove(0)
                .expect_err("no chip")
                .to_string();
            assert!(
                e.contains("GPIO chip /dev/gpiochip-lockerfleet-none"),
                "{e}"
            );
        }
    }

    #[test]
    fn maps_are_checked() {
        check_map(&settings(), 3).expect("fits");
        for (cfg, boxes, says) in [
            (
                settings(),
                4,
                "lock_lines lists 3 lines but the cabinet has boxes = 4",
            ),
            (
                GpioSettings {
                    door_lines: vec![17, 27, 5],
                    ..settings()
                },
                3,
                "line 5 is used twice",
            ),
            (
                GpioSettings {
                    occupancy_lines: vec![1],
                    ..settings()
                },
                3,
                "occupancy_lines lists 1 lines",
            ),
        ] {
            let e = check_map(&cfg, boxes).expect_err(says);
            assert!(e.contains(says), "{says}: {e}");
        }
    }
}

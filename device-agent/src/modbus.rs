//! The Modbus lock-board adapter: boxes on RS-485 boards (Modbus RTU over a serial line) or
//! behind a Modbus TCP gateway, driven through `tokio-modbus`.
//!
//! One bus, one request at a time (RS-485 is half duplex; a gateway serialises too), so the
//! link sits behind one async mutex. Every request has a deadline and a number of tries; a
//! board that stays silent fails its boxes' reads with [`DriverError::Unreachable`], which the
//! agent's watch turns into the `lock_bus_unreachable` fault and the heartbeat's lock-bus
//! health — never a hang. A board already failing is asked once per call, not once per retry,
//! so one dead board on a shared bus slows the others by one timeout per poll, not several.
//! After any transport error or timeout the link is dropped and reopened on the next request:
//! a TCP stream may hold a late answer to the wrong request, and a USB RS-485 adapter that
//! was unplugged comes back under the same path.
//!
//! The register map (per board): box k of the board ↔ coil `lock_coil + k - 1` (the unlock
//! pulse: on, `pulse_ms`, off) and discrete input `door_input + k - 1` (door open = 1), and
//! optionally discrete input `occupancy_input + k - 1`. Each poll reads a board's doors in one
//! request (and its occupancy sensors in a second), not one request per box.

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex as SyncMutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use protocol::BoxNo;
use tokio_modbus::ExceptionCode;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::slave::{Slave, SlaveContext};

use crate::config::ModbusSettings;
use crate::driver::{BoxReading, DriverError, LockDriver};
use crate::serial::{Parity, SerialLine, SerialPort};

/// Where the lock boards are: `modbus-tcp://HOST[:PORT]` (a gateway; port 502 by default) or
/// `modbus-rtu:///dev/ttyX[?baud=9600&parity=none&data_bits=8&stop_bits=1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusAddress {
    Tcp { host: String, port: u16 },
    Rtu { path: PathBuf, line: SerialLine },
}

impl BusAddress {
    pub fn parse(s: &str) -> Result<BusAddress, String> {
        if let Some(rest) = s.strip_prefix("modbus-tcp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = match rest.rsplit_once(':') {
                // `[::1]` alone has colons but no port.
                Some((h, p)) if !p.contains(']') => {
                    let port = p
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| format!("{p:?} in {s:?} is not a port (1-65535)"))?;
                    (h, port)
                }
                _ => (rest, 502),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() || host.contains(['/', '?', ' ']) {
                return Err(format!(
                    "{s:?} has no gateway host; write modbus-tcp://HOST:PORT, e.g. modbus-tcp://192.168.1.50:502"
                ));
            }
            return Ok(BusAddress::Tcp {
                host: host.to_owned(),
                port,
            });
        }
        if let Some(rest) = s.strip_prefix("modbus-rtu://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if !path.starts_with('/') || path.len() < 2 {
                return Err(format!(
                    "{s:?} has no serial device; write modbus-rtu:///dev/ttyUSB0?baud=9600"
                ));
            }
            let mut line = SerialLine::default();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("{pair:?} in {s:?} is not KEY=VALUE"))?;
                let bad = |allowed: &str| format!("{k}={v:?} in {s:?}: {k} must be {allowed}");
                match k {
                    "baud" => {
                        line.baud = v
                            .parse()
                            .ok()
                            .filter(|b| (300..=4_000_000).contains(b))
                            .ok_or_else(|| bad("a speed like 9600, 19200 or 115200"))?;
                    }
                    "parity" => {
                        line.parity = match v {
                            "none" | "n" | "N" => Parity::None,
                            "even" | "e" | "E" => Parity::Even,
                            "odd" | "o" | "O" => Parity::Odd,
                            _ => return Err(bad("none, even or odd")),
                        }
                    }
                    "data_bits" => {
                        line.data_bits = match v {
                            "7" => 7,
                            "8" => 8,
                            _ => return Err(bad("7 or 8")),
                        }
                    }
                    "stop_bits" => {
                        line.stop_bits = match v {
                            "1" => 1,
                            "2" => 2,
                            _ => return Err(bad("1 or 2")),
                        }
                    }
                    _ => {
                        return Err(format!(
                            "unknown setting {k:?} in {s:?}; use baud, parity, data_bits, stop_bits"
                        ));
                    }
                }
            }
            return Ok(BusAddress::Rtu {
                path: PathBuf::from(path),
                line,
            });
        }
        Err(format!(
            "{s:?} is not lock hardware; use fake, modbus-tcp://HOST:PORT, modbus-rtu:///dev/ttyX?baud=9600 or gpio:///dev/gpiochip0"
        ))
    }
}

impl fmt::Display for BusAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusAddress::Tcp { host, port } if host.contains(':') => {
                write!(f, "modbus-tcp://[{host}]:{port}")
            }
            BusAddress::Tcp { host, port } => write!(f, "modbus-tcp://{host}:{port}"),
            BusAddress::Rtu { path, line } => write!(
                f,
                "modbus-rtu://{}?baud={}&parity={}&data_bits={}&stop_bits={}",
                path.display(),
                line.baud,
                line.parity.as_str(),
                line.data_bits,
                line.stop_bits
            ),
        }
    }
}

/// One board's part of the register map, resolved to box numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    pub unit: u8,
    /// The board's first box (1-based, cabinet-wide) and how many it drives.
    pub first_box: u16,
    pub boxes: u16,
    pub lock_coil: u16,
    pub door_input: u16,
    pub door_open_level: bool,
    pub occupancy_input: Option<u16>,
    pub occupied_level: bool,
}

impl Board {
    fn holds(&self, b: BoxNo) -> Option<u16> {
        let n = b.get();
        let end = u32::from(self.first_box) + u32::from(self.boxes);
        (n >= self.first_box && u32::from(n) < end).then(|| n - self.first_box)
    }
}

/// The boards of `settings` with their boxes numbered on from one board to the next; the
/// default (no boards listed) is one board, unit 1, coil and input N-1 for box N.
pub(crate) fn resolve_boards(settings: &ModbusSettings, boxes: u16) -> Result<Vec<Board>, String> {
    if settings.boards.is_empty() {
        return Ok(vec![Board {
            unit: 1,
            first_box: 1,
            boxes,
            lock_coil: 0,
            door_input: 0,
            door_open_level: true,
            occupancy_input: None,
            occupied_level: true,
        }]);
    }
    let mut out = Vec::with_capacity(settings.boards.len());
    let mut next = 1u32;
    let last = settings.boards.len() - 1;
    for (i, s) in settings.boards.iter().enumerate() {
        let at = |why: String| format!("board {} (unit {}): {why}", i + 1, s.unit);
        if !(1..=247).contains(&s.unit) {
            return Err(at("unit must be between 1 and 247".into()));
        }
        if out.iter().any(|b: &Board| b.unit == s.unit) {
            return Err(at("two boards have this unit id; each needs its own".into()));
        }
        let n = match s.boxes {
            Some(0) => return Err(at("boxes must be at least 1".into())),
            Some(n) => u32::from(n),
            // Only the last board may leave its count to what is left of the cabinet.
            None if i == last => (u32::from(boxes) + 1).saturating_sub(next),
            None => return Err(at("set boxes (only the last board may leave it out)".into())),
        };
        if n == 0 || next + n - 1 > u32::from(boxes) {
            return Err(at(format!(
                "the boards hold more boxes than the cabinet's boxes = {boxes}; make them agree"
            )));
        }
        for (name, first) in [
            ("lock_coil", Some(s.lock_coil)),
            ("door_input", Some(s.door_input)),
            ("occupancy_input", s.occupancy_input),
        ] {
            if let Some(first) = first
                && u32::from(first) + n > 65_536
            {
                return Err(at(format!(
                    "{name} {first} + {n} boxes runs past address 65535"
                )));
            }
        }
        for (name, level) in [
            ("door_open_level", s.door_open_level),
            ("occupied_level", s.occupied_level),
        ] {
            if level > 1 {
                return Err(at(format!("{name} must be 0 or 1")));
            }
        }
        out.push(Board {
            unit: s.unit,
            first_box: next as u16,
            boxes: n as u16,
            lock_coil: s.lock_coil,
            door_input: s.door_input,
            door_open_level: s.door_open_level == 1,
            occupancy_input: s.occupancy_input,
            occupied_level: s.occupied_level == 1,
        });
        next += n;
    }
    if next - 1 != u32::from(boxes) {
        return Err(format!(
            "the boards hold {} boxes but the cabinet has boxes = {boxes}; make them agree",
            next - 1
        ));
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
enum Op {
    ReadInputs { addr: u16, count: u16 },
    WriteCoil { addr: u16, on: bool },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::ReadInputs { addr, count: 1 } => write!(f, "reading discrete input {addr}"),
            Op::ReadInputs { addr, count } => {
                write!(f, "reading discrete inputs {addr}..{}", addr + (count - 1))
            }
            Op::WriteCoil { addr, on } => {
                write!(f, "writing coil {addr} {}", if *on { "on" } else { "off" })
            }
        }
    }
}

/// Lock boards on one Modbus bus.
pub struct ModbusLocks {
    bus: BusAddress,
    boards: Vec<Board>,
    boxes: u16,
    timeout: Duration,
    retries: u32,
    pulse: Duration,
    link: tokio::sync::Mutex<Option<Context>>,
    /// Per board: the last request got no answer.
    failing: Vec<AtomicBool>,
    /// Coils left on because the "off" of a pulse was not answered: switched off before
    /// every poll until the board takes it (a held solenoid overheats and the box stays open).
    stuck_on: SyncMutex<Vec<(usize, u16)>>,
}

impl fmt::Debug for ModbusLocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModbusLocks")
            .field("bus", &self.bus.to_string())
            .field("boards", &self.boards)
            .finish_non_exhaustive()
    }
}

impl ModbusLocks {
    /// The adapter; connects on first use, so a cabinet whose bus is down still starts and
    /// reports it.
    pub fn new(
        bus: BusAddress,
        settings: &ModbusSettings,
        boxes: u16,
    ) -> Result<ModbusLocks, String> {
        let boards = resolve_boards(settings, boxes)?;
        Ok(ModbusLocks {
            bus,
            failing: boards.iter().map(|_| AtomicBool::new(false)).collect(),
            boards,
            boxes,
            timeout: Duration::from_millis(settings.timeout_ms),
            retries: settings.retries,
            pulse: Duration::from_millis(settings.pulse_ms),
            link: tokio::sync::Mutex::new(None),
            stuck_on: SyncMutex::new(Vec::new()),
        })
    }

    pub fn boards(&self) -> &[Board] {
        &self.boards
    }

    fn board_of(&self, b: BoxNo) -> Result<(usize, u16), DriverError> {
        self.boards
            .iter()
            .enumerate()
            .find_map(|(i, board)| board.holds(b).map(|k| (i, k)))
            .ok_or(DriverError::NoSuchBox(b))
    }

    async fn connect(&self) -> std::io::Result<Context> {
        match &self.bus {
            BusAddress::Tcp { host, port } => {
                let addr = tokio::net::lookup_host((host.as_str(), *port))
                    .await?
                    .next()
                    .ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("{host} has no address"),
                        )
                    })?;
                let stream = tokio::net::TcpStream::connect(addr).await?;
                // Requests are a few bytes each; Nagle would hold every one back.
                stream.set_nodelay(true)?;
                Ok(tokio_modbus::client::tcp::attach_slave(stream, Slave(1)))
            }
            BusAddress::Rtu { path, line } => {
                let port = SerialPort::open(path, line)?;
                Ok(tokio_modbus::client::rtu::attach_slave(port, Slave(1)))
            }
        }
    }

    /// One request to one board, with the deadline and tries of the settings.
    async fn request(&self, board: usize, op: Op, persist: bool) -> Result<Vec<bool>, DriverError> {
        let unit = self.boards[board].unit;
        let was_failing = self.failing[board].load(Ordering::Relaxed);
        let tries = if was_failing && !persist {
            1
        } else {
            1 + self.retries
        };
        let mut last = String::new();
        for _ in 0..tries {
            let mut link = self.link.lock().await;
            if link.is_none() {
                match tokio::time::timeout(self.timeout.max(Duration::from_secs(1)), self.connect())
                    .await
                {
                    Ok(Ok(ctx)) => *link = Some(ctx),
                    Ok(Err(e)) => {
                        last = format!("cannot open {}: {e}", self.bus);
                        drop(link);
                        tokio::time::sleep(self.timeout.min(Duration::from_millis(100))).await;
                        continue;
                    }
                    Err(_) => {
                        last = format!("cannot open {}: timed out", self.bus);
                        continue;
                    }
                }
            }
            let Some(ctx) = link.as_mut() else { continue };
            ctx.set_slave(Slave(unit));
            let call = async {
                match op {
                    Op::ReadInputs { addr, count } => ctx.read_discrete_inputs(addr, count).await,
                    Op::WriteCoil { addr, on } => ctx
                        .write_single_coil(addr, on)
                        .await
                        .map(|r| r.map(|()| Vec::new())),
                }
            };
            match tokio::time::timeout(self.timeout, call).await {
                Ok(Ok(Ok(mut bits))) => {
                    if let Op::ReadInputs { count, .. } = op {
                        if bits.len() < usize::from(count) {
                            last = format!("answered {} of {count} inputs", bits.len());
                            continue;
                        }
                        bits.truncate(usize::from(count));
                    }
                    if self.failing[board].swap(false, Ordering::Relaxed) {
                        tracing::info!(bus = %self.bus, unit, "lock board answers again");
                    }
                    return Ok(bits);
                }
                Ok(Ok(Err(exc))) => {
                    // A gateway saying the board behind it is silent is a silent board; any
                    // other exception is the board refusing our map (wrong address or count).
                    if matches!(
                        exc,
                        ExceptionCode::GatewayPathUnavailable | ExceptionCode::GatewayTargetDevice
                    ) {
                        last = format!("the gateway reports no answer ({exc})");
                        continue;
                    }
                    return Err(DriverError::Refused(format!(
                        "board unit {unit} on {} refused {op}: {exc}; check the [modbus] register map",
                        self.bus
                    )));
                }
                Ok(Err(e)) => {
                    last = e.to_string();
                    *link = None;
                }
                Err(_) => {
                    last = format!("no answer within {} ms", self.timeout.as_millis());
                    *link = None;
                }
            }
        }
        if !self.failing[board].swap(true, Ordering::Relaxed) {
            tracing::warn!(bus = %self.bus, unit, error = %last, "lock board does not answer");
        }
        Err(DriverError::Unreachable(format!(
            "board unit {unit} on {}: {last} ({op}, {tries} {})",
            self.bus,
            if tries == 1 { "try" } else { "tries" }
        )))
    }

    async fn read_inputs(
        &self,
        board: usize,
        first: u16,
        count: u16,
        level: bool,
    ) -> Result<Vec<bool>, DriverError> {
        let bits = self
            .request(board, Op::ReadInputs { addr: first, count }, false)
            .await?;
        Ok(bits.into_iter().map(|bit| bit == level).collect())
    }

    /// Switches off coils a pulse left on; what still fails stays on the list.
    async fn release_stuck(&self) {
        let stuck = std::mem::take(&mut *self.stuck_on.lock().unwrap_or_else(|p| p.into_inner()));
        for (board, coil) in stuck {
            let off = Op::WriteCoil {
                addr: coil,
                on: false,
            };
            if self.request(board, off, true).await.is_ok() {
                tracing::info!(bus = %self.bus, unit = self.boards[board].unit, coil, "lock coil switched off");
            } else {
                self.stuck_on
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((board, coil));
            }
        }
    }
}

impl LockDriver for ModbusLocks {
    fn boxes(&self) -> u16 {
        self.boxes
    }

    async fn unlock(&self, b: BoxNo) -> Result<(), DriverError> {
        let (i, k) = self.board_of(b)?;
        let coil = self.boards[i].lock_coil + k;
        self.request(
            i,
            Op::WriteCoil {
                addr: coil,
                on: true,
            },
            true,
        )
        .await?;
        if self.pulse.is_zero() {
            // The board times the pulse itself.
            return Ok(());
        }
        // The bus is free during the pulse: the door sensor may be read meanwhile.
        tokio::time::sleep(self.pulse).await;
        if let Err(e) = self
            .request(
                i,
                Op::WriteCoil {
                    addr: coil,
                    on: false,
                },
                true,
            )
            .await
        {
            tracing::error!(bus = %self.bus, box_no = %b, coil, error = %e,
                "the lock's coil may still be on; switching it off is retried every poll");
            self.stuck_on
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((i, coil));
        }
        Ok(())
    }

    async fn door_open(&self, b: BoxNo) -> Result<bool, DriverError> {
        let (i, k) = self.board_of(b)?;
        let board = &self.boards[i];
        let bits = self
            .read_inputs(i, board.door_input + k, 1, board.door_open_level)
            .await?;
        Ok(bits.first().copied().unwrap_or(false))
    }

    async fn occupied(&self, b: BoxNo) -> Result<Option<bool>, DriverError> {
        let (i, k) = self.board_of(b)?;
        let board = &self.boards[i];
        let Some(first) = board.occupancy_input else {
            return Ok(None);
        };
        let bits = self
            .read_inputs(i, first + k, 1, board.occupied_level)
            .await?;
        Ok(bits.first().copied())
    }

    async fn sense(&self) -> Vec<Result<BoxReading, DriverError>> {
        self.release_stuck().await;
        let mut out = Vec::with_capacity(usize::from(self.boxes));
        for (i, board) in self.boards.iter().enumerate() {
            let doors = self
                .read_inputs(i, board.door_input, board.boxes, board.door_open_level)
                .await;
            let occupancy = match (&doors, board.occupancy_input) {
                (Ok(_), Some(first)) => Some(
                    self.read_inputs(i, first, board.boxes, board.occupied_level)
                        .await,
                ),
                _ => None,
            };
            for k in 0..usize::from(board.boxes) {
                out.push(match (&doors, &occupancy) {
                    (Err(e), _) | (Ok(_), Some(Err(e))) => Err(e.clone()),
                    (Ok(d), occ) => Ok(BoxReading {
                        door_open: d[k],
                        occupied: occ.as_ref().and_then(|o| o.as_ref().ok()).map(|o| o[k]),
                    }),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

//! The Modbus adapter against a board simulated on a pseudo-terminal: real RTU frames with
//! CRCs, a silent board, a corrupted answer, a refusal, a lost "off".

use std::sync::Arc;
use std::sync::Mutex;

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::config::BoardSettings;
use crate::serial::pty_pair;

fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0xFFFFu16;
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// What the simulated bus holds and how it misbehaves.
#[derive(Debug, Default)]
struct Bus {
    /// Per unit: coils and discrete inputs (64 each).
    units: Vec<(u8, Vec<bool>, Vec<bool>)>,
    silent: Vec<u8>,
    /// The next answers get a wrong CRC.
    corrupt: u32,
    /// Go silent after answering the next coil "on" (a lost "off").
    silent_after_on: Option<u8>,
    /// Requests seen: (unit, function code, address).
    log: Vec<(u8, u8, u16)>,
}

impl Bus {
    fn unit(&mut self, unit: u8) -> Option<&mut (u8, Vec<bool>, Vec<bool>)> {
        self.units.iter_mut().find(|u| u.0 == unit)
    }
}

/// Answers RTU requests on the pty's bus side until the test ends.
fn board(units: &[u8]) -> (Arc<Mutex<Bus>>, PathBuf, tokio::task::JoinHandle<()>) {
    let (mut port, path) = pty_pair().expect("pty");
    let bus = Arc::new(Mutex::new(Bus {
        units: units
            .iter()
            .map(|u| (*u, vec![false; 64], vec![false; 64]))
            .collect(),
        ..Bus::default()
    }));
    let shared = bus.clone();
    let task = tokio::spawn(async move {
        let mut req = [0u8; 8];
        loop {
            // With the agent's side closed (a reopen), the pty reads EIO: wait for it.
            if port.read_exact(&mut req).await.is_err() {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            if crc16(&req[..6]) != u16::from_le_bytes([req[6], req[7]]) {
                continue;
            }
            let (unit, fc) = (req[0], req[1]);
            let addr = u16::from_be_bytes([req[2], req[3]]);
            let value = u16::from_be_bytes([req[4], req[5]]);
            let answer = {
                let mut b = shared.lock().expect("bus");
                b.log.push((unit, fc, addr));
                if b.silent.contains(&unit) {
                    continue;
                }
                let corrupt = b.corrupt > 0;
                b.corrupt = b.corrupt.saturating_sub(1);
                let go_silent = b.silent_after_on == Some(unit) && fc == 5 && value == 0xFF00;
                let Some((_, coils, inputs)) = b.unit(unit) else {
                    continue;
                };
                let mut out = vec![unit, fc];
                match fc {
                    2 if usize::from(addr) + usize::from(value) <= inputs.len() => {
                        let bits = &inputs[usize::from(addr)..][..usize::from(value)];
                        let bytes: Vec<u8> = bits
                            .chunks(8)
                            .map(|c| c.iter().rev().fold(0u8, |acc, b| acc << 1 | u8::from(*b)))
                            .collect();
                        out.push(bytes.len() as u8);
                        out.extend(bytes);
                    }
                    5 if usize::from(addr) < coils.len() => {
                        coils[usize::from(addr)] = value == 0xFF00;
                        out.extend_from_slice(&req[2..6]);
                    }
                    _ => {
                        out[1] |= 0x80;
                        out.push(0x02); // illegal data address
                    }
                }
                if go_silent {
                    b.silent.push(unit);
                    b.silent_after_on = None;
                }
                let crc = crc16(&out) ^ if corrupt { 0x5555 } else { 0 };
                out.extend(crc.to_le_bytes());
                out
            };
            if port.write_all(&answer).await.is_err() {
                continue;
            }
        }
    });
    (bus, path, task)
}

fn settings(boards: Vec<BoardSettings>) -> ModbusSettings {
    ModbusSettings {
        timeout_ms: 80,
        retries: 2,
        pulse_ms: 20,
        boards,
    }
}

fn two_boards() -> Vec<BoardSettings> {
    vec![
        BoardSettings {
            unit: 1,
            boxes: Some(3),
            ..BoardSettings::default()
        },
        BoardSettings {
            unit: 2,
            lock_coil: 10,
            door_input: 4,
            occupancy_input: Some(8),
            ..BoardSettings::default()
        },
    ]
}

fn rtu(path: &std::path::Path) -> BusAddress {
    BusAddress::Rtu {
        path: path.to_owned(),
        line: SerialLine::default(),
    }
}

fn b(n: u16) -> BoxNo {
    BoxNo::new(n).expect("box")
}

#[tokio::test]
async fn boards_are_read_one_request_each_and_pulsed_on_then_off() {
    let (bus, path, task) = board(&[1, 2]);
    let locks = ModbusLocks::new(rtu(&path), &settings(two_boards()), 5).expect("map");
    {
        let mut b = bus.lock().expect("bus");
        b.unit(1).expect("unit 1").2[2] = true; // box 3's door
        b.unit(2).expect("unit 2").2[5] = true; // box 5's door (input 4 + 1)
        b.unit(2).expect("unit 2").2[8] = true; // box 4 occupied (input 8 + 0)
    }
    let readings: Vec<_> = locks
        .sense()
        .await
        .into_iter()
        .map(|r| r.expect("read"))
        .collect();
    let doors: Vec<bool> = readings.iter().map(|r| r.door_open).collect();
    let occupied: Vec<Option<bool>> = readings.iter().map(|r| r.occupied).collect();
    assert_eq!(doors, [false, false, true, false, true]);
    assert_eq!(occupied, [None, None, None, Some(true), Some(false)]);
    assert_eq!(
        bus.lock().expect("bus").log,
        [(1, 2, 0), (2, 2, 4), (2, 2, 8)],
        "one request per board and sensor kind"
    );
    bus.lock().expect("bus").log.clear();
    locks.unlock(b(4)).await.expect("pulse");
    assert_eq!(bus.lock().expect("bus").log, [(2, 5, 10), (2, 5, 10)]);
    assert!(
        !bus.lock().expect("bus").unit(2).expect("unit").1[10],
        "coil back off"
    );
    assert!(locks.door_open(b(3)).await.expect("read"));
    assert_eq!(locks.occupied(b(1)).await.expect("read"), None);
    assert!(matches!(
        locks.unlock(b(6)).await,
        Err(DriverError::NoSuchBox(_))
    ));
    task.abort();
}

#[tokio::test]
async fn a_silent_board_fails_only_its_boxes_and_is_asked_once_while_silent() {
    let (bus, path, task) = board(&[1, 2]);
    let locks = ModbusLocks::new(rtu(&path), &settings(two_boards()), 5).expect("map");
    bus.lock().expect("bus").silent.push(2);
    let first = locks.sense().await;
    assert!(first[..3].iter().all(Result::is_ok), "{first:?}");
    for r in &first[3..] {
        let e = r.as_ref().expect_err("board 2 is silent").to_string();
        assert!(
            e.contains("board unit 2") && e.contains("no answer within 80 ms"),
            "{e}"
        );
        assert!(e.contains("3 tries"), "{e}");
    }
    let asked = |bus: &Arc<Mutex<Bus>>| {
        let mut b = bus.lock().expect("bus");
        let n = b.log.iter().filter(|l| l.0 == 2).count();
        b.log.clear();
        n
    };
    assert_eq!(asked(&bus), 3, "first and two retries");
    let again = locks.sense().await;
    assert!(
        again[3]
            .as_ref()
            .expect_err("silent")
            .to_string()
            .contains("1 try")
    );
    assert_eq!(asked(&bus), 1, "a failing board is asked once per poll");
    bus.lock().expect("bus").silent.clear();
    let back = locks.sense().await;
    assert!(back.iter().all(Result::is_ok), "{back:?}");
    task.abort();
}

#[tokio::test]
async fn a_corrupted_answer_is_asked_again() {
    let (bus, path, task) = board(&[1]);
    let locks = ModbusLocks::new(rtu(&path), &settings(Vec::new()), 4).expect("map");
    bus.lock().expect("bus").corrupt = 1;
    let readings = locks.sense().await;
    assert!(readings.iter().all(Result::is_ok), "{readings:?}");
    assert_eq!(
        bus.lock().expect("bus").log.len(),
        2,
        "bad CRC, then a good answer"
    );
    bus.lock().expect("bus").corrupt = 10;
    let e = locks
        .door_open(b(1))
        .await
        .expect_err("every answer corrupt");
    assert!(matches!(e, DriverError::Unreachable(_)), "{e}");
    task.abort();
}

#[tokio::test]
async fn a_map_past_the_boards_inputs_is_a_refusal_naming_the_map() {
    let (_bus, path, task) = board(&[1]);
    let map = vec![BoardSettings {
        door_input: 60,
        ..BoardSettings::default()
    }];
    let locks = ModbusLocks::new(rtu(&path), &settings(map), 8).expect("map");
    let e = locks.sense().await.remove(0).expect_err("refused");
    assert!(matches!(e, DriverError::Refused(_)), "{e}");
    assert!(
        e.to_string().contains("check the [modbus] register map"),
        "{e}"
    );
    task.abort();
}

#[tokio::test]
async fn a_lost_off_is_sent_again_before_the_next_poll() {
    let (bus, path, task) = board(&[1]);
    let locks = ModbusLocks::new(rtu(&path), &settings(Vec::new()), 2).expect("map");
    bus.lock().expect("bus").silent_after_on = Some(1);
    locks.unlock(b(2)).await.expect("the pulse went out");
    assert!(
        bus.lock().expect("bus").unit(1).expect("unit").1[1],
        "left on"
    );
    assert_eq!(locks.stuck_on.lock().expect("stuck").len(), 1);
    bus.lock().expect("bus").silent.clear();
    let readings = locks.sense().await;
    assert!(readings.iter().all(Result::is_ok), "{readings:?}");
    assert!(
        !bus.lock().expect("bus").unit(1).expect("unit").1[1],
        "switched off"
    );
    assert!(locks.stuck_on.lock().expect("stuck").is_empty());
    task.abort();
}

#[tokio::test]
async fn a_missing_serial_device_is_unreachable_with_its_path() {
    let locks = ModbusLocks::new(
        rtu(std::path::Path::new("/dev/ttyLOCKERFLEET-NONE")),
        &settings(Vec::new()),
        1,
    )
    .expect("map");
    let e = locks.door_open(b(1)).await.expect_err("no device");
    assert!(
        e.to_string()
            .contains("cannot open modbus-rtu:///dev/ttyLOCKERFLEET-NONE"),
        "{e}"
    );
}

#[test]
fn bus_addresses() {
    assert_eq!(
        BusAddress::parse("modbus-tcp://10.0.0.5:1502"),
        Ok(BusAddress::Tcp {
            host: "10.0.0.5".into(),
            port: 1502
        })
    );
    assert_eq!(
        BusAddress::parse("modbus-tcp://gw.local").map(|a| a.to_string()),
        Ok("modbus-tcp://gw.local:502".into())
    );
    assert_eq!(
        BusAddress::parse("modbus-tcp://[::1]").map(|a| a.to_string()),
        Ok("modbus-tcp://[::1]:502".into())
    );
    let rtu = BusAddress::parse("modbus-rtu:///dev/ttyUSB0?baud=19200&parity=even").expect("rtu");
    assert_eq!(
        rtu.to_string(),
        "modbus-rtu:///dev/ttyUSB0?baud=19200&parity=even&data_bits=8&stop_bits=1"
    );
    for (bad, says) in [
        ("modbus-tcp://:502", "no gateway host"),
        ("modbus-tcp://gw:0", "is not a port"),
        ("modbus-rtu://", "no serial device"),
        ("modbus-rtu:///dev/ttyS0?baud=fast", "baud must be"),
        ("modbus-rtu:///dev/ttyS0?speed=9600", "unknown setting"),
        ("modbus-rtu:///dev/ttyS0?parity", "is not KEY=VALUE"),
        ("serial://x", "is not lock hardware"),
    ] {
        let e = BusAddress::parse(bad).expect_err(bad);
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn register_maps() {
    let one = resolve_boards(&ModbusSettings::default(), 24).expect("default");
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].unit, one[0].first_box, one[0].boxes), (1, 1, 24));
    let two = resolve_boards(&settings(two_boards()), 5).expect("two");
    assert_eq!(
        (two[1].first_box, two[1].boxes),
        (4, 2),
        "the last takes the rest"
    );
    for (boards, boxes, says) in [
        (two_boards(), 3, "more boxes than the cabinet"),
        (
            vec![BoardSettings {
                boxes: Some(2),
                ..BoardSettings::default()
            }],
            5,
            "hold 2 boxes but the cabinet has boxes = 5",
        ),
        (
            vec![BoardSettings::default(), BoardSettings::default()],
            5,
            "only the last board may leave it out",
        ),
        (
            vec![
                BoardSettings {
                    boxes: Some(2),
                    ..BoardSettings::default()
                },
                BoardSettings::default(),
            ],
            5,
            "two boards have this unit id",
        ),
        (
            vec![BoardSettings {
                unit: 0,
                ..BoardSettings::default()
            }],
            5,
            "between 1 and 247",
        ),
        (
            vec![BoardSettings {
                door_input: 65_530,
                ..BoardSettings::default()
            }],
            10,
            "runs past address 65535",
        ),
    ] {
        let e = resolve_boards(&settings(boards), boxes).expect_err(says);
        assert!(e.contains(says), "{says}: {e}");
    }
}

proptest! {
    /// Any text: an address or a reason, never a panic; an address prints to itself.
    #[test]
    fn bus_address_parsing_never_panics_and_round_trips(s in "modbus-(tcp|rtu)://[ -~]{0,40}") {
        if let Ok(a) = BusAddress::parse(&s) {
            prop_assert_eq!(BusAddress::parse(&a.to_string()), Ok(a));
        }
    }
}

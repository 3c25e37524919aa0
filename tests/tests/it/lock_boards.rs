//! Real lock boards as an independent Modbus peer sees them: a pymodbus board (PyPI) over
//! Modbus TCP, and two boards on one RTU bus through a socat pseudo-terminal pair. Opening a
//! box from the API pulses its coil, a door input becomes an event, and a board that stops
//! answering raises the lock-bus alarm and clears it when it answers again.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Api, Proc, Server, World, bin, eventually, reserved_port, wait_online};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/modbus_board.py");

/// The pymodbus board process: commands on stdin, coil writes read from stdout.
struct Board {
    _proc: Proc,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Board {
    fn start(world: &World, name: &str, args: &[&str]) -> Board {
        let log = std::fs::File::create(world.path(&format!("{name}.log"))).expect("board log");
        let mut child = Command::new("python3")
            .arg(PEER)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("python3 is needed for the Modbus board peer");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut board = Board {
            _proc: Proc { child },
            stdin,
            lines,
        };
        board.expect_line("READY", Duration::from_secs(20), || {
            format!(
                "the pymodbus board did not start (pip install pymodbus==3.6.9 pyserial; .ci/run does); its log:\n{}",
                std::fs::read_to_string(world.path(&format!("{name}.log"))).unwrap_or_default()
            )
        });
        board
    }

    fn expect_line(&mut self, want: &str, within: Duration, why: impl Fn() -> String) {
        let until = Instant::now() + within;
        loop {
            match self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line == want => return,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no {want:?} from the board: {}", why())
                }
            }
        }
    }

    /// Sends a command and waits for the board to confirm it.
    fn send(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").expect("board stdin");
        self.expect_line(&format!("ok {cmd}"), Duration::from_secs(5), || {
            "command not confirmed".into()
        });
    }

    /// Waits for the coil writes of one unlock pulse: on, then off.
    fn expect_pulse(&mut self, unit: u8, coil: u16) {
        for v in [1, 0] {
            self.expect_line(
                &format!("coil {unit} {coil} {v}"),
                Duration::from_secs(10),
                || format!("unit {unit} coil {coil} was not switched {v}"),
            );
        }
    }
}

/// A socat pseudo-terminal pair: the agent's end and the board's end of one "RS-485 bus".
fn rtu_bus(world: &World) -> (Proc, PathBuf, PathBuf) {
    let (agent_end, board_end) = (world.path("ttyAGENT"), world.path("ttyBOARD"));
    let child = Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", agent_end.display()))
        .arg(format!("pty,raw,echo=0,link={}", board_end.display()))
        .stderr(Stdio::null())
        .spawn()
        .expect("socat not installed: `apt-get install socat` (.ci/run does)");
    let until = Instant::now() + Duration::from_secs(10);
    while !(agent_end.exists() && board_end.exists()) {
        assert!(Instant::now() < until, "socat made no pty pair");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Proc { child }, agent_end, board_end)
}

fn agent_config(world: &World, id: &str, modbus: &str) -> String {
    let path = world.path(&format!("{id}.toml"));
    std::fs::write(
        &path,
        format!(
            "id = '{id}'\nheartbeat_secs = 1\npoll_interval_ms = 20\njam_timeout_ms = 3000\n\n[modbus]\ntimeout_ms = 200\nretries = 1\npulse_ms = 150\n{modbus}"
        ),
    )
    .expect("agent config");
    path.display().to_string()
}

/// An agent on `hardware` with 8 boxes, online.
async fn agent_on(
    world: &World,
    server: &Server,
    id: &str,
    config: &str,
    hardware: &str,
    extra: &[&str],
) -> Proc {
    let mut args = vec!["--config", config, "--hardware", hardware, "--boxes", "8"];
    args.extend_from_slice(extra);
    let agent = world.agent(id, server.mqtt, &args);
    wait_online(&server.api(), id).await;
    agent
}

/// Opens box `b` from the API: the door opened, and the board saw its coil pulsed.
async fn open_and_pulse(api: &Api, board: &mut Board, id: &str, b: u16, (unit, coil): (u8, u16)) {
    let (code, body) = api.open(id, b, json!({"reason": "e2e lock board"})).await;
    assert_eq!(code, 202, "{body}");
    let command = body["command_id"].as_str().expect("command id").to_owned();
    let cmd = api.wait_command(&command, Duration::from_secs(20)).await;
    assert_eq!(cmd["status"], "opened", "{cmd}");
    board.expect_pulse(unit, coil);
}

async fn wait_door_event(api: &Api, id: &str, b: u16, open: bool) {
    eventually(
        Duration::from_secs(15),
        &format!("door event box {b} open={open}"),
        || async {
            api.events(id)
                .await
                .iter()
                .any(|e| e["kind"] == "door" && e["body"]["box"] == b && e["body"]["open"] == open)
                .then_some(())
        },
    )
    .await;
}

async fn alarms(api: &Api, query: &str) -> Vec<Value> {
    let (s, v) = api.get(&format!("/api/v1/alarms?{query}")).await;
    assert_eq!(s, 200, "{v}");
    v["alarms"].as_array().cloned().unwrap_or_default()
}

/// Silences `unit`, waits for the lock-bus alarm (its evidence naming the unit) and the
/// device's lock-bus layer, then lets the board answer again and waits for both to clear.
async fn silent_board_alarm_and_recovery(api: &Api, board: &mut Board, id: &str, unit: u8) {
    board.send(&format!("silent {unit} on"));
    let q = format!("device={id}&kind=lock_bus_unreachable");
    let alarm = eventually(Duration::from_secs(20), "lock-bus alarm", || async {
        alarms(api, &q).await.into_iter().next()
    })
    .await;
    assert!(
        alarm["evidence"]
            .as_str()
            .is_some_and(|e| e.contains(&format!("board unit {unit}"))),
        "{alarm}"
    );
    eventually(Duration::from_secs(20), "lock bus unreachable", || async {
        api.device(id)
            .await
            .filter(|d| d["layers"]["lock_bus"] == "unreachable")
    })
    .await;
    board.send(&format!("silent {unit} off"));
    eventually(
        Duration::from_secs(20),
        "lock-bus alarm cleared",
        || async {
            alarms(api, &format!("state=cleared&{q}"))
                .await
                .into_iter()
                .find(|a| a["id"] == alarm["id"])
        },
    )
    .await;
    eventually(Duration::from_secs(20), "lock bus ok again", || async {
        api.device(id)
            .await
            .filter(|d| d["layers"]["lock_bus"] == "ok")
    })
    .await;
}

fn doctor(world: &World, id: &str, config: &str, hardware: &str, mqtt_port: u16) -> (i32, String) {
    let out = Command::new(bin("device-agent"))
        .args(["--config", config, "--hardware", hardware, "--boxes", "8"])
        .args(["--server", &format!("localhost:{mqtt_port}")])
        .args(["--certs", &world.certs().display().to_string()])
        .args([
            "--data-dir",
            &world.path(&format!("agent-{id}")).display().to_string(),
        ])
        .arg("doctor")
        .output()
        .expect("run the doctor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
#[ignore = "needs python3 with pymodbus 3.6.9 (and socat for RTU): run .ci/run, or pip install pymodbus==3.6.9 pyserial; apt-get install socat; and pass --include-ignored"]
async fn a_board_behind_a_modbus_tcp_gateway_opens_reports_and_is_watched() {
    const CAB: &str = "mb-tcp-1";
    let world = World::new(&[CAB]);
    let port = reserved_port().expect("free port");
    let mut board = Board::start(
        &world,
        "board-tcp",
        &["--tcp", &format!("127.0.0.1:{port}"), "--spring"],
    );
    let server = world.server();
    let api = server.api();
    let config = agent_config(&world, CAB, "");
    let hardware = format!("modbus-tcp://127.0.0.1:{port}");
    let keypad = world.path("keypad.sock");
    let keypad_arg = keypad.display().to_string();
    let _agent = agent_on(
        &world,
        &server,
        CAB,
        &config,
        &hardware,
        &["--keypad-socket", &keypad_arg],
    )
    .await;

    // Open from the API: box 3 is coil 2 on unit 1 (the default map); the sprung door opens.
    open_and_pulse(&api, &mut board, CAB, 3, (1, 2)).await;
    // Doors moved by hand at the cabinet become events.
    board.send("door 1 2 0");
    wait_door_event(&api, CAB, 3, false).await;
    board.send("door 1 6 1");
    wait_door_event(&api, CAB, 7, true).await;

    // The doctor reads the real board too (a TCP gateway takes a second client).
    doctor_passes(&world, CAB, &config, &hardware, server.mqtt.port());

    // A citizen's code typed on the cabinet's screen (its application writes to the keypad
    // socket) opens a box on the real board.
    let code = dropoff_code(&api, CAB).await;
    let answer = type_on_screen(&keypad, &format!("code {code}")).await;
    assert_eq!(answer["outcome"], "opened", "{answer}");
    let b = answer["box"].as_u64().expect("box") as u16;
    board.expect_pulse(1, b - 1);
    let answer = type_on_screen(&keypad, &format!("code {code}")).await;
    assert_eq!(answer, json!({"outcome": "rejected", "reason": "used"}));

    silent_board_alarm_and_recovery(&api, &mut board, CAB, 1).await;
    let (code, out) = doctor(
        &world,
        CAB,
        &config,
        "modbus-tcp://127.0.0.1:1",
        server.mqtt.port(),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        check(&out, "lock board")
            .starts_with("FAIL boxes 1-8: lock board did not answer: board unit 1 on modbus-tcp://127.0.0.1:1: cannot open"),
        "{out}"
    );
}

#[tokio::test]
#[ignore = "needs python3 with pymodbus 3.6.9 (and socat for RTU): run .ci/run, or pip install pymodbus==3.6.9 pyserial; apt-get install socat; and pass --include-ignored"]
async fn two_boards_on_an_rtu_bus_open_report_and_survive_noise_and_a_dead_board() {
    const CAB: &str = "mb-rtu-1";
    let world = World::new(&[CAB]);
    let (_socat, agent_end, board_end) = rtu_bus(&world);
    let server = world.server();
    let api = server.api();
    // Boxes 1-4 on unit 1 (coils and doors 0-3), boxes 5-8 on unit 2 (coils and doors 8-11).
    let config = agent_config(
        &world,
        CAB,
        "[[modbus.boards]]\nunit = 1\nboxes = 4\n\n[[modbus.boards]]\nunit = 2\nlock_coil = 8\ndoor_input = 8\n",
    );
    let hardware = format!("modbus-rtu://{}?baud=19200", agent_end.display());
    // Before the board is there, the doctor says which board does not answer.
    let (code, out) = doctor(&world, CAB, &config, &hardware, server.mqtt.port());
    assert_eq!(code, 1, "{out}");
    let board_check = check(&out, "lock board");
    assert!(board_check.starts_with("FAIL boxes 1-4: "), "{out}");
    assert!(
        board_check.contains("; boxes 5-8: lock board did not answer: board unit 2"),
        "{out}"
    );

    let mut board = Board::start(
        &world,
        "board-rtu",
        &[
            "--rtu",
            &board_end.display().to_string(),
            "--baud",
            "19200",
            "--units",
            "1,2",
            "--spring",
        ],
    );
    doctor_passes(&world, CAB, &config, &hardware, server.mqtt.port());

    let _agent = agent_on(&world, &server, CAB, &config, &hardware, &[]).await;
    open_and_pulse(&api, &mut board, CAB, 6, (2, 9)).await;
    wait_door_event(&api, CAB, 6, true).await;

    // Answers with a wrong CRC are asked again; the open still goes through.
    board.send("corrupt 2");
    open_and_pulse(&api, &mut board, CAB, 1, (1, 0)).await;

    // Unit 2 dies: the alarm names it, and unit 1's doors are still reported meanwhile.
    board.send("silent 2 on");
    board.send("door 1 3 1");
    wait_door_event(&api, CAB, 4, true).await;
    board.send("silent 2 off");
    silent_board_alarm_and_recovery(&api, &mut board, CAB, 2).await;
    assert_no_agent_panic(&world.path(&format!("{CAB}.log")));
}

/// Registers `cab` (8 boxes) at a site and makes a drop-off reservation there; its code,
/// once the cabinet holds it.
async fn dropoff_code(api: &Api, cab: &str) -> String {
    let (s, body) = api
        .post(
            "/api/v1/sites",
            json!({"id": "annex", "kind": "service_hall", "name": "Annex", "address": "2 Civic Square", "lat": 23.13, "lon": 113.26}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let boxes: Vec<Value> = (1..=8).map(|b| json!({"box": b, "size": "M"})).collect();
    let (s, body) = api
        .put(
            &format!("/api/v1/cabinets/{cab}"),
            json!({"site_id": "annex", "name": "Annex lockers", "boxes": boxes}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, r) = api
        .post(
            "/api/v1/reservations",
            json!({"flow": "dropoff", "case_number": "MB-2026-1", "phone": "13812345678", "site_id": "annex"}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    eventually(Duration::from_secs(20), "codes at the cabinet", || async {
        let (_, c) = api.get(&format!("/api/v1/cabinets/{cab}")).await;
        let cab = &c["cabinet"];
        (cab["codes_version"].as_i64() > Some(0) && cab["codes_applied"] == cab["codes_version"])
            .then_some(())
    })
    .await;
    r["code"].as_str().expect("code").to_owned()
}

/// One line to the agent's keypad socket, as the cabinet's screen application sends it.
async fn type_on_screen(socket: &Path, line: &str) -> Value {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("keypad socket");
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{line}\n").as_bytes())
        .await
        .expect("write");
    let answer = BufReader::new(read)
        .lines()
        .next_line()
        .await
        .expect("read")
        .expect("an answer");
    serde_json::from_str(&answer).expect("json")
}

/// The doctor with the boards answering: every box read, exit 0.
fn doctor_passes(world: &World, id: &str, config: &str, hardware: &str, mqtt_port: u16) {
    let (code, out) = doctor(world, id, config, hardware, mqtt_port);
    assert_eq!(
        check(&out, "lock board"),
        "PASS all 8 boxes answered",
        "{out}"
    );
    assert_eq!(code, 0, "{out}");
}

/// One check of the doctor's list as `PASS detail` or `FAIL detail`.
fn check(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| {
            let (verdict, rest) = l.split_once("  ")?;
            let detail = rest.strip_prefix(name)?.trim_start();
            Some(format!("{verdict} {detail}"))
        })
        .unwrap_or_else(|| panic!("no {name} check in:\n{out}"))
}

fn assert_no_agent_panic(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(!text.contains("panicked"), "{text}");
}

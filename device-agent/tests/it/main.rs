//! Integration tests of the `device-agent` binary: configuration errors are clear and fatal;
//! the shipped systemd unit verifies, and the agent speaks systemd's notify protocol.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_device-agent"))
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&[&str], &str); 8] = [
        (&["--id", "a/b"], "device id"),
        (&["--id", "cab-1", "--server", "nohost"], "HOST:PORT"),
        (&["--id", "cab-1", "--hardware", "modbus"], "hardware"),
        (&["--id", "cab-1", "--fake-jam-rate", "2"], "jam_rate"),
        (
            &["--id", "cab-1", "--hardware", "modbus-rtu://ttyUSB0"],
            "no serial device; write modbus-rtu:///dev/ttyUSB0",
        ),
        (
            &["--id", "cab-1", "--hardware", "gpio://gpiochip0"],
            "names no GPIO chip",
        ),
        (
            &["--id", "cab-1", "--hardware", "gpio:///dev/gpiochip0"],
            "lock_lines lists 0 lines but the cabinet has boxes = 24",
        ),
        (
            &[
                "--id",
                "cab-1",
                "--hardware",
                "modbus-tcp://gw:502",
                "--profile",
                "printer",
            ],
            "a station device has no boxes",
        ),
    ];
    for (args, expected) in cases {
        let out = agent()
            .args(args)
            .args(["--data-dir", &dir.path().display().to_string()])
            .output()
            .expect("run device-agent");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            stderr.contains(expected),
            "{args:?}: stderr lacks {expected:?}:\n{stderr}"
        );
    }
}

#[test]
fn missing_certificates_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = agent()
        .args([
            "--id",
            "cab-1",
            "--certs",
            &dir.path().display().to_string(),
        ])
        .args(["--data-dir", &dir.path().join("data").display().to_string()])
        .output()
        .expect("run device-agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("ca.crt"), "{stderr}");
}

#[test]
fn a_config_file_with_a_typo_is_refused() {
    let stderr = refused_config("id = 'cab-1'\nboxs = 12\n");
    assert!(
        stderr.contains("boxs") && stderr.contains("agent.toml"),
        "{stderr}"
    );
}

/// Runs the agent on a config file of `text`, which must be refused; its stderr.
fn refused_config(text: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, text).expect("write");
    let out = agent()
        .args(["--config", &path.display().to_string()])
        .output()
        .expect("run device-agent");
    assert!(!out.status.success(), "{text:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_register_map_that_does_not_fit_the_cabinet_is_refused() {
    let stderr = refused_config(
        "id = 'cab-1'\nhardware = 'modbus-tcp://gw:502'\nboxes = 12\n[[modbus.boards]]\nunit = 1\nboxes = 8\n",
    );
    assert!(
        stderr.contains("modbus.boards")
            && stderr.contains("the boards hold 8 boxes but the cabinet has boxes = 12"),
        "{stderr}"
    );
}

/// `systemd-analyze verify` on the unit we ship (its ExecStart pointed at this build).
#[test]
fn the_shipped_systemd_unit_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/lockerfleet-agent.service"
    ))
    .expect("deploy/lockerfleet-agent.service");
    assert!(unit.contains(
        "ExecStart=/usr/local/bin/device-agent supervise --config /etc/lockerfleet/agent.toml"
    ));
    let path = dir.path().join("lockerfleet-agent.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/device-agent",
            env!("CARGO_BIN_EXE_device-agent"),
        ),
    )
    .expect("write unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is needed (Debian: apt-get install systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let about_ours: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("lockerfleet-agent.service"))
        .collect();
    assert!(out.status.success() && about_ours.is_empty(), "{said}");
}

/// Under systemd (`Type=notify`, `WatchdogSec=`): READY once running, watchdog pings while it
/// polls, STOPPING on SIGTERM — over a real notify socket.
#[test]
fn the_agent_tells_systemd_it_is_ready_alive_and_stopping() {
    tells_systemd(false);
}

/// The same under `device-agent supervise`, as the shipped unit runs it (`NotifyAccess=all`):
/// the agent notifies although systemd's `WATCHDOG_PID` names the supervisor, and a SIGTERM to
/// the supervisor stops the agent in order.
#[test]
fn a_supervised_agent_tells_systemd_too() {
    tells_systemd(true);
}

fn tells_systemd(supervised: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    certs::init(&certs, false).expect("CA");
    let ca = certs::Ca::load(&certs).expect("CA");
    let id = protocol::DeviceId::parse("cab-sd").expect("id");
    ca.issue_device(&certs, &id, false).expect("certificate");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut cmd = agent();
    if supervised {
        // systemd names the unit's main process, the supervisor, not its child.
        cmd.arg("supervise").env("WATCHDOG_PID", "1");
    }
    let mut child = cmd
        .args([
            "--id",
            "cab-sd",
            "--server",
            "localhost:1",
            "--hardware",
            "fake",
        ])
        .args(["--certs", &certs.display().to_string()])
        .args(["--data-dir", &dir.path().join("data").display().to_string()])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn device-agent");
    let mut said = Vec::new();
    let mut buf = [0u8; 512];
    let until = Instant::now() + Duration::from_secs(20);
    while said
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 3
    {
        assert!(Instant::now() < until, "no three watchdog pings: {said:?}");
        let n = socket.recv(&mut buf).expect("a notify message");
        said.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        said[0].contains("READY=1") && said[0].contains("STATUS=running: 24 boxes on fake"),
        "{said:?}"
    );
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    loop {
        let n = socket.recv(&mut buf).expect("STOPPING before exit");
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            break;
        }
    }
    let status = child.wait().expect("exit");
    assert!(status.success(), "{status:?}");
}

//! The systemd units shipped for the server roles verify (`systemd-analyze verify`) with
//! their ExecStart pointed at this build, and start what they claim to.

use std::process::Command;

fn verify(name: &str, exec: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name);
    let unit = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        unit.contains(&format!("ExecStart=/usr/local/bin/fleet-server{exec}")),
        "{unit}"
    );
    let local = dir.path().join(name);
    std::fs::write(
        &local,
        unit.replace(
            "/usr/local/bin/fleet-server",
            env!("CARGO_BIN_EXE_fleet-server"),
        ),
    )
    .expect("write unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&local)
        .output()
        .expect("systemd-analyze is needed (Debian: apt-get install systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let about_ours: Vec<&str> = said.lines().filter(|l| l.contains(name)).collect();
    assert!(
        out.status.success() && about_ours.is_empty(),
        "{name}: {said}"
    );
}

#[test]
fn the_replica_unit_verifies() {
    verify(
        "lockerfleet-server.service",
        " --config /etc/lockerfleet/server.toml --data-dir /var/lib/lockerfleet-server",
    );
}

#[test]
fn the_broker_auth_unit_verifies() {
    verify(
        "lockerfleet-broker-auth.service",
        " broker-auth --listen 127.0.0.1:8781",
    );
}

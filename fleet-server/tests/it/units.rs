//! The systemd units shipped for the server roles verify (`systemd-analyze verify`) with
//! their ExecStart pointed at this build, and start what they claim to.

use std::process::Command;

fn verify(name: &str, exec: &str) {
    verify_running(
        name,
        &format!("/usr/local/bin/fleet-server{exec}"),
        "/usr/local/bin/fleet-server",
        env!("CARGO_BIN_EXE_fleet-server"),
    );
}

/// Checks the unit starts `exec`, then verifies it with `installed` (where the unit expects
/// the program) replaced by `here` (where this checkout or machine has it).
fn verify_running(name: &str, exec: &str, installed: &str, here: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name);
    let unit = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    if !exec.is_empty() {
        assert!(unit.contains(&format!("ExecStart={exec}")), "{unit}");
    }
    let local = dir.path().join(name);
    let unit = if installed.is_empty() {
        unit
    } else {
        unit.replace(installed, here)
    };
    std::fs::write(&local, unit).expect("write unit");
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

#[test]
fn the_broker_node_revocation_units_verify() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/cluster/rabbitmq.sh")
        .canonicalize()
        .expect("deploy/cluster/rabbitmq.sh");
    let script = script.display().to_string();
    verify_running(
        "lockerfleet-rabbitmq-crl.service",
        "/usr/local/lib/lockerfleet/rabbitmq.sh crl /etc/rabbitmq",
        "/usr/local/lib/lockerfleet/rabbitmq.sh",
        &script,
    );
    verify_running("lockerfleet-rabbitmq-crl.path", "", "", "");
}

#[test]
fn the_database_node_unit_verifies() {
    // pg_autoctl from Debian's pg-auto-failover-cli (.ci/run installs it).
    assert!(
        std::path::Path::new("/usr/bin/pg_autoctl").exists(),
        "pg_autoctl is not installed: apt-get install postgresql-15-auto-failover pg-auto-failover-cli (.ci/run does)"
    );
    verify_running(
        "lockerfleet-pg-autoctl.service",
        "/usr/bin/pg_autoctl run",
        "/usr/bin/pg_autoctl",
        "/usr/bin/pg_autoctl",
    );
}

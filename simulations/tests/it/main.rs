//! The `fleet-sim` binary as a user meets it: scenarios that ship plan cleanly, and a broken
//! scenario or flag is refused with the field to fix. (Runs against a real server live in the
//! workspace's `tests` crate; this binary also makes `cargo test --workspace` build
//! `fleet-sim` for them.)

use std::path::PathBuf;
use std::process::Command;

fn fleet_sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fleet-sim"))
}

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

#[test]
fn every_shipped_scenario_plans() {
    for name in ["smoke", "document", "city"] {
        let out = fleet_sim()
            .arg("run")
            .arg(scenarios().join(format!("{name}.toml")))
            .arg("--dry-run")
            .output()
            .expect("fleet-sim runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("plan "), "{name}: {stdout}");
        let arrivals: usize = stdout
            .lines()
            .find_map(|l| l.strip_prefix("arrival "))
            .and_then(|n| n.parse().ok())
            .expect("arrival count");
        assert!(arrivals > 0, "{name} plans nobody: {stdout}");
    }
}

#[test]
fn a_broken_scenario_is_refused_with_the_field_to_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(scenarios().join("smoke.toml")).expect("smoke");
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        text.replace("jam_per_open = 0.08", "jam_per_open = 8"),
    )
    .expect("write");
    let out = fleet_sim()
        .arg("run")
        .arg(&broken)
        .arg("--dry-run")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("faults.jam_per_open") && stderr.contains("not a share"),
        "{stderr}"
    );

    let out = fleet_sim()
        .arg("run")
        .arg(dir.path().join("missing.toml"))
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot read scenario") && stderr.contains("missing.toml"),
        "{stderr}"
    );

    let out = fleet_sim()
        .arg("run")
        .arg(scenarios().join("smoke.toml"))
        .args(["--server", "127.0.0.1:1"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--api") || stderr.contains("--certs"),
        "{stderr}"
    );
}

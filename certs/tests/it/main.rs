//! Runs the real `fleet-certs` binary the way an operator or the demo script would.

use std::path::Path;
use std::process::{Command, Output};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fleet_certs(args: &[&str], dir: &Path) -> Result<Output, std::io::Error> {
    Command::new(env!("CARGO_BIN_EXE_fleet-certs"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        // An operator's own default must not leak into what the test checks.
        .env_remove("FLEET_CERTS_DIR")
        .output()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn init_then_issue_writes_verifiable_files() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("pki");

    let out = fleet_certs(&["init"], &dir)?;
    assert!(out.status.success(), "init failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for name in ["ca.crt", "ca.key", "server.crt", "server.key"] {
        assert!(dir.join(name).is_file(), "{name} missing");
        assert!(stdout.contains(name), "{name} not reported: {stdout}");
    }

    let out = fleet_certs(
        &[
            "issue",
            "--device",
            "locker-1",
            "--device",
            "locker-2,locker-3",
        ],
        &dir,
    )?;
    assert!(out.status.success(), "issue failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for id in ["locker-1", "locker-2", "locker-3"] {
        let cert = dir.join(format!("{id}.crt"));
        assert!(dir.join(format!("{id}.key")).is_file(), "{id}.key missing");
        assert!(
            stdout.contains(&format!("{id}.crt")),
            "{id} not reported: {stdout}"
        );
        let der = certs::load_certs(&cert)?.remove(0);
        assert_eq!(certs::device_id_from_der(&der)?.as_str(), id);
    }
    Ok(())
}

#[test]
fn existing_files_are_refused_without_force() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    assert!(fleet_certs(&["init"], dir)?.status.success());

    let out = fleet_certs(&["init"], dir)?;
    assert!(!out.status.success(), "second init succeeded");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("--force"), "stderr: {stderr}");

    assert!(
        fleet_certs(&["issue", "--device", "d1"], dir)?
            .status
            .success()
    );
    let before = std::fs::read(dir.join("d1.crt"))?;
    // d2 is new but d1 is not: nothing may be written, so the batch can be re-run as is.
    let out = fleet_certs(&["issue", "--device", "d2", "--device", "d1"], dir)?;
    assert!(!out.status.success(), "reissue succeeded");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--force") && stderr.contains("d1.crt"),
        "stderr: {stderr}"
    );
    assert!(!dir.join("d2.crt").exists());
    assert_eq!(std::fs::read(dir.join("d1.crt"))?, before);

    let out = fleet_certs(&["issue", "--device", "d1", "--force"], dir)?;
    assert!(
        out.status.success(),
        "forced reissue failed: {}",
        text(&out.stderr)
    );
    assert_ne!(std::fs::read(dir.join("d1.crt"))?, before);

    let out = fleet_certs(&["init", "--force"], dir)?;
    assert!(
        out.status.success(),
        "forced init failed: {}",
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn issue_without_ca_says_to_run_init() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let out = fleet_certs(&["issue", "--device", "d1"], tmp.path())?;
    assert!(!out.status.success(), "issue without CA succeeded");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("fleet-certs init"), "stderr: {stderr}");
    assert!(!tmp.path().join("d1.crt").exists());
    Ok(())
}

#[test]
fn invalid_and_reserved_device_ids_are_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    assert!(fleet_certs(&["init"], tmp.path())?.status.success());
    let out = fleet_certs(&["issue", "--device", "a/b"], tmp.path())?;
    assert!(!out.status.success(), "a/b accepted");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("invalid device id"), "stderr: {stderr}");

    // "ca" would overwrite ca.crt; even with --force the batch must stop before writing d1.
    let out = fleet_certs(&["issue", "--device", "d1,ca", "--force"], tmp.path())?;
    assert!(!out.status.success(), "reserved id accepted");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("reserved"), "stderr: {stderr}");
    assert!(!tmp.path().join("d1.crt").exists());
    Ok(())
}

/// `fleet-certs release …` run in `dir`, so relative paths are the operator's.
fn release_cmd(args: &[&str], dir: &Path) -> Result<Output, std::io::Error> {
    Command::new(env!("CARGO_BIN_EXE_fleet-certs"))
        .current_dir(dir)
        .args(args)
        .env_remove("FLEET_CERTS_DIR")
        .output()
}

#[test]
fn a_release_is_keyed_signed_verified_and_a_tampered_binary_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let out = release_cmd(&["release", "key", "--dir", "keys"], d)?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(d.join("device-agent"), b"\x7fELF agent 0.2.0")?;
    let sign = |binary: &str, version: &str| {
        release_cmd(
            &[
                "release",
                "sign",
                "--key",
                "keys/release-key.pk8",
                "--binary",
                binary,
                "--version",
                version,
                "--target",
                "x86_64-unknown-linux-gnu",
                "--out",
                "release.json",
            ],
            d,
        )
    };
    let out = sign("device-agent", "0.2.0")?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let verify = || {
        release_cmd(
            &[
                "release",
                "verify",
                "--trusted",
                "keys/release-key.pub",
                "--release",
                "release.json",
                "--binary",
                "device-agent",
            ],
            d,
        )
    };
    let out = verify()?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ok: device-agent 0.2.0"),
        "{}",
        text(&out.stdout)
    );

    // One byte changed after signing: refused, saying why.
    std::fs::write(d.join("device-agent"), b"\x7fELF agent 0.2.1")?;
    let out = verify()?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("tampered with"),
        "{}",
        text(&out.stderr)
    );

    // A bad version never becomes a release; a second key is refused without --force.
    let out = sign("device-agent", "0.2")?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("MAJOR.MINOR.PATCH"),
        "{}",
        text(&out.stderr)
    );
    let out = release_cmd(&["release", "key", "--dir", "keys"], d)?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("rotate"),
        "{}",
        text(&out.stderr)
    );

    // Rotation: the old key vouches for a new one.
    let out = release_cmd(&["release", "key", "--dir", "next"], d)?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = release_cmd(
        &[
            "release",
            "rotate",
            "--old-key",
            "keys/release-key.pk8",
            "--new-public",
            "next/release-key.pub",
        ],
        d,
    )?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rotation: protocol::release::KeyRotation =
        serde_json::from_slice(&std::fs::read(d.join("release-key-rotation.json"))?)?;
    let mut trusted = certs::load_trusted_keys(&d.join("keys/release-key.pub"))?;
    trusted.rotate(&rotation)?;
    assert_eq!(trusted.keys().len(), 2);
    Ok(())
}

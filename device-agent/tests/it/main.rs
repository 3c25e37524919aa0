//! Integration tests of the `device-agent` binary: configuration errors are clear and fatal.

use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_device-agent"))
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&[&str], &str); 4] = [
        (&["--id", "a/b"], "device id"),
        (&["--id", "cab-1", "--server", "nohost"], "HOST:PORT"),
        (&["--id", "cab-1", "--hardware", "modbus"], "hardware"),
        (&["--id", "cab-1", "--fake-jam-rate", "2"], "jam_rate"),
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
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, "id = 'cab-1'\nboxs = 12\n").expect("write");
    let out = agent()
        .args(["--config", &path.display().to_string()])
        .output()
        .expect("run device-agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("boxs") && stderr.contains("agent.toml"),
        "{stderr}"
    );
}

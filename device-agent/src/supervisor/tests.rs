//! The supervisor with shell scripts for agent versions: installs, confirmations, crashes,
//! hangs, and every state a power loss can leave on disk.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;

/// A fake agent: logs `name` to `ran.log` in the data dir (its first argument), then runs
/// `body`.
fn script(path: &Path, name: &str, body: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("dir");
    }
    let text = format!("#!/bin/sh\necho {name} >> \"$1/ran.log\"\n{body}\n");
    std::fs::write(path, text).expect("script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Confirms when on trial, then stays up.
const CONFIRMS: &str = r#"if [ -n "$LOCKERFLEET_TRIAL" ]; then
  printf '{"version":"%s","ok":true}' "$LOCKERFLEET_TRIAL" > "$1/releases/verdict.json.tmp"
  mv "$1/releases/verdict.json.tmp" "$1/releases/verdict.json"
fi
exec sleep 1000"#;

fn supervisor(data: &Path, trial: Duration) -> Supervisor {
    let factory = data.join("installed/device-agent");
    // The installed version asks once for the install `want` names, then runs.
    script(
        &factory,
        "installed",
        r#"if [ -f "$1/want" ] && [ ! -f "$1/asked" ]; then
  touch "$1/asked"
  cp "$1/want" "$1/releases/install.json"
  exit 75
fi
exec sleep 1000"#,
    );
    Supervisor {
        data_dir: data.to_owned(),
        factory,
        args: vec![data.as_os_str().to_owned()],
        trial,
        restart_delay: Duration::from_millis(50),
        stop_timeout: Duration::from_secs(5),
    }
}

/// Stages `version` with `body` and has the installed agent ask for it.
fn stage_and_want(data: &Path, version: &str, body: &str) {
    let layout = Layout::new(data);
    script(&layout.binary(version), version, body);
    let req = InstallRequest {
        version: version.into(),
        sha256: sha256_file(&layout.binary(version)).expect("hash"),
    };
    std::fs::write(data.join("want"), serde_json::to_vec(&req).expect("json")).expect("want");
}

fn ran(data: &Path) -> Vec<String> {
    std::fs::read_to_string(data.join("ran.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn running(sup: &Supervisor) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let (s, c) = (sup.clone(), cancel.clone());
    let task = tokio::spawn(async move { s.run(c).await.expect("supervisor") });
    (cancel, task)
}

#[tokio::test]
async fn a_version_that_confirms_stays_and_older_ones_are_pruned() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path();
    let sup = supervisor(data, Duration::from_secs(20));
    let layout = Layout::new(data);
    script(&layout.binary("0.0.9"), "0.0.9", CONFIRMS);
    stage_and_want(data, "0.2.0", CONFIRMS);
    let (cancel, task) = running(&sup).await;
    until("the trial to end", || {
        ran(data) == ["installed", "0.2.0"] && !layout.dir_has(TRIAL)
    })
    .await;
    assert_eq!(layout.current().as_deref(), Some("0.2.0"));
    assert!(layout.read::<Outcome>(OUTCOME).is_none());
    // A/B: the running version and the one before it (the installed binary) stay.
    assert!(!layout.version_dir("0.0.9").exists());
    cancel.cancel();
    task.await.expect("join");
    // Started again, the confirmed version runs, not on trial.
    let (cancel, task) = running(&sup).await;
    until("the restart", || ran(data).len() == 3).await;
    assert_eq!(ran(data)[2], "0.2.0");
    assert!(!layout.dir_has(TRIAL));
    cancel.cancel();
    task.await.expect("join");
}

#[tokio::test]
async fn a_version_that_crashes_or_hangs_is_rolled_back_with_the_reason() {
    for (body, why) in [
        ("exit 3", "exited with status 3 before confirming"),
        ("exec sleep 1000", "did not confirm within 1 s"),
        (
            r#"printf '{"version":"0.2.0","ok":false,"reason":"board: box 4 silent"}' > "$1/releases/verdict.json"; exec sleep 1000"#,
            "board: box 4 silent",
        ),
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let data = dir.path();
        let sup = supervisor(data, Duration::from_secs(1));
        let layout = Layout::new(data);
        stage_and_want(data, "0.2.0", body);
        let (cancel, task) = running(&sup).await;
        until("the rollback", || {
            ran(data) == ["installed", "0.2.0", "installed"]
        })
        .await;
        assert_eq!(layout.current(), None, "back on the installed binary");
        let o = layout.read::<Outcome>(OUTCOME).expect("outcome");
        assert_eq!(o.version, "0.2.0");
        assert_eq!(o.state, ReleaseProgress::RolledBack);
        assert!(
            o.reason.as_deref().is_some_and(|r| r.contains(why)),
            "{o:?}"
        );
        assert!(!layout.dir_has(TRIAL));
        cancel.cancel();
        task.await.expect("join");
    }
}

#[tokio::test]
async fn a_staged_binary_changed_on_disk_is_not_installed() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path();
    let sup = supervisor(data, Duration::from_secs(5));
    let layout = Layout::new(data);
    stage_and_want(data, "0.2.0", CONFIRMS);
    script(&layout.binary("0.2.0"), "0.2.0", "exit 0 # altered");
    let (cancel, task) = running(&sup).await;
    until("the refusal", || layout.read::<Outcome>(OUTCOME).is_some()).await;
    let o = layout.read::<Outcome>(OUTCOME).expect("outcome");
    assert_eq!(o.state, ReleaseProgress::Failed);
    assert!(o.reason.unwrap_or_default().contains("changed on disk"));
    until("the installed agent again", || ran(data).len() == 2).await;
    assert_eq!(ran(data), ["installed", "installed"]);
    assert_eq!(layout.current(), None);
    cancel.cancel();
    task.await.expect("join");
}

#[test]
fn what_a_power_loss_leaves_is_finished_or_undone_at_the_next_start() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path();
    let sup = supervisor(data, Duration::from_secs(30));
    let layout = Layout::new(data);
    script(&layout.binary("0.1.5"), "0.1.5", CONFIRMS);
    script(&layout.binary("0.2.0"), "0.2.0", CONFIRMS);
    layout.point_current(Some("0.1.5")).expect("current");
    let trial = Trial {
        version: "0.2.0".into(),
        previous: Some("0.1.5".into()),
        attempts: 0,
        deadline_secs: 30,
        rolling_back: None,
    };

    // Cut after the intent was written, before `current` moved: the switch is finished.
    layout.write(TRIAL, &trial).expect("trial");
    let l = sup.prepare(&layout).expect("prepare");
    assert_eq!(l.version.as_deref(), Some("0.2.0"));
    assert_eq!(l.binary, layout.binary("0.2.0"));
    assert_eq!(l.trial.as_ref().map(|t| t.attempts), Some(1));
    assert_eq!(layout.current().as_deref(), Some("0.2.0"));

    // Cut during the trial: retried once more, then rolled back.
    let l = sup.prepare(&layout).expect("prepare");
    assert_eq!(l.trial.as_ref().map(|t| t.attempts), Some(2));
    let l = sup.prepare(&layout).expect("prepare");
    assert_eq!(l.trial, None);
    assert_eq!(l.version.as_deref(), Some("0.1.5"));
    let o = layout.read::<Outcome>(OUTCOME).expect("outcome");
    assert_eq!(o.state, ReleaseProgress::RolledBack);
    assert!(o.reason.unwrap_or_default().contains("cut short 2 times"));

    // Cut in the middle of a rollback: it is finished.
    layout.point_current(Some("0.2.0")).expect("current");
    layout
        .write(
            TRIAL,
            &Trial {
                rolling_back: Some("exited with status 1 before confirming".into()),
                ..trial.clone()
            },
        )
        .expect("trial");
    let l = sup.prepare(&layout).expect("prepare");
    assert_eq!(l.version.as_deref(), Some("0.1.5"));
    assert!(!layout.dir_has(TRIAL));

    // Cut after the new version confirmed, before the supervisor saw it: it stays.
    layout.write(TRIAL, &trial).expect("trial");
    layout
        .write(
            VERDICT,
            &Verdict {
                version: "0.2.0".into(),
                ok: true,
                reason: None,
            },
        )
        .expect("verdict");
    let l = sup.prepare(&layout).expect("prepare");
    assert_eq!((l.version.as_deref(), l.trial), (Some("0.2.0"), None));

    // A request no switch followed is dropped (the agent asks again when still due); a
    // current version whose binary is gone falls back to the installed one.
    layout.write_bytes(INSTALL, b"{}").expect("install");
    std::fs::remove_file(layout.binary("0.2.0")).expect("rm");
    let l = sup.prepare(&layout).expect("prepare");
    assert_eq!(l.binary, sup.factory);
    assert!(!layout.dir_has(INSTALL));
}

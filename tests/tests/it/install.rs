//! Installing agent releases on real cabinets: `device-agent supervise` runs the agent, a
//! second build of the agent (another version compiled in) is signed, uploaded and offered
//! for install; it goes in only when the cabinet is idle inside the window, proves itself on
//! trial and stays, while codes issued before keep working. A release that crashes at start
//! or is mislabelled is rolled back by the cabinet itself, and a power loss during the
//! download, the switch or the trial leaves a cabinet on a good version.

use std::time::Duration;

use serde_json::{Value, json};

use crate::flows::{CAB, setup, wait_codes_synced};
use crate::harness::{
    Api, NEXT_VERSION, Server, Supervised, World, eventually, next_agent, now_ms, wait_online,
};
use crate::releases::{host_target, publish, release_events};

/// A server trusting a fresh release key, and the agent config that trusts it too.
pub(crate) struct Fleet {
    pub world: World,
    pub server: Server,
    pub api: Api,
    key: ring::signature::Ed25519KeyPair,
    config: String,
}

pub(crate) fn fleet(devices: &[&str], server_extra: &[&str]) -> Fleet {
    let world = World::new(devices);
    let keys = world.path("release-keys");
    certs::new_release_key(&keys, false).expect("release key");
    let key = certs::load_release_key(&keys.join(certs::RELEASE_KEY)).expect("key");
    let pub_file = keys.join(certs::RELEASE_PUB).display().to_string();
    let mut args = vec!["--release-keys", pub_file.as_str()];
    args.extend_from_slice(server_extra);
    let server = world.server_with("127.0.0.1:0", "127.0.0.1:0", &args);
    let api = server.api();
    let config = world.path("agent.toml");
    std::fs::write(
        &config,
        format!("release_keys = {pub_file:?}\ntrial_secs = 30\nkeypad_quiet_secs = 5\n"),
    )
    .expect("config");
    Fleet {
        world,
        server,
        api,
        key,
        config: config.display().to_string(),
    }
}

impl Fleet {
    pub(crate) fn supervised(&self, id: &str, env: &[(&str, &str)]) -> Supervised {
        let flags = ["--config", &self.config, "--fake-close-after-ms", "200"];
        self.world.supervised(id, self.server.mqtt, &flags, env)
    }

    pub(crate) async fn publish(&self, version: &str, bytes: &[u8]) {
        let http = self.server.http.to_string();
        publish(&self.world, &self.api, &http, &self.key, version, bytes).await;
    }

    async fn install(&self, device: &str, version: &str, window: Option<Value>) {
        let mut body = json!({"target": host_target(), "version": version, "install": true});
        if let Some(w) = window {
            body["window"] = w;
        }
        let (s, r) = self
            .api
            .post(&format!("/api/v1/devices/{device}/release"), body)
            .await;
        assert_eq!(s, 202, "{r}");
    }

    /// Waits for `device` to report `state` for `version`; its release events then. On a
    /// timeout the panic shows what it reported and the end of its log.
    pub(crate) async fn reached(
        &self,
        device: &str,
        version: &str,
        state: &str,
    ) -> Vec<(String, String, String)> {
        let end = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let e = release_events(&self.api, device).await;
            if e.iter().any(|(v, s, _)| v == version && s == state) {
                return e;
            }
            if std::time::Instant::now() > end {
                let log = std::fs::read_to_string(self.world.path(&format!("{device}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                panic!(
                    "{device} never reported {version} {state}; it reported {e:?}; its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(crate) async fn agent_version(&self, device: &str) -> String {
        let (_, d) = self.api.get(&format!("/api/v1/devices/{device}")).await;
        d["agent_version"].as_str().unwrap_or_default().to_owned()
    }
}

/// `HH:MM` (UTC) `minutes` from now.
fn utc_clock(minutes: i64) -> String {
    let m = (now_ms() / 60_000 + minutes).rem_euclid(24 * 60);
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn states(events: &[(String, String, String)], version: &str) -> Vec<String> {
    events
        .iter()
        .filter(|(v, _, _)| v == version)
        .map(|(_, s, _)| s.clone())
        .collect()
}

#[tokio::test]
async fn a_new_build_goes_in_when_the_cabinet_is_idle_inside_its_window_and_codes_keep_working() {
    let next = std::fs::read(next_agent()).expect("next agent");
    let f = fleet(&[CAB], &["--release-bytes-per-sec", "50000000"]);
    let platform = setup(&f.api).await;
    let agent = f.supervised(CAB, &[]);
    wait_online(&f.api, CAB).await;
    assert_eq!(f.agent_version(CAB).await, "0.1.0");
    let (s, r) = platform
        .post(
            "/api/v1/reservations",
            json!({"flow": "dropoff", "case_number": "GZ-2026-0311",
                   "phone": "13812345678", "device_id": CAB}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let code = r["code"].as_str().expect("code").to_owned();
    wait_codes_synced(&f.api).await;
    f.publish(NEXT_VERSION, &next).await;

    // A citizen is at box 3 (its door open): the install waits, inside its window.
    assert_eq!(agent.send("open 3").await, json!({"ok": true}));
    let window = json!({"from": utc_clock(-60), "to": utc_clock(60), "utc_offset_minutes": 0});
    f.install(CAB, NEXT_VERSION, Some(window)).await;
    let events = f.reached(CAB, NEXT_VERSION, "waiting").await;
    let waiting = events
        .iter()
        .find(|(_, s, _)| s == "waiting")
        .map(|(_, _, r)| r.clone());
    assert_eq!(waiting.as_deref(), Some("cabinet busy: door 3 open"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        agent.starts(),
        1,
        "nothing restarted while the door was open"
    );

    // The citizen starts typing a code, then the door closes: the cabinet still waits for
    // the keypad to be quiet (5 s here, 60 s by default) before it switches.
    assert_eq!(agent.send("typing").await["outcome"], "noted");
    let typed = std::time::Instant::now();
    assert_eq!(agent.send("close 3").await, json!({"ok": true}));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        agent.starts(),
        1,
        "nothing restarted while a code was being typed"
    );

    // The keypad falls quiet: the cabinet switches, the new build proves itself and stays.
    let events = f.reached(CAB, NEXT_VERSION, "succeeded").await;
    assert!(
        typed.elapsed() >= Duration::from_secs(5),
        "switched {:?} after the last key",
        typed.elapsed()
    );
    assert_eq!(
        states(&events, NEXT_VERSION),
        [
            "downloading",
            "downloaded",
            "waiting",
            "installing",
            "confirming",
            "succeeded"
        ]
    );
    eventually(
        Duration::from_secs(30),
        "the new version reported",
        || async { (f.agent_version(CAB).await == NEXT_VERSION).then_some(()) },
    )
    .await;
    assert_eq!(agent.starts(), 2);
    let (_, dev) = f.api.get(&format!("/api/v1/devices/{CAB}")).await;
    assert_eq!(dev["release"]["state"], "succeeded", "{dev}");

    // The code issued before the install opens its box on the new version.
    let out = agent.send(&format!("code {code}")).await;
    assert_eq!(out["outcome"], "opened", "{out}");
    let (_, audit) = f.api.get("/api/v1/audit?limit=200").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for a in [
        "release_waiting",
        "release_installing",
        "release_confirming",
        "release_succeeded",
    ] {
        assert!(actions.contains(&a), "{a} audited: {actions:?}");
    }
}

#[tokio::test]
async fn a_release_that_crashes_at_start_or_is_mislabelled_is_rolled_back_by_the_cabinet() {
    const DEV: &str = "roll-cab-1";
    let f = fleet(&[DEV], &["--release-bytes-per-sec", "50000000"]);
    let agent = f.supervised(DEV, &[]);
    wait_online(&f.api, DEV).await;

    // Correctly signed, for this target, newer, and dead on arrival.
    f.publish(
        "0.99.1",
        b"#!/bin/sh\necho 'panicked at start' >&2\nexit 3\n",
    )
    .await;
    f.install(DEV, "0.99.1", None).await;
    let events = f.reached(DEV, "0.99.1", "rolled_back").await;
    let reason = events
        .iter()
        .find(|(v, s, _)| v == "0.99.1" && s == "rolled_back")
        .map(|(_, _, r)| r.clone());
    assert_eq!(
        reason.as_deref(),
        Some("exited with status 3 before confirming")
    );
    wait_online(&f.api, DEV).await;
    assert_eq!(f.agent_version(DEV).await, "0.1.0");

    // The installed build itself, signed as a newer version: it runs, but it is not what the
    // release says, so it cannot confirm.
    let installed = std::fs::read(crate::harness::bin("device-agent")).expect("agent");
    f.publish("0.98.0", &installed).await;
    f.install(DEV, "0.98.0", None).await;
    let events = f.reached(DEV, "0.98.0", "rolled_back").await;
    let reason = events
        .iter()
        .find(|(v, s, _)| v == "0.98.0" && s == "rolled_back")
        .map(|(_, _, r)| r.clone())
        .unwrap_or_default();
    assert!(
        reason.contains("runs version 0.1.0: the release is mislabelled"),
        "{reason}"
    );
    wait_online(&f.api, DEV).await;
    assert_eq!(f.agent_version(DEV).await, "0.1.0");
    let (_, dev) = f.api.get(&format!("/api/v1/devices/{DEV}")).await;
    assert_eq!(dev["release"]["state"], "rolled_back", "{dev}");
    assert!(
        agent.starts() >= 3,
        "installed, mislabelled, installed again"
    );
}

#[tokio::test]
async fn a_power_loss_during_download_switch_or_trial_leaves_a_good_version() {
    let next = std::fs::read(next_agent()).expect("next agent");
    let size = next.len() as u64;
    let devices = ["pl-download", "pl-switch", "pl-trial"];
    // 4 MB/s: a download of the agent takes seconds, long enough to cut it.
    let f = fleet(&devices, &["--release-bytes-per-sec", "4000000"]);
    f.publish(NEXT_VERSION, &next).await;

    // During the download: the fetch resumes where it stopped.
    let [dl, sw, tr] = devices;
    let mut agent = f.supervised(dl, &[]);
    wait_online(&f.api, dl).await;
    f.install(dl, NEXT_VERSION, None).await;
    let part = f
        .world
        .path(&format!("agent-{dl}"))
        .join(format!("releases/{NEXT_VERSION}/device-agent.part"));
    eventually(Duration::from_secs(60), "2 MB fetched", || async {
        (std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) > 2_000_000).then_some(())
    })
    .await;
    agent.power_loss();
    let _agent = f.supervised(dl, &[]);
    f.reached(dl, NEXT_VERSION, "succeeded").await;
    let served = f.api.metric("lockerfleet_release_bytes_served_total").await as u64;
    assert!(
        served < size + 1_000_000,
        "resumed, not fetched again: {served} bytes served for {size}"
    );

    // During the switch (intent written, `current` not moved yet) and during the trial.
    let mut cut = Vec::new();
    for (dev, step) in [(sw, "after_intent"), (tr, "in_trial")] {
        let agent = f.supervised(dev, &[("LOCKERFLEET_SUPERVISOR_CRASH_AT", step)]);
        wait_online(&f.api, dev).await;
        f.install(dev, NEXT_VERSION, None).await;
        cut.push((dev, step, agent));
    }
    for (dev, step, mut agent) in cut {
        let status = agent.wait_exit();
        assert!(!status.success(), "{dev}: the supervisor was cut at {step}");
        agent.power_loss();
        let releases = f.world.path(&format!("agent-{dev}")).join("releases");
        assert!(
            releases.join("trial.json").exists(),
            "{dev}: the intent is on disk"
        );
        let _agent = f.supervised(dev, &[]);
        f.reached(dev, NEXT_VERSION, "succeeded").await;
        eventually(
            Duration::from_secs(30),
            "the new version reported",
            || async { (f.agent_version(dev).await == NEXT_VERSION).then_some(()) },
        )
        .await;
        eventually(Duration::from_secs(10), "the trial over", || async {
            (!releases.join("trial.json").exists()).then_some(())
        })
        .await;
    }
}

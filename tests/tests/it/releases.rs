//! Agent releases through the real server: a release signed with `fleet-certs`' release key is
//! registered and its binary uploaded over the API; tampered, unsigned and foreign-key
//! releases are refused with their reason; only admins change releases; every step is audited.

use serde_json::{Value, json};

use std::time::Duration;

use crate::harness::{ADMIN_TOKEN, World, eventually, wait_online};

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The target the agent under test was built for (CI builds natively on Linux).
pub(crate) fn host_target() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

fn spec(version: &str) -> certs::ReleaseSpec {
    certs::ReleaseSpec {
        version: version.into(),
        target: TARGET.into(),
        min_server_version: "0.1.0".into(),
        notes: "keypad timeout fixed".into(),
    }
}

async fn put_binary(http: &str, version: &str, bytes: Vec<u8>) -> (u16, Value) {
    let res = reqwest::Client::new()
        .put(format!(
            "http://{http}/api/v1/releases/{TARGET}/{version}/binary"
        ))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("upload");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_signed_release_is_registered_uploaded_and_withdrawn_and_bad_ones_refused() {
    let world = World::new(&[]);
    let keys = world.path("release-keys");
    certs::new_release_key(&keys, false).expect("release key");
    let key = certs::load_release_key(&keys.join(certs::RELEASE_KEY)).expect("key");
    let binary_path = world.path("device-agent-0.2.0");
    let binary: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&binary_path, &binary).expect("binary");
    let signed = certs::sign_release(&key, &binary_path, &spec("0.2.0")).expect("sign");
    let pub_file = keys.join(certs::RELEASE_PUB).display().to_string();
    let server = world.server_with("127.0.0.1:0", "127.0.0.1:0", &["--release-keys", &pub_file]);
    let api = server.api();

    let (s, r) = api.post("/api/v1/releases", json!(signed)).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["state"], "awaiting_binary");
    assert_eq!(r["sha256"].as_str().map(str::len), Some(64));
    let (s, r) = api.post("/api/v1/releases", json!(signed)).await;
    assert_eq!(
        s, 200,
        "registering the same release again changes nothing: {r}"
    );

    // A binary other than the signed one is refused; the signed one makes it available.
    let mut tampered = binary.clone();
    tampered[1000] ^= 1;
    let (s, r) = put_binary(&server.http.to_string(), "0.2.0", tampered).await;
    assert_eq!(s, 422, "{r}");
    assert!(
        r["error"].as_str().is_some_and(|e| e.contains("tampered")),
        "{r}"
    );
    let (s, r) = put_binary(&server.http.to_string(), "0.2.0", binary.clone()).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["state"], "available");

    // Unsigned, signed by a key the server does not trust, altered after signing.
    let unsigned = json!({"manifest": signed.manifest, "key_id": "", "signature": ""});
    let stranger_dir = world.path("stranger");
    certs::new_release_key(&stranger_dir, false).expect("key");
    let stranger = certs::load_release_key(&stranger_dir.join(certs::RELEASE_KEY)).expect("key");
    let foreign = certs::sign_release(&stranger, &binary_path, &spec("0.3.0")).expect("sign");
    let mut altered = signed.clone();
    altered.manifest = altered.manifest.replace("0.2.0", "0.2.1");
    for (body, reason) in [
        (unsigned, "unsigned"),
        (json!(foreign), "unknown_key"),
        (json!(altered), "bad_signature"),
    ] {
        let (s, r) = api.post("/api/v1/releases", body).await;
        assert_eq!(s, 422, "{reason}: {r}");
        assert!(
            r["error"].as_str().is_some_and(|e| e.contains(reason)),
            "{reason}: {r}"
        );
    }

    // Viewers read, never change.
    let (_, t) = api
        .post("/api/v1/tokens", json!({"name": "wall", "role": "viewer"}))
        .await;
    let viewer = api.with_token(t["token"].as_str().expect("token"));
    let (s, list) = viewer.get("/api/v1/releases").await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["releases"].as_array().map(Vec::len), Some(1), "{list}");
    let (s, _) = viewer.post("/api/v1/releases", json!(signed)).await;
    assert_eq!(s, 403);

    let path = format!("/api/v1/releases/{TARGET}/0.2.0/withdraw");
    let (s, r) = api.post(&path, json!({"note": ""})).await;
    assert_eq!(s, 400, "{r}");
    let (s, r) = api
        .post(&path, json!({"note": "crashes on boards without a keypad"}))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["state"], "withdrawn");
    let (s, r) = api.get(&format!("/api/v1/releases/{TARGET}/0.9.9")).await;
    assert_eq!(s, 404, "{r}");

    let actions = api.audit_actions(100).await;
    for a in [
        "release_registered",
        "release_uploaded",
        "release_withdrawn",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} not audited: {actions:?}"
        );
    }
}

#[tokio::test]
async fn a_server_without_release_keys_says_how_to_trust_one() {
    let world = World::new(&[]);
    let server = world.server();
    let (s, r) = server
        .api()
        .post(
            "/api/v1/releases",
            json!({"manifest": "{}", "key_id": "k", "signature": "00"}),
        )
        .await;
    assert_eq!(s, 409, "{r}");
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("release_keys")),
        "{r}"
    );
}

/// The release's `release` events as the server stored them: (version, state, reason).
/// Signs `bytes` as agent `version` for this host with `key`, registers the release and
/// uploads its binary.
pub(crate) async fn publish(
    world: &World,
    api: &crate::harness::Api,
    http: &str,
    key: &ring::signature::Ed25519KeyPair,
    version: &str,
    bytes: &[u8],
) {
    let target = host_target();
    let path = world.path(&format!("release-{version}"));
    std::fs::write(&path, bytes).expect("binary");
    let spec = certs::ReleaseSpec {
        version: version.into(),
        target: target.clone(),
        min_server_version: "0.1.0".into(),
        notes: String::new(),
    };
    let signed = certs::sign_release(key, &path, &spec).expect("sign");
    let (s, r) = api.post("/api/v1/releases", json!(signed)).await;
    assert_eq!(s, 201, "{r}");
    let res = reqwest::Client::new()
        .put(format!(
            "http://{http}/api/v1/releases/{target}/{version}/binary"
        ))
        .bearer_auth(ADMIN_TOKEN)
        .body(bytes.to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status().as_u16(), 200, "upload of {version}");
}

/// The `release` events a device reported: (version, state, reason), oldest first.
pub(crate) async fn release_events(
    api: &crate::harness::Api,
    device: &str,
) -> Vec<(String, String, String)> {
    api.events(device)
        .await
        .iter()
        .filter(|e| e["kind"] == "release")
        .map(|e| {
            let b = &e["body"];
            (
                b["version"].as_str().unwrap_or_default().to_owned(),
                b["state"].as_str().unwrap_or_default().to_owned(),
                b["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_cabinet_fetches_an_offered_release_over_its_own_connection_and_refuses_a_downgrade() {
    const CAB: &str = "rel-cab-1";
    let world = World::new(&[CAB]);
    let keys = world.path("release-keys");
    certs::new_release_key(&keys, false).expect("release key");
    let key = certs::load_release_key(&keys.join(certs::RELEASE_KEY)).expect("key");
    let pub_file = keys.join(certs::RELEASE_PUB).display().to_string();
    let target = host_target();
    // 300 KB: five chunks, so the fetch really goes chunk by chunk.
    let binary: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let server = world.server_with("127.0.0.1:0", "127.0.0.1:0", &["--release-keys", &pub_file]);
    let api = server.api();
    let http = server.http.to_string();
    publish(&world, &api, &http, &key, "9.0.0", &binary).await;
    publish(&world, &api, &http, &key, "0.0.1", b"an old agent").await;

    let config = world.path("agent-release.toml");
    std::fs::write(&config, format!("release_keys = {pub_file:?}\n")).expect("config");
    let _agent = world.agent(
        CAB,
        server.mqtt,
        &["--config", &config.display().to_string()],
    );
    wait_online(&api, CAB).await;

    let (s, r) = api
        .post(
            &format!("/api/v1/devices/{CAB}/release"),
            json!({"target": target, "version": "9.0.0"}),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let events = eventually(Duration::from_secs(30), "release staged", || async {
        let e = release_events(&api, CAB).await;
        e.iter()
            .any(|(v, st, _)| v == "9.0.0" && st == "downloaded")
            .then_some(e)
    })
    .await;
    assert_eq!(
        events[0],
        ("9.0.0".into(), "downloading".into(), String::new())
    );
    let staged = world
        .path(&format!("agent-{CAB}"))
        .join("releases/9.0.0/device-agent");
    assert_eq!(std::fs::read(&staged).expect("staged binary"), binary);
    assert!(api.metric("lockerfleet_release_bytes_served_total").await >= 300_000.0);
    let (_, dev) = api.get(&format!("/api/v1/devices/{CAB}")).await;
    assert_eq!(dev["release"]["version"], "9.0.0", "{dev}");
    assert_eq!(dev["release"]["state"], "downloaded", "{dev}");

    // An older release is refused by the cabinet, which says why.
    let (s, r) = api
        .post(
            &format!("/api/v1/devices/{CAB}/release"),
            json!({"target": target, "version": "0.0.1"}),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    eventually(Duration::from_secs(30), "downgrade refused", || async {
        release_events(&api, CAB)
            .await
            .into_iter()
            .find(|(v, st, reason)| {
                v == "0.0.1" && st == "refused" && reason.starts_with("downgrade")
            })
    })
    .await;
    let (_, dev) = api.get(&format!("/api/v1/devices/{CAB}")).await;
    assert_eq!(dev["release"]["state"], "refused", "{dev}");
    let (_, audit) = api.get("/api/v1/audit?limit=100").await;
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    let count = |action: &str| entries.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("release_offered"), 2, "{audit}");
    assert_eq!(count("release_downloaded"), 1, "{audit}");
    assert_eq!(
        count("release_refused"),
        1,
        "the cabinet's refusal is audited: {audit}"
    );
}

/// `fleet-server release publish` with these arguments; (exit code, stdout, stderr).
fn publish_cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(crate::harness::bin("fleet-server"))
        .args(["release", "publish"])
        .args(args)
        .env_remove("LOCKERFLEET_TOKEN")
        .output()
        .expect("run fleet-server release publish");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_release_is_published_from_the_command_line_and_a_wrong_binary_never_leaves() {
    let world = World::new(&[]);
    let keys = world.path("release-keys");
    certs::new_release_key(&keys, false).expect("release key");
    let key = certs::load_release_key(&keys.join(certs::RELEASE_KEY)).expect("key");
    let binary = world.path("device-agent-0.4.0");
    std::fs::write(&binary, vec![7u8; 90_000]).expect("binary");
    let signed = certs::sign_release(&key, &binary, &spec("0.4.0")).expect("sign");
    let release = world.path("release.json");
    std::fs::write(&release, serde_json::to_vec(&signed).expect("json")).expect("release.json");
    let pub_file = keys.join(certs::RELEASE_PUB).display().to_string();
    let server = world.server_with("127.0.0.1:0", "127.0.0.1:0", &["--release-keys", &pub_file]);
    let url = format!("http://{}", server.http);
    let (release, binary) = (release.display().to_string(), binary.display().to_string());

    // Another binary than the signed one is refused here, before anything is sent.
    let other = world.path("other");
    std::fs::write(&other, vec![8u8; 90_000]).expect("other");
    let other = other.display().to_string();
    let (code, _, err) = publish_cli(&[&release, &other, "--server", &url, "--token", ADMIN_TOKEN]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("is not the binary") && err.contains("SHA-256"),
        "{err}"
    );
    let (s, _) = server
        .api()
        .get(&format!("/api/v1/releases/{TARGET}/0.4.0"))
        .await;
    assert_eq!(s, 404, "nothing registered");

    // A wrong token: the server's answer, said.
    let (code, _, err) = publish_cli(&[&release, &binary, "--server", &url, "--token", "nope"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("registering the release: 401"), "{err}");

    // Published, and published again without harm.
    let token_file = world.path("token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).expect("token file");
    let token_file = token_file.display().to_string();
    for _ in 0..2 {
        let (code, out, err) = publish_cli(&[
            &release,
            &binary,
            "--server",
            &url,
            "--token-file",
            &token_file,
        ]);
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(
            out.contains("release 0.4.0 for x86_64-unknown-linux-gnu is available (90000 bytes)"),
            "{out}"
        );
    }
    let (s, r) = server
        .api()
        .get(&format!("/api/v1/releases/{TARGET}/0.4.0"))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["state"], "available", "{r}");
}

//! Security end to end: API tokens limited to sites, expiring and revoked, and the audit log's
//! hash chain checked by `fleet-server audit verify` on the real database.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Api, World, bin, eventually, now_ms, reserved_port};

const HALL_CAB: &str = "hall-cab-1";
const ANNEX_CAB: &str = "annex-cab-1";

async fn site_with_cabinet(api: &Api, site: &str, cab: &str) {
    let (s, body) = api
        .post(
            "/api/v1/sites",
            json!({"id": site, "kind": "service_hall", "name": site, "lat": 23.1, "lon": 113.2}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = api
        .put(
            &format!("/api/v1/cabinets/{cab}"),
            json!({"site_id": site, "boxes": [{"box": 1, "size": "M"}, {"box": 2, "size": "M"}]}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
}

async fn token(api: &Api, body: Value) -> (String, String) {
    let (s, t) = api.post("/api/v1/tokens", body).await;
    assert_eq!(s, 201, "{t}");
    assert!(t.get("token_hash").is_none(), "hash leaked: {t}");
    (
        t["token"].as_str().expect("token").to_owned(),
        t["id"].as_str().expect("id").to_owned(),
    )
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

/// Runs `fleet-certs ARGS --dir {certs} --device DEVICE`; its stdout, after asserting success.
pub(crate) fn fleet_certs(world: &World, args: &[&str], device: &str) -> String {
    let out = std::process::Command::new(bin("fleet-certs"))
        .args(args)
        .args([
            "--dir",
            &world.certs().display().to_string(),
            "--device",
            device,
        ])
        .output()
        .expect("run fleet-certs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the server shows `id` offline.
async fn wait_offline(api: &Api, id: &str) {
    eventually(
        Duration::from_secs(15),
        &format!("{id} offline"),
        || async {
            api.device(id)
                .await
                .filter(|d| d["online"] == false)
                .map(|_| ())
        },
    )
    .await;
}

#[tokio::test]
async fn a_token_limited_to_a_site_sees_and_acts_on_that_site_only() {
    let world = World::new(&[HALL_CAB, ANNEX_CAB]);
    let server = world.server();
    let admin = server.api();
    site_with_cabinet(&admin, "hall", HALL_CAB).await;
    site_with_cabinet(&admin, "annex", ANNEX_CAB).await;
    let _hall = world.agent(HALL_CAB, server.mqtt, &[]);
    let _annex = world.agent(ANNEX_CAB, server.mqtt, &[]);
    for cab in [HALL_CAB, ANNEX_CAB] {
        eventually(Duration::from_secs(20), "agents online", || async {
            admin
                .device(cab)
                .await
                .filter(|d| d["online"] == true)
                .map(|_| ())
        })
        .await;
    }

    let (desk, _) = token(
        &admin,
        json!({"name": "hall desk", "role": "operator", "sites": ["hall"]}),
    )
    .await;
    let desk = admin.with_token(&desk);

    let (s, me) = desk.get("/api/v1/me").await;
    assert_eq!((s, &me["sites"]), (200, &json!(["hall"])), "{me}");
    // Lists show the hall only; a one-site token needs no `?site=`.
    let (_, sites) = desk.get("/api/v1/sites").await;
    let ids: Vec<&str> = sites["sites"]
        .as_array()
        .expect("sites")
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert_eq!(ids, ["hall"]);
    let (_, cabs) = desk.get("/api/v1/cabinets").await;
    assert_eq!(cabs["cabinets"].as_array().map(Vec::len), Some(1), "{cabs}");
    let (_, devices) = desk.get("/api/v1/devices").await;
    let ids: Vec<&str> = devices["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, [HALL_CAB]);
    let (_, overview) = desk.get("/api/v1/overview").await;
    assert_eq!(overview["sites"].as_array().map(Vec::len), Some(1));

    // The hall's box opens; the annex's is refused and nothing reaches its agent.
    let reason = json!({"reason": "citizen locked out"});
    let (s, body) = desk.open(HALL_CAB, 1, reason.clone()).await;
    assert_eq!(s, 202, "{body}");
    let (s, body) = desk.open(ANNEX_CAB, 1, reason.clone()).await;
    assert_eq!(s, 403, "{body}");
    assert!(error_of(&body).contains("limited to sites hall"), "{body}");
    for path in [
        format!("/api/v1/devices/{ANNEX_CAB}"),
        format!("/api/v1/cabinets/{ANNEX_CAB}"),
        "/api/v1/sites/annex".to_owned(),
        "/api/v1/cabinets?site=annex".to_owned(),
        "/api/v1/items?site=annex".to_owned(),
        "/api/v1/usage?scope=site&id=annex".to_owned(),
        "/api/v1/usage".to_owned(),
        "/api/v1/planning/recommendations".to_owned(),
        format!("/api/v1/audit?device={ANNEX_CAB}"),
        "/api/v1/tokens".to_owned(),
    ] {
        let (s, body) = desk.get(&path).await;
        assert_eq!(s, 403, "GET {path}: {body}");
    }
    // The audit log shows the hall's cabinet only: its configuration and the open.
    let (s, audit) = desk.get("/api/v1/audit").await;
    assert_eq!(s, 200, "{audit}");
    let rows: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default(),
                e["device_id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [("remote_open", HALL_CAB), ("cabinet_configured", HALL_CAB)],
        "{audit}"
    );
    let (s, _) = admin.get("/api/v1/commands/no-such-command").await;
    assert_eq!(s, 404);

    // A token of two sites sees both, or one when it asks.
    let (both, _) = token(
        &admin,
        json!({"name": "district", "role": "viewer", "sites": ["hall", "annex"]}),
    )
    .await;
    let both = admin.with_token(&both);
    let (s, body) = both.get("/api/v1/cabinets").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["cabinets"].as_array().map(Vec::len), Some(2), "{body}");
    let (_, body) = both.get("/api/v1/cabinets?site=annex").await;
    assert_eq!(body["cabinets"][0]["id"], ANNEX_CAB, "{body}");
    let (s, body) = both.get("/api/v1/usage").await;
    assert_eq!(s, 403, "{body}");
    assert!(error_of(&body).contains("covers the whole fleet"), "{body}");

    // Tokens cannot be limited to a site that does not exist, or to none.
    for bad in [json!(["nowhere"]), json!([])] {
        let (s, body) = admin
            .post(
                "/api/v1/tokens",
                json!({"name": "x", "role": "viewer", "sites": bad}),
            )
            .await;
        assert_eq!(s, 400, "{body}");
    }
}

#[tokio::test]
async fn expired_and_revoked_tokens_are_refused_and_the_audit_chain_verifies() {
    let world = World::new(&[HALL_CAB]);
    let server = world.server();
    let admin = server.api();
    site_with_cabinet(&admin, "hall", HALL_CAB).await;

    let (night, night_id) = token(&admin, json!({"name": "night desk", "role": "viewer"})).await;
    let night = admin.with_token(&night);
    let (s, _) = night.get("/api/v1/sites").await;
    assert_eq!(s, 200);
    let (_, list) = admin.get("/api/v1/tokens").await;
    let row = list["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["id"] == night_id.as_str())
        .expect("listed")
        .clone();
    // Ninety days unless asked otherwise.
    let days = (row["expires_at"].as_i64().expect("expiry") - now_ms()) / 86_400_000;
    assert!((89..=90).contains(&days), "{row}");

    let (s, revoked) = admin.delete(&format!("/api/v1/tokens/{night_id}")).await;
    assert_eq!(s, 200, "{revoked}");
    let (s, body) = night.get("/api/v1/sites").await;
    assert_eq!(s, 401, "{body}");
    assert!(error_of(&body).contains("was revoked"), "{body}");
    let (s, _) = admin.delete("/api/v1/tokens/0123456789abcdef").await;
    assert_eq!(s, 404);

    let (brief, _) = token(
        &admin,
        json!({"name": "contractor", "role": "viewer", "expires_at": now_ms() + 1_500}),
    )
    .await;
    let brief = admin.with_token(&brief);
    let (s, _) = brief.get("/api/v1/sites").await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let (s, body) = brief.get("/api/v1/sites").await;
    assert_eq!(s, 401, "{body}");
    assert!(error_of(&body).contains("expired at"), "{body}");

    // Configuration and token changes are in the audit log, in the chain.
    let (_, audit) = admin.get("/api/v1/audit").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "token_created",
            "token_revoked",
            "token_created",
            "cabinet_configured",
            "site_created"
        ],
        "{audit}"
    );
    assert_eq!(audit["entries"][0]["seq"], 5, "{audit}");
    // The head is exported for anchoring outside the database: a metric, and the log.
    assert_eq!(admin.metric("lockerfleet_audit_head_seq").await, 5.0);
    let log = std::fs::read_to_string(world.path("server.log")).unwrap_or_default();
    assert!(
        log.contains("audit chain head"),
        "no head in the server log"
    );
    assert_eq!(audit["entries"][1]["actor"], "admin", "{audit}");

    let data_dir = world.path("server").display().to_string();
    let verify = || {
        std::process::Command::new(bin("fleet-server"))
            .args(["--data-dir", &data_dir, "audit", "verify"])
            .output()
            .expect("run audit verify")
    };
    // The server is running: verification reads beside it.
    let out = verify();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("5 rows in the chain") && stdout.contains("chain holds"),
        "{stdout}"
    );

    // Someone with the database file edits who revoked the token.
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        world.path("server/fleet.db").display()
    ))
    .await
    .expect("open the database");
    let refused = sqlx::query("UPDATE audit SET actor = 'nobody' WHERE action = 'token_revoked'")
        .execute(&db)
        .await;
    assert!(refused.is_err(), "the database let an audit row be edited");
    sqlx::query("DROP TRIGGER audit_no_update")
        .execute(&db)
        .await
        .expect("drop the guard");
    sqlx::query("UPDATE audit SET actor = 'nobody' WHERE action = 'token_revoked'")
        .execute(&db)
        .await
        .expect("tamper");
    db.close().await;
    let out = verify();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("audit chain broken at seq 4") && stderr.contains("Rows up to seq 3"),
        "{stderr}"
    );
}

/// One token over its rate gets 429 with `Retry-After`; another token is not slowed by it.
#[tokio::test]
async fn a_token_over_its_rate_gets_429_and_others_do_not() {
    let world = World::new(&[]);
    let server = world.server_with(
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--api-requests-per-sec", "2", "--api-burst", "5"],
    );
    let admin = server.api();
    let (busy, _) = token(&admin, json!({"name": "script", "role": "viewer"})).await;
    let (calm, _) = token(&admin, json!({"name": "desk", "role": "viewer"})).await;
    let http = reqwest::Client::new();
    let get = |token: String| {
        let http = http.clone();
        let url = format!("http://{}/api/v1/sites", server.http);
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
        }
    };
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..12 {
        let res = get(busy.clone()).await;
        statuses.push(res.status().as_u16());
        if res.status() == 429 && refused.is_none() {
            let retry = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body: Value = res.json().await.expect("json");
            refused = Some((retry, body));
        }
    }
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    assert!((5..=6).contains(&ok), "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 429),
        "{statuses:?}"
    );
    let (retry, body) = refused.expect("a refusal");
    assert_eq!(retry, Some(1), "{body}");
    assert!(
        error_of(&body).contains("\"script\" is over its request rate"),
        "{body}"
    );
    assert_eq!(get(calm).await.status(), 200, "another token was slowed");
    assert!(admin.metric("lockerfleet_api_throttled_total").await >= 6.0);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get(busy).await.status(), 200, "the rate refills");
}

/// `fleet-certs revoke` against a running server: the device's live session is closed with
/// the reason, its reconnects fail at the handshake, other devices stay, and a certificate
/// issued afresh for the same device is let in again.
#[tokio::test]
async fn a_revoked_device_is_cut_off_and_a_reissued_one_is_let_back_in() {
    let world = World::new(&["cab-r", "cab-s"]);
    let server = world.server();
    let api = server.api();
    let mut revoked = world.agent("cab-r", server.mqtt, &[]);
    let _other = world.agent("cab-s", server.mqtt, &[]);
    for id in ["cab-r", "cab-s"] {
        crate::harness::wait_online(&api, id).await;
    }
    let said = fleet_certs(&world, &["revoke"], "cab-r");
    assert!(said.contains("revoked the certificate of cab-r"), "{said}");
    wait_offline(&api, "cab-r").await;
    let (_, log) = api.get("/api/v1/devices/cab-r/presence").await;
    assert!(
        log["presence"]
            .as_array()
            .is_some_and(|p| p.iter().any(|e| e["reason"] == "certificate revoked")),
        "{log}"
    );
    // The agent keeps trying; each try now fails at the handshake.
    eventually(Duration::from_secs(15), "handshakes refused", || async {
        (api.metric("lockerfleet_broker_handshake_failed_total")
            .await
            >= 1.0)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(api.device("cab-r").await.expect("known")["online"], false);
    assert_eq!(api.device("cab-s").await.expect("known")["online"], true);

    // A new certificate (a new serial) for the same device is trusted again.
    fleet_certs(&world, &["issue", "--force"], "cab-r");
    revoked.kill9();
    let _reissued = world.agent("cab-r", server.mqtt, &[]);
    crate::harness::wait_online(&api, "cab-r").await;
}

/// A cabinet whose certificate is due renews it by itself over its own topics: the server
/// signs the request with the CA, audits it and keeps a copy beside the CA; the agent keeps
/// key and certificate in its data dir and reconnects with them, also after a restart
/// without the issued key. Revoking the device then revokes the renewed certificate too.
#[tokio::test]
async fn a_cabinet_renews_its_certificate_before_expiry_without_a_person() {
    let world = World::new(&["cab-n"]);
    let server = world.server();
    let api = server.api();
    // Certificates are issued for two years: 3650 days before expiry is "due now".
    let config = world.path("renew.toml");
    std::fs::write(&config, "renew_before_days = 3650\n").expect("agent config");
    let config = config.display().to_string();
    let mut agent = world.agent("cab-n", server.mqtt, &["--config", &config]);
    let identity = world.path("agent-cab-n/identity.pem");
    eventually(
        Duration::from_secs(20),
        "a renewed identity on disk",
        || async { identity.exists().then_some(()) },
    )
    .await;
    let (_, audit) = api.get("/api/v1/audit?device=cab-n").await;
    let renewed = audit["entries"]
        .as_array()
        .and_then(|e| e.iter().find(|r| r["action"] == "certificate_renewed"))
        .cloned()
        .unwrap_or_else(|| panic!("no certificate_renewed in {audit}"));
    assert_eq!(renewed["actor"], "device:cab-n", "{renewed}");
    assert_eq!(
        api.metric("lockerfleet_certificates_renewed_total").await,
        1.0
    );
    let copies: Vec<_> = std::fs::read_dir(world.certs().join("renewed"))
        .expect("renewed certificates kept beside the CA")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        copies.len() == 1 && copies[0].starts_with("cab-n-"),
        "{copies:?}"
    );
    let kept = std::fs::read_to_string(&identity).expect("identity");
    assert!(kept.contains("PRIVATE KEY") && kept.contains("BEGIN CERTIFICATE"));
    let back = || async {
        let (_, log) = api.get("/api/v1/devices/cab-n/presence?limit=1").await;
        let last = log["presence"].as_array()?.first()?.clone();
        (last["online"] == true && api.device("cab-n").await?["online"] == true).then_some(())
    };
    eventually(Duration::from_secs(20), "online with the renewed one", back).await;

    // Restarted without the issued key: the renewed identity is all it has, and enough.
    agent.kill9();
    std::fs::remove_file(world.certs().join("cab-n.key")).expect("remove the issued key");
    let _again = world.agent("cab-n", server.mqtt, &["--config", &config]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    eventually(Duration::from_secs(20), "back after a restart", back).await;
    // Renewed once: the new certificate is not renewed again the same day.
    assert_eq!(
        api.metric("lockerfleet_certificates_renewed_total").await,
        1.0
    );

    // Stolen: revoking the device revokes the renewed certificate as well.
    fleet_certs(&world, &["revoke"], "cab-n");
    wait_offline(&api, "cab-n").await;
    let failed = api
        .metric("lockerfleet_broker_handshake_failed_total")
        .await;
    eventually(
        Duration::from_secs(15),
        "its handshakes refused",
        || async {
            (api.metric("lockerfleet_broker_handshake_failed_total")
                .await
                > failed)
                .then_some(())
        },
    )
    .await;
    assert_eq!(api.device("cab-n").await.expect("known")["online"], false);
}

/// `device-agent doctor` as a technician runs it: every check passes against a live server;
/// a server that is not there, or one that refuses this cabinet's (revoked) certificate, is a
/// FAIL that says so, and the exit code says it too.
#[tokio::test]
async fn the_doctor_passes_a_sound_cabinet_and_names_what_is_wrong() {
    let world = World::new(&["cab-q"]);
    let server = world.server();
    let doctor = |port: u16| {
        let out = std::process::Command::new(bin("device-agent"))
            .args(["--id", "cab-q", "--server", &format!("localhost:{port}")])
            .args(["--certs", &world.certs().display().to_string()])
            .args([
                "--data-dir",
                &world.path("agent-cab-q").display().to_string(),
            ])
            .args(["--boxes", "8", "--hardware", "fake", "doctor"])
            .output()
            .expect("run the doctor");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = doctor(server.mqtt.port());
    assert_eq!(code, Some(0), "{out}{err}");
    for check in crate::harness::DOCTOR_CHECKS {
        assert!(out.contains(&format!("PASS  {check}")), "{check}: {out}");
    }
    assert!(out.contains("accepted this cabinet's certificate"), "{out}");

    let closed = reserved_port().expect("free port");
    let (code, out, err) = doctor(closed);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("FAIL  server"), "{out}");
    assert!(err.contains("1 of 6 checks failed"), "{err}");

    fleet_certs(&world, &["revoke"], "cab-q");
    // The server reloads the list within 2 s.
    let (code, out) = eventually(
        Duration::from_secs(10),
        "the doctor sees the refusal",
        || async {
            let (code, out, _) = doctor(server.mqtt.port());
            (code == Some(1)).then_some((code, out))
        },
    )
    .await;
    assert_eq!(code, Some(1));
    assert!(
        out.contains("FAIL  server") && out.contains("certificate"),
        "{out}"
    );
}

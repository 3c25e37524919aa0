//! The locker service flows end to end: the service platform reserves through the API, codes
//! arrive at a test SMS gateway, people type them at the cabinet's keypad (the agent's fake
//! control socket), staff open boxes with their credentials, and the platform receives signed
//! webhooks. Offline verification, lockout and the API's error paths too.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{AgentCtl, Api, Receiver, Server, World, eventually, now_ms, wait_online};

pub(crate) const CAB: &str = "hall-cab-1";
pub(crate) const PHONE: &str = "13812345678";
pub(crate) const STAFF_CARD: &str = "card-0042";
const WEBHOOK_SECRET: &str = "platform-shared-secret-0123";

/// A service hall with one 8-box cabinet (S S S M M M L L), one helper, a platform token.
pub(crate) async fn setup(api: &Api) -> Api {
    let (s, body) = api
        .post(
            "/api/v1/sites",
            json!({"id": "hall", "kind": "service_hall", "name": "City service hall",
                   "address": "1 Civic Square", "lat": 23.1291, "lon": 113.2644}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let boxes: Vec<Value> = ["S", "S", "S", "M", "M", "M", "L", "L"]
        .iter()
        .enumerate()
        .map(|(i, size)| json!({"box": i + 1, "size": size, "accessible": i == 0}))
        .collect();
    let (s, body) = api
        .put(
            &format!("/api/v1/cabinets/{CAB}"),
            json!({"site_id": "hall", "name": "Hall entrance", "boxes": boxes}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = api
        .post(
            "/api/v1/staff",
            json!({"id": "helper-1", "name": "Li Wei", "site_id": "hall", "credential": STAFF_CARD}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert!(
        body.get("credential").is_none(),
        "credential echoed: {body}"
    );
    let (s, body) = api
        .post(
            "/api/v1/tokens",
            json!({"name": "service-platform", "role": "platform"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    api.with_token(body["token"].as_str().expect("token"))
}

/// A drop-off reservation at site "hall" for `case`, which must be accepted (201).
pub(crate) async fn dropoff_at_hall(platform: &Api, case: &str) -> Value {
    let (s, r) = platform
        .post(
            "/api/v1/reservations",
            json!({"flow": "dropoff", "case_number": case, "phone": PHONE, "site_id": "hall"}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    r
}

/// Waits until the cabinet confirmed the server's current code version.
pub(crate) async fn wait_codes_synced(api: &Api) {
    eventually(
        Duration::from_secs(20),
        "cabinet code grants in sync",
        || async {
            let (_, c) = api.get(&format!("/api/v1/cabinets/{CAB}")).await;
            let cab = &c["cabinet"];
            (cab["codes_applied"].as_i64().is_some()
                && cab["codes_applied"] == cab["codes_version"]
                && cab["codes_version"].as_i64() > Some(0))
            .then_some(())
        },
    )
    .await;
}

pub(crate) async fn wait_state(api: &Api, item: &str, state: &str) -> Value {
    eventually(
        Duration::from_secs(20),
        &format!("item {item} {state}"),
        || async {
            let (_, v) = api.get(&format!("/api/v1/items/{item}")).await;
            (v["item"]["state"] == json!(state)).then_some(v)
        },
    )
    .await
}

fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 8)
        .unwrap_or_else(|| panic!("no 8-digit code in SMS {text:?}"))
        .to_owned()
}

/// Checks `X-LockerFleet-Signature` the way the platform would.
fn signature_ok(r: &crate::harness::Received) -> bool {
    let ts = &r.headers["x-lockerfleet-timestamp"];
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, WEBHOOK_SECRET.as_bytes());
    let expected = format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, format!("{ts}.{}", r.body).as_bytes()).as_ref())
    );
    r.headers.get("x-lockerfleet-signature") == Some(&expected)
}

fn start_server(world: &World, sms: &Receiver, hooks: &Receiver, extra: &[&str]) -> Server {
    let sms_url = sms.url("/sms");
    let hook_url = hooks.url("/webhook");
    let mut flags = vec![
        "--sms-gateway-url",
        &sms_url,
        "--webhook-url",
        &hook_url,
        "--webhook-secret",
        WEBHOOK_SECRET,
    ];
    flags.extend_from_slice(extra);
    world.server_with("127.0.0.1:0", "127.0.0.1:0", &flags)
}

#[tokio::test]
async fn drop_off_collection_deposit_and_pick_up_end_to_end() {
    let world = World::new(&[CAB]);
    // The gateway fails its first two requests: notifications retry with backoff.
    let sms = Receiver::start(2).await;
    let hooks = Receiver::start(0).await;
    let server = start_server(&world, &sms, &hooks, &[]);
    let admin = server.api();
    let platform = setup(&admin).await;
    let agent: AgentCtl = world.agent_ctl(CAB, server.mqtt, &["--fake-close-after-ms", "60000"]);
    wait_online(&admin, CAB).await;
    wait_codes_synced(&admin).await;

    // Night drop-off: the platform reserves an M box; the code comes once in the response.
    let (s, r) = platform
        .post(
            "/api/v1/reservations",
            json!({"flow": "dropoff", "case_number": "GZ-2026-0001", "phone": PHONE,
                   "site_id": "hall", "size": "M", "idempotency_key": "case-0001-dropoff"}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let drop_id = r["reservation_id"].as_str().expect("id").to_owned();
    assert_eq!(r["box"], json!(4), "smallest free M box: {r}");
    assert_eq!(r["state"], json!("reserved"));
    assert_eq!(
        r["phone"],
        json!("138****5678"),
        "phone masked in API output"
    );
    let api_code = r["code"].as_str().expect("code").to_owned();
    // A retry with the same key gets the same reservation and never the code again.
    let (s, again) = platform
        .post(
            "/api/v1/reservations",
            json!({"flow": "dropoff", "case_number": "GZ-2026-0001", "phone": PHONE,
                   "site_id": "hall", "size": "M", "idempotency_key": "case-0001-dropoff"}),
        )
        .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["reservation_id"], json!(drop_id));
    assert!(again.get("code").is_none(), "code returned twice: {again}");

    // The applicant's SMS carries the same code (after the gateway's two failures).
    let text = sms
        .wait("/sms", "drop-off SMS", |v| v["to"] == json!(PHONE))
        .await;
    let sms_body: Value = serde_json::from_str(&text.body).expect("json");
    let code = code_in(sms_body["text"].as_str().expect("text"));
    assert_eq!(code, api_code);
    // Gateways that send templates get the kind and values too.
    assert_eq!(sms_body["message"], json!("dropoff"), "{sms_body}");
    assert_eq!(sms_body["params"]["code"], json!(api_code));
    assert_eq!(sms_body["params"]["box"], json!("4"));
    wait_codes_synced(&admin).await;

    // At the cabinet: the code opens box 4, once.
    let out = agent.send(&format!("code {code}")).await;
    assert_eq!(
        out,
        json!({"outcome": "opened", "box": 4, "status": "opened"})
    );
    agent.send("close 4").await;
    let out = agent.send(&format!("code {code}")).await;
    assert_eq!(out, json!({"outcome": "rejected", "reason": "used"}));
    wait_state(&platform, &drop_id, "in_box").await;
    let hook = hooks
        .wait("/webhook", "dropped_off webhook", |v| {
            v["event"] == json!("dropped_off")
        })
        .await;
    assert!(signature_ok(&hook), "bad webhook signature: {hook:?}");
    assert_eq!(hook.headers["x-lockerfleet-event"], "dropped_off");

    // Staff see it in their list, check it against the case number, and collect it with
    // their card from the box the case names.
    let (_, list) = admin.get("/api/v1/worklists/collect?site=hall").await;
    assert_eq!(list["count"], json!(1), "{list}");
    assert_eq!(list["items"][0]["case_number"], json!("GZ-2026-0001"));
    let (_, by_case) = admin.get("/api/v1/items?case_number=GZ-2026-0001").await;
    let found = &by_case["items"][0];
    assert_eq!(
        (found["state"].clone(), found["box"].clone()),
        (json!("in_box"), json!(4)),
        "{by_case}"
    );
    let out = agent.send(&format!("staff {STAFF_CARD} 4")).await;
    assert_eq!(out["outcome"], json!("opened"), "{out}");
    agent.send("close 4").await;
    let item = wait_state(&platform, &drop_id, "collected").await;
    assert_eq!(item["item"]["finished_by"], json!("staff:helper-1"));
    let states: Vec<&str> = item["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["state"].as_str())
        .collect();
    assert_eq!(states, ["reserved", "in_box", "collected"], "{item}");

    // The window finishes the case: a pick-up box is reserved for the licence.
    let (s, r) = platform
        .post(
            "/api/v1/reservations",
            json!({"flow": "pickup", "case_number": "GZ-2026-0001", "phone": PHONE, "site_id": "hall"}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let pick_id = r["reservation_id"].as_str().expect("id").to_owned();
    let pick_code = r["code"].as_str().expect("code").to_owned();
    let pick_box = r["box"].as_u64().expect("box");
    assert_eq!(r["state"], json!("awaiting_deposit"));
    assert!(
        r["due_by"].as_i64().is_some(),
        "same-day deposit deadline: {r}"
    );
    let (_, list) = admin.get("/api/v1/worklists/deposit").await;
    assert_eq!(list["items"][0]["id"], json!(pick_id), "{list}");
    wait_codes_synced(&admin).await;
    // Before staff load the box the code does not open it, and no SMS went out yet.
    let out = agent.send(&format!("code {pick_code}")).await;
    assert_eq!(out, json!({"outcome": "rejected", "reason": "not_ready"}));
    assert_eq!(
        sms.all("/sms").len(),
        1,
        "pick-up SMS sent before the deposit"
    );

    // Staff deposit the licence the same day.
    let out = agent.send(&format!("staff {STAFF_CARD} {pick_box}")).await;
    assert_eq!(out["outcome"], json!("opened"), "{out}");
    agent.send(&format!("close {pick_box}")).await;
    let item = wait_state(&platform, &pick_id, "in_box").await;
    assert_eq!(item["item"]["deposited_by"], json!("staff:helper-1"));
    let text = sms
        .wait("/sms", "pick-up SMS", |v| {
            v["text"]
                .as_str()
                .is_some_and(|t| t.contains("Pick-up code"))
        })
        .await;
    let sms_body: Value = serde_json::from_str(&text.body).expect("json");
    assert_eq!(code_in(sms_body["text"].as_str().expect("text")), pick_code);

    // The applicant picks it up.
    let out = agent.send(&format!("code {pick_code}")).await;
    assert_eq!(out["outcome"], json!("opened"), "{out}");
    agent.send(&format!("close {pick_box}")).await;
    wait_state(&platform, &pick_id, "picked_up").await;
    for event in ["deposited", "picked_up", "collected"] {
        let hook = hooks
            .wait("/webhook", event, |v| v["event"] == json!(event))
            .await;
        assert!(signature_ok(&hook), "bad signature on {event}");
    }

    // Accept-with-deficiencies: the supplementary material, dropped before its deadline.
    let now = now_ms();
    let (s, r) = platform
        .post(
            "/api/v1/reservations",
            json!({"flow": "supplement", "case_number": "GZ-2026-0001", "phone": PHONE,
                   "site_id": "hall", "deadline": now + 3_600_000}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["deadline"], json!(now + 3_600_000));
    let supp_id = r["reservation_id"].as_str().expect("id").to_owned();
    let supp_code = r["code"].as_str().expect("code").to_owned();
    let supp_box = r["box"].as_u64().expect("box");
    wait_codes_synced(&admin).await;
    let out = agent.send(&format!("code {supp_code}")).await;
    assert_eq!(out["outcome"], json!("opened"), "{out}");
    agent.send(&format!("close {supp_box}")).await;
    wait_state(&platform, &supp_id, "in_box").await;
    let (_, list) = admin.get("/api/v1/worklists/collect").await;
    assert_eq!(list["items"][0]["flow"], json!("supplement"), "{list}");

    // Audit: every code use and staff open, with outcome; no code digits anywhere.
    let (_, audit) = admin.get("/api/v1/audit?limit=100").await;
    let entries = audit["entries"].as_array().expect("entries");
    let count = |action: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == json!(action))
            .count()
    };
    assert_eq!(count("code_open"), 3, "{audit}");
    assert_eq!(count("staff_open"), 2, "{audit}");
    assert!(count("code_rejected") >= 2, "{audit}");
    let audit_text = audit.to_string();
    for c in [&code, &pick_code, &supp_code] {
        assert!(!audit_text.contains(c.as_str()), "a code in the audit log");
    }

    // Each SMS delivered once: the gateway never saw an id twice.
    sms.wait("/sms", "supplement SMS", |v| {
        v["text"]
            .as_str()
            .is_some_and(|t| t.contains("supplementary"))
    })
    .await;
    let ids: Vec<String> = sms
        .all("/sms")
        .iter()
        .map(|r| r.headers["idempotency-key"].clone())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "an SMS was sent twice: {ids:?}");
    assert_eq!(ids.len(), 3, "drop-off, pick-up and supplement SMS");
    // The server log never holds a code or the full phone number.
    let log = std::fs::read_to_string(world.path("server.log")).expect("log");
    assert!(
        !log.contains(&code) && !log.contains(&pick_code),
        "code in the server log"
    );
    assert!(!log.contains(PHONE), "phone number in the server log");
}

#[tokio::test]
async fn an_offline_cabinet_verifies_codes_and_reconciles_when_back() {
    let world = World::new(&[CAB]);
    let sms = Receiver::start(0).await;
    let hooks = Receiver::start(0).await;
    let mut server = start_server(&world, &sms, &hooks, &["--timeup-grace-secs", "1"]);
    let admin = server.api();
    let platform = setup(&admin).await;
    let fast = ["--fake-close-after-ms", "200", "--max-backoff-ms", "500"];
    let mut agent = world.agent_ctl(CAB, server.mqtt, &fast);
    wait_online(&admin, CAB).await;

    let reserve = |until: Option<i64>| {
        let platform = platform.clone();
        async move {
            let mut body = json!({"flow": "dropoff", "case_number": "GZ-2026-0100",
                                  "phone": PHONE, "device_id": CAB});
            if let Some(u) = until {
                body["valid_until"] = json!(u);
            }
            let (s, r) = platform.post("/api/v1/reservations", body).await;
            assert_eq!(s, 201, "{r}");
            (
                r["reservation_id"].as_str().expect("id").to_owned(),
                r["code"].as_str().expect("code").to_owned(),
            )
        }
    };
    let (long_id, long_code) = reserve(None).await;
    let now = now_ms();
    let (short_id, short_code) = reserve(Some(now + 3_000)).await;
    wait_codes_synced(&admin).await;
    let (mqtt, http) = (server.mqtt.to_string(), server.http.to_string());

    // The network goes (here: the whole server), and the cabinet carries on alone.
    server.kill9();
    let out = agent.send(&format!("code {long_code}")).await;
    assert_eq!(out["outcome"], json!("opened"), "offline: {out}");
    // An agent restart while offline does not make the code usable again.
    agent.proc.kill9();
    let agent = world.agent_ctl(CAB, server.mqtt, &fast);
    let out = agent.send(&format!("code {long_code}")).await;
    assert_eq!(out, json!({"outcome": "rejected", "reason": "used"}));
    // The short window passes while offline: its code is refused as expired.
    let wait = Instant::now() + Duration::from_millis(3_500);
    tokio::time::sleep_until(wait.into()).await;
    let out = agent.send(&format!("code {short_code}")).await;
    assert_eq!(out, json!({"outcome": "rejected", "reason": "expired"}));

    // Back online: the use offline reaches the server, the unused reservation expires.
    let server = world.server_with(
        &mqtt,
        &http,
        &[
            "--sms-gateway-url",
            &sms.url("/sms"),
            "--webhook-url",
            &hooks.url("/webhook"),
            "--webhook-secret",
            WEBHOOK_SECRET,
            "--timeup-grace-secs",
            "1",
        ],
    );
    let admin = server.api();
    let item = wait_state(&admin, &long_id, "in_box").await;
    assert_eq!(item["history"][1]["actor"], json!("citizen"), "{item}");
    wait_state(&admin, &short_id, "expired").await;
    let (_, audit) = admin
        .get(&format!("/api/v1/audit?device={CAB}&limit=100"))
        .await;
    let rejected: Vec<&Value> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == json!("code_rejected"))
        .collect();
    let outcomes: Vec<&str> = rejected
        .iter()
        .filter_map(|e| e["result"].as_str())
        .collect();
    assert!(
        outcomes.contains(&"used") && outcomes.contains(&"expired"),
        "{audit}"
    );
    // The box of the expired reservation is free again.
    let (_, cab) = admin.get(&format!("/api/v1/cabinets/{CAB}")).await;
    let held = cab["boxes"]
        .as_array()
        .expect("boxes")
        .iter()
        .filter(|b| b["state"] != json!("free"))
        .count();
    assert_eq!(held, 1, "{cab}");
    drop(agent);
}

#[tokio::test]
async fn five_wrong_codes_lock_the_keypad() {
    let world = World::new(&[CAB]);
    let sms = Receiver::start(0).await;
    let hooks = Receiver::start(0).await;
    let server = start_server(&world, &sms, &hooks, &[]);
    let admin = server.api();
    let platform = setup(&admin).await;
    let agent = world.agent_ctl(CAB, server.mqtt, &[]);
    wait_online(&admin, CAB).await;
    let r = dropoff_at_hall(&platform, "GZ-2026-0200").await;
    let code = r["code"].as_str().expect("code").to_owned();
    wait_codes_synced(&admin).await;
    let wrong = if code == "00000000" {
        "00000001"
    } else {
        "00000000"
    };
    for _ in 0..4 {
        let out = agent.send(&format!("code {wrong}")).await;
        assert_eq!(out, json!({"outcome": "rejected", "reason": "unknown"}));
    }
    let out = agent.send(&format!("code {wrong}")).await;
    assert_eq!(out["outcome"], json!("locked_out"), "{out}");
    let out = agent.send(&format!("code {code}")).await;
    assert_eq!(
        out["outcome"],
        json!("locked_out"),
        "the right code waits too: {out}"
    );
    assert_eq!(agent.send("pulses").await, json!({"pulses": 0}));
    // The lock is also an alarm while it lasts.
    eventually(Duration::from_secs(20), "keypad_locked alarm", || async {
        let (_, v) = admin.get("/api/v1/alarms?kind=keypad_locked").await;
        v["alarms"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["device_id"] == json!(CAB)).cloned())
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "keypad_locked in the audit",
        || async {
            let (_, audit) = admin.get("/api/v1/audit?limit=100").await;
            audit["entries"].as_array().and_then(|e| {
                e.iter()
                    .find(|e| e["action"] == json!("keypad_locked"))
                    .cloned()
            })
        },
    )
    .await;
}

#[tokio::test]
async fn api_errors_are_clear_and_unmet_demand_is_counted() {
    let world = World::new(&[CAB]);
    let sms = Receiver::start(0).await;
    let hooks = Receiver::start(0).await;
    let server = start_server(&world, &sms, &hooks, &["--timeup-grace-secs", "1"]);
    let admin = server.api();
    let platform = setup(&admin).await;
    let _agent = world.agent_ctl(CAB, server.mqtt, &[]);
    wait_online(&admin, CAB).await;
    let base = json!({"flow": "dropoff", "case_number": "GZ-1", "phone": PHONE, "site_id": "hall"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, status, needle) in [
        (with("flow", json!("teleport")), 400, "flow"),
        (with("phone", json!("call me")), 400, "phone"),
        (with("size", json!("XL")), 400, "size"),
        (with("site_id", json!("nowhere")), 404, "nowhere"),
        (with("flow", json!("supplement")), 400, "deadline"),
        (with("case_number", json!("")), 400, "case_number"),
        (with("colour", json!("red")), 422, "colour"),
    ] {
        let (s, r) = platform.post("/api/v1/reservations", body).await;
        assert_eq!(s, status, "{r}");
        let msg = r["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {r}"));
        assert!(msg.contains(needle), "{msg:?} does not mention {needle}");
    }
    // The nearest site with a free box, from the applicant's location; and exactly one place.
    let mut near = base.clone();
    near.as_object_mut().expect("object").remove("site_id");
    near["near"] = json!({"lat": 23.13, "lon": 113.27});
    let (s, r) = platform.post("/api/v1/reservations", near.clone()).await;
    assert_eq!((s, r["site_id"].clone()), (201, json!("hall")), "{r}");
    let near_id = r["reservation_id"].as_str().expect("id").to_owned();
    let (s, r) = platform
        .delete(&format!("/api/v1/reservations/{near_id}"))
        .await;
    assert_eq!(s, 200, "{r}");
    near["site_id"] = json!("hall");
    let (s, r) = platform.post("/api/v1/reservations", near).await;
    assert_eq!(s, 400, "{r}");
    assert!(
        r["error"].as_str().expect("error").contains("exactly one"),
        "{r}"
    );
    // A viewer may read but not reserve.
    let (_, v) = admin
        .post("/api/v1/tokens", json!({"name": "wall", "role": "viewer"}))
        .await;
    let viewer = admin.with_token(v["token"].as_str().expect("token"));
    let (s, r) = viewer.post("/api/v1/reservations", base.clone()).await;
    assert_eq!(s, 403, "{r}");
    assert_eq!(r["code"], "forbidden", "{r}");
    // The two L boxes, then a third L: refused, and counted for planners.
    for _ in 0..2 {
        let (s, r) = platform
            .post("/api/v1/reservations", with("size", json!("L")))
            .await;
        assert_eq!(s, 201, "{r}");
    }
    let (s, r) = platform
        .post("/api/v1/reservations", with("size", json!("L")))
        .await;
    assert_eq!(s, 409, "{r}");
    assert_eq!(
        r["code"], "no_free_box",
        "the platform branches on the code: {r}"
    );
    assert!(
        r["error"].as_str().expect("error").contains("unmet demand"),
        "{r}"
    );
    let (_, demand) = admin.get("/api/v1/unmet-demand").await;
    assert_eq!(
        demand["sites"][0],
        json!({"site_id": "hall", "refused": 1}),
        "{demand}"
    );
    // A box out of service is not allocated; taking it out needs a reason.
    let (s, r) = admin
        .put(
            &format!("/api/v1/cabinets/{CAB}/boxes/1/service"),
            json!({"in_service": false}),
        )
        .await;
    assert_eq!(s, 400, "{r}");
    let (s, r) = admin
        .put(
            &format!("/api/v1/cabinets/{CAB}/boxes/1/service"),
            json!({"in_service": false, "note": "hinge broken"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = platform.post("/api/v1/reservations", base.clone()).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["box"], json!(2), "box 1 is out of service: {r}");
    // Cancel frees the box; a second cancel is a conflict.
    let id = r["reservation_id"].as_str().expect("id").to_owned();
    let (s, r) = platform.delete(&format!("/api/v1/reservations/{id}")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["state"], json!("cancelled"));
    let (s, r) = platform.delete(&format!("/api/v1/reservations/{id}")).await;
    assert_eq!(s, 409, "{r}");
    assert_eq!(r["code"], "conflict", "{r}");
    // A supplement not dropped by its deadline goes overdue and onto the overdue list.
    let now = now_ms();
    let (s, r) = platform
        .post(
            "/api/v1/reservations",
            json!({"flow": "supplement", "case_number": "GZ-2026-0300", "phone": PHONE,
                   "site_id": "hall", "deadline": now + 1_500}),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    let supp = r["reservation_id"].as_str().expect("id").to_owned();
    wait_state(&platform, &supp, "overdue").await;
    let (_, list) = admin.get("/api/v1/worklists/overdue").await;
    assert!(
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["id"] == json!(supp)),
        "{list}"
    );
    let hook = hooks
        .wait("/webhook", "overdue webhook", |v| {
            v["event"] == json!("overdue")
        })
        .await;
    assert!(signature_ok(&hook));
}

#[tokio::test]
async fn notifications_survive_a_server_crash_and_are_sent_once() {
    use std::sync::atomic::Ordering;
    let world = World::new(&[CAB]);
    // The gateway is down when the reservation is made.
    let sms = Receiver::start(usize::MAX).await;
    let hooks = Receiver::start(0).await;
    let mut server = start_server(&world, &sms, &hooks, &[]);
    let platform = setup(&server.api()).await;
    let r = dropoff_at_hall(&platform, "GZ-2026-0400").await;
    let code = r["code"].as_str().expect("code").to_owned();
    eventually(Duration::from_secs(20), "a failed SMS attempt", || async {
        (sms.failed.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    // kill -9 with the SMS unsent; the gateway recovers while the server is down.
    server.kill9();
    sms.fail.store(0, Ordering::SeqCst);
    let _server = start_server(&world, &sms, &hooks, &[]);
    let got = sms
        .wait("/sms", "the SMS after the restart", |v| {
            v["to"] == json!(PHONE)
        })
        .await;
    let body: Value = serde_json::from_str(&got.body).expect("json");
    assert_eq!(code_in(body["text"].as_str().expect("text")), code);
    // Give a duplicate the time to show up, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sms.all("/sms").len(), 1, "sent twice");
}

/// A master secret file gone missing beside issued codes (a lost backup, a wrong path) must
/// stop the server with what to do, not be replaced: a new secret would silently break every
/// outstanding code.
#[tokio::test]
async fn a_lost_master_secret_is_refused_not_replaced() {
    let world = World::new(&[CAB]);
    let sms = Receiver::start(0).await;
    let hooks = Receiver::start(0).await;
    let mut server = start_server(&world, &sms, &hooks, &[]);
    let platform = setup(&server.api()).await;
    dropoff_at_hall(&platform, "GZ-2026-0500").await;
    server.kill9();
    let secret = world.path("server/secrets/master.key");
    std::fs::remove_file(&secret).expect("the master secret was where documented");
    let mut child = std::process::Command::new(crate::harness::bin("fleet-server"))
        .args(["--data-dir", &world.path("server").display().to_string()])
        .args(["--certs", &world.certs().display().to_string()])
        .args([
            "--mqtt-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn fleet-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fleet-server started without its master secret");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("master.key") && err.contains("restore the file from backup"),
        "{err}"
    );
    assert!(!secret.exists(), "a new secret was written over the loss");
}

#[tokio::test]
async fn openapi_documents_routes_the_server_serves() {
    let world = World::new(&[CAB]);
    let server = world.server();
    let api = server.api();
    let (s, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(s, 200, "{doc}");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 25, "{} paths", paths.len());
    // The device protocol's contract is served beside it, without a token, as generated.
    let res = reqwest::get(format!("http://{}/api/v1/asyncapi.json", server.http))
        .await
        .expect("asyncapi.json");
    assert_eq!(res.status().as_u16(), 200);
    let served: serde_json::Value = res.json().await.expect("json");
    assert_eq!(served["asyncapi"], "3.0.0");
    assert_eq!(served, protocol::contract::asyncapi());
    let http = reqwest::Client::new();
    for (path, ops) in paths {
        for method in ops.as_object().expect("operations").keys() {
            let url = format!(
                "http://{}{}",
                server.http,
                path.replace("{id}", "no-such-id").replace("{box}", "1")
            );
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let res = http
                .request(m, &url)
                .bearer_auth(crate::harness::ADMIN_TOKEN)
                .json(&json!({}))
                .send()
                .await
                .expect("request");
            let status = res.status().as_u16();
            // The change stream never ends: its headers are the check.
            let streaming = res
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if streaming {
                assert_eq!(status, 200, "{method} {path}");
                continue;
            }
            let body = res.text().await.unwrap_or_default();
            assert_ne!(
                status, 405,
                "{method} {path}: documented, but the router has no such method"
            );
            assert!(
                !body.contains("no such endpoint"),
                "{method} {path}: documented, but the router does not serve it"
            );
            if status >= 400 {
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                assert!(
                    v["error"].is_string(),
                    "{method} {path}: error without the documented shape: {body}"
                );
            }
        }
    }
}

/// A cabinet whose clock runs two hours behind (a fresh code would look not yet valid) or
/// two hours ahead (a 30 s remote open would look long expired) judges both by the server's
/// clock, learned from its receipts, and stamps its events with it.
#[tokio::test]
async fn a_cabinet_clock_hours_off_still_judges_codes_and_commands_right() {
    for skew in ["-7200000", "7200000"] {
        let world = World::new(&[CAB]);
        let sms = Receiver::start(0).await;
        let hooks = Receiver::start(0).await;
        let server = start_server(&world, &sms, &hooks, &[]);
        let admin = server.api();
        let platform = setup(&admin).await;
        let agent = world.agent_ctl(
            CAB,
            server.mqtt,
            &[
                "--fake-clock-skew-ms",
                skew,
                "--fake-close-after-ms",
                "60000",
            ],
        );
        wait_online(&admin, CAB).await;
        wait_codes_synced(&admin).await;
        let r = dropoff_at_hall(&platform, &format!("GZ-SKEW{skew}")).await;
        let code = r["code"].as_str().expect("code").to_owned();
        wait_codes_synced(&admin).await;
        let out = agent.send(&format!("code {code}")).await;
        assert_eq!(out["outcome"], "opened", "clock {skew} ms off: {out}");

        let (s, opened) = admin
            .open(CAB, 8, json!({"reason": "clock test", "ttl_secs": 30}))
            .await;
        assert_eq!(s, 202, "{opened}");
        let id = opened["command_id"].as_str().expect("id");
        let cmd = admin.wait_command(id, Duration::from_secs(20)).await;
        assert_eq!(cmd["status"], "opened", "clock {skew} ms off: {cmd}");

        let used = eventually(Duration::from_secs(10), "code_used stored", || async {
            admin
                .events(CAB)
                .await
                .into_iter()
                .find(|e| e["kind"] == "code_used")
        })
        .await;
        let off = (used["ts"].as_i64().unwrap_or_default() - now_ms()).abs();
        assert!(
            off < 60_000,
            "event stamped {off} ms from the server's clock: {used}"
        );

        // The server shows how far off the cabinet's clock is, and asks for a fix.
        let expected = -skew.parse::<i64>().expect("skew");
        eventually(Duration::from_secs(10), "the offset shown", || async {
            let reported = admin.device(CAB).await?["clock_offset_ms"].as_i64()?;
            ((reported - expected).abs() < 5_000).then_some(())
        })
        .await;
        let alarms = eventually(Duration::from_secs(10), "a clock_skew alarm", || async {
            let (_, alarms) = admin.get("/api/v1/alarms?kind=clock_skew").await;
            (alarms["count"] == 1).then_some(alarms)
        })
        .await;
        let alarm = &alarms["alarms"][0];
        assert_eq!(alarm["device_id"], CAB, "{alarms}");
        assert_eq!(alarm["severity"], "minor", "{alarms}");
        let evidence = alarm["evidence"].as_str().unwrap_or_default();
        let side = if expected > 0 { "behind" } else { "ahead of" };
        assert!(
            evidence.contains(&format!("2 h 0 min {side}")),
            "{evidence}"
        );
    }
}

/// SMS per site and language: a Chinese hall's citizens read Chinese with Beijing time,
/// an applicant who asked for English reads English; an administrator's template is checked
/// when saved (an unknown placeholder or a missing code is refused, saying what to write) and
/// used for the next code; the code reaches the SMS and never the log or the audit.
#[tokio::test]
async fn sms_speak_the_sites_language_and_follow_the_administrators_template() {
    let world = World::new(&[CAB]);
    let sms = Receiver::start(0).await;
    let hooks = Receiver::start(0).await;
    let server = start_server(&world, &sms, &hooks, &[]);
    let admin = server.api();
    let platform = setup(&admin).await;
    let (s, r) = admin
        .put(
            "/api/v1/sites/hall",
            json!({"kind": "service_hall", "name": "市民中心政务服务大厅", "lat": 23.1291,
                   "lon": 113.2644, "lang": "zh-CN"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (&r["lang"], &r["time_zone"]),
        (&json!("zh-CN"), &Value::Null),
        "{r}"
    );
    let (s, r) = admin
        .put(
            "/api/v1/sites/hall",
            json!({"kind": "service_hall", "name": "x", "lat": 23.1, "lon": 113.2,
                   "time_zone": "Mars/Olympus"}),
        )
        .await;
    assert_eq!((s, &r["code"]), (400, &json!("invalid_field")), "{r}");
    assert!(
        r["error"]
            .as_str()
            .is_some_and(|e| e.contains("Asia/Shanghai")),
        "{r}"
    );

    // The built-in Chinese text, with the validity in Beijing time, 24-hour.
    let until = now_ms() + 6 * 3_600_000;
    let reserve = |case: &'static str, lang: Option<&'static str>| {
        let mut body = json!({"flow": "dropoff", "case_number": case, "phone": PHONE,
                              "site_id": "hall", "valid_until": until});
        if let Some(l) = lang {
            body["lang"] = json!(l);
        }
        let platform = platform.clone();
        async move {
            let (s, r) = platform.post("/api/v1/reservations", body).await;
            assert_eq!(s, 201, "{r}");
            r["code"].as_str().expect("code").to_owned()
        }
    };
    let text_for = |case: &'static str| {
        let sms = &sms;
        async move {
            let got = sms
                .wait("/sms", case, |v| {
                    v["text"].as_str().is_some_and(|t| t.contains(case))
                })
                .await;
            let v: Value = serde_json::from_str(&got.body).expect("json");
            v["text"].as_str().expect("text").to_owned()
        }
    };
    let code = reserve("GZ-ZH-1", None).await;
    let text = text_for("GZ-ZH-1").await;
    let beijing = jiff::Timestamp::from_millisecond(until)
        .expect("time")
        .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").expect("zone"))
        .strftime("%Y年%m月%d日 %H:%M")
        .to_string();
    assert!(text.contains(&code), "{text}");
    assert!(
        text.contains("开箱码") && text.contains("市民中心政务服务大厅"),
        "{text}"
    );
    assert!(text.contains(&beijing), "{beijing} in {text}");
    let code = reserve("GZ-EN-1", Some("en")).await;
    let text = text_for("GZ-EN-1").await;
    assert!(
        text.contains(&code) && text.contains("drop-off code"),
        "{text}"
    );

    // An administrator's template: checked, then used.
    for (bad, says) in [
        ("开箱码 {cod}", "unknown placeholder {cod}"),
        ("请到 {site} 取件", "no {code}"),
        ("开箱码 {code", "unclosed {"),
    ] {
        let (s, r) = admin
            .put(
                "/api/v1/sms-templates",
                json!({"site_id": "hall", "lang": "zh-CN", "flow": "dropoff", "text": bad}),
            )
            .await;
        assert_eq!(
            (s, &r["code"]),
            (400, &json!("invalid_field")),
            "{bad}: {r}"
        );
        assert!(
            r["error"].as_str().is_some_and(|e| e.contains(says)),
            "{bad}: {r}"
        );
    }
    let mine = "【市政务服务中心】办件{case}请于{until}前凭开箱码{code}到{site}{box}号箱格交件，勿告知他人。";
    let (s, r) = admin
        .put(
            "/api/v1/sms-templates",
            json!({"site_id": "hall", "lang": "zh-CN", "flow": "dropoff", "text": mine}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (&r["source"], &r["text"]),
        (&json!("site"), &json!(mine)),
        "{r}"
    );
    assert!(
        r["example"]
            .as_str()
            .is_some_and(|e| e.contains("12345678")),
        "{r}"
    );
    let (s, _) = platform
        .put(
            "/api/v1/sms-templates",
            json!({"lang": "zh-CN", "flow": "dropoff", "text": "{code}"}),
        )
        .await;
    assert_eq!(s, 403, "only an administrator writes templates");
    let code = reserve("GZ-ZH-2", None).await;
    let text = text_for("GZ-ZH-2").await;
    assert!(
        text.starts_with("【市政务服务中心】办件GZ-ZH-2请于"),
        "{text}"
    );
    assert!(
        text.contains(&format!("开箱码{code}到市民中心政务服务大厅")),
        "{text}"
    );
    let (_, list) = admin
        .get("/api/v1/sms-templates?site_id=hall&lang=zh-CN")
        .await;
    let sources: Vec<_> = list["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .map(|t| (t["flow"].clone(), t["source"].clone()))
        .collect();
    assert_eq!(
        sources,
        [
            (json!("dropoff"), json!("site")),
            (json!("supplement"), json!("builtin")),
            (json!("pickup"), json!("builtin"))
        ],
        "{list}"
    );
    // Back to the built-in text.
    let (s, _) = admin
        .delete("/api/v1/sms-templates?site_id=hall&lang=zh-CN&flow=dropoff")
        .await;
    assert_eq!(s, 204);
    let code = reserve("GZ-ZH-3", None).await;
    let text = text_for("GZ-ZH-3").await;
    assert!(
        text.starts_with("【政务服务】") && text.contains(&code),
        "{text}"
    );

    // Audited; and no code in the log or the audit.
    let (_, audit) = admin.get("/api/v1/audit?limit=200").await;
    let actions = audit.to_string();
    assert!(actions.contains("sms_template_set") && actions.contains("sms_template_reset"));
    let log = std::fs::read_to_string(world.path("server.log")).expect("log");
    assert!(
        !log.contains(&code) && !actions.contains(&code),
        "a code leaked"
    );
}

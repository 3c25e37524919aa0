//! Central configuration through real processes: a site-level change reaches every cabinet
//! of the site and is reported applied within seconds, an offline cabinet converges when it
//! is back, a setting that needs a restart is taken by a clean restart under the supervisor,
//! and bad values are refused by name before anything is sent.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Api, World, eventually, wait_online};

async fn config_of(api: &Api, device: &str) -> Value {
    let (s, c) = api.get(&format!("/api/v1/devices/{device}/config")).await;
    assert_eq!(s, 200, "{c}");
    c
}

/// Waits until `device` runs the desired set; its view then.
async fn converged(api: &Api, device: &str) -> Value {
    eventually(
        Duration::from_secs(30),
        &format!("{device} reports the desired configuration applied"),
        || async {
            let c = config_of(api, device).await;
            (c["drift"] == json!(false) && c["applied"]["state"] == "applied").then_some(c)
        },
    )
    .await
}

#[tokio::test]
async fn a_site_change_reaches_its_cabinets_offline_ones_converge_and_bad_values_are_refused() {
    let devices = ["cfg-a", "cfg-b", "cfg-c"];
    let world = World::new(&devices);
    let server = world.server_with("127.0.0.1:0", "127.0.0.1:0", &[]);
    let api = server.api();
    for (id, kind) in [("hall", "service_hall"), ("park", "enterprise_cluster")] {
        let (s, r) = api
            .post(
                "/api/v1/sites",
                json!({"id": id, "kind": kind, "name": id, "lat": 22.54, "lon": 114.05}),
            )
            .await;
        assert_eq!(s, 201, "{r}");
    }
    for (device, site) in [("cfg-a", "hall"), ("cfg-b", "hall"), ("cfg-c", "park")] {
        let (s, r) = api
            .put(
                &format!("/api/v1/cabinets/{device}"),
                json!({"site_id": site, "name": device,
                       "boxes": [{"box": 1, "size": "M"}, {"box": 2, "size": "M"}]}),
            )
            .await;
        assert_eq!(s, 200, "{r}");
    }
    let _a = world.agent("cfg-a", server.mqtt, &["--boxes", "2"]);
    let c = world.supervised("cfg-c", server.mqtt, &["--boxes", "2"], &[]);
    // cfg-b connected once and is offline when the site changes.
    let b = world.agent("cfg-b", server.mqtt, &["--boxes", "2"]);
    for d in devices {
        wait_online(&api, d).await;
    }
    drop(b);
    eventually(Duration::from_secs(20), "cfg-b offline", || async {
        api.device("cfg-b")
            .await
            .filter(|d| d["online"] == json!(false))
    })
    .await;

    // Refused with the field and why; nothing stored, nothing sent.
    for (path, body, status, why) in [
        (
            "/api/v1/config/site/hall",
            json!({"settings": {"door_open_alarm_secs": 1}}),
            422,
            "door_open_alarm_secs",
        ),
        (
            "/api/v1/config/site/hall",
            json!({"settings": {"door_alarm_secs": 60}}),
            422,
            "door_alarm_secs",
        ),
        (
            "/api/v1/config/site/nowhere",
            json!({"settings": {"heartbeat_secs": 30}}),
            404,
            "no site",
        ),
        (
            "/api/v1/config/label/Board",
            json!({"settings": {"heartbeat_secs": 30}}),
            422,
            "label",
        ),
    ] {
        let (s, r) = api.put(path, body).await;
        assert_eq!(s, status, "{path}: {r}");
        assert!(
            r["error"].as_str().is_some_and(|e| e.contains(why)),
            "{why}: {r}"
        );
    }
    let (_, overview) = api.get("/api/v1/config").await;
    assert_eq!(overview["layers"], json!([]), "{overview}");
    assert!(
        overview["fields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["name"] == "keypad_lockout_secs")),
        "{overview}"
    );

    // A fleet default and a site over it: the site wins where both say.
    let (s, r) = api
        .put(
            "/api/v1/config/fleet",
            json!({"settings": {"door_open_alarm_secs": 120, "keypad_max_failures": 5}}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = api
        .put(
            "/api/v1/config/site/hall",
            json!({"settings": {"door_open_alarm_secs": 300, "keypad_lockout_secs": 600}}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["revision"], 1, "{r}");
    let a = converged(&api, "cfg-a").await;
    assert_eq!(a["applied"]["settings"]["door_open_alarm_secs"], 300, "{a}");
    assert_eq!(a["applied"]["settings"]["keypad_max_failures"], 5, "{a}");
    assert_eq!(a["desired"]["sources"]["door_open_alarm_secs"], "site:hall");
    assert_eq!(a["desired"]["sources"]["keypad_max_failures"], "fleet");
    let c_view = converged(&api, "cfg-c").await;
    assert_eq!(
        c_view["applied"]["settings"]["door_open_alarm_secs"], 120,
        "the other site keeps the fleet's: {c_view}"
    );

    // The offline cabinet drifts until it is back, then converges.
    let b_view = config_of(&api, "cfg-b").await;
    assert_eq!(b_view["drift"], true, "{b_view}");
    let (_, drifting) = api.get("/api/v1/config/devices?drift=true").await;
    let ids: Vec<&str> = drifting["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["device_id"].as_str())
        .collect();
    assert_eq!(ids, ["cfg-b"], "{drifting}");
    let _b = world.agent("cfg-b", server.mqtt, &["--boxes", "2"]);
    let b_view = converged(&api, "cfg-b").await;
    assert_eq!(b_view["applied"]["settings"]["keypad_lockout_secs"], 600);

    // A heartbeat interval needs a restart: the supervised cabinet stores it, says it waits,
    // restarts when idle and then runs with it.
    let (s, r) = api
        .put(
            "/api/v1/config/device/cfg-c",
            json!({"settings": {"heartbeat_secs": 7}}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let c_view = converged(&api, "cfg-c").await;
    assert_eq!(
        c_view["applied"]["settings"]["heartbeat_secs"], 7,
        "{c_view}"
    );
    assert_eq!(c.starts(), 2, "one clean restart");
    eventually(
        Duration::from_secs(20),
        "the new heartbeat interval",
        || async {
            api.device("cfg-c")
                .await
                .filter(|d| d["heartbeat_secs"] == json!(7))
        },
    )
    .await;
    let actions = api.audit_actions(200).await;
    assert!(actions.iter().any(|x| x == "config_set"), "{actions:?}");
    assert!(
        actions.iter().any(|x| x == "config_waiting_restart"),
        "{actions:?}"
    );
    // Removing the device layer returns it to the site's and the fleet's.
    let (s, _) = api
        .put("/api/v1/config/device/cfg-c", json!({"settings": {}}))
        .await;
    assert_eq!(s, 204);
    let c_view = converged(&api, "cfg-c").await;
    assert!(
        c_view["applied"]["settings"]["heartbeat_secs"].is_null(),
        "{c_view}"
    );
    // The leader counts drift on each pass.
    eventually(Duration::from_secs(10), "no drift counted", || async {
        (api.metric("lockerfleet_config_drift").await == 0.0).then_some(())
    })
    .await;
}

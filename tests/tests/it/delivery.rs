//! Events travel from the agent's outbox to the database exactly once, also when the server
//! is away or killed mid-stream.

use std::time::Duration;

use serde_json::json;

use crate::harness::{World, assert_exactly_once_in_order, eventually, wait_online};

/// Waits until the server has receipted `n` events of `id` and returns them all.
pub(crate) async fn wait_receipted(
    api: &crate::harness::Api,
    id: &str,
    n: u64,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    eventually(
        timeout,
        &format!("{n} events of {id} receipted"),
        || async {
            api.device(id)
                .await
                .filter(|d| d["acked_seq"].as_u64() == Some(n))
        },
    )
    .await;
    api.events(id).await
}

#[tokio::test]
async fn events_land_exactly_once() {
    let w = World::new(&["cab-a"]);
    let server = w.server();
    let api = server.api();
    let _agent = w.agent(
        "cab-a",
        server.mqtt,
        &[
            "--fake-activity-per-sec",
            "400",
            "--fake-activity-limit",
            "600",
        ],
    );
    let events = wait_receipted(&api, "cab-a", 601, Duration::from_secs(60)).await;
    assert_exactly_once_in_order(&events, 601);
    assert_eq!(events[0]["kind"], "started");
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "occupancy").count(),
        600
    );
    assert_eq!(api.metric("lockerfleet_events_stored_total").await, 601.0);
}

#[tokio::test]
async fn server_away_for_a_while_agents_buffer_then_all_land_in_order() {
    let w = World::new(&["cab-b"]);
    let mut server = w.server();
    let (mqtt, http) = (server.mqtt.to_string(), server.http.to_string());
    let api = server.api();
    let _agent = w.agent(
        "cab-b",
        server.mqtt,
        &[
            "--fake-activity-per-sec",
            "150",
            "--fake-activity-limit",
            "500",
        ],
    );
    wait_online(&api, "cab-b").await;
    server.kill9();
    // The agent keeps recording into its outbox while nobody listens.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let server = w.server_on(&mqtt, &http);
    let api = server.api();
    let events = wait_receipted(&api, "cab-b", 501, Duration::from_secs(90)).await;
    assert_exactly_once_in_order(&events, 501);
    let presence = api.get("/api/v1/devices/cab-b/presence").await.1;
    assert!(
        presence["presence"]
            .as_array()
            .is_some_and(|p| p.iter().any(|e| e["online"] == json!(true))),
        "reconnect recorded: {presence}"
    );
}

#[tokio::test]
async fn server_killed_mid_stream_loses_nothing() {
    let w = World::new(&["cab-c"]);
    let mut server = w.server();
    let (mqtt, http) = (server.mqtt.to_string(), server.http.to_string());
    let _agent = w.agent(
        "cab-c",
        server.mqtt,
        &[
            "--fake-activity-per-sec",
            "1500",
            "--fake-activity-limit",
            "3000",
        ],
    );
    let api = server.api();
    // Kill it while events are flowing: some stored, some in flight, some receipted.
    eventually(Duration::from_secs(30), "first events stored", || async {
        api.device("cab-c")
            .await
            .filter(|d| d["acked_seq"].as_u64().unwrap_or(0) > 100)
    })
    .await;
    server.kill9();
    let server = w.server_on(&mqtt, &http);
    let api = server.api();
    let events = wait_receipted(&api, "cab-c", 3001, Duration::from_secs(120)).await;
    // Order of storage may interleave around the kill; exactly-once must hold.
    let mut seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    seqs.dedup();
    assert_eq!(seqs, (1..=3001).collect::<Vec<_>>());
}

//! External broker mode for real: mosquitto (apt) configured by `fleet-certs mosquitto`, two
//! `fleet-server` replicas on one PostgreSQL sharing the devices' traffic through shared
//! subscriptions, agents streaming, one replica SIGKILLed under load. Every event must be
//! stored exactly once, the survivor must carry on alone, and the broker must hold each device
//! to its own topics.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS};

use crate::faults::{assert_every_event_once, settled_marks, streaming_agents};
use crate::harness::{Mosquitto, PrivatePg, World, eventually, wait_online};

const AGENTS: usize = 6;
/// Occupancy changes per agent; with its `started` event, `PER_AGENT + 1` per device.
const PER_AGENT: u64 = 3_000;

/// Both replicas read the same master secret (codes derive from it) and the same database.
pub(crate) fn replica_config(world: &World) -> String {
    let path = world.path("replica.toml");
    let secret = world.path("shared-secrets/master.key");
    std::fs::write(
        &path,
        format!("master_secret_file = {:?}\n", secret.display().to_string()),
    )
    .expect("replica config");
    path.display().to_string()
}

#[tokio::test]
#[ignore = "needs mosquitto and PostgreSQL binaries: run .ci/run, or apt-get install mosquitto postgresql and pass --include-ignored"]
async fn two_replicas_on_mosquitto_share_the_fleet_and_a_killed_one_loses_nothing() {
    let ids: Vec<String> = (0..AGENTS).map(|i| format!("cab-x{i}")).collect();
    let mut all: Vec<&str> = ids.iter().map(String::as_str).collect();
    all.push("cab-spy");
    let world = World::new(&all);
    let pg = PrivatePg::start(&world.path("pg"));
    let broker = Mosquitto::start(&world);
    let (url, db, config) = (broker.url(), pg.url(), replica_config(&world));
    let flags = [
        "--external-broker",
        url.as_str(),
        "--database-url",
        db.as_str(),
        "--config",
        config.as_str(),
    ];
    // One after the other: the first creates the schema and the master secret.
    let mut a = world.ready_replica("replica-a", &flags).await;
    let b = world.ready_replica("replica-b", &flags).await;
    let (api_a, api_b) = (a.api(), b.api());

    // The first replica leads (sweeps, notifications); the second serves devices and the API.
    assert_eq!(api_a.metric("lockerfleet_leader").await, 1.0);
    assert_eq!(api_b.metric("lockerfleet_leader").await, 0.0);

    // A remote open through either replica reaches the cabinet via the broker.
    let _quiet = world.agent("cab-spy", broker.addr, &[]);
    wait_online(&api_a, "cab-spy").await;
    wait_online(&api_b, "cab-spy").await;
    // A console following replica A hears of what replica B does (PostgreSQL NOTIFY).
    let mut stream = reqwest::Client::new()
        .get(format!("http://{}/api/v1/stream", a.http))
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .expect("stream");
    let mut buf = String::new();
    crate::console::next_event(&mut stream, &mut buf, |e, _| e == "hello").await;
    let (status, body) = api_b
        .open(
            "cab-spy",
            2,
            serde_json::json!({"reason": "external broker"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["command_id"].as_str().expect("command id").to_owned();
    // Created on B as sent: only B knows that moment, so A hears it through B.
    crate::console::next_event(&mut stream, &mut buf, |e, v| {
        e == "command" && v["command_id"] == id.as_str() && v["status"] == "sent"
    })
    .await;
    drop(stream);
    let done = api_a.wait_command(&id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "opened", "{done}");

    // The broker's ACL: a device cannot publish into another device's topics.
    let (spy, mut el) = AsyncClient::new(
        world.device_options("cab-spy", "cab-spy-2", broker.addr),
        10,
    );
    tokio::spawn(async move {
        loop {
            if let Ok(Event::Incoming(Packet::Disconnect)) | Err(_) = el.poll().await {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let forged = r#"{"v":1,"base":1,"events":[{"seq":1,"ts":1,"type":"started","agent_version":"forged","boxes":8}]}"#;
    spy.publish("devices/cab-x0/events", QoS::AtLeastOnce, false, forged)
        .await
        .expect("queued");

    let mut agents = streaming_agents(&world, broker.addr, &ids[1..], 300, PER_AGENT);
    // One agent pipelines 8 batches (an older agent's way): its batches reach a replica
    // before their predecessors are stored by the other, so they wait parked or are refused
    // and resent — and still are stored exactly once.
    let pipelined = world.path("pipelined.toml");
    std::fs::write(&pipelined, "in_flight = 8\n").expect("agent config");
    let rate = 300.to_string();
    let limit = PER_AGENT.to_string();
    agents.push(world.agent(
        &ids[0],
        broker.addr,
        &[
            "--config",
            &pipelined.display().to_string(),
            "--fake-activity-per-sec",
            &rate,
            "--fake-activity-limit",
            &limit,
        ],
    ));
    let total = (PER_AGENT + 1) * AGENTS as u64;
    // Both replicas store a share before one dies.
    eventually(Duration::from_secs(60), "both replicas storing", || async {
        let (sa, sb) = (
            api_a.metric("lockerfleet_events_stored_total").await,
            api_b.metric("lockerfleet_events_stored_total").await,
        );
        (sa > 500.0 && sb > 500.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut before = Vec::new();
    for api in [&api_a, &api_b] {
        before.push((
            api.metric("lockerfleet_events_stored_total").await,
            api.metric("lockerfleet_events_past_gap_total").await,
        ));
    }
    a.kill9();
    let killed = std::time::Instant::now();
    eprintln!("replica A killed; (stored, refused past a gap) by A and B before: {before:?}");

    eventually(
        Duration::from_secs(20),
        "replica B takes the lead",
        || async { (api_b.metric("lockerfleet_leader").await == 1.0).then_some(()) },
    )
    .await;
    let marks = settled_marks(&api_b, &ids, PER_AGENT, Duration::from_secs(120)).await;
    let stored_by_b = api_b.metric("lockerfleet_events_stored_total").await;
    let parked = api_b.metric("lockerfleet_events_past_gap_total").await;
    eprintln!(
        "replica B stored {stored_by_b} events in all, {parked} refused past a gap, of at least {total}; settled {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    assert_every_event_once(&db, &marks, PER_AGENT, "two replicas, A killed").await;
    // The forged event never reached the database (cab-x0's seq 1 is its own `started`).
    let events = api_b.events("cab-x0").await;
    assert_ne!(
        events[0]["body"]["agent_version"], "forged",
        "{:?}",
        events[0]
    );
    for id in &ids {
        wait_online(&api_b, id).await;
    }
    drop(agents);
    // The survivor hears the broker publish each agent's will.
    eventually(
        Duration::from_secs(30),
        "agents offline via their wills",
        || async {
            let mut offline = 0;
            for id in &ids {
                if api_b.device(id).await.is_some_and(|d| d["online"] == false) {
                    offline += 1;
                }
            }
            (offline == ids.len()).then_some(())
        },
    )
    .await;
    drop(spy);
}

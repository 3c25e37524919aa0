//! The broker front as devices meet it: identity from the certificate, topic rules, slow
//! connections, malformed payloads.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::json;

use crate::harness::{World, eventually};

/// Polls until CONNACK (Ok) or a connection error (Err).
pub(crate) async fn connack(el: &mut rumqttc::EventLoop) -> Result<(), String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), el.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("no answer within 10 s".into()),
        }
    }
}

/// Polls until the broker closes the connection; returns how long that took.
pub(crate) async fn closed(el: &mut rumqttc::EventLoop) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(10), el.poll()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return true,
            Err(_) => return false,
        }
    }
    false
}

fn batch(seq: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({"v": 1, "base": 1, "events": [
        {"seq": seq, "ts": 1, "type": "door", "box": 1, "open": true}
    ]}))
    .expect("json")
}

#[tokio::test]
async fn a_device_cannot_speak_for_another() {
    let w = World::new(&["cab-a", "cab-b"]);
    let server = w.server();
    let api = server.api();

    // Client id differing from the certificate: refused at CONNECT.
    let (_c, mut el) = AsyncClient::new(w.device_options("cab-a", "cab-b", server.mqtt), 10);
    assert!(
        connack(&mut el).await.is_err(),
        "client id cab-b with cab-a's certificate was accepted"
    );

    // Publishing under another device's topic: disconnected, nothing stored.
    let (client, mut el) = AsyncClient::new(w.device_options("cab-a", "cab-a", server.mqtt), 10);
    connack(&mut el).await.expect("cab-a connects as itself");
    client
        .publish("devices/cab-b/events", QoS::AtLeastOnce, false, batch(1))
        .await
        .expect("queued");
    assert!(
        closed(&mut el).await,
        "publishing as cab-b did not disconnect cab-a"
    );

    // Subscribing to another device's commands: disconnected too.
    let (client, mut el) = AsyncClient::new(w.device_options("cab-a", "cab-a", server.mqtt), 10);
    connack(&mut el).await.expect("reconnect");
    client
        .subscribe("devices/cab-b/commands", QoS::AtLeastOnce)
        .await
        .expect("queued");
    assert!(
        closed(&mut el).await,
        "subscribing to cab-b's commands did not disconnect cab-a"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        api.device("cab-b").await.is_none(),
        "cab-b must not exist: nothing stored for it"
    );
    assert_eq!(api.events("cab-a").await.len(), 0);
    assert!(api.metric("lockerfleet_broker_violations_total").await >= 2.0);
    assert!(
        api.metric("lockerfleet_broker_identity_rejected_total")
            .await
            >= 1.0
    );
}

#[tokio::test]
async fn idle_connections_do_not_block_new_devices() {
    let w = World::new(&["cab-i"]);
    let server = w.server();
    // 20 sockets that never start TLS.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(
            tokio::net::TcpStream::connect(server.mqtt)
                .await
                .expect("tcp"),
        );
    }
    let started = Instant::now();
    let (_c, mut el) = AsyncClient::new(w.device_options("cab-i", "cab-i", server.mqtt), 10);
    connack(&mut el).await.expect("device connects");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "connecting took {took:?} behind 20 idle sockets"
    );
    drop(idle);
}

#[tokio::test]
async fn malformed_payloads_leave_the_server_healthy() {
    let w = World::new(&["cab-m"]);
    let server = w.server();
    let api = server.api();
    let (client, mut el) = AsyncClient::new(w.device_options("cab-m", "cab-m", server.mqtt), 10);
    connack(&mut el).await.expect("connects");
    let driver = tokio::spawn(async move { while el.poll().await.is_ok() {} });
    for bad in [
        b"not json".to_vec(),
        br#"{"v":99,"base":1,"events":[]}"#.to_vec(),
        br#"{"v":1,"base":1,"events":[{"seq":1,"ts":0,"type":"door","box":0,"open":true}]}"#
            .to_vec(),
        vec![0xff; 3000],
    ] {
        client
            .publish("devices/cab-m/events", QoS::AtLeastOnce, false, bad)
            .await
            .expect("queued");
    }
    client
        .publish(
            "devices/cab-m/acks",
            QoS::AtLeastOnce,
            false,
            b"{}".to_vec(),
        )
        .await
        .expect("queued");
    // A good message after the bad ones is still stored.
    client
        .publish("devices/cab-m/events", QoS::AtLeastOnce, false, batch(1))
        .await
        .expect("queued");
    eventually(Duration::from_secs(10), "the good event stored", || async {
        (api.events("cab-m").await.len() == 1).then_some(())
    })
    .await;
    assert_eq!(
        api.metric("lockerfleet_messages_malformed_total").await,
        5.0
    );
    let (status, health) = api.get("/healthz").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "ok");
    driver.abort();
}

/// An agent newer than its server sends an event type (and a fault kind) the server does not
/// know: stored as `unreadable` with what was sent, receipted, and the events behind it are
/// not held up — an upgrade order (agents first) never stalls a cabinet's stream.
#[tokio::test]
async fn a_newer_agents_unknown_events_are_kept_and_hold_nothing_up() {
    let w = World::new(&["cab-u"]);
    let server = w.server();
    let api = server.api();
    let (client, mut el) = AsyncClient::new(w.device_options("cab-u", "cab-u", server.mqtt), 10);
    connack(&mut el).await.expect("connects");
    client
        .subscribe("devices/cab-u/receipts", QoS::AtLeastOnce)
        .await
        .expect("queued");
    let receipts = tokio::spawn(async move {
        let mut marks = Vec::new();
        while let Ok(ev) = el.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = ev
                && let Ok(r) = serde_json::from_slice::<serde_json::Value>(&p.payload)
            {
                marks.push(r["up_to"].as_u64().unwrap_or_default());
                if marks.last() == Some(&3) {
                    break;
                }
            }
        }
        marks
    });
    let newer = json!({"v": 1, "base": 1, "events": [
        {"seq": 1, "ts": 1, "type": "teleport", "to": "mars"},
        {"seq": 2, "ts": 2, "type": "fault", "fault": "clock_skew", "active": true, "evidence": "x"},
        {"seq": 3, "ts": 3, "type": "door", "box": 1, "open": true}
    ]});
    client
        .publish(
            "devices/cab-u/events",
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&newer).expect("json"),
        )
        .await
        .expect("queued");
    let marks = tokio::time::timeout(Duration::from_secs(10), receipts)
        .await
        .expect("receipted up to 3")
        .expect("task");
    assert_eq!(marks.last(), Some(&3), "{marks:?}");
    let events = api.events("cab-u").await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["unreadable", "unreadable", "door"], "{events:?}");
    assert_eq!(events[0]["body"]["raw"]["to"], "mars", "{events:?}");
    assert_eq!(api.metric("lockerfleet_events_unreadable_total").await, 2.0);
    assert_eq!(
        api.metric("lockerfleet_messages_malformed_total").await,
        0.0
    );
}

#[tokio::test]
async fn oversized_packets_disconnect_the_sender() {
    let w = World::new(&["cab-o"]);
    let server = w.server();
    let api = server.api();
    let mut o = w.device_options("cab-o", "cab-o", server.mqtt);
    o.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut el) = AsyncClient::new(o, 10);
    connack(&mut el).await.expect("connects");
    // Default limit 256 KiB.
    client
        .publish(
            "devices/cab-o/events",
            QoS::AtLeastOnce,
            false,
            vec![b'x'; 400 * 1024],
        )
        .await
        .expect("queued");
    assert!(
        closed(&mut el).await,
        "a 400 KiB packet did not disconnect the device"
    );
    assert!(api.metric("lockerfleet_broker_violations_total").await >= 1.0);
}

#[tokio::test]
async fn the_connection_limit_holds_and_frees_up() {
    let w = World::new(&["cab-l"]);
    let server = w.server_with("127.0.0.1:0", "127.0.0.1:0", &["--max-connections", "2"]);
    let api = server.api();
    let idle: Vec<_> = futures_idle(server.mqtt, 2).await;
    let (_c, mut el) = AsyncClient::new(w.device_options("cab-l", "cab-l", server.mqtt), 10);
    assert!(
        connack(&mut el).await.is_err(),
        "a third connection got in past a limit of 2"
    );
    assert!(
        api.metric("lockerfleet_broker_connections_rejected_limit_total")
            .await
            >= 1.0
    );
    drop(idle);
    eventually(Duration::from_secs(10), "a slot frees up", || async {
        let (_c, mut el) = AsyncClient::new(w.device_options("cab-l", "cab-l", server.mqtt), 10);
        connack(&mut el).await.ok()
    })
    .await;
}

async fn futures_idle(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(tokio::net::TcpStream::connect(addr).await.expect("tcp"));
    }
    // Let the server accept them before the next connection arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    v
}

#[tokio::test]
async fn wills_qos2_and_wide_subscriptions_are_refused() {
    let w = World::new(&["cab-w"]);
    let server = w.server();
    let api = server.api();

    // A last will naming another device's commands would be published unchecked by rumqttd.
    let mut o = w.device_options("cab-w", "cab-w", server.mqtt);
    o.set_last_will(rumqttc::LastWill::new(
        "devices/cab-z/commands",
        r#"{"v":1,"command_id":"x","issued_at":0,"expires_at":9999999999999,"action":"open","box":1}"#,
        QoS::AtLeastOnce,
        false,
    ));
    let (_c, mut el) = AsyncClient::new(o, 10);
    assert!(
        connack(&mut el).await.is_err(),
        "a CONNECT with a will was accepted"
    );

    // QoS 2 would let a device pin unbounded memory in the router.
    let (client, mut el) = AsyncClient::new(w.device_options("cab-w", "cab-w", server.mqtt), 10);
    connack(&mut el).await.expect("connects");
    client
        .publish("devices/cab-w/events", QoS::ExactlyOnce, false, batch(1))
        .await
        .expect("queued");
    assert!(closed(&mut el).await, "a QoS 2 publish did not disconnect");

    // Only the exact commands and receipts filters; a wildcard under its own subtree too is out.
    let (client, mut el) = AsyncClient::new(w.device_options("cab-w", "cab-w", server.mqtt), 10);
    connack(&mut el).await.expect("connects");
    client
        .subscribe("devices/cab-w/#", QoS::AtLeastOnce)
        .await
        .expect("queued");
    assert!(
        closed(&mut el).await,
        "a wildcard subscription did not disconnect"
    );

    assert!(api.metric("lockerfleet_broker_violations_total").await >= 3.0);
    assert!(
        api.events("cab-w").await.is_empty(),
        "nothing from the QoS 2 publish is stored"
    );
}

/// Presence reasons recorded for `id`, oldest first.
async fn presence_reasons(api: &crate::harness::Api, id: &str) -> Vec<(bool, String)> {
    let (_, log) = api.get(&format!("/api/v1/devices/{id}/presence")).await;
    let mut v: Vec<(bool, String)> = log["presence"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["online"].as_bool().unwrap_or(false),
                        e["reason"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.reverse();
    v
}

#[tokio::test]
async fn the_front_owns_sessions_keep_alive_takeover_and_delivery() {
    let w = World::new(&["cab-k"]);
    let server = w.server();
    let api = server.api();

    // A session receives what the server sends it: an event batch is answered by a receipt
    // on the device's own receipts topic, written by the front to this connection.
    let (first, mut el1) = AsyncClient::new(w.device_options("cab-k", "cab-k", server.mqtt), 10);
    connack(&mut el1).await.expect("first session");
    first
        .subscribe("devices/cab-k/receipts", QoS::AtLeastOnce)
        .await
        .expect("queued");
    first
        .publish("devices/cab-k/events", QoS::AtLeastOnce, false, batch(1))
        .await
        .expect("queued");
    let receipt = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match el1.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => return p,
                Ok(_) => {}
                Err(e) => panic!("first session failed: {e}"),
            }
        }
    })
    .await
    .expect("a receipt within 10 s");
    assert_eq!(receipt.topic, "devices/cab-k/receipts");
    let receipt: serde_json::Value = serde_json::from_slice(&receipt.payload).expect("json");
    assert_eq!(receipt["up_to"], 1, "{receipt}");

    // The same device connecting again takes the session over; the old connection is
    // closed and the device never shows offline in between.
    let mut o = w.device_options("cab-k", "cab-k", server.mqtt);
    o.set_keep_alive(Duration::from_secs(1));
    let (_second, mut el2) = AsyncClient::new(o, 10);
    connack(&mut el2).await.expect("second session");
    let connected_at = Instant::now();
    assert!(closed(&mut el1).await, "the old session stayed open");
    let reasons = eventually(Duration::from_secs(10), "the takeover recorded", || async {
        let r = presence_reasons(&api, "cab-k").await;
        r.iter()
            .any(|(_, why)| why.contains("taken over"))
            .then_some(r)
    })
    .await;
    assert!(
        reasons.iter().all(|(online, _)| *online),
        "the device looked offline during the takeover: {reasons:?}"
    );

    // Silent past 1.5 × its 1 s keep-alive (its event loop is not polled, so no PINGREQ):
    // the front ends the session and says why.
    eventually(Duration::from_secs(10), "a keep-alive timeout", || async {
        presence_reasons(&api, "cab-k")
            .await
            .last()
            .is_some_and(|(online, why)| !online && why == "keep-alive timeout")
            .then_some(())
    })
    .await;
    assert!(
        connected_at.elapsed() >= Duration::from_millis(1200),
        "closed before 1.5 × keep-alive: {:?}",
        connected_at.elapsed()
    );
    drop(el2);
}

/// A device publishing far above its rate is slowed, not cut off: every message is stored,
/// the flood takes as long as the rate says, the throttle is counted, and a neighbour's
/// message is stored at once meanwhile.
#[tokio::test]
async fn a_flooding_device_is_slowed_and_loses_nothing() {
    let w = World::new(&["cab-f", "cab-n"]);
    let server = w.server_with(
        "127.0.0.1:0",
        "127.0.0.1:0",
        &[
            "--device-publish-per-sec",
            "40",
            "--device-publish-burst",
            "10",
        ],
    );
    let api = server.api();
    assert_eq!(
        api.metric("lockerfleet_limits{limit=\"device_publish_per_sec\"}")
            .await,
        40.0
    );
    let (flood, mut el) = AsyncClient::new(w.device_options("cab-f", "cab-f", server.mqtt), 200);
    connack(&mut el).await.expect("connects");
    let driver = tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let started = Instant::now();
    for seq in 1..=90 {
        flood
            .publish("devices/cab-f/events", QoS::AtLeastOnce, false, batch(seq))
            .await
            .expect("queued");
    }
    let (neighbour, mut nel) =
        AsyncClient::new(w.device_options("cab-n", "cab-n", server.mqtt), 10);
    connack(&mut nel).await.expect("neighbour connects");
    let ndriver = tokio::spawn(async move { while nel.poll().await.is_ok() {} });
    let sent = Instant::now();
    neighbour
        .publish("devices/cab-n/events", QoS::AtLeastOnce, false, batch(1))
        .await
        .expect("queued");
    eventually(Duration::from_secs(10), "the neighbour's event", || async {
        (api.events("cab-n").await.len() == 1).then_some(())
    })
    .await;
    let neighbour_took = sent.elapsed();
    eventually(Duration::from_secs(30), "all 90 flood events", || async {
        (api.events("cab-f").await.len() == 90).then_some(())
    })
    .await;
    let took = started.elapsed();
    // 10 at once, then 80 at 40/s: two seconds at the least.
    assert!(
        took >= Duration::from_millis(1_900),
        "90 publishes took {took:?}: not held to 40/s"
    );
    assert!(
        neighbour_took < took / 2,
        "the neighbour waited {neighbour_took:?} behind a {took:?} flood"
    );
    assert!(
        api.metric("lockerfleet_broker_publish_throttled_total")
            .await
            >= 1.0
    );
    assert_eq!(api.metric("lockerfleet_broker_violations_total").await, 0.0);
    driver.abort();
    ndriver.abort();
}

/// A ClientHello from a real TLS client, to be sent and then left hanging.
fn client_hello() -> Vec<u8> {
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).expect("client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("client hello");
    hello
}

/// One address says hello on 20 connections and stalls, which would hold every TLS
/// handshake slot until the handshake timeout; with a per-address share it holds two (the
/// other 18 wait for its turns and are closed at their deadline), and a device from another
/// address connects at once.
#[tokio::test]
async fn stalled_hellos_from_one_address_do_not_hold_every_handshake_slot() {
    let w = World::new(&["cab-h"]);
    let config = w.path("server.toml");
    std::fs::write(
        &config,
        "max_handshakes = 4\nmax_handshakes_per_ip = 2\nhandshake_timeout_ms = 1500\n",
    )
    .expect("config");
    let server = w.server_with(
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--config", &config.display().to_string()],
    );
    let api = server.api();
    let hello = client_hello();
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.2:0".parse().expect("addr"))
            .expect("bind a second loopback address");
        let mut s = socket.connect(server.mqtt).await.expect("tcp");
        tokio::io::AsyncWriteExt::write_all(&mut s, &hello)
            .await
            .expect("hello");
        stalled.push(s);
    }
    eventually(
        Duration::from_secs(5),
        "20 connections accepted",
        || async {
            (api.metric("lockerfleet_broker_connections_accepted_total")
                .await
                >= 20.0)
                .then_some(())
        },
    )
    .await;
    // Their hellos were sent before the accepts: a moment for the front to read them and
    // for two to take the address's turns.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let (_c, mut el) = AsyncClient::new(w.device_options("cab-h", "cab-h", server.mqtt), 10);
    connack(&mut el).await.expect("device connects");
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1_200),
        "connecting took {took:?} behind 20 stalled hellos from one address"
    );
    // All 20 are closed at their deadline: those that waited for a turn of their address
    // as refused, those holding one (two, and any that got one as its holder timed out) as
    // timed out. None lingers. How many end each way is timing: accepted a millisecond
    // apart, each waiter gets a turn as the one two ahead of it times out, just before its
    // own deadline, and all 20 end as timed out (seen once under a loaded test run).
    // That the address held two slots, not all four, the device's quick connect showed.
    eventually(
        Duration::from_secs(5),
        "20 stalled hellos closed",
        || async {
            let refused = api
                .metric("lockerfleet_broker_handshake_refused_per_ip_total")
                .await;
            let timed_out = api
                .metric("lockerfleet_broker_handshake_timeout_total")
                .await;
            (refused + timed_out == 20.0).then_some(())
        },
    )
    .await;
    drop(stalled);
}

/// Cabinets behind one NAT share an address: more of them than its handshake turns connect
/// at once, queueing for the turns instead of being closed and backing off.
#[tokio::test]
async fn cabinets_behind_one_address_queue_for_its_handshake_turns() {
    let ids: Vec<String> = (0..12).map(|n| format!("cab-nat-{n:02}")).collect();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    let w = World::new(&names);
    let config = w.path("server.toml");
    std::fs::write(&config, "max_handshakes = 4\nmax_handshakes_per_ip = 2\n").expect("config");
    let server = w.server_with(
        "127.0.0.1:0",
        "127.0.0.1:0",
        &["--config", &config.display().to_string()],
    );
    let api = server.api();
    let mut connects = tokio::task::JoinSet::new();
    for id in &names {
        let (client, mut el) = AsyncClient::new(w.device_options(id, id, server.mqtt), 10);
        connects.spawn(async move { connack(&mut el).await.map(|_| (client, el)) });
    }
    let connected = connects.join_all().await;
    let failed: Vec<_> = connected.iter().filter_map(|c| c.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of 12 failed to connect: {failed:?}",
        failed.len()
    );
    assert_eq!(
        api.metric("lockerfleet_broker_handshake_refused_per_ip_total")
            .await,
        0.0,
        "no cabinet was closed for sharing an address"
    );
    assert_eq!(
        api.metric("lockerfleet_broker_connections_accepted_total")
            .await,
        12.0,
        "one connection each: nobody had to come back"
    );
}

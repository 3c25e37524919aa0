//! The RabbitMQ broker tier for real (issue 24, ADR 0024): three nodes of Debian's
//! `rabbitmq-server` on loopback, started by `deploy/cluster/rabbitmq.sh`, each asking a
//! `fleet-server broker-auth`. The broker itself must hold each device to its own identity
//! and topics (the rules the embedded front enforces), and the fleet must lose nothing when
//! a broker node or a server replica dies under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Packet, QoS};

use crate::broker_front::{closed, connack};
use crate::faults::{assert_every_event_once, settled_marks, streaming_agents_with};
use crate::harness::{PrivatePg, RabbitCluster, World, eventually, wait_online};

/// Keeps a device's connection polled; counts what it receives and how often it was dropped.
struct Watched {
    client: AsyncClient,
    received: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

async fn watched(world: &World, id: &str, node: std::net::SocketAddr) -> Watched {
    let (client, mut el) = AsyncClient::new(world.device_options(id, id, node), 10);
    connack(&mut el).await.expect("connects as itself");
    let (received, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, d) = (received.clone(), dropped.clone());
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    r.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => {
                    d.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    Watched {
        client,
        received,
        dropped,
    }
}

/// A TLS client presenting `chain`/`key` to the fleet's broker (trusting the fleet CA).
fn options_with(
    world: &World,
    identity: Option<(&std::path::Path, &str)>,
    client_id: &str,
    node: std::net::SocketAddr,
) -> rumqttc::MqttOptions {
    let roots = certs::load_roots(&world.certs().join(certs::CA_CERT)).expect("roots");
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let tls = match identity {
        Some((dir, id)) => {
            let id = protocol::DeviceId::parse(id).expect("id");
            builder
                .with_client_auth_cert(
                    certs::load_certs(&certs::device_cert_path(dir, &id)).expect("cert"),
                    certs::load_key(&certs::device_key_path(dir, &id)).expect("key"),
                )
                .expect("client tls")
        }
        None => builder.with_no_client_auth(),
    };
    let mut o = rumqttc::MqttOptions::new(client_id, "localhost", node.port());
    o.set_keep_alive(Duration::from_secs(10))
        .set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
        ));
    o
}

#[tokio::test]
#[ignore = "needs rabbitmq-server: run .ci/run, or apt-get install rabbitmq-server and pass --include-ignored"]
async fn the_cluster_holds_each_device_to_its_own_identity_and_topics() {
    let world = World::new(&["cab-a", "cab-b"]);
    let cluster = RabbitCluster::start(&world, 3);
    let url = cluster.amqps_url();
    let server = world.replica("replica", &["--external-broker", url.as_str()]);
    let api = server.api();

    // cab-b, on node 2, listens to its own commands throughout.
    let victim = watched(&world, "cab-b", cluster.mqtt[1]).await;
    victim
        .client
        .subscribe("devices/cab-b/commands", QoS::AtLeastOnce)
        .await
        .expect("queued");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // cab-a's certificate with cab-b's client id (on another node): refused at CONNECT,
    // and the real cab-b keeps its session (no takeover).
    let (_c, mut el) =
        AsyncClient::new(world.device_options("cab-a", "cab-b", cluster.mqtt[0]), 10);
    assert!(
        connack(&mut el).await.is_err(),
        "client id cab-b with cab-a's certificate was accepted"
    );

    // Publishing into cab-b's topics: the node closes cab-a's connection; nothing arrives.
    for topic in [
        "devices/cab-b/commands",
        "devices/cab-b/events",
        "devices/cab-a/codes",
    ] {
        let (client, mut el) =
            AsyncClient::new(world.device_options("cab-a", "cab-a", cluster.mqtt[0]), 10);
        connack(&mut el).await.expect("cab-a connects as itself");
        let forged = r#"{"v":1,"base":1,"events":[{"seq":1,"ts":1,"type":"started","agent_version":"forged","boxes":8}]}"#;
        client
            .publish(topic, QoS::AtLeastOnce, false, forged)
            .await
            .expect("queued");
        assert!(
            closed(&mut el).await,
            "publishing to {topic} did not disconnect cab-a"
        );
    }
    // Reading what is not its own: closed as well.
    for filter in [
        "devices/cab-b/commands",
        "devices/+/commands",
        "devices/#",
        "#",
        "devices/cab-a/events",
    ] {
        let (client, mut el) =
            AsyncClient::new(world.device_options("cab-a", "cab-a", cluster.mqtt[2]), 10);
        connack(&mut el).await.expect("cab-a connects as itself");
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queued");
        assert!(
            closed(&mut el).await,
            "subscribing to {filter} did not disconnect cab-a"
        );
    }
    // No certificate, or one from another CA: no session at all.
    let stranger = World::new(&["cab-a"]);
    for (what, identity) in [
        ("no certificate", None),
        (
            "another CA's certificate",
            Some((stranger.certs(), "cab-a")),
        ),
    ] {
        let identity = identity.as_ref().map(|(d, id)| (d.as_path(), *id));
        let (_c, mut el) =
            AsyncClient::new(options_with(&world, identity, "cab-a", cluster.mqtt[1]), 10);
        assert!(connack(&mut el).await.is_err(), "{what} was accepted");
    }

    // What cab-a may do works: its own events reach the server through the cluster.
    let own = watched(&world, "cab-a", cluster.mqtt[0]).await;
    let started = r#"{"v":1,"base":1,"events":[{"seq":1,"ts":1,"type":"started","agent_version":"own","boxes":8}]}"#;
    own.client
        .publish("devices/cab-a/events", QoS::AtLeastOnce, false, started)
        .await
        .expect("queued");
    eventually(
        Duration::from_secs(20),
        "cab-a's own event stored",
        || async { (api.events("cab-a").await.len() == 1).then_some(()) },
    )
    .await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        victim.received.load(Ordering::SeqCst),
        0,
        "cab-b received a message another device forged"
    );
    assert_eq!(
        victim.dropped.load(Ordering::SeqCst),
        0,
        "cab-b's session was taken over or dropped"
    );
    assert!(
        api.events("cab-b").await.is_empty(),
        "events forged for cab-b were stored"
    );
    let denied = std::fs::read_to_string(world.path("broker-auth-0.log")).unwrap_or_default()
        + &std::fs::read_to_string(world.path("broker-auth-2.log")).unwrap_or_default();
    assert!(
        denied.contains("must be its own id") && denied.contains("may not publish"),
        "broker-auth logs why it denied:\n{denied}"
    );
}

#[tokio::test]
#[ignore = "needs rabbitmq-server: run .ci/run, or apt-get install rabbitmq-server and pass --include-ignored"]
async fn a_revoked_certificate_is_refused_by_every_node_and_its_session_closed() {
    let world = World::new(&["cab-a", "cab-b"]);
    let cluster = RabbitCluster::start(&world, 3);
    // cab-a on node 2, cab-b on node 3; revocations are applied through node 1.
    let victim = watched(&world, "cab-a", cluster.mqtt[1]).await;
    let bystander = watched(&world, "cab-b", cluster.mqtt[2]).await;

    crate::security::fleet_certs(&world, &["revoke"], "cab-a");
    cluster.apply_crl();
    eventually(
        Duration::from_secs(10),
        "the revoked session closed",
        || async { (victim.dropped.load(Ordering::SeqCst) > 0).then_some(()) },
    )
    .await;
    for node in &cluster.mqtt {
        let (_c, mut el) = AsyncClient::new(world.device_options("cab-a", "cab-a", *node), 10);
        let refused = connack(&mut el).await;
        assert!(
            refused.is_err(),
            "node {node} accepted the revoked certificate"
        );
    }
    assert_eq!(
        bystander.dropped.load(Ordering::SeqCst),
        0,
        "another device's session was closed"
    );
    let (_c, mut el) =
        AsyncClient::new(world.device_options("cab-b", "cab-b", cluster.mqtt[0]), 10);
    connack(&mut el).await.expect("another device connects");

    // A new certificate for the same device is welcome again; applying the list again
    // closes nothing more.
    crate::security::fleet_certs(&world, &["issue", "--force"], "cab-a");
    let (_c, mut el) =
        AsyncClient::new(world.device_options("cab-a", "cab-a", cluster.mqtt[0]), 10);
    connack(&mut el)
        .await
        .expect("re-issued certificate connects");
    let again = watched(&world, "cab-a", cluster.mqtt[1]).await;
    cluster.apply_crl();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        again.dropped.load(Ordering::SeqCst),
        0,
        "the re-issued device lost its session"
    );
}

#[tokio::test]
#[ignore = "needs rabbitmq-server and PostgreSQL: run .ci/run, or apt-get install rabbitmq-server postgresql and pass --include-ignored"]
async fn a_broker_node_and_a_replica_killed_under_load_lose_nothing() {
    const AGENTS: usize = 6;
    const PER_AGENT: u64 = 3_000;
    let ids: Vec<String> = (0..AGENTS).map(|i| format!("cab-r{i}")).collect();
    let mut all: Vec<&str> = ids.iter().map(String::as_str).collect();
    all.push("cab-open");
    let world = World::new(&all);
    let pg = PrivatePg::start(&world.path("pg"));
    let cluster = RabbitCluster::start(&world, 3);
    let (url, db, config) = (
        cluster.amqps_url(),
        pg.url(),
        crate::external_broker::replica_config(&world),
    );
    let flags = [
        "--external-broker",
        url.as_str(),
        "--database-url",
        db.as_str(),
        "--config",
        config.as_str(),
    ];
    let mut a = world.ready_replica("replica-a", &flags).await;
    let b = world.ready_replica("replica-b", &flags).await;
    let (api_a, api_b) = (a.api(), b.api());
    let servers = cluster.agent_servers();
    let _agents = streaming_agents_with(
        &world,
        cluster.mqtt[0],
        &ids,
        300,
        PER_AGENT,
        &["--server", &servers],
    );
    let _opener = world.agent("cab-open", cluster.mqtt[0], &["--server", &servers]);
    wait_online(&api_b, "cab-open").await;
    // Each on a box of its own: the fake lock leaves a door open until someone closes it.
    let open = |api: crate::harness::Api, box_no: u16, why: &'static str| async move {
        let (status, body) = api
            .open("cab-open", box_no, serde_json::json!({ "reason": why }))
            .await;
        assert_eq!(status, 202, "{body}");
        let id = body["command_id"].as_str().expect("command id").to_owned();
        let done = api.wait_command(&id, Duration::from_secs(30)).await;
        assert_eq!(done["status"], "opened", "{why}: {done}");
    };
    open(api_b.clone(), 1, "before any kill").await;
    eventually(Duration::from_secs(60), "both replicas storing", || async {
        let (sa, sb) = (
            api_a.metric("lockerfleet_events_stored_total").await,
            api_b.metric("lockerfleet_events_stored_total").await,
        );
        (sa + sb > 2_000.0).then_some(())
    })
    .await;

    // A broker node dies (the replicas' first, and a third of the cabinets'): every cabinet
    // must get events stored again, whichever node it lands on.
    cluster.kill9(1);
    let recovered = every_device_progresses(&api_b, &ids, PER_AGENT).await;
    eprintln!("broker node 1 killed: every cabinet storing again after {recovered:.1} s");
    open(api_b.clone(), 2, "after a broker node died").await;

    // A replica dies: the other takes over its partitions (single active consumer), so
    // again every cabinet moves on, not only those the survivor already served.
    a.kill9();
    let recovered = every_device_progresses(&api_b, &ids, PER_AGENT).await;
    eprintln!("replica A killed: every cabinet storing through replica B after {recovered:.1} s");
    open(api_b.clone(), 3, "after a replica died").await;

    // The node comes back and rejoins; nothing is lost or doubled in all of it.
    cluster.restart(1);
    let marks = settled_marks(&api_b, &ids, PER_AGENT, Duration::from_secs(180)).await;
    assert_every_event_once(&db, &marks, PER_AGENT, "broker node 1 and replica A killed").await;
    for id in &ids {
        wait_online(&api_b, id).await;
    }
}

/// Waits until every device's receipted mark has risen twice in a row (or its stream is
/// complete): a cabinet stuck on a dead node can have one batch in flight stored, not two.
/// Returns the seconds that took.
pub(crate) async fn every_device_progresses(
    api: &crate::harness::Api,
    ids: &[String],
    total: u64,
) -> f64 {
    let started = Instant::now();
    for _round in 0..2 {
        let before = crate::faults::marks(api, ids).await;
        loop {
            let now = crate::faults::marks(api, ids).await;
            if now
                .iter()
                .zip(&before)
                .all(|((_, n), (_, b))| n > b || *n > total)
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "not every cabinet stored more within 90 s: marks before {before:?}, now {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    started.elapsed().as_secs_f64()
}

#[tokio::test]
#[ignore = "needs rabbitmq-server: run .ci/run, or apt-get install rabbitmq-server and pass --include-ignored"]
async fn a_cabinet_stranded_by_a_dead_node_is_offline_after_the_grace_and_one_that_moves_is_not() {
    let world = World::new(&["cab-moves", "cab-stranded"]);
    let cluster = RabbitCluster::start(&world, 3);
    let url = cluster.amqps_url();
    let server = world.replica(
        "replica",
        &[
            "--external-broker",
            url.as_str(),
            // Room for the moving cabinet's reconnect (TLS, broker-auth, and RabbitMQ's
            // client-id registry electing a new leader when its leader was on the dead node)
            // on a machine busy with the whole suite: 2 s failed there once, 6 s once in a
            // run from an empty cache (8 s). A reconnect that lands moments after the death
            // of the node leading the partitions can get a session routing to the dead
            // leader (ADR 0024): the agent leaves such a node after a keep-alive (15 s)
            // without acknowledgements, so the grace is twice that. The default is 60 s.
            "--offline-grace-secs",
            "30",
        ],
    );
    let api = server.api();
    let only_first = format!("localhost:{}", cluster.mqtt[0].port());
    // Both start on node 1: one knows the other nodes, the other only node 1. An agent
    // starts at the node its id hashes to (FNV-1a, device_agent::net::first_node), so
    // cab-moves' list is turned to put node 1 there.
    let start = {
        let h = "cab-moves".bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        (h % 3) as usize
    };
    let mut nodes: Vec<String> = cluster
        .mqtt
        .iter()
        .map(|a| format!("localhost:{}", a.port()))
        .collect();
    nodes.rotate_right(start);
    let beat = ["--heartbeat-secs", "1"];
    let _moves = world.agent(
        "cab-moves",
        cluster.mqtt[0],
        &[&["--server", &nodes.join(",")][..], &beat].concat(),
    );
    let _stranded = world.agent(
        "cab-stranded",
        cluster.mqtt[0],
        &[&["--server", &only_first][..], &beat].concat(),
    );
    for id in ["cab-moves", "cab-stranded"] {
        wait_online(&api, id).await;
    }
    // RabbitMQ publishes no will for the sessions of a node that died: the heartbeats tell.
    cluster.kill9(1);
    let killed = Instant::now();
    let offline = eventually(
        Duration::from_secs(60),
        "cab-stranded offline alarm",
        || async {
            crate::alarms::alarms(&api, "kind=device_offline")
                .await
                .into_iter()
                .find(|a| a["device_id"] == "cab-stranded")
        },
    )
    .await;
    let stranded_after = killed.elapsed();
    eprintln!(
        "cab-stranded offline after {:.1} s (grace 30 s, heartbeats every 1 s)",
        stranded_after.as_secs_f64()
    );
    // Not before the grace: the last heartbeat came at most a second before the kill.
    assert!(
        stranded_after >= Duration::from_secs(29),
        "cab-stranded alarmed {stranded_after:?} after the kill, before its 30-s grace"
    );
    assert!(
        offline["evidence"]
            .as_str()
            .is_some_and(|e| e.contains("no heartbeat")),
        "{offline}"
    );
    // The other moved to a live node within the grace: never offline.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let moved: Vec<_> = crate::alarms::alarms(&api, "kind=device_offline")
        .await
        .into_iter()
        .filter(|a| a["device_id"] == "cab-moves")
        .collect();
    let log = std::fs::read_to_string(world.path("cab-moves.log")).expect("agent log");
    for line in log.lines().filter(|l| l.contains("node")) {
        eprintln!("cab-moves: {line}");
    }
    if !moved.is_empty() {
        // What the replica heard of the failover, beside the agent's log below.
        eprintln!(
            "{}",
            std::fs::read_to_string(world.path("replica.log")).unwrap_or_default()
        );
        // And what a surviving node holds of the partitions, their consumers and the
        // cabinets' sessions (a stale queue leader shows as messages going nowhere).
        for args in [
            &[
                "list_queues",
                "name",
                "leader",
                "online",
                "consumers",
                "messages",
            ][..],
            &[
                "list_consumers",
                "queue_name",
                "channel_pid",
                "active",
                "activity_status",
            ],
            &[
                "list_mqtt_connections",
                "client_id",
                "conn_name",
                "state",
                "recv_cnt",
            ],
        ] {
            eprintln!("{}", cluster.ctl(2, args).unwrap_or_else(|e| e.to_string()));
        }
    }
    assert!(
        moved.is_empty(),
        "cab-moves was alarmed offline (its move, in its log, took longer than the grace): \
         {moved:?}\n{log}"
    );
    let dev = api.device("cab-moves").await.expect("device");
    assert_eq!(dev["layers"]["heartbeat"], "fresh", "{dev}");
    let connected: Vec<&str> = log.lines().filter(|l| l.contains("connected")).collect();
    let port = |n: usize| cluster.mqtt[n].port().to_string();
    assert!(
        connected.first().is_some_and(|l| l.contains(&port(0)))
            && connected
                .iter()
                .any(|l| l.contains(&port(1)) || l.contains(&port(2))),
        "cab-moves started on node 1 and moved:\n{log}"
    );
    // Its node back, the stranded cabinet is back too: the alarm clears.
    cluster.restart(1);
    eventually(
        Duration::from_secs(60),
        "cab-stranded's alarm cleared",
        || async {
            crate::alarms::alarms(&api, "state=cleared&kind=device_offline")
                .await
                .into_iter()
                .find(|a| a["device_id"] == "cab-stranded")
        },
    )
    .await;
}

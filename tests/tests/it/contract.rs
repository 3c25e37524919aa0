//! The AsyncAPI contract on the real wire: a spy on mosquitto records every message a real
//! agent and a real server exchange through the main flows (connect, events and receipts, a
//! remote open, code grants, a keypad refusal), and each must be valid against the contract's
//! schema for its channel: both sides keep the contract, not only the snapshots.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::contract::{SCHEMAS, asyncapi, message_of};
use protocol::{Channel, DeviceTopic};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{Value, json};

use crate::flows::{CAB, setup, wait_codes_synced};
use crate::harness::{Mosquitto, World, eventually, wait_online};

type Seen = Arc<Mutex<Vec<(Channel, Vec<u8>)>>>;

/// The spy's own probe, to know it is subscribed; not part of what is checked.
const PROBE: &str = "contract-probe";

#[tokio::test]
#[ignore = "needs mosquitto: run .ci/run, or apt-get install mosquitto and pass --include-ignored"]
async fn every_message_a_real_agent_and_server_exchange_keeps_the_contract() {
    let world = World::new(&[CAB]);
    let broker = Mosquitto::start(&world);
    // The spy reads everything under devices/ with the server replicas' identity, before
    // anyone else connects (so it also sees the first presence and state).
    let seen: Seen = Arc::default();
    let (spy, mut el) = AsyncClient::new(
        world.device_options(certs::SERVER_CLIENT, "contract-spy", broker.addr),
        100,
    );
    spy.subscribe(protocol::topic::every_device_filter(), QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let record = seen.clone();
    let probed = Arc::new(AtomicBool::new(false));
    let spied = probed.clone();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = DeviceTopic::parse(&p.topic)
                        .unwrap_or_else(|e| panic!("a message off the contract's topics: {e}"));
                    if topic.device.as_str() == PROBE {
                        probed.store(true, Ordering::Relaxed);
                    } else {
                        record
                            .lock()
                            .expect("seen")
                            .push((topic.channel, p.payload.to_vec()));
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let probe = format!("devices/{PROBE}/state");
    eventually(Duration::from_secs(10), "spy subscribed", || async {
        spy.publish(probe.as_str(), QoS::AtLeastOnce, false, "{}")
            .await
            .ok()?;
        spied.load(Ordering::Relaxed).then_some(())
    })
    .await;

    let url = broker.url();
    let server = world.replica("server", &["--external-broker", url.as_str()]);
    let admin = server.api();
    setup(&admin).await;
    let agent = world.agent_ctl(CAB, broker.addr, &[]);
    wait_online(&admin, CAB).await;
    wait_codes_synced(&admin).await;
    let (s, body) = admin.open(CAB, 2, json!({"reason": "contract"})).await;
    assert_eq!(s, 202, "{body}");
    let id = body["command_id"].as_str().expect("command id").to_owned();
    let done = admin.wait_command(&id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "opened", "{done}");
    let out = agent.send("code 00000000").await;
    assert_eq!(out["outcome"], "rejected", "{out}");
    // Remote diagnostics through the external broker: request and answer on the wire.
    let (s, r) = admin
        .post(
            &format!("/api/v1/devices/{CAB}/diagnostics"),
            json!({"kind": "logs", "lines": 20, "wait_secs": 20}),
        )
        .await;
    assert_eq!(s, 200, "answered through mosquitto: {r}");

    // Every channel of the flows above has been used at least once; certificate renewal
    // (csr, cert) is covered by the wire snapshots.
    let wanted = [
        Channel::Events,
        Channel::State,
        Channel::Acks,
        Channel::Health,
        Channel::Presence,
        Channel::Commands,
        Channel::Receipts,
        Channel::Codes,
        Channel::Diagnose,
        Channel::Diagnostics,
    ];
    let counts = eventually(
        Duration::from_secs(20),
        "every flow on the wire",
        || async {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            let seen = seen.lock().expect("seen");
            for (c, payload) in seen.iter() {
                *counts.entry(c.as_str()).or_default() += 1;
                // The keypad refusal travels as an event; wait for it too.
                if *c == Channel::Events
                    && String::from_utf8_lossy(payload).contains("code_rejected")
                {
                    *counts.entry("code_rejected").or_default() += 1;
                }
            }
            (wanted.iter().all(|c| counts.contains_key(c.as_str()))
                && counts.contains_key("code_rejected"))
            .then_some(counts)
        },
    )
    .await;

    let doc = asyncapi();
    let mut validators = BTreeMap::new();
    let mut errors = Vec::new();
    for (channel, payload) in seen.lock().expect("seen").iter() {
        let message = message_of(*channel);
        let v = validators
            .entry(message)
            .or_insert_with(|| validator(&doc, message));
        let value: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!("{}: not JSON: {e}", channel.as_str()));
                continue;
            }
        };
        for e in v.iter_errors(&value) {
            errors.push(format!(
                "{} ({message}): {e} at {}; payload {value}",
                channel.as_str(),
                e.instance_path()
            ));
        }
    }
    assert!(
        errors.is_empty(),
        "messages on the wire break the contract (seen {counts:?}):\n{}",
        errors.join("\n")
    );
}

/// A validator for one message: a `$ref` into the whole document, as a vendor's tool resolves it.
fn validator(doc: &Value, message: &str) -> jsonschema::Validator {
    let mut schema = doc.clone();
    schema["$ref"] = json!(format!("#{SCHEMAS}/{message}"));
    jsonschema::draft7::new(&schema).expect("the contract's schemas compile")
}

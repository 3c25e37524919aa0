//! Losing a machine (issue 24): an agent given several broker addresses, the nodes of a
//! cluster, starts on whichever answers and moves to another when its node dies, with the
//! backoff it already uses; nothing in the protocol changes and every event lands once.

use std::time::Duration;

use crate::delivery::wait_receipted;
use crate::harness::{World, assert_exactly_once_in_order, bin, reserved_port, wait_online};

/// A loopback port nothing listens on.
fn unused_port() -> u16 {
    reserved_port().expect("free port")
}

#[tokio::test]
async fn an_agent_moves_to_another_broker_node_when_its_own_dies() {
    let w = World::new(&["cab-n"]);
    // The first node is down when the agent starts: it goes on to the second.
    let first = unused_port();
    let mut server = w.server();
    let second = server.mqtt.port();
    let http = server.http.to_string();
    let nodes = format!("localhost:{first},localhost:{second}");
    let _agent = w.agent(
        "cab-n",
        server.mqtt,
        &[
            "--server",
            &nodes,
            "--fake-activity-per-sec",
            "100",
            "--fake-activity-limit",
            "300",
        ],
    );
    wait_online(&server.api(), "cab-n").await;
    // Its node dies; the other comes up (the same fleet, on the first address). The agent
    // finds it by itself and everything it recorded meanwhile lands, once, in order.
    server.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server = w.server_on(&format!("127.0.0.1:{first}"), &http);
    let api = server.api();
    let events = wait_receipted(&api, "cab-n", 301, Duration::from_secs(90)).await;
    assert_exactly_once_in_order(&events, 301);
    let log = std::fs::read_to_string(w.path("cab-n.log")).expect("agent log");
    // (The log is coloured: a port follows its key after escape codes.)
    let connected: Vec<&str> = log.lines().filter(|l| l.contains("connected")).collect();
    assert!(
        connected.iter().any(|l| l.contains(&second.to_string()))
            && connected.iter().any(|l| l.contains(&first.to_string())),
        "connected to both nodes in turn:\n{log}"
    );
    // The doctor tries every node: it passes while one accepts the cabinet, naming the
    // one that is down.
    let out = std::process::Command::new(bin("device-agent"))
        .args([
            "--id",
            "cab-n",
            "--server",
            &format!("localhost:{second},localhost:{first}"),
        ])
        .args(["--certs", &w.certs().display().to_string()])
        .args(["--data-dir", &w.path("doctor-cab-n").display().to_string()])
        .args([
            "--boxes",
            "8",
            "--hardware",
            "fake",
            "--lang",
            "en",
            "doctor",
        ])
        .output()
        .expect("run the doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    let server_line = text
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("server"))
        .unwrap_or_default();
    assert!(server_line.starts_with("PASS"), "{text}");
    assert!(
        server_line.contains(&format!("localhost:{second}: cannot connect"))
            && server_line.contains(&format!("localhost:{first} reachable")),
        "{text}"
    );
}

//! The fleet simulator against a real `fleet-server` process: a seeded scenario with every
//! flow and fault, its invariants checked and its report written; and a run whose server
//! dies half-way fails loudly instead of reporting success.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{ADMIN_TOKEN, World, bin};

fn smoke() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../simulations/scenarios/smoke.toml")
}

fn sim(world: &World, server: &crate::harness::Server, report: &str) -> Command {
    let mut c = Command::new(bin("fleet-sim"));
    c.arg("run")
        .arg(smoke())
        .args(["--server", &server.mqtt.to_string()])
        .args(["--api", &format!("http://{}", server.http)])
        .args(["--token", ADMIN_TOKEN])
        .args(["--certs", &world.certs().display().to_string()])
        .args(["--remote-offline-grace", "2"])
        .args(["--report", &world.path(report).display().to_string()])
        .arg("--quiet")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[test]
fn equal_seeds_plan_equal_runs() {
    let plan = |seed: &str| {
        let out = Command::new(bin("fleet-sim"))
            .arg("run")
            .arg(smoke())
            .args(["--seed", seed, "--dry-run"])
            .output()
            .expect("fleet-sim runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let (a, b, c) = (plan("5"), plan("5"), plan("6"));
    assert!(a.starts_with("plan "), "{a}");
    assert_eq!(a, b, "the same seed draws the same plan");
    assert_ne!(
        a.lines().next(),
        c.lines().next(),
        "another seed, another plan"
    );
}

#[test]
fn a_seeded_scenario_runs_against_a_real_server_and_every_invariant_holds() {
    let world = World::new(&[]);
    let server = world.server_with("127.0.0.1:0", "127.0.0.1:0", &["--offline-grace-secs", "2"]);
    let out = sim(&world, &server, "report")
        .output()
        .expect("fleet-sim runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fleet-sim failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("## Invariants: all hold"), "{stdout}");

    let dir = world.path("report");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("report.json")).expect("report.json"),
    )
    .expect("report is JSON");
    let checks = report["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 5, "{checks:?}");
    assert!(checks.iter().all(|c| c["passed"] == true), "{checks:?}");
    // Every flow completed and every kind of fault was injected (the seed's plan has them).
    let l = &report["ledger"];
    for flow in ["dropoff", "pickup", "supplement"] {
        assert!(
            l["done"][flow].as_u64().unwrap_or(0) > 0,
            "no {flow} completed: {l}"
        );
    }
    let injected: Vec<&str> = l["injected"]
        .as_array()
        .expect("injected")
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    for kind in [
        "jam",
        "forced_open",
        "power_loss",
        "network_drop",
        "agent_restart",
    ] {
        assert!(injected.contains(&kind), "no {kind} injected: {injected:?}");
    }
    assert!(l["commands"].as_array().is_some_and(|c| !c.is_empty()));
    // Every timed open lands in one split: cabinet connected throughout, or waited for.
    let count = |k: &str| report[k]["count"].as_u64().unwrap_or(0);
    assert_eq!(
        count("commands") + count("commands_reconnecting"),
        l["commands"].as_array().map_or(0, |c| c.len() as u64)
    );
    assert!(
        count("code_ready") > 0,
        "no code timed at an online cabinet"
    );
    assert!(l["deposited"].as_u64().unwrap_or(0) > 0 && l["collected"].as_u64().unwrap_or(0) > 0);
    assert!(report["samples"].as_array().is_some_and(|s| s.len() > 10));
    for svg in ["ingest.svg", "commands.svg", "occupancy.svg"] {
        let text = std::fs::read_to_string(dir.join(svg)).expect(svg);
        assert!(text.starts_with("<svg") && text.contains("</svg>"), "{svg}");
    }
    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(md.contains("![occupancy](occupancy.svg)"));

    // The server agrees, counted its own way: the events the report says were stored.
    let stored = report["ingest"]["events"].as_u64().expect("events");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let metric = rt.block_on(server.api().metric("lockerfleet_events_stored_total"));
    assert!(
        metric as u64 >= stored && stored > 0,
        "server stored {metric}, report says {stored}"
    );
}

#[test]
fn a_run_whose_server_dies_fails_loudly() {
    let world = World::new(&[]);
    let mut server = world.server();
    let child = sim(&world, &server, "report")
        .spawn()
        .expect("fleet-sim starts");
    std::thread::sleep(Duration::from_secs(6));
    server.kill9();
    let out = child.wait_with_output().expect("fleet-sim ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a run without its server must fail");
    assert!(
        stderr.contains("invariant"),
        "the error names what broke: {stderr}"
    );
}

//! Backup and restore end to end (issue 25): a backup taken while a cabinet streams events,
//! the fleet going on after it, a restore refused while the server runs and done once it is
//! stopped, and then the honest part — the cabinet had deleted the events receipted after
//! the backup, so the server records exactly which sequence numbers were lost (with the
//! restore as the reason), raises one alarm for the fleet, and every later event flows.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::delivery::wait_receipted;
use crate::harness::{PrivatePg, World, bin, eventually, wait_online};

const CAB: &str = "cab-b";
/// The agent's started event and its fake activity.
const TOTAL: u64 = 901;

fn fleet_server(w: &World, db: &[&str], args: &[&str]) -> std::process::Output {
    Command::new(bin("fleet-server"))
        .args(["--data-dir", &w.path("server").display().to_string()])
        .args(["--certs", &w.certs().display().to_string()])
        .args(db)
        .args(args)
        .env("LOCKERFLEET_LOG", "warn")
        .output()
        .expect("run fleet-server")
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn a_restore_of_an_older_sqlite_backup_records_the_lost_events_and_the_fleet_goes_on() {
    let w = World::new(&[CAB]);
    restore_scenario(&w, &[], "sqlite").await;
}

#[tokio::test]
async fn a_restore_of_an_older_postgresql_backup_records_the_lost_events_and_the_fleet_goes_on() {
    let w = World::new(&[CAB]);
    let pg = PrivatePg::start(&w.path("pg"));
    let url = pg.url();
    restore_scenario(&w, &["--database-url", &url], "postgres").await;
}

async fn restore_scenario(w: &World, db: &[&str], kind: &str) {
    let mut server = w.server_with("127.0.0.1:0", "127.0.0.1:0", db);
    let (mqtt, http) = (server.mqtt.to_string(), server.http.to_string());
    let api = server.api();
    let _agent = w.agent(
        CAB,
        server.mqtt,
        &[
            "--fake-activity-per-sec",
            "60",
            "--fake-activity-limit",
            &(TOTAL - 1).to_string(),
        ],
    );
    wait_online(&api, CAB).await;

    // Backed up while the cabinet streams: part of its events are in the backup.
    eventually(Duration::from_secs(30), "some events stored", || async {
        api.device(CAB)
            .await
            .filter(|d| d["acked_seq"].as_u64() >= Some(100))
    })
    .await;
    let file = w.path("fleet.backup");
    let out = fleet_server(w, db, &["backup", "--to", &file.display().to_string()]);
    assert!(out.status.success(), "backup failed: {}", text(&out));
    assert!(
        text(&out).contains(&format!("{kind} database as of")),
        "{}",
        text(&out)
    );
    let listing = tar_names(&file);
    let db_file = if kind == "sqlite" {
        "fleet.db"
    } else {
        "fleet.pgdump"
    };
    for f in [
        "manifest.json",
        db_file,
        "secrets/master.key",
        "certs/ca.crt",
    ] {
        assert!(listing.iter().any(|n| n == f), "{f} not in {listing:?}");
    }

    // The fleet goes on; the cabinet deletes what the server receipts.
    wait_receipted(&api, CAB, TOTAL, Duration::from_secs(60)).await;

    // A restore while the server runs is refused, and changes nothing.
    let refused = fleet_server(w, db, &["restore", "--from", &file.display().to_string()]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("another fleet-server runs on the data dir"),
        "{}",
        text(&refused)
    );

    // A damaged backup is refused with what is wrong.
    let damaged = w.path("damaged.backup");
    let mut bytes = std::fs::read(&file).expect("backup");
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&damaged, bytes).expect("write");

    server.kill9();
    let out = fleet_server(
        w,
        db,
        &["restore", "--from", &damaged.display().to_string()],
    );
    assert!(!out.status.success(), "a damaged backup was restored");
    assert!(
        text(&out).contains("does not match its manifest")
            || text(&out).contains("not a readable backup"),
        "{}",
        text(&out)
    );

    let out = fleet_server(w, db, &["restore", "--from", &file.display().to_string()]);
    assert!(out.status.success(), "restore failed: {}", text(&out));
    // What it replaced is kept (the SQLite files renamed; PostgreSQL dumped beside the data).
    assert!(text(&out).contains("kept aside"), "{}", text(&out));

    // The server on the restored data: the cabinet's mark is the backup's.
    let server = w.server_with(&mqtt, &http, db);
    let api = server.api();
    let restored_mark = api.device(CAB).await.expect("device")["acked_seq"]
        .as_u64()
        .expect("mark");
    assert!(
        (100..TOTAL).contains(&restored_mark),
        "the backup should hold part of the stream, not {restored_mark} of {TOTAL}"
    );
    wait_online(&api, CAB).await;

    // The cabinet's next events: a remote open.
    let (s, cmd) = api
        .open(CAB, 1, json!({"reason": "after the restore"}))
        .await;
    assert_eq!(s, 202, "{cmd}");
    let done = api
        .wait_command(
            cmd["command_id"].as_str().expect("command id"),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(done["status"], "opened", "{done}");

    // Exactly what was lost, and why.
    let gaps = eventually(Duration::from_secs(20), "the gap recorded", || async {
        let (s, g) = api.get("/api/v1/system/event-gaps").await;
        assert_eq!(s, 200, "{g}");
        (!g["gaps"].as_array().is_none_or(Vec::is_empty)).then_some(g)
    })
    .await;
    assert_eq!(
        gaps["gaps"],
        json!([{
            "device_id": CAB,
            "first_seq": restored_mark + 1,
            "last_seq": TOTAL,
            "events": TOTAL - restored_mark,
            "detected_at": gaps["gaps"][0]["detected_at"],
            "reason": "restore",
        }]),
        "{gaps}"
    );
    assert!(
        gaps["last_restore"]["backup_taken_at"].as_i64() > Some(0),
        "{gaps}"
    );

    // Every later event flows: the open's door events are stored after the gap.
    eventually(
        Duration::from_secs(20),
        "events after the gap stored",
        || async {
            let events = api.events(CAB).await;
            events
                .iter()
                .any(|e| e["seq"].as_u64() > Some(TOTAL))
                .then_some(())
        },
    )
    .await;
    let events: Vec<u64> = api
        .events(CAB)
        .await
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert!(
        events.iter().all(|s| *s <= restored_mark || *s > TOTAL),
        "only the backup's events and the ones after the gap"
    );

    // One alarm for the fleet.
    let (s, alarms) = api.get("/api/v1/alarms?state=open").await;
    assert_eq!(s, 200, "{alarms}");
    let lost: Vec<&Value> = alarms["alarms"]
        .as_array()
        .expect("alarms")
        .iter()
        .filter(|a| a["kind"] == "events_lost")
        .collect();
    assert_eq!(lost.len(), 1, "{alarms}");
    let evidence = lost[0]["evidence"].as_str().unwrap_or_default();
    assert!(
        evidence.contains(&format!(
            "{} events of 1 cabinets were lost with the restore",
            TOTAL - restored_mark
        )),
        "{evidence}"
    );

    // The audit log archived while the server runs: the archive and the database's rest
    // verify as one chain.
    let archive = w.path("audit-1.jsonl");
    let out = fleet_server(
        w,
        db,
        &[
            "audit",
            "archive",
            "--older-than-days",
            "0",
            "--to",
            &archive.display().to_string(),
        ],
    );
    assert!(out.status.success(), "archive: {}", text(&out));
    let out = fleet_server(
        w,
        db,
        &[
            "audit",
            "verify",
            "--archive",
            &archive.display().to_string(),
        ],
    );
    assert!(out.status.success(), "verify: {}", text(&out));
    assert!(text(&out).contains("chain holds"), "{}", text(&out));
    let out = fleet_server(w, db, &["audit", "verify"]);
    assert!(
        text(&out).contains("are archived (not checked here"),
        "{}",
        text(&out)
    );
}

/// Codes issued after the backup live on: the restored server asks the cabinet what it used
/// and holds since the backup, moves the item whose use it missed, rebuilds the two it lost
/// (a drop-off already in its box, a pick-up waiting for staff) and the pick-up's code, never
/// issued again, opens the box once staff have loaded it.
#[tokio::test]
async fn codes_issued_after_a_backup_are_reconciled_not_reissued() {
    use crate::flows::{
        CAB, PHONE, STAFF_CARD, dropoff_at_hall, setup, wait_codes_synced, wait_state,
    };
    let w = World::new(&[CAB]);
    let mut server = w.server_with("127.0.0.1:0", "127.0.0.1:0", &[]);
    let (mqtt, http) = (server.mqtt.to_string(), server.http.to_string());
    let admin = server.api();
    let platform = setup(&admin).await;
    let agent = w.agent_ctl(CAB, server.mqtt, &["--fake-close-after-ms", "60000"]);
    wait_online(&admin, CAB).await;
    wait_codes_synced(&admin).await;
    let before = dropoff_at_hall(&platform, "GZ-BEFORE").await;
    wait_codes_synced(&admin).await;

    let file = w.path("fleet.backup");
    let out = fleet_server(&w, &[], &["backup", "--to", &file.display().to_string()]);
    assert!(out.status.success(), "backup failed: {}", text(&out));

    // After the backup: two more reservations, and two codes used at the cabinet.
    let after_d = dropoff_at_hall(&platform, "GZ-AFTER-D").await;
    let (s, after_p) = platform
        .post(
            "/api/v1/reservations",
            json!({"flow": "pickup", "case_number": "GZ-AFTER-P", "phone": PHONE, "site_id": "hall"}),
        )
        .await;
    assert_eq!(s, 201, "{after_p}");
    wait_codes_synced(&admin).await;
    let id = |r: &Value| r["reservation_id"].as_str().expect("id").to_owned();
    let code = |r: &Value| r["code"].as_str().expect("code").to_owned();
    let boxed = |r: &Value| r["box"].as_u64().expect("box");
    for r in [&before, &after_d] {
        let out = agent.send(&format!("code {}", code(r))).await;
        assert_eq!(out["outcome"], json!("opened"), "{out}");
        agent.send(&format!("close {}", boxed(r))).await;
        wait_state(&platform, &id(r), "in_box").await;
    }

    server.kill9();
    let out = fleet_server(&w, &[], &["restore", "--from", &file.display().to_string()]);
    assert!(out.status.success(), "restore failed: {}", text(&out));
    let server = w.server_with(&mqtt, &http, &[]);
    let admin = server.api();
    let (s, gone) = admin.get(&format!("/api/v1/items/{}", id(&after_d))).await;
    assert_eq!(s, 404, "the backup predates it: {gone}");

    // The cabinet answers the restored server's first set.
    wait_online(&admin, CAB).await;
    wait_state(&admin, &id(&before), "in_box").await;
    let d = wait_state(&admin, &id(&after_d), "in_box").await;
    assert_eq!(d["item"]["created_by"], json!("recovered"), "{d}");
    assert_eq!(d["item"]["box"], json!(boxed(&after_d)), "{d}");
    let history = d["history"].to_string();
    assert!(history.contains("nothing was issued again"), "{d}");
    wait_state(&admin, &id(&after_p), "awaiting_deposit").await;
    wait_codes_synced(&admin).await;

    // Staff load the pick-up; the citizen's code from before the restore opens it.
    let out = agent
        .send(&format!("staff {STAFF_CARD} {}", boxed(&after_p)))
        .await;
    assert_eq!(out["outcome"], json!("opened"), "{out}");
    agent.send(&format!("close {}", boxed(&after_p))).await;
    wait_state(&admin, &id(&after_p), "in_box").await;
    wait_codes_synced(&admin).await;
    let out = agent.send(&format!("code {}", code(&after_p))).await;
    assert_eq!(
        out,
        json!({"outcome": "opened", "box": boxed(&after_p), "status": "opened"})
    );
    wait_state(&admin, &id(&after_p), "picked_up").await;
}

/// The names in a tar file (as `tar tf` lists them).
fn tar_names(path: &std::path::Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("tf")
        .arg(path)
        .output()
        .expect("tar");
    assert!(out.status.success(), "tar tf: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

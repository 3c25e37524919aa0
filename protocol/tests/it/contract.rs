//! The AsyncAPI contract (`protocol/asyncapi.json`): current with the code, every wire
//! snapshot valid against it, and refusing what the decoder refuses.

use std::path::{Path, PathBuf};

use protocol::contract::{SCHEMAS, asyncapi};
use serde_json::{Value, json};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A validator for one message of the contract: its schema as a `$ref` into the whole
/// document, so references between schemas resolve as a vendor's tool would resolve them.
fn validator(doc: &Value, message: &str) -> jsonschema::Validator {
    let mut schema = doc.clone();
    schema["$ref"] = json!(format!("#{SCHEMAS}/{message}"));
    jsonschema::draft7::new(&schema)
        .unwrap_or_else(|e| panic!("the contract's schema of {message} does not compile: {e}"))
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let path = crate_dir().join("asyncapi.json");
    let generated = serde_json::to_string_pretty(&asyncapi()).expect("json") + "\n";
    if std::env::var_os("LOCKERFLEET_BLESS_CONTRACT").is_some() {
        std::fs::write(&path, &generated).expect("write asyncapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what the protocol crate generates; after changing a message, run \
         `LOCKERFLEET_BLESS_CONTRACT=1 cargo test -p protocol contract` and commit the file",
        path.display()
    );
}

/// Which message each wire snapshot shows. A new snapshot must be named here.
fn snapshot_message(name: &str) -> Option<&'static str> {
    Some(match name {
        "event_batch" | "keypad_events" => "EventBatch",
        "state_snapshot" => "StateSnapshot",
        "ack" => "CommandAck",
        "heartbeat_cabinet" | "heartbeat_printer" => "Heartbeat",
        "presence" => "Presence",
        "cert_request" => "CertRequest",
        "command" => "Command",
        "receipt" => "Receipt",
        "code_sync" => "CodeSync",
        "cert_issued" | "cert_refused" => "CertReply",
        "update_offer" | "update_chunk" | "update_unavailable" => "Update",
        "fetch_request" => "FetchRequest",
        "release_events" | "config_events" => "EventBatch",
        "config_sync" => "ConfigSync",
        "diagnose_logs" | "diagnose_doctor" => "DiagnosticsRequest",
        "diagnostics_logs" | "diagnostics_doctor" => "DiagnosticsReport",
        "topics" => return None,
        other => panic!("snapshot {other:?} is not mapped to a message of the contract"),
    })
}

/// The JSON body of an insta snapshot file (after its `---` header).
fn snapshot_body(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("snapshot");
    let body = text.splitn(3, "---\n").nth(2).expect("insta header");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_wire_snapshot_is_valid_against_the_contract() {
    let doc = asyncapi();
    let dir = crate_dir().join("tests/it/snapshots");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("snapshots") {
        let path = entry.expect("entry").path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("it__"))
            .and_then(|n| n.strip_suffix(".snap"))
        else {
            continue;
        };
        let Some(message) = snapshot_message(name) else {
            continue;
        };
        let payload = snapshot_body(&path);
        let errors: Vec<String> = validator(&doc, message)
            .iter_errors(&payload)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "snapshot {name} is not a valid {message}: {errors:#?}"
        );
        checked += 1;
    }
    assert!(checked >= 18, "only {checked} snapshots checked");
}

/// Payloads the agent or server would refuse (`protocol::decode`), which the contract must
/// refuse too: a vendor's validator catches them before a cabinet sends them.
#[test]
fn the_contract_refuses_what_decode_refuses() {
    let doc = asyncapi();
    let hex = "a".repeat(64);
    let cases: Vec<(&str, Value, Refuses)> = vec![
        (
            "EventBatch",
            json!({"v": 1, "base": 1, "events": [{"seq": 1, "ts": 0, "type": "door", "box": 0, "open": true}]}),
            decode_fails::<protocol::EventBatch>,
        ),
        (
            "EventBatch",
            json!({"v": 1, "base": 0, "events": [{"seq": 1, "ts": 0, "type": "door", "box": 1, "open": true}]}),
            decode_fails::<protocol::EventBatch>,
        ),
        (
            "EventBatch",
            json!({"v": 1, "base": 1, "events": []}),
            decode_fails::<protocol::EventBatch>,
        ),
        (
            "EventBatch",
            json!({"v": 2, "base": 1, "events": [{"seq": 1, "ts": 0, "type": "door", "box": 1, "open": true}]}),
            decode_fails::<protocol::EventBatch>,
        ),
        (
            "EventBatch",
            json!({"v": 1, "base": 1, "events": [{"seq": 1, "ts": 0, "type": "lost", "detail": "nul\u{0}here"}]}),
            decode_fails::<protocol::EventBatch>,
        ),
        (
            "EventBatch",
            json!({"v": 1, "base": 1, "events": [{"seq": 1, "ts": 0, "type": "command_result", "command_id": "a/b", "box": 1, "status": "opened"}]}),
            decode_fails::<protocol::EventBatch>,
        ),
        (
            "Heartbeat",
            json!({"v": 1, "ts": 0, "interval_s": 0, "profile": "locker", "uptime_s": 1,
                   "lock_bus": {"state": "ok"}, "power": "mains", "outbox_pending": 0}),
            decode_fails::<protocol::Heartbeat>,
        ),
        (
            "CodeSync",
            json!({"v": 1, "version": 1, "key": "not hex", "grants": [], "staff": []}),
            decode_fails::<protocol::CodeSync>,
        ),
        (
            "CodeSync",
            json!({"v": 1, "version": 1, "key": hex, "grants": [], "staff": [
                {"staff": "s1", "salt": "00", "hash": hex, "iterations": 0}]}),
            decode_fails::<protocol::CodeSync>,
        ),
        (
            "Command",
            json!({"v": 1, "command_id": "c1", "issued_at": 0, "expires_at": 1, "action": "open"}),
            decode_fails::<protocol::Command>,
        ),
        (
            "CertRequest",
            json!({"v": 1, "request_id": "has space", "csr": "x"}),
            decode_fails::<protocol::CertRequest>,
        ),
    ];
    for (message, payload, decoder_refuses) in cases {
        assert!(
            decoder_refuses(&payload),
            "test case is wrong: decode accepts {payload}"
        );
        assert!(
            !validator(&doc, message).is_valid(&payload),
            "the contract accepts a {message} the decoder refuses: {payload}"
        );
    }
    // And a valid one passes both, so the cases above fail for their one fault.
    let good = json!({"v": 1, "base": 1, "events": [{"seq": 1, "ts": 0, "type": "door", "box": 1, "open": true}]});
    assert!(!decode_fails::<protocol::EventBatch>(&good));
    assert!(validator(&doc, "EventBatch").is_valid(&good));
}

/// Whether the decoder refuses a payload.
type Refuses = fn(&Value) -> bool;

fn decode_fails<M: protocol::message::Message>(payload: &Value) -> bool {
    protocol::decode::<M>(payload.to_string().as_bytes()).is_err()
}

//! Contract tests of the wire format: snapshots of every message and topic, and property tests
//! that decoders reject bad input without panicking.

mod contract;

use proptest::prelude::*;
use protocol::{
    AckStatus, BoxNo, BoxState, Channel, CodeGrant, CodeSync, Command, CommandAck, CommandAction,
    CommandId, DeviceId, DeviceTopic, Event, EventBatch, EventBody, Heartbeat, ItemId, Presence,
    Receipt, RejectReason, StaffCredential, StaffId, StateSnapshot, code, decode, encode, topic,
};

fn b(n: u16) -> BoxNo {
    BoxNo::new(n).expect("box")
}

fn cmd_id() -> CommandId {
    CommandId::parse("7f9c2a51e0b44b1c9d3e5f60718293a4").expect("id")
}

fn pretty<M: protocol::message::Message>(m: &M) -> String {
    // Round-trip through the decoder first so a snapshot can never show a message the other
    // side would refuse.
    let bytes = encode(m);
    let back: M = decode(&bytes).expect("own encoding decodes");
    assert_eq!(encode(&back), bytes);
    // Pretty-printed from the message itself so the snapshot keeps the wire's field order.
    serde_json::to_string_pretty(m).expect("pretty")
}

#[test]
fn topics() {
    let id = DeviceId::parse("hall-a-cab-01").expect("id");
    let all: Vec<String> = Channel::ALL
        .iter()
        .map(|c| topic::device_topic(&id, *c))
        .chain(Channel::ALL.iter().map(|c| topic::all_devices_filter(*c)))
        .collect();
    insta::assert_snapshot!(all.join("\n"));
}

#[test]
fn event_batch() {
    let batch = EventBatch {
        v: 1,
        base: 41,
        events: vec![
            Event {
                seq: 41,
                ts: 1_764_288_000_000,
                body: EventBody::Started {
                    boxes: 24,
                    agent_version: "0.1.0".into(),
                },
            },
            Event {
                seq: 42,
                ts: 1_764_288_000_120,
                body: EventBody::Door {
                    box_no: b(3),
                    open: true,
                },
            },
            Event {
                seq: 43,
                ts: 1_764_288_004_870,
                body: EventBody::Occupancy {
                    box_no: b(3),
                    occupied: true,
                },
            },
            Event {
                seq: 44,
                ts: 1_764_288_005_100,
                body: EventBody::Lost {
                    detail: "outbox row unreadable: expected value at line 1 column 1".into(),
                },
            },
            Event {
                seq: 45,
                ts: 1_764_288_004_900,
                body: EventBody::CommandResult {
                    command_id: cmd_id(),
                    box_no: b(3),
                    status: AckStatus::Opened,
                    detail: None,
                },
            },
        ],
    };
    insta::assert_snapshot!(pretty(&batch));
}

#[test]
fn keypad_events() {
    let item = ItemId::parse("3b1e9f0c2d7a4e8b").expect("item");
    let staff = StaffId::parse("helper-07").expect("staff");
    let bodies = vec![
        EventBody::CodeUsed {
            item: item.clone(),
            box_no: b(5),
            status: AckStatus::Opened,
        },
        EventBody::CodeRejected {
            reason: RejectReason::Unknown,
            item: None,
        },
        EventBody::CodeRejected {
            reason: RejectReason::Used,
            item: Some(item),
        },
        EventBody::KeypadLocked {
            until: 1_764_288_900_000,
            failures: 5,
        },
        EventBody::StaffOpen {
            staff,
            box_no: b(5),
            status: AckStatus::Opened,
        },
        EventBody::StaffRejected {
            reason: RejectReason::Unknown,
        },
        EventBody::CodesApplied {
            version: 1_764_288_000_001,
            spent: vec![],
            dropped: vec![],
        },
        // After a server restore: a code of the set already used here, and a grant the set
        // left out (issued after the backup) that was used here too.
        EventBody::CodesApplied {
            version: 1_764_288_000_002,
            spent: vec![protocol::SpentCode {
                item: ItemId::parse("3b1e9f0c2d7a4e8b").expect("item"),
                box_no: b(5),
                used_at: 1_764_288_000_000,
            }],
            dropped: vec![protocol::DroppedGrant {
                grant: CodeGrant {
                    item: ItemId::parse("9c2d7a4e8b3b1e0f").expect("item"),
                    box_no: b(7),
                    not_before: 1_764_288_000_000,
                    not_after: 1_764_460_800_000,
                    tag: "f845be1d1dda6af23cea7c14a618fe8d5452dfbd8880a60e57f0cef6e89d8b5b".into(),
                    needs_deposit: false,
                    pickup: false,
                },
                used_at: Some(1_764_288_100_000),
                deposited: false,
            }],
        },
        EventBody::Fault {
            box_no: Some(b(5)),
            fault: protocol::FaultKind::ForcedOpen,
            active: true,
            evidence: "door opened with no unlock pulse in the preceding 3000 ms".into(),
        },
        EventBody::Fault {
            box_no: None,
            fault: protocol::FaultKind::OnBattery,
            active: false,
            evidence: String::new(),
        },
    ];
    let batch = EventBatch {
        v: 1,
        base: 50,
        events: bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Event {
                seq: 50 + i as u64,
                ts: 1_764_288_000_000 + i as i64,
                body,
            })
            .collect(),
    };
    insta::assert_snapshot!(pretty(&batch));
}

#[test]
fn code_sync() {
    let device = DeviceId::parse("hall-a-cab-01").expect("id");
    let item = ItemId::parse("3b1e9f0c2d7a4e8b").expect("item");
    let key = code::CabinetKey::derive(b"example master secret", &device);
    let binding = code::Binding {
        device: &device,
        item: &item,
        box_no: b(5),
        not_before: 1_764_288_000_000,
        not_after: 1_764_460_800_000,
    };
    let salt = "00112233445566778899aabbccddeeff";
    let sync = CodeSync {
        v: 1,
        version: 1_764_288_000_001,
        key: key.to_hex(),
        grants: vec![CodeGrant {
            item: item.clone(),
            box_no: b(5),
            not_before: binding.not_before,
            not_after: binding.not_after,
            tag: code::code_tag(&key, &binding, "48151623"),
            needs_deposit: true,
            pickup: true,
        }],
        staff: vec![StaffCredential {
            staff: StaffId::parse("helper-07").expect("staff"),
            salt: salt.into(),
            hash: code::staff_hash(
                "card-0042",
                &[
                    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc,
                    0xdd, 0xee, 0xff,
                ],
                1000,
            ),
            iterations: 1000,
        }],
        report_since: None,
    };
    // Pinned tags: a change to the derivation or the message layout would strand every
    // grant already on a cabinet, so it must show up here.
    insta::assert_snapshot!(pretty(&sync));
    assert!(code::verify_code(
        &key,
        &binding,
        "48151623",
        &sync.grants[0].tag
    ));
    assert!(code::verify_staff(
        "card-0042",
        salt,
        1000,
        &sync.staff[0].hash
    ));
    let mut bad = sync.clone();
    bad.key = "zz".into();
    assert!(decode::<CodeSync>(&encode(&bad)).is_err());
}

#[test]
fn state_snapshot() {
    let s = StateSnapshot {
        v: 1,
        seq: 44,
        ts: 1_764_288_005_000,
        boxes: vec![
            BoxState {
                box_no: b(1),
                door_open: false,
                occupied: Some(false),
            },
            BoxState {
                box_no: b(2),
                door_open: true,
                occupied: None,
            },
        ],
    };
    insta::assert_snapshot!(pretty(&s));
}

#[test]
fn command_and_ack() {
    let c = Command {
        v: 1,
        command_id: cmd_id(),
        issued_at: 1_764_288_000_000,
        expires_at: 1_764_288_030_000,
        action: CommandAction::Open { box_no: b(3) },
    };
    insta::assert_snapshot!("command", pretty(&c));
    let a = CommandAck {
        v: 1,
        command_id: cmd_id(),
        status: AckStatus::Jammed,
        ts: 1_764_288_001_000,
        detail: Some("door sensor did not change within 1500 ms of the unlock pulse".into()),
    };
    insta::assert_snapshot!("ack", pretty(&a));
}

#[test]
fn central_configuration() {
    let settings = protocol::settings::Settings {
        door_open_alarm_secs: Some(300),
        keypad_lockout_secs: Some(600),
        ..Default::default()
    };
    let sync = protocol::ConfigSync {
        v: 1,
        version: settings.version(),
        settings: settings.clone(),
    };
    insta::assert_snapshot!("config_sync", pretty(&sync));
    let events = EventBatch {
        v: 1,
        base: 80,
        events: vec![
            Event {
                seq: 80,
                ts: 1_764_288_100_000,
                body: EventBody::Config {
                    version: settings.version(),
                    state: protocol::ConfigProgress::Applied,
                    settings: Some(settings),
                    reason: None,
                },
            },
            Event {
                seq: 81,
                ts: 1_764_288_100_500,
                body: EventBody::Config {
                    version: "0b3c8e1d5a7f9e21".into(),
                    state: protocol::ConfigProgress::WaitingRestart,
                    settings: None,
                    reason: Some(
                        "heartbeat_secs take effect after a restart: restarting when the cabinet is idle"
                            .into(),
                    ),
                },
            },
        ],
    };
    insta::assert_snapshot!("config_events", pretty(&events));
}

#[test]
fn release_delivery() {
    // A fixed key so the signature in the snapshot never changes.
    let seed = [5u8; 32];
    let public = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
    let pk = ring::signature::KeyPair::public_key(&public)
        .as_ref()
        .to_vec();
    let key = ring::signature::Ed25519KeyPair::from_seed_and_public_key(&seed, &pk).expect("key");
    let manifest = protocol::release::Manifest {
        v: 1,
        version: protocol::release::Version::parse("0.2.0").expect("version"),
        target: "x86_64-unknown-linux-gnu".into(),
        size: 5,
        sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".into(),
        min_server_version: protocol::release::Version::parse("0.1.0").expect("version"),
        notes: "keypad timeout fixed".into(),
    };
    let offer = protocol::Update {
        v: 1,
        body: protocol::UpdateBody::Offer {
            release: protocol::release::SignedRelease::sign(&manifest, &key),
            rollback: false,
            install: true,
            window: Some(protocol::release::MaintenanceWindow {
                from: "02:00".into(),
                to: "05:00".into(),
                utc_offset_minutes: 480,
            }),
        },
    };
    insta::assert_snapshot!("update_offer", pretty(&offer));
    let fetch = protocol::FetchRequest {
        v: 1,
        target: "x86_64-unknown-linux-gnu".into(),
        version: "0.2.0".into(),
        offset: 0,
        len: 65_536,
    };
    insta::assert_snapshot!("fetch_request", pretty(&fetch));
    let chunk = protocol::Update::chunk("x86_64-unknown-linux-gnu", "0.2.0", 0, 5, b"hello");
    insta::assert_snapshot!("update_chunk", pretty(&chunk));
    let gone = protocol::Update {
        v: 1,
        body: protocol::UpdateBody::Unavailable {
            target: "x86_64-unknown-linux-gnu".into(),
            version: "0.2.0".into(),
            reason: "withdrawn: crashes on boards without a keypad".into(),
        },
    };
    insta::assert_snapshot!("update_unavailable", pretty(&gone));
    let events = EventBatch {
        v: 1,
        base: 60,
        events: vec![
            Event {
                seq: 60,
                ts: 1_764_288_100_000,
                body: EventBody::Release {
                    version: "0.2.0".into(),
                    state: protocol::ReleaseProgress::Downloaded,
                    reason: None,
                },
            },
            Event {
                seq: 61,
                ts: 1_764_288_100_500,
                body: EventBody::Release {
                    version: "0.1.9".into(),
                    state: protocol::ReleaseProgress::Refused,
                    reason: Some("downgrade".into()),
                },
            },
            Event {
                seq: 62,
                ts: 1_764_291_000_000,
                body: EventBody::Release {
                    version: "0.2.0".into(),
                    state: protocol::ReleaseProgress::RolledBack,
                    reason: Some("exited with status 3 before confirming".into()),
                },
            },
        ],
    };
    insta::assert_snapshot!("release_events", pretty(&events));
    assert_eq!(
        protocol::Update::chunk_bytes("aGVsbG8=").expect("base64"),
        b"hello"
    );
    assert!(protocol::Update::chunk_bytes("not base64!").is_err());
    for p in [
        protocol::ReleaseProgress::Downloading,
        protocol::ReleaseProgress::Downloaded,
        protocol::ReleaseProgress::Refused,
    ] {
        assert_eq!(serde_json::to_value(p).expect("json"), p.as_str());
    }
}

#[test]
fn receipt_and_presence() {
    insta::assert_snapshot!(
        "receipt",
        pretty(&Receipt {
            v: 1,
            up_to: 44,
            at: Some(1764288005300)
        })
    );
    let p = Presence {
        v: 1,
        online: false,
        ts: 1_764_288_009_000,
        reason: "keep-alive timeout".into(),
    };
    insta::assert_snapshot!("presence", pretty(&p));
}

#[test]
fn certificate_renewal() {
    use protocol::{CertReply, CertRequest};
    let req = CertRequest {
        v: 1,
        request_id: "r-1764288000000".into(),
        csr: "-----BEGIN CERTIFICATE REQUEST-----\nMIIB...\n-----END CERTIFICATE REQUEST-----\n"
            .into(),
    };
    insta::assert_snapshot!("cert_request", pretty(&req));
    let issued = CertReply {
        v: 1,
        request_id: req.request_id.clone(),
        cert: Some("-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n".into()),
        not_after: Some(1_827_360_000_000),
        error: None,
    };
    insta::assert_snapshot!("cert_issued", pretty(&issued));
    let refused = CertReply {
        v: 1,
        request_id: req.request_id.clone(),
        cert: None,
        not_after: None,
        error: Some("this server does not hold the CA key".into()),
    };
    insta::assert_snapshot!("cert_refused", pretty(&refused));
    for bad in [
        r#"{"v":1,"request_id":"","csr":"x"}"#,
        r#"{"v":1,"request_id":"a/b","csr":"x"}"#,
    ] {
        assert!(
            protocol::decode::<CertRequest>(bad.as_bytes()).is_err(),
            "{bad}"
        );
    }
    let both = r#"{"v":1,"request_id":"r","cert":"x","error":"y"}"#;
    assert!(protocol::decode::<CertReply>(both.as_bytes()).is_err());
    let neither = r#"{"v":1,"request_id":"r"}"#;
    assert!(protocol::decode::<CertReply>(neither.as_bytes()).is_err());
}

#[test]
fn heartbeats() {
    use protocol::{BusHealth, Level, Power, Profile, StationStatus};
    let cabinet = Heartbeat {
        v: 1,
        ts: 1_764_288_010_000,
        interval_s: 30,
        profile: Profile::Locker,
        uptime_s: 86_400,
        lock_bus: BusHealth::Unreachable {
            detail: "board 1 did not answer within 200 ms".into(),
        },
        power: Power::Battery,
        outbox_pending: 12,
        station: None,
        clock_offset_ms: Some(-7_200_000),
    };
    insta::assert_snapshot!("heartbeat_cabinet", pretty(&cabinet));
    let printer = Heartbeat {
        profile: Profile::Printer,
        lock_bus: BusHealth::Absent,
        power: Power::Mains,
        outbox_pending: 0,
        station: Some(StationStatus {
            paper: Level::Low,
            toner: Level::Ok,
            paper_jam: true,
            needs_service: false,
        }),
        ..cabinet
    };
    insta::assert_snapshot!("heartbeat_printer", pretty(&printer));
    let err = decode::<Heartbeat>(
        br#"{"v":1,"ts":0,"interval_s":0,"profile":"kiosk","uptime_s":1,"lock_bus":{"state":"absent"},"power":"mains","outbox_pending":0}"#,
    )
    .expect_err("interval 0");
    assert!(err.to_string().contains("interval_s"), "{err}");
}

#[test]
fn version_and_limits_are_enforced() {
    // Receipts of servers from before `at` still decode: the agent keeps its own clock.
    let old = decode::<Receipt>(br#"{"v":1,"up_to":7}"#).expect("a receipt without at");
    assert_eq!((old.up_to, old.at), (7, None));
    let err = decode::<Receipt>(br#"{"v":2,"up_to":1}"#).expect_err("v2 refused");
    assert!(err.to_string().contains("version 2"), "{err}");
    let err = decode::<EventBatch>(br#"{"v":1,"base":1,"events":[]}"#).expect_err("empty");
    assert!(err.to_string().contains("empty"), "{err}");
    let err = decode::<EventBatch>(
        br#"{"v":1,"base":5,"events":[{"seq":4,"ts":0,"type":"door","box":1,"open":true}]}"#,
    )
    .expect_err("seq below base");
    assert!(err.to_string().contains("base"), "{err}");
    let err = decode::<EventBatch>(
        br#"{"v":1,"base":1,"events":[{"seq":1,"ts":0,"type":"door","box":0,"open":true}]}"#,
    )
    .expect_err("box 0");
    assert!(err.to_string().contains("box"), "{err}");
    // A newer agent's event type or value: kept unreadable, so the stream behind it moves on.
    let newer = decode::<EventBatch>(
        br#"{"v":1,"base":1,"events":[{"seq":1,"ts":0,"type":"teleport","to":"mars"},
            {"seq":2,"ts":0,"type":"fault","fault":"clock_skew","active":true,"evidence":"x"},
            {"seq":3,"ts":0,"type":"door","box":1,"open":true}]}"#,
    )
    .expect("a newer agent's batch decodes");
    let kinds: Vec<&str> = newer.events.iter().map(|e| e.body.kind()).collect();
    assert_eq!(kinds, ["unreadable", "unreadable", "door"]);
    match &newer.events[0].body {
        EventBody::Unreadable { raw, reason } => {
            assert_eq!(raw["to"], "mars");
            assert!(reason.contains("teleport"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        decode::<EventBatch>(&encode(&newer)).expect("round trip"),
        newer
    );
    // An event's own fields: missing or of the wrong type, refused with their name.
    for (event, field) in [
        (r#"{"ts":0,"type":"door","box":1,"open":true}"#, "seq"),
        (
            r#"{"seq":"1","ts":0,"type":"door","box":1,"open":true}"#,
            "seq",
        ),
        (
            r#"{"seq":-1,"ts":0,"type":"door","box":1,"open":true}"#,
            "seq",
        ),
        (r#"{"seq":1,"type":"door","box":1,"open":true}"#, "ts"),
        (
            r#"{"seq":1,"ts":1.5,"type":"door","box":1,"open":true}"#,
            "ts",
        ),
    ] {
        let batch = format!(r#"{{"v":1,"base":1,"events":[{event}]}}"#);
        let err = decode::<EventBatch>(batch.as_bytes()).expect_err(event);
        assert!(
            err.to_string().contains(&format!("`{field}`")),
            "{event}: {err}"
        );
    }
    let err = decode::<EventBatch>(br#"{"v":1,"base":1,"events":[7]}"#).expect_err("no object");
    assert!(
        err.to_string().contains("an event (a JSON object)"),
        "{err}"
    );
    for twice in [r#""seq":1,"seq":2"#, r#""seq":1,"ts":0,"ts":5"#] {
        let batch = format!(
            r#"{{"v":1,"base":1,"events":[{{{twice},"ts":0,"type":"door","box":1,"open":true}}]}}"#
        );
        let err = decode::<EventBatch>(batch.as_bytes()).expect_err(twice);
        assert!(
            err.to_string().contains("duplicate field"),
            "{twice}: {err}"
        );
    }
    // A known type in a broken shape is a bug, not a newer version: refused.
    let err = decode::<EventBatch>(
        br#"{"v":1,"base":1,"events":[{"seq":1,"ts":0,"type":"door","open":true}]}"#,
    )
    .expect_err("door without a box");
    assert!(err.to_string().contains("box"), "{err}");
    // Valid JSON that PostgreSQL would refuse to store: refused at the edge.
    let err = decode::<EventBatch>(
        br#"{"v":1,"base":1,"events":[{"seq":1,"ts":0,"type":"started","boxes":2,"agent_version":"1\u0000"}]}"#,
    )
    .expect_err("NUL");
    assert!(err.to_string().contains("control"), "{err}");
    let err = decode::<CommandAck>(
        br#"{"v":1,"command_id":"c1","status":"failed","ts":0,"detail":"a\u0000b"}"#,
    )
    .expect_err("NUL");
    assert!(err.to_string().contains("control"), "{err}");
}

proptest! {
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<EventBatch>(&bytes);
        let _ = decode::<CommandAck>(&bytes);
        let _ = decode::<StateSnapshot>(&bytes);
        let _ = decode::<Command>(&bytes);
        let _ = decode::<Receipt>(&bytes);
        let _ = decode::<CodeSync>(&bytes);
        let _ = decode::<Heartbeat>(&bytes);
    }

    #[test]
    fn topic_parse_never_panics(s in "\\PC{0,80}") {
        let _ = DeviceTopic::parse(&s);
    }

    #[test]
    fn valid_topics_round_trip(id in "[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}", c in 0usize..8) {
        let device = DeviceId::parse(&id).expect("generated ids are valid");
        let channel = Channel::ALL[c];
        let t = topic::device_topic(&device, channel);
        prop_assert_eq!(DeviceTopic::parse(&t), Ok(DeviceTopic::new(device.clone(), channel)));
        prop_assert_eq!(topic::check_device_publish(&device, &t).is_ok(), channel.device_publishes());
        prop_assert_eq!(
            topic::check_device_subscribe(&device, &t).is_ok(),
            matches!(channel, Channel::Commands | Channel::Receipts | Channel::Codes)
        );
    }

    #[test]
    fn other_devices_are_always_denied(a in "[a-z0-9]{1,8}", bb in "[a-z0-9]{1,8}", c in 0usize..8) {
        prop_assume!(a != bb);
        let da = DeviceId::parse(&a).expect("id");
        let db = DeviceId::parse(&bb).expect("id");
        let t = topic::device_topic(&db, Channel::ALL[c]);
        prop_assert!(topic::check_device_publish(&da, &t).is_err());
        prop_assert!(topic::check_device_subscribe(&da, &t).is_err());
    }

    #[test]
    fn event_batches_round_trip(seqs in proptest::collection::btree_set(1u64..1_000_000, 1..50), open in any::<bool>()) {
        let base = *seqs.iter().next().expect("non-empty");
        let batch = EventBatch {
            v: 1,
            base,
            events: seqs.iter().map(|s| Event { seq: *s, ts: *s as i64, body: EventBody::Door { box_no: b(1), open } }).collect(),
        };
        let back: EventBatch = decode(&encode(&batch)).expect("decodes");
        prop_assert_eq!(back, batch);
    }
}

#[test]
fn diagnostics() {
    let logs = protocol::DiagnosticsRequest {
        v: 1,
        request_id: "diag-3f2a9c".into(),
        expires_at: 1_764_288_700_000,
        ask: protocol::DiagnosticsAsk::Logs { lines: 200 },
    };
    insta::assert_snapshot!("diagnose_logs", pretty(&logs));
    let doctor = protocol::DiagnosticsRequest {
        ask: protocol::DiagnosticsAsk::Doctor,
        ..logs
    };
    insta::assert_snapshot!("diagnose_doctor", pretty(&doctor));
    let report = protocol::DiagnosticsReport {
        v: 1,
        request_id: "diag-3f2a9c".into(),
        at: 1_764_288_100_900,
        body: protocol::DiagnosticsBody::Logs {
            lines: vec![protocol::message::LogLine {
                at: 1_764_288_100_200,
                level: "WARN".into(),
                target: "device_agent::faults".into(),
                text: "box left open box_no=3 secs=120".into(),
            }],
            dropped: 0,
            level: "info,rumqttc=warn,sqlx=warn".into(),
        },
    };
    insta::assert_snapshot!("diagnostics_logs", pretty(&report));
    let report = protocol::DiagnosticsReport {
        body: protocol::DiagnosticsBody::Doctor {
            checks: vec![protocol::DoctorCheck {
                name: "lock board".into(),
                ok: false,
                detail: "boxes 1-12: no answer from unit 1 within 200 ms".into(),
            }],
        },
        ..report
    };
    insta::assert_snapshot!("diagnostics_doctor", pretty(&report));
}

/// Found by the device_messages fuzz target: a number with many digits (in a field an agent
/// never sends) decoded to a float that printed and parsed back as a neighbouring one.
/// serde_json's float_roundtrip parses every number to the closest f64, so a message decodes,
/// encodes and decodes to itself.
#[test]
fn a_long_number_survives_decode_encode_decode() {
    let data = include_bytes!("fuzz-found/long-float-number.json");
    let m = protocol::message::decode::<protocol::message::EventBatch>(data).expect("decodes");
    let again =
        protocol::message::decode::<protocol::message::EventBatch>(&protocol::message::encode(&m))
            .expect("re-decodes");
    assert_eq!(m, again);
}

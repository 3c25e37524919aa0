//! Agent releases in storage, on SQLite and PostgreSQL: registered once, the binary stored
//! and read back in chunks, withdrawn, every step audited.

use fleet_server::store::{IngestBatch, Registered, ReleaseState, Store};
use protocol::release::{Manifest, SignedRelease, Version};
use protocol::{DeviceId, Event, EventBody, ReleaseProgress};
use ring::signature::{Ed25519KeyPair, KeyPair};

fn key() -> Ed25519KeyPair {
    let seed = [9u8; 32];
    let public = Ed25519KeyPair::from_seed_unchecked(&seed).expect("seed");
    let pk = public.public_key().as_ref().to_vec();
    Ed25519KeyPair::from_seed_and_public_key(&seed, &pk).expect("pair")
}

fn release(version: &str, binary: &[u8]) -> (Manifest, SignedRelease) {
    let m = Manifest {
        v: 1,
        version: Version::parse(version).expect("version"),
        target: "x86_64-unknown-linux-gnu".into(),
        size: binary.len() as u64,
        sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, binary)),
        min_server_version: Version::parse("0.1.0").expect("version"),
        notes: "test".into(),
    };
    let signed = SignedRelease::sign(&m, &key());
    (m, signed)
}

on_both!(
    a_release_is_registered_once_uploaded_read_in_chunks_and_withdrawn,
    a_devices_release_events_set_its_release_state_newest_wins_and_are_audited,
);

async fn a_release_is_registered_once_uploaded_read_in_chunks_and_withdrawn(store: Store) {
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let (m, signed) = release("0.2.0", &binary);
    let v = m.version;
    let Registered::New(row) = store
        .register_release(&m, &signed, "admin", 1_000)
        .await
        .expect("register")
    else {
        panic!("a new release must be new");
    };
    assert_eq!(row.state(), ReleaseState::AwaitingBinary);
    assert!(matches!(
        store
            .register_release(&m, &signed, "admin", 2_000)
            .await
            .expect("again"),
        Registered::Exists(_)
    ));
    let target = m.target.as_str();
    assert_eq!(
        store.release_chunk(target, v, 0, 10).await.expect("chunk"),
        None
    );
    assert_eq!(store.release_binary(target, v).await.expect("binary"), None);

    let row = store
        .store_release_binary(target, v, &binary, "admin", 3_000)
        .await
        .expect("binary")
        .expect("release");
    assert_eq!(row.state(), ReleaseState::Available);
    assert_eq!(row.signed, signed, "the signed text is kept exactly");
    // Read back in chunks, the last one short: the bytes are the ones stored.
    let mut back = Vec::new();
    let mut offset = 0u64;
    while let Some(chunk) = store
        .release_chunk(target, v, offset, 16_384)
        .await
        .expect("chunk")
        .filter(|c| !c.is_empty())
    {
        offset += chunk.len() as u64;
        back.extend(chunk);
    }
    assert_eq!(back, binary);
    assert_eq!(
        store.release_binary(target, v).await.expect("whole"),
        Some(binary.clone()),
        "the whole binary, as the delivery task caches it"
    );

    let (older, older_signed) = release("0.1.5", b"old");
    store
        .register_release(&older, &older_signed, "admin", 4_000)
        .await
        .expect("register");
    let listed: Vec<String> = store
        .releases()
        .await
        .expect("list")
        .iter()
        .map(|r| r.manifest.version.to_string())
        .collect();
    assert_eq!(listed, ["0.2.0", "0.1.5"], "newest version first");

    let row = store
        .withdraw_release(
            target,
            v,
            "admin",
            "crashes on boards without a keypad",
            5_000,
        )
        .await
        .expect("withdraw")
        .expect("release");
    assert_eq!(row.state(), ReleaseState::Withdrawn);
    assert_eq!(
        store
            .withdraw_release(
                target,
                Version::parse("9.9.9").expect("v"),
                "admin",
                "x",
                6_000
            )
            .await
            .expect("withdraw"),
        None
    );
    let actions: Vec<String> = store
        .audit(None, None, 100)
        .await
        .expect("audit")
        .into_iter()
        .map(|a| a.action)
        .collect();
    for a in [
        "release_registered",
        "release_uploaded",
        "release_withdrawn",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} not audited: {actions:?}"
        );
    }
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "release_registered")
            .count(),
        2,
        "the refused second registration is not audited"
    );
}

async fn a_devices_release_events_set_its_release_state_newest_wins_and_are_audited(store: Store) {
    let d = DeviceId::parse("cab-r1").expect("id");
    let ev = |seq: u64, ts: i64, version: &str, state, reason: Option<&str>| Event {
        seq,
        ts,
        body: EventBody::Release {
            version: version.into(),
            state,
            reason: reason.map(str::to_owned),
        },
    };
    // Out of order in one batch: the newest by the device's clock wins.
    let batch = IngestBatch {
        received_at: 1_000,
        events: [
            ev(1, 100, "0.2.0", ReleaseProgress::Downloading, None),
            ev(
                2,
                300,
                "0.1.0",
                ReleaseProgress::Refused,
                Some("downgrade: 0.1.0 is not newer"),
            ),
            ev(3, 200, "0.2.0", ReleaseProgress::Downloaded, None),
        ]
        .into_iter()
        .map(|e| (d.clone(), e))
        .collect(),
        marks: [(d.clone(), 3)].into_iter().collect(),
        ..IngestBatch::default()
    };
    assert_eq!(store.ingest(&batch).await.expect("ingest"), 3);
    let row = store.device(&d).await.expect("device").expect("row").device;
    assert_eq!(
        row.release,
        Some((
            "0.1.0".into(),
            "refused".into(),
            Some("downgrade: 0.1.0 is not newer".into()),
            300
        ))
    );
    let audit = store.audit(Some(&d), None, 100).await.expect("audit");
    let refused = audit
        .iter()
        .find(|a| a.action == "release_refused")
        .expect("refusal audited");
    assert_eq!(
        refused.reason.as_deref(),
        Some("downgrade: 0.1.0 is not newer")
    );
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action.starts_with("release_"))
            .count(),
        3
    );
}

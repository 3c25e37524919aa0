//! Agent releases in storage, on SQLite and PostgreSQL: registered once, the binary stored
//! and read back in chunks, withdrawn, every step audited.

use fleet_server::store::{Registered, ReleaseState, Store};
use protocol::release::{Manifest, SignedRelease, Version};
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

on_both!(a_release_is_registered_once_uploaded_read_in_chunks_and_withdrawn);

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

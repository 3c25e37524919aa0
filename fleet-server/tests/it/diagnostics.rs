//! Remote diagnostics in storage, on SQLite and PostgreSQL: a request is audited, a second of
//! the same kind while one is pending is the same request, due requests are re-sent, the first
//! answer counts, a missed deadline expires, and only the newest requests of a device stay.

use fleet_server::store::{DiagnosticState, Store};
use protocol::{DiagnosticsAsk, DiagnosticsBody, DoctorCheck};

on_both!(diagnostics_are_audited_answered_once_expired_and_pruned,);

async fn diagnostics_are_audited_answered_once_expired_and_pruned(store: Store) {
    let logs = DiagnosticsAsk::Logs { lines: 50 };
    let (first, new) = store
        .request_diagnostics("cab-1", logs, "ops", 1_000, 61_000)
        .await
        .expect("request");
    assert!(new && first.state == DiagnosticState::Pending && first.ask == logs);
    let (again, new) = store
        .request_diagnostics("cab-1", logs, "ops", 2_000, 62_000)
        .await
        .expect("again");
    assert!(!new, "the pending request is returned, not a second one");
    assert_eq!(again.id, first.id);
    let (doctor, new) = store
        .request_diagnostics("cab-1", DiagnosticsAsk::Doctor, "ops", 3_000, 4_000)
        .await
        .expect("doctor");
    assert!(new);

    // Due: never sent; after sending, only once the resend time passed.
    let due = store.diagnostics_due(3_000, 0).await.expect("due");
    assert_eq!(due.len(), 2);
    store
        .mark_diagnostics_sent(&first.id, 3_000)
        .await
        .expect("sent");
    let due = store.diagnostics_due(3_500, 2_000).await.expect("due");
    assert_eq!(due.iter().map(|d| &d.id).collect::<Vec<_>>(), [&doctor.id]);
    assert_eq!(
        store
            .diagnostics_due(3_500, 3_001)
            .await
            .expect("due")
            .len(),
        2
    );

    // The first answer counts; another device cannot answer it.
    let body = DiagnosticsBody::Doctor {
        checks: vec![DoctorCheck {
            name: "disk".into(),
            ok: true,
            detail: "柜体磁盘 900 MiB free".into(),
        }],
    };
    assert!(
        !store
            .answer_diagnostics("cab-2", &first.id, 1, &body, 3_600)
            .await
            .expect("answer")
    );
    assert!(
        store
            .answer_diagnostics("cab-1", &first.id, 3_590, &body, 3_600)
            .await
            .expect("answer")
    );
    assert!(
        !store
            .answer_diagnostics("cab-1", &first.id, 3_700, &body, 3_700)
            .await
            .expect("twice")
    );
    let read = store
        .diagnostic("cab-1", &first.id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(read.state, DiagnosticState::Answered);
    assert_eq!(read.answered_at, Some(3_600));
    assert_eq!(read.report, Some((3_590, body)));

    // The doctor request's deadline passes.
    assert_eq!(store.expire_diagnostics(5_000).await.expect("expire"), 1);
    let read = store.diagnostic("cab-1", &doctor.id).await.expect("read");
    assert_eq!(read.map(|r| r.state), Some(DiagnosticState::Expired));
    assert!(
        store
            .diagnostics_due(5_000, 5_000)
            .await
            .expect("due")
            .is_empty()
    );

    // Every request is audited; only the newest 20 of a device stay.
    for i in 0..25 {
        store
            .request_diagnostics(
                "cab-1",
                DiagnosticsAsk::Logs { lines: 1 + i },
                "ops",
                10_000 + i64::from(i),
                20_000,
            )
            .await
            .expect("request");
    }
    let all = store.diagnostics_of("cab-1").await.expect("list");
    assert_eq!(all.len(), 20);
    assert_eq!(
        all[0].ask,
        DiagnosticsAsk::Logs { lines: 25 },
        "newest first"
    );
    let audit = store.audit(None, None, 100).await.expect("audit");
    let requested = audit
        .iter()
        .filter(|a| a.action == "diagnostics_requested")
        .count();
    assert_eq!(requested, 27, "2 + 25 new requests, not the repeated one");
}

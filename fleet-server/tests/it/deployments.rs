//! Deployments in storage, on SQLite and PostgreSQL: targets picked by device, site, site kind
//! and label; waves and device states stored and read back; a finished deployment never changes
//! again, a halted one only to cancelled; every change audited.

use domain::deployments::{DeploymentState, DeviceRollout, Thresholds};
use domain::labels::Labels;
use fleet_server::store::{DeploymentRow, IngestBatch, Selector, Store};
use protocol::{DeviceId, Event, EventBody};

use crate::flows::hall;

fn dev(s: &str) -> DeviceId {
    DeviceId::parse(s).expect("id")
}

async fn connected(store: &Store, ids: &[&str]) {
    let batch = IngestBatch {
        received_at: 1_000,
        events: ids
            .iter()
            .map(|i| {
                (
                    dev(i),
                    Event {
                        seq: 1,
                        ts: 1_000,
                        body: EventBody::Started {
                            boxes: 4,
                            agent_version: "0.1.0".into(),
                        },
                    },
                )
            })
            .collect(),
        marks: ids.iter().map(|i| (dev(i), 1)).collect(),
        ..IngestBatch::default()
    };
    store.ingest(&batch).await.expect("ingest");
}

fn row(id: &str) -> DeploymentRow {
    DeploymentRow {
        id: id.into(),
        target: "x86_64-unknown-linux-gnu".into(),
        version: "0.2.0".into(),
        rollback: false,
        window: None,
        waves: "1,100%".into(),
        thresholds: Thresholds::default(),
        soak_secs: 0,
        manual: false,
        deadline_at: 10_000_000,
        state: DeploymentState::Running,
        reason: None,
        wave: 0,
        wave_started_at: Some(2_000),
        created_at: 2_000,
        created_by: "admin".into(),
        updated_at: 2_000,
    }
}

on_both!(deployments_pick_targets_keep_states_and_only_move_forward,);

async fn deployments_pick_targets_keep_states_and_only_move_forward(store: Store) {
    connected(&store, &["cab-1", "cab-2", "kiosk-9"]).await;
    hall(&store, "cab-1").await;
    let all = store
        .deployment_targets(&Selector {
            profiles: vec!["locker".into()],
            ..Default::default()
        })
        .await
        .expect("targets");
    assert_eq!(all, [dev("cab-1"), dev("cab-2"), dev("kiosk-9")]);
    let at_hall = store
        .deployment_targets(&Selector {
            sites: vec!["hall".into()],
            ..Default::default()
        })
        .await
        .expect("targets");
    assert_eq!(at_hall, [dev("cab-1")]);
    let by_kind = store
        .deployment_targets(&Selector {
            site_kinds: vec!["service_hall".into()],
            ..Default::default()
        })
        .await
        .expect("targets");
    assert_eq!(by_kind, [dev("cab-1")]);
    let listed = store
        .deployment_targets(&Selector {
            devices: vec!["cab-2".into(), "nobody".into()],
            ..Default::default()
        })
        .await
        .expect("targets");
    assert_eq!(listed, [dev("cab-2")]);
    let board: Labels = [("board".to_string(), "modbus-v2".to_string())].into();
    store
        .set_labels(&dev("kiosk-9"), &board, "admin", 1_500)
        .await
        .expect("label");
    store
        .set_labels(
            &dev("cab-2"),
            &[("district".to_string(), "福田区".to_string())].into(),
            "admin",
            1_500,
        )
        .await
        .expect("label");
    let labelled = store
        .deployment_targets(&Selector {
            labels: board.clone(),
            ..Default::default()
        })
        .await
        .expect("targets");
    assert_eq!(labelled, [dev("kiosk-9")]);
    assert_eq!(store.labels(&dev("kiosk-9")).await.expect("labels"), board);
    let listed = store.devices().await.expect("devices");
    assert_eq!(
        listed[2].labels, board,
        "the list carries each device's labels"
    );
    assert!(listed[0].labels.is_empty());
    // Replacing is whole, audited with the set before.
    let before = store
        .set_labels(&dev("kiosk-9"), &Labels::new(), "admin", 1_600)
        .await
        .expect("unlabel");
    assert_eq!(before, board);
    assert!(
        store
            .labels(&dev("kiosk-9"))
            .await
            .expect("labels")
            .is_empty()
    );

    let d = row("dep-1");
    store
        .create_deployment(
            &d,
            &[vec![dev("cab-1")], vec![dev("cab-2"), dev("kiosk-9")]],
        )
        .await
        .expect("create");
    assert_eq!(
        store.deployment("dep-1").await.expect("read"),
        Some(d.clone())
    );
    let mut r = store.rollouts("dep-1").await.expect("rollouts");
    assert_eq!(
        r.iter()
            .map(|r| (r.device.to_string(), r.wave, r.state))
            .collect::<Vec<_>>(),
        [
            ("cab-1".into(), 0, DeviceRollout::Pending),
            ("cab-2".into(), 1, DeviceRollout::Pending),
            ("kiosk-9".into(), 1, DeviceRollout::Pending),
        ]
    );
    r[0].state = DeviceRollout::Offered;
    r[0].offered_at = Some(3_000);
    r[0].from_version = Some("0.1.0".into());
    r[0].updated_at = 3_000;
    store.set_rollout("dep-1", &r[0]).await.expect("set");
    assert_eq!(store.rollouts("dep-1").await.expect("read")[0], r[0]);
    let now = store.devices_now(&[dev("cab-1")]).await.expect("now");
    assert_eq!(now[&dev("cab-1")].agent_version.as_deref(), Some("0.1.0"));

    // Halted: only cancelling changes it; cancelled: nothing does. A halt is told to the
    // platform's webhook.
    let store = store.with_webhooks(true);
    assert!(
        store
            .set_deployment(
                "dep-1",
                DeploymentState::Halted,
                0,
                Some("wave 1 failed"),
                "deployment_halted",
                "server",
                4_000
            )
            .await
            .expect("halt")
    );
    assert!(
        !store
            .set_deployment(
                "dep-1",
                DeploymentState::Running,
                0,
                None,
                "deployment_resumed",
                "admin",
                5_000
            )
            .await
            .expect("resume")
    );
    assert!(
        store
            .set_deployment(
                "dep-1",
                DeploymentState::Cancelled,
                0,
                None,
                "deployment_cancelled",
                "admin",
                6_000
            )
            .await
            .expect("cancel")
    );
    assert!(
        !store
            .set_deployment(
                "dep-1",
                DeploymentState::Running,
                1,
                None,
                "deployment_resumed",
                "admin",
                7_000
            )
            .await
            .expect("resume")
    );
    let d = store.deployment("dep-1").await.expect("read").expect("row");
    assert_eq!(d.state, DeploymentState::Cancelled);
    let due = store.due_notifications(i64::MAX, 100).await.expect("due");
    let hooks: Vec<_> = due.iter().filter(|n| n.channel == "webhook").collect();
    assert_eq!(hooks.len(), 1, "{due:?}");
    assert_eq!(hooks[0].event, "deployment_halted");
    let body: serde_json::Value =
        serde_json::from_str(hooks[0].body.as_deref().unwrap_or("{}")).expect("json");
    assert_eq!(body["reason"], "wave 1 failed");
    assert_eq!(body["version"], "0.2.0");
    assert!(store.active_deployments().await.expect("active").is_empty());
    let audit = store.audit(None, None, 100).await.expect("audit");
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    for a in [
        "deployment_created",
        "deployment_halted",
        "deployment_cancelled",
    ] {
        assert!(actions.contains(&a), "{a}: {actions:?}");
    }
    assert!(
        !actions.contains(&"deployment_resumed"),
        "refused changes are not audited"
    );
}

//! Every schema version that landed migrates to the current one: each fixture under
//! `tests/fixtures/schema/vN` was written by version N's own code (`make.sh` there), on SQLite
//! and on PostgreSQL; here it is opened by today's store, which migrates it, and every row is
//! still there and reads back through the typed repositories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fleet_server::store::{AlarmFilter, SCHEMA_VERSION, Store};
use protocol::DeviceId;
use sqlx::{AnyPool, Row};

fn fixtures() -> Vec<(i64, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema");
    let mut out: Vec<(i64, PathBuf)> = std::fs::read_dir(&root)
        .expect("tests/fixtures/schema")
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.strip_prefix('v')?.parse().ok()?;
            Some((v, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Every version below the current one has its fixture: a commit that moves the schema on
/// carries the previous version's (`make.sh URL N` at version N makes it from HEAD).
#[test]
fn every_past_schema_version_has_a_fixture() {
    let have: Vec<i64> = fixtures().into_iter().map(|(v, _)| v).collect();
    let want: Vec<i64> = (1..SCHEMA_VERSION).collect();
    assert_eq!(
        have, want,
        "fixtures under tests/fixtures/schema: run tests/fixtures/schema/make.sh for the \
         missing versions (before moving SCHEMA_VERSION on, for the current one)"
    );
}

async fn tables(pool: &AnyPool, postgres: bool) -> BTreeMap<String, i64> {
    let sql = if postgres {
        "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    };
    let names: Vec<String> = sqlx::query(sql)
        .fetch_all(pool)
        .await
        .expect("list tables")
        .iter()
        .map(|r| r.get::<String, _>("name"))
        .collect();
    let mut out = BTreeMap::new();
    for name in names {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM {name}"
        )))
        .fetch_one(pool)
        .await
        .expect("count")
        .get("n");
        out.insert(name, n);
    }
    out
}

async fn version(pool: &AnyPool) -> i64 {
    sqlx::query("SELECT MAX(version) AS v FROM schema_version")
        .fetch_one(pool)
        .await
        .expect("schema_version")
        .get("v")
}

/// Opens the fixture's database (at `url`, loaded already) as today's server would and checks
/// it against what it held before.
async fn migrate_and_check(v: i64, url: &str, postgres: bool) {
    sqlx::any::install_default_drivers();
    let raw = AnyPool::connect(url).await.expect("open fixture");
    assert_eq!(version(&raw).await, v, "fixture v{v} is at its version");
    let before = tables(&raw, postgres).await;
    assert!(
        before.get("devices").copied().unwrap_or(0) > 0
            && before.get("events").copied().unwrap_or(0) > 0,
        "fixture v{v} holds devices and events: {before:?}"
    );
    raw.close().await;

    let store = Store::connect(url)
        .await
        .unwrap_or_else(|e| panic!("v{v} does not migrate: {e}"));
    store.close().await;
    // Twice: a migrated database opens again without change.
    let store = Store::connect(url).await.expect("reopen");

    let raw = AnyPool::connect(url).await.expect("reopen raw");
    assert_eq!(version(&raw).await, SCHEMA_VERSION, "v{v} migrated");
    let after = tables(&raw, postgres).await;
    raw.close().await;
    for (table, n) in &before {
        if table == "schema_version" {
            continue;
        }
        assert_eq!(
            after.get(table),
            Some(n),
            "v{v}: table {table} held {n} rows before the migration"
        );
    }
    let count = |t: &str| after.get(t).copied().unwrap_or(0) as usize;

    // Every row reads back through the repositories (types, enums, JSON as today's code expects).
    let devices = store.devices().await.expect("devices");
    assert_eq!(devices.len(), count("devices"), "v{v} devices");
    let (mut events, mut presence) = (0, 0);
    for d in &devices {
        let id = DeviceId::parse(d.id.as_str()).expect("device id");
        events += store.events(&id, 0, i64::MAX).await.expect("events").len();
        presence += store
            .presence_log(&id, i64::MAX)
            .await
            .expect("presence")
            .len();
    }
    assert_eq!(events, count("events"), "v{v} events");
    assert_eq!(presence, count("presence_log"), "v{v} presence log");
    let items = store
        .items(None, None, None, i64::MAX)
        .await
        .expect("items");
    assert_eq!(items.len(), count("items"), "v{v} items");
    let alarms = store
        .alarms(&AlarmFilter {
            limit: i64::MAX,
            ..AlarmFilter::default()
        })
        .await
        .expect("alarms");
    assert_eq!(alarms.len(), count("alarms"), "v{v} alarms");
    assert_eq!(
        store.cabinets(None).await.expect("cabinets").len(),
        count("cabinets"),
        "v{v} cabinets"
    );
    assert_eq!(
        store.sites().await.expect("sites").len(),
        count("sites"),
        "v{v} sites"
    );
    assert_eq!(
        store.staff().await.expect("staff").len(),
        count("staff"),
        "v{v} staff"
    );
    assert_eq!(
        store.tokens().await.expect("tokens").len(),
        count("api_tokens"),
        "v{v} tokens"
    );
    let verdict = store.verify_audit().await.expect("audit");
    assert!(
        verdict.broken.is_none(),
        "v{v}: the audit chain breaks after migration: {:?}",
        verdict.broken
    );
    assert_eq!(verdict.rows as usize, count("audit"), "v{v} audit rows");
    let now = fleet_server::now_ms();
    store
        .overview(now, now - 3_600_000)
        .await
        .expect("overview");
    store.close().await;
}

#[tokio::test]
async fn every_past_schema_version_migrates_on_sqlite() {
    for (v, dir) in fixtures() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let db = tmp.path().join("fleet.db");
        std::fs::copy(dir.join("fleet.db"), &db).expect("copy fixture");
        migrate_and_check(v, &format!("sqlite://{}", db.display()), false).await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run .ci/run, or set LOCKERFLEET_TEST_POSTGRES_URL and pass --include-ignored"]
async fn every_past_schema_version_migrates_on_postgres() {
    for (v, dir) in fixtures() {
        let dump = std::fs::read_to_string(dir.join("postgres.sql")).expect("postgres.sql");
        crate::store::with_empty_postgres(|url| async move {
            // The dump sets the session's search_path to nothing: its own connection.
            let loader = AnyPool::connect(&url).await.expect("connect");
            sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
                .execute(&loader)
                .await
                .unwrap_or_else(|e| panic!("loading v{v}'s dump: {e}"));
            loader.close().await;
            migrate_and_check(v, &url, true).await;
        })
        .await;
    }
}

/// A backup reads an older database as it is (its manifest says its version) and the restore
/// migrates it: `fleet-server backup` never changes the database it copies.
#[tokio::test]
async fn an_older_database_is_backed_up_as_it_is_and_migrated_by_the_restore() {
    for (v, dir) in fixtures() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let running = tmp.path().join("running");
        std::fs::create_dir_all(&running).expect("dir");
        let db = running.join("fleet.db");
        std::fs::copy(dir.join("fleet.db"), &db).expect("copy fixture");
        let cfg = fleet_server::ServerConfig {
            data_dir: running.clone(),
            ..Default::default()
        };
        let file = tmp.path().join("old.backup");
        let manifest = fleet_server::backup::backup(&cfg, &file)
            .await
            .unwrap_or_else(|e| panic!("backing up v{v}: {e:#}"));
        assert_eq!(manifest.schema_version, v, "v{v}'s manifest");
        sqlx::any::install_default_drivers();
        let raw = AnyPool::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open");
        assert_eq!(version(&raw).await, v, "v{v} backed up unchanged");
        raw.close().await;

        let restored = tmp.path().join("restored");
        let cfg = fleet_server::ServerConfig {
            data_dir: restored.clone(),
            ..Default::default()
        };
        fleet_server::backup::restore(&cfg, &file)
            .await
            .unwrap_or_else(|e| panic!("restoring v{v}: {e:#}"));
        let raw = AnyPool::connect(&format!("sqlite://{}", restored.join("fleet.db").display()))
            .await
            .expect("open restored");
        assert_eq!(
            version(&raw).await,
            SCHEMA_VERSION,
            "v{v} migrated by the restore"
        );
        raw.close().await;
    }
}

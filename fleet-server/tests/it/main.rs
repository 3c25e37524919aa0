//! Integration tests of the fleet server crate: storage on SQLite and PostgreSQL.

/// Runs each named `async fn(Store)` as two tests: on SQLite, and on PostgreSQL (ignored unless
/// asked for, so a run without a database says so instead of passing silently).
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { crate::store::with_sqlite(super::$name).await } )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[ignore = "needs PostgreSQL: run .ci/run, or set LOCKERFLEET_TEST_POSTGRES_URL and pass --include-ignored"]
                async fn $name() { crate::store::with_postgres(super::$name).await }
            )*
        }
    };
}

mod alarms;
mod architecture;
mod backfill;
mod deployments;
mod diagnostics;
mod fixtures;
mod flows;
mod releases;
mod retention;
mod sms;
mod store;
mod units;
mod usage;

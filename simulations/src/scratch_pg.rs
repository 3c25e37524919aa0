//! Throwaway PostgreSQL databases for benchmarks: each run starts on an empty one, so a
//! second run against the same server measures the same work as the first.

use anyhow::Context;

/// Whether `url` names a PostgreSQL server (and not a SQLite file).
pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A new empty database `name` on the server of `base`; its URL.
pub(crate) async fn fresh(base: &str, name: &str) -> anyhow::Result<String> {
    remove(base, name).await?;
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(base)
        .await
        .with_context(|| format!("connecting to {base}"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    let i = base
        .rfind('/')
        .filter(|i| *i > "postgres://".len())
        .context(
            "the PostgreSQL URL must end in /DBNAME (e.g. postgres://user@host:5432/postgres)",
        )?;
    Ok(format!("{}/{name}", &base[..i]))
}

/// Drops database `name` on the server of `base`, if it exists.
pub(crate) async fn remove(base: &str, name: &str) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(base)
        .await
        .with_context(|| format!("connecting to {base}"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    admin.close().await;
    Ok(())
}

/// The database a benchmark runs on: for a PostgreSQL URL, a new empty database `name` on
/// that server (what the URL names is only used to create it); SQLite and none as given.
pub(crate) async fn for_bench(url: Option<String>, name: &str) -> anyhow::Result<Option<String>> {
    match url {
        Some(base) if is_postgres(&base) => Ok(Some(fresh(&base, name).await?)),
        other => Ok(other),
    }
}

/// Drops what [`for_bench`] created for `url`.
pub(crate) async fn after_bench(url: Option<&str>, name: &str) -> anyhow::Result<()> {
    match url {
        Some(base) if is_postgres(base) => remove(base, name).await,
        _ => Ok(()),
    }
}

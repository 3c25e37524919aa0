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
    with_database(base, name)
}

/// `base` with its database name replaced by `name`, its query (`?sslmode=…`) kept.
fn with_database(base: &str, name: &str) -> anyhow::Result<String> {
    let (url, query) = match base.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (base, None),
    };
    let authority = url.find("://").map(|i| i + 3).unwrap_or(0);
    let slash = url[authority..]
        .find('/')
        .map(|i| i + authority)
        .context("the PostgreSQL URL must name a database (postgres://user@host:5432/postgres)")?;
    let mut out = format!("{}/{name}", &url[..slash]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
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

/// Drops what [`for_bench`] created for `url`; a failure is reported, not the run's result.
pub(crate) async fn after_bench(url: Option<&str>, name: &str) -> anyhow::Result<()> {
    if let Some(base) = url.filter(|u| is_postgres(u))
        && let Err(e) = remove(base, name).await
    {
        eprintln!("dropping the benchmark's database {name} failed (drop it by hand): {e:#}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_and_the_query_kept() {
        let url = |u: &str| with_database(u, "scratch").map_err(|e| e.to_string());
        assert_eq!(
            url("postgres://u@h:5432/postgres").as_deref(),
            Ok("postgres://u@h:5432/scratch")
        );
        assert_eq!(
            url("postgres://u@h/db?sslmode=require").as_deref(),
            Ok("postgres://u@h/scratch?sslmode=require")
        );
        assert_eq!(
            url("postgresql://u@h/db?host=/run/postgresql").as_deref(),
            Ok("postgresql://u@h/scratch?host=/run/postgresql")
        );
        assert!(url("postgresql://host").is_err(), "no database named");
    }
}

//! PostgreSQL with a standby (issue 24): the database URL may name several hosts, as libpq's
//! `postgres://user@host1:5432,host2:5432/db` does (`pg_autoctl show uri` prints one), and the
//! store writes only to the one that is primary, following it when a standby is promoted.
//! sqlx understands one host per URL, so the choice is made here, as libpq's
//! `target_session_attrs=read-write` would: each host asked `pg_is_in_recovery()`.

use std::time::Duration;

use sqlx::Connection;

use super::StoreError;
use super::db_url::redact;

/// How long one host may take to answer whether it is the primary.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The single-host URLs a database URL stands for, in its order. A URL with one host is
/// returned as it is. `target_session_attrs` is dropped: it is what this module does, and
/// sqlx would only warn that it does not know it.
pub(crate) fn hosts(url: &str) -> Result<Vec<String>, StoreError> {
    let bad = |why: &str| {
        StoreError::Config(format!(
            "database_url {:?}: {why}; write postgres://USER@HOST:PORT,HOST:PORT/DB",
            redact(url)
        ))
    };
    let Some(parts) = super::db_url::Parts::of(url) else {
        return Err(bad("no scheme"));
    };
    if let Some(why) = parts.ambiguity() {
        return Err(bad(why));
    }
    if !parts.hosts.contains(',') {
        return Ok(vec![url.to_owned()]);
    }
    let tail = drop_param(parts.tail, "target_session_attrs");
    parts
        .hosts
        .split(',')
        .map(|host| {
            let host = host.trim();
            if host.is_empty() {
                return Err(bad("an empty host in the list"));
            }
            Ok(parts.rebuilt(parts.userinfo, host, &tail))
        })
        .collect()
}

/// `tail` (path and query) without the query parameter `name`.
fn drop_param(tail: &str, name: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some(name))
        .collect();
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

/// Whether the server behind `url` accepts writes (is not a standby in recovery).
pub(crate) async fn is_primary(url: &str) -> bool {
    let probe = async {
        let mut conn = sqlx::AnyConnection::connect(url).await?;
        let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(!standby)
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, probe).await,
        Ok(Ok(true))
    )
}

/// The first of `hosts` that is primary now, if any.
pub(crate) async fn find(hosts: &[String]) -> Option<String> {
    for url in hosts {
        if is_primary(url).await {
            return Some(url.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_list_becomes_one_url_per_host() {
        assert_eq!(
            hosts("postgres://lf:pw@a:5432,b:5433/fleet?target_session_attrs=read-write&sslmode=prefer")
                .expect("parsed"),
            [
                "postgres://lf:pw@a:5432/fleet?sslmode=prefer",
                "postgres://lf:pw@b:5433/fleet?sslmode=prefer"
            ]
        );
        assert_eq!(
            hosts("postgres://127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=read-write")
                .expect("parsed"),
            ["postgres://127.0.0.1:1/db", "postgres://127.0.0.1:2/db"]
        );
        // One host: untouched.
        let one = "postgres://u@h:5432/db?target_session_attrs=read-write";
        assert_eq!(hosts(one).expect("parsed"), [one]);
        assert_eq!(hosts("sqlite://x.db").expect("parsed"), ["sqlite://x.db"]);
    }

    #[test]
    fn a_broken_list_is_refused_without_the_password() {
        let e = hosts("postgres://u:secret@a:1,,b:2/db").expect_err("empty host");
        let said = e.to_string();
        assert!(
            said.contains("empty host") && !said.contains("secret"),
            "{said}"
        );
        assert!(hosts("a:1,b:2/db").is_err());
        // A password with an unescaped '/': refused with what to escape, and not shown.
        let said = hosts("postgres://u:ab/cd@a:1,b:2/db")
            .expect_err("ambiguous")
            .to_string();
        assert!(said.contains("%2F") && !said.contains("ab/cd"), "{said}");
    }
}

//! A database URL's parts before its path — scheme, user, password, host list — read in one
//! place for everything that handles them: log lines (the password hidden), `pg_dump` and
//! `pg_restore` (the password passed apart from the URL), and several hosts (one URL each).
//!
//! The user-info ends at the authority's last `@`: a password may hold an unescaped `@`,
//! while an `@` after the first `/` or `?` (a path, a query option) is not user-info.

/// `scheme://[user[:password]@]hosts[/path][?query]`, as written (nothing decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts<'a> {
    pub(crate) scheme: &'a str,
    /// What stands before the `@`, password included; `None` without an `@`.
    pub(crate) userinfo: Option<&'a str>,
    /// One host or a comma-separated list, each with its port.
    pub(crate) hosts: &'a str,
    /// The path and query from the first `/` or `?` on, or "".
    pub(crate) tail: &'a str,
}

impl<'a> Parts<'a> {
    /// The URL's parts, or `None` when it has no `scheme://` (a bare SQLite path).
    pub(crate) fn of(url: &'a str) -> Option<Parts<'a>> {
        let (scheme, rest) = url.split_once("://")?;
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        Some(Parts {
            scheme,
            userinfo,
            hosts,
            tail,
        })
    }

    /// The user and, when given, the password (as written).
    pub(crate) fn credentials(&self) -> Option<(&'a str, Option<&'a str>)> {
        let userinfo = self.userinfo?;
        Some(match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        })
    }

    /// The URL again without its password.
    pub(crate) fn without_password(&self) -> String {
        let Parts {
            scheme,
            hosts,
            tail,
            ..
        } = self;
        match self.credentials() {
            Some((user, _)) => format!("{scheme}://{user}@{hosts}{tail}"),
            None => format!("{scheme}://{hosts}{tail}"),
        }
    }
}

/// A database URL fit for a log line or an error: the password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(parts) = Parts::of(url) else {
        return url.to_owned();
    };
    match parts.credentials() {
        Some((user, Some(_))) => format!(
            "{}://{user}:***@{}{}",
            parts.scheme, parts.hosts, parts.tail
        ),
        _ => url.to_owned(),
    }
}

/// `postgres://user:secret@host/db` as `postgres://user@host/db` and the (percent-decoded)
/// password, for tools that take the password apart (`PGPASSWORD`), never on a command line.
pub(crate) fn split_password(url: &str) -> (String, Option<String>) {
    let Some(parts) = Parts::of(url) else {
        return (url.to_owned(), None);
    };
    match parts.credentials() {
        Some((_, Some(password))) => (
            parts.without_password(),
            Some(
                percent_encoding::percent_decode_str(password)
                    .decode_utf8_lossy()
                    .into_owned(),
            ),
        ),
        _ => (url.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parts_of_urls_as_written() {
        let p = Parts::of("postgres://lf:s@cret@h1:5432,h2:5433/db?options=a@b").expect("url");
        assert_eq!(p.scheme, "postgres");
        assert_eq!(p.userinfo, Some("lf:s@cret"));
        assert_eq!(p.hosts, "h1:5432,h2:5433");
        assert_eq!(p.tail, "/db?options=a@b");
        assert_eq!(p.credentials(), Some(("lf", Some("s@cret"))));
        let p = Parts::of("postgres://h/db?user=a@b").expect("url");
        assert_eq!((p.userinfo, p.hosts), (None, "h"));
        assert_eq!(Parts::of("fleet.db"), None);
    }

    #[test]
    fn redacting_hides_the_password_only() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        // An `@` in the query is not user-info: nothing to hide, nothing cut.
        assert_eq!(redact("postgres://h/db?a=x@y"), "postgres://h/db?a=x@y");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(redact("sqlite:fleet.db"), "sqlite:fleet.db");
    }

    #[test]
    fn the_password_goes_apart_decoded() {
        assert_eq!(
            split_password("postgres://lf:s%40cret@db:5432/lockerfleet"),
            (
                "postgres://lf@db:5432/lockerfleet".to_owned(),
                Some("s@cret".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://lf@h1:5432,h2:5432/lf"),
            ("postgres://lf@h1:5432,h2:5432/lf".to_owned(), None)
        );
    }

    proptest! {
        /// Whatever the password holds, no log line shows it, and the URL without it still
        /// names the same user, hosts and database.
        #[test]
        fn no_password_survives(
            user in "[a-z][a-z0-9_]{0,8}",
            password in "[^/?#]{1,20}",
            hosts in "[a-z0-9.]{1,10}(:[0-9]{1,5})?(,[a-z0-9.]{1,10}(:[0-9]{1,5})?){0,2}",
            tail in "(/[a-z_]{1,10})?(\\?[a-z_]{1,8}=[a-z@:]{0,8})?",
        ) {
            let url = format!("postgres://{user}:{password}@{hosts}{tail}");
            let shown = redact(&url);
            prop_assert_eq!(&shown, &format!("postgres://{user}:***@{hosts}{tail}"));
            let (bare, apart) = split_password(&url);
            prop_assert_eq!(bare, format!("postgres://{user}@{hosts}{tail}"));
            prop_assert!(apart.is_some());
        }
    }
}

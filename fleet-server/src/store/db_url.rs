//! A database URL's parts before its path — scheme, user, password, host list — read in one
//! place for everything that handles them: log lines (the password hidden), `pg_dump` and
//! `pg_restore` (the password passed apart from the URL), and several hosts (one URL each).
//!
//! The user-info ends at the authority's last `@`: a password may hold an unescaped `@`. An
//! `@` after the first `/` or `?` is ambiguous — a password holding an unescaped `/` or `?`
//! (`openssl rand -base64` makes them), or an `@` in the database name or an option — and
//! sqlx and libpq read it as the latter, so such a password would reach a log line unhidden:
//! such URLs are refused with what to escape ([`Parts::ambiguity`]), and hidden whole in logs.

/// What a URL with an `@` after its host must change, said to whoever wrote it.
pub(crate) const AMBIGUOUS: &str = "an '@' comes after the host: percent-encode a '/' or '?' \
     in the password (%2F, %3F), or an '@' in the database name or options (%40)";

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

    /// Why the URL cannot be read unambiguously ([`AMBIGUOUS`]), if it cannot.
    pub(crate) fn ambiguity(&self) -> Option<&'static str> {
        self.tail.contains('@').then_some(AMBIGUOUS)
    }

    /// A URL of this scheme with `userinfo` (if any), `hosts` and `tail`.
    pub(crate) fn rebuilt(&self, userinfo: Option<&str>, hosts: &str, tail: &str) -> String {
        match userinfo {
            Some(u) => format!("{}://{u}@{hosts}{tail}", self.scheme),
            None => format!("{}://{hosts}{tail}", self.scheme),
        }
    }
}

/// A database URL fit for a log line or an error: the password replaced by `***`; of a URL
/// whose user-info cannot be told apart ([`Parts::ambiguity`]), all before its last `@`.
pub fn redact(url: &str) -> String {
    let Some(parts) = Parts::of(url) else {
        return url.to_owned();
    };
    if parts.ambiguity().is_some()
        && let Some((_, after)) = url.rsplit_once('@')
    {
        return format!("{}://***@{after}", parts.scheme);
    }
    match parts.credentials() {
        Some((user, Some(_))) => {
            parts.rebuilt(Some(&format!("{user}:***")), parts.hosts, parts.tail)
        }
        _ => url.to_owned(),
    }
}

/// `postgres://user:secret@host/db` as `postgres://user@host/db` and the (percent-decoded)
/// password, for tools that take the password apart (`PGPASSWORD`), never on a command line;
/// an error ([`AMBIGUOUS`]) where the password cannot be told apart.
pub(crate) fn split_password(url: &str) -> Result<(String, Option<String>), &'static str> {
    let Some(parts) = Parts::of(url) else {
        return Ok((url.to_owned(), None));
    };
    if let Some(why) = parts.ambiguity() {
        return Err(why);
    }
    Ok(match parts.credentials() {
        Some((user, Some(password))) => (
            parts.rebuilt(Some(user), parts.hosts, parts.tail),
            Some(
                percent_encoding::percent_decode_str(password)
                    .decode_utf8_lossy()
                    .into_owned(),
            ),
        ),
        _ => (url.to_owned(), None),
    })
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
        let ambiguity = |url| Parts::of(url).and_then(|p| p.ambiguity());
        assert_eq!(ambiguity("postgres://h/db?user=a@b"), Some(AMBIGUOUS));
        assert_eq!(ambiguity("postgres://lf:ab?cd@db/lf"), Some(AMBIGUOUS));
        assert_eq!(ambiguity("postgres://lf:s@cret@db/lf?x=1"), None);
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
        // An `@` after the host: a password with a '/' or an option with an '@'? Hidden whole.
        assert_eq!(redact("postgres://lf:ab/cd@db/lf"), "postgres://***@db/lf");
        assert_eq!(redact("postgres://h/db?a=x@y"), "postgres://***@y");
        assert_eq!(
            redact("postgres://lf:a%2Fb@db/lf"),
            "postgres://lf:***@db/lf"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(redact("sqlite:fleet.db"), "sqlite:fleet.db");
    }

    #[test]
    fn the_password_goes_apart_decoded() {
        assert_eq!(
            split_password("postgres://lf:s%40cret@db:5432/lockerfleet"),
            Ok((
                "postgres://lf@db:5432/lockerfleet".to_owned(),
                Some("s@cret".to_owned())
            ))
        );
        assert_eq!(
            split_password("postgres://lf@h1:5432,h2:5432/lf"),
            Ok(("postgres://lf@h1:5432,h2:5432/lf".to_owned(), None))
        );
        // Never a password left in a URL for a command line.
        assert_eq!(split_password("postgres://lf:ab/cd@db/lf"), Err(AMBIGUOUS));
    }

    proptest! {
        /// Whatever the password holds, no log line shows it; the URL without it still names
        /// the same user, hosts and database, or is refused where the password cannot be told
        /// apart (a '/' or '?' in it).
        #[test]
        fn no_password_survives(
            user in "[a-z][a-z0-9_]{0,8}",
            password in "[^#]{1,20}",
            hosts in "[a-z0-9.]{1,10}(:[0-9]{1,5})?(,[a-z0-9.]{1,10}(:[0-9]{1,5})?){0,2}",
            tail in "(/[a-z_]{1,10})?(\\?[a-z_]{1,8}=[a-z@:]{0,8})?",
        ) {
            let url = format!("postgres://{user}:{password}@{hosts}{tail}");
            let shown = redact(&url);
            prop_assert!(!shown.contains(&format!(":{password}@")), "{shown}");
            if password.contains(['/', '?']) || tail.contains('@') {
                // All before the last '@' hidden: that '@' is after every one of the password's.
                let after = url.rsplit_once('@').map(|(_, a)| a).unwrap_or_default();
                prop_assert_eq!(&shown, &format!("postgres://***@{after}"));
                prop_assert_eq!(split_password(&url), Err(AMBIGUOUS));
            } else {
                prop_assert_eq!(&shown, &format!("postgres://{user}:***@{hosts}{tail}"));
                let (bare, apart) = split_password(&url).expect("unambiguous");
                prop_assert_eq!(bare, format!("postgres://{user}@{hosts}{tail}"));
                prop_assert!(apart.is_some());
            }
        }
    }
}

//! Database URLs as errors, logs and `Debug` may show them: the password
//! replaced by `***`. Always compiled, so configuration code can redact
//! without linking a driver.

use std::fmt;

/// A PostgreSQL URL with its password hidden when shown: what errors and
/// logs may print.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl(String);

impl RedactedUrl {
    /// Hides the password (and any `password=` query parameter) of `url`.
    pub fn new(url: &str) -> RedactedUrl {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let mut shown = match base.split_once("://") {
            Some((scheme, rest)) => {
                let (authority, path) = match rest.find('/') {
                    Some(i) => rest.split_at(i),
                    None => (rest, ""),
                };
                let authority = match authority.rsplit_once('@') {
                    Some((userinfo, host)) => match userinfo.split_once(':') {
                        Some((user, _)) => format!("{user}:***@{host}"),
                        None => format!("{userinfo}@{host}"),
                    },
                    None => authority.to_owned(),
                };
                format!("{scheme}://{authority}{path}")
            }
            None => "<not a postgres:// url>".to_owned(),
        };
        if let Some(query) = query {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            shown.push('?');
            shown.push_str(&params.join("&"));
        }
        RedactedUrl(shown)
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::RedactedUrl;

    #[test]
    fn the_password_is_hidden_wherever_it_is_written() {
        for (url, shown) in [
            (
                "postgres://sp:hunter2@db.example:5432/events",
                "postgres://sp:***@db.example:5432/events",
            ),
            ("postgres://sp@db/events", "postgres://sp@db/events"),
            (
                "postgresql://sp:p%40ss@db/events?sslmode=require&password=hunter2",
                "postgresql://sp:***@db/events?sslmode=require&password=***",
            ),
            ("postgres://sp:a@b@db/x", "postgres://sp:***@db/x"),
            ("hunter2", "<not a postgres:// url>"),
        ] {
            let r = RedactedUrl::new(url);
            assert_eq!(r.to_string(), shown);
            assert!(!format!("{r:?}").contains("hunter2"));
        }
    }
}

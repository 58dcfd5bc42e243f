//! Names that appear in commands: store names, principal slugs, secret
//! paths and uris (SPEC §3, §6). Each type only holds a valid value, and
//! holds it inline when it is 24 bytes or shorter (`CompactString`): the
//! control plane keeps several per secret (ADR 0032).

use std::fmt;
use std::str::FromStr;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Longest secret path, in bytes.
pub const MAX_SECRET_PATH_BYTES: usize = 512;

/// Why a name was refused; each message says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error(
        "`{0}` is not a valid {1}: use 1 to 63 lower-case letters, digits and `-`, not starting or ending with `-`"
    )]
    NotALabel(String, &'static str),
    #[error("secret path is empty")]
    EmptyPath,
    #[error("secret path is {0} bytes; the limit is {MAX_SECRET_PATH_BYTES}")]
    PathTooLong(usize),
    #[error(
        "secret path segment `{0}` is not allowed: segments are letters, digits, `.`, `_`, `-`, and neither empty, `.` nor `..`"
    )]
    BadSegment(String),
    #[error(
        "`{0}` is not a secret uri: write `<store>://<path>` or just `<path>` for the default store"
    )]
    BadUri(String),
}

/// A DNS label: 1–63 of `[a-z0-9-]`, not starting or ending with `-`.
fn check_label(s: &str, what: &'static str) -> Result<(), InvalidName> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidName::NotALabel(s.to_owned(), what))
    }
}

macro_rules! label_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(CompactString);

        impl $name {
            /// Parses the name, refusing anything but a DNS label.
            pub fn parse(s: impl Into<String>) -> Result<Self, InvalidName> {
                let s = s.into();
                check_label(&s, $what)?;
                Ok($name(CompactString::from(s)))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(s: String) -> Result<Self, InvalidName> {
                $name::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0.into_string()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

label_type!(
    /// The name of a secret store, e.g. `vault-prod`.
    StoreName,
    "store name"
);
label_type!(
    /// The slug of a user or group, e.g. `alice` or `payments-team`. Users
    /// and groups share one namespace, since either may own a path prefix.
    Slug,
    "user or group slug"
);

/// Why one segment of a secret path breaks SPEC §3's rules, if it does:
/// segments are `[A-Za-z0-9._-]+`, and neither `.` nor `..`. The one
/// definition of the rule; store adapters check paths with it too.
pub fn segment_problem(seg: &str) -> Option<&'static str> {
    if seg.is_empty() {
        return Some("it has an empty segment (`//`, or a leading or trailing `/`)");
    }
    if seg == "." || seg == ".." {
        return Some("`.` and `..` segments are not allowed");
    }
    if !seg
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Some("segments may hold only letters, digits, `.`, `_` and `-`");
    }
    None
}

/// A secret's path within its store: `[A-Za-z0-9._-]+` segments joined by
/// `/`, no empty, `.` or `..` segment, at most 512 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretPath(CompactString);

impl SecretPath {
    /// Parses a path.
    pub fn parse(s: impl Into<String>) -> Result<Self, InvalidName> {
        let s = s.into();
        if s.is_empty() {
            return Err(InvalidName::EmptyPath);
        }
        if s.len() > MAX_SECRET_PATH_BYTES {
            return Err(InvalidName::PathTooLong(s.len()));
        }
        if let Some(seg) = s.split('/').find(|seg| segment_problem(seg).is_some()) {
            return Err(InvalidName::BadSegment(seg.to_owned()));
        }
        Ok(SecretPath(CompactString::from(s)))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first segment: the user or group the path belongs to (SPEC §6).
    pub fn owner_segment(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }
}

impl TryFrom<String> for SecretPath {
    type Error = InvalidName;
    fn try_from(s: String) -> Result<Self, InvalidName> {
        SecretPath::parse(s)
    }
}

impl From<SecretPath> for String {
    fn from(p: SecretPath) -> String {
        p.0.into_string()
    }
}

impl fmt::Debug for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a user typed: a uri with a store, or a bare path meaning the
/// default store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// The store named in the uri, if any.
    pub store: Option<StoreName>,
    /// The path.
    pub path: SecretPath,
}

impl SecretRef {
    /// Parses `<store>://<path>` or `<path>`.
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        match s.split_once("://") {
            Some((store, path)) => Ok(SecretRef {
                store: Some(StoreName::parse(store)?),
                path: SecretPath::parse(path)?,
            }),
            None if s.contains(':') => Err(InvalidName::BadUri(s.to_owned())),
            None => Ok(SecretRef {
                store: None,
                path: SecretPath::parse(s)?,
            }),
        }
    }

    /// The full uri, with `default` as the store when none was named.
    pub fn resolve(self, default: &StoreName) -> SecretUri {
        SecretUri {
            store: self.store.unwrap_or_else(|| default.clone()),
            path: self.path,
        }
    }
}

/// A secret's id: `<store>://<path>`, e.g. `vault-prod://payments/db`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretUri {
    /// The store holding the secret.
    pub store: StoreName,
    /// Its path in that store.
    pub path: SecretPath,
}

impl SecretUri {
    /// Parses a full uri; the store is required.
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        match SecretRef::parse(s)? {
            SecretRef {
                store: Some(store),
                path,
            } => Ok(SecretUri { store, path }),
            _ => Err(InvalidName::BadUri(s.to_owned())),
        }
    }
}

impl TryFrom<String> for SecretUri {
    type Error = InvalidName;
    fn try_from(s: String) -> Result<Self, InvalidName> {
        SecretUri::parse(&s)
    }
}

impl From<SecretUri> for String {
    fn from(u: SecretUri) -> String {
        u.to_string()
    }
}

impl fmt::Debug for SecretUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl fmt::Display for SecretUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.store, self.path)
    }
}

/// Which upstream a store writes to; each kind has a reactor adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// HashiCorp Vault or OpenBao KV.
    Vault,
    /// AWS Secrets Manager.
    AwsSecretsManager,
    /// The embedded, envelope-encrypted file store.
    File,
}

impl StoreKind {
    /// The name used on the command line and in events.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Vault => "vault",
            StoreKind::AwsSecretsManager => "aws-secrets-manager",
            StoreKind::File => "file",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A store kind that does not exist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a store kind: use vault, aws-secrets-manager or file")]
pub struct InvalidStoreKind(pub String);

impl FromStr for StoreKind {
    type Err = InvalidStoreKind;

    fn from_str(s: &str) -> Result<Self, InvalidStoreKind> {
        [
            StoreKind::Vault,
            StoreKind::AwsSecretsManager,
            StoreKind::File,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| InvalidStoreKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_are_dns_labels() {
        for ok in ["vault-prod", "a", "local", "s3", &"x".repeat(63)] {
            assert!(StoreName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Vault",
            "vault_prod",
            "vault.prod",
            &"x".repeat(64),
        ] {
            let err = StoreName::parse(bad).unwrap_err();
            assert!(err.to_string().contains("store name"), "{bad}: {err}");
        }
    }

    #[test]
    fn paths_follow_the_segment_rules() {
        for ok in ["payments/db", "alice/app.env", "a/b_c/d-e/F.1", "x"] {
            assert_eq!(SecretPath::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(SecretPath::parse(""), Err(InvalidName::EmptyPath));
        for bad in [
            "a//b", "/a", "a/", "a/./b", "a/../b", "..", "a b", "a/ü", "a\\b",
        ] {
            assert!(
                matches!(SecretPath::parse(bad), Err(InvalidName::BadSegment(_))),
                "{bad}"
            );
        }
        let long = format!("a/{}", "b".repeat(511));
        assert_eq!(SecretPath::parse(&long), Err(InvalidName::PathTooLong(513)));
        assert!(SecretPath::parse("b".repeat(512)).is_ok());
    }

    #[test]
    fn uris_name_a_store_or_fall_back_to_the_default() {
        let uri = SecretUri::parse("vault-prod://payments/db").unwrap();
        assert_eq!(uri.store.as_str(), "vault-prod");
        assert_eq!(uri.path.as_str(), "payments/db");
        assert_eq!(uri.to_string(), "vault-prod://payments/db");

        let bare = SecretRef::parse("alice/db").unwrap();
        assert_eq!(bare.store, None);
        let local = StoreName::parse("local").unwrap();
        assert_eq!(bare.resolve(&local).to_string(), "local://alice/db");

        assert!(matches!(
            SecretUri::parse("alice/db"),
            Err(InvalidName::BadUri(_))
        ));
        for bad in ["vault:/x", "Vault://x", "vault://", "vault://a//b", "://x"] {
            assert!(SecretRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_of_24_bytes_or_fewer_are_held_inline_and_read_back_as_given() {
        let short = SecretPath::parse("payments/db-primary-pass").unwrap();
        let long = SecretPath::parse("payments/db-primary-password").unwrap();
        let (store, slug) = (
            StoreName::parse("vault-prod").unwrap(),
            Slug::parse("a".repeat(63)).unwrap(),
        );
        assert_eq!(short.as_str().len(), 24);
        assert!(!short.0.is_heap_allocated());
        assert!(long.0.is_heap_allocated());
        assert!(!store.0.is_heap_allocated());
        assert!(slug.0.is_heap_allocated());
        assert_eq!(String::from(long), "payments/db-primary-password");
        assert_eq!(slug.as_str(), "a".repeat(63));
        assert_eq!(store.to_string(), "vault-prod");
        assert!(short < SecretPath::parse("payments/db-primary-passx").unwrap());
        assert_eq!(std::mem::size_of::<Option<SecretPath>>(), 24);
    }

    #[test]
    fn owner_segment_is_the_first() {
        assert_eq!(
            SecretPath::parse("alice/app/db").unwrap().owner_segment(),
            "alice"
        );
        assert_eq!(SecretPath::parse("alice").unwrap().owner_segment(), "alice");
    }

    #[test]
    fn names_round_trip_through_json_and_refuse_bad_values() {
        let uri = SecretUri::parse("local://alice/db").unwrap();
        let json = serde_json::to_string(&uri).unwrap();
        assert_eq!(json, "\"local://alice/db\"");
        assert_eq!(serde_json::from_str::<SecretUri>(&json).unwrap(), uri);
        assert!(serde_json::from_str::<SecretUri>("\"local://../etc\"").is_err());
        assert!(serde_json::from_str::<Slug>("\"Alice\"").is_err());
    }
}

//! The written form of the keyed hashes users see (SPEC §4), defined once
//! for the three processes that handle it: the reactor writes it, the
//! control plane refuses a report not in it, `sealctl` shows its version.
//! How a hash is computed is the reactor's (`reactors::fingerprint`); this
//! is only its text, which never holds anything secret.
//!
//! Two versions exist, and a hash string says which it is:
//! - `hmac-sha256-v2:<key id>:<64 lower-case hex>`: bound to the secret's
//!   path (ADR 0011), what reactors write now;
//! - `hmac-sha256:<key id>:<64 lower-case hex>`: version 1, written before
//!   the path was bound. Such strings stay in the log forever (it is
//!   append-only), so they stay valid and are shown as `v1`.
//!
//! The key id is one or more of `[A-Za-z0-9._-]`. Neither prefix is a
//! prefix of the other followed by `:`, so a string parses one way only.

use std::fmt;

/// The algorithm prefix of version 1 hashes (no version in the text).
pub const V1_PREFIX: &str = "hmac-sha256";

/// The algorithm and version prefix of version 2 (path-bound) hashes.
pub const V2_PREFIX: &str = "hmac-sha256-v2";

/// Which canonical encoding a keyed hash was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HashVersion {
    /// Key names and values only; comparable across paths (ADR 0004).
    V1,
    /// Also binds the secret's path (ADR 0011).
    V2,
}

impl HashVersion {
    /// The version reactors write now.
    pub const CURRENT: HashVersion = HashVersion::V2;

    /// The prefix a hash of this version starts with, before `:<key id>`.
    pub fn prefix(self) -> &'static str {
        match self {
            HashVersion::V1 => V1_PREFIX,
            HashVersion::V2 => V2_PREFIX,
        }
    }

    /// `v1` or `v2`, as `sealctl` shows it.
    pub fn label(self) -> &'static str {
        match self {
            HashVersion::V1 => "v1",
            HashVersion::V2 => "v2",
        }
    }
}

impl fmt::Display for HashVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A keyed hash string taken apart; borrows the string it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedHash<'a> {
    /// Which encoding it was made from.
    pub version: HashVersion,
    /// The fingerprint key's id.
    pub key_id: &'a str,
    /// The 64 lower-case hex digits of the HMAC.
    pub hex: &'a str,
}

impl<'a> KeyedHash<'a> {
    /// Parses `text` as either version; `None` for anything else.
    ///
    /// Deliberately exactly as lax as the control plane has always been
    /// for version 1 (no key id length limit), so every hash it ever
    /// accepted into the log still parses.
    pub fn parse(text: &'a str) -> Option<KeyedHash<'a>> {
        let (prefix, rest) = text.split_once(':')?;
        let version = match prefix {
            V1_PREFIX => HashVersion::V1,
            V2_PREFIX => HashVersion::V2,
            _ => return None,
        };
        let (key_id, hex) = rest.split_once(':')?;
        let ok = is_key_id(key_id)
            && hex.len() == 64
            // Upper-case hex is not the format: one value, one spelling.
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then_some(KeyedHash {
            version,
            key_id,
            hex,
        })
    }
}

/// The version of `text` if it is a keyed hash of either version.
pub fn version_of(text: &str) -> Option<HashVersion> {
    KeyedHash::parse(text).map(|h| h.version)
}

/// Whether `id` may name a fingerprint key in a hash: one or more of
/// `[A-Za-z0-9._-]` (so never `:`, which separates the parts).
pub fn is_key_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex() -> String {
        "0f".repeat(32)
    }

    #[test]
    fn both_versions_parse_and_say_which_they_are() {
        let v1 = format!("hmac-sha256:k-2.x_y:{}", hex());
        let v2 = format!("hmac-sha256-v2:k-2.x_y:{}", hex());
        let parsed = KeyedHash::parse(&v1).unwrap();
        assert_eq!(parsed.version, HashVersion::V1);
        assert_eq!((parsed.key_id, parsed.hex), ("k-2.x_y", hex().as_str()));
        let parsed = KeyedHash::parse(&v2).unwrap();
        assert_eq!(parsed.version, HashVersion::V2);
        assert_eq!((parsed.key_id, parsed.hex), ("k-2.x_y", hex().as_str()));
        assert_eq!(version_of(&v1), Some(HashVersion::V1));
        assert_eq!(version_of(&v2), Some(HashVersion::V2));
        assert_eq!(HashVersion::CURRENT, HashVersion::V2);
        assert_eq!(HashVersion::V1.to_string(), "v1");
        assert_eq!(HashVersion::V2.label(), "v2");
        // The prefix names the version it parses as.
        for v in [HashVersion::V1, HashVersion::V2] {
            let text = format!("{}:k:{}", v.prefix(), hex());
            assert_eq!(version_of(&text), Some(v));
        }
    }

    #[test]
    fn a_dev_key_id_of_the_readme_is_a_v1_hash() {
        // A hash as printed by the binaries before the path was bound.
        let old =
            "hmac-sha256:dev:2d69f2972b2ba8764aa37a5df6898a8a25ecd9a3dcc1f4b2b99df6f8fc8539bf";
        assert_eq!(version_of(old), Some(HashVersion::V1));
        // No key id length limit, as the control plane never had one.
        let long = format!("hmac-sha256:{}:{}", "a".repeat(200), hex());
        assert_eq!(version_of(&long), Some(HashVersion::V1));
    }

    #[test]
    fn anything_else_is_refused() {
        let h = hex();
        for bad in [
            String::new(),
            h.clone(),
            format!("sha256:{h}"),
            format!("sha256:k1:{h}"),
            format!("hmac-sha256-v3:k1:{h}"),
            format!("hmac-sha256-V2:k1:{h}"),
            format!("HMAC-SHA256:k1:{h}"),
            format!("hmac-sha256-v1:k1:{h}"),
            format!("hmac-sha256v2:k1:{h}"),
            format!("hmac-sha256::{h}"),
            format!("hmac-sha256-v2::{h}"),
            format!("hmac-sha256:k/1:{h}"),
            format!("hmac-sha256:k 1:{h}"),
            format!("hmac-sha256-v2:k:1:{h}"),
            format!("hmac-sha256:k1:{}", "A".repeat(64)),
            format!("hmac-sha256-v2:k1:{}", "A".repeat(64)),
            format!("hmac-sha256:k1:{}", "a".repeat(63)),
            format!("hmac-sha256-v2:k1:{h}0"),
            format!("hmac-sha256:k1:{}", "g".repeat(64)),
            format!("hmac-sha256:k1:{h}:"),
            format!(" hmac-sha256:k1:{h}"),
            format!("hmac-sha256:k1:{h}\n"),
            "hmac-sha256:k1".to_owned(),
            "hmac-sha256-v2".to_owned(),
        ] {
            assert_eq!(KeyedHash::parse(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn key_ids() {
        for good in ["a", "k1", "prod-2026.a_1", "A.B"] {
            assert!(is_key_id(good), "{good}");
        }
        for bad in ["", "a:b", "a b", "é", "a/b"] {
            assert!(!is_key_id(bad), "{bad}");
        }
    }
}

//! The keyed hash users see (SPEC §4): never a plain SHA-256 of a value,
//! because low-entropy secrets fall to guessing; an HMAC-SHA256 under a
//! fingerprint key held only by reactors (the same key on every reactor of a
//! deployment, so hashes compare across upstream stores).
//!
//! Format (`sealplane_proto::keyed_hash`): `hmac-sha256-v2:<key id>:<64
//! lower-case hex>`, for the whole value and for each key, so a user sees
//! which key changed.
//!
//! The hash binds the secret's *path* (ADR 0011): otherwise a reader of
//! `alice/db` who sees `hash[password]` could put guesses into a path of
//! his own (puts are not rate limited) and compare hashes, mining the
//! value without ever calling the rate-limited `verify`. It does not bind
//! the store, so the same value at the same path still hashes equal on
//! every store of a deployment.
//!
//! Canonical encodings of version 2 (every length a u64 big-endian, so no
//! two inputs share an encoding — `a=bc` and `ab=c` differ, and so do path
//! `a/b` with key `c` and path `a` with key `b/c`; the tags differ in
//! their first bytes, so no whole-value encoding is a per-key one):
//! - whole value: `len(tag) ‖ tag ‖ len(path) ‖ path ‖ count ‖ (len(key) ‖
//!   key ‖ len(value) ‖ value)*` with tag `sealplane-secret-v2`, pairs
//!   sorted by key name (byte order);
//! - one key: `len(tag) ‖ tag ‖ len(path) ‖ path ‖ len(key) ‖ key ‖
//!   len(value) ‖ value` with tag `sealplane-secret-key-v2`.
//!
//! `path` is the path's text as in the uri (`alice/db` of
//! `local://alice/db`), which SPEC §3 makes unique: no empty, `.` or `..`
//! segment, so there is one spelling of each path.
//!
//! Version 1 (`hmac-sha256:<key id>:<hex>`, still in old logs, never
//! written now) was the same without `len(path) ‖ path`, with tags
//! `sealplane-secret-v1` and `sealplane-secret-key-v1`.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sealplane_proto::keyed_hash::{self, HashVersion, KeyedHash};
use sealplane_proto::names::SecretPath;
use sealplane_proto::sealed::SecretValue;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Domain tag of the whole-value canonical encoding (version 2).
pub const SECRET_TAG: &[u8] = b"sealplane-secret-v2";

/// Domain tag of the per-key canonical encoding (version 2).
pub const SECRET_KEY_TAG: &[u8] = b"sealplane-secret-key-v2";

/// The version of the hashes made here: the one the tags above encode.
pub const VERSION: HashVersion = HashVersion::V2;

/// Longest fingerprint key id.
pub const MAX_KEY_ID_LEN: usize = 64;

/// Why a fingerprint key could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// A key id outside `[A-Za-z0-9._-]{1,64}`.
    #[error(
        "fingerprint key id {0:?} is not allowed: use 1 to 64 letters, digits, `.`, `_` or `-`"
    )]
    InvalidKeyId(String),
}

/// The reactors' fingerprint key and its id; the key zeroizes on drop and never prints.
#[derive(Clone)]
pub struct FingerprintKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

/// A value's keyed hashes: the whole value's and one per key name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `hmac-sha256-v2:<key id>:<hex>` over the path and the whole value.
    pub hash: String,
    /// Key name → `hmac-sha256-v2:<key id>:<hex>` over the path, that key
    /// and its value.
    pub key_hashes: BTreeMap<String, String>,
}

fn check_key_id(id: &str) -> Result<(), FingerprintError> {
    // The contract's rule, and a length limit of the reactor's own (the
    // control plane accepts any length, as it always has).
    if keyed_hash::is_key_id(id) && id.len() <= MAX_KEY_ID_LEN {
        Ok(())
    } else {
        Err(FingerprintError::InvalidKeyId(id.to_owned()))
    }
}

/// Appends `len(bytes)` as u64 big-endian, then `bytes`.
fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// The whole-value canonical encoding of `data` at `path` (see the module
/// docs), zeroized on drop.
pub fn canonical(path: &SecretPath, data: &SecretValue) -> Zeroizing<Vec<u8>> {
    // Exact size up front: growing the Vec would leave value bytes behind
    // in freed memory that nothing zeroizes.
    let size = 8
        + SECRET_TAG.len()
        + 8
        + path.as_str().len()
        + 8
        + data
            .iter()
            .map(|(k, v)| 16 + k.len() + v.len())
            .sum::<usize>();
    let mut buf = Zeroizing::new(Vec::with_capacity(size));
    put(&mut buf, SECRET_TAG);
    put(&mut buf, path.as_str().as_bytes());
    buf.extend_from_slice(&(data.len() as u64).to_be_bytes());
    // SecretValue iterates in sorted key order, which makes this canonical.
    for (k, v) in data.iter() {
        put(&mut buf, k.as_bytes());
        put(&mut buf, v);
    }
    buf
}

/// The per-key canonical encoding of `key` = `value` at `path` (see the
/// module docs), zeroized on drop.
pub fn canonical_key(path: &SecretPath, key: &str, value: &[u8]) -> Zeroizing<Vec<u8>> {
    let size = 32 + SECRET_KEY_TAG.len() + path.as_str().len() + key.len() + value.len();
    let mut buf = Zeroizing::new(Vec::with_capacity(size));
    put(&mut buf, SECRET_KEY_TAG);
    put(&mut buf, path.as_str().as_bytes());
    put(&mut buf, key.as_bytes());
    put(&mut buf, value);
    buf
}

impl FingerprintKey {
    /// A fresh random key from the OS generator.
    pub fn generate(id: impl Into<String>) -> Result<Self, FingerprintError> {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut key[..]);
        Self::with_key(id.into(), key)
    }

    /// A key from its 32 bytes (e.g. read from the reactor's key file); the caller zeroizes its copy.
    pub fn from_bytes(id: impl Into<String>, key: [u8; 32]) -> Result<Self, FingerprintError> {
        Self::with_key(id.into(), Zeroizing::new(key))
    }

    pub(crate) fn with_key(id: String, key: Zeroizing<[u8; 32]>) -> Result<Self, FingerprintError> {
        check_key_id(&id)?;
        Ok(Self { id, key })
    }

    /// The key id named in every hash, so a rotated key is recognisable.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key bytes, for persisting the key in the reactor's own config.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC zero-pads a short key to the hash's 64-byte block, so keying
        // with the padded block equals keying with the 32 bytes (the
        // known-answer test checks it against Python's hmac). It avoids
        // `new_from_slice`, whose Result would need an unwrap.
        let mut block = Zeroizing::new([0u8; 64]);
        block[..32].copy_from_slice(&self.key[..]);
        <HmacSha256 as hmac::digest::KeyInit>::new((&*block).into())
    }

    fn hmac_hex(&self, message: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(message);
        format!(
            "{}:{}:{}",
            VERSION.prefix(),
            self.id,
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// The keyed hashes of `data` stored at `path` (in any store): whole
    /// value and per key.
    pub fn fingerprint(&self, path: &SecretPath, data: &SecretValue) -> Fingerprint {
        let hash = self.hmac_hex(&canonical(path, data));
        let key_hashes = data
            .iter()
            .map(|(k, v)| (k.to_owned(), self.hmac_hex(&canonical_key(path, k, v))))
            .collect();
        Fingerprint { hash, key_hashes }
    }

    /// Whether `data` at `path` is the value `fingerprint` was made from,
    /// compared in constant time.
    ///
    /// Only the whole-value hash decides: it covers every key and value. A
    /// hash of another version (the reactor hashes the stored value itself,
    /// so both sides are always this version), made under another key id,
    /// or not in the hash format, is `false`.
    pub fn matches(
        &self,
        path: &SecretPath,
        data: &SecretValue,
        fingerprint: &Fingerprint,
    ) -> bool {
        let Some(parsed) = KeyedHash::parse(&fingerprint.hash) else {
            return false;
        };
        if parsed.version != VERSION || parsed.key_id != self.id {
            return false;
        }
        let Ok(expected) = hex::decode(parsed.hex) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(&canonical(path, data));
        mac.verify_slice(&expected).is_ok()
    }
}

impl fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FingerprintKey")
            .field("id", &self.id)
            .field("key", &format_args!("[redacted]"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn value(pairs: &[(&str, &[u8])]) -> SecretValue {
        let mut v = SecretValue::new();
        for (k, val) in pairs {
            v.insert(*k, val.to_vec()).unwrap();
        }
        v
    }

    fn path(p: &str) -> SecretPath {
        SecretPath::parse(p).unwrap()
    }

    fn db() -> SecretPath {
        path("alice/db")
    }

    fn key() -> FingerprintKey {
        FingerprintKey::from_bytes("k1", [0x42; 32]).unwrap()
    }

    /// The hex part of a hash string.
    fn hex_of(hash: &str) -> &str {
        hash.rsplit_once(':').unwrap().1
    }

    /// Pinned with Python's hmac module reproducing the canonical bytes:
    ///
    /// ```text
    /// python3 -c "
    /// import hmac,hashlib,struct
    /// L=lambda b: struct.pack('>Q',len(b))+b
    /// k=bytes([0x42]*32)
    /// c=L(b'sealplane-secret-v2')+L(b'alice/db')+struct.pack('>Q',1)+L(b'password')+L(b'hunter2')
    /// print(hmac.new(k,c,hashlib.sha256).hexdigest())
    /// c=L(b'sealplane-secret-key-v2')+L(b'alice/db')+L(b'password')+L(b'hunter2')
    /// print(hmac.new(k,c,hashlib.sha256).hexdigest())
    /// "
    /// d8906b3a09a901053f7dd0c450f23bd51700851b4a223090629f4a88735ac45c
    /// 3914af8319b249e9ebb826c9957c7569468216e8db6e82a51be2a199d3778547
    /// ```
    #[test]
    fn known_answer() {
        let fp = key().fingerprint(&db(), &value(&[("password", b"hunter2")]));
        assert_eq!(
            fp.hash,
            "hmac-sha256-v2:k1:d8906b3a09a901053f7dd0c450f23bd51700851b4a223090629f4a88735ac45c"
        );
        assert_eq!(
            fp.key_hashes["password"],
            "hmac-sha256-v2:k1:3914af8319b249e9ebb826c9957c7569468216e8db6e82a51be2a199d3778547"
        );
    }

    #[test]
    fn canonical_bytes_are_length_prefixed() {
        let c = canonical(&path("a/b"), &value(&[("b", b"2"), ("a", b"1")]));
        let mut want = Vec::new();
        want.extend_from_slice(&19u64.to_be_bytes());
        want.extend_from_slice(b"sealplane-secret-v2");
        want.extend_from_slice(&3u64.to_be_bytes());
        want.extend_from_slice(b"a/b");
        want.extend_from_slice(&2u64.to_be_bytes());
        for (k, v) in [("a", "1"), ("b", "2")] {
            want.extend_from_slice(&1u64.to_be_bytes());
            want.extend_from_slice(k.as_bytes());
            want.extend_from_slice(&1u64.to_be_bytes());
            want.extend_from_slice(v.as_bytes());
        }
        assert_eq!(*c, want);
        assert_eq!(c.len(), c.capacity(), "sized exactly, never reallocated");

        let c = canonical_key(&path("a/b"), "k", b"vv");
        let mut want = Vec::new();
        want.extend_from_slice(&23u64.to_be_bytes());
        want.extend_from_slice(b"sealplane-secret-key-v2");
        for part in [&b"a/b"[..], b"k", b"vv"] {
            want.extend_from_slice(&(part.len() as u64).to_be_bytes());
            want.extend_from_slice(part);
        }
        assert_eq!(*c, want);
        assert_eq!(c.len(), c.capacity(), "sized exactly, never reallocated");
    }

    #[test]
    fn the_same_value_at_two_paths_hashes_differently() {
        let k = key();
        let v = value(&[("user", b"app"), ("password", b"hunter2")]);
        let at_alice = k.fingerprint(&db(), &v);
        for other in ["bob/probe", "alice/db2", "alice/db/x", "alice", "Alice/db"] {
            let elsewhere = k.fingerprint(&path(other), &v);
            assert_ne!(hex_of(&at_alice.hash), hex_of(&elsewhere.hash), "{other}");
            for key in ["user", "password"] {
                assert_ne!(
                    hex_of(&at_alice.key_hashes[key]),
                    hex_of(&elsewhere.key_hashes[key]),
                    "{other} {key}"
                );
            }
            // Nor does a value match a hash made at another path.
            assert!(!k.matches(&path(other), &v, &at_alice), "{other}");
        }
    }

    #[test]
    fn the_same_value_at_the_same_path_hashes_equal() {
        // The store is not an input, so every store of a deployment agrees;
        // and a key built from the same bytes (another reactor) does too.
        let v = value(&[("user", b"app"), ("password", b"hunter2")]);
        let other_reactor = FingerprintKey::from_bytes("k1", [0x42; 32]).unwrap();
        assert_eq!(
            key().fingerprint(&db(), &v),
            other_reactor.fingerprint(&db(), &v)
        );
    }

    #[test]
    fn deterministic_regardless_of_insertion_order() {
        let a = value(&[("user", b"app"), ("password", b"pw"), ("host", b"db")]);
        let b = value(&[("host", b"db"), ("password", b"pw"), ("user", b"app")]);
        assert_eq!(key().fingerprint(&db(), &a), key().fingerprint(&db(), &b));
        assert_eq!(key().fingerprint(&db(), &a), key().fingerprint(&db(), &a));
    }

    #[test]
    fn any_change_changes_the_hash() {
        let k = key();
        let base = k
            .fingerprint(&db(), &value(&[("user", b"app"), ("password", b"pw")]))
            .hash;
        for other in [
            value(&[("user", b"app"), ("password", b"pW")]),
            value(&[("user", b"app"), ("passwd", b"pw")]),
            value(&[("user", b"app")]),
            value(&[("user", b"app"), ("password", b"pw"), ("x", b"")]),
            value(&[("user", b"app"), ("password", b"pw\0")]),
        ] {
            assert_ne!(k.fingerprint(&db(), &other).hash, base, "{other:?}");
        }
    }

    #[test]
    fn another_fingerprint_key_gives_another_hash() {
        let v = value(&[("password", b"hunter2")]);
        let same_id = FingerprintKey::from_bytes("k1", [0x43; 32]).unwrap();
        let hex = |k: &FingerprintKey| hex_of(&k.fingerprint(&db(), &v).hash).to_owned();
        assert_ne!(hex(&key()), hex(&same_id));
        let random = FingerprintKey::generate("k1").unwrap();
        assert_ne!(hex(&key()), hex(&random));
    }

    #[test]
    fn not_a_plain_sha256() {
        let v = value(&[("password", b"hunter2")]);
        let fp = key().fingerprint(&db(), &v);
        let plain_value = hex::encode(Sha256::digest(b"hunter2"));
        let plain_canonical = hex::encode(Sha256::digest(&*canonical(&db(), &v)));
        let plain_key = hex::encode(Sha256::digest(&*canonical_key(
            &db(),
            "password",
            b"hunter2",
        )));
        for h in std::iter::once(&fp.hash).chain(fp.key_hashes.values()) {
            assert!(!h.contains(&plain_value));
            assert!(!h.contains(&plain_canonical));
            assert!(!h.contains(&plain_key));
        }
    }

    #[test]
    fn length_prefixes_remove_ambiguity() {
        let k = key();
        let a = k.fingerprint(&db(), &value(&[("a", b"bc")]));
        let b = k.fingerprint(&db(), &value(&[("ab", b"c")]));
        assert_ne!(a.hash, b.hash);
        assert_ne!(a.key_hashes["a"], b.key_hashes["ab"]);
        let c = k.fingerprint(&db(), &value(&[("a", b"b"), ("c", b"d")]));
        let d = k.fingerprint(&db(), &value(&[("a", b"bc"), ("d", b"")]));
        assert_ne!(c.hash, d.hash);
        // The path's end and the first key's start cannot trade bytes.
        let e = k.fingerprint(&path("x/ab"), &value(&[("c", b"1")]));
        let f = k.fingerprint(&path("x/a"), &value(&[("bc", b"1")]));
        assert_ne!(e.hash, f.hash);
        assert_ne!(e.key_hashes["c"], f.key_hashes["bc"]);
        assert_ne!(
            *canonical_key(&path("x/ab"), "c", b"1"),
            *canonical_key(&path("x/a"), "bc", b"1")
        );
        // A one-key value's whole hash is not its key's hash.
        let one = k.fingerprint(&db(), &value(&[("a", b"1")]));
        assert_ne!(hex_of(&one.hash), hex_of(&one.key_hashes["a"]));
    }

    #[test]
    fn per_key_hashes_change_only_for_the_changed_key() {
        let k = key();
        let before = k.fingerprint(
            &db(),
            &value(&[("user", b"app"), ("password", b"old"), ("host", b"db")]),
        );
        let after = k.fingerprint(
            &db(),
            &value(&[("user", b"app"), ("password", b"new"), ("host", b"db")]),
        );
        assert_ne!(before.hash, after.hash);
        assert_ne!(before.key_hashes["password"], after.key_hashes["password"]);
        assert_eq!(before.key_hashes["user"], after.key_hashes["user"]);
        assert_eq!(before.key_hashes["host"], after.key_hashes["host"]);
        assert_eq!(before.key_hashes.len(), 3);
    }

    #[test]
    fn hashes_are_version_2_in_the_contracts_format() {
        let k = FingerprintKey::from_bytes("prod-2026.a_1", [7; 32]).unwrap();
        let fp = k.fingerprint(&db(), &value(&[("a", b"1"), ("b", b"")]));
        assert!(fp.hash.starts_with("hmac-sha256-v2:prod-2026.a_1:"));
        for h in std::iter::once(&fp.hash).chain(fp.key_hashes.values()) {
            let parsed = KeyedHash::parse(h).unwrap_or_else(|| panic!("{h}"));
            assert_eq!(parsed.version, HashVersion::V2);
            assert_eq!(parsed.key_id, "prod-2026.a_1");
        }
    }

    /// A version 1 hash, as in logs written before the path was bound (the
    /// old known answer of `password=hunter2`), still parses as such, and
    /// is never compared with a version 2 recomputation.
    #[test]
    fn version_1_strings_still_parse_and_never_match() {
        let old = "hmac-sha256:k1:102c0ecfc14ead3e8d6add46e17bf8f905a5c1e5bc42a188a2a6f9b41113abee";
        let parsed = KeyedHash::parse(old).unwrap();
        assert_eq!((parsed.version, parsed.key_id), (HashVersion::V1, "k1"));
        let v = value(&[("password", b"hunter2")]);
        let fp = Fingerprint {
            hash: old.to_owned(),
            key_hashes: BTreeMap::new(),
        };
        assert!(!key().matches(&db(), &v, &fp));
    }

    #[test]
    fn matches_in_constant_time_and_refuses_others() {
        let k = key();
        let v = value(&[("password", b"hunter2")]);
        let fp = k.fingerprint(&db(), &v);
        assert!(k.matches(&db(), &v, &fp));
        assert!(!k.matches(&db(), &value(&[("password", b"hunter3")]), &fp));
        let other_id = FingerprintKey::from_bytes("k2", [0x42; 32]).unwrap();
        assert!(
            !other_id.matches(&db(), &v, &fp),
            "another key id never matches"
        );
        for bad in [
            String::new(),
            "hmac-sha256-v2:k1:".to_owned(),
            "hmac-sha256-v2:k1:zz".to_owned(),
            fp.hash.to_uppercase(),
            fp.hash.replace("hmac-sha256-v2", "sha256"),
            // The same digits labelled version 1 are not this version.
            fp.hash.replace("hmac-sha256-v2", "hmac-sha256"),
            fp.hash[..fp.hash.len() - 2].to_owned(),
        ] {
            let forged = Fingerprint {
                hash: bad,
                key_hashes: fp.key_hashes.clone(),
            };
            assert!(!k.matches(&db(), &v, &forged), "{forged:?}");
        }
    }

    #[test]
    fn key_ids_are_checked_and_key_is_redacted() {
        let long = "a".repeat(65);
        for bad in ["", "a:b", "a b", "é", long.as_str()] {
            assert_eq!(
                FingerprintKey::from_bytes(bad, [0; 32]).unwrap_err(),
                FingerprintError::InvalidKeyId(bad.to_owned())
            );
        }
        FingerprintKey::from_bytes("a".repeat(64), [0; 32]).unwrap();
        let text = format!("{:?}", key());
        assert_eq!(text, r#"FingerprintKey { id: "k1", key: [redacted] }"#);
        assert!(!text.contains("66") && !text.contains("42"));
    }
}

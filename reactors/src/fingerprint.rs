//! The keyed hash users see (SPEC §4): never a plain SHA-256 of a value,
//! because low-entropy secrets fall to guessing; an HMAC-SHA256 under a
//! fingerprint key held only by reactors (the same key on every reactor of a
//! deployment, so hashes compare across upstream stores).
//!
//! Format: `hmac-sha256:<key id>:<64 lower-case hex>`, for the whole value
//! and for each key, so a user sees which key changed.
//!
//! Canonical encodings (every length a u64 big-endian, so no two inputs
//! share an encoding — `a=bc` and `ab=c` differ):
//! - whole value: `len(tag) ‖ tag ‖ count ‖ (len(key) ‖ key ‖ len(value) ‖
//!   value)*` with tag `sealplane-secret-v1`, pairs sorted by key name;
//! - one key: `len(tag) ‖ tag ‖ len(key) ‖ key ‖ len(value) ‖ value` with
//!   tag `sealplane-secret-key-v1`.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sealplane_proto::sealed::SecretValue;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Domain tag of the whole-value canonical encoding.
pub const SECRET_TAG: &[u8] = b"sealplane-secret-v1";

/// Domain tag of the per-key canonical encoding.
pub const SECRET_KEY_TAG: &[u8] = b"sealplane-secret-key-v1";

/// Prefix of every hash string; names the algorithm so it can change later.
pub const HASH_PREFIX: &str = "hmac-sha256";

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
    /// `hmac-sha256:<key id>:<hex>` over the whole value.
    pub hash: String,
    /// Key name → `hmac-sha256:<key id>:<hex>` over that key and its value.
    pub key_hashes: BTreeMap<String, String>,
}

fn check_key_id(id: &str) -> Result<(), FingerprintError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
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

/// The whole-value canonical encoding (see the module docs), zeroized on drop.
pub fn canonical(data: &SecretValue) -> Zeroizing<Vec<u8>> {
    // Exact size up front: growing the Vec would leave value bytes behind
    // in freed memory that nothing zeroizes.
    let size = 8
        + SECRET_TAG.len()
        + 8
        + data
            .iter()
            .map(|(k, v)| 16 + k.len() + v.len())
            .sum::<usize>();
    let mut buf = Zeroizing::new(Vec::with_capacity(size));
    put(&mut buf, SECRET_TAG);
    buf.extend_from_slice(&(data.len() as u64).to_be_bytes());
    // SecretValue iterates in sorted key order, which makes this canonical.
    for (k, v) in data.iter() {
        put(&mut buf, k.as_bytes());
        put(&mut buf, v);
    }
    buf
}

/// The per-key canonical encoding (see the module docs), zeroized on drop.
pub fn canonical_key(key: &str, value: &[u8]) -> Zeroizing<Vec<u8>> {
    let size = 24 + SECRET_KEY_TAG.len() + key.len() + value.len();
    let mut buf = Zeroizing::new(Vec::with_capacity(size));
    put(&mut buf, SECRET_KEY_TAG);
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
            "{HASH_PREFIX}:{}:{}",
            self.id,
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// The keyed hashes of `data`: whole value and per key.
    pub fn fingerprint(&self, data: &SecretValue) -> Fingerprint {
        let hash = self.hmac_hex(&canonical(data));
        let key_hashes = data
            .iter()
            .map(|(k, v)| (k.to_owned(), self.hmac_hex(&canonical_key(k, v))))
            .collect();
        Fingerprint { hash, key_hashes }
    }

    /// Whether `data` is the value `fingerprint` was made from, compared in constant time.
    ///
    /// Only the whole-value hash decides: it covers every key and value. A
    /// hash made under another key id, or not in the hash format, is `false`.
    pub fn matches(&self, data: &SecretValue, fingerprint: &Fingerprint) -> bool {
        let Some(tag) = fingerprint
            .hash
            .strip_prefix(HASH_PREFIX)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|rest| rest.strip_prefix(self.id.as_str()))
            .and_then(|rest| rest.strip_prefix(':'))
        else {
            return false;
        };
        // Upper-case hex is not the format, so it is not accepted either.
        if tag.bytes().any(|b| b.is_ascii_uppercase()) {
            return false;
        }
        let Ok(expected) = hex::decode(tag) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(&canonical(data));
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

    fn key() -> FingerprintKey {
        FingerprintKey::from_bytes("k1", [0x42; 32]).unwrap()
    }

    fn is_hash_format(s: &str) -> bool {
        // ^hmac-sha256:[A-Za-z0-9._-]+:[0-9a-f]{64}$, without a regex crate.
        let Some(rest) = s.strip_prefix("hmac-sha256:") else {
            return false;
        };
        let Some((id, hex)) = rest.rsplit_once(':') else {
            return false;
        };
        !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// Pinned with Python's hmac module reproducing the canonical bytes:
    ///
    /// ```text
    /// python3 -c "
    /// import hmac,hashlib,struct
    /// L=lambda b: struct.pack('>Q',len(b))+b
    /// k=bytes([0x42]*32)
    /// c=L(b'sealplane-secret-v1')+struct.pack('>Q',1)+L(b'password')+L(b'hunter2')
    /// print(hmac.new(k,c,hashlib.sha256).hexdigest())
    /// c=L(b'sealplane-secret-key-v1')+L(b'password')+L(b'hunter2')
    /// print(hmac.new(k,c,hashlib.sha256).hexdigest())
    /// "
    /// 102c0ecfc14ead3e8d6add46e17bf8f905a5c1e5bc42a188a2a6f9b41113abee
    /// e806af667e5ebedd93fa135668ff57a0020ca715e2b05f3c04dc8c23ed42863a
    /// ```
    #[test]
    fn known_answer() {
        let fp = key().fingerprint(&value(&[("password", b"hunter2")]));
        assert_eq!(
            fp.hash,
            "hmac-sha256:k1:102c0ecfc14ead3e8d6add46e17bf8f905a5c1e5bc42a188a2a6f9b41113abee"
        );
        assert_eq!(
            fp.key_hashes["password"],
            "hmac-sha256:k1:e806af667e5ebedd93fa135668ff57a0020ca715e2b05f3c04dc8c23ed42863a"
        );
    }

    #[test]
    fn canonical_bytes_are_length_prefixed() {
        let c = canonical(&value(&[("b", b"2"), ("a", b"1")]));
        let mut want = Vec::new();
        want.extend_from_slice(&19u64.to_be_bytes());
        want.extend_from_slice(b"sealplane-secret-v1");
        want.extend_from_slice(&2u64.to_be_bytes());
        for (k, v) in [("a", "1"), ("b", "2")] {
            want.extend_from_slice(&1u64.to_be_bytes());
            want.extend_from_slice(k.as_bytes());
            want.extend_from_slice(&1u64.to_be_bytes());
            want.extend_from_slice(v.as_bytes());
        }
        assert_eq!(*c, want);
        assert_eq!(c.len(), c.capacity(), "sized exactly, never reallocated");
    }

    #[test]
    fn deterministic_regardless_of_insertion_order() {
        let a = value(&[("user", b"app"), ("password", b"pw"), ("host", b"db")]);
        let b = value(&[("host", b"db"), ("password", b"pw"), ("user", b"app")]);
        assert_eq!(key().fingerprint(&a), key().fingerprint(&b));
        assert_eq!(key().fingerprint(&a), key().fingerprint(&a));
    }

    #[test]
    fn any_change_changes_the_hash() {
        let k = key();
        let base = k
            .fingerprint(&value(&[("user", b"app"), ("password", b"pw")]))
            .hash;
        for other in [
            value(&[("user", b"app"), ("password", b"pW")]),
            value(&[("user", b"app"), ("passwd", b"pw")]),
            value(&[("user", b"app")]),
            value(&[("user", b"app"), ("password", b"pw"), ("x", b"")]),
            value(&[("user", b"app"), ("password", b"pw\0")]),
        ] {
            assert_ne!(k.fingerprint(&other).hash, base, "{other:?}");
        }
    }

    #[test]
    fn another_fingerprint_key_gives_another_hash() {
        let v = value(&[("password", b"hunter2")]);
        let same_id = FingerprintKey::from_bytes("k1", [0x43; 32]).unwrap();
        let hex_of = |fp: Fingerprint| fp.hash.rsplit_once(':').unwrap().1.to_owned();
        assert_ne!(
            hex_of(key().fingerprint(&v)),
            hex_of(same_id.fingerprint(&v))
        );
        let random = FingerprintKey::generate("k1").unwrap();
        assert_ne!(
            hex_of(key().fingerprint(&v)),
            hex_of(random.fingerprint(&v))
        );
    }

    #[test]
    fn not_a_plain_sha256() {
        let v = value(&[("password", b"hunter2")]);
        let fp = key().fingerprint(&v);
        let plain_value = hex::encode(Sha256::digest(b"hunter2"));
        let plain_canonical = hex::encode(Sha256::digest(&*canonical(&v)));
        let plain_key = hex::encode(Sha256::digest(&*canonical_key("password", b"hunter2")));
        for h in std::iter::once(&fp.hash).chain(fp.key_hashes.values()) {
            assert!(!h.contains(&plain_value));
            assert!(!h.contains(&plain_canonical));
            assert!(!h.contains(&plain_key));
        }
    }

    #[test]
    fn length_prefixes_remove_ambiguity() {
        let k = key();
        let a = k.fingerprint(&value(&[("a", b"bc")]));
        let b = k.fingerprint(&value(&[("ab", b"c")]));
        assert_ne!(a.hash, b.hash);
        assert_ne!(a.key_hashes["a"], b.key_hashes["ab"]);
        let c = k.fingerprint(&value(&[("a", b"b"), ("c", b"d")]));
        let d = k.fingerprint(&value(&[("a", b"bc"), ("d", b"")]));
        assert_ne!(c.hash, d.hash);
    }

    #[test]
    fn per_key_hashes_change_only_for_the_changed_key() {
        let k = key();
        let before = k.fingerprint(&value(&[
            ("user", b"app"),
            ("password", b"old"),
            ("host", b"db"),
        ]));
        let after = k.fingerprint(&value(&[
            ("user", b"app"),
            ("password", b"new"),
            ("host", b"db"),
        ]));
        assert_ne!(before.hash, after.hash);
        assert_ne!(before.key_hashes["password"], after.key_hashes["password"]);
        assert_eq!(before.key_hashes["user"], after.key_hashes["user"]);
        assert_eq!(before.key_hashes["host"], after.key_hashes["host"]);
        assert_eq!(before.key_hashes.len(), 3);
    }

    #[test]
    fn hash_format() {
        let k = FingerprintKey::from_bytes("prod-2026.a_1", [7; 32]).unwrap();
        let fp = k.fingerprint(&value(&[("a", b"1"), ("b", b"")]));
        assert!(is_hash_format(&fp.hash), "{}", fp.hash);
        assert!(fp.hash.starts_with("hmac-sha256:prod-2026.a_1:"));
        for h in fp.key_hashes.values() {
            assert!(is_hash_format(h), "{h}");
        }
        assert!(!is_hash_format("hmac-sha256:k1:ABCDEF"));
    }

    #[test]
    fn matches_in_constant_time_and_refuses_others() {
        let k = key();
        let v = value(&[("password", b"hunter2")]);
        let fp = k.fingerprint(&v);
        assert!(k.matches(&v, &fp));
        assert!(!k.matches(&value(&[("password", b"hunter3")]), &fp));
        let other_id = FingerprintKey::from_bytes("k2", [0x42; 32]).unwrap();
        assert!(!other_id.matches(&v, &fp), "another key id never matches");
        for bad in [
            String::new(),
            "hmac-sha256:k1:".to_owned(),
            "hmac-sha256:k1:zz".to_owned(),
            fp.hash.to_uppercase(),
            fp.hash.replace("hmac-sha256", "sha256"),
            fp.hash[..fp.hash.len() - 2].to_owned(),
        ] {
            let forged = Fingerprint {
                hash: bad,
                key_hashes: fp.key_hashes.clone(),
            };
            assert!(!k.matches(&v, &forged), "{forged:?}");
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

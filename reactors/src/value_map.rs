//! How every map-shaped upstream (Vault/OpenBao KV data, AWS Secrets
//! Manager's JSON `SecretString`) holds a [`SecretValue`], and how stores
//! tell whether a value is unchanged.
//!
//! Each key of the value is a key of the map. A value that is valid UTF-8
//! is stored as that string, so people and other tools see it as it is;
//! any other value is stored as standard base64 and its key is listed,
//! comma-separated, under the reserved key [`BASE64_KEYS`]. Reserved keys
//! start with `sealplane:`; a value's key names are `[A-Za-z0-9._-]` only,
//! so a reserved key can never collide with one. The list lives in the data
//! (not in metadata or tags) because only the data is written atomically
//! with the version it describes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealplane_proto::sealed::{SecretValue, is_valid_key_name};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::upstream::UpstreamError;

/// Prefix of every key Sealplane reserves in a stored map.
pub const RESERVED_PREFIX: &str = "sealplane:";

/// Lists (comma-separated) the keys whose values are stored as base64.
pub const BASE64_KEYS: &str = "sealplane:base64-keys";

/// A value as the map's strings: each key with its stored text, and the
/// [`BASE64_KEYS`] list (empty when every value is UTF-8).
pub struct StoredStrings<'a> {
    /// Key → stored text, in key order.
    pub entries: Vec<(&'a str, Zeroizing<String>)>,
    /// The keys stored as base64, comma-separated.
    pub base64_keys: String,
}

/// The strings `value` is stored as.
pub fn stored_strings(value: &SecretValue) -> StoredStrings<'_> {
    let mut entries = Vec::with_capacity(value.len());
    let mut base64_keys = Vec::new();
    for (key, bytes) in value.iter() {
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => Zeroizing::new(text.to_owned()),
            Err(_) => {
                base64_keys.push(key);
                Zeroizing::new(STANDARD.encode(bytes))
            }
        };
        entries.push((key, text));
    }
    StoredStrings {
        entries,
        base64_keys: base64_keys.join(","),
    }
}

/// Every form a value's bytes may take in a store's error message, which
/// such a message must not contain: the bytes, their standard base64 (how
/// a value that is not UTF-8 is stored, and how a request body may be
/// quoted), and the stored text JSON-escaped (how a JSON body quotes it).
pub fn sensitive_forms(value: &SecretValue) -> Vec<Zeroizing<Vec<u8>>> {
    let mut forms = Vec::with_capacity(value.len() * 3);
    for (_, bytes) in value.iter() {
        forms.push(Zeroizing::new(bytes.to_vec()));
        forms.push(Zeroizing::new(STANDARD.encode(bytes).into_bytes()));
        if let Ok(text) = std::str::from_utf8(bytes) {
            let escaped = Zeroizing::new(serde_json::to_string(text).expect("a string serializes"));
            let inner = &escaped.as_bytes()[1..escaped.len() - 1];
            if inner != bytes {
                forms.push(Zeroizing::new(inner.to_vec()));
            }
        }
    }
    forms
}

/// Reads a stored map back, skipping reserved keys; every error names the
/// secret (`path`), keys and rules, never data.
pub fn decode_map(path: &str, map: &Map<String, Value>) -> Result<SecretValue, UpstreamError> {
    let unreadable = |reason: String| UpstreamError::Unreadable {
        path: path.to_owned(),
        reason,
    };
    let base64_keys: Vec<&str> = match map.get(BASE64_KEYS) {
        None => Vec::new(),
        Some(Value::String(list)) if list.is_empty() => Vec::new(),
        Some(Value::String(list)) => list.split(',').collect(),
        Some(_) => return Err(unreadable(format!("`{BASE64_KEYS}` is not a string"))),
    };
    let mut value = SecretValue::new();
    for (key, entry) in map {
        if key.starts_with(RESERVED_PREFIX) {
            continue;
        }
        if !is_valid_key_name(key) {
            return Err(unreadable(format!(
                "key {key:?} is not a valid key name (letters, digits, `.`, `_`, `-`)"
            )));
        }
        let Value::String(text) = entry else {
            return Err(unreadable(format!(
                "the value of key {key:?} is not a string"
            )));
        };
        let bytes = if base64_keys.contains(&key.as_str()) {
            Zeroizing::new(STANDARD.decode(text).map_err(|_| {
                unreadable(format!(
                    "key {key:?} is listed in `{BASE64_KEYS}` but its value is not base64"
                ))
            })?)
        } else {
            Zeroizing::new(text.as_bytes().to_vec())
        };
        value
            .insert(key.clone(), bytes)
            .map_err(|e| unreadable(e.to_string()))?;
    }
    if let Some(missing) = base64_keys.iter().find(|k| !map.contains_key(**k)) {
        return Err(unreadable(format!(
            "`{BASE64_KEYS}` lists key {missing:?}, which is absent"
        )));
    }
    Ok(value)
}

/// SHA-256 over the length-prefixed sorted pairs: equal exactly when the values are.
fn digest(value: &SecretValue) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((value.len() as u64).to_be_bytes());
    for (key, bytes) in value.iter() {
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    hasher.finalize().into()
}

/// Whether two values are equal, in time independent of where they differ.
pub fn same_value(a: &SecretValue, b: &SecretValue) -> bool {
    let (da, db) = (digest(a), digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(pairs: &[(&str, &[u8])]) -> SecretValue {
        let mut v = SecretValue::new();
        for (k, b) in pairs {
            v.insert(*k, b.to_vec()).unwrap();
        }
        v
    }

    fn as_map(s: &StoredStrings<'_>) -> Map<String, Value> {
        let mut map: Map<String, Value> = s
            .entries
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        if !s.base64_keys.is_empty() {
            map.insert(BASE64_KEYS.into(), Value::String(s.base64_keys.clone()));
        }
        map
    }

    #[test]
    fn utf8_as_is_other_bytes_as_listed_base64_and_back() {
        let v = value(&[("user", b"app"), ("blob", &[0xff, 0x00, 0xfe])]);
        let s = stored_strings(&v);
        assert_eq!(s.base64_keys, "blob");
        assert_eq!(s.entries[1].1.as_str(), "app");
        let back = decode_map("p", &as_map(&s)).unwrap();
        assert!(same_value(&back, &v));
    }

    #[test]
    fn a_broken_map_is_unreadable_naming_keys_not_data() {
        let mut map = Map::new();
        map.insert("k".into(), Value::String("not base64 !!".into()));
        map.insert(BASE64_KEYS.into(), Value::String("k,gone".into()));
        let e = decode_map("p", &map).unwrap_err().to_string();
        assert!(e.contains("\"k\"") && !e.contains("not base64 !!"), "{e}");
        map.insert(BASE64_KEYS.into(), Value::String("gone".into()));
        let e = decode_map("p", &map).unwrap_err().to_string();
        assert!(e.contains("gone"), "{e}");
    }

    #[test]
    fn same_value_sees_keys_and_bytes() {
        let a = value(&[("a", b"1"), ("b", b"2")]);
        assert!(same_value(&a, &value(&[("b", b"2"), ("a", b"1")])));
        assert!(!same_value(&a, &value(&[("a", b"1"), ("b", b"3")])));
        assert!(!same_value(&a, &value(&[("a", b"1"), ("c", b"2")])));
        assert!(!same_value(&a, &value(&[("a", b"12")])));
    }
}

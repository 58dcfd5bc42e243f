//! How a [`SecretValue`] is laid out in a KV data map, and back.
//!
//! Each key of the value is a key of the map. A value that is valid UTF-8
//! is stored as that string, so people and other tools (`bao kv get`) see
//! it as it is; any other value is stored as standard base64 and its key is
//! listed, comma-separated, under the reserved key [`BASE64_KEYS`].
//!
//! Reserved keys start with `sealplane:`. A value's key names are
//! `[A-Za-z0-9._-]` only, so a reserved key can never collide with one.
//! The encoding marker lives in the data (not in KV v2 `custom_metadata`)
//! because metadata is per secret and written by a separate request: only
//! the data is written atomically with the version it describes.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealplane_proto::sealed::{SecretValue, is_valid_key_name};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::upstream::UpstreamError;

/// Prefix of every key Sealplane reserves in a KV data map.
pub const RESERVED_PREFIX: &str = "sealplane:";

/// Lists (comma-separated) the keys whose values are stored as base64.
pub const BASE64_KEYS: &str = "sealplane:base64-keys";

/// KV v1 only: `sealplane` on secrets Sealplane manages (v1 has no metadata).
pub const V1_MANAGED_BY: &str = "sealplane:managed-by";

/// KV v1 only: the uri of the last upload written here.
pub const V1_URI: &str = "sealplane:uri";

/// KV v1 only: the request id of the last upload written here.
pub const V1_REQUEST_ID: &str = "sealplane:request-id";

/// KV v1 only: Sealplane's own version counter (v1 keeps no versions).
pub const V1_VERSION: &str = "sealplane:version";

/// A KV data map that holds value bytes; its strings are zeroized on drop.
#[derive(Default)]
pub struct KvData(pub Map<String, Value>);

impl Drop for KvData {
    fn drop(&mut self) {
        for v in self.0.values_mut() {
            if let Value::String(s) = v {
                s.zeroize();
            }
        }
    }
}

impl KvData {
    /// The map's string entries, for `kv1::set` (which takes a `HashMap`).
    pub fn as_str_map(&self) -> HashMap<&str, &str> {
        self.0
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s)))
            .collect()
    }
}

/// The data map for `value`, plus `reserved` entries (KV v1 markers).
pub fn encode(value: &SecretValue, reserved: &[(&str, String)]) -> KvData {
    let mut data = KvData::default();
    let mut base64_keys = Vec::new();
    for (key, bytes) in value.iter() {
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => {
                base64_keys.push(key);
                STANDARD.encode(bytes)
            }
        };
        data.0.insert(key.to_owned(), Value::String(text));
    }
    if !base64_keys.is_empty() {
        data.0
            .insert(BASE64_KEYS.to_owned(), Value::String(base64_keys.join(",")));
    }
    for (key, text) in reserved {
        data.0
            .insert((*key).to_owned(), Value::String(text.clone()));
    }
    data
}

/// A data map read back, without Sealplane's reserved entries.
pub struct Decoded {
    /// The secret's value.
    pub value: SecretValue,
}

/// The reserved entries only: enough to tell whether a KV v1 secret is Sealplane's.
pub fn reserved_of(data: &Value) -> HashMap<String, String> {
    data.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(RESERVED_PREFIX))
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
        .collect()
}

/// Decodes a data map; every error names keys and rules, never data.
pub fn decode(path: &str, data: &Value) -> Result<Decoded, UpstreamError> {
    let unreadable = |reason: String| UpstreamError::Unreadable {
        path: path.to_owned(),
        reason,
    };
    let Some(map) = data.as_object() else {
        return Err(unreadable("its data is not a key/value map".to_owned()));
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
    Ok(Decoded { value })
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

    #[test]
    fn utf8_stays_text_and_other_bytes_become_listed_base64() {
        let v = value(&[("user", b"app"), ("key", &[0xff, 0x00, 0xfe])]);
        let data = encode(&v, &[]);
        assert_eq!(data.0["user"], "app");
        assert_eq!(data.0["key"], STANDARD.encode([0xff, 0x00, 0xfe]));
        assert_eq!(data.0[BASE64_KEYS], "key");
        let back = decode("p", &Value::Object(data.0.clone())).unwrap();
        assert!(same_value(&back.value, &v));
    }

    #[test]
    fn reserved_entries_are_stripped_on_read() {
        let v = value(&[("a", b"1")]);
        let data = encode(&v, &[(V1_MANAGED_BY, "sealplane".to_owned())]);
        let data = Value::Object(data.0.clone());
        let back = decode("p", &data).unwrap();
        assert_eq!(back.value.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(reserved_of(&data)[V1_MANAGED_BY], "sealplane");
    }

    #[test]
    fn refuses_what_it_cannot_represent_without_quoting_data() {
        let data = serde_json::json!({"a": 5});
        let e = decode("p", &data).err().unwrap().to_string();
        assert!(e.contains("not a string"), "{e}");
        let data = serde_json::json!({"a": "%%marker%%", BASE64_KEYS: "a"});
        let e = decode("p", &data).err().unwrap().to_string();
        assert!(e.contains("not base64") && !e.contains("marker"), "{e}");
    }

    #[test]
    fn equality_sees_every_byte_and_key() {
        let a = value(&[("a", b"1"), ("b", b"2")]);
        assert!(same_value(&a, &value(&[("a", b"1"), ("b", b"2")])));
        assert!(!same_value(&a, &value(&[("a", b"1"), ("b", b"3")])));
        assert!(!same_value(&a, &value(&[("a", b"1")])));
        assert!(!same_value(&a, &value(&[("a", b"1"), ("c", b"2")])));
    }
}

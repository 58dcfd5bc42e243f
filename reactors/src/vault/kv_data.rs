//! How a [`SecretValue`] is laid out in a KV data map, and back: the shared
//! map layout of [`crate::value_map`] (UTF-8 as is, other bytes as listed
//! base64), plus KV v1's management markers, which KV v1 can only keep in
//! the data itself.

use std::collections::HashMap;

use sealplane_proto::sealed::SecretValue;
use serde_json::{Map, Value};
use zeroize::Zeroize;

use crate::upstream::UpstreamError;
use crate::value_map;

pub use crate::value_map::{BASE64_KEYS, RESERVED_PREFIX, same_value};

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
    let stored = value_map::stored_strings(value);
    for (key, text) in &stored.entries {
        data.0
            .insert((*key).to_owned(), Value::String(text.as_str().to_owned()));
    }
    if !stored.base64_keys.is_empty() {
        data.0
            .insert(BASE64_KEYS.to_owned(), Value::String(stored.base64_keys));
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
    let Some(map) = data.as_object() else {
        return Err(UpstreamError::Unreadable {
            path: path.to_owned(),
            reason: "its data is not a key/value map".to_owned(),
        });
    };
    Ok(Decoded {
        value: value_map::decode_map(path, map)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

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

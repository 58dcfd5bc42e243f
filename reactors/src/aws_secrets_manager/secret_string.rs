//! How a [`SecretValue`] is laid out in a secret's `SecretString`, and how
//! Sealplane names the versions it writes.
//!
//! The `SecretString` is a JSON object, one entry per key of the value (the
//! shape the AWS console and most AWS tooling expect). A value that is valid
//! UTF-8 is stored as that string; any other value as standard base64, its
//! key listed, comma-separated, under the reserved key
//! [`BASE64_KEYS`] (`sealplane:base64-keys`, the same layout as the Vault
//! store's KV data). The list lives in the JSON, not in a tag, because tags
//! belong to the secret while the encoding belongs to one version: only the
//! `SecretString` is written atomically with the version it describes.
//!
//! Version ids: Sealplane writes each version with the client request token
//! `sealplane-<n>-<request id without dashes>`, which AWS makes the
//! version id. `n` is Sealplane's version number for the path, so the number
//! is stored atomically with the version, and a retried request that
//! already succeeded finds its own id current (exactly once).

use sealplane_proto::sealed::SecretValue;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::upstream::UpstreamError;
use crate::value_map;
pub use crate::value_map::{BASE64_KEYS, same_value};

/// Prefix of the version ids (client request tokens) Sealplane writes.
pub const VERSION_ID_PREFIX: &str = "sealplane-";

/// The `SecretString` for `value`, and the strings no error text may contain
/// (each value as stored, raw and JSON-escaped).
pub fn encode(value: &SecretValue) -> (Zeroizing<String>, Vec<Zeroizing<String>>) {
    let value_map::StoredStrings {
        entries,
        base64_keys: list,
    } = value_map::stored_strings(value);
    let capacity = 64
        + entries
            .iter()
            .map(|(k, v)| k.len() + 2 * v.len() + 8)
            .sum::<usize>();
    let mut json = Zeroizing::new(Vec::with_capacity(capacity));
    let mut ser = serde_json::Serializer::new(&mut *json);
    let mut map = ser
        .serialize_map(Some(entries.len() + 1))
        .expect("serializing into a Vec cannot fail");
    for (key, text) in &entries {
        map.serialize_entry(key, text.as_str())
            .expect("serializing into a Vec cannot fail");
    }
    if !list.is_empty() {
        map.serialize_entry(BASE64_KEYS, &list)
            .expect("serializing into a Vec cannot fail");
    }
    map.end().expect("serializing into a Vec cannot fail");
    let mut sensitive = Vec::with_capacity(entries.len() * 2);
    for (_, text) in entries {
        let escaped = serde_json::to_string(text.as_str()).expect("a string serializes");
        let escaped = Zeroizing::new(escaped);
        let inner = escaped[1..escaped.len() - 1].to_owned();
        if inner != *text {
            sensitive.push(Zeroizing::new(inner));
        }
        sensitive.push(text);
    }
    let text = String::from_utf8(std::mem::take(&mut *json)).expect("serde_json writes UTF-8");
    (Zeroizing::new(text), sensitive)
}

/// Decodes a `SecretString`; every error names keys and rules, never data.
pub fn decode(name: &str, secret_string: &str) -> Result<SecretValue, UpstreamError> {
    let unreadable = |reason: String| UpstreamError::Unreadable {
        path: name.to_owned(),
        reason,
    };
    // serde_json's error text can quote input: it is never formatted.
    let parsed: Value = serde_json::from_str(secret_string).map_err(|_| {
        unreadable("its SecretString is not a JSON object of key → string".to_owned())
    })?;
    let parsed = ZeroizingJson(parsed);
    let Some(map) = parsed.0.as_object() else {
        return Err(unreadable(
            "its SecretString is JSON but not an object of key → string".to_owned(),
        ));
    };
    value_map::decode_map(name, map)
}

/// A parsed `SecretString` whose strings are zeroized on drop.
struct ZeroizingJson(Value);

impl Drop for ZeroizingJson {
    fn drop(&mut self) {
        fn wipe(v: &mut Value) {
            match v {
                Value::String(s) => zeroize::Zeroize::zeroize(s),
                Value::Array(items) => items.iter_mut().for_each(wipe),
                Value::Object(map) => map.values_mut().for_each(wipe),
                _ => {}
            }
        }
        wipe(&mut self.0);
    }
}

/// The version id (client request token) of Sealplane's version `n` for `request_id`:
/// 32 to 64 characters, as AWS requires.
pub fn version_id(n: u64, request_id: Uuid) -> String {
    format!("{VERSION_ID_PREFIX}{n}-{}", request_id.simple())
}

/// Sealplane's version number and request id in a version id it wrote; `None` for any other.
pub fn parse_version_id(id: &str) -> Option<(u64, Uuid)> {
    let (n, request) = id.strip_prefix(VERSION_ID_PREFIX)?.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || request.len() != 32 {
        return None;
    }
    Some((n.parse().ok()?, Uuid::try_parse(request).ok()?))
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
        let (text, _) = encode(&v);
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["user"], "app");
        assert_eq!(json["key"], STANDARD.encode([0xff, 0x00, 0xfe]));
        assert_eq!(json[BASE64_KEYS], "key");
        assert!(same_value(&decode("n", &text).unwrap(), &v));
        let (text, _) = encode(&value(&[("a", b"1")]));
        assert_eq!(*text, r#"{"a":"1"}"#);
    }

    #[test]
    fn sensitive_strings_include_escaped_forms() {
        let v = value(&[("a", b"q\"uote"), ("b", &[0xff])]);
        let (_, sensitive) = encode(&v);
        let sensitive: Vec<&str> = sensitive.iter().map(|s| s.as_str()).collect();
        assert!(sensitive.contains(&"q\"uote"));
        assert!(sensitive.contains(&"q\\\"uote"));
        assert!(sensitive.contains(&STANDARD.encode([0xff]).as_str()));
    }

    #[test]
    fn refuses_what_it_cannot_represent_without_quoting_data() {
        for (text, expect) in [
            ("%%marker%% not json", "not a JSON object"),
            ("\"%%marker%%\"", "not an object"),
            (r#"{"a": 5}"#, "not a string"),
            (
                r#"{"a": "%%marker%%", "sealplane:base64-keys": "a"}"#,
                "not base64",
            ),
            (r#"{"a b": "%%marker%%"}"#, "not a valid key name"),
            (r#"{"sealplane:base64-keys": "gone"}"#, "absent"),
        ] {
            let e = decode("n", text).err().unwrap();
            let shown = format!("{e} {e:?}");
            assert!(shown.contains(expect), "{shown}");
            assert!(!shown.contains("marker"), "{shown}");
        }
    }

    #[test]
    fn reserved_keys_are_stripped() {
        let v = decode("n", r#"{"a":"1","sealplane:other":"x"}"#).unwrap();
        assert_eq!(v.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn equality_sees_every_byte_and_key() {
        let a = value(&[("a", b"1"), ("b", b"2")]);
        assert!(same_value(&a, &value(&[("a", b"1"), ("b", b"2")])));
        assert!(!same_value(&a, &value(&[("a", b"1"), ("b", b"3")])));
        assert!(!same_value(&a, &value(&[("a", b"1")])));
        assert!(!same_value(&a, &value(&[("a", b"1"), ("c", b"2")])));
    }

    #[test]
    fn version_ids_round_trip_within_aws_length_limits() {
        let request = Uuid::new_v4();
        for n in [1, 42, u64::MAX] {
            let id = version_id(n, request);
            assert!((32..=64).contains(&id.len()), "{id}");
            assert_eq!(parse_version_id(&id), Some((n, request)));
        }
        for other in [
            "5f0c8a52-3b1e-4a7d-9c2e-7d1f0e9b6a11",
            "sealplane-x-0123456789abcdef0123456789abcdef",
            "sealplane-1-short",
            "sealplane--0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(parse_version_id(other), None, "{other}");
        }
    }
}

//! The sealed-payload format (SPEC §3 steps 3 and 5): `sealctl` seals a
//! secret value to a reactor's one-time X25519 key, the reactor opens it.
//!
//! Wire format: a libsodium `crypto_box_seal` sealed box (48 bytes overhead)
//! around the JSON `{"request_id": "<uuid>", "uri": "<store>://<path>",
//! "purpose": {"kind": "put", "adopt": false} | {"kind": "verify"},
//! "data": {"<key>": "<base64 standard>"}}`.
//!
//! Every buffer that holds value bytes (the map values, the JSON text, the
//! base64 text) is zeroized when dropped, and no error or `Debug` output of
//! this module ever contains value bytes: errors travel into events and logs
//! (SPEC §1.1).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crypto_box::{PublicKey, SecretKey};
use rand_core::OsRng;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::upload::Purpose;

/// Bytes a sealed box adds to its plaintext: ephemeral public key + MAC tag.
pub const SEAL_OVERHEAD: usize = crate::limits::SEALED_BOX_OVERHEAD;

/// Longest key name, as for Kubernetes Secret keys.
pub const MAX_KEY_NAME_LEN: usize = 253;

/// Why a value could not be built, sealed or opened; no variant carries value bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A key name outside `[A-Za-z0-9._-]{1,253}`.
    #[error(
        "key name {0:?} is not allowed: use 1 to 253 letters, digits, `.`, `_` or `-` (like a Kubernetes Secret key)"
    )]
    InvalidKeyName(String),
    /// The same key name given twice.
    #[error("key {0:?} is given more than once: give each key once")]
    DuplicateKey(String),
    /// A secret with no key at all.
    #[error("the secret has no key: give at least one `key=value`")]
    EmptySecret,
    /// The sealing primitive failed (does not happen for in-memory sizes).
    #[error("sealing the payload failed; nothing was sent")]
    SealFailed,
    /// The ciphertext is tampered, truncated, or sealed to another key.
    #[error(
        "the sealed payload does not open with this request's one-time key: it was tampered with or sealed to another key; request a new upload key and retry"
    )]
    NotSealedForThisKey,
    /// The box opened but its content is not a valid payload.
    #[error("the sealed payload opened but is malformed ({0}); re-seal it with a current sealctl")]
    MalformedPayload(&'static str),
    /// The payload was sealed for another upload request (replay).
    #[error(
        "the sealed payload belongs to request {found}, not to request {expected}; it was refused to prevent replay"
    )]
    WrongRequest {
        /// The request the reactor is serving.
        expected: Uuid,
        /// The request named inside the payload.
        found: Uuid,
    },
    /// The payload was sealed for another purpose (a verification's value
    /// passed off as a put, or the other way round).
    #[error(
        "the sealed payload was sealed for {found:?}, not for {expected:?}; it was refused so that no value is stored or compared against the requester's intent"
    )]
    WrongPurpose {
        /// The purpose of the request the reactor is serving.
        expected: Purpose,
        /// The purpose named inside the payload.
        found: Purpose,
    },
    /// The payload was sealed for another secret uri (replay to another path).
    #[error(
        "the sealed payload targets {found:?}, not {expected:?}; it was refused to prevent writing it to another path"
    )]
    WrongUri {
        /// The uri of the request the reactor is serving.
        expected: String,
        /// The uri named inside the payload.
        found: String,
    },
    /// A sealed file names another sealing key than the one it was
    /// submitted with.
    #[error(
        "the sealed file names sealing key {found:?}, not {expected:?}; it was refused: seal it again with `sealctl seal`"
    )]
    WrongSealingKey {
        /// The key the file was submitted with.
        expected: String,
        /// The key named inside the payload.
        found: String,
    },
}

/// Whether `key` is a valid key name: `[A-Za-z0-9._-]{1,253}`.
pub fn is_valid_key_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_NAME_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A secret's data: key name → value bytes; values zeroize on drop and never print.
#[derive(Clone, Default)]
pub struct SecretValue {
    entries: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

impl SecretValue {
    /// An empty value; add keys with [`SecretValue::insert`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key, refusing invalid or repeated key names.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Zeroizing<Vec<u8>>>,
    ) -> Result<(), SealError> {
        let key = key.into();
        if !is_valid_key_name(&key) {
            return Err(SealError::InvalidKeyName(key));
        }
        // Refused rather than overwritten: `user=a user=b` on a command line
        // is a mistake the user should see, not a silent last-one-wins.
        if self.entries.contains_key(&key) {
            return Err(SealError::DuplicateKey(key));
        }
        self.entries.insert(key, value.into());
        Ok(())
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(|v| v.as_slice())
    }

    /// Key names in sorted order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// `(key, value)` pairs in sorted key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of the value lengths in bytes (what size limits apply to).
    pub fn total_bytes(&self) -> usize {
        self.entries.values().map(|v| v.len()).sum()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValue")
            .field("keys", &self.entries.keys().collect::<Vec<_>>())
            .field("values", &format_args!("[redacted]"))
            .finish()
    }
}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            let encoded = Zeroizing::new(STANDARD.encode(v.as_slice()));
            map.serialize_entry(k, encoded.as_str())?;
        }
        map.end()
    }
}

/// One base64 value, decoded straight into a zeroizing buffer.
struct Base64Value(Zeroizing<Vec<u8>>);

impl<'de> Deserialize<'de> for Base64Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Base64Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Base64Value, E> {
                // Static message: the decoder's own error could quote input.
                STANDARD
                    .decode(s)
                    .map(|v| Base64Value(Zeroizing::new(v)))
                    .map_err(|_| E::custom("value is not standard base64"))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Base64Value, E> {
                let s = Zeroizing::new(s);
                self.visit_str(&s)
            }
        }
        deserializer.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of key names to base64 values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretValue, A::Error> {
                let mut value = SecretValue::new();
                while let Some(key) = map.next_key::<String>()? {
                    let Base64Value(bytes) = map.next_value()?;
                    value
                        .insert(key, bytes)
                        .map_err(|_| de::Error::custom("invalid or repeated key name"))?;
                }
                Ok(value)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// What `sealctl` seals: the value plus the request, uri and purpose it is
/// meant for, so a box cannot be replayed to another request or path, nor
/// turned from a verification into a put (SPEC §1.4).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    request_id: Uuid,
    uri: String,
    purpose: Purpose,
    data: SecretValue,
}

impl Payload {
    /// A payload for `request_id`, `uri` and `purpose`; refuses a value
    /// with no key.
    pub fn new(
        request_id: Uuid,
        uri: impl Into<String>,
        purpose: Purpose,
        data: SecretValue,
    ) -> Result<Self, SealError> {
        if data.is_empty() {
            return Err(SealError::EmptySecret);
        }
        Ok(Self {
            request_id,
            uri: uri.into(),
            purpose,
            data,
        })
    }

    /// What the payload is for.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The upload request this payload answers.
    pub fn request_id(&self) -> Uuid {
        self.request_id
    }

    /// The secret uri (`<store>://<path>`) this payload targets.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The secret's data.
    pub fn data(&self) -> &SecretValue {
        &self.data
    }

    /// The payload's JSON, in a buffer zeroized on drop.
    pub fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, SealError> {
        json_of(self, &self.data, self.uri.len())
    }
}

/// `payload`'s JSON in a zeroizing buffer sized up front so it never
/// reallocates: a reallocation would leave a copy of the JSON in freed
/// memory that nothing zeroizes. Bound: JSON escaping is at most 6 bytes
/// per input byte; `text_len` is the payload's other strings' length.
fn json_of<T: Serialize>(
    payload: &T,
    data: &SecretValue,
    text_len: usize,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let capacity = 128
        + 6 * text_len
        + data
            .entries
            .iter()
            .map(|(k, v)| 8 + 6 * k.len() + 4 * v.len().div_ceil(3))
            .sum::<usize>();
    let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
    serde_json::to_writer(&mut *buf, payload).map_err(|_| SealError::SealFailed)?;
    Ok(buf)
}

/// Seals `json` of a payload holding `data` to `recipient` (libsodium
/// sealed box); refuses a value with no key (a payload can also come from
/// deserialization, so its constructor's check is made again).
fn seal_json(
    json: Result<Zeroizing<Vec<u8>>, SealError>,
    data: &SecretValue,
    recipient: &PublicKey,
) -> Result<Vec<u8>, SealError> {
    if data.is_empty() {
        return Err(SealError::EmptySecret);
    }
    recipient
        .seal(&mut OsRng, &json?)
        .map_err(|_| SealError::SealFailed)
}

/// Opens a sealed box with `key` and parses its JSON as `T`. serde_json's
/// error text can quote input ("invalid type: string ..."), so only its
/// category survives, said as `expected` for a JSON of the wrong shape.
fn unseal_json<T: serde::de::DeserializeOwned>(
    ciphertext: &[u8],
    key: &SecretKey,
    expected: &'static str,
) -> Result<T, SealError> {
    let json = Zeroizing::new(
        key.unseal(ciphertext)
            .map_err(|_| SealError::NotSealedForThisKey)?,
    );
    serde_json::from_slice(&json).map_err(|e| {
        SealError::MalformedPayload(match e.classify() {
            serde_json::error::Category::Data => expected,
            _ => "not valid JSON",
        })
    })
}

/// Seals `payload` to the one-time `recipient` key (libsodium sealed box).
pub fn seal(payload: &Payload, recipient: &PublicKey) -> Result<Vec<u8>, SealError> {
    seal_json(payload.to_json(), &payload.data, recipient)
}

/// Opens a sealed payload and returns its value only if it names the
/// expected request, uri and purpose.
pub fn open(
    ciphertext: &[u8],
    key: &SecretKey,
    expected_request_id: Uuid,
    expected_uri: &str,
    expected_purpose: Purpose,
) -> Result<SecretValue, SealError> {
    let payload: Payload = unseal_json(
        ciphertext,
        key,
        "expected {request_id, uri, purpose, data} with valid key names and base64 values",
    )?;
    if payload.data.is_empty() {
        return Err(SealError::MalformedPayload("the secret has no key"));
    }
    if payload.request_id != expected_request_id {
        return Err(SealError::WrongRequest {
            expected: expected_request_id,
            found: payload.request_id,
        });
    }
    if payload.uri != expected_uri {
        return Err(SealError::WrongUri {
            expected: expected_uri.to_owned(),
            found: payload.uri,
        });
    }
    if payload.purpose != expected_purpose {
        return Err(SealError::WrongPurpose {
            expected: expected_purpose,
            found: payload.purpose,
        });
    }
    Ok(payload.data)
}

/// What `sealctl seal` seals to a sealing key for a file in git (SPEC
/// §11): the value plus the uri and the sealing key id it is meant for,
/// so a file copied to another path, store or key is refused when opened.
/// It names no request: applying the same file again is meant to work
/// (and changes nothing when the value did not change).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePayload {
    /// Always [`FILE_PAYLOAD_FORMAT`]: a file payload never parses as an
    /// upload [`Payload`] or the other way round.
    format: String,
    uri: String,
    key_id: String,
    data: SecretValue,
}

/// The `format` of every [`FilePayload`].
pub const FILE_PAYLOAD_FORMAT: &str = "sealplane-sealed-file-v1";

impl FilePayload {
    /// A payload for `uri` sealed to sealing key `key_id`; refuses a value with no key.
    pub fn new(
        uri: impl Into<String>,
        key_id: impl Into<String>,
        data: SecretValue,
    ) -> Result<Self, SealError> {
        if data.is_empty() {
            return Err(SealError::EmptySecret);
        }
        Ok(Self {
            format: FILE_PAYLOAD_FORMAT.to_owned(),
            uri: uri.into(),
            key_id: key_id.into(),
            data,
        })
    }

    /// The secret's data.
    pub fn data(&self) -> &SecretValue {
        &self.data
    }

    /// The same value for `key_id` (a reseal).
    pub fn for_key(self, key_id: impl Into<String>) -> Self {
        Self {
            key_id: key_id.into(),
            ..self
        }
    }

    fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, SealError> {
        json_of(self, &self.data, self.uri.len() + self.key_id.len())
    }
}

/// Seals a file payload to a sealing key's public half.
pub fn seal_file(payload: &FilePayload, recipient: &PublicKey) -> Result<Vec<u8>, SealError> {
    seal_json(payload.to_json(), &payload.data, recipient)
}

/// Opens a sealed file with sealing key `expected_key_id`'s private half
/// and returns its payload only if it names `expected_uri` and that key.
pub fn open_file(
    ciphertext: &[u8],
    key: &SecretKey,
    expected_uri: &str,
    expected_key_id: &str,
) -> Result<FilePayload, SealError> {
    let payload: FilePayload = unseal_json(
        ciphertext,
        key,
        "expected {format, uri, key_id, data} with valid key names and base64 values",
    )?;
    if payload.format != FILE_PAYLOAD_FORMAT {
        return Err(SealError::MalformedPayload("not a sealed file payload"));
    }
    if payload.data.is_empty() {
        return Err(SealError::MalformedPayload("the secret has no key"));
    }
    if payload.uri != expected_uri {
        return Err(SealError::WrongUri {
            expected: expected_uri.to_owned(),
            found: payload.uri,
        });
    }
    if payload.key_id != expected_key_id {
        return Err(SealError::WrongSealingKey {
            expected: expected_key_id.to_owned(),
            found: payload.key_id,
        });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER: &str = "Zq9-MARKER-hunter2-7xK";
    const URI: &str = "vault-prod://payments/db";
    const PUT: Purpose = Purpose::Put { adopt: false };

    fn value() -> SecretValue {
        let mut v = SecretValue::new();
        v.insert("password", MARKER.as_bytes().to_vec()).unwrap();
        v.insert("user", b"app".to_vec()).unwrap();
        v
    }

    fn keypair() -> (SecretKey, PublicKey) {
        let sk = SecretKey::generate(&mut OsRng);
        let pk = sk.public_key();
        (sk, pk)
    }

    fn sealed(request_id: Uuid, uri: &str, pk: &PublicKey) -> Vec<u8> {
        seal(&Payload::new(request_id, uri, PUT, value()).unwrap(), pk).unwrap()
    }

    /// Seals raw bytes, to reach the malformed-payload paths.
    fn seal_raw(json: &[u8], pk: &PublicKey) -> Vec<u8> {
        pk.seal(&mut OsRng, json).unwrap()
    }

    fn assert_no_marker(e: &SealError) {
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(MARKER), "leak in {text}");
            // The base64 form of the marker must not leak either.
            assert!(!text.contains(&STANDARD.encode(MARKER)), "leak in {text}");
        }
    }

    #[test]
    fn round_trip() {
        let (sk, pk) = keypair();
        let id = Uuid::new_v4();
        let opened = open(&sealed(id, URI, &pk), &sk, id, URI, PUT).unwrap();
        assert_eq!(opened.get("password"), Some(MARKER.as_bytes()));
        assert_eq!(opened.get("user"), Some(&b"app"[..]));
        assert_eq!(opened.keys().collect::<Vec<_>>(), ["password", "user"]);
        assert_eq!(opened.total_bytes(), MARKER.len() + 3);
    }

    #[test]
    fn round_trip_binary_and_empty_values() {
        let (sk, pk) = keypair();
        let id = Uuid::new_v4();
        let mut v = SecretValue::new();
        v.insert("bin", (0u8..=255).collect::<Vec<_>>()).unwrap();
        v.insert("empty", Vec::new()).unwrap();
        let ct = seal(&Payload::new(id, URI, PUT, v).unwrap(), &pk).unwrap();
        let opened = open(&ct, &sk, id, URI, PUT).unwrap();
        assert_eq!(opened.get("bin").unwrap().len(), 256);
        assert_eq!(opened.get("empty"), Some(&[][..]));
    }

    #[test]
    fn json_shape_is_base64_values() {
        let id = Uuid::new_v4();
        let p = Payload::new(id, URI, PUT, value()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&p.to_json().unwrap()).unwrap();
        assert_eq!(json["request_id"], id.to_string());
        assert_eq!(json["uri"], URI);
        assert_eq!(json["data"]["password"], STANDARD.encode(MARKER));
        assert_eq!(json["data"]["user"], "YXBw");
    }

    #[test]
    fn ciphertext_is_json_plus_48_bytes() {
        let (_, pk) = keypair();
        let p = Payload::new(Uuid::new_v4(), URI, PUT, value()).unwrap();
        let ct = seal(&p, &pk).unwrap();
        assert_eq!(SEAL_OVERHEAD, 48);
        assert_eq!(ct.len(), p.to_json().unwrap().len() + 48);
    }

    #[test]
    fn tampered_ciphertext_is_refused() {
        let (sk, pk) = keypair();
        let id = Uuid::new_v4();
        let ct = sealed(id, URI, &pk);
        for i in [0, 31, 32, 47, 48, ct.len() - 1] {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            let e = open(&bad, &sk, id, URI, PUT).unwrap_err();
            assert_eq!(e, SealError::NotSealedForThisKey);
            assert_no_marker(&e);
        }
        let e = open(&ct[..40], &sk, id, URI, PUT).unwrap_err();
        assert_eq!(e, SealError::NotSealedForThisKey);
        assert_eq!(
            open(&[], &sk, id, URI, PUT).unwrap_err(),
            SealError::NotSealedForThisKey
        );
    }

    #[test]
    fn sealed_to_another_key_is_refused() {
        let (sk, _) = keypair();
        let (_, other_pk) = keypair();
        let id = Uuid::new_v4();
        let e = open(&sealed(id, URI, &other_pk), &sk, id, URI, PUT).unwrap_err();
        assert_eq!(e, SealError::NotSealedForThisKey);
        assert_no_marker(&e);
    }

    #[test]
    fn payload_for_another_request_is_refused() {
        let (sk, pk) = keypair();
        let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
        let e = open(&sealed(other, URI, &pk), &sk, id, URI, PUT).unwrap_err();
        assert_eq!(
            e,
            SealError::WrongRequest {
                expected: id,
                found: other
            }
        );
        assert_no_marker(&e);
    }

    #[test]
    fn payload_for_another_uri_is_refused() {
        let (sk, pk) = keypair();
        let id = Uuid::new_v4();
        let e = open(
            &sealed(id, "vault-prod://payments/other", &pk),
            &sk,
            id,
            URI,
            PUT,
        )
        .unwrap_err();
        assert!(matches!(e, SealError::WrongUri { .. }), "{e:?}");
        assert_no_marker(&e);
    }

    #[test]
    fn payload_for_another_purpose_is_refused() {
        // A value sealed to be compared must never be stored, nor a put's
        // value be passed off with adopt.
        let (sk, pk) = keypair();
        let id = Uuid::new_v4();
        let verify = seal(
            &Payload::new(id, URI, Purpose::Verify, value()).unwrap(),
            &pk,
        )
        .unwrap();
        let e = open(&verify, &sk, id, URI, PUT).unwrap_err();
        assert_eq!(
            e,
            SealError::WrongPurpose {
                expected: PUT,
                found: Purpose::Verify
            }
        );
        assert_no_marker(&e);
        let adopt = Purpose::Put { adopt: true };
        let e = open(&sealed(id, URI, &pk), &sk, id, URI, adopt).unwrap_err();
        assert!(matches!(e, SealError::WrongPurpose { .. }), "{e:?}");
        // A payload sealed without a purpose (an older sealctl) is refused.
        let b64 = STANDARD.encode(MARKER);
        let old = format!(r#"{{"request_id":"{id}","uri":"{URI}","data":{{"k":"{b64}"}}}}"#);
        let e = open(&seal_raw(old.as_bytes(), &pk), &sk, id, URI, PUT).unwrap_err();
        assert!(matches!(e, SealError::MalformedPayload(_)), "{e:?}");
    }

    #[test]
    fn malformed_payloads_are_refused_without_quoting_them() {
        let (sk, pk) = keypair();
        let id = Uuid::new_v4();
        let b64 = STANDARD.encode(MARKER);
        let cases = [
            format!("{MARKER} not json"),
            format!(r#"{{"request_id":"{id}","uri":"{URI}","data":{{"password":"{MARKER}!"}}}}"#),
            format!(r#"{{"request_id":"{id}","uri":"{URI}","data":{{"password":42}}}}"#),
            format!(r#"{{"request_id":"{MARKER}","uri":"{URI}","data":{{"k":"{b64}"}}}}"#),
            format!(r#"{{"request_id":"{id}","uri":"{URI}","data":{{"bad key":"{b64}"}}}}"#),
            format!(r#"{{"request_id":"{id}","uri":"{URI}","data":{{"k":"{b64}","k":"{b64}"}}}}"#),
            format!(
                r#"{{"request_id":"{id}","uri":"{URI}","data":{{"k":"{b64}"}},"x":"{MARKER}"}}"#
            ),
            format!(r#"{{"request_id":"{id}","uri":"{URI}","data":{{}}}}"#),
            format!(r#"{{"request_id":"{id}","data":{{"k":"{b64}"}}}}"#),
        ];
        for json in cases {
            let e = open(&seal_raw(json.as_bytes(), &pk), &sk, id, URI, PUT).unwrap_err();
            assert!(matches!(e, SealError::MalformedPayload(_)), "{json}: {e:?}");
            assert_no_marker(&e);
        }
    }

    #[test]
    fn debug_never_shows_values() {
        let v = value();
        let text = format!("{v:?}");
        assert_eq!(
            text,
            r#"SecretValue { keys: ["password", "user"], values: [redacted] }"#
        );
        let p = Payload::new(Uuid::new_v4(), URI, PUT, value()).unwrap();
        let text = format!("{p:?} {p:#?}");
        assert!(!text.contains(MARKER) && !text.contains("app\""), "{text}");
        assert!(!text.contains(&STANDARD.encode(MARKER)), "{text}");
        assert!(text.contains("password") && text.contains(URI));
    }

    #[test]
    fn invalid_key_names_are_refused() {
        let mut v = SecretValue::new();
        let long = "a".repeat(254);
        for bad in ["", "a b", "a/b", "a=b", "é", "a\n", long.as_str()] {
            assert_eq!(
                v.insert(bad, b"x".to_vec()),
                Err(SealError::InvalidKeyName(bad.to_owned()))
            );
        }
        let max = "a".repeat(253);
        for good in ["a", "A.b_c-9", ".env", "tls.crt", max.as_str()] {
            v.insert(good, b"x".to_vec()).unwrap();
        }
        assert_eq!(
            v.insert("a", b"y".to_vec()),
            Err(SealError::DuplicateKey("a".into()))
        );
        assert_eq!(v.get("a"), Some(&b"x"[..]));
    }

    #[test]
    fn empty_data_is_refused() {
        assert_eq!(
            Payload::new(Uuid::new_v4(), URI, PUT, SecretValue::new()).unwrap_err(),
            SealError::EmptySecret
        );
    }

    #[test]
    fn given_a_sealed_file_when_opened_for_its_uri_and_key_then_the_value_comes_back() {
        let (sk, pk) = keypair();
        let ct = seal_file(&FilePayload::new(URI, "sk-1", value()).unwrap(), &pk).unwrap();
        let opened = open_file(&ct, &sk, URI, "sk-1").unwrap();
        assert_eq!(opened.data().get("password"), Some(MARKER.as_bytes()));
    }

    #[test]
    fn given_a_sealed_file_when_opened_for_another_uri_or_key_then_it_is_refused() {
        let (sk, pk) = keypair();
        let ct = seal_file(&FilePayload::new(URI, "sk-1", value()).unwrap(), &pk).unwrap();
        let moved = open_file(&ct, &sk, "vault-prod://payments/other", "sk-1").unwrap_err();
        assert!(matches!(moved, SealError::WrongUri { .. }));
        assert_no_marker(&moved);
        let rekeyed = open_file(&ct, &sk, URI, "sk-2").unwrap_err();
        assert!(matches!(rekeyed, SealError::WrongSealingKey { .. }));
        let (other, _) = keypair();
        assert_eq!(
            open_file(&ct, &other, URI, "sk-1").unwrap_err(),
            SealError::NotSealedForThisKey
        );
    }

    #[test]
    fn given_an_upload_payload_when_opened_as_a_file_then_it_is_refused_and_back() {
        let (sk, pk) = keypair();
        let id = Uuid::new_v4();
        let upload = sealed(id, URI, &pk);
        assert!(matches!(
            open_file(&upload, &sk, URI, "sk-1").unwrap_err(),
            SealError::MalformedPayload(_)
        ));
        let file = seal_file(&FilePayload::new(URI, "sk-1", value()).unwrap(), &pk).unwrap();
        assert!(matches!(
            open(&file, &sk, id, URI, PUT).unwrap_err(),
            SealError::MalformedPayload(_)
        ));
    }
}

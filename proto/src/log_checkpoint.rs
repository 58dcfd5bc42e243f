//! Signed log checkpoints (SPEC §7, ADR 0016): the control plane's log
//! key signs `(position, log hash, time, previous checkpoint, key id)`,
//! records the result in the log (event `LogCheckpointed`) and serves it
//! (`Audit.Checkpoint`); `sealctl audit checkpoint` writes it to a
//! self-describing JSON file, and `sealctl audit verify` checks the
//! signature against the key it pinned and the log against the checkpoint.
//!
//! Defined here, once, because both ends need the same bytes: the server
//! signs them and the client verifies them. The log hash is the event
//! store's (ADR 0014), carried as its 32 bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

use crate::v1;

/// Domain-separation tag that starts [`SignedCheckpoint::signed_bytes`].
pub const CHECKPOINT_TAG: &str = "sealplane-log-checkpoint-v1";
/// The `format` of a checkpoint file.
pub const FILE_FORMAT: &str = "sealplane-log-checkpoint-v1";
/// The event type a recorded checkpoint has.
pub const LOG_CHECKPOINTED: &str = "LogCheckpointed";

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// A field does not hold what it must.
    #[error("the checkpoint's {field} is malformed: {problem}")]
    Malformed {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The key id does not name the public key.
    #[error("the checkpoint's key id {key_id} does not name its public key {public_key}")]
    KeyIdMismatch {
        /// The key id it states.
        key_id: String,
        /// The key it carries.
        public_key: String,
    },
    /// The signature is not the key's over these fields.
    #[error("the checkpoint's signature does not verify under its log key {0}")]
    BadSignature(String),
}

/// A point of the log: a position and the log hash there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogPoint {
    /// The last position covered.
    pub position: u64,
    /// The log hash at that position (ADR 0014).
    pub log_hash: [u8; 32],
}

impl LogPoint {
    /// The log hash as lower-case hex.
    pub fn log_hash_hex(&self) -> String {
        hex::encode(self.log_hash)
    }
}

/// A key id: the base64 of the 32-byte Ed25519 public key, the way
/// reactor identities are named and confirmed (ADR 0010).
pub fn key_id_of(public_key: &[u8; 32]) -> String {
    STANDARD.encode(public_key)
}

fn malformed(field: &'static str, problem: impl Into<String>) -> CheckpointError {
    CheckpointError::Malformed {
        field,
        problem: problem.into(),
    }
}

fn hash_of_hex(text: &str, field: &'static str) -> Result<[u8; 32], CheckpointError> {
    let mut out = [0; 32];
    hex::decode_to_slice(text.trim(), &mut out)
        .map_err(|_| malformed(field, "not 64 hex digits"))?;
    Ok(out)
}

fn hash_of_bytes(bytes: &[u8], field: &'static str) -> Result<[u8; 32], CheckpointError> {
    bytes
        .try_into()
        .map_err(|_| malformed(field, "not 32 bytes"))
}

/// Decodes base64 of exactly 32 bytes (a public key).
pub fn public_key_of(text: &str) -> Result<[u8; 32], CheckpointError> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| malformed("public_key", "not base64 of a 32-byte Ed25519 public key"))
}

/// A checkpoint as the log key signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What it vouches for: every event at or before this point.
    pub point: LogPoint,
    /// When it was signed, whole seconds (UTC).
    pub time: DateTime<Utc>,
    /// The checkpoint signed before it, `None` for the first.
    pub previous: Option<LogPoint>,
    /// Which key signed it ([`key_id_of`] its public key).
    pub key_id: String,
    /// The log key's Ed25519 public key.
    pub public_key: [u8; 32],
    /// The signature over [`SignedCheckpoint::signed_bytes`].
    pub signature: [u8; 64],
}

impl SignedCheckpoint {
    /// The bytes the log key signs: each field as its length (u32,
    /// big-endian) and its bytes: the tag, the position (u64 BE), the log
    /// hash (32 bytes), the time (i64 BE seconds since the epoch), the
    /// previous checkpoint (empty for none, else its position (u64 BE) and
    /// log hash: 40 bytes) and the key id (UTF-8).
    pub fn signed_bytes(
        point: &LogPoint,
        time: DateTime<Utc>,
        previous: Option<&LogPoint>,
        key_id: &str,
    ) -> Vec<u8> {
        let position = point.position.to_be_bytes();
        let seconds = time.timestamp().to_be_bytes();
        let previous = previous.map_or_else(Vec::new, |p| {
            let mut b = p.position.to_be_bytes().to_vec();
            b.extend_from_slice(&p.log_hash);
            b
        });
        let fields: [&[u8]; 6] = [
            CHECKPOINT_TAG.as_bytes(),
            &position,
            &point.log_hash,
            &seconds,
            &previous,
            key_id.as_bytes(),
        ];
        crate::encoding::length_prefixed(&fields)
    }

    /// The time as RFC 3339, seconds, UTC.
    pub fn time_text(&self) -> String {
        self.time.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// The public key, base64.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.public_key)
    }

    /// The event data and JSON file form, without the format tag.
    pub fn to_record(&self) -> CheckpointRecord {
        CheckpointRecord {
            position: self.point.position,
            log_hash: self.point.log_hash_hex(),
            time: self.time_text(),
            previous: self.previous.map(|p| PreviousRecord {
                position: p.position,
                log_hash: p.log_hash_hex(),
            }),
            key_id: self.key_id.clone(),
            public_key: self.public_key_base64(),
            signature: STANDARD.encode(self.signature),
        }
    }

    /// Parses the recorded form, checking every field's form (not the
    /// signature: [`SignedCheckpoint::verify`]).
    pub fn from_record(r: &CheckpointRecord) -> Result<Self, CheckpointError> {
        let time = DateTime::parse_from_rfc3339(&r.time)
            .map_err(|_| malformed("time", "not an RFC 3339 time"))?
            .with_timezone(&Utc);
        let previous = r
            .previous
            .as_ref()
            .map(|p| -> Result<LogPoint, CheckpointError> {
                Ok(LogPoint {
                    position: p.position,
                    log_hash: hash_of_hex(&p.log_hash, "previous.log_hash")?,
                })
            })
            .transpose()?;
        let signature = STANDARD
            .decode(r.signature.trim())
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or_else(|| malformed("signature", "not base64 of a 64-byte signature"))?;
        Self::checked(SignedCheckpoint {
            point: LogPoint {
                position: r.position,
                log_hash: hash_of_hex(&r.log_hash, "log_hash")?,
            },
            time,
            previous,
            key_id: r.key_id.clone(),
            public_key: public_key_of(&r.public_key)?,
            signature,
        })
    }

    fn checked(c: SignedCheckpoint) -> Result<Self, CheckpointError> {
        if c.time.timestamp_subsec_nanos() != 0 {
            return Err(malformed("time", "must be whole seconds"));
        }
        if let Some(p) = &c.previous
            && p.position >= c.point.position
        {
            return Err(malformed(
                "previous",
                format!(
                    "position {} is not before the checkpoint's position {}",
                    p.position, c.point.position
                ),
            ));
        }
        if c.key_id != key_id_of(&c.public_key) {
            return Err(CheckpointError::KeyIdMismatch {
                key_id: c.key_id.clone(),
                public_key: c.public_key_base64(),
            });
        }
        Ok(c)
    }

    /// The wire form.
    pub fn to_proto(&self) -> v1::SignedLogCheckpoint {
        v1::SignedLogCheckpoint {
            position: self.point.position,
            log_hash: self.point.log_hash.to_vec(),
            time: self.time_text(),
            previous: self.previous.map(|p| v1::LogCheckpointRef {
                position: p.position,
                log_hash: p.log_hash.to_vec(),
            }),
            key_id: self.key_id.clone(),
            public_key: self.public_key.to_vec(),
            signature: self.signature.to_vec(),
        }
    }

    /// From the wire, checking every field's form (not the signature).
    pub fn from_proto(w: &v1::SignedLogCheckpoint) -> Result<Self, CheckpointError> {
        let time = DateTime::parse_from_rfc3339(&w.time)
            .map_err(|_| malformed("time", "not an RFC 3339 time"))?
            .with_timezone(&Utc);
        let previous = w
            .previous
            .as_ref()
            .map(|p| -> Result<LogPoint, CheckpointError> {
                Ok(LogPoint {
                    position: p.position,
                    log_hash: hash_of_bytes(&p.log_hash, "previous.log_hash")?,
                })
            })
            .transpose()?;
        Self::checked(SignedCheckpoint {
            point: LogPoint {
                position: w.position,
                log_hash: hash_of_bytes(&w.log_hash, "log_hash")?,
            },
            time,
            previous,
            key_id: w.key_id.clone(),
            public_key: hash_of_bytes(&w.public_key, "public_key")?,
            signature: w
                .signature
                .as_slice()
                .try_into()
                .map_err(|_| malformed("signature", "not 64 bytes"))?,
        })
    }
}

/// A checkpoint as JSON: the data of a `LogCheckpointed` event, and the
/// body of a checkpoint file. Field names are stable (README).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRecord {
    /// The last position it covers.
    pub position: u64,
    /// The log hash there, 64 hex digits.
    pub log_hash: String,
    /// When it was signed, RFC 3339 UTC.
    pub time: String,
    /// The checkpoint before it, or `null`.
    pub previous: Option<PreviousRecord>,
    /// The key id (base64 of the public key).
    pub key_id: String,
    /// The log key's Ed25519 public key, base64.
    pub public_key: String,
    /// The Ed25519 signature, base64.
    pub signature: String,
}

/// The previous checkpoint a checkpoint names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousRecord {
    /// Its position.
    pub position: u64,
    /// Its log hash, 64 hex digits.
    pub log_hash: String,
}

/// A checkpoint file (`sealctl audit checkpoint -o json > cp.json`): the
/// format tag, then the record's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointFile {
    /// Always [`FILE_FORMAT`].
    pub format: String,
    /// The last position it covers.
    pub position: u64,
    /// The log hash there, 64 hex digits.
    pub log_hash: String,
    /// When it was signed, RFC 3339 UTC.
    pub time: String,
    /// The checkpoint before it, or `null`.
    pub previous: Option<PreviousRecord>,
    /// The key id (base64 of the public key).
    pub key_id: String,
    /// The log key's Ed25519 public key, base64.
    pub public_key: String,
    /// The Ed25519 signature, base64.
    pub signature: String,
}

impl CheckpointFile {
    /// The file form of `checkpoint`.
    pub fn of(checkpoint: &SignedCheckpoint) -> CheckpointFile {
        let r = checkpoint.to_record();
        CheckpointFile {
            format: FILE_FORMAT.to_owned(),
            position: r.position,
            log_hash: r.log_hash,
            time: r.time,
            previous: r.previous,
            key_id: r.key_id,
            public_key: r.public_key,
            signature: r.signature,
        }
    }

    /// Parses a file's text: JSON with the format tag and every field well
    /// formed (not the signature).
    pub fn parse(text: &str) -> Result<SignedCheckpoint, CheckpointError> {
        let file: CheckpointFile = serde_json::from_str(text).map_err(|e| {
            malformed(
                "file",
                format!("not a checkpoint file ({e}); write one with `sealctl audit checkpoint -o json > cp.json`"),
            )
        })?;
        if file.format != FILE_FORMAT {
            return Err(malformed(
                "format",
                format!("`{}`, not `{FILE_FORMAT}`", file.format),
            ));
        }
        SignedCheckpoint::from_record(&CheckpointRecord {
            position: file.position,
            log_hash: file.log_hash,
            time: file.time,
            previous: file.previous,
            key_id: file.key_id,
            public_key: file.public_key,
            signature: file.signature,
        })
    }
}

/// `time` truncated to whole seconds, as a checkpoint records it.
pub fn whole_seconds(time: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_opt(time.timestamp(), 0)
        .single()
        .unwrap_or(time)
}

pub use signing::LogSigningKey;

mod signing {
    use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
    use zeroize::Zeroizing;

    use super::*;

    /// The control plane's log-signing key: its file is one line, the
    /// base64 of the 32-byte Ed25519 seed. Never printed; `Debug` shows the
    /// public key only.
    pub struct LogSigningKey(SigningKey);

    impl std::fmt::Debug for LogSigningKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "LogSigningKey({})", self.key_id())
        }
    }

    impl LogSigningKey {
        /// A new random key.
        pub fn generate() -> LogSigningKey {
            LogSigningKey(SigningKey::generate(&mut rand_core::OsRng))
        }

        /// Reads the text of a key file.
        pub fn from_text(text: &str) -> Result<LogSigningKey, CheckpointError> {
            let seed = Zeroizing::new(
                STANDARD
                    .decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| malformed("log key file", "not base64 of a 32-byte seed"))?,
            );
            Ok(LogSigningKey(SigningKey::from_bytes(&seed)))
        }

        /// The text of a key file (secret: write it 0600).
        pub fn to_text(&self) -> Zeroizing<String> {
            Zeroizing::new(format!("{}\n", STANDARD.encode(self.0.to_bytes())))
        }

        /// The public key's 32 bytes.
        pub fn public_key(&self) -> [u8; 32] {
            self.0.verifying_key().to_bytes()
        }

        /// The key id: base64 of the public key.
        pub fn key_id(&self) -> String {
            key_id_of(&self.public_key())
        }

        /// Signs `point` at `time` (truncated to whole seconds) after
        /// `previous`.
        pub fn sign(
            &self,
            point: LogPoint,
            time: DateTime<Utc>,
            previous: Option<LogPoint>,
        ) -> SignedCheckpoint {
            let time = whole_seconds(time);
            let key_id = self.key_id();
            let bytes = SignedCheckpoint::signed_bytes(&point, time, previous.as_ref(), &key_id);
            SignedCheckpoint {
                point,
                time,
                previous,
                key_id,
                public_key: self.public_key(),
                signature: self.0.sign(&bytes).to_bytes(),
            }
        }
    }

    impl SignedCheckpoint {
        /// Checks the signature under the checkpoint's own public key;
        /// whether that key is the deployment's log key is the caller's
        /// question (pin it).
        pub fn verify(&self) -> Result<(), CheckpointError> {
            let bad = || CheckpointError::BadSignature(self.key_id.clone());
            let key = VerifyingKey::from_bytes(&self.public_key).map_err(|_| bad())?;
            let bytes =
                Self::signed_bytes(&self.point, self.time, self.previous.as_ref(), &self.key_id);
            // Strict: no weak keys, no second signature for one statement.
            key.verify_strict(&bytes, &Signature::from_bytes(&self.signature))
                .map_err(|_| bad())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(position: u64, byte: u8) -> LogPoint {
        LogPoint {
            position,
            log_hash: [byte; 32],
        }
    }

    fn time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
    }

    #[test]
    fn the_signed_bytes_are_tagged_and_length_prefixed() {
        // Given a checkpoint with a previous one
        let bytes = SignedCheckpoint::signed_bytes(&point(7, 1), time(), Some(&point(3, 2)), "KEY");
        // Then the encoding starts with the length-prefixed tag
        assert_eq!(&bytes[..4], &(CHECKPOINT_TAG.len() as u32).to_be_bytes());
        assert_eq!(
            &bytes[4..4 + CHECKPOINT_TAG.len()],
            CHECKPOINT_TAG.as_bytes()
        );
        // And has every field: 6 prefixes, tag, 8 + 32 + 8 + 40 + 3 bytes
        assert_eq!(
            bytes.len(),
            6 * 4 + CHECKPOINT_TAG.len() + 8 + 32 + 8 + 40 + 3
        );
        // And no previous is an empty field, not a zero checkpoint
        let none = SignedCheckpoint::signed_bytes(&point(7, 1), time(), None, "KEY");
        let zero = SignedCheckpoint::signed_bytes(&point(7, 1), time(), Some(&point(0, 0)), "KEY");
        assert_ne!(none, zero);
        assert_eq!(none.len(), bytes.len() - 40);
    }

    #[test]
    fn a_checkpoint_verifies_and_any_changed_field_breaks_it() {
        // Given a signed checkpoint
        let key = LogSigningKey::generate();
        let good = key.sign(point(7, 1), time(), Some(point(3, 2)));
        good.verify().unwrap();
        // When any signed field changes
        let mut changes = vec![];
        let mut c = good.clone();
        c.point.position = 8;
        changes.push(c);
        let mut c = good.clone();
        c.point.log_hash[0] ^= 1;
        changes.push(c);
        let mut c = good.clone();
        c.time += chrono::Duration::seconds(1);
        changes.push(c);
        let mut c = good.clone();
        c.previous = None;
        changes.push(c);
        let mut c = good.clone();
        c.previous = Some(point(4, 2));
        changes.push(c);
        let other = LogSigningKey::generate();
        let mut c = good.clone();
        c.public_key = other.public_key();
        c.key_id = other.key_id();
        changes.push(c);
        // Then it no longer verifies
        for changed in changes {
            assert!(
                matches!(changed.verify(), Err(CheckpointError::BadSignature(_))),
                "{changed:?}"
            );
        }
    }

    #[test]
    fn a_checkpoint_file_round_trips_and_names_what_is_wrong() {
        // Given a checkpoint written as a file
        let key = LogSigningKey::generate();
        let c = key.sign(point(7, 0xab), time(), None);
        let text = serde_json::to_string_pretty(&CheckpointFile::of(&c)).unwrap();
        // Then it is self-describing and parses back to the same checkpoint
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["format"], FILE_FORMAT);
        assert_eq!(json["log_hash"], "ab".repeat(32));
        assert_eq!(json["time"], "2026-12-01T10:00:00Z");
        assert_eq!(json["previous"], serde_json::Value::Null);
        assert_eq!(json["key_id"], key.key_id());
        let back = CheckpointFile::parse(&text).unwrap();
        assert_eq!(back, c);
        back.verify().unwrap();
        // And the wire form round-trips too
        assert_eq!(SignedCheckpoint::from_proto(&c.to_proto()).unwrap(), c);
        // When the file is something else, each error names the field
        let err = |text: &str| CheckpointFile::parse(text).unwrap_err().to_string();
        assert!(err("{}").contains("not a checkpoint file"), "{}", err("{}"));
        let other = text.replace(FILE_FORMAT, "something-v9");
        assert!(err(&other).contains("format"), "{}", err(&other));
        let short = text.replace(&"ab".repeat(32), "abcd");
        assert!(err(&short).contains("log_hash"), "{}", err(&short));
        let extra = text.replacen('{', "{\"extra\": 1,", 1);
        assert!(err(&extra).contains("unknown field"), "{}", err(&extra));
        let mut wrong_id = json.clone();
        wrong_id["key_id"] = LogSigningKey::generate().key_id().into();
        let wrong_id = wrong_id.to_string();
        assert!(
            err(&wrong_id).contains("does not name"),
            "{}",
            err(&wrong_id)
        );
    }

    #[test]
    fn a_key_file_round_trips_and_never_shows_the_seed() {
        let key = LogSigningKey::generate();
        let back = LogSigningKey::from_text(&key.to_text()).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert!(!format!("{key:?}").contains(key.to_text().trim()));
        assert!(LogSigningKey::from_text("not a key").is_err());
        // Times are signed in whole seconds
        let c = key.sign(
            point(1, 1),
            time() + chrono::Duration::milliseconds(5),
            None,
        );
        assert_eq!(c.time, time());
        c.verify().unwrap();
    }
}

//! Sealing keys (SPEC §11): a store's reactor's long-term X25519 keys for
//! files meant to sit in git. The reactor signs each public half with its
//! identity, the one a store certificate binds to the store (SPEC §12), so
//! `sealctl` checks a sealing key exactly as it checks a one-time key
//! offer: certificate, then the identity's signature. ADR 0025.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};

/// Domain-separation tag that starts [`SealingKeyStatement::signed_bytes`]:
/// a signature over a sealing key is valid for nothing else the identity
/// signs (one-time key offers start with `sealplane-key-offer-v2`).
pub const SEALING_KEY_TAG: &str = "sealplane-sealing-key-v1";

/// Why a sealing key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealingKeyError {
    /// A field does not hold what it must.
    #[error("the sealing key's {0} is malformed")]
    Malformed(&'static str),
    /// The key id is not the one its public key gives.
    #[error("the sealing key's id does not match its public key")]
    WrongId,
    /// The signature is not the reactor identity's over these fields.
    #[error("the sealing key is not signed by the store's reactor identity")]
    BadSignature,
}

/// What a reactor signs for one sealing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealingKeyStatement {
    /// The store the key serves (a file sealed to it is for this store only).
    pub store: String,
    /// [`key_id_of`] the public key.
    pub key_id: String,
    /// The X25519 public key.
    pub public_key: [u8; 32],
    /// From when it is offered for sealing.
    pub not_before: DateTime<Utc>,
    /// Until when `sealctl` seals to it (opening works until it is retired).
    pub not_after: DateTime<Utc>,
}

/// A sealing key's id: `sk-` and the first 8 bytes of the SHA-256 of its
/// public key, in hex. Short enough to read in a file, and any two keys
/// of a store differ in it (a clash is refused when the key is published).
pub fn key_id_of(public_key: &[u8; 32]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(public_key);
    let mut id = String::from("sk-");
    for byte in &digest[..8] {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// Whether `id` has the form [`key_id_of`] gives.
pub fn is_key_id(id: &str) -> bool {
    id.strip_prefix("sk-").is_some_and(|hex| {
        hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl SealingKeyStatement {
    /// The bytes signed and verified: each field as its length (u32,
    /// big-endian) then its bytes: the tag [`SEALING_KEY_TAG`], the store,
    /// the key id, the 32-byte public key, `not_before` and `not_after` as
    /// RFC 3339 UTC with whole seconds and `Z`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let (from, until) = (timestamp(&self.not_before), timestamp(&self.not_after));
        let fields: [&[u8]; 6] = [
            SEALING_KEY_TAG.as_bytes(),
            self.store.as_bytes(),
            self.key_id.as_bytes(),
            &self.public_key,
            from.as_bytes(),
            until.as_bytes(),
        ];
        crate::encoding::length_prefixed(&fields)
    }

    /// The statement of the wire fields, checking their form (not the signature).
    pub fn parse(
        store: &str,
        key_id: &str,
        public_key_b64: &str,
        not_before: &str,
        not_after: &str,
    ) -> Result<Self, SealingKeyError> {
        let public_key: [u8; 32] = STANDARD
            .decode(public_key_b64.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SealingKeyError::Malformed("public_key"))?;
        let time = |text: &str, field| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| SealingKeyError::Malformed(field))
        };
        let statement = SealingKeyStatement {
            store: store.to_owned(),
            key_id: key_id.to_owned(),
            public_key,
            not_before: time(not_before, "not_before")?,
            not_after: time(not_after, "not_after")?,
        };
        if statement.not_after <= statement.not_before {
            return Err(SealingKeyError::Malformed("validity period"));
        }
        if key_id_of(&statement.public_key) != statement.key_id {
            return Err(SealingKeyError::WrongId);
        }
        Ok(statement)
    }

    /// RFC 3339 of `not_before`, as signed.
    pub fn not_before_text(&self) -> String {
        timestamp(&self.not_before)
    }

    /// RFC 3339 of `not_after`, as signed.
    pub fn not_after_text(&self) -> String {
        timestamp(&self.not_after)
    }
}

#[cfg(feature = "signatures")]
impl SealingKeyStatement {
    /// Checks `signature` (base64) over this statement against the reactor
    /// identity `reactor_key` (base64 Ed25519).
    pub fn verify(&self, reactor_key: &str, signature: &str) -> Result<(), SealingKeyError> {
        use ed25519_dalek::{Signature, VerifyingKey};
        let key: [u8; 32] = STANDARD
            .decode(reactor_key.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SealingKeyError::Malformed("reactor_key"))?;
        let key = VerifyingKey::from_bytes(&key)
            .map_err(|_| SealingKeyError::Malformed("reactor_key"))?;
        let signature = STANDARD
            .decode(signature.trim())
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or(SealingKeyError::BadSignature)?;
        key.verify_strict(&self.signed_bytes(), &signature)
            .map_err(|_| SealingKeyError::BadSignature)
    }
}

#[cfg(all(test, feature = "signatures"))]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    fn statement() -> SealingKeyStatement {
        let public_key = [7u8; 32];
        SealingKeyStatement {
            store: "vault-prod".into(),
            key_id: key_id_of(&public_key),
            public_key,
            not_before: "2026-01-01T00:00:00Z".parse().unwrap(),
            not_after: "2026-03-01T00:00:00Z".parse().unwrap(),
        }
    }

    fn signed(identity: &SigningKey, s: &SealingKeyStatement) -> String {
        STANDARD.encode(identity.sign(&s.signed_bytes()).to_bytes())
    }

    #[test]
    fn given_a_signed_statement_when_verified_by_its_identity_then_it_holds() {
        let identity = SigningKey::from_bytes(&[1u8; 32]);
        let s = statement();
        let public = STANDARD.encode(identity.verifying_key().to_bytes());
        assert_eq!(s.verify(&public, &signed(&identity, &s)), Ok(()));
    }

    #[test]
    fn given_a_signed_statement_when_any_field_changes_then_it_fails() {
        let identity = SigningKey::from_bytes(&[1u8; 32]);
        let public = STANDARD.encode(identity.verifying_key().to_bytes());
        let signature = signed(&identity, &statement());
        let changes: [fn(&mut SealingKeyStatement); 4] = [
            |s| s.store = "vault-dev".into(),
            |s| s.public_key[0] ^= 1,
            |s| s.not_after += chrono::Duration::days(1),
            |s| s.not_before -= chrono::Duration::seconds(1),
        ];
        for change in changes {
            let mut s = statement();
            change(&mut s);
            assert_eq!(
                s.verify(&public, &signature),
                Err(SealingKeyError::BadSignature)
            );
        }
        let other = SigningKey::from_bytes(&[2u8; 32]);
        let other = STANDARD.encode(other.verifying_key().to_bytes());
        assert_eq!(
            statement().verify(&other, &signature),
            Err(SealingKeyError::BadSignature)
        );
    }

    #[test]
    fn given_wire_fields_when_parsed_then_id_and_period_are_checked() {
        let s = statement();
        let pk = STANDARD.encode(s.public_key);
        let (from, until) = (s.not_before_text(), s.not_after_text());
        assert_eq!(
            SealingKeyStatement::parse("vault-prod", &s.key_id, &pk, &from, &until),
            Ok(s.clone())
        );
        assert_eq!(
            SealingKeyStatement::parse("vault-prod", "sk-0000000000000000", &pk, &from, &until),
            Err(SealingKeyError::WrongId)
        );
        assert_eq!(
            SealingKeyStatement::parse("vault-prod", &s.key_id, &pk, &until, &from),
            Err(SealingKeyError::Malformed("validity period"))
        );
        assert!(is_key_id(&s.key_id));
        assert!(!is_key_id("sk-XYZ"));
        assert!(!is_key_id("sk-0123456789abcdef0"));
    }
}

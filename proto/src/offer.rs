//! The key offer a reactor signs for each one-time key (SPEC §1.4, §3
//! step 2), and its verification by `sealctl` against a pinned reactor
//! identity. The reactor signs with its identity (`sealplane-reactors`);
//! both sides build the same [`KeyOffer::signed_bytes`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use uuid::Uuid;

use crate::upload::Purpose;

/// Domain-separation tag that starts [`KeyOffer::signed_bytes`]. v2 also
/// signs the store, the purpose and adopt (ADR 0010): an offer for a
/// verification cannot be passed off as one for a put.
pub const KEY_OFFER_TAG: &str = "sealplane-key-offer-v2";

/// Why a key offer was rejected by [`verify_offer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The signature is not a valid signature of the offer by the pinned key.
    #[error("the one-time key offer is not signed by the pinned reactor identity")]
    BadSignature,
    /// The pinned key is not base64 of a valid 32-byte Ed25519 public key.
    #[error("the pinned reactor key is not a valid base64 Ed25519 public key")]
    MalformedKey,
}

/// The statement a reactor signs for one one-time key (SPEC §3 step 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOffer {
    /// The upload request this key serves.
    pub request_id: Uuid,
    /// The store the upload targets (the uri's store).
    pub store: String,
    /// The secret URI the upload targets.
    pub uri: String,
    /// Put (with adopt) or verify.
    pub purpose: Purpose,
    /// The one-time X25519 public key.
    pub public_key: [u8; 32],
    /// When the key expires (signed at whole-second precision).
    pub expires_at: DateTime<Utc>,
}

impl KeyOffer {
    /// The canonical bytes that are signed and verified; `sealctl` must build the same.
    ///
    /// The encoding is a sequence of fields, each written as its length in
    /// bytes (u32, big-endian) followed by the bytes:
    ///
    /// 1. the ASCII tag `sealplane-key-offer-v2` ([`KEY_OFFER_TAG`]),
    /// 2. the request id's 16 bytes (RFC 4122 byte order, `Uuid::as_bytes`),
    /// 3. the store name as UTF-8,
    /// 4. the URI as UTF-8,
    /// 5. the purpose: ASCII `put` or `verify`,
    /// 6. adopt: one byte, 1 or 0 (always 0 for a verify),
    /// 7. the 32-byte X25519 public key,
    /// 8. `expires_at` as RFC 3339 in UTC with whole seconds and a `Z`
    ///    suffix (`to_rfc3339_opts(SecondsFormat::Secs, true)`, e.g.
    ///    `2025-01-02T03:04:05Z`).
    ///
    /// Length prefixes make the encoding injective (no field can bleed into
    /// the next), and the tag keeps a signature over this statement from
    /// being valid for any other message the identity ever signs. Sub-second
    /// parts of `expires_at` are not covered, so issuers should truncate it.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let expires = self.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let (purpose, adopt): (&[u8], u8) = match self.purpose {
            Purpose::Put { adopt } => (b"put", u8::from(adopt)),
            Purpose::Verify => (b"verify", 0),
        };
        let adopt = [adopt];
        let fields: [&[u8]; 8] = [
            KEY_OFFER_TAG.as_bytes(),
            self.request_id.as_bytes(),
            self.store.as_bytes(),
            self.uri.as_bytes(),
            purpose,
            &adopt,
            &self.public_key,
            expires.as_bytes(),
        ];
        crate::encoding::length_prefixed(&fields)
    }
}

/// Checks `signature` over `offer` against a pinned base64 Ed25519 public key.
pub fn verify_offer(
    pinned_public_key_b64: &str,
    offer: &KeyOffer,
    signature: &[u8],
) -> Result<(), OfferError> {
    let key_bytes: [u8; 32] = STANDARD
        .decode(pinned_public_key_b64.trim())
        .map_err(|_| OfferError::MalformedKey)?
        .try_into()
        .map_err(|_| OfferError::MalformedKey)?;
    let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| OfferError::MalformedKey)?;
    let signature = Signature::from_slice(signature).map_err(|_| OfferError::BadSignature)?;
    // `verify_strict` also rejects weak (small-order) keys and
    // non-canonical signatures, so no second signature exists for an offer.
    key.verify_strict(&offer.signed_bytes(), &signature)
        .map_err(|_| OfferError::BadSignature)
}

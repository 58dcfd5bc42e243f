//! The file store's envelope: the `v{N}.json` format, and sealing with a
//! fresh data key per version under the master key, with the version's
//! metadata (and where the file lives) bound as associated data.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::FORMAT;
use crate::upstream::UpstreamError;

/// Domain tags of the two associated-data encodings, so the wrapped key and
/// the sealed value can never stand in for each other.
pub(super) const AAD_KEY_TAG: &[u8] = b"sealplane-file-v1/data-key";
pub(super) const AAD_VALUE_TAG: &[u8] = b"sealplane-file-v1/value";

/// Bytes of a Poly1305 tag.
const TAG_LEN: usize = 16;

/// A version's metadata, stored in clear and bound as associated data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VersionMeta {
    pub(super) managed_by: String,
    pub(super) path: String,
    pub(super) version: u64,
    pub(super) uri: String,
    pub(super) request_id: Uuid,
    pub(super) created_at: String,
    /// Set when this version adopted a directory holding foreign files.
    pub(super) adopted: bool,
    /// Set on versions written since heads exist (ADR 0013): such a
    /// version without a head means the head was removed. Absent in
    /// older files, and then not part of the associated data.
    #[serde(default, skip_serializing_if = "is_false")]
    pub(super) headed: bool,
    /// Set on a new secret's first version, written alone (ADR 0013): the
    /// secret's whole record while it is its only version, so no head is
    /// needed yet. Rewritten without it (after a head exists) before the
    /// secret has a second version or is soft-deleted, so a removed head
    /// can never pass this version off as the current one later.
    #[serde(default, skip_serializing_if = "is_false")]
    pub(super) solo: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A `v{N}.json` file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VersionFile {
    pub(super) format: String,
    pub(super) meta: VersionMeta,
    /// Base64 nonce and ciphertext of the data key under the master key.
    pub(super) key_nonce: String,
    pub(super) wrapped_key: String,
    /// Base64 nonce and ciphertext of the value under the data key.
    pub(super) value_nonce: String,
    pub(super) value: String,
}

/// Appends `len(bytes)` as u64 big-endian, then `bytes`.
fn put_field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// The associated data: length-prefixed fields, so no two metadata share an encoding.
pub(super) fn aad(tag: &[u8], path: &str, version: u64, meta: &VersionMeta) -> Vec<u8> {
    let mut buf = Vec::new();
    put_field(&mut buf, tag);
    put_field(&mut buf, FORMAT.as_bytes());
    put_field(&mut buf, meta.managed_by.as_bytes());
    // Path and version come from where the file was found, not from the
    // file, so a file moved elsewhere fails to open.
    put_field(&mut buf, path.as_bytes());
    put_field(&mut buf, &version.to_be_bytes());
    put_field(&mut buf, meta.uri.as_bytes());
    put_field(&mut buf, meta.request_id.as_bytes());
    put_field(&mut buf, meta.created_at.as_bytes());
    put_field(&mut buf, &[u8::from(meta.adopted)]);
    // Only when set, so files written before the flag existed still open.
    if meta.headed {
        put_field(&mut buf, b"headed");
    }
    if meta.solo {
        put_field(&mut buf, b"solo");
    }
    buf
}

pub(super) fn random_nonce() -> XNonce {
    let mut nonce = XNonce::default();
    OsRng.fill_bytes(&mut nonce);
    nonce
}

/// Seals `plaintext` in place in a zeroizing buffer sized for the tag, so no
/// reallocation leaves plaintext behind in freed memory.
pub(super) fn seal(
    key: &[u8; 32],
    nonce: &XNonce,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, UpstreamError> {
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
    buf.extend_from_slice(plaintext);
    cipher
        .encrypt_in_place(nonce, aad, &mut *buf)
        .map_err(|_| UpstreamError::Crypto("sealing a version"))?;
    Ok(buf.to_vec())
}

/// Opens a ciphertext into a zeroizing buffer; `None` when authentication fails.
pub(super) fn open(
    key: &[u8; 32],
    nonce: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if nonce.len() != 24 {
        return None;
    }
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    cipher
        .decrypt_in_place(XNonce::from_slice(nonce), aad, &mut *buf)
        .ok()?;
    Some(buf)
}

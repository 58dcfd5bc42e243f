//! The head record of a secret's directory (ADR 0013): which version is
//! the newest and whether it is soft-deleted, MACed with a key derived
//! from the master key. Without it, deleting the newest `v{N}.json` or
//! editing the `deleted` marker would silently roll a secret back to an
//! older version: each version file authenticates itself, but nothing
//! said which one is current.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::master_key::MasterKey;

/// Name of the head file in a secret's directory: `+` is not allowed in a
/// path segment, so no secret's name can collide with it.
pub(super) const HEAD: &str = "+head";

/// The `format` value of a head file (and the MAC's domain tag).
const HEAD_FORMAT: &str = "sealplane-file-head-v1";

/// Domain tag of the key derived from the master key for heads.
const HEAD_KEY_TAG: &[u8] = b"sealplane-file-v1/head-key";

type HmacSha256 = Hmac<Sha256>;

/// What a verified head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    /// The newest version.
    pub(super) version: u64,
    /// Whether that version is soft-deleted.
    pub(super) deleted: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadFile {
    format: String,
    version: u64,
    deleted: bool,
    /// Written `true` before a version by the first form of ADR 0013
    /// (version + 1 may exist); a version one beyond the head is now
    /// always read as a crashed put's, so this is only kept because the
    /// MAC covers it. Written `false`.
    pending: bool,
    mac: String,
}

fn head_key(master: &MasterKey) -> Zeroizing<[u8; 32]> {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(&master.0[..]).expect("HMAC takes a key of any length");
    mac.update(HEAD_KEY_TAG);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// Length-prefixed fields, so no two heads share an encoding; the path
/// comes from where the file is found, so a head moved elsewhere fails.
fn mac_of(master: &MasterKey, path: &str, head: Head, pending: bool) -> HmacSha256 {
    let key = head_key(master);
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(&key[..]).expect("HMAC takes a key of any length");
    for field in [
        HEAD_FORMAT.as_bytes(),
        path.as_bytes(),
        &head.version.to_be_bytes(),
        &[u8::from(head.deleted)],
        &[u8::from(pending)],
    ] {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field);
    }
    mac
}

/// The bytes of the head file for `head` of the secret at `path`.
pub(super) fn encode(master: &MasterKey, path: &str, head: Head) -> Vec<u8> {
    let file = HeadFile {
        format: HEAD_FORMAT.to_owned(),
        version: head.version,
        deleted: head.deleted,
        pending: false,
        mac: STANDARD.encode(mac_of(master, path, head, false).finalize().into_bytes()),
    };
    let mut bytes = serde_json::to_vec(&file).expect("a head serializes");
    bytes.push(b'\n');
    bytes
}

/// The head in `bytes` if it verifies for `path` under `master`.
pub(super) fn decode(master: &MasterKey, path: &str, bytes: &[u8]) -> Option<Head> {
    let file: HeadFile = serde_json::from_slice(bytes).ok()?;
    if file.format != HEAD_FORMAT {
        return None;
    }
    let head = Head {
        version: file.version,
        deleted: file.deleted,
    };
    let given = STANDARD.decode(&file.mac).ok()?;
    // verify_slice compares in constant time.
    mac_of(master, path, head, file.pending)
        .verify_slice(&given)
        .is_ok()
        .then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_verifies_only_for_its_path_key_and_content() {
        let key = MasterKey::generate();
        let head = Head {
            version: 7,
            deleted: true,
        };
        let bytes = encode(&key, "a/b", head);
        assert_eq!(decode(&key, "a/b", &bytes), Some(head));
        assert_eq!(decode(&key, "a/c", &bytes), None);
        assert_eq!(decode(&MasterKey::generate(), "a/b", &bytes), None);
        let text = String::from_utf8(bytes).unwrap();
        for edited in [
            text.replace("\"version\":7", "\"version\":6"),
            text.replace("\"deleted\":true", "\"deleted\":false"),
            text.replace("\"pending\":false", "\"pending\":true"),
        ] {
            assert_ne!(edited, text);
            assert_eq!(decode(&key, "a/b", edited.as_bytes()), None);
        }
    }

    #[test]
    fn a_pending_head_of_the_first_form_still_verifies() {
        let key = MasterKey::generate();
        let head = Head {
            version: 3,
            deleted: false,
        };
        let file = HeadFile {
            format: HEAD_FORMAT.to_owned(),
            version: 3,
            deleted: false,
            pending: true,
            mac: STANDARD.encode(mac_of(&key, "a", head, true).finalize().into_bytes()),
        };
        let bytes = serde_json::to_vec(&file).unwrap();
        assert_eq!(decode(&key, "a", &bytes), Some(head));
        // The flag is covered by the MAC like every other field.
        let flipped = String::from_utf8(bytes)
            .unwrap()
            .replace("\"pending\":true", "\"pending\":false");
        assert_eq!(decode(&key, "a", flipped.as_bytes()), None);
    }
}

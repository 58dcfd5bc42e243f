//! The reactor's sealing keys (SPEC §11, ADR 0025): long-term X25519 keys
//! per store, for files meant to sit in git. Unlike one-time keys they
//! outlive the process: each lives in `<dir>/<store>/<key id>.key` (0600,
//! written atomically), its private half encrypted with XChaCha20-Poly1305
//! under a key derived from the reactor identity, bound to its store and
//! id. A copied directory without the identity file opens nothing, and a
//! file moved to another store's directory does not open either.
//!
//! A new key is made on a schedule (the rotation period) or when an admin
//! asks; old ones open files until an admin retires them, which deletes
//! their file.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use crypto_box::{PublicKey, SecretKey};
use rand_core::{OsRng, RngCore as _};
use sealplane_host::durable;
use sealplane_proto::sealing_key::{SealingKeyStatement, key_id_of};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::identity::ReactorIdentity;

/// The tag of a key file's format.
const FILE_FORMAT: &str = "sealplane-sealing-key-file-v1";

/// Why the sealing keys could not be loaded or saved; never holds key material.
#[derive(Debug, thiserror::Error)]
pub enum SealingKeyError {
    /// A file or directory could not be read or written.
    #[error("sealing keys: {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A key file group or others may read.
    #[error(
        "sealing keys: {path} may be read by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// A key file that is not one, or does not open under this identity.
    #[error("sealing keys: {path} is not a sealing key of this reactor for its store ({reason})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A key file on disk.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    store: String,
    key_id: String,
    public_key: String,
    not_before: String,
    not_after: String,
    signature: String,
    /// base64 of the 24-byte nonce then the encrypted 32-byte secret.
    sealed_secret: String,
    /// The log position of the admin's rotation request that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requested_at: Option<u64>,
}

/// The public half of a sealing key as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The signed statement.
    pub statement: SealingKeyStatement,
    /// The identity's signature over it, base64.
    pub signature: String,
}

struct Held {
    published: Published,
    secret: SecretKey,
    requested_at: Option<u64>,
}

/// Every sealing key of every store this reactor serves.
pub struct SealingKeys {
    dir: PathBuf,
    rotation: Duration,
    wrap: Zeroizing<[u8; 32]>,
    keys: Mutex<BTreeMap<String, Vec<Held>>>,
}

impl std::fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKeys")
            .field("dir", &self.dir)
            .field("keys", &"<redacted>")
            .finish()
    }
}

fn aad(store: &str, key_id: &str) -> Vec<u8> {
    format!("{FILE_FORMAT}\0{store}\0{key_id}").into_bytes()
}

impl SealingKeys {
    /// Loads the keys of `stores` from `dir` (creating it 0700), each
    /// unwrapped with `identity`'s key.
    pub fn load(
        dir: &Path,
        identity: &ReactorIdentity,
        stores: impl IntoIterator<Item = String>,
        rotation: Duration,
    ) -> Result<Self, SealingKeyError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SealingKeyError::Io { path, source }
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
        let wrap = identity.derive_key("sealplane-sealing-key-wrap-v1");
        let mut keys = BTreeMap::new();
        for store in stores {
            let store_dir = dir.join(&store);
            let mut held: Vec<Held> = vec![];
            match fs::read_dir(&store_dir) {
                Ok(entries) => {
                    for entry in entries {
                        let path = entry.map_err(io_err(&store_dir))?.path();
                        if path.extension().is_some_and(|e| e == "key") {
                            held.push(read_key(&path, &store, &wrap)?);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&store_dir)(e)),
            }
            held.sort_by_key(|h| h.published.statement.not_before);
            keys.insert(store, held);
        }
        Ok(SealingKeys {
            dir: dir.to_path_buf(),
            rotation,
            wrap,
            keys: Mutex::new(keys),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<Held>>> {
        // Every critical section leaves the map whole, so a panicked
        // holder's data is still good.
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a new key for `store` if it has none, or its newest is older
    /// than the rotation period at `now`, or an admin's rotation request
    /// at log position `requested_at` has no key yet (a request replayed
    /// from the feed makes no second key); returns the new one.
    pub fn rotate_if_due(
        &self,
        identity: &ReactorIdentity,
        store: &str,
        now: DateTime<Utc>,
        requested_at: Option<u64>,
    ) -> Result<Option<Published>, SealingKeyError> {
        let due = {
            let keys = self.lock();
            let held = keys.get(store).map(Vec::as_slice).unwrap_or_default();
            let requested = requested_at.is_some_and(|at| {
                !held
                    .iter()
                    .any(|h| h.requested_at.is_some_and(|made| made >= at))
            });
            let newest = held.last();
            requested
                || newest.is_none_or(|h| h.published.statement.not_before + self.rotation <= now)
        };
        if !due {
            return Ok(None);
        }
        let secret = SecretKey::generate(&mut OsRng);
        let public_key = *secret.public_key().as_bytes();
        let not_before = now.trunc_subsecs(0);
        let statement = SealingKeyStatement {
            store: store.to_owned(),
            key_id: key_id_of(&public_key),
            public_key,
            not_before,
            // Offered for sealing for two periods: files sealed just before
            // a rotation stay sealable-to for a while in slow pipelines.
            not_after: not_before + self.rotation + self.rotation,
        };
        let signature = STANDARD.encode(identity.sign_sealing_key(&statement));
        let published = Published {
            statement,
            signature,
        };
        self.write_key(&published, &secret, requested_at)?;
        let mut keys = self.lock();
        keys.entry(store.to_owned()).or_default().push(Held {
            published: published.clone(),
            secret,
            requested_at,
        });
        Ok(Some(published))
    }

    fn write_key(
        &self,
        published: &Published,
        secret: &SecretKey,
        requested_at: Option<u64>,
    ) -> Result<(), SealingKeyError> {
        let s = &published.statement;
        let store_dir = self.dir.join(&s.store);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&store_dir)
            .map_err(|source| SealingKeyError::Io {
                path: store_dir.clone(),
                source,
            })?;
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&*self.wrap));
        let secret_bytes = Zeroizing::new(secret.to_bytes());
        let aad = aad(&s.store, &s.key_id);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &secret_bytes[..],
                    aad: &aad,
                },
            )
            .map_err(|_| SealingKeyError::Malformed {
                path: store_dir.clone(),
                reason: "encryption failed",
            })?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&sealed);
        let file = KeyFile {
            format: FILE_FORMAT.to_owned(),
            store: s.store.clone(),
            key_id: s.key_id.clone(),
            public_key: STANDARD.encode(s.public_key),
            not_before: s.not_before_text(),
            not_after: s.not_after_text(),
            signature: published.signature.clone(),
            sealed_secret: STANDARD.encode(wrapped),
            requested_at,
        };
        let path = store_dir.join(format!("{}.key", s.key_id));
        let text = serde_json::to_vec_pretty(&file).map_err(|_| SealingKeyError::Malformed {
            path: path.clone(),
            reason: "cannot encode",
        })?;
        durable::write_atomic(&path, &text, 0o600).map_err(|e| SealingKeyError::Io {
            path,
            source: e.into(),
        })
    }

    /// Every key of `store` not retired, oldest first.
    pub fn published(&self, store: &str) -> Vec<Published> {
        self.lock()
            .get(store)
            .map(|k| k.iter().map(|h| h.published.clone()).collect())
            .unwrap_or_default()
    }

    /// The private half of `key_id` of `store`, if this reactor holds it.
    pub fn secret(&self, store: &str, key_id: &str) -> Option<SecretKey> {
        self.lock()
            .get(store)?
            .iter()
            .find(|h| h.published.statement.key_id == key_id)
            .map(|h| h.secret.clone())
    }

    /// The newest key of `store`: its id and public half.
    pub fn newest(&self, store: &str) -> Option<(String, PublicKey)> {
        self.lock().get(store)?.last().map(|h| {
            (
                h.published.statement.key_id.clone(),
                PublicKey::from(h.published.statement.public_key),
            )
        })
    }

    /// Destroys `key_id` of `store`: its file and its private half in memory.
    pub fn retire(&self, store: &str, key_id: &str) -> Result<bool, SealingKeyError> {
        let path = self.dir.join(store).join(format!("{key_id}.key"));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(SealingKeyError::Io { path, source }),
        }
        let mut keys = self.lock();
        let Some(held) = keys.get_mut(store) else {
            return Ok(false);
        };
        let before = held.len();
        // `SecretKey` zeroizes itself on drop.
        held.retain(|h| h.published.statement.key_id != key_id);
        Ok(held.len() != before)
    }
}

fn read_key(path: &Path, store: &str, wrap: &[u8; 32]) -> Result<Held, SealingKeyError> {
    let malformed = |reason| SealingKeyError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let file = fs::File::open(path).map_err(|source| SealingKeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| SealingKeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SealingKeyError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut text = vec![];
    io::Read::read_to_end(&mut io::Read::take(file, 64 * 1024), &mut text).map_err(|source| {
        SealingKeyError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let file: KeyFile = serde_json::from_slice(&text).map_err(|_| malformed("not a key file"))?;
    if file.format != FILE_FORMAT || file.store != store {
        return Err(malformed("another format or store"));
    }
    let statement = SealingKeyStatement::parse(
        &file.store,
        &file.key_id,
        &file.public_key,
        &file.not_before,
        &file.not_after,
    )
    .map_err(|_| malformed("its public fields do not hold"))?;
    let wrapped = STANDARD
        .decode(&file.sealed_secret)
        .map_err(|_| malformed("sealed_secret is not base64"))?;
    if wrapped.len() < 24 {
        return Err(malformed("sealed_secret is too short"));
    }
    let (nonce, sealed) = wrapped.split_at(24);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(wrap));
    let aad = aad(store, &file.key_id);
    let secret = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| malformed("it does not open under this reactor's identity"))?,
    );
    let secret: [u8; 32] = secret
        .as_slice()
        .try_into()
        .map_err(|_| malformed("the secret is not 32 bytes"))?;
    let secret = SecretKey::from(secret);
    if *secret.public_key().as_bytes() != statement.public_key {
        return Err(malformed("the secret is not the public key's"));
    }
    Ok(Held {
        published: Published {
            statement,
            signature: file.signature,
        },
        secret,
        requested_at: file.requested_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(dir: &Path) -> ReactorIdentity {
        ReactorIdentity::load_or_generate(dir.join("identity"))
            .unwrap()
            .0
    }

    /// A temporary directory with an identity and the keys of store `prod`.
    fn fixture() -> (tempfile::TempDir, ReactorIdentity, PathBuf, SealingKeys) {
        let dir = tempfile::tempdir().unwrap();
        let id = identity(dir.path());
        let keys_dir = dir.path().join("sealing-keys");
        let keys = load(&keys_dir, &id, "prod").unwrap();
        (dir, id, keys_dir, keys)
    }

    fn load(dir: &Path, id: &ReactorIdentity, store: &str) -> Result<SealingKeys, SealingKeyError> {
        SealingKeys::load(dir, id, [store.to_owned()], Duration::days(30))
    }

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn given_no_key_when_rotation_is_checked_then_one_is_made_signed_and_reloads() {
        let (_dir, id, keys_dir, keys) = fixture();
        let made = keys
            .rotate_if_due(&id, "prod", t0(), None)
            .unwrap()
            .unwrap();
        made.statement
            .verify(&id.public_key_base64(), &made.signature)
            .unwrap();
        assert!(
            keys.rotate_if_due(&id, "prod", t0() + Duration::days(29), None)
                .unwrap()
                .is_none()
        );
        let file = keys_dir
            .join("prod")
            .join(format!("{}.key", made.statement.key_id));
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&file).unwrap();
        let secret = keys.secret("prod", &made.statement.key_id).unwrap();
        assert!(
            !text.contains(&STANDARD.encode(secret.to_bytes())),
            "the secret is encrypted"
        );

        let again = load(&keys_dir, &id, "prod").unwrap();
        assert_eq!(again.published("prod"), vec![made.clone()]);
        assert_eq!(
            again
                .secret("prod", &made.statement.key_id)
                .unwrap()
                .to_bytes(),
            secret.to_bytes()
        );
        let rotated = again
            .rotate_if_due(&id, "prod", t0() + Duration::days(30), None)
            .unwrap()
            .unwrap();
        assert_eq!(again.newest("prod").unwrap().0, rotated.statement.key_id);
        assert_eq!(again.published("prod").len(), 2);
    }

    #[test]
    fn given_a_key_file_when_loaded_under_another_identity_or_store_then_refused() {
        let (dir, id, keys_dir, keys) = fixture();
        let made = keys
            .rotate_if_due(&id, "prod", t0(), None)
            .unwrap()
            .unwrap();
        let other = ReactorIdentity::load_or_generate(dir.path().join("other"))
            .unwrap()
            .0;
        let err = load(&keys_dir, &other, "prod").unwrap_err();
        assert!(err.to_string().contains("does not open"), "{err}");
        let moved = keys_dir.join("dev");
        fs::create_dir_all(&moved).unwrap();
        let name = format!("{}.key", made.statement.key_id);
        fs::copy(keys_dir.join("prod").join(&name), moved.join(&name)).unwrap();
        fs::set_permissions(moved.join(&name), fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&keys_dir, &id, "dev").is_err());
    }

    #[test]
    fn given_a_group_readable_key_file_when_loaded_then_refused() {
        let (_dir, id, keys_dir, keys) = fixture();
        let made = keys
            .rotate_if_due(&id, "prod", t0(), None)
            .unwrap()
            .unwrap();
        let file = keys_dir
            .join("prod")
            .join(format!("{}.key", made.statement.key_id));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        let err = load(&keys_dir, &id, "prod").unwrap_err();
        assert!(matches!(err, SealingKeyError::TooOpen { .. }), "{err}");
    }

    #[test]
    fn given_a_retired_key_when_retired_then_its_file_and_secret_are_gone() {
        let (_dir, id, keys_dir, keys) = fixture();
        let old = keys
            .rotate_if_due(&id, "prod", t0(), None)
            .unwrap()
            .unwrap();
        keys.rotate_if_due(&id, "prod", t0(), Some(7))
            .unwrap()
            .unwrap();
        assert!(
            keys.rotate_if_due(&id, "prod", t0(), Some(7))
                .unwrap()
                .is_none(),
            "a replayed rotation request makes no second key"
        );
        assert!(keys.retire("prod", &old.statement.key_id).unwrap());
        assert!(keys.secret("prod", &old.statement.key_id).is_none());
        let again = load(&keys_dir, &id, "prod").unwrap();
        assert_eq!(again.published("prod").len(), 1);
        assert!(
            !keys.retire("prod", &old.statement.key_id).unwrap(),
            "idempotent"
        );
    }
}

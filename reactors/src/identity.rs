//! The reactor's long-term Ed25519 identity and the key offers it signs
//! (SPEC §1.4, §3 step 2).
//!
//! The control plane relays one-time public keys from the reactor to
//! `sealctl`. It is not trusted with confidentiality, so every one-time key is
//! wrapped in a [`KeyOffer`] signed by this identity; `sealctl` checks the
//! signature with [`verify_offer`] against the identity it has pinned for the
//! store. A control plane that substitutes its own X25519 key cannot produce
//! that signature.
//!
//! On disk the identity is one line, `sealplane-reactor-identity-v1 <base64
//! of the 32-byte Ed25519 seed>`, in a file only its owner may read.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey};
use rand_core::OsRng;
use sealplane_host::durable;
use sealplane_proto::sealing_key::SealingKeyStatement;
use zeroize::Zeroizing;

pub use sealplane_proto::offer::{KEY_OFFER_TAG, KeyOffer, OfferError, verify_offer};

/// First token of the identity file; bumps if the format ever changes.
pub const IDENTITY_FILE_TAG: &str = "sealplane-reactor-identity-v1";

/// Errors loading or creating the identity file; none contains key bytes.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading, creating or renaming the identity file failed.
    #[error("reactor identity file {path}: {source}")]
    Io {
        /// The identity file (or its directory) involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The file grants group or other access, so the key may have leaked.
    #[error(
        "reactor identity file {path} is accessible by group or others (mode {mode:03o}); \
         refusing to use it: run `chmod 600 {path}`",
        path = .path.display()
    )]
    TooOpen {
        /// The identity file.
        path: PathBuf,
        /// Its permission bits (`mode & 0o777`).
        mode: u32,
    },
    /// The file is not a valid identity file; `reason` never quotes its content.
    #[error("reactor identity file {path} is malformed: {reason}", path = .path.display())]
    Malformed {
        /// The identity file.
        path: PathBuf,
        /// What is wrong, without quoting the file.
        reason: &'static str,
    },
}

impl IdentityError {
    fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn malformed(path: &Path, reason: &'static str) -> Self {
        Self::Malformed {
            path: path.to_path_buf(),
            reason,
        }
    }
}

/// The reactor's long-term Ed25519 signing identity.
pub struct ReactorIdentity {
    // `SigningKey` zeroizes its secret on drop (ed25519-dalek `zeroize` feature).
    signing_key: SigningKey,
}

impl fmt::Debug for ReactorIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorIdentity")
            .field("public_key", &self.public_key_base64())
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl ReactorIdentity {
    /// Loads the identity at `path`, or creates one there; `true` means created.
    pub fn load_or_generate(path: impl AsRef<Path>) -> Result<(Self, bool), IdentityError> {
        let path = path.as_ref();
        match File::open(path) {
            Ok(file) => Ok((Self::load(path, file)?, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((Self::generate_at(path)?, true)),
            Err(e) => Err(IdentityError::io(path, e)),
        }
    }

    /// Standard base64 of the 32-byte public key, as registered in `CreateStore.reactor_key`.
    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.public_key_bytes())
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }

    /// Signs [`KeyOffer::signed_bytes`] of `offer`.
    pub fn sign(&self, offer: &KeyOffer) -> [u8; 64] {
        self.signing_key.sign(&offer.signed_bytes()).to_bytes()
    }

    /// Signs [`SealingKeyStatement::signed_bytes`] (SPEC §11); its tag
    /// keeps it from being valid as a key offer, and the other way round.
    pub fn sign_sealing_key(&self, statement: &SealingKeyStatement) -> [u8; 64] {
        self.signing_key.sign(&statement.signed_bytes()).to_bytes()
    }

    /// A 32-byte key for `label`, derived from the identity's secret
    /// (HMAC-SHA256 keyed by the seed): what encrypts the sealing keys at
    /// rest, so they open only beside this identity.
    pub fn derive_key(&self, label: &str) -> Zeroizing<[u8; 32]> {
        use hmac::{Hmac, Mac as _};
        let seed = Zeroizing::new(self.signing_key.to_bytes());
        // HMAC takes a key of any length: this never fails.
        let mut mac = <Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&seed[..])
            .expect("HMAC accepts any key length");
        mac.update(label.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    fn load(path: &Path, file: File) -> Result<Self, IdentityError> {
        // Check the mode on the opened handle, not the path, so a swap
        // between check and read cannot slip a different file in.
        let meta = file.metadata().map_err(|e| IdentityError::io(path, e))?;
        if !meta.is_file() {
            return Err(IdentityError::malformed(path, "not a regular file"));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::TooOpen {
                path: path.to_path_buf(),
                mode,
            });
        }
        // The file is tiny; a cap keeps a wrong path (e.g. a huge file)
        // from being read whole into memory.
        let mut raw = Zeroizing::new(Vec::new());
        file.take(4096)
            .read_to_end(&mut raw)
            .map_err(|e| IdentityError::io(path, e))?;
        let text = std::str::from_utf8(&raw)
            .map_err(|_| IdentityError::malformed(path, "not UTF-8 text"))?;
        let line = text.strip_suffix('\n').unwrap_or(text);
        let (tag, encoded) = line.split_once(' ').ok_or_else(|| {
            IdentityError::malformed(
                path,
                "expected `sealplane-reactor-identity-v1 <base64 seed>`",
            )
        })?;
        if tag != IDENTITY_FILE_TAG {
            return Err(IdentityError::malformed(
                path,
                "missing the `sealplane-reactor-identity-v1` header",
            ));
        }
        let seed = Zeroizing::new(
            STANDARD
                .decode(encoded)
                .map_err(|_| IdentityError::malformed(path, "the seed is not valid base64"))?,
        );
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            seed.as_slice()
                .try_into()
                .map_err(|_| IdentityError::malformed(path, "the seed is not 32 bytes"))?,
        );
        Ok(Self {
            signing_key: SigningKey::from_bytes(&seed),
        })
    }

    fn generate_at(path: &Path) -> Result<Self, IdentityError> {
        let signing_key = SigningKey::generate(&mut OsRng);
        let seed = Zeroizing::new(signing_key.to_bytes());
        let content = Zeroizing::new(format!(
            "{IDENTITY_FILE_TAG} {}\n",
            Zeroizing::new(STANDARD.encode(*seed)).as_str()
        ));

        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| IdentityError::io(dir, e))?;

        if path.file_name().is_none() {
            return Err(IdentityError::malformed(path, "the path has no file name"));
        }
        // The key is never readable by others, and the file never half-written.
        durable::write_atomic(path, content.as_bytes(), 0o600)
            .map_err(|e| IdentityError::io(path, e.into()))?;
        Ok(Self { signing_key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone as _, Utc};
    use uuid::Uuid;

    fn offer() -> KeyOffer {
        KeyOffer {
            request_id: Uuid::from_u128(0x1234),
            store: "vault-prod".to_owned(),
            uri: "vault-prod://payments/db".to_owned(),
            purpose: sealplane_proto::upload::Purpose::Verify,
            public_key: [7; 32],
            expires_at: Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap(),
        }
    }

    fn identity_in(dir: &tempfile::TempDir) -> ReactorIdentity {
        ReactorIdentity::load_or_generate(dir.path().join("identity"))
            .unwrap()
            .0
    }

    #[test]
    fn generate_then_reload_gives_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/identity");
        let (a, created) = ReactorIdentity::load_or_generate(&path).unwrap();
        assert!(created);
        let (b, created) = ReactorIdentity::load_or_generate(&path).unwrap();
        assert!(!created);
        assert_eq!(a.public_key_base64(), b.public_key_base64());
        assert_eq!(STANDARD.decode(a.public_key_base64()).unwrap().len(), 32);
        // Only the identity file is left: no temp file survives.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn file_is_0600_and_well_formed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        ReactorIdentity::load_or_generate(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        let (tag, seed) = text.trim_end().split_once(' ').unwrap();
        assert_eq!(tag, IDENTITY_FILE_TAG);
        assert_eq!(STANDARD.decode(seed).unwrap().len(), 32);
    }

    #[test]
    fn group_readable_file_is_refused_with_chmod_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        ReactorIdentity::load_or_generate(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = ReactorIdentity::load_or_generate(&path).unwrap_err();
        assert!(matches!(err, IdentityError::TooOpen { mode: 0o644, .. }));
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("chmod 600 {}", path.display())),
            "{msg}"
        );
    }

    #[test]
    fn malformed_file_is_refused_naming_path_not_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        let bad = [
            "not-an-identity-file-at-all",
            "sealplane-reactor-identity-v1 SECRETSECRET!!",
            "sealplane-reactor-identity-v1 c2VjcmV0c2VjcmV0", // valid base64, 12 bytes
            "sealplane-reactor-identity-v0 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ];
        for content in bad {
            durable::create_new(&path, content.as_bytes(), 0o600).unwrap();
            let err = ReactorIdentity::load_or_generate(&path).unwrap_err();
            assert!(matches!(err, IdentityError::Malformed { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(!msg.contains("SECRET"), "{msg}");
            assert!(!msg.contains("c2VjcmV0"), "{msg}");
            assert!(!format!("{err:?}").contains("c2VjcmV0"));
            fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn debug_redacts_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        let (id, _) = ReactorIdentity::load_or_generate(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let seed = text.trim_end().split_once(' ').unwrap().1;
        let debug = format!("{id:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains(seed));
    }

    #[test]
    fn signature_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let id = identity_in(&dir);
        let o = offer();
        let sig = id.sign(&o);
        assert_eq!(verify_offer(&id.public_key_base64(), &o, &sig), Ok(()));
    }

    #[test]
    fn signature_over_other_fields_fails() {
        let dir = tempfile::tempdir().unwrap();
        let id = identity_in(&dir);
        let sig = id.sign(&offer());
        let key = id.public_key_base64();
        let tampered = [
            KeyOffer {
                request_id: Uuid::from_u128(0x1235),
                ..offer()
            },
            KeyOffer {
                uri: "vault-prod://payments/db2".to_owned(),
                ..offer()
            },
            KeyOffer {
                public_key: [8; 32],
                ..offer()
            },
            // The control plane cannot turn a verify into a put, nor
            // redirect the offer to another store's name.
            KeyOffer {
                purpose: sealplane_proto::upload::Purpose::Put { adopt: false },
                ..offer()
            },
            KeyOffer {
                purpose: sealplane_proto::upload::Purpose::Put { adopt: true },
                ..offer()
            },
            KeyOffer {
                store: "vault-prod2".to_owned(),
                ..offer()
            },
            KeyOffer {
                expires_at: offer().expires_at + chrono::Duration::seconds(1),
                ..offer()
            },
        ];
        for o in tampered {
            assert_eq!(verify_offer(&key, &o, &sig), Err(OfferError::BadSignature));
        }
        assert_eq!(
            verify_offer(&key, &offer(), &sig[..63]),
            Err(OfferError::BadSignature)
        );
    }

    #[test]
    fn substituted_identity_is_caught() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (pinned, attacker) = (identity_in(&d1), identity_in(&d2));
        let o = offer();
        let forged = attacker.sign(&o);
        assert_eq!(
            verify_offer(&pinned.public_key_base64(), &o, &forged),
            Err(OfferError::BadSignature)
        );
    }

    #[test]
    fn malformed_pinned_key_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let id = identity_in(&dir);
        let o = offer();
        let sig = id.sign(&o);
        for key in ["not base64!", "", &STANDARD.encode([1u8; 31])] {
            assert_eq!(verify_offer(key, &o, &sig), Err(OfferError::MalformedKey));
        }
    }

    #[test]
    fn signed_bytes_are_length_prefixed_and_tagged() {
        let bytes = offer().signed_bytes();
        assert_eq!(&bytes[..4], &22u32.to_be_bytes());
        assert_eq!(&bytes[4..26], KEY_OFFER_TAG.as_bytes());
        let tail = b"2030-01-02T03:04:05Z";
        assert!(bytes.ends_with(tail));
        // Sub-second parts are outside the canonical form.
        let later = KeyOffer {
            expires_at: offer().expires_at + chrono::Duration::milliseconds(500),
            ..offer()
        };
        assert_eq!(later.signed_bytes(), bytes);
    }
}

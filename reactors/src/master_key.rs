//! The master key that wraps the file store's data keys, and what makes a
//! setup insecure (`sealplane is-secure` prints it).

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand_core::{OsRng, RngCore};
use sealplane_host::durable;
use zeroize::Zeroizing;

use crate::security::{PrivateFileError, read_private_text};

/// Why a master key could not be loaded; never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The key file could not be read, or its group or others may access it.
    #[error(transparent)]
    File(#[from] PrivateFileError),
    /// A new key file could not be created.
    #[error("cannot create key file {path}: {source}")]
    Create {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The environment variable is not set (or not UTF-8).
    #[error("environment variable {0} is not set or not UTF-8: set it to the base64 of 32 bytes")]
    MissingEnv(String),
    /// The content is not the standard base64 of exactly 32 bytes.
    #[error(
        "the master key is not the standard base64 of exactly 32 bytes (one line); generate one with `head -c 32 /dev/urandom | base64`"
    )]
    Malformed,
}

/// The file store's 32-byte master key; zeroizes on drop and never prints.
#[derive(Clone)]
pub struct MasterKey(pub(crate) Zeroizing<[u8; 32]>);

impl MasterKey {
    /// The well-known development key: INSECURE, public in this source; `sealplane is-secure` flags it.
    pub const DEV: [u8; 32] = *b"sealplane-dev-INSECURE-key-00000";

    /// The insecure development key [`MasterKey::DEV`], for `sealplane dev` only.
    pub fn dev() -> Self {
        Self(Zeroizing::new(Self::DEV))
    }

    /// A fresh random key from the OS generator.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut key[..]);
        Self(key)
    }

    /// A key from its 32 bytes; the caller zeroizes its copy.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    /// A key from the standard base64 of 32 bytes (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        // The decoder's own error names the offending byte, which is key
        // material, so only a fixed message survives.
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| MasterKeyError::Malformed)?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return Err(MasterKeyError::Malformed);
        }
        key.copy_from_slice(&bytes);
        Ok(Self(key))
    }

    /// A key from a file holding its base64 on one line; refused when the
    /// file's group or others may access it.
    pub fn from_file(path: &Path) -> Result<Self, MasterKeyError> {
        Self::from_file_named(path, "master key file")
    }

    /// As [`Self::from_file`], naming the file `what` in errors (the
    /// fingerprint key has the same format).
    pub fn from_file_named(path: &Path, what: &'static str) -> Result<Self, MasterKeyError> {
        Self::from_base64(&read_private_text(path, what)?)
    }

    /// A fresh key written to a new file (mode 0600; an existing file is never overwritten).
    pub fn create_file(path: &Path) -> Result<Self, MasterKeyError> {
        let key = Self::generate();
        let line = Zeroizing::new(format!("{}\n", key.to_base64().as_str()));
        durable::create_new(path, line.as_bytes(), 0o600).map_err(|e| MasterKeyError::Create {
            path: path.to_owned(),
            source: e.into(),
        })?;
        Ok(key)
    }

    /// The key in `path`, created first (0600) if there is no such file.
    pub fn load_or_create(path: &Path) -> Result<Self, MasterKeyError> {
        if path.exists() {
            Self::from_file(path)
        } else {
            Self::create_file(path)
        }
    }

    /// A key from an environment variable holding its base64.
    pub fn from_env(var: &str) -> Result<Self, MasterKeyError> {
        let text = Zeroizing::new(
            std::env::var(var).map_err(|_| MasterKeyError::MissingEnv(var.to_owned()))?,
        );
        Self::from_base64(&text)
    }

    /// The key's base64, for writing a key file; zeroized on drop.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&self.0[..]))
    }

    /// Whether this is the public development key [`MasterKey::DEV`].
    pub fn is_default(&self) -> bool {
        *self.0 == Self::DEV
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MasterKey")
            .field(&format_args!("[redacted]"))
            .finish()
    }
}

/// One reason the file store's setup is insecure (`sealplane is-secure` prints these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insecurity {
    /// The master key is the public development key.
    DefaultDevKey,
    /// The key file's mode lets its group or others access it.
    KeyFileReadableByOthers {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file's permissions could not be checked.
    KeyFileUnchecked {
        /// The key file.
        path: PathBuf,
        /// Why (the I/O error's text).
        reason: String,
    },
}

impl fmt::Display for Insecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DefaultDevKey => f.write_str(
                "the file store uses the public development master key: generate a key (`head -c 32 /dev/urandom | base64`) and keep it in a 0600 file",
            ),
            Self::KeyFileReadableByOthers { path, mode } => write!(
                f,
                "master key file {} has mode {mode:04o}, open to group or others: `chmod 600 {}`",
                path.display(),
                path.display()
            ),
            Self::KeyFileUnchecked { path, reason } => write!(
                f,
                "cannot check the permissions of master key file {}: {reason}",
                path.display()
            ),
        }
    }
}

/// What is insecure about the master key and its file; empty when nothing is.
pub fn security_report(master_key_path: Option<&Path>, key: &MasterKey) -> Vec<Insecurity> {
    let mut found = Vec::new();
    if key.is_default() {
        found.push(Insecurity::DefaultDevKey);
    }
    if let Some(path) = master_key_path {
        // fs::metadata follows a symlink: the mode that matters is the
        // mode of the file holding the key.
        match fs::metadata(path) {
            Ok(m) => {
                let mode = m.permissions().mode() & 0o7777;
                if mode & 0o077 != 0 {
                    found.push(Insecurity::KeyFileReadableByOthers {
                        path: path.to_owned(),
                        mode,
                    });
                }
            }
            // Reported rather than skipped: is-secure must not pass on
            // something it could not check.
            Err(e) => found.push(Insecurity::KeyFileUnchecked {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_open_to_group_or_others_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::create_file(&path).unwrap();
        for mode in [0o640, 0o604, 0o644] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let e = MasterKey::from_file(&path).unwrap_err().to_string();
            assert!(
                e.contains(&format!("master key file {}", path.display())),
                "{e}"
            );
            assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
            assert!(MasterKey::load_or_create(&path).is_err());
        }
    }

    #[test]
    fn a_created_key_file_is_0600_reloads_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let created = MasterKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(security_report(Some(&path), &created).is_empty());
        let again = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(*created.0, *again.0);
        let e = MasterKey::create_file(&path).unwrap_err();
        assert!(matches!(e, MasterKeyError::Create { .. }), "{e}");
        assert_eq!(*MasterKey::from_file(&path).unwrap().0, *created.0);
    }
}

//! Trust anchors (SPEC §12, ADR 0010): the admins' Ed25519 keys a user
//! trusts, per deployment, and the rule that decides whether a reactor
//! identity the control plane names may receive a sealed value.
//!
//! The `trust` file in the config directory holds one entry a line,
//! `<deployment id> <anchor public key, base64>`; `SEALPLANE_TRUST`
//! (`<deployment id>=<key>`, comma-separated) adds entries for CI. An
//! admin's anchor private key is read from `--anchor-key-file` or
//! `SEALPLANE_ANCHOR_KEY_FILE`.

use std::path::{Path, PathBuf};

use sealplane_host::{durable, private};

/// Far more than any real trust file: a larger one is not this file.
const MAX_FILE_BYTES: u64 = 1 << 20;
use sealplane_proto::certificate::{CertificateError, StoreCertificate, TrustAnchor};
use uuid::Uuid;

use crate::known_reactors::is_key_shaped;

/// The file's name inside the configuration directory.
pub const FILE_NAME: &str = "trust";

/// The environment variable that adds trusted anchors.
pub const TRUST_ENV: &str = "SEALPLANE_TRUST";

/// Why trust could not be read, changed or given.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file could not be read or written.
    #[error("cannot {action} {path}: {reason}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is owned by another user or writable by others (or unreadable).
    #[error(transparent)]
    Unsafe(#[from] private::PrivateFileError),
    /// An entry is not `<deployment id>=<anchor key>`.
    #[error(
        "{source_name}: `{entry}` is not a trust entry: write `<deployment id>=<anchor public key>` as `sealplane init` or `sealplane dev` prints it"
    )]
    Malformed {
        /// The file or variable.
        source_name: String,
        /// The entry (public keys only: nothing secret).
        entry: String,
    },
    /// The anchor key file is unusable.
    #[error("trust anchor key {path}: {reason}")]
    AnchorKey {
        /// The file.
        path: PathBuf,
        /// Why (never the key).
        reason: String,
    },
    /// The control plane presents an older certificate than this user saw.
    #[error(
        "the control plane presents certificate serial {presented} for store `{store}`, but this machine has seen serial {seen}: an old identity is being replayed (a compromised control plane looks like this); nothing was sent"
    )]
    RolledBack {
        /// The store.
        store: String,
        /// The serial presented.
        presented: u64,
        /// The highest serial seen.
        seen: u64,
    },
}

/// One trusted anchor of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustEntry {
    /// The deployment.
    pub deployment_id: Uuid,
    /// The anchor's public key, base64.
    pub anchor_key: String,
}

impl TrustEntry {
    /// Parses `<deployment id>=<key>` (or the two separated by space).
    pub fn parse(text: &str) -> Option<TrustEntry> {
        let text = text.trim();
        let (deployment, key) = text
            .split_once('=')
            .filter(|(_, k)| !k.is_empty())
            .or_else(|| text.split_once(char::is_whitespace))?;
        let deployment_id = Uuid::parse_str(deployment.trim()).ok()?;
        let anchor_key = key.trim().to_owned();
        is_key_shaped(&anchor_key).then_some(TrustEntry {
            deployment_id,
            anchor_key,
        })
    }
}

impl std::fmt::Display for TrustEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.deployment_id, self.anchor_key)
    }
}

/// What this user trusts: the `trust` file plus `SEALPLANE_TRUST`.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    path: PathBuf,
    /// Entries from the file (written back by add/remove).
    file: Vec<TrustEntry>,
    /// Entries from the environment (never written).
    env: Vec<TrustEntry>,
}

impl Trust {
    /// The file's place in `config_dir`.
    pub fn path_in(config_dir: &Path) -> PathBuf {
        config_dir.join(FILE_NAME)
    }

    /// Reads the file (missing is empty) and `env_value` (the variable's value).
    pub fn load(path: &Path, env_value: Option<&str>) -> Result<Trust, TrustError> {
        // Anchors vouch for reactor keys: a file another user could have
        // written is refused, not believed.
        let text = match private::read_trusted(path, "trust file", MAX_FILE_BYTES) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| TrustError::Io {
                action: "read",
                path: path.to_owned(),
                reason: "the file is not UTF-8 text".to_owned(),
            })?,
            Err(e) if e.is_not_found() => String::new(),
            Err(e) => return Err(e.into()),
        };
        let parse = |entry: &str, source_name: String| {
            TrustEntry::parse(entry).ok_or_else(|| TrustError::Malformed {
                source_name,
                entry: entry.to_owned(),
            })
        };
        let file = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse(l, path.display().to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let env = env_value
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| parse(e, TRUST_ENV.to_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Trust {
            path: path.to_owned(),
            file,
            env,
        })
    }

    /// Every entry, the file's first.
    pub fn entries(&self) -> impl Iterator<Item = (&TrustEntry, &'static str)> {
        self.file
            .iter()
            .map(|e| (e, "file"))
            .chain(self.env.iter().map(|e| (e, TRUST_ENV)))
    }

    /// Whether `anchor_key` is trusted for `deployment_id`.
    pub fn trusts(&self, deployment_id: Uuid, anchor_key: &str) -> bool {
        self.entries()
            .any(|(e, _)| e.deployment_id == deployment_id && e.anchor_key == anchor_key)
    }

    /// Adds an entry to the file (no-op if there).
    pub fn add(&mut self, entry: TrustEntry) -> Result<bool, TrustError> {
        if self.file.contains(&entry) {
            return Ok(false);
        }
        self.file.push(entry);
        self.save()?;
        Ok(true)
    }

    /// Removes every file entry with this anchor key (and deployment, if
    /// given); returns how many.
    pub fn remove(
        &mut self,
        deployment: Option<Uuid>,
        anchor_key: &str,
    ) -> Result<usize, TrustError> {
        let before = self.file.len();
        self.file.retain(|e| {
            !(e.anchor_key == anchor_key && deployment.is_none_or(|d| d == e.deployment_id))
        });
        let removed = before - self.file.len();
        if removed > 0 {
            self.save()?;
        }
        Ok(removed)
    }

    fn save(&self) -> Result<(), TrustError> {
        let mut text = String::from(
            "# Trust anchors sealctl accepts store certificates from (SPEC §12).\n\
             # <deployment id> <anchor public key>\n",
        );
        for e in &self.file {
            text.push_str(&format!("{} {}\n", e.deployment_id, e.anchor_key));
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io("write", e))?;
        }
        durable::write_atomic(&self.path, text.as_bytes(), 0o600).map_err(|e| self.io("write", e))
    }

    fn io(&self, action: &'static str, e: impl std::fmt::Display) -> TrustError {
        TrustError::Io {
            action,
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// Whether `certificate` vouches for `reactor_key` serving `store` of
    /// `deployment_id`: made by an anchor trusted for that deployment,
    /// naming exactly that store and key, with a valid signature, and not
    /// older than `seen` (the highest serial this user saw for the store).
    /// `Ok(None)` when it vouches for nothing this user trusts; an error
    /// when it is a rollback.
    pub fn vouches(
        &self,
        certificate: &StoreCertificate,
        deployment_id: Uuid,
        store: &str,
        reactor_key: &str,
        seen: u64,
    ) -> Result<Option<u64>, TrustError> {
        let binds = certificate.deployment_id == deployment_id
            && certificate.store.as_str() == store
            && certificate.reactor_key == reactor_key
            && self.trusts(deployment_id, &certificate.anchor_key)
            && certificate.verify().is_ok();
        if !binds {
            return Ok(None);
        }
        if certificate.serial < seen {
            return Err(TrustError::RolledBack {
                store: store.to_owned(),
                presented: certificate.serial,
                seen,
            });
        }
        Ok(Some(certificate.serial))
    }
}

/// Reads an anchor private key file (written by `sealctl trust generate`,
/// `sealplane init --anchor-out` or `sealplane dev`).
pub fn load_anchor(path: &Path) -> Result<TrustAnchor, TrustError> {
    let bad = |reason: String| TrustError::AnchorKey {
        path: path.to_owned(),
        reason,
    };
    // A private key: refused when its group or others may read it.
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    private::read_private(path, "trust anchor key file", 64 * 1024, &mut bytes)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("is not UTF-8 text".to_owned()))?;
    TrustAnchor::from_text(text).map_err(|e: CertificateError| bad(e.to_string()))
}

/// Writes a new anchor to `path` (0600, never over an existing file).
pub fn generate_anchor(path: &Path) -> Result<TrustAnchor, TrustError> {
    let anchor = TrustAnchor::generate();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| TrustError::AnchorKey {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    }
    durable::create_new(path, anchor.to_text().as_bytes(), 0o600).map_err(|e| {
        TrustError::AnchorKey {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })?;
    Ok(anchor)
}

#[cfg(test)]
mod tests {
    use sealplane_proto::names::StoreName;

    use super::*;

    const D: Uuid = Uuid::from_u128(0xd);

    fn trust_of(anchor: &TrustAnchor, deployment: Uuid) -> Trust {
        Trust::load(
            Path::new("/nonexistent/trust"),
            Some(&format!("{deployment}={}", anchor.public_key_base64())),
        )
        .unwrap()
    }

    fn key(n: u8) -> String {
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [n; 32])
    }

    #[test]
    fn a_trusted_anchors_certificate_vouches_for_exactly_its_store_and_key() {
        let anchor = TrustAnchor::generate();
        let trust = trust_of(&anchor, D);
        let c = anchor.certify(D, StoreName::parse("prod").unwrap(), "vault", [1; 32], 2);
        assert_eq!(trust.vouches(&c, D, "prod", &key(1), 0).unwrap(), Some(2));
        assert_eq!(trust.vouches(&c, D, "prod", &key(1), 2).unwrap(), Some(2));
        // Another store, another key, another deployment: nothing.
        assert_eq!(trust.vouches(&c, D, "evil", &key(1), 0).unwrap(), None);
        assert_eq!(trust.vouches(&c, D, "prod", &key(9), 0).unwrap(), None);
        assert_eq!(
            trust
                .vouches(&c, Uuid::from_u128(1), "prod", &key(1), 0)
                .unwrap(),
            None
        );
        // An older serial than seen: a rollback, refused loudly.
        let e = trust.vouches(&c, D, "prod", &key(1), 3).unwrap_err();
        assert!(e.to_string().contains("serial 2"), "{e}");
    }

    #[test]
    fn an_untrusted_or_forged_certificate_vouches_for_nothing() {
        let anchor = TrustAnchor::generate();
        let stranger = TrustAnchor::generate();
        let trust = trust_of(&anchor, D);
        let c = stranger.certify(D, StoreName::parse("prod").unwrap(), "vault", [1; 32], 1);
        assert_eq!(trust.vouches(&c, D, "prod", &key(1), 0).unwrap(), None);
        // The trusted anchor's key on a certificate it did not sign.
        let mut forged = c.clone();
        forged.anchor_key = anchor.public_key_base64();
        assert_eq!(trust.vouches(&forged, D, "prod", &key(1), 0).unwrap(), None);
        // An anchor trusted for another deployment vouches for nothing here.
        let elsewhere = trust_of(&anchor, Uuid::from_u128(7));
        let mine = anchor.certify(D, StoreName::parse("prod").unwrap(), "vault", [1; 32], 1);
        assert_eq!(
            elsewhere.vouches(&mine, D, "prod", &key(1), 0).unwrap(),
            None
        );
    }

    #[test]
    fn the_trust_file_keeps_entries_and_the_environment_adds_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = Trust::path_in(dir.path());
        let a = TrustEntry::parse(&format!("{D}={}", key(1))).unwrap();
        let b = TrustEntry::parse(&format!("{D} {}", key(2))).unwrap();
        let mut t = Trust::load(&path, None).unwrap();
        assert!(t.add(a.clone()).unwrap());
        assert!(!t.add(a.clone()).unwrap());
        let t = Trust::load(&path, Some(&b.to_string())).unwrap();
        assert!(t.trusts(D, &key(1)) && t.trusts(D, &key(2)));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let mut t = Trust::load(&path, None).unwrap();
        assert_eq!(t.remove(None, &key(1)).unwrap(), 1);
        assert!(!Trust::load(&path, None).unwrap().trusts(D, &key(1)));
        for bad in ["nope", "x=y", &format!("{D}=short")] {
            assert!(Trust::load(&path, Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_trust_file_others_may_write_or_another_user_owns_is_refused_on_load() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = Trust::path_in(dir.path());
        let mut t = Trust::load(&path, None).unwrap();
        t.add(TrustEntry::parse(&format!("{D}={}", key(1))).unwrap())
            .unwrap();
        for mode in [0o620, 0o602, 0o666] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = Trust::load(&path, None).unwrap_err().to_string();
            assert!(e.contains("writable by group or others"), "{e}");
            assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Trust::load(&path, None).unwrap().trusts(D, &key(1)));
        let (other, owner) = if sealplane_host::private::current_uid() == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            (path.clone(), 65534)
        } else {
            (PathBuf::from("/etc/passwd"), 0)
        };
        let e = Trust::load(&other, None).unwrap_err().to_string();
        assert!(e.contains(&format!("owned by uid {owner}")), "{e}");
    }

    #[test]
    fn an_anchor_key_file_open_to_group_or_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor.key");
        generate_anchor(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = load_anchor(&path).unwrap_err().to_string();
        assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
    }

    #[test]
    fn anchor_files_are_created_private_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor.key");
        let anchor = generate_anchor(&path).unwrap();
        assert_eq!(
            load_anchor(&path).unwrap().public_key_base64(),
            anchor.public_key_base64()
        );
        assert!(
            generate_anchor(&path).is_err(),
            "an existing anchor is kept"
        );
    }
}

//! The `known_log_keys` file: each deployment's log key as this user
//! first saw it (`sealctl audit checkpoint` / `audit verify`), the way
//! `known_reactors` pins reactor identities. One entry a line:
//! `<deployment id> <base64 Ed25519 public key>`; written atomically, 0600.
//! A key that differs from the pin is refused (ADR 0016).

use std::path::{Path, PathBuf};

use sealplane_host::{durable, private};

/// The file's name inside the configuration directory.
pub const FILE_NAME: &str = "known_log_keys";
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why a log key could not be pinned or trusted.
#[derive(Debug, thiserror::Error)]
pub enum LogKeyPinError {
    /// The file is unsafe or unreadable.
    #[error(transparent)]
    Unsafe(#[from] private::PrivateFileError),
    /// Writing failed.
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    /// A line is not `<deployment> <key>`.
    #[error(
        "{path}, line {line}: each line must be `<deployment id> <base64 Ed25519 key>`; fix or delete that line"
    )]
    Malformed { path: PathBuf, line: usize },
    /// The control plane's log key is not the pinned one.
    #[error(
        "the log key of deployment {deployment} changed: pinned {pinned}, the control plane now says {offered}. This can mean the control plane is compromised or its log key was replaced; if an admin confirms the new key, pass it with --log-key FILE"
    )]
    Changed {
        deployment: String,
        pinned: String,
        offered: String,
    },
}

/// What [`check_or_pin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinned {
    /// The key was already pinned.
    Known,
    /// The key is pinned now, for the first time.
    New(PathBuf),
}

fn entries(path: &Path) -> Result<Vec<(String, String)>, LogKeyPinError> {
    let text = match private::read_trusted(path, "known_log_keys file", MAX_FILE_BYTES) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.is_not_found() => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(d), Some(k), None) => out.push((d.to_owned(), k.to_owned())),
            _ => {
                return Err(LogKeyPinError::Malformed {
                    path: path.to_owned(),
                    line: i + 1,
                });
            }
        }
    }
    Ok(out)
}

/// Checks `key` (base64) against the pin for `deployment` in `dir`, and
/// pins it when there is none.
pub fn check_or_pin(dir: &Path, deployment: &str, key: &str) -> Result<Pinned, LogKeyPinError> {
    let path = dir.join(FILE_NAME);
    let mut pins = entries(&path)?;
    if let Some((_, pinned)) = pins.iter().find(|(d, _)| d == deployment) {
        if pinned != key {
            return Err(LogKeyPinError::Changed {
                deployment: deployment.to_owned(),
                pinned: pinned.clone(),
                offered: key.to_owned(),
            });
        }
        return Ok(Pinned::Known);
    }
    pins.push((deployment.to_owned(), key.to_owned()));
    let mut text = String::from(
        "# Log keys sealctl pinned, one per deployment (sealctl audit checkpoint/verify).\n\
         # <deployment id> <base64 Ed25519 public key>\n",
    );
    for (d, k) in &pins {
        text.push_str(&format!("{d} {k}\n"));
    }
    if !dir.exists() {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| LogKeyPinError::Write {
                path: dir.to_owned(),
                reason: e.to_string(),
            })?;
    }
    durable::write_atomic(&path, text.as_bytes(), 0o600).map_err(|e| LogKeyPinError::Write {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(Pinned::New(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_key_is_pinned_and_a_different_one_refused() {
        // Given no pins
        let dir = tempfile::tempdir().unwrap();
        // When a deployment's key is seen first, it is pinned
        assert!(matches!(
            check_or_pin(dir.path(), "d1", "KEY1").unwrap(),
            Pinned::New(_)
        ));
        // Then the same key is known, another deployment pins its own
        assert_eq!(
            check_or_pin(dir.path(), "d1", "KEY1").unwrap(),
            Pinned::Known
        );
        assert!(matches!(
            check_or_pin(dir.path(), "d2", "KEY2").unwrap(),
            Pinned::New(_)
        ));
        // And a changed key is refused, naming both
        let err = check_or_pin(dir.path(), "d1", "KEY9").unwrap_err();
        assert!(matches!(err, LogKeyPinError::Changed { .. }));
        let text = err.to_string();
        assert!(text.contains("KEY1") && text.contains("KEY9"), "{text}");
    }

    #[test]
    fn a_malformed_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "d1 KEY1 extra\n").unwrap();
        let err = check_or_pin(dir.path(), "d1", "KEY1").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}

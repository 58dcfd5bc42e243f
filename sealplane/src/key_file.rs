//! Private key files in a data directory, created on first start: read
//! with `private::read_private` (refused when group or others may read
//! them) and created with `durable::create_new` (0600, never replacing a
//! file). Dev mode's trust anchor and the control plane's log key.

use std::path::Path;

use sealplane_host::{durable, private};
use zeroize::Zeroizing;

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {reason}")]
pub struct KeyFileError {
    what: &'static str,
    path: String,
    reason: String,
}

/// Loads the key in `path` with `parse`, or creates one with `generate`
/// (the key and its file text) when there is none; `true` means created.
pub fn load_or_create<T>(
    path: &Path,
    what: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
    generate: impl FnOnce() -> (T, Zeroizing<String>),
) -> Result<(T, bool), KeyFileError> {
    let bad = |reason: String| KeyFileError {
        what,
        path: path.display().to_string(),
        reason,
    };
    let mut bytes = Zeroizing::new(Vec::new());
    match private::read_private(path, what, 64 * 1024, &mut bytes) {
        Ok(()) => {
            let text =
                std::str::from_utf8(&bytes).map_err(|_| bad("is not UTF-8 text".to_owned()))?;
            Ok((parse(text).map_err(bad)?, false))
        }
        Err(e) if e.is_not_found() => {
            let (key, text) = generate();
            durable::create_new(path, text.as_bytes(), 0o600).map_err(|e| bad(e.to_string()))?;
            Ok((key, true))
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

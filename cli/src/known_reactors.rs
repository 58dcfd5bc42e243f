//! The `known_reactors` file: each store's reactor identity as this user
//! first saw it (trust on first use, like SSH `known_hosts`; SPEC §1.4).
//!
//! One entry a line: `<control-plane addr> <store name> <base64 Ed25519
//! public key>`; blank lines and `#` comments are kept out of the model and
//! not rewritten. The file is written atomically (a temporary file renamed
//! over it), mode 0600, in a directory of mode 0700.

use std::fmt;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealplane_host::durable;

/// The file's name inside the configuration directory.
pub const FILE_NAME: &str = "known_reactors";

/// Why the pins could not be read, written or trusted.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The file could not be read or written.
    #[error("cannot {action} {path}: {reason}")]
    Io {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: std::io::Error,
    },
    /// A line is not `<addr> <store> <key>`.
    #[error(
        "{path}, line {line}: {problem}; each line must be `<control-plane addr> <store> <base64 Ed25519 key>`: fix or delete that line"
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: &'static str,
    },
    /// The same addr and store appear twice.
    #[error("{path}, line {line}: store `{store}` at {addr} is pinned twice; keep one line for it")]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// 1-based line number of the second entry.
        line: usize,
        /// The control plane.
        addr: String,
        /// The store.
        store: String,
    },
    /// A key given with `--reactor-key` is not an Ed25519 public key.
    #[error("--reactor-key {0:?} is not base64 of a 32-byte Ed25519 public key")]
    BadGivenKey(String),
    /// The pin and the control plane's answer differ (SPEC §1.4).
    #[error(
        "the reactor identity for store `{store}` changed: pinned {pinned}, the control plane now says {offered}. This can mean the control plane is compromised. If an admin really replaced the reactor, re-run with --reactor-key {offered}"
    )]
    Changed {
        /// The store.
        store: String,
        /// The key this user pinned.
        pinned: String,
        /// The key the control plane reports.
        offered: String,
    },
}

/// One pinned identity.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pin {
    addr: String,
    store: String,
    key: String,
}

/// The pins of one `known_reactors` file.
#[derive(Debug, Clone)]
pub struct KnownReactors {
    path: PathBuf,
    pins: Vec<Pin>,
}

/// Which key a signed one-time key must verify against, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// No pin yet: the control plane's key, to be pinned once it verifies.
    FirstUse(String),
    /// The pinned key.
    Pinned(String),
    /// The key given with `--reactor-key`; replaces the pin once it verifies.
    Given {
        /// The given key.
        key: String,
        /// The key it replaces, if any and different.
        replaces: Option<String>,
    },
}

impl Expected {
    /// The base64 key signatures are checked against.
    pub fn key(&self) -> &str {
        match self {
            Expected::FirstUse(k) | Expected::Pinned(k) | Expected::Given { key: k, .. } => k,
        }
    }

    /// Whether the pin must be written once the key verifies.
    pub fn must_pin(&self) -> bool {
        match self {
            Expected::FirstUse(_) => true,
            Expected::Pinned(_) => false,
            Expected::Given { key, replaces } => replaces.as_deref() != Some(key.as_str()),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Whether `key` is base64 of 32 bytes (the shape of an Ed25519 public key).
pub fn is_key_shaped(key: &str) -> bool {
    STANDARD.decode(key).is_ok_and(|b| b.len() == 32)
}

/// Normalises a control-plane address so `http://h:1/` and `http://h:1` pin alike.
pub fn normalise_addr(addr: &str) -> String {
    addr.trim().trim_end_matches('/').to_owned()
}

impl KnownReactors {
    /// The file's default place in `config_dir`.
    pub fn path_in(config_dir: &Path) -> PathBuf {
        config_dir.join(FILE_NAME)
    }

    /// Reads `path`; a missing file is an empty set of pins.
    pub fn load(path: &Path) -> Result<Self, PinError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(reason) => {
                return Err(PinError::Io {
                    action: "read",
                    path: path.to_owned(),
                    reason,
                });
            }
        };
        let mut pins: Vec<Pin> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let malformed = |problem| PinError::Malformed {
                path: path.to_owned(),
                line: i + 1,
                problem,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [addr, store, key] = fields[..] else {
                return Err(malformed("expected three fields"));
            };
            if !is_key_shaped(key) {
                return Err(malformed(
                    "the key is not base64 of a 32-byte Ed25519 public key",
                ));
            }
            let pin = Pin {
                addr: normalise_addr(addr),
                store: store.to_owned(),
                key: key.to_owned(),
            };
            if pins
                .iter()
                .any(|p| p.addr == pin.addr && p.store == pin.store)
            {
                return Err(PinError::Duplicate {
                    path: path.to_owned(),
                    line: i + 1,
                    addr: pin.addr,
                    store: pin.store,
                });
            }
            pins.push(pin);
        }
        Ok(KnownReactors {
            path: path.to_owned(),
            pins,
        })
    }

    /// The file these pins come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pinned key of `store` at control plane `addr`.
    pub fn pinned(&self, addr: &str, store: &str) -> Option<&str> {
        let addr = normalise_addr(addr);
        self.pins
            .iter()
            .find(|p| p.addr == addr && p.store == store)
            .map(|p| p.key.as_str())
    }

    /// Decides which key the one-time key must be signed by (SPEC §1.4):
    /// `--reactor-key` if given, else the pin, else (first use) the key the
    /// control plane reports. A pin that differs from the control plane's
    /// key is refused unless `--reactor-key` is given.
    pub fn expected(
        &self,
        addr: &str,
        store: &str,
        given: Option<&str>,
        offered: &str,
    ) -> Result<Expected, PinError> {
        let pinned = self.pinned(addr, store);
        if let Some(key) = given {
            let key = key.trim();
            if !is_key_shaped(key) {
                return Err(PinError::BadGivenKey(key.to_owned()));
            }
            return Ok(Expected::Given {
                key: key.to_owned(),
                replaces: pinned.map(str::to_owned),
            });
        }
        match pinned {
            None => Ok(Expected::FirstUse(offered.to_owned())),
            Some(pinned) if pinned == offered => Ok(Expected::Pinned(pinned.to_owned())),
            Some(pinned) => Err(PinError::Changed {
                store: store.to_owned(),
                pinned: pinned.to_owned(),
                offered: offered.to_owned(),
            }),
        }
    }

    /// Pins `key` for `store` at `addr`, replacing an earlier pin, and
    /// writes the file.
    pub fn pin(&mut self, addr: &str, store: &str, key: &str) -> Result<(), PinError> {
        let addr = normalise_addr(addr);
        match self
            .pins
            .iter_mut()
            .find(|p| p.addr == addr && p.store == store)
        {
            Some(p) => p.key = key.to_owned(),
            None => self.pins.push(Pin {
                addr,
                store: store.to_owned(),
                key: key.to_owned(),
            }),
        }
        self.save()
    }

    /// Writes the file atomically and durably (0600), creating its
    /// directory (0700) if missing.
    fn save(&self) -> Result<(), PinError> {
        let io = |reason| PinError::Io {
            action: "write",
            path: self.path.clone(),
            reason,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        let mut text = String::from(
            "# Reactor identities pinned by sealctl on first use (like SSH known_hosts).\n\
             # <control-plane addr> <store> <base64 Ed25519 public key>\n",
        );
        for p in &self.pins {
            text.push_str(&format!("{} {} {}\n", p.addr, p.store, p.key));
        }
        durable::write_atomic(&self.path, text.as_bytes(), 0o600).map_err(|e| io(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    const ADDR: &str = "http://127.0.0.1:7700";

    fn key(n: u8) -> String {
        STANDARD.encode([n; 32])
    }

    fn empty() -> (tempfile::TempDir, KnownReactors) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealplane").join(FILE_NAME);
        let pins = KnownReactors::load(&path).unwrap();
        (dir, pins)
    }

    #[test]
    fn first_use_trusts_the_offered_key_and_pins_it() {
        let (_dir, mut pins) = empty();
        let e = pins.expected(ADDR, "prod", None, &key(1)).unwrap();
        assert_eq!(e, Expected::FirstUse(key(1)));
        assert!(e.must_pin());
        pins.pin(ADDR, "prod", e.key()).unwrap();
        let again = KnownReactors::load(pins.path()).unwrap();
        assert_eq!(again.pinned(ADDR, "prod"), Some(key(1).as_str()));
        assert_eq!(
            again.pinned(&format!("{ADDR}/"), "prod"),
            Some(key(1).as_str())
        );
        assert_eq!(again.pinned("http://other:7700", "prod"), None);
        let e = again.expected(ADDR, "prod", None, &key(1)).unwrap();
        assert_eq!(e, Expected::Pinned(key(1)));
        assert!(!e.must_pin());
    }

    #[test]
    fn a_changed_key_is_refused_loudly() {
        let (_dir, mut pins) = empty();
        pins.pin(ADDR, "prod", &key(1)).unwrap();
        let e = pins.expected(ADDR, "prod", None, &key(2)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&format!("pinned {}", key(1))), "{msg}");
        assert!(msg.contains(&format!("now says {}", key(2))), "{msg}");
        assert!(msg.contains("compromised"), "{msg}");
        assert!(msg.contains(&format!("--reactor-key {}", key(2))), "{msg}");
    }

    #[test]
    fn a_given_key_wins_and_replaces_the_pin() {
        let (_dir, mut pins) = empty();
        pins.pin(ADDR, "prod", &key(1)).unwrap();
        pins.pin(ADDR, "dev", &key(9)).unwrap();
        let e = pins.expected(ADDR, "prod", Some(&key(2)), &key(3)).unwrap();
        assert_eq!(
            e,
            Expected::Given {
                key: key(2),
                replaces: Some(key(1))
            }
        );
        assert!(e.must_pin());
        pins.pin(ADDR, "prod", e.key()).unwrap();
        let again = KnownReactors::load(pins.path()).unwrap();
        assert_eq!(again.pinned(ADDR, "prod"), Some(key(2).as_str()));
        assert_eq!(again.pinned(ADDR, "dev"), Some(key(9).as_str()));
        // Giving the pinned key again changes nothing.
        let same = again
            .expected(ADDR, "prod", Some(&key(2)), &key(2))
            .unwrap();
        assert!(!same.must_pin());
        assert!(matches!(
            again.expected(ADDR, "prod", Some("nope"), &key(2)),
            Err(PinError::BadGivenKey(_))
        ));
    }

    #[test]
    fn the_file_is_0600_in_a_0700_directory() {
        let (_dir, mut pins) = empty();
        pins.pin(ADDR, "prod", &key(1)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(pins.path()), 0o600);
        assert_eq!(mode(pins.path().parent().unwrap()), 0o700);
        let text = std::fs::read_to_string(pins.path()).unwrap();
        assert!(
            text.ends_with(&format!("{ADDR} prod {}\n", key(1))),
            "{text}"
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(pins.path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let good = format!("{ADDR} prod {}", key(1));
        let cases = [
            (format!("# c\n\n{good}\n{ADDR} prod\n"), 4, "three fields"),
            (format!("{ADDR} prod {} extra\n", key(1)), 1, "three fields"),
            (
                format!("{good}\n{ADDR} dev AAAA\n"),
                2,
                "not base64 of a 32-byte",
            ),
            (format!("{ADDR} dev not*base64!\n"), 1, "not base64"),
        ];
        for (text, line, problem) in cases {
            std::fs::write(&path, &text).unwrap();
            let msg = KnownReactors::load(&path).unwrap_err().to_string();
            assert!(msg.contains(&format!("line {line}: ")), "{msg}");
            assert!(msg.contains(problem), "{msg}");
        }
        std::fs::write(&path, format!("{good}\n{good}\n")).unwrap();
        let msg = KnownReactors::load(&path).unwrap_err().to_string();
        assert!(
            msg.contains("line 2") && msg.contains("pinned twice"),
            "{msg}"
        );
    }
}

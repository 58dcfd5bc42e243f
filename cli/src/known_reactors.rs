//! The `known_reactors` file: each store's reactor identity as this user
//! accepted it — certified by a trusted anchor, given with
//! `--reactor-key`, or confirmed on a terminal (never silently; SPEC §1.4,
//! ADR 0010) — and the highest certificate serial seen, so an older
//! certificate is refused.
//!
//! One entry a line: `<deployment id> <store name> <base64 Ed25519 public
//! key> [<serial>]`. Files written before deployment ids name the
//! control-plane address instead; such a pin is honoured for that address
//! and rewritten under the deployment id the next time it is used. Blank
//! lines and `#` comments are not kept. The file is written atomically,
//! mode 0600, in a directory of mode 0700.

use std::fmt;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealplane_host::{durable, private};

/// Far more than any real pin file: a larger one is not this file.
const MAX_FILE_BYTES: u64 = 4 << 20;

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
    /// The file is owned by another user or writable by others (or unreadable).
    #[error(transparent)]
    Unsafe(#[from] private::PrivateFileError),
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
    /// The deployment id (or, in files from before them, the address).
    addr: String,
    store: String,
    key: String,
    /// The highest certificate serial seen for the store; 0 for none.
    serial: u64,
}

/// Where pins are looked up: the deployment the control plane names, and
/// the address typed (for pins written before deployment ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The deployment id (empty if the control plane names none).
    pub deployment: String,
    /// The control-plane address as typed.
    pub addr: String,
}

impl Scope {
    /// The key new pins are written under.
    fn key(&self) -> String {
        if self.deployment.is_empty() {
            normalise_addr(&self.addr)
        } else {
            self.deployment.clone()
        }
    }
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
    /// Nothing vouches for the control plane's key: only a person's
    /// confirmation may accept it (never silently).
    Unknown(String),
    /// A certificate from a trusted anchor binds the key to the store.
    Certified {
        /// The certified key.
        key: String,
        /// The certificate's serial.
        serial: u64,
    },
    /// The pinned key.
    Pinned(String),
    /// A pin written under the address, to move under the deployment id.
    Legacy(String),
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
            Expected::Unknown(k)
            | Expected::Pinned(k)
            | Expected::Legacy(k)
            | Expected::Certified { key: k, .. }
            | Expected::Given { key: k, .. } => k,
        }
    }

    /// Whether the pin must be written once the key verifies.
    pub fn must_pin(&self) -> bool {
        match self {
            Expected::Unknown(_) | Expected::Legacy(_) | Expected::Certified { .. } => true,
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
        // Pins decide whom a value is sealed to: a file another user could
        // have written is refused, not believed.
        let text = match private::read_trusted(path, "known_reactors file", MAX_FILE_BYTES) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| PinError::Io {
                action: "read",
                path: path.to_owned(),
                reason: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
            })?,
            Err(e) if e.is_not_found() => String::new(),
            Err(e) => return Err(e.into()),
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
            let (addr, store, key, serial) = match fields[..] {
                [addr, store, key] => (addr, store, key, 0),
                [addr, store, key, serial] => (
                    addr,
                    store,
                    key,
                    serial
                        .parse()
                        .map_err(|_| malformed("the serial is not a number"))?,
                ),
                _ => return Err(malformed("expected three or four fields")),
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
                serial,
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

    fn find(&self, scope_key: &str, store: &str) -> Option<&Pin> {
        self.pins
            .iter()
            .find(|p| p.addr == scope_key && p.store == store)
    }

    /// The pin of `store` in `scope`, and whether it is a legacy one
    /// (written under the address).
    fn pinned(&self, scope: &Scope, store: &str) -> Option<(&Pin, bool)> {
        self.find(&scope.key(), store)
            .map(|p| (p, false))
            .or_else(|| {
                self.find(&normalise_addr(&scope.addr), store)
                    .map(|p| (p, true))
            })
    }

    /// The highest certificate serial this user saw for `store`.
    pub fn serial(&self, scope: &Scope, store: &str) -> u64 {
        self.pinned(scope, store).map_or(0, |(p, _)| p.serial)
    }

    /// Decides which key the one-time key must be signed by (SPEC §1.4):
    /// `--reactor-key` if given; else the key a trusted certificate binds
    /// (`certified`, its serial); else the pin, which must equal the
    /// control plane's key; else nothing vouches for it
    /// ([`Expected::Unknown`]).
    pub fn expected(
        &self,
        scope: &Scope,
        store: &str,
        given: Option<&str>,
        offered: &str,
        certified: Option<u64>,
    ) -> Result<Expected, PinError> {
        let pinned = self.pinned(scope, store);
        if let Some(key) = given {
            let key = key.trim();
            if !is_key_shaped(key) {
                return Err(PinError::BadGivenKey(key.to_owned()));
            }
            return Ok(Expected::Given {
                key: key.to_owned(),
                replaces: pinned.map(|(p, _)| p.key.clone()),
            });
        }
        if let Some(serial) = certified {
            return Ok(Expected::Certified {
                key: offered.to_owned(),
                serial,
            });
        }
        match pinned {
            None => Ok(Expected::Unknown(offered.to_owned())),
            Some((p, legacy)) if p.key == offered => Ok(if legacy {
                Expected::Legacy(p.key.clone())
            } else {
                Expected::Pinned(p.key.clone())
            }),
            Some((p, _)) => Err(PinError::Changed {
                store: store.to_owned(),
                pinned: p.key.clone(),
                offered: offered.to_owned(),
            }),
        }
    }

    /// Pins `key` for `store` in `scope` (with the certificate serial seen,
    /// which never goes down), replacing an earlier pin, and writes the file
    /// when that changes it (every put pins what it accepted: most of the
    /// time the very pin the file holds, and the file is left alone).
    pub fn pin(
        &mut self,
        scope: &Scope,
        store: &str,
        key: &str,
        serial: u64,
    ) -> Result<(), PinError> {
        let scope_key = scope.key();
        let legacy_key = normalise_addr(&scope.addr);
        let pin = Pin {
            serial: serial.max(self.serial(scope, store)),
            addr: scope_key,
            store: store.to_owned(),
            key: key.to_owned(),
        };
        let replaced = |p: &Pin| p.store == store && (p.addr == pin.addr || p.addr == legacy_key);
        let mut old = self.pins.iter().filter(|p| replaced(p));
        if old.next() == Some(&pin) && old.next().is_none() {
            return Ok(());
        }
        self.pins.retain(|p| !replaced(p));
        self.pins.push(pin);
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
            "# Reactor identities sealctl accepted (certified, given or confirmed).\n\
             # <deployment id> <store> <base64 Ed25519 public key> [<certificate serial>]\n",
        );
        for p in &self.pins {
            text.push_str(&format!("{} {} {}", p.addr, p.store, p.key));
            if p.serial > 0 {
                text.push_str(&format!(" {}", p.serial));
            }
            text.push('\n');
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

    const DEPLOYMENT: &str = "6f1c2a8e-0000-4000-8000-00000000d001";

    fn scope() -> Scope {
        Scope {
            deployment: DEPLOYMENT.into(),
            addr: ADDR.into(),
        }
    }

    #[test]
    fn nothing_vouches_for_an_unknown_key_and_a_confirmed_one_is_pinned() {
        let (_dir, mut pins) = empty();
        let e = pins
            .expected(&scope(), "prod", None, &key(1), None)
            .unwrap();
        // Never silently trusted: the caller must ask a person or refuse.
        assert_eq!(e, Expected::Unknown(key(1)));
        assert!(e.must_pin());
        pins.pin(&scope(), "prod", e.key(), 0).unwrap();
        let again = KnownReactors::load(pins.path()).unwrap();
        let e = again
            .expected(&scope(), "prod", None, &key(1), None)
            .unwrap();
        assert_eq!(e, Expected::Pinned(key(1)));
        assert!(!e.must_pin());
        // Pins follow the deployment, not the address typed.
        let elsewhere = Scope {
            deployment: DEPLOYMENT.into(),
            addr: "https://sealplane.internal:7443".into(),
        };
        assert_eq!(
            again
                .expected(&elsewhere, "prod", None, &key(1), None)
                .unwrap(),
            Expected::Pinned(key(1))
        );
        let other_deployment = Scope {
            deployment: "6f1c2a8e-0000-4000-8000-00000000d002".into(),
            addr: ADDR.into(),
        };
        assert_eq!(
            again
                .expected(&other_deployment, "prod", None, &key(1), None)
                .unwrap(),
            Expected::Unknown(key(1))
        );
    }

    #[test]
    fn a_certified_key_is_accepted_and_its_serial_never_goes_down() {
        let (_dir, mut pins) = empty();
        pins.pin(&scope(), "prod", &key(1), 0).unwrap();
        // A replaced identity with a certificate wins over the old pin.
        let e = pins
            .expected(&scope(), "prod", None, &key(2), Some(2))
            .unwrap();
        assert_eq!(
            e,
            Expected::Certified {
                key: key(2),
                serial: 2
            }
        );
        pins.pin(&scope(), "prod", e.key(), 2).unwrap();
        assert_eq!(pins.serial(&scope(), "prod"), 2);
        pins.pin(&scope(), "prod", &key(2), 1).unwrap();
        let again = KnownReactors::load(pins.path()).unwrap();
        assert_eq!(again.serial(&scope(), "prod"), 2);
    }

    #[test]
    fn given_the_pin_the_file_holds_when_pinned_again_then_the_file_is_not_rewritten() {
        use std::os::unix::fs::MetadataExt as _;
        let (_dir, mut pins) = empty();
        let inode = |pins: &KnownReactors| std::fs::metadata(pins.path()).unwrap().ino();
        pins.pin(&scope(), "prod", &key(1), 2).unwrap();
        let first = inode(&pins);
        // A put accepting the same identity (a lower serial never counts).
        pins.pin(&scope(), "prod", &key(1), 2).unwrap();
        pins.pin(&scope(), "prod", &key(1), 1).unwrap();
        assert_eq!(
            inode(&pins),
            first,
            "rewritten (a new file) for the same pin"
        );
        // A higher serial, or another key, is written.
        pins.pin(&scope(), "prod", &key(1), 3).unwrap();
        let second = inode(&pins);
        assert_ne!(second, first);
        assert_eq!(
            KnownReactors::load(pins.path())
                .unwrap()
                .serial(&scope(), "prod"),
            3
        );
        pins.pin(&scope(), "prod", &key(2), 3).unwrap();
        assert_ne!(inode(&pins), second);
        assert_eq!(
            KnownReactors::load(pins.path())
                .unwrap()
                .expected(&scope(), "prod", None, &key(2), None)
                .unwrap(),
            Expected::Pinned(key(2))
        );
    }

    #[test]
    fn a_pin_from_before_deployment_ids_is_honoured_and_moved() {
        let (_dir, mut pins) = empty();
        std::fs::create_dir_all(pins.path().parent().unwrap()).unwrap();
        std::fs::write(pins.path(), format!("{ADDR} prod {}\n", key(1))).unwrap();
        pins = KnownReactors::load(pins.path()).unwrap();
        let e = pins
            .expected(&scope(), "prod", None, &key(1), None)
            .unwrap();
        assert_eq!(e, Expected::Legacy(key(1)));
        assert!(e.must_pin());
        pins.pin(&scope(), "prod", e.key(), 0).unwrap();
        let text = std::fs::read_to_string(pins.path()).unwrap();
        assert!(
            text.contains(&format!("{DEPLOYMENT} prod {}", key(1))),
            "{text}"
        );
        assert!(!text.contains(&format!("{ADDR} prod")), "{text}");
    }

    #[test]
    fn a_changed_key_is_refused_loudly() {
        let (_dir, mut pins) = empty();
        pins.pin(&scope(), "prod", &key(1), 0).unwrap();
        let e = pins
            .expected(&scope(), "prod", None, &key(2), None)
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&format!("pinned {}", key(1))), "{msg}");
        assert!(msg.contains(&format!("now says {}", key(2))), "{msg}");
        assert!(msg.contains("compromised"), "{msg}");
        assert!(msg.contains(&format!("--reactor-key {}", key(2))), "{msg}");
    }

    #[test]
    fn a_given_key_wins_and_replaces_the_pin() {
        let (_dir, mut pins) = empty();
        pins.pin(&scope(), "prod", &key(1), 0).unwrap();
        pins.pin(&scope(), "dev", &key(9), 0).unwrap();
        let e = pins
            .expected(&scope(), "prod", Some(&key(2)), &key(3), None)
            .unwrap();
        assert_eq!(
            e,
            Expected::Given {
                key: key(2),
                replaces: Some(key(1))
            }
        );
        assert!(e.must_pin());
        pins.pin(&scope(), "prod", e.key(), 0).unwrap();
        let again = KnownReactors::load(pins.path()).unwrap();
        assert_eq!(
            again
                .expected(&scope(), "prod", None, &key(2), None)
                .unwrap(),
            Expected::Pinned(key(2))
        );
        assert_eq!(
            again
                .expected(&scope(), "dev", None, &key(9), None)
                .unwrap(),
            Expected::Pinned(key(9))
        );
        // Giving the pinned key again changes nothing.
        let same = again
            .expected(&scope(), "prod", Some(&key(2)), &key(2), None)
            .unwrap();
        assert!(!same.must_pin());
        assert!(matches!(
            again.expected(&scope(), "prod", Some("nope"), &key(2), None),
            Err(PinError::BadGivenKey(_))
        ));
    }

    #[test]
    fn the_file_is_0600_in_a_0700_directory() {
        let (_dir, mut pins) = empty();
        pins.pin(&scope(), "prod", &key(1), 0).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(pins.path()), 0o600);
        assert_eq!(mode(pins.path().parent().unwrap()), 0o700);
        let text = std::fs::read_to_string(pins.path()).unwrap();
        assert!(
            text.ends_with(&format!("{DEPLOYMENT} prod {}\n", key(1))),
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
    fn a_file_others_may_write_or_another_user_owns_is_refused_on_load() {
        use std::os::unix::fs::PermissionsExt as _;
        let (_dir, mut pins) = empty();
        pins.pin(&scope(), "prod", &key(1), 0).unwrap();
        let path = pins.path().to_owned();
        for mode in [0o620, 0o602, 0o666] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = KnownReactors::load(&path).unwrap_err().to_string();
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains("writable by group or others"), "{e}");
            assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
        }
        // Readable by others is fine: pins are public keys.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        KnownReactors::load(&path).unwrap();
        let (other, owner) = if sealplane_host::private::current_uid() == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            (path.clone(), 65534)
        } else {
            (PathBuf::from("/etc/passwd"), 0)
        };
        let e = KnownReactors::load(&other).unwrap_err().to_string();
        assert!(e.contains(&format!("owned by uid {owner}")), "{e}");
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let good = format!("{ADDR} prod {}", key(1));
        let cases = [
            (
                format!("# c\n\n{good}\n{ADDR} prod\n"),
                4,
                "three or four fields",
            ),
            (
                format!("{ADDR} prod {} 1 extra\n", key(1)),
                1,
                "three or four fields",
            ),
            (
                format!("{ADDR} prod {} x\n", key(1)),
                1,
                "serial is not a number",
            ),
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

//! Named contexts, like kubeconfig's: `<config dir>/contexts.yaml` names
//! control planes (address, token file, CA file) and which one is current
//! (ADR 0024).
//!
//! A context never holds a token, only the path of a file holding one,
//! read when a command uses the context ([`crate::connection_settings`]).
//! The file is written atomically with mode 0600 (in a 0700 directory)
//! and refused when another user owns it or its group or others may read
//! or write it: it decides where tokens are sent.
//!
//! ```yaml
//! current-context: prod
//! contexts:
//! - name: prod
//!   addr: https://sealplane.internal:7443
//!   token-file: /home/alice/.config/sealplane/prod.token
//!   ca-file: /home/alice/.config/sealplane/prod-ca.pem
//! ```

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use comfy_table::Table;
use sealplane_host::{durable, private};
use sealplane_proto::transport::{AddressRefused, check_plaintext};
use serde::{Deserialize, Serialize};

use crate::output::{Tabular, columns, line, or_dash};

/// The file's name inside the configuration directory.
pub const FILE_NAME: &str = "contexts.yaml";

/// Far more than any real contexts file: a larger one is not this file.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why the contexts could not be read, changed or used.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// Another user owns the file, or its group or others may use it, or
    /// it cannot be read. Not a `source`: its text already holds the I/O
    /// error, which `{:#}` would print again.
    #[error("{0}")]
    Unsafe(private::PrivateFileError),
    /// The file is not a contexts file.
    #[error("{path} is not a valid contexts file: {reason}; fix it or remove it")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What the parser said (the file holds no secrets).
        reason: String,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file or its directory.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// No context has this name.
    #[error("there is no context `{name}` in {path}; {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The file.
        path: PathBuf,
        /// `known contexts: a, b` or how to make one.
        known: String,
    },
    /// A context name outside the allowed set.
    #[error(
        "{0:?} is not a context name: use 1 to 63 letters, digits, `.`, `_` or `-`, starting with a letter or digit"
    )]
    BadName(String),
    /// A new context needs an address.
    #[error(
        "context `{0}` is new: give its control plane with --addr, e.g. `sealctl config set-context {0} --addr https://HOST:PORT`"
    )]
    NoAddr(String),
    /// The address is one sealctl would never send a token to.
    #[error("context `{name}`: {reason}")]
    BadAddr {
        /// The context.
        name: String,
        /// Why the address is refused.
        reason: AddressRefused,
    },
    /// No configuration directory to hold the file.
    #[error("cannot find a configuration directory for contexts.yaml; set SEALPLANE_CONFIG_DIR")]
    NoConfigDir,
    /// No current context is set.
    #[error("no current context is set in {0}; `sealctl config use-context NAME` sets one")]
    NoCurrent(PathBuf),
}

impl From<private::PrivateFileError> for ContextError {
    fn from(e: private::PrivateFileError) -> Self {
        ContextError::Unsafe(e)
    }
}

/// One named control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Context {
    /// Its name.
    pub name: String,
    /// The control plane's address.
    pub addr: String,
    /// A file holding the bearer token (never the token itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// A PEM CA bundle to trust for an https control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// The file as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ContextsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<Context>,
}

/// What `set-context` changes; a field not given is left as it was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextChange {
    /// The new address.
    pub addr: Option<String>,
    /// The new token file.
    pub token_file: Option<PathBuf>,
    /// The new CA file.
    pub ca_file: Option<PathBuf>,
}

/// The contexts of one `contexts.yaml`.
#[derive(Debug, Clone)]
pub struct Contexts {
    path: PathBuf,
    file: ContextsFile,
}

/// Whether `name` may name a context (a label that is safe in a table,
/// a shell word and a file name).
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Contexts {
    /// The file's place in `config_dir`.
    pub fn path_in(config_dir: &Path) -> PathBuf {
        config_dir.join(FILE_NAME)
    }

    /// Reads `path`; a missing file holds no contexts.
    pub fn load(path: &Path) -> Result<Self, ContextError> {
        const WHAT: &str = "contexts file";
        // Integrity (owned by this user, writable by no one else) is
        // checked on the handle whose bytes are used; privacy (no access
        // for group or others) on a second open, which is enough: a file
        // exposed at any moment is refused, and the content is not secret.
        let bytes = match private::read_trusted(path, WHAT, MAX_FILE_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => {
                return Ok(Contexts {
                    path: path.to_owned(),
                    file: ContextsFile::default(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        private::read_private(path, WHAT, MAX_FILE_BYTES, &mut Vec::new())?;
        let malformed = |reason: String| ContextError::Malformed {
            path: path.to_owned(),
            reason,
        };
        let file: ContextsFile = if bytes.iter().all(u8::is_ascii_whitespace) {
            ContextsFile::default()
        } else {
            serde_norway::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?
        };
        for (i, c) in file.contexts.iter().enumerate() {
            if !is_valid_name(&c.name) {
                return Err(malformed(format!("{:?} is not a context name", c.name)));
            }
            if file.contexts[..i].iter().any(|o| o.name == c.name) {
                return Err(malformed(format!("context `{}` appears twice", c.name)));
            }
        }
        Ok(Contexts {
            path: path.to_owned(),
            file,
        })
    }

    /// The file these contexts come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current context's name, if one is set.
    pub fn current(&self) -> Option<&str> {
        self.file.current_context.as_deref()
    }

    /// The contexts, in the file's order.
    pub fn iter(&self) -> impl Iterator<Item = &Context> {
        self.file.contexts.iter()
    }

    /// The context named `name`; an unknown one is an error naming the known ones.
    pub fn get(&self, name: &str) -> Result<&Context, ContextError> {
        self.file
            .contexts
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> ContextError {
        let names: Vec<&str> = self.iter().map(|c| c.name.as_str()).collect();
        ContextError::Unknown {
            name: name.to_owned(),
            path: self.path.clone(),
            known: if names.is_empty() {
                "there are none yet: `sealctl config set-context NAME --addr URL` makes one".into()
            } else {
                format!("known contexts: {}", names.join(", "))
            },
        }
    }

    /// Makes context `name` or changes the fields given, and writes the file.
    /// Relative file paths are made absolute, so the context works from
    /// any directory.
    pub fn set(&mut self, name: &str, change: ContextChange) -> Result<&Context, ContextError> {
        if !is_valid_name(name) {
            return Err(ContextError::BadName(name.to_owned()));
        }
        if let Some(addr) = &change.addr {
            check_plaintext(addr.trim()).map_err(|reason| ContextError::BadAddr {
                name: name.to_owned(),
                reason,
            })?;
        }
        let token_file = change.token_file.map(absolute).transpose()?;
        let ca_file = change.ca_file.map(absolute).transpose()?;
        let index = match self.file.contexts.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                let addr = change
                    .addr
                    .clone()
                    .ok_or_else(|| ContextError::NoAddr(name.to_owned()))?;
                self.file.contexts.push(Context {
                    name: name.to_owned(),
                    addr,
                    token_file: None,
                    ca_file: None,
                });
                self.file.contexts.len() - 1
            }
        };
        let context = &mut self.file.contexts[index];
        if let Some(addr) = change.addr {
            context.addr = addr.trim().to_owned();
        }
        if token_file.is_some() {
            context.token_file = token_file;
        }
        if ca_file.is_some() {
            context.ca_file = ca_file;
        }
        self.save()?;
        Ok(&self.file.contexts[index])
    }

    /// Makes `name` the current context and writes the file.
    pub fn use_context(&mut self, name: &str) -> Result<(), ContextError> {
        self.get(name)?;
        self.file.current_context = Some(name.to_owned());
        self.save()
    }

    /// Deletes context `name` (and unsets it if it was current) and writes
    /// the file; says whether it was current.
    pub fn delete(&mut self, name: &str) -> Result<bool, ContextError> {
        self.get(name)?;
        self.file.contexts.retain(|c| c.name != name);
        let was_current = self.current() == Some(name);
        if was_current {
            self.file.current_context = None;
        }
        self.save()?;
        Ok(was_current)
    }

    /// Writes the file atomically and durably (0600), creating its
    /// directory (0700) if missing.
    fn save(&self) -> Result<(), ContextError> {
        let failed = |path: &Path, reason: String| ContextError::Write {
            path: path.to_owned(),
            reason,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| failed(dir, e.to_string()))?;
        }
        let yaml =
            serde_norway::to_string(&self.file).map_err(|e| failed(&self.path, e.to_string()))?;
        let text = format!(
            "# sealctl contexts (`sealctl config --help`); token files are named, never tokens.\n{yaml}"
        );
        durable::write_atomic(&self.path, text.as_bytes(), 0o600)
            .map_err(|e| failed(&self.path, e.to_string()))
    }
}

fn absolute(path: PathBuf) -> Result<PathBuf, ContextError> {
    std::path::absolute(&path).map_err(|e| ContextError::Write {
        path,
        reason: e.to_string(),
    })
}

/// One row of `config get-contexts`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContextRow {
    /// The context's name.
    pub name: String,
    /// Whether it is the current one.
    pub current: bool,
    /// The control plane's address.
    pub addr: String,
    /// The token file (its content is never shown).
    pub token_file: Option<PathBuf>,
    /// The CA file.
    pub ca_file: Option<PathBuf>,
}

/// `config get-contexts`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContextList {
    /// The current context's name.
    pub current_context: Option<String>,
    /// The contexts.
    pub contexts: Vec<ContextRow>,
}

impl From<&Contexts> for ContextList {
    fn from(contexts: &Contexts) -> Self {
        let current = contexts.current();
        ContextList {
            current_context: current.map(str::to_owned),
            contexts: contexts
                .iter()
                .map(|c| ContextRow {
                    name: c.name.clone(),
                    current: current == Some(c.name.as_str()),
                    addr: c.addr.clone(),
                    token_file: c.token_file.clone(),
                    ca_file: c.ca_file.clone(),
                })
                .collect(),
        }
    }
}

fn shown_path(path: Option<&PathBuf>) -> String {
    path.map_or_else(|| "-".to_owned(), |p| or_dash(&p.display().to_string()))
}

impl Tabular for ContextList {
    fn table(&self) -> Table {
        let mut t = columns(&["current", "name", "addr", "token file", "ca file"]);
        for c in &self.contexts {
            t.add_row(vec![
                if c.current { "*" } else { "" }.to_owned(),
                c.name.clone(),
                c.addr.clone(),
                shown_path(c.token_file.as_ref()),
                shown_path(c.ca_file.as_ref()),
            ]);
        }
        t
    }

    fn names(&self) -> Option<Vec<String>> {
        Some(self.contexts.iter().map(|c| c.name.clone()).collect())
    }
}

/// The outcome of a `config` command about one context.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContextOutcome {
    /// The context.
    pub context: String,
    /// What happened.
    pub message: String,
}

impl Tabular for ContextOutcome {
    fn table(&self) -> Table {
        line(&self.message)
    }

    fn names(&self) -> Option<Vec<String>> {
        Some(vec![self.context.clone()])
    }
}

/// `config current-context`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CurrentContext {
    /// The current context's name.
    pub current_context: String,
}

impl Tabular for CurrentContext {
    fn table(&self) -> Table {
        line(&self.current_context)
    }

    fn names(&self) -> Option<Vec<String>> {
        Some(vec![self.current_context.clone()])
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn change(addr: &str) -> ContextChange {
        ContextChange {
            addr: Some(addr.into()),
            ..ContextChange::default()
        }
    }

    /// Given an empty config dir.
    fn empty() -> (tempfile::TempDir, Contexts) {
        let dir = tempfile::tempdir().unwrap();
        let contexts = Contexts::load(&Contexts::path_in(&dir.path().join("sealplane"))).unwrap();
        (dir, contexts)
    }

    #[test]
    fn a_set_context_is_written_0600_in_a_0700_dir_and_read_back() {
        let (_dir, mut contexts) = empty();
        assert_eq!(contexts.iter().count(), 0);
        contexts
            .set(
                "prod",
                ContextChange {
                    addr: Some("https://sealplane.internal:7443".into()),
                    token_file: Some("/t/prod.token".into()),
                    ca_file: Some("/t/ca.pem".into()),
                },
            )
            .unwrap();
        contexts
            .set("dev", change("http://127.0.0.1:7700"))
            .unwrap();
        contexts.use_context("prod").unwrap();

        let again = Contexts::load(contexts.path()).unwrap();
        assert_eq!(again.current(), Some("prod"));
        let prod = again.get("prod").unwrap();
        assert_eq!(prod.addr, "https://sealplane.internal:7443");
        assert_eq!(prod.token_file.as_deref(), Some(Path::new("/t/prod.token")));
        assert_eq!(prod.ca_file.as_deref(), Some(Path::new("/t/ca.pem")));
        assert_eq!(mode(contexts.path()), 0o600);
        assert_eq!(mode(contexts.path().parent().unwrap()), 0o700);
        let text = std::fs::read_to_string(contexts.path()).unwrap();
        assert!(text.contains("current-context: prod"), "{text}");
        assert!(text.contains("token-file: /t/prod.token"), "{text}");
    }

    #[test]
    fn the_write_is_atomic_and_leaves_no_temporary_file() {
        let (_dir, mut contexts) = empty();
        contexts.set("a", change("http://127.0.0.1:1")).unwrap();
        // A refused change leaves the file as it was.
        let before = std::fs::read(contexts.path()).unwrap();
        assert!(contexts.set("b", change("http://db.example:7700")).is_err());
        assert!(contexts.set("-bad", change("http://127.0.0.1:1")).is_err());
        assert_eq!(std::fs::read(contexts.path()).unwrap(), before);
        contexts.set("b", change("http://127.0.0.1:2")).unwrap();
        let names: Vec<_> = std::fs::read_dir(contexts.path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);
        let again = Contexts::load(contexts.path()).unwrap();
        assert_eq!(
            again.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn set_context_changes_only_what_is_given_and_a_new_one_needs_an_address() {
        let (_dir, mut contexts) = empty();
        let e = contexts
            .set(
                "prod",
                ContextChange {
                    token_file: Some("/t/x".into()),
                    ..ContextChange::default()
                },
            )
            .unwrap_err();
        assert!(matches!(e, ContextError::NoAddr(_)), "{e}");
        assert!(e.to_string().contains("--addr"), "{e}");
        contexts.set("prod", change("http://127.0.0.1:1")).unwrap();
        contexts
            .set(
                "prod",
                ContextChange {
                    token_file: Some("relative.token".into()),
                    ..ContextChange::default()
                },
            )
            .unwrap();
        let prod = contexts.get("prod").unwrap();
        assert_eq!(prod.addr, "http://127.0.0.1:1");
        let token_file = prod.token_file.as_ref().unwrap();
        assert!(token_file.is_absolute(), "{}", token_file.display());
        assert!(token_file.ends_with("relative.token"));
        // Plain http to another machine would send the token in clear.
        let e = contexts
            .set("far", change("http://db.example:7700"))
            .unwrap_err();
        assert!(matches!(e, ContextError::BadAddr { .. }), "{e}");
    }

    #[test]
    fn an_unknown_context_names_the_known_ones() {
        let (_dir, mut contexts) = empty();
        let e = contexts.use_context("prod").unwrap_err().to_string();
        assert!(e.contains("there is no context `prod`"), "{e}");
        assert!(e.contains("set-context"), "{e}");
        contexts.set("dev", change("http://127.0.0.1:1")).unwrap();
        contexts
            .set("staging", change("http://127.0.0.1:2"))
            .unwrap();
        let e = contexts.get("prod").unwrap_err().to_string();
        assert!(e.contains("known contexts: dev, staging"), "{e}");
        assert!(contexts.delete("prod").is_err());
    }

    #[test]
    fn deleting_the_current_context_unsets_it() {
        let (_dir, mut contexts) = empty();
        contexts.set("dev", change("http://127.0.0.1:1")).unwrap();
        contexts.set("other", change("http://127.0.0.1:2")).unwrap();
        contexts.use_context("dev").unwrap();
        assert!(!contexts.delete("other").unwrap());
        assert!(contexts.delete("dev").unwrap());
        let again = Contexts::load(contexts.path()).unwrap();
        assert_eq!(again.current(), None);
        assert_eq!(again.iter().count(), 0);
    }

    #[test]
    fn a_file_others_may_read_or_write_or_another_user_owns_is_refused() {
        let (_dir, mut contexts) = empty();
        contexts.set("dev", change("http://127.0.0.1:1")).unwrap();
        let path = contexts.path().to_owned();
        for mode in [0o640, 0o604, 0o620, 0o666] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = Contexts::load(&path).unwrap_err().to_string();
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Contexts::load(&path).unwrap();
        let (other, owner) = if sealplane_host::private::current_uid() == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            (path.clone(), 65534)
        } else {
            (PathBuf::from("/etc/passwd"), 0)
        };
        let e = Contexts::load(&other).unwrap_err().to_string();
        assert!(e.contains(&format!("owned by uid {owner}")), "{e}");
    }

    #[test]
    fn a_token_in_the_file_or_a_repeated_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let write = |text: &str| {
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        write("contexts:\n- name: a\n  addr: http://127.0.0.1:1\n  token: spt_x\n");
        let e = Contexts::load(&path).unwrap_err().to_string();
        assert!(e.contains("unknown field `token`"), "{e}");
        assert!(!e.contains("spt_x"), "{e}");
        write(
            "contexts:\n- name: a\n  addr: http://127.0.0.1:1\n- name: a\n  addr: http://127.0.0.1:2\n",
        );
        let e = Contexts::load(&path).unwrap_err().to_string();
        assert!(e.contains("appears twice"), "{e}");
        write("\n");
        assert_eq!(Contexts::load(&path).unwrap().iter().count(), 0);
    }
}

//! Which control plane a command talks to, with which token and CA file
//! (ADR 0024). Each of the three is taken from the first of: its flag
//! (`--addr`, `--token`, `--ca-file`), its environment variable
//! (`SEALPLANE_ADDR`, `SEALPLANE_TOKEN`, `SEALPLANE_CA_FILE`), the context
//! selected with `--context` / `SEALPLANE_CONTEXT`, the current context;
//! else the address is [`DEFAULT_ADDR`] and there is no token or CA file.
//!
//! Two rules keep a token from going where it was not meant to: the
//! current context is only consulted when no address is given (a given
//! address is another control plane), and a selected context's token file
//! and CA file are only used with that context's own address.

use std::path::{Path, PathBuf};

use sealplane_host::private::{self, PrivateFileError};
use zeroize::Zeroizing;

use crate::client::{ConnectionSettings, DEFAULT_ADDR};
use crate::contexts::{Context, ContextError, Contexts};
use crate::known_reactors::normalise_addr;

/// The control plane's address.
pub const ADDR_ENV: &str = "SEALPLANE_ADDR";
/// The bearer token.
pub const TOKEN_ENV: &str = "SEALPLANE_TOKEN";
/// The CA bundle for https.
pub const CA_FILE_ENV: &str = "SEALPLANE_CA_FILE";
/// The context to use for one command.
pub const CONTEXT_ENV: &str = "SEALPLANE_CONTEXT";

/// Far more than a token: a larger file is the wrong file.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// What the command line gave (flags only; the environment is read apart).
#[derive(Clone, Copy, Default)]
pub struct Flags<'a> {
    /// `--addr`.
    pub addr: Option<&'a str>,
    /// `--token`.
    pub token: Option<&'a str>,
    /// `--ca-file`.
    pub ca_file: Option<&'a Path>,
    /// `--context`.
    pub context: Option<&'a str>,
}

impl std::fmt::Debug for Flags<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flags")
            .field("addr", &self.addr)
            .field("token", &self.token.map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("context", &self.context)
            .finish()
    }
}

/// Why the connection settings could not be decided; never holds a token.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The contexts file could not be used, or names no such context.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The context's token file is missing, open to others or unreadable.
    #[error("context `{context}`: {reason}")]
    TokenFile {
        /// The context.
        context: String,
        /// Why the file was not read (not a `source`: its text already
        /// holds the I/O error, which `{:#}` would print again).
        reason: PrivateFileError,
    },
    /// The context's token file holds no token.
    #[error("context `{context}`: the token file {} is empty", path.display())]
    EmptyTokenFile {
        /// The context.
        context: String,
        /// The file.
        path: PathBuf,
    },
    /// The address given is not the selected context's, so its token may
    /// not be sent there.
    #[error(
        "the address {addr} (from {source_name}) is not the address {context_addr} of context `{context}`, so its token file is not used: give a token with --token or SEALPLANE_TOKEN, or drop {source_name} to use the context"
    )]
    AddrOverridden {
        /// The context.
        context: String,
        /// Its address.
        context_addr: String,
        /// The address given.
        addr: String,
        /// `--addr` or `SEALPLANE_ADDR`.
        source_name: &'static str,
    },
}

/// Decides the settings from `flags`, `env` (a lookup of environment
/// variables; an empty value counts as unset) and the contexts, which
/// `contexts` loads only when they are consulted.
pub fn resolve(
    flags: Flags<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    contexts: &dyn Fn() -> Result<Contexts, ContextError>,
) -> Result<ConnectionSettings, SettingsError> {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let given_addr = match flags.addr {
        Some(addr) => Some((addr.to_owned(), "--addr")),
        None => env(ADDR_ENV).map(|addr| (addr, ADDR_ENV)),
    };
    let token = flags.token.map(str::to_owned).or_else(|| env(TOKEN_ENV));
    let ca_file = flags
        .ca_file
        .map(Path::to_path_buf)
        .or_else(|| env(CA_FILE_ENV).map(PathBuf::from));
    let selected = flags
        .context
        .map(str::to_owned)
        .or_else(|| env(CONTEXT_ENV));
    let context: Option<Context> = match (&selected, &given_addr) {
        (Some(name), _) => Some(contexts()?.get(name)?.clone()),
        (None, Some(_)) => None,
        (None, None) => {
            let contexts = contexts()?;
            match contexts.current() {
                Some(name) => Some(contexts.get(name)?.clone()),
                None => None,
            }
        }
    };
    let Some(context) = context else {
        return Ok(ConnectionSettings {
            addr: given_addr.map_or_else(|| DEFAULT_ADDR.to_owned(), |(addr, _)| addr),
            token,
            ca_file,
        });
    };
    let own_addr = match &given_addr {
        None => true,
        Some((addr, _)) => normalise_addr(addr) == normalise_addr(&context.addr),
    };
    if !own_addr {
        let (addr, source_name) = given_addr.unwrap_or_default();
        if token.is_none() && context.token_file.is_some() {
            return Err(SettingsError::AddrOverridden {
                context: context.name,
                context_addr: context.addr,
                addr,
                source_name,
            });
        }
        return Ok(ConnectionSettings {
            addr,
            token,
            ca_file,
        });
    }
    let token = match (token, &context.token_file) {
        (Some(token), _) => Some(token),
        (None, Some(path)) => Some(read_token_file(&context.name, path)?),
        (None, None) => None,
    };
    Ok(ConnectionSettings {
        addr: given_addr.map_or(context.addr, |(addr, _)| addr),
        token,
        ca_file: ca_file.or(context.ca_file),
    })
}

/// Reads a context's token file, trimmed; refuses one its group or others
/// may access, an empty one, or one that is not text.
pub fn read_token_file(context: &str, path: &Path) -> Result<String, SettingsError> {
    let mut bytes = Zeroizing::new(Vec::new());
    private::read_private(path, "token file", MAX_TOKEN_FILE_BYTES, &mut bytes).map_err(
        |reason| SettingsError::TokenFile {
            context: context.to_owned(),
            reason,
        },
    )?;
    let text = std::str::from_utf8(&bytes).map_err(|_| SettingsError::TokenFile {
        context: context.to_owned(),
        reason: PrivateFileError::NotText {
            what: "token file",
            path: path.to_owned(),
        },
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(SettingsError::EmptyTokenFile {
            context: context.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::contexts::ContextChange;

    const PROD: &str = "https://prod.example:7443";
    const DEV: &str = "http://127.0.0.1:7700";

    /// A config dir with contexts `prod` (token file, CA file) and `dev`
    /// (no token file), `prod` current; and the token files.
    struct Given {
        dir: tempfile::TempDir,
        env: HashMap<&'static str, String>,
    }

    impl Given {
        fn contexts() -> Given {
            let dir = tempfile::tempdir().unwrap();
            let token = dir.path().join("prod.token");
            std::fs::write(&token, "spt_prod\n").unwrap();
            std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
            let mut contexts = Contexts::load(&Contexts::path_in(dir.path())).unwrap();
            contexts
                .set(
                    "prod",
                    ContextChange {
                        addr: Some(PROD.into()),
                        token_file: Some(token),
                        ca_file: Some("/etc/prod-ca.pem".into()),
                    },
                )
                .unwrap();
            contexts
                .set(
                    "dev",
                    ContextChange {
                        addr: Some(DEV.into()),
                        ..ContextChange::default()
                    },
                )
                .unwrap();
            contexts.use_context("prod").unwrap();
            Given {
                dir,
                env: HashMap::new(),
            }
        }

        fn env(mut self, name: &'static str, value: &str) -> Given {
            self.env.insert(name, value.to_owned());
            self
        }

        /// When the settings are resolved with `flags`.
        fn resolve(&self, flags: Flags<'_>) -> Result<ConnectionSettings, SettingsError> {
            let path = Contexts::path_in(self.dir.path());
            resolve(flags, &|name| self.env.get(name).cloned(), &|| {
                Contexts::load(&path)
            })
        }
    }

    #[test]
    fn with_nothing_given_the_current_context_is_used_and_its_token_read() {
        let s = Given::contexts().resolve(Flags::default()).unwrap();
        assert_eq!(s.addr, PROD);
        assert_eq!(s.token.as_deref(), Some("spt_prod"));
        assert_eq!(s.ca_file.as_deref(), Some(Path::new("/etc/prod-ca.pem")));
    }

    #[test]
    fn with_no_contexts_at_all_the_default_address_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = Contexts::path_in(dir.path());
        let s = resolve(Flags::default(), &|_| None, &|| Contexts::load(&path)).unwrap();
        assert_eq!(s.addr, DEFAULT_ADDR);
        assert_eq!(s.token, None);
        assert_eq!(s.ca_file, None);
        // Nothing was written by reading.
        assert!(!path.exists());
    }

    #[test]
    fn a_selected_context_beats_the_current_one_and_the_flag_beats_the_variable() {
        let given = Given::contexts().env(CONTEXT_ENV, "dev");
        let s = given.resolve(Flags::default()).unwrap();
        assert_eq!(s.addr, DEV);
        assert_eq!(s.token, None);
        assert_eq!(s.ca_file, None);
        let s = given
            .resolve(Flags {
                context: Some("prod"),
                ..Flags::default()
            })
            .unwrap();
        assert_eq!(s.addr, PROD);
        assert_eq!(s.token.as_deref(), Some("spt_prod"));
    }

    #[test]
    fn flags_beat_variables_which_beat_the_context_field_by_field() {
        let given = Given::contexts()
            .env(TOKEN_ENV, "spt_env")
            .env(CA_FILE_ENV, "/env-ca.pem");
        // The address is the context's, the token and CA the variables'.
        let s = given.resolve(Flags::default()).unwrap();
        assert_eq!(s.addr, PROD);
        assert_eq!(s.token.as_deref(), Some("spt_env"));
        assert_eq!(s.ca_file.as_deref(), Some(Path::new("/env-ca.pem")));
        let s = given
            .resolve(Flags {
                token: Some("spt_flag"),
                ca_file: Some(Path::new("/flag-ca.pem")),
                ..Flags::default()
            })
            .unwrap();
        assert_eq!(s.token.as_deref(), Some("spt_flag"));
        assert_eq!(s.ca_file.as_deref(), Some(Path::new("/flag-ca.pem")));
        let given = given.env(ADDR_ENV, "http://127.0.0.1:1");
        let s = given
            .resolve(Flags {
                addr: Some("http://127.0.0.1:2"),
                ..Flags::default()
            })
            .unwrap();
        assert_eq!(s.addr, "http://127.0.0.1:2");
        assert_eq!(
            given.resolve(Flags::default()).unwrap().addr,
            "http://127.0.0.1:1"
        );
        // Empty variables count as unset.
        let s = Given::contexts()
            .env(ADDR_ENV, "")
            .env(TOKEN_ENV, " ")
            .resolve(Flags::default())
            .unwrap();
        assert_eq!(s.addr, PROD);
        assert_eq!(s.token.as_deref(), Some("spt_prod"));
    }

    #[test]
    fn a_given_address_ignores_the_current_context() {
        let s = Given::contexts()
            .env(ADDR_ENV, DEV)
            .resolve(Flags::default())
            .unwrap();
        assert_eq!(s.addr, DEV);
        assert_eq!(s.token, None, "prod's token must not go to another address");
        assert_eq!(s.ca_file, None);
    }

    #[test]
    fn a_selected_context_s_token_never_goes_to_another_address() {
        let given = Given::contexts().env(ADDR_ENV, "http://127.0.0.1:9");
        let flags = Flags {
            context: Some("prod"),
            ..Flags::default()
        };
        let e = given.resolve(flags).unwrap_err().to_string();
        assert!(e.contains("from SEALPLANE_ADDR"), "{e}");
        assert!(e.contains("context `prod`"), "{e}");
        assert!(!e.contains("spt_prod"), "{e}");
        // The same address (spelled with a trailing `/`) is the context's.
        let s = given
            .resolve(Flags {
                addr: Some("https://prod.example:7443/"),
                ..flags
            })
            .unwrap();
        assert_eq!(s.token.as_deref(), Some("spt_prod"));
        // With a token given, the other address is used with it.
        let s = given
            .resolve(Flags {
                token: Some("spt_flag"),
                ..flags
            })
            .unwrap();
        assert_eq!(s.addr, "http://127.0.0.1:9");
        assert_eq!(s.token.as_deref(), Some("spt_flag"));
        assert_eq!(s.ca_file, None);
    }

    #[test]
    fn an_unknown_context_names_the_known_ones_wherever_it_is_selected() {
        let given = Given::contexts().env(CONTEXT_ENV, "stagin");
        let e = given.resolve(Flags::default()).unwrap_err().to_string();
        assert!(e.contains("no context `stagin`"), "{e}");
        assert!(e.contains("known contexts: prod, dev"), "{e}");
        let e = given
            .resolve(Flags {
                context: Some("nope"),
                ..Flags::default()
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("no context `nope`"), "{e}");
    }

    #[test]
    fn a_missing_exposed_or_empty_token_file_is_a_clear_error() {
        let given = Given::contexts();
        let token = given.dir.path().join("prod.token");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = given.resolve(Flags::default()).unwrap_err().to_string();
        assert!(e.starts_with("context `prod`: token file"), "{e}");
        assert!(e.contains(&format!("chmod 600 {}", token.display())), "{e}");
        assert!(!e.contains("spt_prod"), "{e}");
        std::fs::write(&token, " \n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = given.resolve(Flags::default()).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
        std::fs::remove_file(&token).unwrap();
        let e = given.resolve(Flags::default()).unwrap_err().to_string();
        assert!(e.contains(&token.display().to_string()), "{e}");
        assert!(e.contains("No such file"), "{e}");
    }

    #[test]
    fn flags_hide_the_token_in_debug() {
        let flags = Flags {
            token: Some("spt_secret"),
            ..Flags::default()
        };
        let text = format!("{flags:?}");
        assert!(!text.contains("spt_secret"), "{text}");
    }
}

//! What makes a reactor's setup insecure, for `sealplane is-secure`: a
//! default or exposed file-store master key (SPEC §5), and key or token
//! files that others may read. Each store kind judges its own table
//! ([`StoreKind::insecurities`](crate::stores::StoreKind::insecurities));
//! this module adds the reactor's own files.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

pub use sealplane_host::private::PrivateFileError;
use zeroize::Zeroizing;

use crate::config::ReactorConfig;

/// The most a key, token or secret id file can hold.
pub const KEY_FILE_LIMIT: u64 = 16 * 1024;

/// The text of a key, token or secret id file, refused when its group or
/// others may access it (checked on the handle it is read from, with a
/// sentence naming the file and `chmod 600 FILE`).
pub fn read_private_text(
    path: &Path,
    what: &'static str,
) -> Result<Zeroizing<String>, PrivateFileError> {
    let mut buf = Zeroizing::new(Vec::new());
    sealplane_host::private::read_private(path, what, KEY_FILE_LIMIT, &mut buf)?;
    match String::from_utf8(std::mem::take(&mut *buf)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(PrivateFileError::NotText {
                what,
                path: path.to_owned(),
            })
        }
    }
}

/// One finding: what is insecure and how to fix it.
pub type Finding = String;

/// Every insecurity of the reactor configured by `config`; empty when none.
pub fn reactor_report(config: &ReactorConfig) -> Vec<Finding> {
    let mut found = Vec::new();
    for (name, store) in &config.stores {
        found.extend(
            store
                .insecurities()
                .into_iter()
                .map(|f| format!("store `{name}`: {f}")),
        );
    }
    if let Some(path) = &config.fingerprint.key_file {
        found.extend(exposed(path, "fingerprint key file"));
    }
    if let Some(path) = &config.control_plane.token_file {
        found.extend(exposed(path, "reactor token file"));
    }
    found.extend(exposed(&config.identity_file, "reactor identity file"));
    found
}

/// A finding if `path` is open to its group or others (or cannot be checked).
pub fn exposed(path: &Path, what: &str) -> Option<Finding> {
    match fs::metadata(path) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o7777;
            (mode & 0o077 != 0).then(|| {
                format!(
                    "{what} {} has mode {mode:04o}, open to group or others: `chmod 600 {}`",
                    path.display(),
                    path.display()
                )
            })
        }
        Err(e) => Some(format!(
            "cannot check the permissions of {what} {}: {e}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::master_key::MasterKey;

    fn config(dir: &Path, master: &str) -> ReactorConfig {
        ReactorConfig::parse(
            &format!(
                "[control_plane]\naddress = \"http://127.0.0.1:1\"\n\
                 [fingerprint]\nkey_id = \"k\"\nkey_file = \"fp.key\"\n\
                 [stores.local]\nkind = \"file\"\nroot = \"files\"\n{master}\n"
            ),
            "reactor.toml",
            dir,
        )
        .unwrap()
    }

    #[test]
    fn a_careful_setup_has_no_finding() {
        let dir = tempfile::tempdir().unwrap();
        MasterKey::create_file(&dir.path().join("master.key")).unwrap();
        MasterKey::create_file(&dir.path().join("fp.key")).unwrap();
        crate::identity::ReactorIdentity::load_or_generate(dir.path().join("reactor-identity"))
            .unwrap();
        let c = config(dir.path(), "master_key_file = \"master.key\"");
        assert_eq!(reactor_report(&c), Vec::<String>::new());
    }

    #[test]
    fn default_or_exposed_keys_are_findings() {
        let dir = tempfile::tempdir().unwrap();
        let master = dir.path().join("master.key");
        MasterKey::create_file(&master).unwrap();
        fs::set_permissions(&master, fs::Permissions::from_mode(0o644)).unwrap();
        let fp = dir.path().join("fp.key");
        fs::write(&fp, MasterKey::dev().to_base64().as_bytes()).unwrap();
        fs::set_permissions(&fp, fs::Permissions::from_mode(0o640)).unwrap();
        let c = config(dir.path(), "master_key_file = \"master.key\"");
        let found = reactor_report(&c).join("\n");
        assert!(found.contains("master key file"), "{found}");
        assert!(found.contains("fingerprint key file"), "{found}");
        assert!(found.contains("chmod 600"), "{found}");
        // The identity was never created: reported, not skipped.
        assert!(found.contains("reactor identity file"), "{found}");

        // SAFETY of the test: the variable name is unique to this test.
        let var = "SEALPLANE_TEST_SECURITY_DEV_KEY";
        let c = config(dir.path(), &format!("master_key_env = \"{var}\""));
        let found = reactor_report(&c).join("\n");
        assert!(
            found.contains(var),
            "an unset variable is a finding: {found}"
        );
    }
}

//! `sealplane is-secure`: insecure settings of a deployment, in the
//! control plane's and the reactors' configurations and a dev data
//! directory. Exits 1 and lists what to fix when anything is found.

use std::net::SocketAddr;
use std::path::PathBuf;

use sealplane_control_plane::config::{Config, EventStoreConfig, LOG_KEY_FILE};
use sealplane_reactors::config::ReactorConfig;
use sealplane_reactors::security::{exposed, reactor_report};

use crate::dev;

/// Checks what was given and prints the findings; exits 1 if any.
pub fn run(
    config: Option<PathBuf>,
    reactor_configs: Vec<PathBuf>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let mut checked = Vec::new();
    let mut found = Vec::new();
    if let Some(path) = &config {
        let c = Config::load(path)?;
        if c.tls.is_none() {
            found.push(format!(
                "{}: the API has no [tls] section, so tokens and ciphertext cross the network in clear (allowed on loopback only): add a certificate",
                path.display()
            ));
        }
        match &c.event_store {
            EventStoreConfig::Embedded { path } => found.extend(exposed(path, "event store")),
            EventStoreConfig::Postgres { url, url_file, .. }
            | EventStoreConfig::Kurrentdb { url, url_file, .. } => {
                let server = match &c.event_store {
                    EventStoreConfig::Postgres { .. } => "PostgreSQL",
                    _ => "KurrentDB",
                };
                if url.as_ref().is_some_and(|u| {
                    sealplane_event_store::RedactedUrl::new(u.expose()).to_string() != u.expose()
                }) {
                    found.push(format!(
                        "{}: [event_store] url holds the {server} password: move it to url_file or url_env",
                        path.display()
                    ));
                }
                if let Some(file) = url_file {
                    found.extend(exposed(file, &format!("{server} url file")));
                }
            }
        }
        found.extend(exposed(&c.log_key_path(), "log-signing key"));
        checked.push(path.display().to_string());
    }
    for path in &reactor_configs {
        let c = ReactorConfig::load(path)?;
        found.extend(
            reactor_report(&c)
                .into_iter()
                .map(|f| format!("{}: {f}", path.display())),
        );
        checked.push(path.display().to_string());
    }
    if let Some(dir) = &data_dir {
        let c = dev::reactor_config(dir, SocketAddr::from(([127, 0, 0, 1], 0)));
        found.extend(reactor_report(&c));
        found.extend(exposed(&dir.join("events.db"), "event store"));
        found.extend(exposed(&dir.join(LOG_KEY_FILE), "log-signing key"));
        checked.push(format!("dev data directory {}", dir.display()));
    }
    if found.is_empty() {
        println!("secure: nothing insecure found in {}", checked.join(", "));
        return Ok(());
    }
    for f in &found {
        println!("INSECURE: {f}");
    }
    std::process::exit(1);
}

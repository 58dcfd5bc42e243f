//! `sealplane migrate-store --from SPEC --to SPEC`: copies a whole event
//! log between backends as recorded (ADR 0022), over
//! `sealplane_event_store::migrate`, then checks the copy through the
//! target store as `serve` will open it.
//!
//! A SPEC names a store the way `[event_store]` does, so a url with a
//! password need never be typed on a command line:
//!
//! | SPEC | store |
//! |---|---|
//! | `embedded:PATH` | the SQLite file PATH (`PATH/events.db` for a data directory) |
//! | `postgres:URL` | the PostgreSQL database at URL |
//! | `postgres-url-file:PATH` | ... whose url is in the file PATH |
//! | `postgres-url-env:NAME` | ... whose url is in the environment variable NAME |
//! | `kurrentdb:URL`, `kurrentdb-url-file:PATH`, `kurrentdb-url-env:NAME` | a KurrentDB log stream (a source only; needs the `kurrentdb` feature) |
//! | `config:PATH` | the `[event_store]` of the configuration file PATH |

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use sealplane_control_plane::config::{Config, DatabaseUrl, EventStoreConfig};
use sealplane_control_plane::server;
use sealplane_event_store::{
    EmbeddedImport, EventStore, LogCheckpoint, LogImport, Position, PostgresStore, RedactedUrl,
    copy_log,
};

/// The SPEC forms, for errors and `--help`.
pub const SPEC_FORMS: &str = "embedded:PATH, postgres:URL, postgres-url-file:PATH, postgres-url-env:NAME, kurrentdb:URL, kurrentdb-url-file:PATH, kurrentdb-url-env:NAME or config:PATH";

/// Parses a store SPEC into the configuration it stands for.
pub fn parse_spec(spec: &str) -> anyhow::Result<EventStoreConfig> {
    let Some((kind, rest)) = spec.split_once(':') else {
        bail!("`{}` is not a store: name one as {SPEC_FORMS}", shown(spec));
    };
    if rest.is_empty() {
        bail!("`{kind}:` names no store: give it a value after the colon ({SPEC_FORMS})");
    }
    let postgres = |url, url_file, url_env| EventStoreConfig::Postgres {
        url,
        url_file,
        url_env,
    };
    Ok(match kind {
        "embedded" => EventStoreConfig::Embedded {
            path: PathBuf::from(rest),
        },
        "postgres" | "postgresql" => {
            let url = if rest.starts_with("postgres://") || rest.starts_with("postgresql://") {
                rest.to_owned()
            } else {
                // `postgres://…` typed whole is also `postgres:` + `//…`.
                format!("{kind}:{rest}")
            };
            if !url.contains("://") {
                // Not echoed: whatever follows may hold a password.
                bail!("`{kind}:` must be followed by a postgres:// url");
            }
            postgres(Some(DatabaseUrl::new(url)), None, None)
        }
        "postgres-url-file" => postgres(None, Some(PathBuf::from(rest)), None),
        "postgres-url-env" => postgres(None, None, Some(rest.to_owned())),
        "kurrentdb" | "esdb" => {
            let url = if rest.starts_with("//") {
                format!("{kind}:{rest}")
            } else {
                rest.to_owned()
            };
            if !url.contains("://") {
                bail!("`{kind}:` must be followed by a kurrentdb:// url");
            }
            EventStoreConfig::Kurrentdb {
                url: Some(DatabaseUrl::new(url)),
                url_file: None,
                url_env: None,
            }
        }
        "kurrentdb-url-file" => EventStoreConfig::Kurrentdb {
            url: None,
            url_file: Some(PathBuf::from(rest)),
            url_env: None,
        },
        "kurrentdb-url-env" => EventStoreConfig::Kurrentdb {
            url: None,
            url_file: None,
            url_env: Some(rest.to_owned()),
        },
        "config" => Config::load(Path::new(rest))?.event_store,
        _ => bail!("`{kind}:` is not a kind of store: name one as {SPEC_FORMS}"),
    })
}

/// An embedded store named by its data directory means the `events.db` in
/// it, as `sealplane restore` reads a target (`restore_target`).
fn data_file(config: EventStoreConfig) -> EventStoreConfig {
    match config {
        EventStoreConfig::Embedded { path } => EventStoreConfig::Embedded {
            path: sealplane_event_store::backup::restore_target(&path),
        },
        other => other,
    }
}

/// A SPEC as it may be printed: a url's password hidden.
fn shown(spec: &str) -> String {
    if spec.contains("://") {
        RedactedUrl::new(spec).to_string()
    } else {
        spec.to_owned()
    }
}

/// The store a configuration names, for people: a path, or a url with its
/// password hidden.
fn describe(config: &EventStoreConfig) -> anyhow::Result<String> {
    Ok(match config {
        EventStoreConfig::Embedded { path } => path.display().to_string(),
        EventStoreConfig::Postgres { .. } => match config.postgres_url()? {
            Some(url) => RedactedUrl::new(url.expose()).to_string(),
            None => "PostgreSQL".to_owned(),
        },
        EventStoreConfig::Kurrentdb { .. } => match config.kurrentdb_url()? {
            Some(url) => RedactedUrl::new(url.expose()).to_string(),
            None => "KurrentDB".to_owned(),
        },
    })
}

async fn open_source(config: &EventStoreConfig) -> anyhow::Result<Arc<dyn EventStore>> {
    if let EventStoreConfig::Embedded { path } = config
        && !path.is_file()
    {
        // Opening would create an empty log there.
        bail!("there is no event log at {}", path.display());
    }
    let name = describe(config)?;
    server::open_store(config)
        .await
        .with_context(|| format!("cannot open the source event store {name}"))
}

async fn open_target(config: &EventStoreConfig) -> anyhow::Result<Box<dyn LogImport>> {
    Ok(match config {
        EventStoreConfig::Embedded { path } => Box::new(EmbeddedImport::create(path)?),
        EventStoreConfig::Postgres { .. } => {
            let url = config
                .postgres_url()?
                .context("the target names no PostgreSQL url")?;
            let store = PostgresStore::connect(url.expose())
                .await
                .context("cannot open the target event store")?;
            let import = store.begin_import().await;
            // The import holds its own handle; this one's tasks end with it.
            match import {
                Ok(import) => Box::new(import),
                Err(e) => {
                    store.close().await;
                    return Err(e.into());
                }
            }
        }
        EventStoreConfig::Kurrentdb { .. } => bail!(
            "migrating into KurrentDB is not supported: its events cannot be removed again, so a copy refused half-way would leave a half log (ADR 0023); KurrentDB can be a source"
        ),
    })
}

/// Copies the log of `from` into the empty `to`, verifies the copy and
/// says so.
pub async fn run(from: &str, to: &str) -> anyhow::Result<()> {
    let (from, to) = (data_file(parse_spec(from)?), data_file(parse_spec(to)?));
    let (from_name, to_name) = (describe(&from)?, describe(&to)?);
    let source = open_source(&from).await?;
    let result = migrate(&*source, &from_name, &to, &to_name).await;
    source.close().await;
    result
}

async fn migrate(
    source: &dyn EventStore,
    from_name: &str,
    to: &EventStoreConfig,
    to_name: &str,
) -> anyhow::Result<()> {
    let target = open_target(to).await?;
    let head = source.head().await?;
    eprintln!("Copying {head} events from {from_name} to {to_name}...");
    let mut shown_at = Instant::now();
    let migrated = copy_log(source, from_name, target, |done, head| {
        if shown_at.elapsed().as_secs() >= 5 {
            shown_at = Instant::now();
            eprintln!("  {done} of {head} events copied");
        }
    })
    .await?;
    let v = migrated.verified;
    // The copy as `serve` will open it: the same head and log hash.
    let copy = server::open_store(to)
        .await
        .context("cannot reopen the copy")?;
    let seen = target_head(&*copy).await;
    copy.close().await;
    let seen = seen?;
    if seen != v.head {
        bail!(
            "the copy in {to_name} reads back at position {} (log hash {}), not the source's position {} (log hash {}): do not use it",
            seen.position,
            seen.log_hash,
            v.head.position,
            v.head.log_hash
        );
    }
    println!(
        "Migrated and verified: {} events in {} streams from {from_name} to {to_name} in {:.1} s; both hash chains check out on the copy and its head (position {}, log hash {}) is the source's.",
        v.events,
        v.streams,
        migrated.elapsed.as_secs_f64(),
        v.head.position,
        v.head.log_hash
    );
    Ok(())
}

/// The last event's position and log hash, as the store reads it.
async fn target_head(store: &dyn EventStore) -> anyhow::Result<LogCheckpoint> {
    let head = store.head().await?;
    if head == Position(0) {
        return Ok(LogCheckpoint::EMPTY);
    }
    let last = store.read_all(head, 1).await?;
    let last = last.first().context("the copy has no event at its head")?;
    Ok(LogCheckpoint::of(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_stores_as_the_config_does() {
        assert_eq!(
            parse_spec("embedded:/var/lib/sealplane/events.db").unwrap(),
            EventStoreConfig::Embedded {
                path: "/var/lib/sealplane/events.db".into()
            }
        );
        for spec in [
            "postgres:postgres://sp:pw@db/events",
            "postgres://sp:pw@db/events",
        ] {
            let EventStoreConfig::Postgres { url: Some(url), .. } = parse_spec(spec).unwrap()
            else {
                panic!("{spec}");
            };
            assert_eq!(url.expose(), "postgres://sp:pw@db/events");
        }
        assert_eq!(
            parse_spec("postgres-url-env:PG_URL").unwrap(),
            EventStoreConfig::Postgres {
                url: None,
                url_file: None,
                url_env: Some("PG_URL".into())
            }
        );
        let EventStoreConfig::Kurrentdb { url: Some(url), .. } =
            parse_spec("kurrentdb://admin:pw@kdb:2113?tls=true").unwrap()
        else {
            panic!("a kurrentdb url");
        };
        assert_eq!(url.expose(), "kurrentdb://admin:pw@kdb:2113?tls=true");
        assert!(matches!(
            parse_spec("kurrentdb-url-env:KDB").unwrap(),
            EventStoreConfig::Kurrentdb { url_env: Some(n), .. } if n == "KDB"
        ));
        assert_eq!(
            parse_spec("postgres-url-file:/run/secrets/pg").unwrap(),
            EventStoreConfig::Postgres {
                url: None,
                url_file: Some("/run/secrets/pg".into()),
                url_env: None
            }
        );
    }

    #[test]
    fn a_bad_spec_gets_a_sentence_without_the_password() {
        for (spec, says) in [
            ("events.db", "is not a store"),
            ("sqlite:/x.db", "is not a kind of store"),
            ("embedded:", "names no store"),
            ("mysql://u:hunter2@db/x", "is not a kind of store"),
            (
                "postgres:sp:hunter2@db",
                "must be followed by a postgres:// url",
            ),
            (
                "kurrentdb:admin:hunter2@kdb",
                "must be followed by a kurrentdb:// url",
            ),
        ] {
            let err = parse_spec(spec).unwrap_err().to_string();
            assert!(err.contains(says), "{spec}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}

//! The read side and lifecycle of secrets: `get secrets`, `describe
//! secret`, `delete secret`, `grant`/`revoke secret`. Nothing here ever
//! handles a value: only metadata and keyed hashes.

use std::collections::BTreeMap;
use std::time::Duration;

use comfy_table::Table;
use sealplane_proto::v1;
use serde::Serialize;
use tokio::time::Instant;

use crate::client::{ClientError, Connection, command_options};
use crate::output::{Message, Tabular, columns, fields, or_dash};
use crate::progress::Progress;

/// How often `delete secret` polls for the reactor's deletion.
const DELETE_POLL: Duration = Duration::from_millis(200);
/// How long `delete secret` waits for the reactor.
pub const DELETE_WAIT: Duration = Duration::from_secs(60);

/// Why a secret command failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// A call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The reactor did not carry out a deletion in time.
    #[error(
        "the deletion of {uri} is recorded, but the reactor for its store has not carried it out after {seconds} s (state: {state}); check later with `sealctl describe secret {uri}`"
    )]
    DeleteNotDone {
        /// The secret.
        uri: String,
        /// Seconds waited.
        seconds: u64,
        /// The last deletion state seen.
        state: String,
    },
}

/// One row of `get secrets`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SecretRow {
    /// The secret.
    pub uri: String,
    /// Its latest version (0: none stored yet).
    pub version: u64,
    /// The keyed hash of the latest version.
    pub hash: String,
    /// Who stored it.
    pub updated_by: String,
    /// When (RFC 3339).
    pub updated_at: String,
    /// Whether it was deleted upstream.
    pub deleted: bool,
}

/// `get secrets`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SecretList {
    /// The secrets.
    pub secrets: Vec<SecretRow>,
}

impl Tabular for SecretList {
    fn table(&self) -> Table {
        let mut t = columns(&["uri", "version", "hash", "updated by", "updated at"]);
        for s in &self.secrets {
            let uri = if s.deleted {
                format!("{} (deleted)", s.uri)
            } else {
                s.uri.clone()
            };
            t.add_row(vec![
                uri,
                version_text(s.version),
                or_dash(&s.hash),
                or_dash(&s.updated_by),
                or_dash(&s.updated_at),
            ]);
        }
        t
    }
}

fn version_text(version: u64) -> String {
    if version == 0 {
        "-".into()
    } else {
        version.to_string()
    }
}

/// One version in `describe secret`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VersionRow {
    /// The version number.
    pub version: u64,
    /// Its keyed hash.
    pub hash: String,
    /// Per-key keyed hashes.
    pub key_hashes: BTreeMap<String, String>,
    /// Who stored it.
    pub by: String,
    /// When.
    pub at: String,
    /// The upload request that stored it.
    pub request_id: String,
}

/// One event in `describe secret --history`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryRow {
    /// Log position.
    pub position: u64,
    /// Event type.
    pub event_type: String,
    /// Who.
    pub actor: String,
    /// When.
    pub at: String,
    /// What, in one line (never a value).
    pub summary: String,
}

/// `describe secret`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SecretDetail {
    /// The secret.
    pub uri: String,
    /// Who created it.
    pub creator: String,
    /// `none`, `requested`, `deleted` or `destroyed`.
    pub deletion: String,
    /// Versions, oldest first.
    pub versions: Vec<VersionRow>,
    /// Access lists: list name to slugs.
    pub access: BTreeMap<String, Vec<String>>,
    /// Every event of the secret, with `--history`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryRow>>,
}

impl Tabular for SecretDetail {
    fn table(&self) -> Table {
        let mut rows = vec![
            ("uri", self.uri.clone()),
            ("creator", or_dash(&self.creator)),
            ("deletion", self.deletion.clone()),
        ];
        let mut access: Vec<(String, String)> = Vec::new();
        for (list, slugs) in &self.access {
            access.push((format!("access.{list}"), slugs.join(", ")));
        }
        rows.extend(access.iter().map(|(k, v)| (k.as_str(), or_dash(v))));
        let mut versions: Vec<(String, String)> = Vec::new();
        for v in &self.versions {
            versions.push((
                format!("version {}", v.version),
                format!("{} by {} at {}", v.hash, v.by, v.at),
            ));
            for (key, hash) in &v.key_hashes {
                versions.push((format!("  {key}"), hash.clone()));
            }
        }
        if versions.is_empty() {
            versions.push(("versions".into(), "none stored yet".into()));
        }
        rows.extend(versions.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let mut history: Vec<(String, String)> = Vec::new();
        for h in self.history.iter().flatten() {
            history.push((
                format!("event {}", h.position),
                format!("{} {} by {}: {}", h.at, h.event_type, h.actor, h.summary),
            ));
        }
        rows.extend(history.iter().map(|(k, v)| (k.as_str(), v.clone())));
        fields(rows)
    }
}

/// `get secrets [--store S]`.
pub async fn list(conn: &Connection, store: Option<String>) -> Result<SecretList, ClientError> {
    let reply = conn
        .secrets()
        .list_secrets(v1::ListSecretsRequest {
            options: None,
            store: store.unwrap_or_default(),
        })
        .await
        .map_err(|s| conn.error(s))?
        .into_inner();
    Ok(SecretList {
        secrets: reply
            .secrets
            .into_iter()
            .map(|s| SecretRow {
                uri: s.uri,
                version: s.version,
                hash: s.hash,
                updated_by: s.updated_by,
                updated_at: s.updated_at,
                deleted: s.deleted,
            })
            .collect(),
    })
}

async fn get(conn: &Connection, uri: &str) -> Result<v1::GetSecretReply, ClientError> {
    conn.secrets()
        .get_secret(v1::GetSecretRequest {
            options: None,
            uri: uri.to_owned(),
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| conn.error(s))
}

/// `describe secret URI [--history]`.
pub async fn describe(
    conn: &Connection,
    uri: &str,
    history: bool,
) -> Result<SecretDetail, ClientError> {
    let reply = get(conn, uri).await?;
    let history = if history {
        let entries = conn
            .secrets()
            .secret_history(v1::GetSecretRequest {
                options: None,
                uri: uri.to_owned(),
            })
            .await
            .map_err(|s| conn.error(s))?
            .into_inner()
            .entries;
        Some(
            entries
                .into_iter()
                .map(|e| HistoryRow {
                    position: e.position,
                    event_type: e.event_type,
                    actor: e.actor,
                    at: e.at,
                    summary: e.summary,
                })
                .collect(),
        )
    } else {
        None
    };
    Ok(SecretDetail {
        uri: reply.uri,
        creator: reply.creator,
        deletion: reply.deletion,
        versions: reply
            .versions
            .into_iter()
            .map(|v| VersionRow {
                version: v.version,
                hash: v.hash,
                key_hashes: v.key_hashes.into_iter().collect(),
                by: v.by,
                at: v.at,
                request_id: v.request_id,
            })
            .collect(),
        access: reply
            .access
            .into_iter()
            .map(|a| (a.list, a.slugs))
            .collect(),
        history,
    })
}

/// `delete secret URI [--destroy] [--no-wait]`: records the deletion,
/// then (unless `no_wait`) waits until the reactor has carried it out.
pub async fn delete(
    conn: &Connection,
    uri: &str,
    destroy: bool,
    no_wait: bool,
) -> Result<Message, SecretsError> {
    conn.secrets()
        .delete_secret(v1::DeleteSecretRequest {
            options: command_options(),
            uri: uri.to_owned(),
            destroy,
        })
        .await
        .map_err(|s| conn.error(s))?;
    let what = if destroy { "destruction" } else { "deletion" };
    if no_wait {
        return Ok(Message {
            message: format!("{what} of {uri} requested; the reactor carries it out upstream"),
        });
    }
    let progress = Progress::start(format!(
        "waiting for the reactor to carry out the {what} of {uri}"
    ));
    let deadline = Instant::now() + DELETE_WAIT;
    loop {
        let reply = get(conn, uri).await?;
        if matches!(reply.deletion.as_str(), "deleted" | "destroyed") {
            drop(progress);
            return Ok(Message {
                message: format!("{} {}", reply.uri, reply.deletion),
            });
        }
        if Instant::now() >= deadline {
            return Err(SecretsError::DeleteNotDone {
                uri: reply.uri,
                seconds: DELETE_WAIT.as_secs(),
                state: reply.deletion,
            });
        }
        tokio::time::sleep(DELETE_POLL).await;
    }
}

/// `grant secret` / `revoke secret`.
pub async fn change_access(
    conn: &Connection,
    uri: &str,
    list: &str,
    slug: &str,
    grant: bool,
) -> Result<Message, ClientError> {
    conn.secrets()
        .change_access(v1::ChangeAccessRequest {
            options: command_options(),
            uri: uri.to_owned(),
            list: list.to_owned(),
            slug: slug.to_owned(),
            grant,
        })
        .await
        .map_err(|s| conn.error(s))?;
    Ok(Message {
        message: if grant {
            format!("`{slug}` added to the {list} of {uri}")
        } else {
            format!("`{slug}` removed from the {list} of {uri}")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{OutputFormat, render};

    fn detail() -> SecretDetail {
        SecretDetail {
            uri: "local://a".into(),
            creator: "alice".into(),
            deletion: "none".into(),
            versions: vec![VersionRow {
                version: 1,
                hash: "hmac-sha256:k:aa".into(),
                key_hashes: [("user".to_owned(), "hmac-sha256:k:bb".to_owned())].into(),
                by: "alice".into(),
                at: "2026-11-23T10:00:00+00:00".into(),
                request_id: "r1".into(),
            }],
            access: [(
                "readers".to_owned(),
                vec!["alice".to_owned(), "ops".to_owned()],
            )]
            .into(),
            history: None,
        }
    }

    #[test]
    fn describe_lists_versions_key_hashes_and_access() {
        let text = render(OutputFormat::Table, &detail()).unwrap();
        assert_eq!(
            text,
            "uri:             local://a\n\
             creator:         alice\n\
             deletion:        none\n\
             access.readers:  alice, ops\n\
             version 1:       hmac-sha256:k:aa by alice at 2026-11-23T10:00:00+00:00\n  \
             user:          hmac-sha256:k:bb\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &detail()).unwrap()).unwrap();
        assert_eq!(
            json["versions"][0]["key_hashes"]["user"],
            "hmac-sha256:k:bb"
        );
        assert_eq!(json["access"]["readers"][1], "ops");
        assert!(json.get("history").is_none());
    }

    #[test]
    fn the_list_marks_deleted_secrets() {
        let list = SecretList {
            secrets: vec![
                SecretRow {
                    uri: "local://a".into(),
                    version: 2,
                    hash: "h".into(),
                    updated_by: "alice".into(),
                    updated_at: "t".into(),
                    deleted: false,
                },
                SecretRow {
                    uri: "local://b".into(),
                    version: 0,
                    hash: String::new(),
                    updated_by: String::new(),
                    updated_at: String::new(),
                    deleted: true,
                },
            ],
        };
        let text = render(OutputFormat::Table, &list).unwrap();
        assert_eq!(
            text,
            "URI                  VERSION  HASH  UPDATED BY  UPDATED AT\n\
             local://a            2        h     alice       t\n\
             local://b (deleted)  -        -     -           -\n"
        );
        let yaml = render(OutputFormat::Yaml, &list).unwrap();
        assert!(yaml.contains("deleted: true"), "{yaml}");
    }
}

//! The read side and lifecycle of secrets: `get secrets`, `describe
//! secret`, `delete secret`, `grant`/`revoke secret`. Nothing here ever
//! handles a value: only metadata and keyed hashes.

use std::collections::BTreeMap;
use std::time::Duration;

use comfy_table::Table;
use sealplane_proto::keyed_hash::{self, HashVersion};
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
    /// The version of `hash` (`v1`: not bound to the path, ADR 0011);
    /// `null` when there is no hash.
    pub hash_version: Option<&'static str>,
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
                shown_hash(&s.hash),
                or_dash(&s.updated_by),
                or_dash(&s.updated_at),
            ]);
        }
        t
    }

    fn names(&self) -> Option<Vec<String>> {
        Some(self.secrets.iter().map(|s| s.uri.clone()).collect())
    }
}

/// A hash for a table: a version 1 hash says so, since its text does not
/// (a version 2 hash's prefix already names its version).
pub fn shown_hash(hash: &str) -> String {
    match keyed_hash::version_of(hash) {
        Some(HashVersion::V1) => format!("{hash} (v1)"),
        _ => or_dash(hash),
    }
}

/// The label of `hash`'s version, for scripts; `None` when it is empty
/// (or, from a faulty control plane, not a keyed hash).
fn hash_version(hash: &str) -> Option<&'static str> {
    keyed_hash::version_of(hash).map(HashVersion::label)
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
    /// The version of `hash` and `key_hashes` (one reactor computes them
    /// in one version; `v1`: not bound to the path, ADR 0011).
    pub hash_version: Option<&'static str>,
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

impl From<v1::GetSecretReply> for SecretDetail {
    /// The detail without its history (`--history` adds it).
    fn from(reply: v1::GetSecretReply) -> Self {
        SecretDetail {
            uri: reply.uri,
            creator: reply.creator,
            deletion: reply.deletion,
            versions: reply
                .versions
                .into_iter()
                .map(|v| VersionRow {
                    version: v.version,
                    hash_version: hash_version(&v.hash),
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
            history: None,
        }
    }
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
                format!("{} by {} at {}", shown_hash(&v.hash), v.by, v.at),
            ));
            for (key, hash) in &v.key_hashes {
                versions.push((format!("  {key}"), shown_hash(hash)));
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

    fn names(&self) -> Option<Vec<String>> {
        Some(vec![self.uri.clone()])
    }
}

/// `get secrets [--store S] [--page-size N]`: every page, each read at
/// least as new as the first.
pub async fn list(
    conn: &Connection,
    store: Option<String>,
    page_size: u32,
) -> Result<SecretList, ClientError> {
    let store = store.unwrap_or_default();
    let all = crate::client::all_pages(|page_token, options| {
        let store = store.clone();
        async move {
            let reply = conn
                .secrets()
                .list_secrets(v1::ListSecretsRequest {
                    options,
                    store,
                    page_size,
                    page_token,
                })
                .await
                .map_err(|s| conn.error(s))?
                .into_inner();
            Ok((reply.secrets, reply.read, reply.next_page_token))
        }
    })
    .await?;
    Ok(SecretList {
        secrets: all
            .into_iter()
            .map(|s| SecretRow {
                uri: s.uri,
                version: s.version,
                hash_version: hash_version(&s.hash),
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
        history,
        ..SecretDetail::from(reply)
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

    /// A keyed hash of `version` (`hmac-sha256` or `hmac-sha256-v2`) whose
    /// digits are `digit` 64 times.
    fn hash(prefix: &str, digit: char) -> String {
        format!("{prefix}:k:{}", digit.to_string().repeat(64))
    }

    fn version(n: u64, prefix: &str, digits: [char; 2]) -> VersionRow {
        let hash = hash(prefix, digits[0]);
        VersionRow {
            version: n,
            hash_version: super::hash_version(&hash),
            hash,
            key_hashes: [("user".to_owned(), self::hash(prefix, digits[1]))].into(),
            by: "alice".into(),
            at: format!("2026-11-2{n}T10:00:00+00:00"),
            request_id: format!("r{n}"),
        }
    }

    /// A secret stored once before hashes were bound to the path (v1), once after.
    fn detail() -> SecretDetail {
        SecretDetail {
            uri: "local://a".into(),
            creator: "alice".into(),
            deletion: "none".into(),
            versions: vec![
                version(1, "hmac-sha256", ['a', 'b']),
                version(2, "hmac-sha256-v2", ['c', 'd']),
            ],
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
        let (a, b, c, d) = (
            "a".repeat(64),
            "b".repeat(64),
            "c".repeat(64),
            "d".repeat(64),
        );
        assert_eq!(
            text,
            format!(
                "uri:             local://a\n\
                 creator:         alice\n\
                 deletion:        none\n\
                 access.readers:  alice, ops\n\
                 version 1:       hmac-sha256:k:{a} (v1) by alice at 2026-11-21T10:00:00+00:00\n  \
                 user:          hmac-sha256:k:{b} (v1)\n\
                 version 2:       hmac-sha256-v2:k:{c} by alice at 2026-11-22T10:00:00+00:00\n  \
                 user:          hmac-sha256-v2:k:{d}\n"
            )
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &detail()).unwrap()).unwrap();
        assert_eq!(
            json["versions"][0]["key_hashes"]["user"],
            format!("hmac-sha256:k:{b}")
        );
        // Scripts read the version beside the unchanged hash fields.
        assert_eq!(json["versions"][0]["hash"], format!("hmac-sha256:k:{a}"));
        assert_eq!(json["versions"][0]["hash_version"], "v1");
        assert_eq!(json["versions"][1]["hash_version"], "v2");
        assert_eq!(json["access"]["readers"][1], "ops");
        assert!(json.get("history").is_none());
    }

    #[test]
    fn the_list_marks_deleted_secrets_and_old_hashes() {
        let (v1, v2) = (hash("hmac-sha256", 'e'), hash("hmac-sha256-v2", 'f'));
        let row = |uri: &str, version: u64, hash: &str, deleted: bool| SecretRow {
            uri: uri.into(),
            version,
            hash: hash.into(),
            hash_version: hash_version(hash),
            updated_by: if version == 0 { "" } else { "alice" }.into(),
            updated_at: if version == 0 { "" } else { "t" }.into(),
            deleted,
        };
        let list = SecretList {
            secrets: vec![
                row("local://a", 2, &v2, false),
                row("local://old", 1, &v1, false),
                row("local://b", 0, "", true),
            ],
        };
        let text = render(OutputFormat::Table, &list).unwrap();
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            lines,
            [
                vec!["URI", "VERSION", "HASH", "UPDATED BY", "UPDATED AT"],
                vec!["local://a", "2", &v2, "alice", "t"],
                vec!["local://old", "1", &format!("{v1} (v1)"), "alice", "t"],
                vec!["local://b (deleted)", "-", "-", "-", "-"],
            ],
            "{text}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &list).unwrap()).unwrap();
        let versions: Vec<serde_json::Value> = json["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["hash_version"].clone())
            .collect();
        assert_eq!(
            versions,
            serde_json::json!(["v2", "v1", null]).as_array().unwrap()[..]
        );
        let yaml = render(OutputFormat::Yaml, &list).unwrap();
        assert!(yaml.contains("deleted: true"), "{yaml}");
    }
}

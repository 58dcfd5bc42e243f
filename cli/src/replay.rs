//! `sealctl audit replay --at POINT` and `--diff A B`: the state (stores,
//! secrets, principals) as the server replays it at a point of the log
//! (`Audit.Replay`), in the same views `describe store`, `describe secret`
//! and `get principals` print, and what changed between two points
//! ([`diff`], computed here from the two states one server pass returns).

pub mod diff;

use comfy_table::Table;
use sealplane_proto::v1;
use serde::Serialize;

use crate::admin::{PrincipalRow, StoreRow};
use crate::client::{ClientError, Connection};
use crate::output::{Tabular, columns, line, or_dash};
use crate::secrets::{SecretDetail, shown_hash};
use diff::{Change, Section};

/// The largest replayed state `sealctl` accepts (a unary reply; gRPC's
/// default of 4 MiB holds only ~7,000 secrets of three versions each).
/// A 1M-event log of 200,000 such secrets replies with ~112 MB (ADR 0017).
pub const MAX_REPLY_BYTES: usize = 1 << 30;

/// Why `audit replay` failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Neither `--at` nor two `--diff` points (clap should prevent it).
    #[error("`audit replay` needs --at POINT or --diff A B")]
    Points,
}

/// The state at one point; the `-o json` / `-o yaml` fields (README).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplayState {
    /// The log position the point resolved to (the last event applied).
    pub position: u64,
    /// That event's recorded time (RFC 3339).
    pub time: String,
    /// Stores, as `describe store` shows them.
    pub stores: Vec<StoreRow>,
    /// Secrets, as `describe secret` shows them.
    pub secrets: Vec<SecretDetail>,
    /// Users and groups, as `get principals` shows them.
    pub principals: Vec<PrincipalRow>,
}

impl From<v1::ReplayState> for ReplayState {
    fn from(s: v1::ReplayState) -> Self {
        ReplayState {
            position: s.position,
            time: s.time,
            stores: s.stores.into_iter().map(StoreRow::from).collect(),
            secrets: s.secrets.into_iter().map(SecretDetail::from).collect(),
            principals: s.principals.into_iter().map(PrincipalRow::from).collect(),
        }
    }
}

/// A point as resolved, for the diff's header.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ResolvedPoint {
    /// Its log position.
    pub position: u64,
    /// Its recorded time.
    pub time: String,
}

impl ResolvedPoint {
    fn of(state: &ReplayState) -> Self {
        ResolvedPoint {
            position: state.position,
            time: state.time.clone(),
        }
    }

    fn text(&self) -> String {
        format!("position {} ({})", self.position, or_dash(&self.time))
    }
}

/// `audit replay --diff A B`; the `-o json` / `-o yaml` fields (README).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplayDiff {
    /// Point A, resolved.
    pub from: ResolvedPoint,
    /// Point B, resolved.
    pub to: ResolvedPoint,
    /// What differs from A to B.
    pub changes: Vec<Change>,
}

/// A section's title and its table, blank-line separated.
fn sections(title: &str, parts: &[(&str, String)]) -> Table {
    let mut text = title.to_owned();
    for (name, body) in parts {
        text.push_str("\n\n");
        text.push_str(name);
        text.push('\n');
        text.push_str(if body.is_empty() { "(none)" } else { body });
    }
    line(&text)
}

impl Tabular for ReplayState {
    fn table(&self) -> Table {
        let mut stores = columns(&[
            "name",
            "kind",
            "enabled",
            "default",
            "reactor key",
            "certificate",
        ]);
        for s in &self.stores {
            stores.add_row(vec![
                s.name.clone(),
                s.kind.clone(),
                s.enabled.to_string(),
                s.default.to_string(),
                s.reactor_key.clone(),
                if s.certificate_serial == 0 {
                    "none".to_owned()
                } else {
                    format!("serial {} by {}", s.certificate_serial, s.certified_by)
                },
            ]);
        }
        let mut secrets = columns(&["uri", "versions", "latest hash", "deletion", "access"]);
        for s in &self.secrets {
            let access: Vec<String> = s
                .access
                .iter()
                .filter(|(_, slugs)| !slugs.is_empty())
                .map(|(list, slugs)| format!("{list}={}", slugs.join(",")))
                .collect();
            secrets.add_row(vec![
                s.uri.clone(),
                s.versions.len().to_string(),
                shown_hash(s.versions.last().map_or("", |v| v.hash.as_str())),
                s.deletion.clone(),
                or_dash(&access.join(" ")),
            ]);
        }
        let mut principals = columns(&["slug", "kind", "role", "stores", "groups / members"]);
        for p in &self.principals {
            principals.add_row(vec![
                p.slug.clone(),
                p.kind.clone(),
                or_dash(&p.role),
                or_dash(&p.stores.join(",")),
                or_dash(&p.related.join(",")),
            ]);
        }
        let body = |t: &Table, rows: usize| {
            if rows == 0 {
                String::new()
            } else {
                t.trim_fmt()
            }
        };
        sections(
            &format!("state at {}", ResolvedPoint::of(self).text()),
            &[
                ("STORES", body(&stores, self.stores.len())),
                ("SECRETS", body(&secrets, self.secrets.len())),
                ("PRINCIPALS", body(&principals, self.principals.len())),
            ],
        )
    }
}

impl Tabular for ReplayDiff {
    fn table(&self) -> Table {
        let of = |section: Section| {
            self.changes
                .iter()
                .filter(|c| c.section == section)
                .map(Change::describe)
                .collect::<Vec<_>>()
                .join("\n")
        };
        sections(
            &format!("changes from {} to {}", self.from.text(), self.to.text()),
            &[
                ("STORES", of(Section::Stores)),
                ("SECRETS", of(Section::Secrets)),
                ("PRINCIPALS", of(Section::Principals)),
            ],
        )
    }
}

async fn call(
    conn: &Connection,
    at: v1::LogPoint,
    from: Option<v1::LogPoint>,
) -> Result<v1::AuditReplayReply, ReplayError> {
    Ok(conn
        .audit()
        .max_decoding_message_size(MAX_REPLY_BYTES)
        .replay(v1::AuditReplayRequest { at: Some(at), from })
        .await
        .map_err(|s| conn.error(s))?
        .into_inner())
}

/// `audit replay --at POINT`.
pub async fn at(conn: &Connection, point: v1::LogPoint) -> Result<ReplayState, ReplayError> {
    let reply = call(conn, point, None).await?;
    Ok(reply.at.unwrap_or_default().into())
}

/// `audit replay --diff A B`: both states from one server pass.
pub async fn between(
    conn: &Connection,
    a: v1::LogPoint,
    b: v1::LogPoint,
) -> Result<ReplayDiff, ReplayError> {
    let reply = call(conn, b, Some(a)).await?;
    let after = ReplayState::from(reply.at.unwrap_or_default());
    let before = ReplayState::from(reply.from.unwrap_or_default());
    Ok(ReplayDiff {
        from: ResolvedPoint::of(&before),
        to: ResolvedPoint::of(&after),
        changes: diff::diff(&before, &after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{OutputFormat, render};

    #[test]
    fn a_state_prints_three_sections_and_says_none_when_empty() {
        let state = ReplayState {
            position: 7,
            time: "2026-12-01T10:00:00.000Z".into(),
            stores: vec![],
            secrets: vec![],
            principals: vec![PrincipalRow {
                slug: "alice".into(),
                kind: "user".into(),
                role: "user".into(),
                stores: vec![],
                related: vec!["team".into()],
            }],
        };
        let text = render(OutputFormat::Table, &state).unwrap();
        assert!(
            text.starts_with("state at position 7 (2026-12-01T10:00:00.000Z)\n\nSTORES\n(none)\n\nSECRETS\n(none)\n\nPRINCIPALS\nSLUG"),
            "{text}"
        );
        assert!(text.contains("alice  user  user  -       team"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &state).unwrap()).unwrap();
        assert_eq!(json["position"], 7);
        assert_eq!(json["principals"][0]["related"][0], "team");
    }
}

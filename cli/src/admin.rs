//! Admin commands: stores (SPEC §5) and principals and tokens (SPEC §6),
//! plus `whoami` for everyone.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use comfy_table::Table;
use sealplane_proto::certificate::TrustAnchor;
use sealplane_proto::names::StoreName;
use sealplane_proto::v1;
use uuid::Uuid;

use crate::trust::TrustError;
use serde::Serialize;

use crate::client::{ClientError, Connection, command_options};
use crate::output::{Message, Tabular, columns, fields, or_dash};

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Signing needs a trust anchor, or it was refused.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// A store certificate could not be made.
    #[error("cannot certify store `{store}`: {problem}")]
    Certify {
        /// The store.
        store: String,
        /// Why.
        problem: String,
    },
    /// A `--ttl` that is not a duration.
    #[error("--ttl {0:?} is not a duration: use a number with s, m, h or d, e.g. `24h` or `30d`")]
    BadTtl(String),
}

/// Parses a lifetime like `90s`, `30m`, `24h`, `30d` (a bare number is seconds).
pub fn parse_ttl(text: &str) -> Result<Duration, AdminError> {
    let bad = || AdminError::BadTtl(text.to_owned());
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let seconds = n.checked_mul(scale).filter(|s| *s > 0).ok_or_else(bad)?;
    Ok(Duration::from_secs(seconds))
}

/// A store as listed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoreRow {
    /// Its name.
    pub name: String,
    /// `vault`, `aws-secrets-manager` or `file`.
    pub kind: String,
    /// Whether it accepts uploads.
    pub enabled: bool,
    /// Whether bare paths go to it.
    pub default: bool,
    /// Its reactor's Ed25519 identity, base64.
    pub reactor_key: String,
    /// The serial of its newest certificate (0: not certified).
    pub certificate_serial: u64,
    /// The anchor that signed it, base64 (empty: not certified).
    pub certified_by: String,
}

impl From<v1::Store> for StoreRow {
    fn from(s: v1::Store) -> Self {
        StoreRow {
            name: s.name,
            kind: s.kind,
            enabled: s.enabled,
            default: s.is_default,
            reactor_key: s.reactor_key,
            certificate_serial: s.certificate.as_ref().map_or(0, |c| c.serial),
            certified_by: s.certificate.map(|c| c.anchor_key).unwrap_or_default(),
        }
    }
}

impl Tabular for StoreRow {
    fn table(&self) -> Table {
        fields([
            ("name", self.name.clone()),
            ("kind", self.kind.clone()),
            ("enabled", self.enabled.to_string()),
            ("default", self.default.to_string()),
            ("reactor key", self.reactor_key.clone()),
            (
                "certificate",
                if self.certificate_serial == 0 {
                    "none (sealctl asks users to confirm the reactor key; certify it with `sealctl certify store`)".to_owned()
                } else {
                    format!(
                        "serial {} by anchor {}",
                        self.certificate_serial, self.certified_by
                    )
                },
            ),
        ])
    }

    fn names(&self) -> Option<Vec<String>> {
        Some(vec![self.name.clone()])
    }
}

/// `get stores`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StoreList {
    /// The stores.
    pub stores: Vec<StoreRow>,
}

impl Tabular for StoreList {
    fn table(&self) -> Table {
        let mut t = columns(&["name", "kind", "enabled", "default", "reactor key"]);
        for s in &self.stores {
            t.add_row(vec![
                s.name.clone(),
                s.kind.clone(),
                s.enabled.to_string(),
                if s.default { "*" } else { "" }.to_owned(),
                s.reactor_key.clone(),
            ]);
        }
        t
    }

    fn names(&self) -> Option<Vec<String>> {
        Some(self.stores.iter().map(|s| s.name.clone()).collect())
    }
}

/// A user or group as listed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PrincipalRow {
    /// Its slug.
    pub slug: String,
    /// `user` or `group`.
    pub kind: String,
    /// For users: the role.
    pub role: String,
    /// For reactors: the stores served.
    pub stores: Vec<String>,
    /// For users: their groups; for groups: their members.
    pub related: Vec<String>,
}

impl From<v1::Principal> for PrincipalRow {
    fn from(p: v1::Principal) -> Self {
        PrincipalRow {
            slug: p.slug,
            kind: p.kind,
            role: p.role,
            stores: p.stores,
            related: p.related,
        }
    }
}

/// `get principals`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PrincipalList {
    /// Users and groups.
    pub principals: Vec<PrincipalRow>,
}

impl Tabular for PrincipalList {
    fn table(&self) -> Table {
        let mut t = columns(&["slug", "kind", "role", "stores", "groups / members"]);
        for p in &self.principals {
            t.add_row(vec![
                p.slug.clone(),
                p.kind.clone(),
                or_dash(&p.role),
                or_dash(&p.stores.join(",")),
                or_dash(&p.related.join(",")),
            ]);
        }
        t
    }

    fn names(&self) -> Option<Vec<String>> {
        Some(self.principals.iter().map(|p| p.slug.clone()).collect())
    }
}

/// `whoami`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Identity {
    /// The principal.
    pub slug: String,
    /// Its role.
    pub role: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// For reactors: its stores.
    pub stores: Vec<String>,
    /// The token presented.
    pub token_id: String,
    /// When that token expires.
    pub token_expires_at: String,
}

impl Tabular for Identity {
    fn table(&self) -> Table {
        fields([
            ("slug", self.slug.clone()),
            ("role", self.role.clone()),
            ("groups", or_dash(&self.groups.join(", "))),
            ("stores", or_dash(&self.stores.join(", "))),
            ("token id", self.token_id.clone()),
            ("token expires at", self.token_expires_at.clone()),
        ])
    }

    fn names(&self) -> Option<Vec<String>> {
        Some(vec![self.slug.clone()])
    }
}

/// `issue token`: the token, shown once.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IssuedToken {
    /// The owner.
    pub slug: String,
    /// The token's id (for `revoke token`).
    pub token_id: String,
    /// The token itself.
    pub token: String,
    /// When it expires.
    pub expires_at: String,
}

impl Tabular for IssuedToken {
    fn table(&self) -> Table {
        fields([
            ("slug", self.slug.clone()),
            ("token id", self.token_id.clone()),
            ("expires at", self.expires_at.clone()),
            ("token", self.token.clone()),
        ])
    }
}

/// The store commands that take only a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAction {
    /// `enable store`.
    Enable,
    /// `disable store`.
    Disable,
    /// `set default-store`.
    SetDefault,
    /// `remove store`.
    Remove,
}

/// This deployment's id, as the control plane names it.
pub async fn deployment_id(conn: &Connection) -> Result<Uuid, AdminError> {
    let reply = conn
        .stores()
        .get_deployment(v1::GetDeploymentRequest {})
        .await
        .map_err(|s| conn.error(s))?
        .into_inner();
    Uuid::parse_str(&reply.deployment_id).map_err(|_| AdminError::Certify {
        store: String::new(),
        problem: "the control plane names no valid deployment id".into(),
    })
}

fn certificate(
    anchor: &TrustAnchor,
    deployment: Uuid,
    name: &str,
    kind: &str,
    reactor_key: &str,
    serial: u64,
) -> Result<v1::StoreCertificate, AdminError> {
    let bad = |problem: &str| AdminError::Certify {
        store: name.to_owned(),
        problem: problem.to_owned(),
    };
    let store = StoreName::parse(name).map_err(|e| bad(&e.to_string()))?;
    let key: [u8; 32] = STANDARD
        .decode(reactor_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("the reactor key is not base64 of 32 bytes"))?;
    Ok(anchor
        .certify(deployment, store, kind, key, serial)
        .to_proto())
}

/// `create store NAME --kind K --reactor-key KEY`: certified (serial 1)
/// when this admin holds a trust anchor.
pub async fn create_store(
    conn: &Connection,
    name: &str,
    kind: &str,
    reactor_key: &str,
    anchor: Option<&TrustAnchor>,
) -> Result<Message, AdminError> {
    let certificate = match anchor {
        Some(anchor) => Some(certificate(
            anchor,
            deployment_id(conn).await?,
            name,
            kind,
            reactor_key,
            1,
        )?),
        None => None,
    };
    let certified = certificate.is_some();
    conn.stores()
        .create_store(v1::CreateStoreRequest {
            options: command_options(),
            name: name.to_owned(),
            kind: kind.to_owned(),
            reactor_key: reactor_key.trim().to_owned(),
            certificate,
        })
        .await
        .map_err(|s| conn.error(s))?;
    Ok(Message {
        message: if certified {
            format!("store `{name}` created ({kind}), its reactor identity certified")
        } else {
            format!(
                "store `{name}` created ({kind}) without a certificate: users must confirm its reactor identity; certify it with `sealctl certify store {name}` and a trust anchor"
            )
        },
    })
}

/// `certify store NAME [--reactor-key NEW]`: the next certificate serial,
/// for the store's current identity or a replacement.
pub async fn certify_store(
    conn: &Connection,
    name: &str,
    new_key: Option<&str>,
    anchor: &TrustAnchor,
) -> Result<Message, AdminError> {
    let store = describe_store(conn, name).await?;
    let key = new_key.unwrap_or(&store.reactor_key);
    let serial = store.certificate_serial + 1;
    let certificate = certificate(
        anchor,
        deployment_id(conn).await?,
        name,
        &store.kind,
        key,
        serial,
    )?;
    conn.stores()
        .certify_store(v1::CertifyStoreRequest {
            options: command_options(),
            name: name.to_owned(),
            certificate: Some(certificate),
        })
        .await
        .map_err(|s| conn.error(s))?;
    Ok(Message {
        message: format!(
            "store `{name}` certified: reactor identity {} (serial {serial})",
            key.trim()
        ),
    })
}

/// `enable|disable store`, `set default-store`, `remove store`.
pub async fn store_action(
    conn: &Connection,
    action: StoreAction,
    name: &str,
) -> Result<Message, ClientError> {
    let request = v1::StoreCommand {
        options: command_options(),
        name: name.to_owned(),
    };
    let mut stores = conn.stores();
    let (result, done) = match action {
        StoreAction::Enable => (stores.enable_store(request).await, "enabled"),
        StoreAction::Disable => (stores.disable_store(request).await, "disabled"),
        StoreAction::SetDefault => (stores.set_default_store(request).await, "is the default"),
        StoreAction::Remove => (stores.remove_store(request).await, "removed"),
    };
    result.map_err(|s| conn.error(s))?;
    Ok(Message {
        message: format!("store `{name}` {done}"),
    })
}

/// `get stores`.
pub async fn list_stores(conn: &Connection) -> Result<StoreList, ClientError> {
    let reply = conn
        .stores()
        .list_stores(v1::ListStoresRequest { options: None })
        .await
        .map_err(|s| conn.error(s))?
        .into_inner();
    Ok(StoreList {
        stores: reply.stores.into_iter().map(StoreRow::from).collect(),
    })
}

/// `get status`: the control plane at a glance (admins, auditors).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct StatusOut(pub sealplane_proto::status::StatusView);

impl Tabular for StatusOut {
    fn table(&self) -> Table {
        fields(self.0.fields())
    }
}

/// `get status`.
pub async fn status(conn: &Connection) -> Result<StatusOut, ClientError> {
    let reply = conn
        .operations()
        .get_status(v1::GetStatusRequest {})
        .await
        .map_err(|s| conn.error(s))?
        .into_inner();
    Ok(StatusOut(reply.into()))
}

/// `describe store NAME`.
pub async fn describe_store(conn: &Connection, name: &str) -> Result<StoreRow, ClientError> {
    let reply = conn
        .stores()
        .get_store(v1::GetStoreRequest {
            options: None,
            name: name.to_owned(),
        })
        .await
        .map_err(|s| conn.error(s))?
        .into_inner();
    Ok(reply.store.unwrap_or_default().into())
}

/// `create user SLUG --role R [--store S ...]`.
pub async fn create_user(
    conn: &Connection,
    slug: &str,
    role: &str,
    stores: &[String],
) -> Result<Message, ClientError> {
    conn.principals()
        .create_user(v1::CreateUserRequest {
            options: command_options(),
            slug: slug.to_owned(),
            role: role.to_owned(),
            stores: stores.to_vec(),
        })
        .await
        .map_err(|s| conn.error(s))?;
    Ok(Message {
        message: format!("user `{slug}` created ({role})"),
    })
}

/// `create group SLUG`.
pub async fn create_group(conn: &Connection, slug: &str) -> Result<Message, ClientError> {
    conn.principals()
        .create_group(v1::CreateGroupRequest {
            options: command_options(),
            slug: slug.to_owned(),
        })
        .await
        .map_err(|s| conn.error(s))?;
    Ok(Message {
        message: format!("group `{slug}` created"),
    })
}

/// `remove user SLUG`.
pub async fn remove_user(conn: &Connection, slug: &str) -> Result<Message, ClientError> {
    conn.principals()
        .remove_user(v1::RemoveUserRequest {
            options: command_options(),
            slug: slug.to_owned(),
        })
        .await
        .map_err(|s| conn.error(s))?;
    Ok(Message {
        message: format!(
            "user `{slug}` removed: out of its groups, every token revoked; the slug is never reused"
        ),
    })
}

/// `add member GROUP USER` (`add`) or `remove member GROUP USER`.
pub async fn membership(
    conn: &Connection,
    group: &str,
    user: &str,
    add: bool,
) -> Result<Message, ClientError> {
    let request = v1::MembershipRequest {
        options: command_options(),
        group: group.to_owned(),
        user: user.to_owned(),
    };
    let mut principals = conn.principals();
    let result = if add {
        principals.add_member(request).await
    } else {
        principals.remove_member(request).await
    };
    result.map_err(|s| conn.error(s))?;
    Ok(Message {
        message: if add {
            format!("`{user}` added to group `{group}`")
        } else {
            format!("`{user}` removed from group `{group}`")
        },
    })
}

/// `issue token SLUG [--ttl D]`.
pub async fn issue_token(
    conn: &Connection,
    slug: &str,
    ttl: Option<&str>,
) -> Result<IssuedToken, AdminError> {
    let ttl_seconds = ttl.map(parse_ttl).transpose()?.map_or(0, |d| d.as_secs());
    let reply = conn
        .principals()
        .issue_token(v1::IssueTokenRequest {
            options: command_options(),
            slug: slug.to_owned(),
            ttl_seconds,
        })
        .await
        .map_err(|s| conn.error(s))?
        .into_inner();
    Ok(IssuedToken {
        slug: slug.to_owned(),
        token_id: reply.token_id,
        token: reply.token,
        expires_at: reply.expires_at,
    })
}

/// `revoke token SLUG TOKEN_ID`.
pub async fn revoke_token(
    conn: &Connection,
    slug: &str,
    token_id: &str,
) -> Result<Message, ClientError> {
    conn.principals()
        .revoke_token(v1::RevokeTokenRequest {
            options: command_options(),
            slug: slug.to_owned(),
            token_id: token_id.to_owned(),
        })
        .await
        .map_err(|s| conn.error(s))?;
    Ok(Message {
        message: format!("token {token_id} of `{slug}` revoked"),
    })
}

/// `get principals`.
/// `get principals [--page-size N]`: every page, each read at least as
/// new as the first.
pub async fn list_principals(
    conn: &Connection,
    page_size: u32,
) -> Result<PrincipalList, ClientError> {
    let all = crate::client::all_pages(|page_token, options| async move {
        let reply = conn
            .principals()
            .list_principals(v1::ListPrincipalsRequest {
                options,
                page_size,
                page_token,
            })
            .await
            .map_err(|s| conn.error(s))?
            .into_inner();
        Ok((reply.principals, reply.read, reply.next_page_token))
    })
    .await?;
    Ok(PrincipalList {
        principals: all.into_iter().map(PrincipalRow::from).collect(),
    })
}

/// `whoami`.
pub async fn whoami(conn: &Connection) -> Result<Identity, ClientError> {
    let r = conn
        .principals()
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .map_err(|s| conn.error(s))?
        .into_inner();
    Ok(Identity {
        slug: r.slug,
        role: r.role,
        groups: r.groups,
        stores: r.stores,
        token_id: r.token_id,
        token_expires_at: r.token_expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{OutputFormat, render};

    #[test]
    fn ttls_read_like_people_write_them() {
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ttl("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_ttl("30d").unwrap(), Duration::from_secs(30 * 86_400));
        for bad in ["", "h", "0", "1w", "-1h", "1.5h", "99999999999999999999d"] {
            let e = parse_ttl(bad).unwrap_err();
            assert!(e.to_string().contains("is not a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn stores_list_marks_the_default() {
        let list = StoreList {
            stores: vec![
                StoreRow {
                    name: "local".into(),
                    kind: "file".into(),
                    enabled: true,
                    default: true,
                    reactor_key: "K1".into(),
                    certificate_serial: 1,
                    certified_by: "A".into(),
                },
                StoreRow {
                    name: "vault-prod".into(),
                    kind: "vault".into(),
                    enabled: false,
                    default: false,
                    reactor_key: "K2".into(),
                    certificate_serial: 0,
                    certified_by: String::new(),
                },
            ],
        };
        assert_eq!(
            render(OutputFormat::Table, &list).unwrap(),
            "NAME        KIND   ENABLED  DEFAULT  REACTOR KEY\n\
             local       file   true     *        K1\n\
             vault-prod  vault  false             K2\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &list).unwrap()).unwrap();
        assert_eq!(json["stores"][0]["default"], true);
    }

    #[test]
    fn an_issued_token_is_one_object_for_scripts() {
        let t = IssuedToken {
            slug: "alice".into(),
            token_id: "id".into(),
            token: "spt_x".into(),
            expires_at: "2026-11-24T00:00:00+00:00".into(),
        };
        let yaml = render(OutputFormat::Yaml, &t).unwrap();
        assert_eq!(
            yaml,
            "slug: alice\ntoken_id: id\ntoken: spt_x\nexpires_at: 2026-11-24T00:00:00+00:00\n"
        );
    }
}

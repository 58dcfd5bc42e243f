//! A principal: a user (with its role, bound stores and bearer tokens) or a
//! group (with its members), SPEC §6.
//!
//! Users and groups share one namespace, one stream each
//! (`principal-{slug}`), so a path's first segment names exactly one owner.
//! Tokens are kept only as SHA-256 digests.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::names::{Slug, StoreName};
use super::{Aggregate, Context, DomainEvent, Refusal, RefusalKind, Role};

/// A user or a group, or nothing yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Principal {
    /// No principal has this slug.
    #[default]
    Absent,
    /// A user.
    User(UserState),
    /// A group.
    Group(GroupState),
}

/// What is known about a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserState {
    /// Its slug.
    pub slug: Slug,
    /// Its role.
    pub role: Role,
    /// The stores a reactor serves; empty for other roles.
    pub stores: Vec<StoreName>,
    /// Its tokens by id, revoked and expired ones included.
    pub tokens: BTreeMap<Uuid, TokenState>,
}

/// One bearer token of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenState {
    /// Lower-case hex SHA-256 of the token; the token itself is never kept.
    pub sha256_hex: String,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// Whether it was revoked.
    pub revoked: bool,
}

impl TokenState {
    /// Whether the token authenticates at `now`: not revoked, not expired.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && now < self.expires_at
    }
}

/// What is known about a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupState {
    /// Its slug.
    pub slug: Slug,
    /// The users in it.
    pub members: BTreeSet<Slug>,
}

/// What can be asked of a principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalCommand {
    /// Creates a user; `stores` is required for reactors and only for them.
    CreateUser {
        slug: Slug,
        role: Role,
        stores: Vec<StoreName>,
    },
    /// Creates a group.
    CreateGroup { slug: Slug },
    /// Adds a user to this group; the handler checks that `user` is a user.
    AddMember { user: Slug, user_exists: bool },
    /// Removes a user from this group.
    RemoveMember { user: Slug },
    /// Records a new token of this user by its digest.
    IssueToken {
        token_id: Uuid,
        sha256_hex: String,
        expires_at: DateTime<Utc>,
    },
    /// Revokes a token of this user.
    RevokeToken { token_id: Uuid },
}

/// What happened to a principal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PrincipalEvent {
    /// A user was created.
    UserCreated {
        slug: Slug,
        role: Role,
        #[serde(default)]
        stores: Vec<StoreName>,
    },
    /// A group was created.
    GroupCreated { slug: Slug },
    /// A user joined a group.
    MemberAdded { group: Slug, user: Slug },
    /// A user left a group.
    MemberRemoved { group: Slug, user: Slug },
    /// A token was issued; only its SHA-256 is recorded.
    TokenIssued {
        token_id: Uuid,
        user: Slug,
        sha256_hex: String,
        expires_at: DateTime<Utc>,
    },
    /// A token was revoked.
    TokenRevoked { token_id: Uuid, user: Slug },
}

impl DomainEvent for PrincipalEvent {
    fn event_type(&self) -> &'static str {
        match self {
            PrincipalEvent::UserCreated { .. } => "UserCreated",
            PrincipalEvent::GroupCreated { .. } => "GroupCreated",
            PrincipalEvent::MemberAdded { .. } => "MemberAdded",
            PrincipalEvent::MemberRemoved { .. } => "MemberRemoved",
            PrincipalEvent::TokenIssued { .. } => "TokenIssued",
            PrincipalEvent::TokenRevoked { .. } => "TokenRevoked",
        }
    }
}

/// Why a principal command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalRefusal {
    /// The actor lacks the role (or, for revocation, is not the owner).
    #[error("`{actor}` may not {action}: that needs the admin role")]
    Denied { actor: Slug, action: &'static str },
    /// The stream holds no principal.
    #[error(
        "no user or group has this slug; an admin can create one with `sealctl create user` or `sealctl create group`"
    )]
    NoSuchPrincipal,
    /// The slug belongs to a user or a group already.
    #[error(
        "`{slug}` is already a {taken_by}; users and groups share one namespace, so choose another slug"
    )]
    SlugTaken { slug: Slug, taken_by: &'static str },
    /// A reactor was given no store to serve.
    #[error("reactor `{0}` must serve at least one store: name it with `--store NAME`")]
    ReactorWithoutStores(Slug),
    /// Stores were given to a principal that is not a reactor.
    #[error("only reactors serve stores, and `{slug}` is to be a {role}: leave out `--store`")]
    StoresForNonReactor { slug: Slug, role: &'static str },
    /// Members were managed on a user.
    #[error("`{0}` is a user, not a group; only groups have members")]
    NotAGroup(Slug),
    /// Tokens were managed on a group.
    #[error("`{0}` is a group; tokens belong to users only")]
    NotAUser(Slug),
    /// The user to add does not exist (or is a group).
    #[error(
        "there is no user `{0}` (groups cannot be members); an admin can create it with `sealctl create user {0}`"
    )]
    NoSuchUser(Slug),
    /// The digest is not a SHA-256 in lower-case hex.
    #[error("a token digest must be 64 lower-case hex characters (SHA-256)")]
    BadDigest,
    /// The token would be expired on arrival.
    #[error("a token must expire in the future: {expires_at} is not after {now}")]
    ExpiryNotInFuture {
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// The token id is already used, with other values or revoked.
    #[error("token `{0}` already exists with other values or was revoked; issue a fresh token")]
    TokenIdTaken(Uuid),
    /// The user has no such token.
    #[error("user `{user}` has no token `{token_id}`")]
    NoSuchToken { user: Slug, token_id: Uuid },
}

impl Refusal for PrincipalRefusal {
    fn kind(&self) -> RefusalKind {
        use PrincipalRefusal as R;
        match self {
            R::Denied { .. } => RefusalKind::Denied,
            R::NoSuchPrincipal | R::NoSuchUser(_) | R::NoSuchToken { .. } => RefusalKind::NotFound,
            R::SlugTaken { .. } | R::TokenIdTaken(_) => RefusalKind::AlreadyExists,
            R::NotAGroup(_) | R::NotAUser(_) => RefusalKind::FailedPrecondition,
            R::ReactorWithoutStores(_)
            | R::StoresForNonReactor { .. }
            | R::BadDigest
            | R::ExpiryNotInFuture { .. } => RefusalKind::Invalid,
        }
    }
}

/// The role's name as written in events and on the command line.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::User => "user",
        Role::Auditor => "auditor",
        Role::Reactor => "reactor",
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Principal {
    /// Whether this is a user.
    pub fn is_user(&self) -> bool {
        matches!(self, Principal::User(_))
    }

    /// Whether this is a group.
    pub fn is_group(&self) -> bool {
        matches!(self, Principal::Group(_))
    }

    /// The user's role; `None` for groups and absent principals.
    pub fn role(&self) -> Option<Role> {
        match self {
            Principal::User(u) => Some(u.role),
            _ => None,
        }
    }

    /// The stores a reactor serves; empty for anything else.
    pub fn stores(&self) -> &[StoreName] {
        match self {
            Principal::User(u) => &u.stores,
            _ => &[],
        }
    }

    /// A user's token by id.
    pub fn token(&self, token_id: &Uuid) -> Option<&TokenState> {
        match self {
            Principal::User(u) => u.tokens.get(token_id),
            _ => None,
        }
    }

    /// A group's members; `None` for anything else.
    pub fn members(&self) -> Option<&BTreeSet<Slug>> {
        match self {
            Principal::Group(g) => Some(&g.members),
            _ => None,
        }
    }

    fn create(&self, slug: &Slug) -> Result<(), PrincipalRefusal> {
        let taken_by = match self {
            Principal::Absent => return Ok(()),
            Principal::User(_) => "user",
            Principal::Group(_) => "group",
        };
        Err(PrincipalRefusal::SlugTaken {
            slug: slug.clone(),
            taken_by,
        })
    }

    fn group(&self) -> Result<&GroupState, PrincipalRefusal> {
        match self {
            Principal::Absent => Err(PrincipalRefusal::NoSuchPrincipal),
            Principal::User(u) => Err(PrincipalRefusal::NotAGroup(u.slug.clone())),
            Principal::Group(g) => Ok(g),
        }
    }

    fn user(&self) -> Result<&UserState, PrincipalRefusal> {
        match self {
            Principal::Absent => Err(PrincipalRefusal::NoSuchPrincipal),
            Principal::User(u) => Ok(u),
            Principal::Group(g) => Err(PrincipalRefusal::NotAUser(g.slug.clone())),
        }
    }

    fn issue(
        &self,
        token_id: Uuid,
        sha256_hex: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<PrincipalEvent>, PrincipalRefusal> {
        let user = self.user()?;
        if !is_sha256_hex(sha256_hex) {
            return Err(PrincipalRefusal::BadDigest);
        }
        // A retried identical command is already satisfied, even after its
        // expiry has passed; a revoked id is spent.
        if let Some(t) = user.tokens.get(&token_id) {
            return if t.sha256_hex == sha256_hex && t.expires_at == expires_at && !t.revoked {
                Ok(vec![])
            } else {
                Err(PrincipalRefusal::TokenIdTaken(token_id))
            };
        }
        if expires_at <= now {
            return Err(PrincipalRefusal::ExpiryNotInFuture { expires_at, now });
        }
        Ok(vec![PrincipalEvent::TokenIssued {
            token_id,
            user: user.slug.clone(),
            sha256_hex: sha256_hex.to_owned(),
            expires_at,
        }])
    }

    fn revoke(
        &self,
        token_id: Uuid,
        ctx: &Context,
    ) -> Result<Vec<PrincipalEvent>, PrincipalRefusal> {
        let own = matches!(self, Principal::User(u) if u.slug == ctx.actor.slug);
        if !own && !ctx.actor.is_admin() {
            return Err(PrincipalRefusal::Denied {
                actor: ctx.actor.slug.clone(),
                action: "revoke another principal's tokens",
            });
        }
        let user = self.user()?;
        match user.tokens.get(&token_id) {
            None => Err(PrincipalRefusal::NoSuchToken {
                user: user.slug.clone(),
                token_id,
            }),
            Some(t) if t.revoked => Ok(vec![]),
            Some(_) => Ok(vec![PrincipalEvent::TokenRevoked {
                token_id,
                user: user.slug.clone(),
            }]),
        }
    }
}

impl Aggregate for Principal {
    type Command = PrincipalCommand;
    type Event = PrincipalEvent;
    type Refusal = PrincipalRefusal;

    fn decide(
        &self,
        command: &PrincipalCommand,
        ctx: &Context,
    ) -> Result<Vec<PrincipalEvent>, PrincipalRefusal> {
        let admin_only = match command {
            PrincipalCommand::CreateUser { .. } => Some("create users"),
            PrincipalCommand::CreateGroup { .. } => Some("create groups"),
            PrincipalCommand::AddMember { .. } | PrincipalCommand::RemoveMember { .. } => {
                Some("change group members")
            }
            PrincipalCommand::IssueToken { .. } => Some("issue tokens"),
            PrincipalCommand::RevokeToken { .. } => None,
        };
        if let Some(action) = admin_only.filter(|_| !ctx.actor.is_admin()) {
            return Err(PrincipalRefusal::Denied {
                actor: ctx.actor.slug.clone(),
                action,
            });
        }
        match command {
            PrincipalCommand::CreateUser { slug, role, stores } => {
                match (role, stores.is_empty()) {
                    (Role::Reactor, true) => {
                        return Err(PrincipalRefusal::ReactorWithoutStores(slug.clone()));
                    }
                    (Role::Admin | Role::User | Role::Auditor, false) => {
                        return Err(PrincipalRefusal::StoresForNonReactor {
                            slug: slug.clone(),
                            role: role_name(*role),
                        });
                    }
                    _ => {}
                }
                self.create(slug)?;
                Ok(vec![PrincipalEvent::UserCreated {
                    slug: slug.clone(),
                    role: *role,
                    stores: stores.clone(),
                }])
            }
            PrincipalCommand::CreateGroup { slug } => {
                self.create(slug)?;
                Ok(vec![PrincipalEvent::GroupCreated { slug: slug.clone() }])
            }
            PrincipalCommand::AddMember { user, user_exists } => {
                let group = self.group()?;
                if !user_exists {
                    return Err(PrincipalRefusal::NoSuchUser(user.clone()));
                }
                Ok(if group.members.contains(user) {
                    vec![]
                } else {
                    vec![PrincipalEvent::MemberAdded {
                        group: group.slug.clone(),
                        user: user.clone(),
                    }]
                })
            }
            PrincipalCommand::RemoveMember { user } => {
                let group = self.group()?;
                Ok(if group.members.contains(user) {
                    vec![PrincipalEvent::MemberRemoved {
                        group: group.slug.clone(),
                        user: user.clone(),
                    }]
                } else {
                    vec![]
                })
            }
            PrincipalCommand::IssueToken {
                token_id,
                sha256_hex,
                expires_at,
            } => self.issue(*token_id, sha256_hex, *expires_at, ctx.now),
            PrincipalCommand::RevokeToken { token_id } => self.revoke(*token_id, ctx),
        }
    }

    fn apply(&mut self, event: &PrincipalEvent) {
        match (self, event) {
            (this @ Principal::Absent, PrincipalEvent::UserCreated { slug, role, stores }) => {
                *this = Principal::User(UserState {
                    slug: slug.clone(),
                    role: *role,
                    stores: stores.clone(),
                    tokens: BTreeMap::new(),
                });
            }
            (this @ Principal::Absent, PrincipalEvent::GroupCreated { slug }) => {
                *this = Principal::Group(GroupState {
                    slug: slug.clone(),
                    members: BTreeSet::new(),
                });
            }
            (Principal::Group(g), PrincipalEvent::MemberAdded { user, .. }) => {
                g.members.insert(user.clone());
            }
            (Principal::Group(g), PrincipalEvent::MemberRemoved { user, .. }) => {
                g.members.remove(user);
            }
            (
                Principal::User(u),
                PrincipalEvent::TokenIssued {
                    token_id,
                    sha256_hex,
                    expires_at,
                    ..
                },
            ) => {
                u.tokens.insert(
                    *token_id,
                    TokenState {
                        sha256_hex: sha256_hex.clone(),
                        expires_at: *expires_at,
                        revoked: false,
                    },
                );
            }
            (Principal::User(u), PrincipalEvent::TokenRevoked { token_id, .. }) => {
                if let Some(t) = u.tokens.get_mut(token_id) {
                    t.revoked = true;
                }
            }
            // Events that do not fit the state cannot come from `decide`.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;

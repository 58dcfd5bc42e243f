//! Pure domain logic: aggregates as two functions, no I/O.
//!
//! `decide(state, command, context) -> events or a refusal` and
//! `apply(state, event) -> state`. The command handler loads an aggregate
//! by replaying its stream, decides, and appends with the expected version.
//! Facts a decision needs from elsewhere (is the store enabled? may this
//! actor write that path?) travel inside the command, gathered by the
//! handler, so every rule here is testable with given/when/then.

/// Names that cross process boundaries are defined once, in the contract crate.
pub use sealplane_proto::names;
pub mod compact;
pub mod key_hashes;
pub mod principal;
pub mod sealing_keys;
pub mod secret;
pub mod store_catalog;
#[cfg(test)]
pub mod testing;
pub mod upload;

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};

use names::{Slug, StoreName};

/// The roles of SPEC §6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages stores and principals; bypasses access lists.
    Admin,
    /// Puts and reads secrets as its access lists allow.
    User,
    /// Reads everything but values; writes nothing.
    Auditor,
    /// Reports on upload requests for the stores it is bound to.
    Reactor,
}

/// Who issues a command, as authentication established it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The principal's slug (a reactor's slug is its name).
    pub slug: Slug,
    /// Its role.
    pub role: Role,
    /// Groups it belongs to (users only).
    pub groups: Vec<Slug>,
    /// Stores it may serve (reactors only).
    pub stores: Vec<StoreName>,
}

impl Actor {
    /// Whether this actor is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this actor is `slug` or a member of group `slug`.
    pub fn is_or_belongs_to(&self, slug: &str) -> bool {
        self.slug.as_str() == slug || self.groups.iter().any(|g| g.as_str() == slug)
    }

    /// Whether this actor is a reactor bound to `store`.
    pub fn serves(&self, store: &StoreName) -> bool {
        self.role == Role::Reactor && self.stores.contains(store)
    }
}

/// Everything a decision may depend on besides the state and the command.
#[derive(Clone, Debug)]
pub struct Context {
    /// Who acts.
    pub actor: Actor,
    /// The time of the decision (injected, so tests are deterministic).
    pub now: DateTime<Utc>,
}

/// How the API reports a refusal; `Denied` refusals are also recorded as
/// `AccessDenied` events (SPEC §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// The actor may not do this.
    Denied,
    /// The target does not exist.
    NotFound,
    /// The target exists already.
    AlreadyExists,
    /// The target is in a state that does not allow it.
    FailedPrecondition,
    /// The command itself is malformed.
    Invalid,
    /// A rate limit is reached; the same command succeeds later.
    Exhausted,
}

/// A typed refusal of an aggregate.
pub trait Refusal: std::error::Error + Clone + PartialEq + Send + Sync + 'static {
    /// How to report it.
    fn kind(&self) -> RefusalKind;

    /// Whether the refusal is a security event, recorded as `AccessDenied`
    /// (SPEC §10): every denial, and whatever else an aggregate says.
    fn is_security_event(&self) -> bool {
        self.kind() == RefusalKind::Denied
    }
}

/// An event of an aggregate: a serde enum whose variant is its type name.
pub trait DomainEvent:
    Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync
{
    /// The stored event type, e.g. `StoreCreated`.
    fn event_type(&self) -> &'static str;

    /// The schema version of this event type's data; bump it when a change
    /// needs an upcast, not for added optional fields.
    fn schema_version(&self) -> u32 {
        1
    }
}

/// A command's arguments as its caller chose them: what makes a retry of
/// a command the same command (ADR 0012).
pub trait CommandArguments {
    /// The command's variant and the caller's own arguments, as a value
    /// whose JSON text is deterministic. Never the facts the handler
    /// gathered for the decision (the time, permissions, limits, server
    /// generated ids or secrets): a genuine retry must give the same value.
    fn arguments(&self) -> serde_json::Value;
}

/// An aggregate: state rebuilt from its events, deciding on commands.
pub trait Aggregate: Default + Clone + Debug + Send + Sync + 'static {
    /// What it can be asked to do.
    type Command: CommandArguments + Debug + Send + Sync;
    /// What it records.
    type Event: DomainEvent;
    /// Why it refuses.
    type Refusal: Refusal;

    /// The events `command` produces, or why not. An empty list means the
    /// command is already satisfied (idempotent no-op).
    fn decide(
        &self,
        command: &Self::Command,
        ctx: &Context,
    ) -> Result<Vec<Self::Event>, Self::Refusal>;

    /// The state after `event`.
    fn apply(&mut self, event: &Self::Event);
}

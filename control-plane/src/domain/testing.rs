//! Given/when/then for aggregate rules:
//! `given(events).as_actor(a).when(command).then_events(..)` or
//! `.then_refused(..)`.

use chrono::{DateTime, TimeZone, Utc};

use super::names::{Slug, StoreName};
use super::{Actor, Aggregate, Context, Role};

/// A fixed instant, so decisions involving time are reproducible.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

/// An actor with `role`, no groups and no stores.
pub fn actor(slug: &str, role: Role) -> Actor {
    Actor {
        slug: Slug::parse(slug).unwrap(),
        role,
        groups: vec![],
        stores: vec![],
    }
}

/// The admin `root`.
pub fn admin() -> Actor {
    actor("root", Role::Admin)
}

/// A user with the given groups.
pub fn user(slug: &str, groups: &[&str]) -> Actor {
    Actor {
        groups: groups.iter().map(|g| Slug::parse(*g).unwrap()).collect(),
        ..actor(slug, Role::User)
    }
}

/// A reactor serving `stores`.
pub fn reactor(slug: &str, stores: &[&str]) -> Actor {
    Actor {
        stores: stores
            .iter()
            .map(|s| StoreName::parse(*s).unwrap())
            .collect(),
        ..actor(slug, Role::Reactor)
    }
}

/// The state after some events.
pub struct Given<A: Aggregate> {
    state: A,
    ctx: Context,
}

/// Starts a scenario from the aggregate's history, acting as an admin at
/// [`t0`] unless told otherwise.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut state = A::default();
    for e in events {
        state.apply(&e);
    }
    Given {
        state,
        ctx: Context {
            actor: admin(),
            now: t0(),
        },
    }
}

impl<A: Aggregate> Given<A> {
    /// Acts as `actor`.
    pub fn as_actor(mut self, actor: Actor) -> Self {
        self.ctx.actor = actor;
        self
    }

    /// Decides at `now`.
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.ctx.now = now;
        self
    }

    /// Decides on `command`.
    pub fn when(self, command: A::Command) -> Then<A> {
        let outcome = self.state.decide(&command, &self.ctx);
        Then {
            state: self.state,
            command,
            outcome,
        }
    }
}

/// The outcome of a decision, to check.
pub struct Then<A: Aggregate> {
    state: A,
    command: A::Command,
    outcome: Result<Vec<A::Event>, A::Refusal>,
}

impl<A: Aggregate> Then<A> {
    /// Asserts the command produced exactly `expected`, and returns the
    /// state after applying them.
    #[track_caller]
    pub fn then_events(self, expected: Vec<A::Event>) -> A {
        match self.outcome {
            Ok(events) => {
                assert_eq!(events, expected, "events for {:?}", self.command);
                let mut state = self.state;
                for e in &events {
                    state.apply(e);
                }
                state
            }
            Err(r) => panic!("{:?} was refused: {r}", self.command),
        }
    }

    /// Asserts the command was refused, and returns the refusal (for
    /// refusals whose text is checked rather than matched whole).
    #[track_caller]
    pub fn refusal(self) -> A::Refusal {
        match self.outcome {
            Ok(events) => panic!("{:?} should be refused, produced {events:?}", self.command),
            Err(r) => r,
        }
    }

    /// Asserts the command was refused with `expected`.
    #[track_caller]
    pub fn then_refused(self, expected: A::Refusal) {
        match self.outcome {
            Ok(events) => panic!(
                "{:?} should be refused with {expected}, produced {events:?}",
                self.command
            ),
            Err(r) => assert_eq!(r, expected, "refusal for {:?}", self.command),
        }
    }
}

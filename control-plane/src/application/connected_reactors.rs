//! The reactors subscribed to the feed right now, for `GetStatus`: who,
//! which stores, since when, and the last position each feed was sent.
//! A subscription registers itself and is forgotten when its stream drops.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::domain::names::{Slug, StoreName};

/// Every open feed subscription.
#[derive(Default)]
pub struct ConnectedReactors {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Entry>>,
}

struct Entry {
    principal: Slug,
    stores: Vec<StoreName>,
    since: DateTime<Utc>,
    position: Arc<AtomicU64>,
}

/// One connected reactor as `GetStatus` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectedReactor {
    /// The reactor principal.
    pub principal: Slug,
    /// The stores its feed carries.
    pub stores: Vec<StoreName>,
    /// When it subscribed.
    pub since: DateTime<Utc>,
    /// The last position sent on its feed (0 before any).
    pub position: u64,
}

/// A registered subscription; dropping it forgets the reactor.
pub struct Subscription {
    registry: Arc<ConnectedReactors>,
    id: u64,
    position: Arc<AtomicU64>,
}

impl Subscription {
    /// Records that the feed sent the message at `position`.
    pub fn sent(&self, position: u64) {
        self.position.fetch_max(position, Ordering::Relaxed);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.registry.open).remove(&self.id);
    }
}

impl ConnectedReactors {
    /// Registers `principal`'s feed for `stores`, subscribed at `since`.
    pub fn connect(
        self: &Arc<Self>,
        principal: Slug,
        stores: Vec<StoreName>,
        since: DateTime<Utc>,
    ) -> Subscription {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let position = Arc::new(AtomicU64::new(0));
        lock(&self.open).insert(
            id,
            Entry {
                principal,
                stores,
                since,
                position: position.clone(),
            },
        );
        Subscription {
            registry: self.clone(),
            id,
            position,
        }
    }

    /// Every connected reactor, in the order they subscribed.
    pub fn list(&self) -> Vec<ConnectedReactor> {
        lock(&self.open)
            .values()
            .map(|e| ConnectedReactor {
                principal: e.principal.clone(),
                stores: e.stores.clone(),
                since: e.since,
                position: e.position.load(Ordering::Relaxed),
            })
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::t0;

    #[test]
    fn a_subscription_is_listed_with_its_last_position_until_dropped() {
        let registry = Arc::new(ConnectedReactors::default());
        let local = StoreName::parse("local").unwrap();
        let first = registry.connect(Slug::parse("r1").unwrap(), vec![local.clone()], t0());
        let second = registry.connect(Slug::parse("r2").unwrap(), vec![local], t0());
        first.sent(7);
        first.sent(5);
        let listed = registry.list();
        assert_eq!(listed.len(), 2);
        assert_eq!(
            (listed[0].principal.as_str(), listed[0].position),
            ("r1", 7)
        );
        assert_eq!(listed[1].position, 0);
        drop(first);
        assert_eq!(registry.list().len(), 1);
        drop(second);
        assert!(registry.list().is_empty());
    }
}

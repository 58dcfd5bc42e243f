//! Leases held in the store: the one on once-only work (ADR 0020) and
//! each reactor's feed lease ([`FeedLease`], ADR 0021).
//!
//! The lease on once-only work. Several control planes may
//! share one event store; the work none of them may do twice at once —
//! ending unanswered upload requests, signing log checkpoints — is done
//! by whichever holds the lease `once-only-work` in the store. It is
//! renewed every [`RENEW_EVERY`] and lasts [`LEASE_TTL`]: when its holder
//! dies, another takes it over within that.
//!
//! A holder counts the lease as its own only until [`LEASE_TTL`] after it
//! *asked* for it (a renewal that hangs runs out here before it can run
//! out in the store). The work itself is fenced as well: each step is an
//! append with an expected version, so a holder that paused past its
//! lease loses the race rather than doing the step twice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sealplane_event_store::EventStore;

/// The lease's name in the store.
pub const LEASE: &str = "once-only-work";
/// How long a lease lasts unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(5);
/// How often its holder renews it (and the others try to take it).
pub const RENEW_EVERY: Duration = Duration::from_secs(1);

/// This process's standing on the lease.
pub struct OnceOnly {
    holder: String,
    /// Until when this process holds the lease, when it does.
    until: Mutex<Option<Instant>>,
}

impl Default for OnceOnly {
    fn default() -> Self {
        OnceOnly {
            holder: format!("pid {} ({})", std::process::id(), uuid::Uuid::new_v4()),
            until: Mutex::new(None),
        }
    }
}

impl OnceOnly {
    /// This process's name as a holder (unique per start).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this process holds the lease now.
    pub fn held(&self) -> bool {
        self.until().is_some_and(|until| Instant::now() < until)
    }

    fn until(&self) -> Option<Instant> {
        *self.until.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, until: Option<Instant>) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = until;
    }

    /// Takes or renews the lease once; whether this process holds it now.
    pub async fn renew(&self, store: &dyn EventStore) -> bool {
        let asked = Instant::now();
        let was = self.held();
        let held = match store.acquire_lease(LEASE, &self.holder, LEASE_TTL).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the once-only lease; leaving once-only work to others");
                false
            }
        };
        self.set(held.then_some(asked + LEASE_TTL));
        match (was, held) {
            (false, true) => {
                tracing::info!(holder = %self.holder, "took the once-only lease: this control plane now ends unanswered uploads and signs checkpoints")
            }
            (true, false) => tracing::warn!(holder = %self.holder, "lost the once-only lease"),
            _ => {}
        }
        held
    }

    /// Renews the lease until `shutdown` completes, then gives it up so
    /// another control plane takes over at once.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn EventStore>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut shutdown => break,
            }
            self.renew(&*store).await;
        }
        let held = self.held();
        self.set(None);
        if held && let Err(e) = store.release_lease(LEASE, &self.holder).await {
            tracing::warn!(error = %e, "cannot release the once-only lease; another control plane takes it once it expires");
        }
    }
}

/// How long a reactor instance's hold on its feed lasts unless renewed
/// (the feed renews it every second while it streams).
pub const FEED_LEASE_TTL: Duration = Duration::from_secs(5);

/// One reactor instance's hold on its principal's feed (ADR 0021): with
/// two processes of one reactor (same identity, token and stores), one
/// holds the feed and the other waits as a standby. Released when dropped
/// (its feed ended: the reactor stopped, crashed or disconnected).
pub struct FeedLease {
    store: Arc<dyn EventStore>,
    name: String,
    holder: String,
}

impl FeedLease {
    /// Takes the feed of reactor principal `reactor` for `instance`;
    /// `None` while another instance holds it.
    pub async fn take(
        store: Arc<dyn EventStore>,
        reactor: &str,
        instance: &str,
    ) -> Result<Option<FeedLease>, sealplane_event_store::StoreError> {
        let lease = FeedLease {
            name: format!("reactor-feed/{reactor}"),
            holder: instance.to_owned(),
            store,
        };
        let held = lease
            .store
            .acquire_lease(&lease.name, &lease.holder, FEED_LEASE_TTL)
            .await?;
        Ok(held.then_some(lease))
    }

    /// Renews it; whether this instance still holds it.
    pub async fn renew(&self) -> bool {
        match self
            .store
            .acquire_lease(&self.name, &self.holder, FEED_LEASE_TTL)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(lease = %self.name, error = %e, "cannot renew a reactor's feed lease");
                false
            }
        }
    }
}

impl Drop for FeedLease {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // it expires by itself
        };
        let (store, name, holder) = (
            self.store.clone(),
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.holder),
        );
        runtime.spawn(async move {
            if let Err(e) = store.release_lease(&name, &holder).await {
                tracing::warn!(lease = %name, error = %e, "cannot release a reactor's feed lease; it expires by itself");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealplane_event_store::MemoryStore;

    #[tokio::test]
    async fn one_reactor_instance_holds_the_feed_and_a_standby_takes_it_once_dropped() {
        // Given two instances of reactor `r` on one store
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        // When the first takes the feed, the second is a standby
        let active = FeedLease::take(store.clone(), "r", "one").await.unwrap();
        let active = active.expect("the first instance takes the feed");
        assert!(
            FeedLease::take(store.clone(), "r", "two")
                .await
                .unwrap()
                .is_none()
        );
        assert!(active.renew().await, "the holder renews");
        // Another reactor principal has a feed of its own
        assert!(
            FeedLease::take(store.clone(), "other", "two")
                .await
                .unwrap()
                .is_some()
        );
        // When the active one's feed ends, the standby takes over
        drop(active);
        let mut taken = None;
        for _ in 0..50 {
            taken = FeedLease::take(store.clone(), "r", "two").await.unwrap();
            if taken.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(taken.is_some(), "the standby took the feed");
    }

    #[tokio::test]
    async fn one_of_two_holds_the_lease_and_the_other_takes_it_when_released() {
        // Given two control planes on one store
        let store = MemoryStore::new();
        let (a, b) = (Arc::new(OnceOnly::default()), OnceOnly::default());
        assert_ne!(a.holder(), b.holder());
        // When both ask, the first holds it and the second does not
        assert!(a.renew(&store).await);
        assert!(!b.renew(&store).await);
        assert!(a.held() && !b.held());
        // When the first shuts down, it releases the lease
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(a.clone().run(Arc::new(store.clone()), async {
            let _ = stopped.await;
        }));
        stop.send(()).unwrap();
        running.await.unwrap();
        // Then it no longer counts it as held, and the second takes it
        assert!(!a.held());
        assert!(b.renew(&store).await);
    }
}

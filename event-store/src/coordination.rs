//! Coordination between the processes that share one store: leases for
//! work that must happen once (ADR 0020), and exclusive sections for
//! decisions that must take turns across processes.
//!
//! A backend only one process can open (the embedded store holds a lock
//! file; the memory store lives in one process) coordinates within that
//! process with [`LocalCoordination`]; a shared database does it in the
//! database, so every process sees the same holder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A store-wide exclusive section, held until dropped.
pub struct Exclusive {
    _held: Box<dyn Send + Sync>,
}

impl Exclusive {
    /// A section held as long as `held` lives.
    pub fn new(held: impl Send + Sync + 'static) -> Self {
        Exclusive {
            _held: Box::new(held),
        }
    }
}

impl std::fmt::Debug for Exclusive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exclusive")
    }
}

/// Leases and exclusive sections within one process.
#[derive(Default)]
pub struct LocalCoordination {
    leases: Mutex<HashMap<String, (String, Instant)>>,
    sections: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl LocalCoordination {
    /// Takes or renews lease `name` for `holder` until `ttl` from now:
    /// `true` when `holder` holds it now.
    pub fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match leases.get(name) {
            Some((current, until)) if current != holder && *until > now => false,
            _ => {
                leases.insert(name.to_owned(), (holder.to_owned(), now + ttl));
                true
            }
        }
    }

    /// Ends lease `name` if `holder` holds it.
    pub fn release(&self, name: &str, holder: &str) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        if leases.get(name).is_some_and(|(h, _)| h == holder) {
            leases.remove(name);
        }
    }

    /// Waits for section `name`.
    pub async fn exclusive(&self, name: &str) -> Exclusive {
        let section = {
            let mut sections = self.sections.lock().unwrap_or_else(|p| p.into_inner());
            sections.entry(name.to_owned()).or_default().clone()
        };
        Exclusive::new(section.lock_owned().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_has_one_holder_until_it_expires_or_is_released() {
        let local = LocalCoordination::default();
        let ttl = Duration::from_millis(50);
        assert!(local.acquire("sweep", "a", ttl), "a free lease is taken");
        assert!(!local.acquire("sweep", "b", ttl), "a held lease is not");
        assert!(local.acquire("sweep", "a", ttl), "its holder renews it");
        assert!(local.acquire("other", "b", ttl), "leases are by name");
        std::thread::sleep(Duration::from_millis(60));
        assert!(local.acquire("sweep", "b", ttl), "an expired lease moves");
        assert!(!local.acquire("sweep", "a", ttl), "its old holder lost it");
        local.release("sweep", "a");
        assert!(
            !local.acquire("sweep", "a", ttl),
            "only the holder releases"
        );
        local.release("sweep", "b");
        assert!(local.acquire("sweep", "a", ttl), "a released lease is free");
    }

    #[tokio::test]
    async fn an_exclusive_section_admits_one_at_a_time() {
        let local = Arc::new(LocalCoordination::default());
        let first = local.exclusive("verify").await;
        let waiting = tokio::spawn({
            let local = local.clone();
            async move { local.exclusive("verify").await }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiting.is_finished(), "the second waits");
        let _other = local.exclusive("another").await;
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("admitted once the first left")
            .unwrap();
    }
}

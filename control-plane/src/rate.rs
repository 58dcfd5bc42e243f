//! A sliding-minute rate limit per key (principal, peer address).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Keys tracked before idle ones are dropped (then twice what is left).
const FIRST_PRUNE: usize = 1024;

/// Events per key in the last minute. Keys with nothing in the last
/// minute are dropped as the map grows, so many keys used once (peer
/// addresses, say) do not pile up.
pub struct PerMinute<K> {
    inner: Mutex<Recent<K>>,
}

struct Recent<K> {
    by_key: HashMap<K, VecDeque<Instant>>,
    prune_at: usize,
}

impl<K> Default for PerMinute<K> {
    fn default() -> Self {
        PerMinute {
            inner: Mutex::new(Recent {
                by_key: HashMap::new(),
                prune_at: FIRST_PRUNE,
            }),
        }
    }
}

impl<K: Hash + Eq> PerMinute<K> {
    /// Counts one more event of `key` in the sliding minute, unless
    /// `limit` are there already.
    pub fn allow(&self, key: K, limit: u64) -> bool {
        self.allow_at(key, limit, Instant::now())
    }

    fn allow_at(&self, key: K, limit: u64, now: Instant) -> bool {
        let mut recent = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if recent.by_key.len() >= recent.prune_at {
            recent.by_key.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) <= WINDOW)
            });
            recent.prune_at = FIRST_PRUNE.max(2 * recent.by_key.len());
        }
        let times = recent.by_key.entry(key).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            times.pop_front();
        }
        if times.len() as u64 >= limit {
            return false;
        }
        times.push_back(now);
        true
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_limit_per_minute_and_again_after_it() {
        // Given a limit of 2 a minute
        let limit = PerMinute::default();
        let t0 = Instant::now();
        // When one key asks three times at once, then a minute later
        let at = |secs| t0 + Duration::from_secs(secs);
        let answers = [
            limit.allow_at("a", 2, at(0)),
            limit.allow_at("a", 2, at(0)),
            limit.allow_at("a", 2, at(0)),
            limit.allow_at("b", 2, at(0)),
            limit.allow_at("a", 2, at(61)),
        ];
        // Then the third is refused, another key is not, the next minute is fresh
        assert_eq!(answers, [true, true, false, true, true]);
    }

    #[test]
    fn keys_idle_for_a_minute_do_not_pile_up() {
        // Given many keys each used once
        let limit = PerMinute::default();
        let t0 = Instant::now();
        for i in 0..FIRST_PRUNE {
            assert!(limit.allow_at(i, 1, t0));
        }
        // When more arrive after a minute
        let later = t0 + WINDOW + Duration::from_secs(1);
        for i in FIRST_PRUNE..FIRST_PRUNE + 10 {
            assert!(limit.allow_at(i, 1, later));
        }
        // Then the idle ones are gone, and a key still in its minute is kept
        assert_eq!(limit.keys(), 10);
        assert!(!limit.allow_at(FIRST_PRUNE, 1, later), "still limited");
    }
}

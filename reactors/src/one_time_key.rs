//! One-time X25519 keys for uploads (SPEC §1.5, §3 steps 2 and 5).
//!
//! Each upload request gets a fresh `crypto_box` key pair. The secret half
//! lives only in this in-memory store, is handed out exactly once, and is
//! dropped (zeroized) after use or on expiry. Nothing here is ever persisted:
//! a restarted reactor has lost every key, by design, so the ciphertext left
//! in the event log can no longer be opened by anyone (crypto-shredding).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Duration, Utc};
use crypto_box::{PublicKey, SecretKey};
use rand_core::OsRng;
use uuid::Uuid;

/// How long a used or expired request id is remembered after its expiry.
///
/// With at-least-once delivery the same event can arrive again; the
/// tombstone lets a late duplicate get `Used`/`Expired` (and a re-issue get
/// the same public key) instead of silently minting a second key.
pub const TOMBSTONE_RETENTION: Duration = Duration::hours(1);

/// Why a one-time key could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Never issued here, or issued before this reactor restarted.
    #[error("no one-time key for this request (never issued, or the reactor restarted)")]
    Unknown,
    /// The key was already used for a payload.
    #[error("the one-time key for this request was already used")]
    Used,
    /// The key expired before it was used and has been destroyed.
    #[error("the one-time key for this request expired at {expires_at}")]
    Expired {
        /// When the key expired.
        expires_at: DateTime<Utc>,
    },
}

/// The secret half of a one-time key, handed out once by [`OneTimeKeys::take`].
pub struct OneTimeKey {
    // Boxed so the key material stays at one heap address: moving the
    // `OneTimeKey` (or rehashing the map) moves a pointer, not a copy of
    // the key that would be left behind un-wiped.
    key: Box<SecretKey>,
}

impl OneTimeKey {
    /// The X25519 secret key, for `SecretKey::unseal`.
    pub fn secret_key(&self) -> &SecretKey {
        &self.key
    }

    fn generate() -> Self {
        Self {
            key: Box::new(SecretKey::generate(&mut OsRng)),
        }
    }
}

impl Drop for OneTimeKey {
    fn drop(&mut self) {
        // crypto_box 0.9.1's `SecretKey` is not `ZeroizeOnDrop`: its `Drop`
        // zeroizes the clamped `scalar` but not the raw `bytes` field, which
        // is private, so it cannot be zeroized from here without `unsafe`.
        // Overwrite the whole key in place with the all-zero key instead:
        // the assignment runs the old key's `Drop` (wiping the scalar) and
        // writes zeros over both fields at the same heap address. The
        // `black_box` read keeps the compiler from eliding those stores as
        // dead before the box is freed.
        *self.key = SecretKey::from_bytes([0u8; 32]);
        std::hint::black_box(&*self.key);
    }
}

impl fmt::Debug for OneTimeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeKey")
            .field("public_key", &self.key.public_key().as_bytes())
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

enum Slot {
    Live {
        key: OneTimeKey,
        public_key: PublicKey,
        expires_at: DateTime<Utc>,
    },
    Used {
        public_key: PublicKey,
        expires_at: DateTime<Utc>,
    },
    Expired {
        public_key: PublicKey,
        expires_at: DateTime<Utc>,
    },
}

impl Slot {
    fn public_key(&self) -> &PublicKey {
        match self {
            Slot::Live { public_key, .. }
            | Slot::Used { public_key, .. }
            | Slot::Expired { public_key, .. } => public_key,
        }
    }
}

/// In-memory store of one-time keys by request id; shareable across tasks.
#[derive(Default)]
pub struct OneTimeKeys {
    slots: Mutex<HashMap<Uuid, Slot>>,
}

impl fmt::Debug for OneTimeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimeKeys")
            .field("live", &self.len())
            .finish_non_exhaustive()
    }
}

impl OneTimeKeys {
    /// An empty store (what a freshly started reactor has).
    pub fn new() -> Self {
        Self::default()
    }

    /// Issues the key for `request_id`, or returns the one already issued for it.
    ///
    /// Idempotent because events are delivered at least once: a duplicate
    /// `SecretUploadKeyRequested` must not replace a key whose public half
    /// was already offered. While a tombstone is retained this also holds
    /// after the key was used or expired (the secret half stays gone).
    pub fn issue(&self, request_id: Uuid, expires_at: DateTime<Utc>) -> PublicKey {
        let mut slots = self.lock();
        if let Some(slot) = slots.get(&request_id) {
            return slot.public_key().clone();
        }
        let key = OneTimeKey::generate();
        let public_key = key.secret_key().public_key();
        slots.insert(
            request_id,
            Slot::Live {
                key,
                public_key: public_key.clone(),
                expires_at,
            },
        );
        public_key
    }

    /// Removes and returns the key for `request_id`; succeeds at most once.
    pub fn take(&self, request_id: Uuid, now: DateTime<Utc>) -> Result<OneTimeKey, KeyError> {
        let mut slots = self.lock();
        let slot = slots.remove(&request_id).ok_or(KeyError::Unknown)?;
        let (tombstone, result) = match slot {
            Slot::Live {
                key,
                public_key,
                expires_at,
            } => {
                if now >= expires_at {
                    // Dropping `key` here zeroizes it before we answer.
                    drop(key);
                    (
                        Slot::Expired {
                            public_key,
                            expires_at,
                        },
                        Err(KeyError::Expired { expires_at }),
                    )
                } else {
                    (
                        Slot::Used {
                            public_key,
                            expires_at,
                        },
                        Ok(key),
                    )
                }
            }
            Slot::Used { .. } => (slot, Err(KeyError::Used)),
            Slot::Expired { expires_at, .. } => (slot, Err(KeyError::Expired { expires_at })),
        };
        slots.insert(request_id, tombstone);
        result
    }

    /// Destroys every expired live key and returns their request ids.
    ///
    /// The reactor reports `SecretUploadKeyExpired` for each returned id.
    /// Keys already refused by [`take`](Self::take) as expired are not
    /// returned again. Tombstones older than [`TOMBSTONE_RETENTION`] past
    /// their expiry are forgotten here too, so memory stays bounded.
    pub fn expire(&self, now: DateTime<Utc>) -> Vec<Uuid> {
        let mut slots = self.lock();
        let mut expired = Vec::new();
        slots.retain(|id, slot| match slot {
            Slot::Live { expires_at, .. } => {
                let expires_at = *expires_at;
                if now < expires_at {
                    return true;
                }
                expired.push(*id);
                // Replacing the `Live` slot drops, and so zeroizes, its key.
                *slot = Slot::Expired {
                    public_key: slot.public_key().clone(),
                    expires_at,
                };
                now < expires_at + TOMBSTONE_RETENTION
            }
            Slot::Used { expires_at, .. } | Slot::Expired { expires_at, .. } => {
                now < *expires_at + TOMBSTONE_RETENTION
            }
        });
        expired
    }

    /// Number of live (issued, not yet used or expired) keys.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| matches!(s, Slot::Live { .. }))
            .count()
    }

    /// Whether there is no live key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Slot>> {
        // Every critical section leaves the map consistent (single insert
        // or remove+insert without a panic point between that matters), so
        // a panic elsewhere while holding the lock must not take every
        // later upload down with it.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000, 0).unwrap()
    }

    fn ttl() -> Duration {
        Duration::minutes(5)
    }

    #[test]
    fn take_once_then_used() {
        let keys = OneTimeKeys::new();
        let id = Uuid::new_v4();
        let pk = keys.issue(id, t0() + ttl());
        assert_eq!(keys.len(), 1);
        let key = keys.take(id, t0()).unwrap();
        assert_eq!(key.secret_key().public_key(), pk);
        assert_eq!(keys.len(), 0);
        assert_eq!(keys.take(id, t0()).unwrap_err(), KeyError::Used);
    }

    #[test]
    fn take_after_expiry_is_expired_and_key_is_gone() {
        let keys = OneTimeKeys::new();
        let id = Uuid::new_v4();
        let expires_at = t0() + ttl();
        keys.issue(id, expires_at);
        assert_eq!(keys.len(), 1);
        // Exactly at expires_at counts as expired.
        assert_eq!(
            keys.take(id, expires_at).unwrap_err(),
            KeyError::Expired { expires_at }
        );
        assert_eq!(keys.len(), 0);
        assert!(keys.is_empty());
        assert_eq!(
            keys.take(id, t0()).unwrap_err(),
            KeyError::Expired { expires_at }
        );
        // Already reported through `take`; `expire` does not repeat it.
        assert!(keys.expire(expires_at).is_empty());
    }

    #[test]
    fn expire_removes_only_expired_and_returns_their_ids() {
        let keys = OneTimeKeys::new();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        keys.issue(a, t0() + Duration::minutes(1));
        keys.issue(b, t0() + Duration::minutes(10));
        keys.issue(c, t0() + Duration::minutes(2));
        let mut expired = keys.expire(t0() + Duration::minutes(2));
        expired.sort();
        let mut want = vec![a, c];
        want.sort();
        assert_eq!(expired, want);
        assert_eq!(keys.len(), 1);
        assert!(keys.take(b, t0()).is_ok());
        assert!(matches!(keys.take(a, t0()), Err(KeyError::Expired { .. })));
        // A second sweep reports nothing new.
        assert!(keys.expire(t0() + Duration::minutes(3)).is_empty());
    }

    #[test]
    fn tombstones_are_forgotten_after_retention() {
        let keys = OneTimeKeys::new();
        let id = Uuid::new_v4();
        let expires_at = t0() + ttl();
        keys.issue(id, expires_at);
        drop(keys.take(id, t0()).unwrap());
        keys.expire(expires_at + TOMBSTONE_RETENTION);
        assert_eq!(keys.take(id, t0()).unwrap_err(), KeyError::Unknown);
    }

    #[test]
    fn unknown_id() {
        let keys = OneTimeKeys::new();
        assert_eq!(
            keys.take(Uuid::new_v4(), t0()).unwrap_err(),
            KeyError::Unknown
        );
    }

    #[test]
    fn reissue_returns_same_public_key() {
        let keys = OneTimeKeys::new();
        let id = Uuid::new_v4();
        let pk = keys.issue(id, t0() + ttl());
        assert_eq!(keys.issue(id, t0() + ttl()), pk);
        assert_eq!(keys.len(), 1);
        // Also after use: the duplicate event must not mint a second key.
        drop(keys.take(id, t0()).unwrap());
        assert_eq!(keys.issue(id, t0() + ttl()), pk);
        assert_eq!(keys.len(), 0);
        assert_eq!(keys.take(id, t0()).unwrap_err(), KeyError::Used);
        // Different requests get different keys.
        assert_ne!(keys.issue(Uuid::new_v4(), t0() + ttl()), pk);
    }

    #[test]
    fn sealed_payload_opens_once_and_not_after_restart() {
        let keys = OneTimeKeys::new();
        let id = Uuid::new_v4();
        let pk = keys.issue(id, t0() + ttl());
        let ciphertext = pk.seal(&mut OsRng, b"x").unwrap();
        let key = keys.take(id, t0()).unwrap();
        assert_eq!(key.secret_key().unseal(&ciphertext).unwrap(), b"x");
        drop(key);

        let restarted = OneTimeKeys::new();
        assert_eq!(restarted.take(id, t0()).unwrap_err(), KeyError::Unknown);
    }

    #[test]
    fn debug_is_redacted() {
        let keys = OneTimeKeys::new();
        let id = Uuid::new_v4();
        keys.issue(id, t0() + ttl());
        let key = keys.take(id, t0()).unwrap();
        let secret = hex::encode(key.secret_key().to_bytes());
        let debug = format!("{key:?} {keys:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains(&secret));
    }

    #[test]
    fn shared_across_threads() {
        let keys = std::sync::Arc::new(OneTimeKeys::new());
        let id = Uuid::new_v4();
        keys.issue(id, t0() + ttl());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let keys = keys.clone();
                std::thread::spawn(move || keys.take(id, t0()).is_ok())
            })
            .collect();
        let wins = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(wins, 1);
    }
}

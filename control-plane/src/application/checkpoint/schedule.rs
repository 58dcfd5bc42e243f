//! When the checkpointer signs: pure logic, so the rule has its own
//! given/when/then tests.

use std::time::Duration;

/// At most every `every_events` events or `every` (whichever comes
/// first), and only when something was appended since the last
/// checkpoint was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Sign once this many events were appended since the last checkpoint.
    pub every_events: u64,
    /// Sign once this long passed since the last checkpoint, if any event
    /// was appended.
    pub every: Duration,
}

impl Schedule {
    /// `[audit]` as configured.
    pub fn of(config: &crate::config::AuditConfig) -> Schedule {
        Schedule {
            every_events: config.checkpoint_every_events.max(1),
            every: Duration::from_secs(config.checkpoint_every_seconds.max(1)),
        }
    }

    /// Whether to sign now, `appended` events (not counting the last
    /// checkpoint's own record) and `elapsed` after the last checkpoint.
    pub fn due(&self, appended: u64, elapsed: Duration) -> bool {
        appended > 0 && (appended >= self.every_events || elapsed >= self.every)
    }

    /// How often the checkpointer looks at the log's head: often enough
    /// to keep to `every`, at most once a second, at least every 50 ms.
    pub fn tick(&self) -> Duration {
        (self.every / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule {
            every_events: 1000,
            every: Duration::from_secs(60),
        }
    }

    #[test]
    fn nothing_new_is_never_due() {
        // Given no event since the last checkpoint, however long ago
        // Then no checkpoint is due (an idle log gets no new checkpoints)
        assert!(!schedule().due(0, Duration::from_secs(3600)));
    }

    #[test]
    fn enough_events_are_due_at_once() {
        // Given 1000 events appended a moment after the last checkpoint
        // Then one is due
        assert!(schedule().due(1000, Duration::ZERO));
        assert!(!schedule().due(999, Duration::from_secs(59)));
    }

    #[test]
    fn one_event_is_due_once_the_interval_passed() {
        // Given one event, when the interval has passed, then one is due
        assert!(schedule().due(1, Duration::from_secs(60)));
        assert!(!schedule().due(1, Duration::from_secs(59)));
    }

    #[test]
    fn the_tick_keeps_to_short_intervals_and_is_bounded() {
        let every = |s| Schedule {
            every_events: 1,
            every: Duration::from_secs(s),
        };
        assert_eq!(every(1).tick(), Duration::from_millis(250));
        assert_eq!(every(60).tick(), Duration::from_secs(1));
        assert_eq!(
            Schedule::of(&crate::config::AuditConfig::default()),
            schedule()
        );
    }
}

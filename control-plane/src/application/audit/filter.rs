//! Which events an audit read returns (ADR 0015): every filter given
//! must hold; `since` and `until` are inclusive, each a log position or a
//! time compared with the event's recorded time.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use sealplane_event_store::Position;
use serde::{Deserialize, Serialize};

use crate::domain::names::{SecretUri, Slug, StoreName};

use super::entry::{AUDIT_LOG_READ, AUDIT_RAW_READ, AuditEntry};
use super::replay::AUDIT_REPLAYED;

/// Every event type the audit log knows, in the order of the domain.
pub const EVENT_TYPES: [&str; 31] = [
    "StoreCreated",
    "StoreCertified",
    "StoreEnabled",
    "StoreDisabled",
    "DefaultStoreSet",
    "StoreRemoved",
    "UserCreated",
    "GroupCreated",
    "MemberAdded",
    "MemberRemoved",
    "TokenIssued",
    "TokenRevoked",
    "UserRemoved",
    "SecretCreated",
    "SecretVersionAdded",
    "AccessGranted",
    "AccessRevoked",
    "SecretDeletionRequested",
    "SecretDeleted",
    "SecretUploadKeyRequested",
    "SecretUploadKeyProvided",
    "SecretUploadRequested",
    "SecretUploaded",
    "SecretVerified",
    "SecretUploadFailed",
    "SecretUploadKeyExpired",
    "AccessDenied",
    AUDIT_LOG_READ,
    AUDIT_RAW_READ,
    AUDIT_REPLAYED,
    sealplane_proto::log_checkpoint::LOG_CHECKPOINTED,
];

/// One end of a range of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogPoint {
    /// A log position.
    Position(u64),
    /// A time, compared with each event's recorded time.
    Time(DateTime<Utc>),
}

impl LogPoint {
    /// The point in words: `position 14` or an RFC 3339 time.
    pub fn summary(&self) -> String {
        match self {
            LogPoint::Position(p) => format!("position {p}"),
            LogPoint::Time(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

/// Why a filter was refused; each a sentence the caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// An event type this version does not record.
    #[error("there is no event type `{0}`; the audit log has {list}", list = EVENT_TYPES.join(", "))]
    UnknownType(String),
    /// `follow` with `until`.
    #[error("`follow` streams without end; it cannot be combined with `until`")]
    FollowUntil,
    /// `until` before `since`.
    #[error("`until` ({until}) is before `since` ({since}); nothing can match")]
    Reversed { since: String, until: String },
}

/// The filters of one audit read; `None` and empty do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// From here on (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<LogPoint>,
    /// Up to here (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<LogPoint>,
    /// Events this principal caused, or that happened on its behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Slug>,
    /// Events about this secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretUri>,
    /// Events about this store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreName>,
    /// Events of these types.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub types: BTreeSet<String>,
    /// Keep streaming live events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow: bool,
}

impl AuditFilter {
    /// Checks the filters that cannot be told apart by their types alone.
    pub fn checked(self) -> Result<Self, FilterError> {
        if let Some(unknown) = self
            .types
            .iter()
            .find(|t| !EVENT_TYPES.contains(&t.as_str()))
        {
            return Err(FilterError::UnknownType(unknown.clone()));
        }
        if self.follow && self.until.is_some() {
            return Err(FilterError::FollowUntil);
        }
        let reversed = match (self.since, self.until) {
            (Some(LogPoint::Position(a)), Some(LogPoint::Position(b))) => a > b,
            (Some(LogPoint::Time(a)), Some(LogPoint::Time(b))) => a > b,
            _ => false,
        };
        if let (true, Some(since), Some(until)) = (reversed, self.since, self.until) {
            return Err(FilterError::Reversed {
                since: since.summary(),
                until: until.summary(),
            });
        }
        Ok(self)
    }

    /// The first position worth reading.
    pub fn first_position(&self) -> Position {
        match self.since {
            Some(LogPoint::Position(p)) => Position(p.max(1)),
            _ => Position::START,
        }
    }

    /// The last position worth reading, when `until` is one.
    pub fn last_position(&self) -> Option<Position> {
        match self.until {
            Some(LogPoint::Position(p)) => Some(Position(p)),
            _ => None,
        }
    }

    /// Whether `entry` passes every filter.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        let within = |point: &Option<LogPoint>, after: bool| match point {
            None => true,
            Some(LogPoint::Position(p)) => {
                if after {
                    entry.position >= *p
                } else {
                    entry.position <= *p
                }
            }
            // An event without a readable time is outside every time range.
            Some(LogPoint::Time(t)) => entry
                .time
                .is_some_and(|at| if after { at >= *t } else { at <= *t }),
        };
        within(&self.since, true)
            && within(&self.until, false)
            && self
                .actor
                .as_ref()
                .is_none_or(|a| entry.actor == a.as_str() || entry.on_behalf_of.as_ref() == Some(a))
            && self
                .secret
                .as_ref()
                .is_none_or(|s| entry.secret.as_ref() == Some(s))
            && self
                .store
                .as_ref()
                .is_none_or(|s| entry.store.as_ref() == Some(s))
            && (self.types.is_empty() || self.types.contains(&entry.event_type))
    }

    /// The filters in words, for the `AuditLogRead` line.
    pub fn summary(&self) -> String {
        let mut parts = vec![];
        if let Some(p) = &self.since {
            parts.push(format!("since {}", p.summary()));
        }
        if let Some(p) = &self.until {
            parts.push(format!("until {}", p.summary()));
        }
        if let Some(a) = &self.actor {
            parts.push(format!("actor {a}"));
        }
        if let Some(s) = &self.secret {
            parts.push(format!("secret {s}"));
        }
        if let Some(s) = &self.store {
            parts.push(format!("store {s}"));
        }
        if !self.types.is_empty() {
            let types: Vec<&str> = self.types.iter().map(String::as_str).collect();
            parts.push(format!("types {}", types.join(", ")));
        }
        if self.follow {
            parts.push("following".to_owned());
        }
        if parts.is_empty() {
            "every event".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        let uri = SecretUri::parse("local://alice/db").unwrap();
        AuditEntry {
            position: 10,
            time: Some("2026-12-01T10:00:00Z".parse().unwrap()),
            actor: "reactor-dev".into(),
            on_behalf_of: Some(Slug::parse("alice").unwrap()),
            event_type: "SecretVersionAdded".into(),
            target: uri.to_string(),
            store: Some(uri.store.clone()),
            secret: Some(uri),
            ..AuditEntry::default()
        }
    }

    fn time(t: &str) -> LogPoint {
        LogPoint::Time(t.parse().unwrap())
    }

    #[test]
    fn no_filter_matches_everything() {
        assert!(AuditFilter::default().matches(&entry()));
        assert!(AuditFilter::default().matches(&AuditEntry::default()));
    }

    #[test]
    fn position_and_time_bounds_are_inclusive() {
        let f = |since, until| AuditFilter {
            since,
            until,
            ..AuditFilter::default()
        };
        let e = entry();
        assert!(f(Some(LogPoint::Position(10)), Some(LogPoint::Position(10))).matches(&e));
        assert!(!f(Some(LogPoint::Position(11)), None).matches(&e));
        assert!(!f(None, Some(LogPoint::Position(9))).matches(&e));
        assert!(f(Some(time("2026-12-01T10:00:00Z")), None).matches(&e));
        assert!(!f(Some(time("2026-12-01T10:00:01Z")), None).matches(&e));
        assert!(f(None, Some(time("2026-12-01T10:00:00Z"))).matches(&e));
        assert!(!f(None, Some(time("2026-12-01T09:59:59Z"))).matches(&e));
        // Mixed: a position since, a time until.
        assert!(
            f(
                Some(LogPoint::Position(5)),
                Some(time("2026-12-02T00:00:00Z"))
            )
            .matches(&e)
        );
        // No readable time: outside every time range, inside position ranges.
        let timeless = AuditEntry {
            time: None,
            ..entry()
        };
        assert!(!f(Some(time("2000-01-01T00:00:00Z")), None).matches(&timeless));
        assert!(f(Some(LogPoint::Position(1)), None).matches(&timeless));
    }

    #[test]
    fn actor_matches_the_actor_or_whom_it_acted_for() {
        let f = |slug: &str| AuditFilter {
            actor: Some(Slug::parse(slug).unwrap()),
            ..AuditFilter::default()
        };
        assert!(f("reactor-dev").matches(&entry()));
        assert!(f("alice").matches(&entry()));
        assert!(!f("bob").matches(&entry()));
    }

    #[test]
    fn secret_store_and_types_must_all_hold() {
        let secret = |s: &str| AuditFilter {
            secret: Some(SecretUri::parse(s).unwrap()),
            ..AuditFilter::default()
        };
        assert!(secret("local://alice/db").matches(&entry()));
        assert!(!secret("local://alice/other").matches(&entry()));
        assert!(!secret("other://alice/db").matches(&entry()));
        let store = |s: &str| AuditFilter {
            store: Some(StoreName::parse(s).unwrap()),
            ..AuditFilter::default()
        };
        assert!(store("local").matches(&entry()));
        assert!(!store("vault-prod").matches(&entry()));
        let types = |t: &[&str]| AuditFilter {
            types: t.iter().map(|t| t.to_string()).collect(),
            ..AuditFilter::default()
        };
        assert!(types(&["AccessDenied", "SecretVersionAdded"]).matches(&entry()));
        assert!(!types(&["AccessDenied"]).matches(&entry()));
        let both = AuditFilter {
            store: Some(StoreName::parse("local").unwrap()),
            types: ["AccessDenied".to_owned()].into(),
            ..AuditFilter::default()
        };
        assert!(!both.matches(&entry()), "AND, not OR");
        // An event about no store never matches a store filter.
        assert!(!store("local").matches(&AuditEntry::default()));
    }

    #[test]
    fn bad_combinations_are_refused_with_a_sentence() {
        let unknown = AuditFilter {
            types: ["SecretPut".to_owned()].into(),
            ..AuditFilter::default()
        };
        let e = unknown.checked().unwrap_err();
        assert!(e.to_string().contains("no event type `SecretPut`"), "{e}");
        assert!(e.to_string().contains("SecretVersionAdded"), "{e}");
        let follow_until = AuditFilter {
            follow: true,
            until: Some(LogPoint::Position(3)),
            ..AuditFilter::default()
        };
        assert_eq!(follow_until.checked(), Err(FilterError::FollowUntil));
        let reversed = AuditFilter {
            since: Some(LogPoint::Position(9)),
            until: Some(LogPoint::Position(3)),
            ..AuditFilter::default()
        };
        assert!(matches!(
            reversed.checked(),
            Err(FilterError::Reversed { .. })
        ));
        let fine = AuditFilter {
            since: Some(LogPoint::Position(0)),
            ..AuditFilter::default()
        };
        assert_eq!(
            fine.clone().checked().unwrap().first_position(),
            Position(1)
        );
    }

    #[test]
    fn the_summary_names_every_filter_and_the_json_only_those_given() {
        let f = AuditFilter {
            since: Some(LogPoint::Position(5)),
            actor: Some(Slug::parse("alice").unwrap()),
            types: ["AccessDenied".to_owned()].into(),
            follow: true,
            ..AuditFilter::default()
        };
        assert_eq!(
            f.summary(),
            "since position 5; actor alice; types AccessDenied; following"
        );
        assert_eq!(AuditFilter::default().summary(), "every event");
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"since":{"position":5},"actor":"alice","types":["AccessDenied"],"follow":true}"#
        );
        assert_eq!(
            serde_json::to_string(&AuditFilter::default()).unwrap(),
            "{}"
        );
    }
}

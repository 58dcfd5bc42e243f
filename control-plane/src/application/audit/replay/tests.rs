use chrono::Duration;
use sealplane_event_store::{EventMetadata, EventType, ExpectedVersion, MemoryStore, NewEvent};

use super::*;
use crate::domain::DomainEvent;
use crate::domain::principal::PrincipalEvent;
use crate::domain::testing::t0;
use crate::projection::as_of;
use crate::streams;

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

/// Appends `event` to `slug`'s stream, recorded at `t0 + minutes`.
async fn append(store: &MemoryStore, of: &str, event: PrincipalEvent, minutes: i64) -> Position {
    let metadata = EventMetadata {
        timestamp: t0() + Duration::minutes(minutes),
        ..EventMetadata::new("admin")
    };
    let new = NewEvent::new(
        EventType::parse(event.event_type()).unwrap(),
        1,
        &event,
        &metadata,
    )
    .unwrap();
    store
        .append(
            &streams::principal(&slug(of)),
            ExpectedVersion::Any,
            vec![new],
        )
        .await
        .unwrap()
        .last_position
}

fn user(s: &str) -> PrincipalEvent {
    PrincipalEvent::UserCreated {
        slug: slug(s),
        role: Role::User,
        stores: vec![],
    }
}

fn at(minutes: i64) -> LogPoint {
    LogPoint::Time(t0() + Duration::minutes(minutes))
}

/// Which users a model knows, and the position it was rendered at.
fn users(model: &ReadModel, resolved: Resolved) -> (u64, Vec<String>) {
    let slugs = model.principals.keys().map(Slug::to_string).collect();
    (resolved.position.0, slugs)
}

/// The position each point resolves to over events recorded at these
/// minutes (positions 1, 2, ...).
fn resolve(point: LogPoint, minutes: &[i64]) -> u64 {
    let mut resolver = PointResolver::new(point);
    let mut last = 0;
    for (i, m) in minutes.iter().enumerate() {
        let position = Position(i as u64 + 1);
        if !resolver.admits(position, Some(t0() + Duration::minutes(*m))) {
            break;
        }
        last = position.0;
    }
    last
}

#[test]
fn a_time_resolves_to_the_last_event_at_or_before_it() {
    // Given events recorded at minutes 0, 10, 20,
    let log = [0, 10, 20];
    // when resolving times, then each is the last event at or before it.
    assert_eq!(resolve(at(15), &log), 2);
    assert_eq!(resolve(at(10), &log), 2, "inclusive");
    assert_eq!(resolve(at(9), &log), 1);
    assert_eq!(resolve(at(60), &log), 3, "after the head: the head");
}

#[test]
fn a_time_ends_the_prefix_at_the_first_later_event_even_when_clocks_disagree() {
    // Given a log whose third event was stamped earlier than the second
    // (another replica's clock),
    let log = [0, 20, 10];
    // when resolving minute 15, then the prefix stops before minute 20:
    // a state the live model really passed through.
    assert_eq!(resolve(at(15), &log), 1);
}

#[test]
fn a_position_resolves_to_itself() {
    assert_eq!(resolve(LogPoint::Position(2), &[0, 10, 20]), 2);
    assert_eq!(resolve(LogPoint::Position(3), &[0, 10, 20]), 3);
}

#[test]
fn an_event_without_a_readable_time_stays_in_the_prefix() {
    let mut resolver = PointResolver::new(at(5));
    assert!(resolver.admits(Position(1), Some(t0())));
    assert!(resolver.admits(Position(2), None));
    assert!(!resolver.admits(Position(3), Some(t0() + Duration::minutes(6))));
    assert!(resolver.is_resolved());
    assert!(
        !resolver.admits(Position(4), Some(t0())),
        "resolved for good"
    );
}

#[test]
fn points_outside_the_log_are_refused_with_a_sentence() {
    let head = Position(7);
    let first = Some(t0());
    let now = t0() + Duration::hours(1);
    assert_eq!(
        check_point(&LogPoint::Position(0), head, first, now),
        Err(PointError::BeforeStart)
    );
    let beyond = check_point(&LogPoint::Position(8), head, first, now).unwrap_err();
    assert_eq!(beyond, PointError::BeyondHead { at: 8, head: 7 });
    assert!(
        beyond
            .to_string()
            .contains("beyond the log's head (position 7)")
    );
    assert!(matches!(
        check_point(&at(-1), head, first, now),
        Err(PointError::BeforeFirstEvent { .. })
    ));
    assert!(matches!(
        check_point(&at(61), head, first, now),
        Err(PointError::Future { .. })
    ));
    assert_eq!(
        check_point(&LogPoint::Position(1), Position(0), None, now),
        Err(PointError::EmptyLog)
    );
    for fine in [LogPoint::Position(1), LogPoint::Position(7), at(0), at(60)] {
        assert_eq!(check_point(&fine, head, first, now), Ok(()), "{fine:?}");
    }
}

#[tokio::test]
async fn one_pass_renders_each_point_with_the_live_projection_as_it_was_then() {
    // Given alice, bob and carol created at minutes 0, 10 and 20,
    let store = MemoryStore::new();
    append(&store, "alice", user("alice"), 0).await;
    let second = append(&store, "bob", user("bob"), 10).await;
    let head = append(&store, "carol", user("carol"), 20).await;

    // when replaying position 2 and minute 25 in one pass,
    let states = fold(&store, &[LogPoint::Position(2), at(25)], head, users)
        .await
        .unwrap();

    // then each equals the read model rebuilt up to its point.
    assert_eq!(states[0], (2, vec!["alice".into(), "bob".into()]));
    assert_eq!(
        states[1],
        (3, vec!["alice".into(), "bob".into(), "carol".into()])
    );
    let then = as_of(&store, ReadModel::default(), second).await.unwrap();
    assert_eq!(
        users(
            &then,
            Resolved {
                position: second,
                time: None
            }
        ),
        states[0]
    );
}

#[tokio::test]
async fn the_fold_stops_at_the_last_position_and_returns_states_in_the_order_asked() {
    // Given four events,
    let store = MemoryStore::new();
    append(&store, "alice", user("alice"), 0).await;
    append(&store, "bob", user("bob"), 10).await;
    append(&store, "carol", user("carol"), 20).await;
    append(&store, "dave", user("dave"), 30).await;

    // when the later point comes first and the fold may read up to 3,
    let states = fold(&store, &[at(60), LogPoint::Position(1)], Position(3), users)
        .await
        .unwrap();

    // then the later point is the last allowed event, the earlier one
    // its own, each in the order asked.
    assert_eq!(states[0].0, 3);
    assert_eq!(states[1], (1, vec!["alice".into()]));
}

#[test]
fn a_replay_record_says_which_points() {
    let record = AuditReplayed {
        reader: slug("carol"),
        role: Role::Auditor,
        at: LogPoint::Position(14),
        from: Some(LogPoint::Position(3)),
    };
    assert_eq!(record.summary(), "changes from position 3 to position 14");
    let single = AuditReplayed {
        from: None,
        ..record
    };
    assert_eq!(single.summary(), "at position 14");
}

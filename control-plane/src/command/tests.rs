//! The handler against the real embedded store, with a small aggregate
//! whose rules are easy to race on: seats that can be reserved once.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tempfile::TempDir;
use tokio::sync::Barrier;

use super::*;
use crate::domain::RefusalKind;
use crate::domain::testing::{actor, t0, user};
use crate::domain::{Actor, Role};
use sealplane_event_store::{
    Appended, Decorator, EmbeddedStore, MemoryStore, StreamAppend, check_parts,
};

#[derive(Clone, Debug, Default)]
struct Seats {
    taken: BTreeSet<u32>,
}

#[derive(Debug)]
struct Reserve(u32);

impl CommandArguments for Reserve {
    fn arguments(&self) -> serde_json::Value {
        serde_json::json!(["Reserve", self.0])
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum SeatEvent {
    SeatReserved { seat: u32, by: String },
}

impl DomainEvent for SeatEvent {
    fn event_type(&self) -> &'static str {
        "SeatReserved"
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
enum SeatRefusal {
    #[error("seat {0} is taken")]
    Taken(u32),
    #[error("auditors may not reserve seats")]
    Auditor,
}

impl Refusal for SeatRefusal {
    fn kind(&self) -> RefusalKind {
        match self {
            SeatRefusal::Taken(_) => RefusalKind::FailedPrecondition,
            SeatRefusal::Auditor => RefusalKind::Denied,
        }
    }
}

impl Aggregate for Seats {
    type Command = Reserve;
    type Event = SeatEvent;
    type Refusal = SeatRefusal;

    fn decide(
        &self,
        Reserve(seat): &Reserve,
        ctx: &Context,
    ) -> Result<Vec<SeatEvent>, SeatRefusal> {
        if ctx.actor.role == Role::Auditor {
            return Err(SeatRefusal::Auditor);
        }
        if self.taken.contains(seat) {
            return Err(SeatRefusal::Taken(*seat));
        }
        Ok(vec![SeatEvent::SeatReserved {
            seat: *seat,
            by: ctx.actor.slug.to_string(),
        }])
    }

    fn apply(&mut self, SeatEvent::SeatReserved { seat, .. }: &SeatEvent) {
        self.taken.insert(*seat);
    }
}

fn ctx(actor: Actor) -> Context {
    Context { actor, now: t0() }
}

fn seats() -> StreamId {
    StreamId::parse("seats-1").unwrap()
}

async fn embedded() -> (TempDir, CommandHandler) {
    let dir = TempDir::new().unwrap();
    let store = EmbeddedStore::open(dir.path().join("events.db")).unwrap();
    (dir, CommandHandler::new(Arc::new(store)))
}

#[tokio::test]
async fn a_command_appends_its_events_with_actor_and_causation() {
    let (_dir, handler) = embedded().await;
    let envelope = CommandEnvelope::new("Reserve");
    let done = handler
        .execute::<Seats>(&seats(), &Reserve(7), &ctx(user("alice", &[])), &envelope)
        .await
        .unwrap();
    assert_eq!(
        done,
        Executed {
            events: 1,
            version: Some(StreamVersion(0)),
            position: Some(Position(1)),
            replayed: false
        }
    );
    let stored = handler
        .store()
        .read_stream(&seats(), StreamVersion(0), 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type.as_str(), "SeatReserved");
    let meta = stored[0].metadata().unwrap();
    assert_eq!(meta.actor, "alice");
    assert_eq!(meta.causation_id, Some(envelope.command_id));
    assert_eq!(meta.correlation_id, envelope.correlation_id);
    assert_eq!(meta.timestamp, t0());
    let loaded = handler.load::<Seats>(&seats()).await.unwrap();
    assert_eq!(loaded.state.taken, BTreeSet::from([7]));
}

#[tokio::test]
async fn the_same_command_id_applies_once() {
    let (_dir, handler) = embedded().await;
    let envelope = CommandEnvelope::new("Reserve");
    let alice = ctx(user("alice", &[]));
    let first = handler
        .execute::<Seats>(&seats(), &Reserve(1), &alice, &envelope)
        .await
        .unwrap();
    // Another command in between, then the client retries the first one.
    handler
        .execute::<Seats>(
            &seats(),
            &Reserve(2),
            &alice,
            &CommandEnvelope::new("Reserve"),
        )
        .await
        .unwrap();
    let retry = handler
        .execute::<Seats>(&seats(), &Reserve(1), &alice, &envelope)
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(
        retry.position, first.position,
        "the retry reports the original write"
    );
    let stored = handler
        .store()
        .read_stream(&seats(), StreamVersion(0), 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2, "no double apply");
}

#[tokio::test]
async fn a_refusal_writes_nothing_to_the_target() {
    let (_dir, handler) = embedded().await;
    let alice = ctx(user("alice", &[]));
    handler
        .execute::<Seats>(
            &seats(),
            &Reserve(1),
            &alice,
            &CommandEnvelope::new("Reserve"),
        )
        .await
        .unwrap();
    let err = handler
        .execute::<Seats>(
            &seats(),
            &Reserve(1),
            &alice,
            &CommandEnvelope::new("Reserve"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Refused(SeatRefusal::Taken(1))),
        "{err}"
    );
    assert_eq!(
        handler.store().head().await.unwrap(),
        Position(1),
        "nothing recorded for a non-security refusal"
    );
}

#[tokio::test]
async fn a_denied_command_is_recorded_as_access_denied() {
    let (_dir, handler) = embedded().await;
    let auditor = ctx(actor("eve", Role::Auditor));
    let envelope = CommandEnvelope::new("ReserveSeat");
    let err = handler
        .execute::<Seats>(&seats(), &Reserve(3), &auditor, &envelope)
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Refused(SeatRefusal::Auditor)));
    assert!(
        handler
            .store()
            .read_stream(&seats(), StreamVersion(0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let denied = handler
        .store()
        .read_stream(
            &StreamId::parse(ACCESS_DENIED_STREAM).unwrap(),
            StreamVersion(0),
            10,
        )
        .await
        .unwrap();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].event_type.as_str(), "AccessDenied");
    let record: AccessDenied = denied[0].data.deserialize().unwrap();
    assert_eq!(
        record,
        AccessDenied {
            actor: "eve".into(),
            role: Role::Auditor,
            command: "ReserveSeat".into(),
            target: "seats-1".into(),
            reason: "auditors may not reserve seats".into(),
        }
    );
    assert_eq!(
        denied[0].metadata().unwrap().causation_id,
        Some(envelope.command_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_commands_on_one_aggregate_all_land_through_retries() {
    const RACERS: u32 = 16;
    let (_dir, handler) = embedded().await;
    let handler = handler.with_max_retries(RACERS as usize);
    let barrier = Arc::new(Barrier::new(RACERS as usize));
    let tasks: Vec<_> = (0..RACERS)
        .map(|seat| {
            let (handler, barrier) = (handler.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                reserve(&handler, &seats(), seat, "alice").await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let loaded = handler.load::<Seats>(&seats()).await.unwrap();
    assert_eq!(loaded.state.taken, (0..RACERS).collect());
    assert_eq!(loaded.version, Some(StreamVersion(RACERS as u64 - 1)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_for_one_seat_has_exactly_one_winner() {
    const RACERS: usize = 16;
    let (_dir, handler) = embedded().await;
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let (handler, barrier) = (handler.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let who = format!("user{i}");
                handler
                    .execute::<Seats>(
                        &seats(),
                        &Reserve(1),
                        &ctx(user(&who, &[])),
                        &CommandEnvelope::new("Reserve"),
                    )
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => winners += 1,
            Err(CommandError::Refused(SeatRefusal::Taken(1))) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(handler.store().head().await.unwrap(), Position(1));
}

/// A store where someone else always wins: every append conflicts.
#[derive(Clone)]
struct AlwaysBehind(MemoryStore);

#[async_trait::async_trait]
impl Decorator for AlwaysBehind {
    fn inner(&self) -> &dyn EventStore {
        &self.0
    }
    async fn append_many(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, AppendError> {
        check_parts(&parts)?;
        Err(sealplane_event_store::Conflict {
            stream: parts[0].stream.clone(),
            expected: parts[0].expected,
            actual: Some(StreamVersion(99)),
        }
        .into())
    }
}

#[tokio::test]
async fn a_command_that_keeps_losing_is_aborted_after_the_bound() {
    let handler =
        CommandHandler::new(Arc::new(AlwaysBehind(MemoryStore::new()))).with_max_retries(3);
    let err = reserve(&handler, &seats(), 1, "alice").await.unwrap_err();
    match &err {
        CommandError::Aborted { stream, attempts } => {
            assert_eq!(stream, &seats());
            assert_eq!(*attempts, 4, "one try and three retries");
        }
        other => panic!("expected Aborted, got {other}"),
    }
    assert!(
        err.to_string().contains("nothing was written, try again"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreadable_event_is_reported_with_its_position() {
    let store = MemoryStore::new();
    let bogus = NewEvent::from_json_text(
        EventType::parse("SeatReserved").unwrap(),
        1,
        r#"{"type":"SeatReserved","seat":"not a number","by":"x"}"#,
        &EventMetadata::new("x"),
    )
    .unwrap();
    store
        .append(&seats(), ExpectedVersion::NoStream, vec![bogus])
        .await
        .unwrap();
    let handler = CommandHandler::new(Arc::new(store));
    match handler.load::<Seats>(&seats()).await.unwrap_err() {
        CommandError::Unreadable { position, .. } => assert_eq!(position, Position(1)),
        other => panic!("expected Unreadable, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_aggregate_catches_up_with_another_processs_writes() {
    // Two handlers over one store: two control planes, each with its cache.
    let (_dir, a) = embedded().await;
    let b = CommandHandler::new(a.store().clone());
    reserve(&a, &seats(), 1, "alice").await.unwrap();
    reserve(&b, &seats(), 2, "alice").await.unwrap();
    // `a` decides on its cached state caught up from the log, not a stale copy.
    assert!(matches!(
        reserve(&a, &seats(), 2, "alice").await,
        Err(CommandError::Refused(SeatRefusal::Taken(2)))
    ));
    let done = reserve(&a, &seats(), 3, "alice").await.unwrap();
    assert_eq!(done.version, Some(StreamVersion(2)));
    // Racing across the two caches: the expected version still decides.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let h = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { reserve(&h, &seats(), 9, &format!("user{i}")).await })
        })
        .collect();
    let mut winners = 0;
    for t in racers {
        match t.await.unwrap() {
            Ok(_) => winners += 1,
            Err(CommandError::Refused(SeatRefusal::Taken(9))) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(winners, 1);
    let fresh = a.load::<Seats>(&seats()).await.unwrap();
    assert_eq!(fresh.state.taken, [1, 2, 3, 9].into_iter().collect());
}

/// The `AccessDenied` records in the log.
async fn denials(handler: &CommandHandler) -> Vec<AccessDenied> {
    handler
        .store()
        .read_stream(
            &StreamId::parse(ACCESS_DENIED_STREAM).unwrap(),
            StreamVersion(0),
            10,
        )
        .await
        .unwrap()
        .iter()
        .map(|e| e.data.deserialize().unwrap())
        .collect()
}

#[tokio::test]
async fn a_retry_later_by_the_same_principal_is_replayed() {
    let (_dir, handler) = embedded().await;
    let envelope = CommandEnvelope::new("Reserve");
    let first = handler
        .execute::<Seats>(&seats(), &Reserve(1), &ctx(user("alice", &[])), &envelope)
        .await
        .unwrap();
    // The time of the decision is not part of the command.
    let later = Context {
        actor: user("alice", &[]),
        now: t0() + chrono::TimeDelta::hours(1),
    };
    let retry = handler
        .execute::<Seats>(&seats(), &Reserve(1), &later, &envelope)
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.position, first.position);
    let stored = handler
        .store()
        .read_stream(&seats(), StreamVersion(0), 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    let fingerprint = stored[0].metadata().unwrap().command_fingerprint.unwrap();
    assert_eq!(fingerprint.len(), 64, "a SHA-256 in hex: {fingerprint}");
    assert!(denials(&handler).await.is_empty());
}

#[tokio::test]
async fn a_command_id_reused_by_another_principal_is_refused_and_recorded() {
    let (_dir, handler) = embedded().await;
    let envelope = CommandEnvelope::new("Reserve");
    handler
        .execute::<Seats>(&seats(), &Reserve(1), &ctx(user("alice", &[])), &envelope)
        .await
        .unwrap();
    // bob sends the very same command with alice's command id.
    let err = handler
        .execute::<Seats>(&seats(), &Reserve(1), &ctx(user("bob", &[])), &envelope)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Reused { command_id } if command_id == envelope.command_id),
        "{err}"
    );
    let message = err.to_string();
    assert_eq!(
        message,
        format!(
            "command id {} was already used for another command; use a fresh id for a new command",
            envelope.command_id
        )
    );
    assert_eq!(
        handler
            .store()
            .read_stream(&seats(), StreamVersion(0), 10)
            .await
            .unwrap()
            .len(),
        1,
        "nothing written to the target"
    );
    assert_eq!(
        denials(&handler).await,
        [AccessDenied {
            actor: "bob".into(),
            role: Role::User,
            command: "Reserve".into(),
            target: "seats-1".into(),
            reason: message,
        }]
    );
    // The refusal maps to a caller's mistake, with the sentence.
    let refused = crate::application::UseCaseError::from(err);
    assert_eq!(
        refused,
        crate::application::UseCaseError::refused(RefusalKind::Invalid, refused.to_string())
    );
}

#[tokio::test]
async fn a_command_id_reused_for_another_command_or_other_arguments_is_refused() {
    let (_dir, handler) = embedded().await;
    let alice = ctx(user("alice", &[]));
    let envelope = CommandEnvelope::new("Reserve");
    handler
        .execute::<Seats>(&seats(), &Reserve(1), &alice, &envelope)
        .await
        .unwrap();
    // Other arguments: seat 2 is free, yet this is not a retry.
    let err = handler
        .execute::<Seats>(&seats(), &Reserve(2), &alice, &envelope)
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Reused { .. }), "{err}");
    // Another command under the same id.
    let other = CommandEnvelope {
        name: "ReserveAgain",
        ..envelope.clone()
    };
    let err = handler
        .execute::<Seats>(&seats(), &Reserve(1), &alice, &other)
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Reused { .. }), "{err}");
    assert_eq!(handler.store().head().await.unwrap(), Position(3));
    let denied = denials(&handler).await;
    assert_eq!(denied.len(), 2);
    assert!(denied.iter().all(|d| d.actor == "alice"));
    // The original command is still a retry.
    let retry = handler
        .execute::<Seats>(&seats(), &Reserve(1), &alice, &envelope)
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(retry.position, Some(Position(1)));
}

#[tokio::test]
async fn the_same_id_on_another_stream_is_another_key() {
    // A use case may run one envelope on two streams (a put prepares the
    // secret, then records the request); each stream answers for itself.
    let (_dir, handler) = embedded().await;
    let alice = ctx(user("alice", &[]));
    let envelope = CommandEnvelope::new("Reserve");
    let other = StreamId::parse("seats-2").unwrap();
    for _ in 0..2 {
        handler
            .execute::<Seats>(&seats(), &Reserve(1), &alice, &envelope)
            .await
            .unwrap();
        handler
            .execute::<Seats>(&other, &Reserve(1), &alice, &envelope)
            .await
            .unwrap();
    }
    assert_eq!(handler.store().head().await.unwrap(), Position(2));
}

#[tokio::test]
async fn events_without_a_fingerprint_are_a_retry_only_for_their_actor() {
    // An event written before fingerprints existed: causation, no fingerprint.
    let store = MemoryStore::new();
    let command_id = uuid::Uuid::new_v4();
    let old = NewEvent::new(
        EventType::parse("SeatReserved").unwrap(),
        1,
        &SeatEvent::SeatReserved {
            seat: 1,
            by: "alice".into(),
        },
        &EventMetadata {
            causation_id: Some(command_id),
            ..EventMetadata::new("alice")
        },
    )
    .unwrap();
    store
        .append(&seats(), ExpectedVersion::NoStream, vec![old])
        .await
        .unwrap();
    let handler = CommandHandler::new(Arc::new(store));
    let envelope = CommandEnvelope {
        command_id,
        ..CommandEnvelope::new("Reserve")
    };
    let err = handler
        .execute::<Seats>(&seats(), &Reserve(5), &ctx(user("bob", &[])), &envelope)
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::Reused { .. }), "{err}");
    assert_eq!(denials(&handler).await.len(), 1);
    let retry = handler
        .execute::<Seats>(&seats(), &Reserve(1), &ctx(user("alice", &[])), &envelope)
        .await
        .unwrap();
    assert!(retry.replayed, "alice's own retry");
    assert_eq!(retry.position, Some(Position(1)));
    assert_eq!(
        handler
            .store()
            .read_stream(&seats(), StreamVersion(0), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

fn gallery() -> StreamId {
    StreamId::parse("seats-2").unwrap()
}

/// Reserves `seat` in the hall, then the same seat in the gallery, as one
/// write.
async fn reserve_both(
    handler: &CommandHandler,
    seat: u32,
    envelope: &CommandEnvelope,
) -> Result<Pair<BTreeSet<u32>>, PairError<SeatRefusal, SeatRefusal>> {
    handler
        .execute_pair::<Seats, Seats, _>(
            &ctx(user("alice", &[])),
            Step::new(&seats(), &Reserve(seat), envelope),
            (&gallery(), &CommandEnvelope::new("Reserve")),
            |hall| hall.taken.contains(&seat).then_some(Reserve(seat)),
            |hall, _| hall.taken.clone(),
        )
        .await
}

async fn taken(handler: &CommandHandler, stream: &StreamId) -> BTreeSet<u32> {
    handler.load::<Seats>(stream).await.unwrap().state.taken
}

/// `who` reserves `seat` on `stream`, with a command id of its own.
async fn reserve(
    handler: &CommandHandler,
    stream: &StreamId,
    seat: u32,
    who: &str,
) -> Result<Executed, CommandError<SeatRefusal>> {
    handler
        .execute::<Seats>(
            stream,
            &Reserve(seat),
            &ctx(user(who, &[])),
            &CommandEnvelope::new("Reserve"),
        )
        .await
}

#[tokio::test]
async fn a_pair_of_commands_is_one_write_to_both_streams() {
    // Given an empty store
    let (_dir, handler) = embedded().await;
    // When seat 4 is reserved in the hall and then the gallery
    let pair = reserve_both(&handler, 4, &CommandEnvelope::new("Reserve"))
        .await
        .unwrap();
    // Then both events are written, one after the other, and the hall's
    // state afterwards comes back
    assert_eq!(pair.first.position, Some(Position(1)));
    assert_eq!(pair.second.unwrap().position, Some(Position(2)));
    assert!(pair.observed.contains(&4));
    assert_eq!(taken(&handler, &gallery()).await, BTreeSet::from([4]));
    assert_eq!(handler.store().head().await.unwrap(), Position(2));
}

#[tokio::test]
async fn a_pair_whose_second_command_is_refused_writes_neither() {
    // Given seat 3 taken in the gallery
    let (_dir, handler) = embedded().await;
    let alice = ctx(user("alice", &[]));
    handler
        .execute::<Seats>(
            &gallery(),
            &Reserve(3),
            &alice,
            &CommandEnvelope::new("Reserve"),
        )
        .await
        .unwrap();
    // When seat 3 is reserved in both
    let refused = reserve_both(&handler, 3, &CommandEnvelope::new("Reserve")).await;
    // Then the gallery refuses, and the hall has not taken it either
    assert!(matches!(
        refused,
        Err(PairError::Second(CommandError::Refused(
            SeatRefusal::Taken(3)
        )))
    ));
    assert!(taken(&handler, &seats()).await.is_empty());
    assert_eq!(handler.store().head().await.unwrap(), Position(1));
}

#[tokio::test]
async fn a_retried_pair_whose_first_command_was_applied_writes_the_second() {
    // Given seat 5 reserved in the hall alone, by command E
    let (_dir, handler) = embedded().await;
    let envelope = CommandEnvelope::new("Reserve");
    handler
        .execute::<Seats>(&seats(), &Reserve(5), &ctx(user("alice", &[])), &envelope)
        .await
        .unwrap();
    // When the pair is sent with the same command E
    let pair = reserve_both(&handler, 5, &envelope).await.unwrap();
    // Then the hall answers it as a retry and the gallery takes the seat
    assert!(pair.first.replayed);
    assert_eq!(pair.second.unwrap().events, 1);
    assert_eq!(taken(&handler, &gallery()).await, BTreeSet::from([5]));
}

/// A store where another writer reserves seat 9 in the gallery just before
/// the first append of several streams.
struct Interloper {
    inner: MemoryStore,
    done: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Decorator for Interloper {
    fn inner(&self) -> &dyn EventStore {
        &self.inner
    }
    async fn append_many(&self, parts: Vec<StreamAppend>) -> Result<Vec<Appended>, AppendError> {
        if parts.len() > 1 && !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let other = CommandHandler::new(Arc::new(self.inner.clone()));
            reserve(&other, &gallery(), 9, "bob").await.unwrap();
        }
        self.inner.append_many(parts).await
    }
}

#[tokio::test]
async fn a_pair_that_loses_a_race_on_its_second_stream_is_decided_again() {
    // Given a gallery that another writer changes under the first attempt
    let handler = CommandHandler::new(Arc::new(Interloper {
        inner: MemoryStore::new(),
        done: Default::default(),
    }));
    // When seat 1 is reserved in both
    let pair = reserve_both(&handler, 1, &CommandEnvelope::new("Reserve"))
        .await
        .unwrap();
    // Then the second attempt wrote both, after the other writer's seat
    assert_eq!(pair.first.position, Some(Position(2)));
    assert_eq!(taken(&handler, &seats()).await, BTreeSet::from([1]));
    assert_eq!(taken(&handler, &gallery()).await, BTreeSet::from([1, 9]));
}

#[tokio::test]
async fn pairs_taking_two_streams_in_either_order_never_wait_for_each_other() {
    // Given many pairs at once, half of them hall then gallery, half
    // gallery then hall
    let (_dir, handler) = embedded().await;
    let tasks: Vec<_> = (0..40u32)
        .map(|seat| {
            let handler = handler.clone();
            tokio::spawn(async move {
                let (one, other) = match seat % 2 {
                    0 => (seats(), gallery()),
                    _ => (gallery(), seats()),
                };
                let envelope = CommandEnvelope::new("Reserve");
                handler
                    .execute_pair::<Seats, Seats, _>(
                        &ctx(user("alice", &[])),
                        Step::new(&one, &Reserve(seat), &envelope),
                        (&other, &CommandEnvelope::new("Reserve")),
                        |_| Some(Reserve(seat)),
                        |_, _| (),
                    )
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    // Then every one finishes, and each seat is taken in both
    let all = futures_util::future::join_all(tasks);
    for done in tokio::time::timeout(std::time::Duration::from_secs(20), all)
        .await
        .expect("pairs waited for each other")
    {
        done.unwrap().unwrap();
    }
    let every: BTreeSet<u32> = (0..40).collect();
    assert_eq!(taken(&handler, &seats()).await, every);
    assert_eq!(taken(&handler, &gallery()).await, every);
}

/// Counts the stream reads that reach the store; `knows` says whether it
/// passes on what the store knows of a stream's last version.
struct CountingReads {
    inner: MemoryStore,
    knows: bool,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Decorator for CountingReads {
    fn inner(&self) -> &dyn EventStore {
        &self.inner
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.read_stream(stream, from, limit).await
    }
    fn last_version_written(&self, stream: &StreamId) -> Option<StreamVersion> {
        self.knows
            .then(|| self.inner.last_version_written(stream))
            .flatten()
    }
}

#[tokio::test]
async fn a_cached_aggregate_is_read_again_only_when_the_store_cannot_say_it_is_current() {
    for knows in [true, false] {
        // Given a handler whose store knows (or not) each stream's last version
        let store = Arc::new(CountingReads {
            inner: MemoryStore::new(),
            knows,
            reads: Default::default(),
        });
        let handler = CommandHandler::new(store.clone());
        let reads = || store.reads.load(std::sync::atomic::Ordering::SeqCst);
        reserve(&handler, &seats(), 1, "alice").await.unwrap();
        let after_first = reads();
        // When the next command finds its cached state current
        reserve(&handler, &seats(), 2, "alice").await.unwrap();
        // Then it reads the stream again only when the store cannot say so
        assert_eq!(reads() - after_first, usize::from(!knows), "knows: {knows}");

        // When another writer appends behind the handler's back
        let other = CommandHandler::new(Arc::new(store.inner.clone()));
        reserve(&other, &seats(), 3, "bob").await.unwrap();
        // Then the handler reads it before it decides
        let before = reads();
        assert!(matches!(
            reserve(&handler, &seats(), 3, "alice").await,
            Err(CommandError::Refused(SeatRefusal::Taken(3)))
        ));
        assert_eq!(reads() - before, 1, "knows: {knows}");
    }
}

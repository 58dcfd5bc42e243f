//! The conformance suite: every `EventStore` backend runs these cases
//! unchanged (SPEC §8).
//!
//! A backend's test file implements [`Backend`] (and [`DurableBackend`] when
//! it persists), then expands `core_cases!(MyBackend)` and
//! `durable_cases!(MyBackend)`. Each case is a plain async function here, so
//! a failure points at one rule.

#![allow(dead_code)] // each backend uses the part of the suite it supports

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sealplane_event_store::{
    AppendError, BreakKind, ChainBreak, Conflict, EventHash, EventMetadata, EventStore, EventType,
    ExpectedVersion, InvalidInput, JsonObject, LogCheckpoint, LogHash, MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES, NewEvent, Position, RecordedEvent, StoreError, StreamAppend, StreamId,
    StreamVersion, SubscriptionMessage, VerifiedLog, VerifyError, verify_log, verify_log_after,
    verify_log_against,
};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Barrier;
use uuid::Uuid;

/// A place a store lives, for one test.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + Sized + 'static {
    type Store: EventStore + Clone;
    /// A new, empty location.
    async fn fresh() -> Self;
    /// Opens (or reopens) the store at this location.
    async fn open(&self) -> Self::Store;
}

/// A backend that persists: it can be reopened, opened from another
/// process, and tampered with behind the store's back.
#[async_trait::async_trait]
pub trait DurableBackend: Backend {
    /// Names the location, so a child process can open it.
    fn location(&self) -> String;
    /// The location named by [`DurableBackend::location`].
    fn at(location: &str) -> Self;
    /// Rewrites the data of the event at `position` directly in storage.
    async fn overwrite_data(&self, position: Position, data: &str);
    /// Deletes the event at `position` directly in storage.
    async fn delete_event(&self, position: Position);
    /// Replaces every stored event with `events`, field for field (hashes
    /// included, as given), the way a forger with write access would.
    async fn rewrite_log(&self, events: &[RecordedEvent]);
}

/// Expands every backend-independent case as a test.
#[macro_export]
macro_rules! core_cases {
    ($backend:ty) => {
        mod conformance_core {
            use super::*;
            $crate::cases!($backend;
                expected_version_rules,
                racing_appenders_have_exactly_one_winner,
                concurrent_any_appends_are_all_kept_in_order,
                batches_are_atomic_and_contiguous,
                appends_to_several_streams_are_one_atomic_write,
                racing_appends_to_several_streams_write_every_part_or_none,
                the_last_version_written_is_the_streams_last_or_unknown,
                global_order_is_commit_order,
                read_ranges_and_limits,
                a_visit_lends_the_log_in_order_and_stops_when_asked,
                subscription_catches_up_then_goes_live_without_gap_or_duplicate,
                subscription_from_a_position_starts_there,
                subscription_ends_cleanly_when_the_store_closes,
                bad_input_gets_typed_errors_and_writes_nothing,
                events_link_into_a_verifiable_hash_chain,
                log_hashes_chain_every_event_across_streams_in_position_order,
                concurrent_appends_and_refusals_keep_the_log_chain_whole,
                a_checkpoint_still_holds_after_later_appends,
                data_and_metadata_come_back_byte_for_byte,
                a_lease_has_one_holder_until_it_expires_or_is_released,
                racing_lease_takers_have_exactly_one_winner,
                exclusive_sections_admit_one_caller_at_a_time,
            );
        }
    };
}

/// Expands the cases that need persistence.
#[macro_export]
macro_rules! durable_cases {
    ($backend:ty) => {
        mod conformance_durable {
            use super::*;
            $crate::cases!($backend;
                reopening_preserves_the_log_and_appends_continue,
                kill_mid_write_loses_no_acknowledged_batch_and_tears_none,
                an_edited_event_is_detected,
                a_deleted_event_is_detected,
                tamper_an_edited_byte_is_detected_against_a_checkpoint,
                tamper_a_deleted_event_is_detected_against_a_checkpoint,
                tamper_a_rewritten_stream_is_detected_against_a_checkpoint,
                tamper_an_inserted_event_is_detected_against_a_checkpoint,
                tamper_reordered_events_are_detected_against_a_checkpoint,
                tamper_a_cut_tail_is_detected_against_a_checkpoint,
            );

            /// Not a test: the writer process that
            /// `kill_mid_write_loses_no_acknowledged_batch_and_tears_none`
            /// starts and kills. Ignored so plain runs skip it.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "child process of the crash test"]
            async fn crash_writer_child() {
                $crate::conformance::crash_writer_child::<$backend>().await
            }
        }
    };
}

#[macro_export]
macro_rules! cases {
    ($backend:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::conformance::$case::<$backend>().await
            }
        )*
    };
}

// ---------------------------------------------------------------- helpers

const TIMEOUT: Duration = Duration::from_secs(30);

pub fn stream(name: &str) -> StreamId {
    StreamId::parse(name).unwrap()
}

fn event(ty: &str, data: serde_json::Value) -> NewEvent {
    NewEvent::new(
        EventType::parse(ty).unwrap(),
        1,
        &data,
        &EventMetadata::new("conformance"),
    )
    .unwrap()
}

pub fn events(n: usize, tag: &str) -> Vec<NewEvent> {
    (0..n)
        .map(|i| event("Happened", json!({ "tag": tag, "i": i })))
        .collect()
}

fn v(n: u64) -> StreamVersion {
    StreamVersion(n)
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position.0).collect()
}

fn conflict(result: Result<impl std::fmt::Debug, AppendError>) -> Conflict {
    match result {
        Err(AppendError::Conflict(c)) => c,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

pub async fn read_everything<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    store.read_all(Position::START, usize::MAX).await.unwrap()
}

/// Receives the next subscription message or fails the test after
/// [`TIMEOUT`].
async fn next_message(
    sub: &mut sealplane_event_store::Subscription,
) -> Option<Result<SubscriptionMessage, StoreError>> {
    tokio::time::timeout(TIMEOUT, sub.next())
        .await
        .expect("subscription stalled")
}

// ------------------------------------------------------------ core cases

pub async fn expected_version_rules<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;
    let s = stream("orders-1");

    // A new stream: Exact fails, NoStream succeeds.
    let c = conflict(
        store
            .append(&s, ExpectedVersion::Exact(v(0)), events(1, "x"))
            .await,
    );
    assert_eq!(
        c,
        Conflict {
            stream: s.clone(),
            expected: ExpectedVersion::Exact(v(0)),
            actual: None
        }
    );
    let first = store
        .append(&s, ExpectedVersion::NoStream, events(1, "a"))
        .await
        .unwrap();
    assert_eq!(first.version, v(0));

    // An existing stream: NoStream fails, a stale Exact fails, the right one wins.
    let c = conflict(
        store
            .append(&s, ExpectedVersion::NoStream, events(1, "x"))
            .await,
    );
    assert_eq!(
        (c.expected, c.actual),
        (ExpectedVersion::NoStream, Some(v(0)))
    );
    let second = store
        .append(&s, ExpectedVersion::Exact(v(0)), events(2, "b"))
        .await
        .unwrap();
    assert_eq!(second.version, v(2));
    let c = conflict(
        store
            .append(&s, ExpectedVersion::Exact(v(0)), events(1, "x"))
            .await,
    );
    assert_eq!(c.actual, Some(v(2)));
    assert!(
        c.to_string().contains("orders-1") && c.to_string().contains("version 2"),
        "conflict message should name the stream and actual version: {c}"
    );
    let c = conflict(
        store
            .append(&s, ExpectedVersion::Exact(v(7)), events(1, "x"))
            .await,
    );
    assert_eq!(c.actual, Some(v(2)));

    // Any always appends.
    let third = store
        .append(&s, ExpectedVersion::Any, events(1, "c"))
        .await
        .unwrap();
    assert_eq!(third.version, v(3));
    let fresh = store
        .append(&stream("orders-2"), ExpectedVersion::Any, events(1, "d"))
        .await
        .unwrap();
    assert_eq!(fresh.version, v(0));

    // None of the refused appends wrote anything.
    let all = read_everything(&store).await;
    assert_eq!(all.len(), 5);
    assert!(
        all.iter()
            .all(|e| e.data.as_str().contains("\"tag\":\"") && !e.data.as_str().contains("\"x\""))
    );
}

pub async fn racing_appenders_have_exactly_one_winner<B: Backend>() {
    const RACERS: usize = 32;
    let backend = B::fresh().await;
    let store = backend.open().await;
    let s = stream("contended");

    let mut expected = ExpectedVersion::NoStream;
    for round in 0..5u64 {
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|racer| {
                let (store, s, barrier) = (store.clone(), s.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let batch = vec![event("Raced", json!({ "round": round, "racer": racer }))];
                    store.append(&s, expected, batch).await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(appended) => {
                    winners += 1;
                    assert_eq!(appended.version, v(round));
                }
                Err(AppendError::Conflict(c)) => {
                    assert_eq!(c.expected, expected);
                    assert_eq!(c.actual, Some(v(round)), "losers see the winner's version");
                }
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one racer wins");
        expected = ExpectedVersion::Exact(v(round));
    }
    let all = store.read_stream(&s, v(0), usize::MAX).await.unwrap();
    assert_eq!(all.len(), 5);
}

pub async fn concurrent_any_appends_are_all_kept_in_order<B: Backend>() {
    const WRITERS: usize = 8;
    const APPENDS: usize = 25;
    let backend = B::fresh().await;
    let store = backend.open().await;
    let s = stream("busy");
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, s) = (store.clone(), s.clone());
            tokio::spawn(async move {
                for n in 0..APPENDS {
                    let pair = vec![
                        event("First", json!({ "w": w, "n": n })),
                        event("Second", json!({ "w": w, "n": n })),
                    ];
                    store.append(&s, ExpectedVersion::Any, pair).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let read = store.read_stream(&s, v(0), usize::MAX).await.unwrap();
    assert_eq!(read.len(), WRITERS * APPENDS * 2);
    for (i, e) in read.iter().enumerate() {
        assert_eq!(e.version, v(i as u64), "versions are contiguous");
    }
    // Each pair stays together, first then second, and no pair is lost or doubled.
    let mut seen = HashSet::new();
    for pair in read.chunks(2) {
        assert_eq!(pair[0].event_type.as_str(), "First");
        assert_eq!(pair[1].event_type.as_str(), "Second");
        assert_eq!(pair[0].data, pair[1].data);
        assert!(
            seen.insert(pair[0].data.as_str().to_owned()),
            "duplicate pair"
        );
    }
}

pub async fn batches_are_atomic_and_contiguous<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;

    // A refused batch writes none of its events.
    let c = conflict(
        store
            .append(
                &stream("a"),
                ExpectedVersion::Exact(v(3)),
                events(5, "refused"),
            )
            .await,
    );
    assert_eq!(c.actual, None);
    let too_many = events(MAX_BATCH_EVENTS + 1, "big");
    assert!(matches!(
        store.append(&stream("a"), ExpectedVersion::Any, too_many).await,
        Err(AppendError::BatchTooLarge { events, .. }) if events == MAX_BATCH_EVENTS + 1
    ));
    assert_eq!(store.head().await.unwrap(), Position(0));
    assert!(read_everything(&store).await.is_empty());

    // Batches racing on several streams each land as one contiguous run.
    let tasks: Vec<_> = (0..6)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut runs = vec![];
                for n in 0..10 {
                    let batch = events(7, &format!("w{w}-n{n}"));
                    let done = store
                        .append(&stream(&format!("s{}", w % 3)), ExpectedVersion::Any, batch)
                        .await
                        .unwrap();
                    runs.push((format!("w{w}-n{n}"), done));
                }
                runs
            })
        })
        .collect();
    let mut runs = vec![];
    for t in tasks {
        runs.extend(t.await.unwrap());
    }
    let all = read_everything(&store).await;
    assert_eq!(all.len(), 6 * 10 * 7);
    for (tag, done) in runs {
        assert_eq!(done.last_position.0 - done.first_position.0, 6);
        let run = &all[(done.first_position.0 - 1) as usize..done.last_position.0 as usize];
        for (i, e) in run.iter().enumerate() {
            let data: serde_json::Value = e.data.deserialize().unwrap();
            assert_eq!(
                data,
                json!({ "tag": tag, "i": i }),
                "batch {tag} is contiguous"
            );
        }
        assert_eq!(run[6].version, done.version);
    }
}

fn part(name: &str, expected: ExpectedVersion, n: usize, tag: &str) -> StreamAppend {
    StreamAppend::new(stream(name), expected, events(n, tag))
}

pub async fn appends_to_several_streams_are_one_atomic_write<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;
    store
        .append(&stream("b"), ExpectedVersion::NoStream, events(1, "b0"))
        .await
        .unwrap();

    // Given a conflict on the second part, the first is not written either.
    let refused = store
        .append_many(vec![
            part("a", ExpectedVersion::NoStream, 2, "refused"),
            part("b", ExpectedVersion::Exact(v(5)), 1, "refused"),
        ])
        .await;
    let c = conflict(refused);
    assert_eq!((c.stream, c.actual), (stream("b"), Some(v(0))));
    assert_eq!(store.head().await.unwrap(), Position(1));
    assert!(
        store
            .read_stream(&stream("a"), v(0), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // When both parts hold, they land in order, one after the other.
    let done = store
        .append_many(vec![
            part("a", ExpectedVersion::NoStream, 2, "a"),
            part("b", ExpectedVersion::Exact(v(0)), 1, "b"),
        ])
        .await
        .unwrap();
    assert_eq!(done.len(), 2);
    assert_eq!(
        (
            done[0].first_position,
            done[0].last_position,
            done[0].version
        ),
        (Position(2), Position(3), v(1))
    );
    assert_eq!(
        (
            done[1].first_position,
            done[1].last_position,
            done[1].version
        ),
        (Position(4), Position(4), v(1))
    );
    let all = read_everything(&store).await;
    let streams: Vec<_> = all.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(streams, ["b", "a", "a", "b"]);
    assert_eq!(store.head().await.unwrap(), Position(4));

    // A stream named twice: the second part expects what the first left.
    let twice = store
        .append_many(vec![
            part("c", ExpectedVersion::NoStream, 1, "c0"),
            part("c", ExpectedVersion::Exact(v(0)), 1, "c1"),
        ])
        .await
        .unwrap();
    assert_eq!((twice[0].version, twice[1].version), (v(0), v(1)));
    let c = conflict(
        store
            .append_many(vec![
                part("c", ExpectedVersion::Exact(v(1)), 1, "c2"),
                part("c", ExpectedVersion::Exact(v(1)), 1, "c3"),
            ])
            .await,
    );
    assert_eq!((c.stream, c.actual), (stream("c"), Some(v(2))));
    assert_eq!(store.head().await.unwrap(), Position(6));

    // Bad input: no part, an empty part, too many events over all parts.
    assert!(matches!(
        store.append_many(vec![]).await,
        Err(AppendError::EmptyBatch)
    ));
    assert!(matches!(
        store
            .append_many(vec![
                part("d", ExpectedVersion::Any, 1, "d"),
                StreamAppend::new(stream("e"), ExpectedVersion::Any, vec![]),
            ])
            .await,
        Err(AppendError::EmptyBatch)
    ));
    let half = MAX_BATCH_EVENTS / 2 + 1;
    assert!(matches!(
        store
            .append_many(vec![
                part("d", ExpectedVersion::Any, half, "d"),
                part("e", ExpectedVersion::Any, half, "e"),
            ])
            .await,
        Err(AppendError::BatchTooLarge { events, .. }) if events == 2 * half
    ));
    assert_eq!(store.head().await.unwrap(), Position(6));
    let report = verify_log_against(&store, []).await.unwrap();
    assert_eq!((report.events, report.streams), (6, 3));
}

pub async fn racing_appends_to_several_streams_write_every_part_or_none<B: Backend>() {
    // Appends of two parts that land in one commit group, where every one
    // but the first is refused on its second part: the refused ones write
    // neither part, and the log chains as if each had been alone.
    const TASKS: usize = 8;
    let backend = B::fresh().await;
    let store = backend.open().await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let own = format!("own-{t}");
                store
                    .append_many(vec![
                        part(&own, ExpectedVersion::NoStream, 2, &own),
                        part("once", ExpectedVersion::NoStream, 1, &own),
                    ])
                    .await
                    .map(|done| (own, done))
            })
        })
        .collect();
    let mut winners = vec![];
    for t in tasks {
        match t.await.unwrap() {
            Ok(won) => winners.push(won),
            Err(AppendError::Conflict(c)) => assert_eq!(c.stream, stream("once")),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one append took `once`");
    let (own, done) = &winners[0];
    let all = read_everything(&store).await;
    assert_eq!(positions(&all), [1, 2, 3]);
    let streams: Vec<_> = all.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(streams, [own.as_str(), own.as_str(), "once"]);
    assert_eq!(done[1].last_position, Position(3));
    let report = verify_log_against(&store, []).await.unwrap();
    assert_eq!((report.events, report.streams), (3, 2));
}

pub async fn the_last_version_written_is_the_streams_last_or_unknown<B: Backend>() {
    // What a store says of a stream's last version, without reading, is
    // either nothing or the truth: after single appends, appends of
    // several streams, and a refused append whose first part was fine.
    let backend = B::fresh().await;
    let store = backend.open().await;
    let says_true = |name: &'static str| {
        let store = store.clone();
        async move {
            let events = store
                .read_stream(&stream(name), StreamVersion(0), usize::MAX)
                .await
                .unwrap();
            let last = events.last().map(|e| e.version);
            if let Some(known) = store.last_version_written(&stream(name)) {
                assert_eq!(Some(known), last, "stream {name}");
            }
        }
    };
    store
        .append(&stream("a"), ExpectedVersion::NoStream, events(3, "a"))
        .await
        .unwrap();
    store
        .append_many(vec![
            part("a", ExpectedVersion::Exact(StreamVersion(2)), 1, "a3"),
            part("b", ExpectedVersion::NoStream, 2, "b"),
        ])
        .await
        .unwrap();
    conflict(
        store
            .append_many(vec![
                part("a", ExpectedVersion::Any, 1, "refused"),
                part("c", ExpectedVersion::NoStream, 1, "refused"),
                part("b", ExpectedVersion::NoStream, 1, "refused"),
            ])
            .await,
    );
    for name in ["a", "b", "c", "never"] {
        says_true(name).await;
    }
}

pub async fn global_order_is_commit_order<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;
    let mut appended = vec![];
    for i in 0..30 {
        let s = stream(&format!("stream-{}", i % 4));
        let n = 1 + i % 3;
        let done = store
            .append(&s, ExpectedVersion::Any, events(n, &format!("{i}")))
            .await
            .unwrap();
        appended.push((s, n, done));
    }
    let all = read_everything(&store).await;
    let total: usize = appended.iter().map(|(_, n, _)| n).sum();
    assert_eq!(positions(&all), (1..=total as u64).collect::<Vec<_>>());
    assert_eq!(store.head().await.unwrap(), Position(total as u64));
    let mut expected_next = 1;
    for (s, n, done) in appended {
        assert_eq!(
            done.first_position,
            Position(expected_next),
            "positions follow append order"
        );
        assert_eq!(done.last_position, Position(expected_next + n as u64 - 1));
        for e in &all[(expected_next - 1) as usize..(expected_next - 1) as usize + n] {
            assert_eq!(e.stream_id, s);
        }
        expected_next += n as u64;
    }
}

pub async fn read_ranges_and_limits<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;
    let s = stream("ranges");
    store
        .append(&stream("other"), ExpectedVersion::Any, events(2, "o"))
        .await
        .unwrap();
    store
        .append(&s, ExpectedVersion::NoStream, events(10, "r"))
        .await
        .unwrap();

    let versions = |evs: Vec<RecordedEvent>| evs.iter().map(|e| e.version.0).collect::<Vec<_>>();
    assert_eq!(
        versions(store.read_stream(&s, v(0), 3).await.unwrap()),
        [0, 1, 2]
    );
    assert_eq!(
        versions(store.read_stream(&s, v(8), 10).await.unwrap()),
        [8, 9]
    );
    assert!(store.read_stream(&s, v(10), 10).await.unwrap().is_empty());
    assert!(store.read_stream(&s, v(0), 0).await.unwrap().is_empty());
    assert!(
        store
            .read_stream(&stream("nobody"), v(0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .read_stream(&s, v(u64::MAX), 10)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        positions(&store.read_all(Position(0), 2).await.unwrap()),
        [1, 2]
    );
    assert_eq!(
        positions(&store.read_all(Position(5), 3).await.unwrap()),
        [5, 6, 7]
    );
    assert_eq!(
        positions(&store.read_all(Position(11), 100).await.unwrap()),
        [11, 12]
    );
    assert!(store.read_all(Position(13), 100).await.unwrap().is_empty());
    assert!(
        store
            .read_all(Position(u64::MAX), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.read_all(Position::START, 0).await.unwrap().is_empty());
}

/// Folds the log from `from` with `visit_all`, keeping each event it is
/// lent, stopping after `stop_after` when given.
pub async fn visited(
    store: &dyn EventStore,
    from: Position,
    stop_after: Option<u64>,
) -> (u64, Vec<RecordedEvent>) {
    let mut kept = Vec::new();
    let given = store
        .visit_all(from, &mut |e| {
            kept.push(e.clone());
            match stop_after {
                Some(n) if kept.len() as u64 >= n => std::ops::ControlFlow::Break(()),
                _ => std::ops::ControlFlow::Continue(()),
            }
        })
        .await
        .unwrap();
    (given, kept)
}

pub async fn a_visit_lends_the_log_in_order_and_stops_when_asked<B: Backend>() {
    // Given a log of 12 events over two streams
    let backend = B::fresh().await;
    let store = backend.open().await;
    store
        .append(&stream("other"), ExpectedVersion::Any, events(2, "o"))
        .await
        .unwrap();
    store
        .append(
            &stream("visited"),
            ExpectedVersion::NoStream,
            events(10, "r"),
        )
        .await
        .unwrap();
    let all = store.read_all(Position::START, 100).await.unwrap();

    // When it is visited from the start, then it is lent whole, in order,
    // each event as a read returns it
    let (given, kept) = visited(&store, Position::START, None).await;
    assert_eq!(given, 12);
    assert_eq!(kept, all);
    // From a position, from there on
    let (given, kept) = visited(&store, Position(5), None).await;
    assert_eq!(given, 8);
    assert_eq!(positions(&kept), (5..=12).collect::<Vec<_>>());
    // A visitor that stops is given no more
    let (given, kept) = visited(&store, Position(2), Some(3)).await;
    assert_eq!(given, 3);
    assert_eq!(positions(&kept), [2, 3, 4]);
    // Past the head there is nothing to visit
    assert_eq!(visited(&store, Position(13), None).await.0, 0);
    assert_eq!(visited(&store, Position(u64::MAX), None).await.0, 0);
}

pub async fn subscription_catches_up_then_goes_live_without_gap_or_duplicate<B: Backend>() {
    const BEFORE: u64 = 300;
    const WRITERS: u64 = 4;
    const LIVE_APPENDS: u64 = 60;
    let backend = B::fresh().await;
    let store = backend.open().await;
    for i in 0..BEFORE / 10 {
        store
            .append(
                &stream(&format!("s{}", i % 3)),
                ExpectedVersion::Any,
                events(10, "old"),
            )
            .await
            .unwrap();
    }

    let mut sub = store.subscribe_all(Position::START);
    // A second subscriber joins while the writers are running.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..LIVE_APPENDS {
                    store
                        .append(
                            &stream(&format!("live{w}")),
                            ExpectedVersion::Any,
                            events(1, &format!("{w}-{n}")),
                        )
                        .await
                        .unwrap();
                    if n % 10 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    let mut late = store.subscribe_all(Position::START);

    let total = BEFORE + WRITERS * LIVE_APPENDS;
    for sub in [&mut sub, &mut late] {
        let mut seen = vec![];
        let mut caught_up = vec![];
        while (seen.len() as u64) < total {
            match next_message(sub)
                .await
                .expect("subscription ended early")
                .unwrap()
            {
                SubscriptionMessage::Event(e) => seen.push(e.position.0),
                SubscriptionMessage::CaughtUp(p) => caught_up.push((p, seen.len())),
            }
        }
        assert_eq!(
            seen,
            (1..=total).collect::<Vec<_>>(),
            "every event once, in order"
        );
        // The first subscriber catches up before the writers finish or right
        // after; either way exactly once, at the position it had reached.
        if caught_up.is_empty() {
            match next_message(sub).await.unwrap().unwrap() {
                SubscriptionMessage::CaughtUp(p) => caught_up.push((p, seen.len())),
                other => panic!("expected CaughtUp, got {other:?}"),
            }
        }
        assert_eq!(
            caught_up.len(),
            1,
            "CaughtUp is sent exactly once: {caught_up:?}"
        );
        let (at, after) = caught_up[0];
        assert!(at.0 >= BEFORE, "caught up only after the stored events");
        assert_eq!(
            at.0, after as u64,
            "CaughtUp names the last delivered position"
        );
    }
    for w in writers {
        w.await.unwrap();
    }
    // Live delivery continues after the burst.
    store
        .append(&stream("after"), ExpectedVersion::Any, events(1, "after"))
        .await
        .unwrap();
    for sub in [&mut sub, &mut late] {
        loop {
            match next_message(sub).await.unwrap().unwrap() {
                SubscriptionMessage::Event(e) => {
                    assert_eq!(e.position.0, total + 1);
                    break;
                }
                SubscriptionMessage::CaughtUp(_) => continue,
            }
        }
    }
    // And nothing is delivered twice.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), sub.next())
            .await
            .is_err(),
        "no further message without a new event"
    );
}

pub async fn subscription_from_a_position_starts_there<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;
    store
        .append(&stream("s"), ExpectedVersion::Any, events(10, "x"))
        .await
        .unwrap();
    let mut sub = store.subscribe_all(Position(7));
    let mut got = vec![];
    loop {
        match next_message(&mut sub).await.unwrap().unwrap() {
            SubscriptionMessage::Event(e) => got.push(e.position.0),
            SubscriptionMessage::CaughtUp(p) => {
                assert_eq!(p, Position(10));
                break;
            }
        }
    }
    assert_eq!(got, [7, 8, 9, 10]);

    // From beyond the head: caught up at once, then live from there.
    let mut ahead = store.subscribe_all(Position(11));
    assert_eq!(
        next_message(&mut ahead).await.unwrap().unwrap(),
        SubscriptionMessage::CaughtUp(Position(10))
    );
    store
        .append(&stream("s"), ExpectedVersion::Any, events(1, "y"))
        .await
        .unwrap();
    match next_message(&mut ahead).await.unwrap().unwrap() {
        SubscriptionMessage::Event(e) => assert_eq!(e.position, Position(11)),
        other => panic!("expected the live event, got {other:?}"),
    }
}

pub async fn subscription_ends_cleanly_when_the_store_closes<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;
    store
        .append(&stream("s"), ExpectedVersion::Any, events(3, "x"))
        .await
        .unwrap();
    let mut sub = store.subscribe_all(Position::START);
    let mut n = 0;
    while let SubscriptionMessage::Event(_) = next_message(&mut sub).await.unwrap().unwrap() {
        n += 1;
    }
    assert_eq!(n, 3);
    store.close().await;
    assert!(
        next_message(&mut sub).await.is_none(),
        "the stream ends with None"
    );
    assert!(matches!(
        store
            .append(&stream("s"), ExpectedVersion::Any, events(1, "late"))
            .await,
        Err(AppendError::Store(StoreError::Closed))
    ));
}

pub async fn bad_input_gets_typed_errors_and_writes_nothing<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;
    let ty = EventType::parse("Happened").unwrap();
    let meta = EventMetadata::new("conformance");

    assert_eq!(StreamId::parse(""), Err(InvalidInput::EmptyStreamId));
    assert!(matches!(
        StreamId::parse("has space"),
        Err(InvalidInput::StreamIdCharacter { found: ' ', .. })
    ));
    assert!(matches!(
        NewEvent::from_json_text(ty.clone(), 1, "{\"unterminated\": ", &meta),
        Err(InvalidInput::InvalidJson { part: "data", .. })
    ));
    assert_eq!(
        NewEvent::from_json_text(ty.clone(), 1, "42", &meta),
        Err(InvalidInput::NotAnObject { part: "data" })
    );
    let oversize = format!(r#"{{"blob":"{}"}}"#, "a".repeat(MAX_EVENT_BYTES));
    let err = NewEvent::from_json_text(ty.clone(), 1, &oversize, &meta).unwrap_err();
    assert!(matches!(err, InvalidInput::EventTooLarge { .. }));
    assert!(err.to_string().contains("limit"), "{err}");
    assert!(matches!(
        store
            .append(&stream("s"), ExpectedVersion::Any, vec![])
            .await,
        Err(AppendError::EmptyBatch)
    ));
    conflict(
        store
            .append(&stream("s"), ExpectedVersion::Exact(v(0)), events(1, "x"))
            .await,
    );

    assert_eq!(store.head().await.unwrap(), Position(0));
    assert!(read_everything(&store).await.is_empty());
    assert!(
        store
            .read_stream(&stream("s"), v(0), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The store still works after refusing all that.
    store
        .append(&stream("s"), ExpectedVersion::NoStream, events(1, "ok"))
        .await
        .unwrap();
    assert_eq!(store.head().await.unwrap(), Position(1));
}

pub async fn events_link_into_a_verifiable_hash_chain<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;
    for i in 0..12 {
        store
            .append(
                &stream(&format!("s{}", i % 3)),
                ExpectedVersion::Any,
                events(1 + i % 2, "x"),
            )
            .await
            .unwrap();
    }
    let all = read_everything(&store).await;
    let mut last: BTreeMap<StreamId, EventHash> = BTreeMap::new();
    for e in &all {
        let expected_prev = last
            .get(&e.stream_id)
            .copied()
            .unwrap_or(EventHash::GENESIS);
        assert_eq!(
            e.prev_hash, expected_prev,
            "event {} links to its stream's previous",
            e.position
        );
        assert_eq!(e.hash, e.computed_hash(), "stored hash matches content");
        last.insert(e.stream_id.clone(), e.hash);
    }
    assert_eq!(verify_log(&store).await.unwrap(), all.len() as u64);
}

pub async fn log_hashes_chain_every_event_across_streams_in_position_order<B: Backend>() {
    // The same appends, given to two fresh stores.
    let appends: Vec<(StreamId, Vec<NewEvent>)> = (0..12)
        .map(|i| (stream(&format!("s{}", i % 3)), events(1 + i % 2, "x")))
        .collect();
    let mut logs = vec![];
    for _ in 0..2 {
        let backend = B::fresh().await;
        let store = backend.open().await;
        for (s, batch) in &appends {
            store
                .append(s, ExpectedVersion::Any, batch.clone())
                .await
                .unwrap();
        }
        logs.push((read_everything(&store).await, store));
    }
    let (all, store) = &logs[0];

    // Each log hash extends the previous event's, whatever its stream.
    let mut log_hash = LogHash::GENESIS;
    for e in all {
        log_hash = log_hash.extend(e.position, &e.hash);
        assert_eq!(e.log_hash, log_hash, "log hash of position {}", e.position);
    }
    assert!(
        all.windows(2).any(|w| w[0].stream_id != w[1].stream_id),
        "the chain runs across interleaved streams"
    );
    // Deterministic from content: another store records the same hashes.
    let log_hashes = |evs: &[RecordedEvent]| evs.iter().map(|e| e.log_hash).collect::<Vec<_>>();
    assert_eq!(log_hashes(all), log_hashes(&logs[1].0));
    // And the verifier, recomputing them, matches a checkpoint at every event.
    let report = verify_log_against(store, all.iter().map(LogCheckpoint::of))
        .await
        .unwrap();
    assert_eq!(
        report,
        VerifiedLog {
            events: all.len() as u64,
            streams: 3,
            checkpoints: all.len(),
            head: LogCheckpoint::of(all.last().unwrap()),
        }
    );
}

pub async fn concurrent_appends_and_refusals_keep_the_log_chain_whole<B: Backend>() {
    // Appends that land in one commit group with refused ones between them
    // must chain as if each had been alone.
    const TASKS: usize = 8;
    const ROUNDS: usize = 10;
    let backend = B::fresh().await;
    let store = backend.open().await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut refused = 0;
                for r in 0..ROUNDS {
                    let own = stream(&format!("own-{t}"));
                    store
                        .append(&own, ExpectedVersion::Any, events(1 + r % 3, "own"))
                        .await
                        .unwrap();
                    // Only the first of these, over all tasks, can win.
                    match store
                        .append(
                            &stream("once"),
                            ExpectedVersion::NoStream,
                            events(2, "once"),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(AppendError::Conflict(_)) => refused += 1,
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                refused
            })
        })
        .collect();
    let mut refused = 0;
    for t in tasks {
        refused += t.await.unwrap();
    }
    assert_eq!(
        refused,
        TASKS * ROUNDS - 1,
        "exactly one NoStream append won"
    );
    let report = verify_log_against(&store, []).await.unwrap();
    let own: usize = (0..ROUNDS).map(|r| 1 + r % 3).sum::<usize>() * TASKS;
    assert_eq!(report.events, (own + 2) as u64);
    assert_eq!(report.streams, TASKS + 1);
}

pub async fn a_checkpoint_still_holds_after_later_appends<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;
    store
        .append(&stream("a"), ExpectedVersion::Any, events(3, "before"))
        .await
        .unwrap();
    let held = verify_log_against(&store, []).await.unwrap().head;
    assert_eq!(held.position, Position(3));
    for s in ["a", "b", "c"] {
        store
            .append(&stream(s), ExpectedVersion::Any, events(2, "after"))
            .await
            .unwrap();
    }
    let report = verify_log_against(&store, [held]).await.unwrap();
    assert_eq!((report.events, report.checkpoints), (9, 1));
    // Checking only what came after it finds the same head.
    let after = verify_log_after(&store, held).await.unwrap();
    assert_eq!((after.events, after.head), (6, report.head));
    assert_eq!(
        verify_log_after(&store, LogCheckpoint::EMPTY)
            .await
            .unwrap()
            .events,
        9
    );
}

pub async fn data_and_metadata_come_back_byte_for_byte<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;
    let text = r#"{"zeta":1,"alpha":[true,null,"ünïcode \"quoted\""],"nested":{"b":2,"a":1.5e3}}"#;
    let mut meta = EventMetadata::new("alice");
    meta.causation_id = Some(Uuid::new_v4());
    let ty = EventType::parse("SecretStoreCreated").unwrap();
    let e = NewEvent::from_json_text(ty, 3, text, &meta).unwrap();
    store
        .append(&stream("store-local"), ExpectedVersion::NoStream, vec![e])
        .await
        .unwrap();
    let back = store
        .read_stream(&stream("store-local"), v(0), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(back.data.as_str(), text);
    assert_eq!(back.metadata().unwrap(), meta);
    assert_eq!(back.schema_version, 3);
    assert_eq!(back.event_type.as_str(), "SecretStoreCreated");
    assert_eq!(back.stream_id.as_str(), "store-local");
}

// --------------------------------------------------------- durable cases

pub async fn reopening_preserves_the_log_and_appends_continue<B: DurableBackend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;
    for i in 0..20 {
        store
            .append(
                &stream(&format!("s{}", i % 4)),
                ExpectedVersion::Any,
                events(3, "x"),
            )
            .await
            .unwrap();
    }
    let before = read_everything(&store).await;
    store.close().await;

    let store = backend.open().await;
    assert_eq!(read_everything(&store).await, before);
    assert_eq!(store.head().await.unwrap(), Position(60));
    let next = store
        .append(
            &stream("s0"),
            ExpectedVersion::Exact(v(14)),
            events(1, "after"),
        )
        .await
        .unwrap();
    assert_eq!((next.first_position, next.version), (Position(61), v(15)));
    assert_eq!(verify_log(&store).await.unwrap(), 61);
    store.close().await;
}

const CRASH_ENV: &str = "SEALPLANE_CONFORMANCE_CRASH_LOCATION";
const CRASH_ROUND_ENV: &str = "SEALPLANE_CONFORMANCE_CRASH_ROUND";
const CRASH_BATCH: usize = 40;
const CRASH_WRITERS: usize = 4;

/// Appends batches from several tasks until killed, printing each
/// acknowledged batch.
pub async fn crash_writer_child<B: DurableBackend>() {
    let location = std::env::var(CRASH_ENV).expect("run by the crash test only");
    let round: u64 = std::env::var(CRASH_ROUND_ENV).unwrap().parse().unwrap();
    let store = B::at(&location).open().await;
    let padding = "p".repeat(512);
    let tasks: Vec<_> = (0..CRASH_WRITERS)
        .map(|w| {
            let (store, padding) = (store.clone(), padding.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let batch = (0..CRASH_BATCH)
                        .map(|i| {
                            event(
                                "Crash",
                                json!({ "round": round, "w": w, "n": n, "i": i, "pad": padding }),
                            )
                        })
                        .collect();
                    store
                        .append(&stream(&format!("crash-{w}")), ExpectedVersion::Any, batch)
                        .await
                        .unwrap();
                    println!("acked {round} {w} {n}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

pub async fn kill_mid_write_loses_no_acknowledged_batch_and_tears_none<B: DurableBackend>() {
    // Each round lands the kill at a random point of the write path; several
    // rounds make it likely one lands inside a commit.
    const ROUNDS: usize = 8;
    let backend = B::fresh().await;
    let mut acked = HashSet::new();
    for round in 0..ROUNDS {
        acked.extend(run_and_kill_writer(&backend, round).await);
        let store = backend.open().await;
        check_crash_survivors(&store, &acked).await;
        store.close().await;
    }
    // The store accepts appends again, right after the surviving events.
    let store = backend.open().await;
    let head = store.head().await.unwrap();
    let next = store
        .append(
            &stream("after-crash"),
            ExpectedVersion::NoStream,
            events(1, "x"),
        )
        .await
        .unwrap();
    assert_eq!(next.first_position, head.next());
    store.close().await;
}

/// Starts the writer process, lets it acknowledge some batches, kills it
/// with SIGKILL and returns every batch it acknowledged.
async fn run_and_kill_writer<B: DurableBackend>(backend: &B, round: usize) -> HashSet<String> {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_writer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_ENV, backend.location())
        .env(CRASH_ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = HashSet::new();
    tokio::time::timeout(TIMEOUT, async {
        // Vary how long the writer runs, so kills land at different points.
        while acked.len() < 8 + 5 * round {
            let line = lines.next_line().await.unwrap().expect("writer died early");
            if let Some(ack) = line.strip_prefix("acked ") {
                acked.insert(ack.to_owned());
            }
        }
    })
    .await
    .expect("the writer acknowledged too few batches");
    child.start_kill().unwrap(); // SIGKILL: no destructor, no flush
    // Acknowledgements still in the pipe were made before the kill.
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(ack) = line.strip_prefix("acked ") {
            acked.insert(ack.to_owned());
        }
    }
    child.wait().await.unwrap();
    acked
}

/// The log verifies, every batch in it is whole, and every acknowledged
/// batch is in it.
async fn check_crash_survivors<S: EventStore>(store: &S, acked: &HashSet<String>) {
    let verified = verify_log(store)
        .await
        .expect("the log verifies after a crash");
    let all = read_everything(store).await;
    assert_eq!(verified, all.len() as u64);
    let mut batches: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in &all {
        let d: serde_json::Value = e.data.deserialize().unwrap();
        let key = format!("{} {} {}", d["round"], d["w"], d["n"]);
        batches
            .entry(key)
            .or_default()
            .push(d["i"].as_u64().unwrap());
    }
    for (key, indexes) in &batches {
        assert_eq!(
            indexes,
            &(0..CRASH_BATCH as u64).collect::<Vec<_>>(),
            "batch {key} is whole"
        );
    }
    for ack in acked {
        assert!(
            batches.contains_key(ack),
            "acknowledged batch {ack} survived the crash"
        );
    }
}

async fn tamper_fixture<B: DurableBackend>() -> B {
    let backend = B::fresh().await;
    let store = backend.open().await;
    for i in 0..10 {
        store
            .append(
                &stream(&format!("s{}", i % 3)),
                ExpectedVersion::Any,
                events(1, &i.to_string()),
            )
            .await
            .unwrap();
    }
    assert_eq!(verify_log(&store).await.unwrap(), 10);
    store.close().await;
    backend
}

fn expect_break<T: std::fmt::Debug>(result: Result<T, VerifyError>) -> ChainBreak {
    match result {
        Err(VerifyError::Broken(b)) => b,
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

pub async fn an_edited_event_is_detected<B: DurableBackend>() {
    let backend = tamper_fixture::<B>().await;
    backend
        .overwrite_data(Position(4), r#"{"tag":"forged","i":0}"#)
        .await;
    let store = backend.open().await;
    let b = expect_break(verify_log(&store).await);
    assert_eq!(
        (b.position, b.stream.clone()),
        (Position(4), Some(stream("s0")))
    );
    assert!(matches!(b.kind, BreakKind::ContentEdited { .. }), "{b}");
    assert!(
        b.to_string().contains("position 4") && b.to_string().contains("`s0`"),
        "{b}"
    );
    store.close().await;
}

pub async fn a_deleted_event_is_detected<B: DurableBackend>() {
    let backend = tamper_fixture::<B>().await;
    backend.delete_event(Position(6)).await;
    let store = backend.open().await;
    let b = expect_break(verify_log(&store).await);
    assert_eq!(
        b.kind,
        BreakKind::PositionGap {
            expected: Position(6),
            found: Position(7)
        }
    );
    // A subscriber is told about the hole instead of skipping it.
    let mut sub = store.subscribe_all(Position::START);
    let mut delivered = 0;
    loop {
        match next_message(&mut sub)
            .await
            .expect("subscription ended without error")
        {
            Ok(SubscriptionMessage::Event(_)) => delivered += 1,
            Ok(SubscriptionMessage::CaughtUp(p)) => panic!("caught up at {p} over a hole"),
            Err(StoreError::Corrupt { at, .. }) => {
                assert_eq!(at, "position 6");
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(delivered, 5);
    store.close().await;
}

// ------------------------------------------- tamper cases with a checkpoint
//
// An auditor took a checkpoint at position 8 of the ten-event fixture
// (streams s0, s1, s2 in turn, so position 8 is in s1; two events follow
// it). Each case tampers at or before it, first as a careless forger
// (the chains alone name the place), then as a careful one who recomputes
// every hash so the chains link again: only the checkpoint can tell, and
// it names its own position, the stream there and both hashes.

const CHECKPOINT_AT: usize = 8;

/// The tamper fixture, its events, and the checkpoint held at position 8.
async fn checkpointed_fixture<B: DurableBackend>() -> (B, Vec<RecordedEvent>, LogCheckpoint) {
    let backend = tamper_fixture::<B>().await;
    let store = backend.open().await;
    let all = read_everything(&store).await;
    store.close().await;
    let held = LogCheckpoint::of(&all[CHECKPOINT_AT - 1]);
    (backend, all, held)
}

/// Renumbers positions and versions and recomputes every hash, as a
/// forger with write access and this source code would.
fn forge(events: Vec<RecordedEvent>) -> Vec<RecordedEvent> {
    sealplane_event_store::chain::relink(events)
}

fn with_data(mut e: RecordedEvent, data: &str) -> RecordedEvent {
    e.data = JsonObject::parse("data", data).unwrap();
    e
}

/// Verifies the stored log against `held` and returns the break.
async fn break_against<B: DurableBackend>(backend: &B, held: LogCheckpoint) -> ChainBreak {
    let store = backend.open().await;
    let b = expect_break(verify_log_against(&store, [held]).await);
    store.close().await;
    b
}

/// Checks only the log after `held` (and that it still agrees at `held`)
/// and returns the break.
async fn break_after<B: DurableBackend>(backend: &B, held: LogCheckpoint) -> ChainBreak {
    let store = backend.open().await;
    let b = expect_break(verify_log_after(&store, held).await);
    store.close().await;
    b
}

/// Stores `tampered` with every hash recomputed and checks that the
/// chains pass but the checkpoint does not, naming its place.
async fn assert_only_the_checkpoint_catches<B: DurableBackend>(
    backend: &B,
    held: LogCheckpoint,
    tampered: Vec<RecordedEvent>,
) {
    let forged = forge(tampered);
    backend.rewrite_log(&forged).await;
    let store = backend.open().await;
    assert_eq!(
        verify_log(&store).await.unwrap(),
        forged.len() as u64,
        "a consistent forgery passes the chains alone"
    );
    store.close().await;
    let at = &forged[CHECKPOINT_AT - 1];
    let b = break_against(backend, held).await;
    let expected = ChainBreak {
        position: held.position,
        stream: Some(at.stream_id.clone()),
        kind: BreakKind::CheckpointMismatch {
            expected: held.log_hash,
            found: at.log_hash,
        },
    };
    assert_eq!(b, expected);
    assert_eq!(
        break_after(backend, held).await,
        expected,
        "the quick check after the checkpoint sees it too"
    );
    let text = b.to_string();
    assert!(
        text.contains("position 8")
            && text.contains(&format!("`{}`", at.stream_id))
            && text.contains(&held.log_hash.to_hex())
            && text.contains(&at.log_hash.to_hex()),
        "{text}"
    );
}

pub async fn tamper_an_edited_byte_is_detected_against_a_checkpoint<B: DurableBackend>() {
    let (backend, all, held) = checkpointed_fixture::<B>().await;
    let original = &all[2]; // position 3, stream s2
    let edited = original.data.as_str().replacen("\"i\":0", "\"i\":1", 1);
    assert_eq!(
        edited.len(),
        original.data.as_str().len(),
        "one byte changed"
    );

    backend.overwrite_data(original.position, &edited).await;
    let b = break_against(&backend, held).await;
    assert_eq!(
        (b.position, b.stream.clone()),
        (Position(3), Some(stream("s2")))
    );
    assert!(
        matches!(b.kind, BreakKind::ContentEdited { recorded, .. } if recorded == original.hash),
        "{b}"
    );

    let mut tampered = all.clone();
    tampered[2] = with_data(tampered[2].clone(), &edited);
    assert_only_the_checkpoint_catches(&backend, held, tampered).await;
}

pub async fn tamper_a_deleted_event_is_detected_against_a_checkpoint<B: DurableBackend>() {
    let (backend, all, held) = checkpointed_fixture::<B>().await;
    backend.delete_event(Position(4)).await;
    let b = break_against(&backend, held).await;
    assert_eq!(
        b,
        ChainBreak {
            position: Position(5),
            stream: Some(stream("s1")),
            kind: BreakKind::PositionGap {
                expected: Position(4),
                found: Position(5)
            }
        }
    );

    let mut tampered = all.clone();
    tampered.remove(3);
    assert_only_the_checkpoint_catches(&backend, held, tampered).await;
}

pub async fn tamper_a_rewritten_stream_is_detected_against_a_checkpoint<B: DurableBackend>() {
    // Stream s1 (positions 2, 5, 8) rewritten with its per-stream hashes and
    // prev links recomputed, so the stream on its own verifies.
    let (backend, all, held) = checkpointed_fixture::<B>().await;
    let mut tampered = all.clone();
    let mut prev = EventHash::GENESIS;
    for e in tampered.iter_mut().filter(|e| e.stream_id == stream("s1")) {
        *e = with_data(e.clone(), r#"{"tag":"forged","i":0}"#);
        e.prev_hash = prev;
        e.hash = e.computed_hash();
        prev = e.hash;
    }
    backend.rewrite_log(&tampered).await;
    let b = break_against(&backend, held).await;
    assert_eq!(
        (b.position, b.stream.clone()),
        (Position(2), Some(stream("s1")))
    );
    assert_eq!(
        b.kind,
        BreakKind::LogHashMismatch {
            expected: all[0].log_hash.extend(Position(2), &tampered[1].hash),
            found: all[1].log_hash,
        }
    );

    assert_only_the_checkpoint_catches(&backend, held, tampered).await;
}

pub async fn tamper_an_inserted_event_is_detected_against_a_checkpoint<B: DurableBackend>() {
    let (backend, all, held) = checkpointed_fixture::<B>().await;
    let mut tampered = all.clone();
    let extra = with_data(all[0].clone(), r#"{"tag":"inserted","i":0}"#);
    tampered.insert(2, extra);
    assert_only_the_checkpoint_catches(&backend, held, tampered).await;
}

pub async fn tamper_reordered_events_are_detected_against_a_checkpoint<B: DurableBackend>() {
    let (backend, all, held) = checkpointed_fixture::<B>().await;
    // Careless: positions 3 (s2) and 4 (s0) swapped, nothing recomputed.
    let mut swapped = all.clone();
    swapped.swap(2, 3);
    swapped[2].position = Position(3);
    swapped[3].position = Position(4);
    backend.rewrite_log(&swapped).await;
    let b = break_against(&backend, held).await;
    assert_eq!(
        (b.position, b.stream.clone()),
        (Position(3), Some(stream("s0")))
    );
    assert!(matches!(b.kind, BreakKind::ContentEdited { .. }), "{b}");

    let mut tampered = all.clone();
    tampered.swap(2, 3);
    assert_only_the_checkpoint_catches(&backend, held, tampered).await;
}

pub async fn tamper_a_cut_tail_is_detected_against_a_checkpoint<B: DurableBackend>() {
    let (backend, _, held) = checkpointed_fixture::<B>().await;
    // Cutting events after the checkpoint is beyond what it vouches for.
    for p in [10, 9] {
        backend.delete_event(Position(p)).await;
    }
    let store = backend.open().await;
    assert_eq!(
        verify_log_against(&store, [held])
            .await
            .unwrap()
            .checkpoints,
        1
    );
    store.close().await;
    // Cutting into it is found, and the first missing position named.
    for p in [8, 7] {
        backend.delete_event(Position(p)).await;
    }
    let b = break_against(&backend, held).await;
    assert_eq!(
        b,
        ChainBreak {
            position: Position(7),
            stream: None,
            kind: BreakKind::Truncated {
                checkpoint: Position(8),
                head: Position(6)
            }
        }
    );
    assert_eq!(break_after(&backend, held).await, b);
    assert!(b.to_string().contains("cut off"), "{b}");
}

// ---------------------------------------------------------- coordination

pub async fn a_lease_has_one_holder_until_it_expires_or_is_released<B: Backend>() {
    let backend = B::fresh().await;
    let store = backend.open().await;
    let ttl = Duration::from_millis(400);
    assert!(store.acquire_lease("sweep", "a", ttl).await.unwrap());
    assert!(!store.acquire_lease("sweep", "b", ttl).await.unwrap());
    assert!(
        store.acquire_lease("sweep", "a", ttl).await.unwrap(),
        "its holder renews it"
    );
    assert!(
        store.acquire_lease("checkpoints", "b", ttl).await.unwrap(),
        "leases are by name"
    );
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(
        store.acquire_lease("sweep", "b", ttl).await.unwrap(),
        "an expired lease moves"
    );
    assert!(!store.acquire_lease("sweep", "a", ttl).await.unwrap());
    store.release_lease("sweep", "a").await.unwrap();
    assert!(
        !store.acquire_lease("sweep", "a", ttl).await.unwrap(),
        "only its holder releases a lease"
    );
    store.release_lease("sweep", "b").await.unwrap();
    assert!(
        store.acquire_lease("sweep", "a", ttl).await.unwrap(),
        "a released lease is free at once"
    );
}

pub async fn racing_lease_takers_have_exactly_one_winner<B: Backend>() {
    const RACERS: usize = 16;
    let backend = B::fresh().await;
    let store = backend.open().await;
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|racer| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let holder = format!("racer-{racer}");
                store
                    .acquire_lease("once", &holder, Duration::from_secs(30))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1, "one lease, one holder");
}

pub async fn exclusive_sections_admit_one_caller_at_a_time<B: Backend>() {
    const CALLERS: usize = 8;
    let backend = B::fresh().await;
    let store = backend.open().await;
    let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (store, inside, most) = (store.clone(), inside.clone(), most.clone());
            tokio::spawn(async move {
                let _held = store.exclusive("verify").await.unwrap();
                let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(TIMEOUT, task).await.unwrap().unwrap();
    }
    assert_eq!(
        most.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "never two callers in the section at once"
    );
    // Another section is not held by this one.
    let _a = store.exclusive("a").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), store.exclusive("b"))
        .await
        .expect("section b is free while a is held")
        .unwrap();
}

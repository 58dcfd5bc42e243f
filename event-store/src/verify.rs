//! Verification: walks a log in position order, checks both hash chains and
//! any checkpoints an auditor holds, and names the first broken place.
//!
//! [`ChainVerifier`] is pure logic over [`RecordedEvent`]s, so it runs
//! where the events are: in the store at start-up ([`verify_log`]), or in a
//! client that receives them over gRPC. It streams: memory grows with the
//! number of streams (one version and hash each), not with the log.
//!
//! What the chains catch on their own: an edit (content no longer matches
//! its hash), a re-hashed edit (the stream's next `prev_hash`, and the log
//! hash, no longer link), a deletion (a gap in positions or versions). What
//! only a held checkpoint catches: a log rewritten with every hash
//! recomputed, and events cut off the end. Events after the last held
//! checkpoint are vouched for by nothing but the chains (ADR 0014).

use std::collections::HashMap;
use std::ops::ControlFlow;

use crate::chain::{EventHash, LogCheckpoint, LogHash};
use crate::event::{Position, RecordedEvent, StreamId, StreamVersion};
use crate::store::{EventStore, StoreError};

/// The first place where the log is not what was appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event log broken at position {position}{}: {kind}", in_stream(.stream))]
pub struct ChainBreak {
    /// Where the break was found.
    pub position: Position,
    /// The stream of the event found there; `None` when there is no event
    /// (the log ends before a held checkpoint).
    pub stream: Option<StreamId>,
    /// What is wrong there.
    pub kind: BreakKind,
}

fn in_stream(stream: &Option<StreamId>) -> String {
    match stream {
        Some(s) => format!(" (stream `{s}`)"),
        None => String::new(),
    }
}

/// What kind of link is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakKind {
    #[error("expected position {expected}, found {found} (events are missing or out of order)")]
    PositionGap { expected: Position, found: Position },
    #[error("expected stream version {expected}, found {found}")]
    VersionGap {
        expected: StreamVersion,
        found: StreamVersion,
    },
    #[error(
        "the event's content hashes to {computed}, not to its recorded hash {recorded} (edited)"
    )]
    ContentEdited {
        recorded: EventHash,
        computed: EventHash,
    },
    #[error(
        "prev_hash is {found}, but the previous event of the stream has hash {expected} (an event was edited and re-hashed, or moved)"
    )]
    PrevHashMismatch {
        expected: EventHash,
        found: EventHash,
    },
    #[error(
        "log hash is {found}, but the log up to here hashes to {expected} (an event at or before this position was changed)"
    )]
    LogHashMismatch { expected: LogHash, found: LogHash },
    #[error(
        "the log up to here hashes to {found}, but the held checkpoint says {expected} (an event at or before this position was edited, removed, inserted or reordered)"
    )]
    CheckpointMismatch { expected: LogHash, found: LogHash },
    #[error(
        "the log ends at position {head}, before the held checkpoint at position {checkpoint} (events were cut off the end)"
    )]
    Truncated {
        checkpoint: Position,
        head: Position,
    },
}

/// What a verification that passed covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedLog {
    /// Events checked.
    pub events: u64,
    /// Distinct streams seen.
    pub streams: usize,
    /// Held checkpoints the log matched.
    pub checkpoints: usize,
    /// Position and log hash of the last event checked: the checkpoint an
    /// auditor can hold from now on.
    pub head: LogCheckpoint,
}

/// Walks a log in position order from [`Position::START`] (or from a
/// trusted checkpoint, [`ChainVerifier::resume`]) and checks every link,
/// and the log against each held checkpoint.
///
/// Feed it every event with [`ChainVerifier::check`], then call
/// [`ChainVerifier::finish`], which also fails when the log ended before a
/// held checkpoint. After a break, stop: the verifier's state is no longer
/// meaningful.
#[derive(Debug)]
pub struct ChainVerifier {
    /// Where the walk began: [`LogCheckpoint::EMPTY`] unless resumed.
    start: LogCheckpoint,
    head: LogCheckpoint,
    streams: HashMap<StreamId, (StreamVersion, EventHash)>,
    /// Held checkpoints not reached yet, highest position first.
    pending: Vec<LogCheckpoint>,
    matched: usize,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    /// A verifier that checks the chains only.
    pub fn new() -> Self {
        Self::with_checkpoints([])
    }

    /// A verifier that also checks the log against each held checkpoint, in
    /// any order; duplicates are checked each.
    pub fn with_checkpoints(held: impl IntoIterator<Item = LogCheckpoint>) -> Self {
        let mut pending: Vec<_> = held.into_iter().collect();
        pending.sort_by_key(|c| std::cmp::Reverse(c.position));
        ChainVerifier {
            start: LogCheckpoint::EMPTY,
            head: LogCheckpoint::EMPTY,
            streams: HashMap::new(),
            pending,
            matched: 0,
        }
    }

    /// A verifier that trusts `from` (a checkpoint already verified or
    /// held) and checks the events after it: the first must be at the next
    /// position and extend `from`'s log hash, so the log after `from`
    /// provably continues the log `from` vouched for. It cannot see the
    /// events before `from`: a stream that began earlier has its first
    /// version and `prev_hash` after `from` taken as given, later ones
    /// checked. For the control plane's re-check of new appends and
    /// `audit verify --from`; a full walk ([`ChainVerifier::with_checkpoints`])
    /// is what vouches for everything.
    pub fn resume(from: LogCheckpoint) -> Self {
        ChainVerifier {
            start: from,
            head: from,
            ..Self::new()
        }
    }

    /// Checks the next event of the log.
    pub fn check(&mut self, event: &RecordedEvent) -> Result<(), ChainBreak> {
        if self.head.position == Position(0) {
            self.settle(None)?; // checkpoints of the empty log
        }
        let brk = |kind| ChainBreak {
            position: event.position,
            stream: Some(event.stream_id.clone()),
            kind,
        };
        let expected = self.head.position.next();
        if event.position != expected {
            return Err(brk(BreakKind::PositionGap {
                expected,
                found: event.position,
            }));
        }
        let (expected_version, expected_prev) = match self.streams.get(&event.stream_id) {
            Some((v, h)) => (v.next(), *h),
            // Resumed: the stream may have begun before the walk did.
            None if self.start.position != Position(0) => (event.version, event.prev_hash),
            None => (StreamVersion(0), EventHash::GENESIS),
        };
        if event.version != expected_version {
            return Err(brk(BreakKind::VersionGap {
                expected: expected_version,
                found: event.version,
            }));
        }
        let computed = event.computed_hash();
        if computed != event.hash {
            return Err(brk(BreakKind::ContentEdited {
                recorded: event.hash,
                computed,
            }));
        }
        if event.prev_hash != expected_prev {
            return Err(brk(BreakKind::PrevHashMismatch {
                expected: expected_prev,
                found: event.prev_hash,
            }));
        }
        let log_hash = self.head.log_hash.extend(event.position, &event.hash);
        if event.log_hash != log_hash {
            return Err(brk(BreakKind::LogHashMismatch {
                expected: log_hash,
                found: event.log_hash,
            }));
        }
        match self.streams.get_mut(&event.stream_id) {
            Some(tail) => *tail = (event.version, event.hash),
            None => {
                self.streams
                    .insert(event.stream_id.clone(), (event.version, event.hash));
            }
        }
        self.head = LogCheckpoint {
            position: event.position,
            log_hash,
        };
        self.settle(Some(&event.stream_id))
    }

    /// Compares every held checkpoint at the head with the log hash there.
    /// Positions advance one at a time, so each checkpoint is met exactly
    /// when the head reaches it.
    fn settle(&mut self, stream: Option<&StreamId>) -> Result<(), ChainBreak> {
        while let Some(held) = self.pending.last().copied() {
            if held.position != self.head.position {
                break;
            }
            self.pending.pop();
            if held.log_hash != self.head.log_hash {
                return Err(ChainBreak {
                    position: held.position,
                    stream: stream.cloned(),
                    kind: BreakKind::CheckpointMismatch {
                        expected: held.log_hash,
                        found: self.head.log_hash,
                    },
                });
            }
            self.matched += 1;
        }
        Ok(())
    }

    /// Ends the walk: fails when a held checkpoint lies beyond the last
    /// event (the log was cut short), otherwise says what was covered.
    pub fn finish(mut self) -> Result<VerifiedLog, ChainBreak> {
        if self.head.position == Position(0) {
            self.settle(None)?;
        }
        if let Some(held) = self.pending.last() {
            return Err(ChainBreak {
                position: self.head.position.next(),
                stream: None,
                kind: BreakKind::Truncated {
                    checkpoint: held.position,
                    head: self.head.position,
                },
            });
        }
        Ok(VerifiedLog {
            events: self.checked(),
            streams: self.streams.len(),
            checkpoints: self.matched,
            head: self.head,
        })
    }

    /// How many events have passed so far.
    pub fn checked(&self) -> u64 {
        self.head.position.0 - self.start.position.0
    }

    /// Position and log hash of the last event that passed.
    pub fn head(&self) -> LogCheckpoint {
        self.head
    }
}

/// Why [`verify_log`] could not vouch for the log.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The log is not what was appended.
    #[error(transparent)]
    Broken(#[from] ChainBreak),
    /// The log could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads the whole log and checks every link; returns how many events
/// passed.
pub async fn verify_log(store: &dyn EventStore) -> Result<u64, VerifyError> {
    Ok(verify_log_against(store, []).await?.events)
}

/// Checks that the stored log still agrees with `from` and that every event
/// after it extends it ([`ChainVerifier::resume`]): the event at `from`'s
/// position must still carry its log hash, which commits to everything
/// before it. Cheaper than [`verify_log_against`], which alone catches an
/// edit before `from` whose later log hashes were left alone.
pub async fn verify_log_after(
    store: &dyn EventStore,
    from: LogCheckpoint,
) -> Result<VerifiedLog, VerifyError> {
    if from.position != Position(0) {
        let at = store.read_all(from.position, 1).await?;
        match at.first() {
            Some(e) if e.position == from.position => {
                if e.log_hash != from.log_hash {
                    return Err(ChainBreak {
                        position: from.position,
                        stream: Some(e.stream_id.clone()),
                        kind: BreakKind::CheckpointMismatch {
                            expected: from.log_hash,
                            found: e.log_hash,
                        },
                    }
                    .into());
                }
            }
            Some(e) => {
                return Err(ChainBreak {
                    position: e.position,
                    stream: Some(e.stream_id.clone()),
                    kind: BreakKind::PositionGap {
                        expected: from.position,
                        found: e.position,
                    },
                }
                .into());
            }
            None => {
                let head = store.head().await?;
                return Err(ChainBreak {
                    position: head.next(),
                    stream: None,
                    kind: BreakKind::Truncated {
                        checkpoint: from.position,
                        head,
                    },
                }
                .into());
            }
        }
    }
    walk(store, from.position.next(), ChainVerifier::resume(from)).await
}

/// Reads the whole log, page by page, and checks every link and each held
/// checkpoint.
pub async fn verify_log_against(
    store: &dyn EventStore,
    held: impl IntoIterator<Item = LogCheckpoint>,
) -> Result<VerifiedLog, VerifyError> {
    walk(
        store,
        Position::START,
        ChainVerifier::with_checkpoints(held),
    )
    .await
}

/// Feeds `verifier` the log from `next` on, each event lent by the store
/// (`EventStore::visit_all`), up to the first break.
async fn walk(
    store: &dyn EventStore,
    next: Position,
    mut verifier: ChainVerifier,
) -> Result<VerifiedLog, VerifyError> {
    let mut broken = None;
    store
        .visit_all(next, &mut |event| match verifier.check(event) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                broken = Some(e);
                ControlFlow::Break(())
            }
        })
        .await?;
    match broken {
        Some(e) => Err(e.into()),
        None => Ok(verifier.finish()?),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::chain::link;
    use crate::event::{EventMetadata, EventType, JsonObject, NewEvent};

    pub(crate) fn new_event(n: u64) -> NewEvent {
        NewEvent::from_json_text(
            EventType::parse("Happened").unwrap(),
            1,
            &format!(r#"{{"n":{n}}}"#),
            &EventMetadata::new("t"),
        )
        .unwrap()
    }

    /// A log of `(stream, events)` appends, linked as a store links them.
    fn log_of(appends: &[(&str, u64)]) -> Vec<RecordedEvent> {
        let mut log: Vec<RecordedEvent> = vec![];
        let mut n = 0;
        for (stream, count) in appends {
            let stream = StreamId::parse(*stream).unwrap();
            let tail = log
                .iter()
                .rev()
                .find(|e| e.stream_id == stream)
                .map(|e| (e.version, e.hash));
            let head = log.last().map_or(LogCheckpoint::EMPTY, LogCheckpoint::of);
            let batch = (0..*count).map(|_| {
                n += 1;
                new_event(n)
            });
            log.extend(link(&stream, tail, head, batch.collect()));
        }
        log
    }

    /// a0 b0 a1 b1 c0 a2: three streams interleaved.
    fn log() -> Vec<RecordedEvent> {
        log_of(&[("a", 1), ("b", 1), ("a", 1), ("b", 1), ("c", 1), ("a", 1)])
    }

    fn forge(events: &[RecordedEvent]) -> Vec<RecordedEvent> {
        crate::chain::relink(events.iter().cloned())
    }

    fn verify(events: &[RecordedEvent], held: &[LogCheckpoint]) -> Result<VerifiedLog, ChainBreak> {
        let mut v = ChainVerifier::with_checkpoints(held.iter().copied());
        for e in events {
            v.check(e)?;
        }
        v.finish()
    }

    fn edit(e: &mut RecordedEvent, data: &str) {
        e.data = JsonObject::parse("data", data).unwrap();
    }

    #[test]
    fn an_intact_log_verifies_and_reports_its_head() {
        let events = log();
        let report = verify(&events, &[]).unwrap();
        assert_eq!(
            report,
            VerifiedLog {
                events: 6,
                streams: 3,
                checkpoints: 0,
                head: LogCheckpoint::of(&events[5]),
            }
        );
    }

    #[test]
    fn an_intact_log_matches_every_checkpoint_taken_from_it() {
        // Given checkpoints taken at the start, in the middle and at the head
        let events = log();
        let held = [
            LogCheckpoint::of(&events[5]),
            LogCheckpoint::EMPTY,
            LogCheckpoint::of(&events[2]),
        ];
        // When the same log is verified against them, then all match
        assert_eq!(verify(&events, &held).unwrap().checkpoints, 3);
    }

    #[test]
    fn an_empty_log_verifies_against_the_empty_checkpoint_only() {
        assert_eq!(verify(&[], &[LogCheckpoint::EMPTY]).unwrap().checkpoints, 1);
        let forged = LogCheckpoint {
            position: Position(0),
            log_hash: LogHash([9; 32]),
        };
        let err = verify(&log(), &[forged]).unwrap_err();
        assert_eq!((err.position, err.stream), (Position(0), None));
        assert!(matches!(err.kind, BreakKind::CheckpointMismatch { .. }));
    }

    #[test]
    fn an_edited_event_is_found_where_it_is() {
        let mut events = log();
        edit(&mut events[2], r#"{"n":999}"#);
        let err = verify(&events, &[]).unwrap_err();
        assert_eq!(err.position, Position(3));
        assert_eq!(err.stream, Some(StreamId::parse("a").unwrap()));
        assert!(
            matches!(err.kind, BreakKind::ContentEdited { recorded, .. } if recorded == events[2].hash)
        );
        assert!(
            err.to_string()
                .starts_with("event log broken at position 3 (stream `a`): the event's content"),
            "{err}"
        );
    }

    #[test]
    fn an_edited_and_rehashed_event_breaks_the_log_chain_at_the_next_event() {
        // Given a0 edited, with its hash and log hash recomputed
        let mut events = log();
        edit(&mut events[0], r#"{"n":999}"#);
        events[0].hash = events[0].computed_hash();
        events[0].log_hash = LogHash::GENESIS.extend(Position(1), &events[0].hash);
        // Then b0, in another stream, no longer extends the log hash
        let err = verify(&events, &[]).unwrap_err();
        assert_eq!(err.position, Position(2));
        assert_eq!(err.stream, Some(StreamId::parse("b").unwrap()));
        assert!(
            matches!(err.kind, BreakKind::LogHashMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn an_edit_with_the_log_chain_recomputed_breaks_its_stream_link() {
        // Given a0 edited and re-hashed, and every log hash recomputed, but
        // a1's prev_hash left alone
        let original = log();
        let mut events = original.clone();
        edit(&mut events[0], r#"{"n":999}"#);
        events[0].hash = events[0].computed_hash();
        let mut log_hash = LogHash::GENESIS;
        for e in &mut events {
            e.log_hash = log_hash.extend(e.position, &e.hash);
            log_hash = e.log_hash;
        }
        // Then a1 at position 3 does not link to a0
        let err = verify(&events, &[]).unwrap_err();
        assert_eq!(err.position, Position(3));
        assert_eq!(
            err.kind,
            BreakKind::PrevHashMismatch {
                expected: events[0].hash,
                found: original[0].hash,
            }
        );
    }

    #[test]
    fn an_edited_event_with_its_own_hashes_recomputed_breaks_the_log_chain_at_once() {
        // Given an edit whose event hash is recomputed but whose log hash is
        // left as stored
        let mut events = log();
        edit(&mut events[1], r#"{"n":999}"#);
        events[1].hash = events[1].computed_hash();
        let err = verify(&events, &[]).unwrap_err();
        // Then the log chain breaks at the edited event, in stream b
        assert_eq!(err.position, Position(2));
        assert_eq!(err.stream, Some(StreamId::parse("b").unwrap()));
        assert!(
            matches!(err.kind, BreakKind::LogHashMismatch { found, .. } if found == events[1].log_hash)
        );
    }

    #[test]
    fn a_deleted_event_is_found() {
        let mut events = log();
        events.remove(1);
        assert_eq!(
            verify(&events, &[]).unwrap_err().kind,
            BreakKind::PositionGap {
                expected: Position(2),
                found: Position(3)
            }
        );
    }

    #[test]
    fn a_renumbered_deletion_is_found() {
        // Given b0 deleted, and positions renumbered and every hash but the
        // per-stream versions recomputed to hide the gap
        let mut events = log();
        events.remove(1);
        let mut log_hash = LogHash::GENESIS;
        for (i, e) in events.iter_mut().enumerate() {
            e.position = Position(i as u64 + 1);
            e.hash = e.computed_hash();
            e.log_hash = log_hash.extend(e.position, &e.hash);
            log_hash = e.log_hash;
        }
        // Then b1 now starts stream b at version 1
        let err = verify(&events, &[]).unwrap_err();
        assert_eq!(err.stream, Some(StreamId::parse("b").unwrap()));
        assert!(matches!(err.kind, BreakKind::VersionGap { .. }));
    }

    #[test]
    fn a_log_forged_consistently_passes_the_chains_but_not_a_checkpoint() {
        // Given a checkpoint at position 4 and each kind of forgery at or
        // before it, with every hash recomputed
        let events = log();
        let held = [LogCheckpoint::of(&events[3])];
        let mut edited = events.clone();
        edit(&mut edited[1], r#"{"n":999}"#);
        let mut deleted = events.clone();
        deleted.remove(2);
        let mut inserted = events.clone();
        inserted.insert(1, events[0].clone());
        let mut reordered = events.clone();
        reordered.swap(0, 1);
        for (name, tampered) in [
            ("edited", edited),
            ("deleted", deleted),
            ("inserted", inserted),
            ("reordered", reordered),
        ] {
            let forged = forge(&tampered);
            // Then the chains alone see nothing
            assert!(verify(&forged, &[]).is_ok(), "{name}");
            // And the checkpoint names position 4, with both hashes
            let err = verify(&forged, &held).unwrap_err();
            assert_eq!(err.position, Position(4), "{name}");
            assert_eq!(err.stream, Some(forged[3].stream_id.clone()), "{name}");
            assert_eq!(
                err.kind,
                BreakKind::CheckpointMismatch {
                    expected: events[3].log_hash,
                    found: forged[3].log_hash,
                },
                "{name}"
            );
            assert!(err.to_string().contains("held checkpoint"), "{name}: {err}");
        }
    }

    #[test]
    fn a_forgery_after_the_checkpoint_is_not_the_checkpoints_concern() {
        // Given a checkpoint at position 3 and an event after it forged
        let events = log();
        let mut tampered = events.clone();
        edit(&mut tampered[4], r#"{"n":999}"#);
        let forged = forge(&tampered);
        // Then the checkpoint still matches: it vouches for 1..=3 only
        assert_eq!(
            verify(&forged, &[LogCheckpoint::of(&events[2])])
                .unwrap()
                .checkpoints,
            1
        );
    }

    #[test]
    fn a_log_cut_short_of_a_checkpoint_is_found() {
        // Given a checkpoint at the head, position 6
        let events = log();
        let held = [LogCheckpoint::of(&events[5])];
        // When the last two events are cut off
        let err = verify(&events[..4], &held).unwrap_err();
        // Then the first missing position is named
        assert_eq!(
            err,
            ChainBreak {
                position: Position(5),
                stream: None,
                kind: BreakKind::Truncated {
                    checkpoint: Position(6),
                    head: Position(4)
                }
            }
        );
        assert!(err.to_string().contains("cut off"), "{err}");
        // And an empty log is cut short of it too
        assert!(matches!(
            verify(&[], &held).unwrap_err().kind,
            BreakKind::Truncated { .. }
        ));
    }

    #[test]
    fn a_resumed_walk_checks_only_what_follows_its_checkpoint() {
        // Given a checkpoint at position 3 of an intact log
        let events = log();
        let from = LogCheckpoint::of(&events[2]);
        // When the walk resumes there with the events after it
        let mut v = ChainVerifier::resume(from);
        for e in &events[3..] {
            v.check(e).unwrap();
        }
        // Then it counts those, streams begun before included
        let report = v.finish().unwrap();
        assert_eq!((report.events, report.streams), (3, 3));
        assert_eq!(report.head, LogCheckpoint::of(&events[5]));
    }

    #[test]
    fn a_resumed_walk_refuses_a_log_that_does_not_continue_its_checkpoint() {
        // Given a log forged before position 3, every hash recomputed
        let events = log();
        let from = LogCheckpoint::of(&events[2]);
        let mut tampered = events.clone();
        edit(&mut tampered[0], r#"{"n":999}"#);
        let forged = forge(&tampered);
        // When a walk resumes from the checkpoint held before the forgery
        let err = ChainVerifier::resume(from).check(&forged[3]).unwrap_err();
        // Then the first event after it does not extend it
        assert_eq!(err.position, Position(4));
        assert!(
            matches!(err.kind, BreakKind::LogHashMismatch { .. }),
            "{err}"
        );
        // And one that starts elsewhere is a gap
        let err = ChainVerifier::resume(from).check(&events[4]).unwrap_err();
        assert!(matches!(err.kind, BreakKind::PositionGap { .. }), "{err}");
    }

    #[test]
    fn a_resumed_walk_still_checks_streams_once_seen() {
        // Given a walk resumed at position 2 that sees a1 (version 1)
        let events = log();
        let mut v = ChainVerifier::resume(LogCheckpoint::of(&events[1]));
        v.check(&events[2]).unwrap();
        v.check(&events[3]).unwrap();
        v.check(&events[4]).unwrap();
        // When a2 claims another prev_hash, its hashes recomputed
        let mut a2 = events[5].clone();
        a2.prev_hash = EventHash([7; 32]);
        a2.hash = a2.computed_hash();
        a2.log_hash = events[4].log_hash.extend(a2.position, &a2.hash);
        // Then the link to a1 is checked
        let err = v.check(&a2).unwrap_err();
        assert!(
            matches!(err.kind, BreakKind::PrevHashMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn two_checkpoints_that_disagree_cannot_both_pass() {
        let events = log();
        let good = LogCheckpoint::of(&events[1]);
        let bad = LogCheckpoint {
            log_hash: LogHash([1; 32]),
            ..good
        };
        let err = verify(&events, &[good, bad]).unwrap_err();
        assert_eq!(err.position, Position(2));
    }
}

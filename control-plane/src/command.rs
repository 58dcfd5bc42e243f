//! Command handling: load an aggregate from its stream, decide, append with
//! the expected version; on a conflict, reload and decide again a bounded
//! number of times.
//!
//! Commands are idempotent per command id, and a command id is not a
//! ticket (ADR 0012): every event records the id of the command that caused
//! it (`causation_id`) and the command's fingerprint (who sent it, which
//! command, on which stream, with which arguments). A command whose id the
//! stream already holds with the same fingerprint is answered from the log
//! instead of being decided again, so a client may retry safely; the same
//! id with another fingerprint (another principal, command or arguments)
//! is refused and recorded as `AccessDenied`. Events written before
//! fingerprints existed count as a retry only for the same actor.
//! Refusals of kind `Denied` are recorded as `AccessDenied` events
//! (SPEC §7) before they are returned.
//!
//! Within one process, commands on the same stream take turns (a striped
//! lock), so they never lose races to each other and never waste a replay;
//! the expected version and the bounded retry still guard against writers
//! in other processes.
//!
//! Loaded aggregates are cached (up to [`CACHED_STREAMS`] streams): a
//! command takes its stream's cached state and reads only the events
//! appended since, instead of replaying the whole stream. The log stays the
//! truth: a cached state is always caught up from the store before a
//! decision, so another process's appends are seen, and a conflict still
//! means "catch up and decide again". The one read skipped is the one a
//! store no other process writes says would find nothing: it knows the
//! stream's last version, and the cached state holds it (ADR 0029).

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use sealplane_event_store::{
    AppendError, Appended, EventMetadata, EventStore, EventType, ExpectedVersion, InvalidInput,
    NewEvent, Position, RecordedEvent, StoreError, StreamAppend, StreamId, StreamVersion,
};

use crate::domain::{Aggregate, CommandArguments, Context, DomainEvent, Refusal};
use crate::rate::PerMinute;

/// How many times a command is decided again after losing a race.
pub const DEFAULT_MAX_RETRIES: usize = 5;
/// The stream recording refused commands.
pub const ACCESS_DENIED_STREAM: &str = "access-denied";
/// Events read per page while loading an aggregate.
const LOAD_PAGE: usize = 1024;
/// Lock stripes: commands on streams that share a stripe take turns.
const STRIPES: usize = 256;

/// Streams whose loaded aggregate the handler keeps; when full, the cache
/// is emptied and refills with the streams in use.
pub const CACHED_STREAMS: usize = 10_000;

/// Identifies one command for idempotency and tracing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandEnvelope {
    /// Chosen by the client; the same id twice applies once.
    pub command_id: Uuid,
    /// Shared by every command of one user action.
    pub correlation_id: Uuid,
    /// The command's name as the API knows it, e.g. `CreateStore`; recorded
    /// in `AccessDenied` events (never the command's fields, which may carry
    /// ciphertext).
    pub name: &'static str,
}

impl CommandEnvelope {
    /// A fresh envelope for one command.
    pub fn new(name: &'static str) -> Self {
        CommandEnvelope {
            command_id: Uuid::new_v4(),
            correlation_id: Uuid::new_v4(),
            name,
        }
    }
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// Events appended (0 when the command was already satisfied).
    pub events: usize,
    /// The stream's version afterwards, `None` if it has no events.
    pub version: Option<StreamVersion>,
    /// The last position this command wrote, for read-your-writes; `None`
    /// when it wrote nothing.
    pub position: Option<Position>,
    /// True when the command id had been applied before and nothing new was
    /// written.
    pub replayed: bool,
}

/// Why a command did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<R: Refusal> {
    /// The aggregate refused it.
    #[error(transparent)]
    Refused(R),
    /// Other writers kept winning; nothing was written.
    #[error(
        "`{stream}` kept changing under this command ({attempts} attempts); nothing was written, try again"
    )]
    Aborted { stream: StreamId, attempts: usize },
    /// The command id was used before for another command (another
    /// principal's, another command, other arguments); nothing was written
    /// and the attempt was recorded as `AccessDenied`.
    #[error(
        "command id {command_id} was already used for another command; use a fresh id for a new command"
    )]
    Reused { command_id: Uuid },
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be read back as this aggregate's event.
    #[error("stream `{stream}` holds an unreadable event at position {position}: {reason}")]
    Unreadable {
        stream: StreamId,
        position: Position,
        reason: String,
    },
    /// An event could not be encoded (a bug: domain events are always
    /// valid JSON objects within the limits).
    #[error("event could not be stored: {0}")]
    Encode(#[from] InvalidInput),
}

/// An aggregate as loaded from its stream.
#[derive(Debug)]
pub struct Loaded<A> {
    /// Its state.
    pub state: A,
    /// The version of its last event, `None` for a new stream.
    pub version: Option<StreamVersion>,
    /// The commands that caused its events, for idempotency.
    causes: Vec<Cause>,
}

/// One event's cause, as far as idempotency needs it.
#[derive(Debug)]
struct Cause {
    command_id: Uuid,
    by: CausedBy,
    position: Position,
}

/// What identifies the command behind an event.
#[derive(Debug, PartialEq, Eq)]
enum CausedBy {
    /// Its fingerprint ([`fingerprint`]).
    Command(String),
    /// Only its actor: the event was written before fingerprints existed.
    Actor(String),
}

/// Whether a command was applied before.
#[derive(Debug, PartialEq, Eq)]
enum Applied {
    /// Its id is new to the stream.
    No,
    /// It was, last writing at this position.
    At(Position),
    /// Its id was used for another command.
    ByAnother,
}

impl<A> Loaded<A> {
    fn expected(&self) -> ExpectedVersion {
        match self.version {
            Some(v) => ExpectedVersion::Exact(v),
            None => ExpectedVersion::NoStream,
        }
    }

    /// Whether the command `command_id` with `fingerprint`, sent by
    /// `actor`, was applied: only events of its id and fingerprint (or, for
    /// events older than fingerprints, of its actor) are its own.
    fn applied(&self, command_id: Uuid, fingerprint: &str, actor: &str) -> Applied {
        let mut applied = Applied::No;
        for cause in self.causes.iter().filter(|c| c.command_id == command_id) {
            let same = match &cause.by {
                CausedBy::Command(f) => f == fingerprint,
                CausedBy::Actor(a) => a == actor,
            };
            if !same {
                return Applied::ByAnother;
            }
            applied = Applied::At(cause.position);
        }
        applied
    }
}

/// One command to decide: the stream of its aggregate, the command, and
/// its envelope.
pub struct Step<'a, C> {
    /// The aggregate's stream.
    pub stream: &'a StreamId,
    /// The command.
    pub command: &'a C,
    /// Its id and name.
    pub envelope: &'a CommandEnvelope,
}

impl<C> Clone for Step<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Step<'_, C> {}

impl<'a, C> Step<'a, C> {
    /// `command` on `stream`'s aggregate, sent as `envelope`.
    pub fn new(stream: &'a StreamId, command: &'a C, envelope: &'a CommandEnvelope) -> Self {
        Step {
            stream,
            command,
            envelope,
        }
    }
}

/// What [`CommandHandler::execute_pair`] did.
#[derive(Debug)]
pub struct Pair<T> {
    /// What the first command did.
    pub first: Executed,
    /// What the second did; `None` when there was none to decide.
    pub second: Option<Executed>,
    /// What the caller read of the two states afterwards.
    pub observed: T,
}

impl<T> Pair<T> {
    /// The last position either command wrote, for read-your-writes.
    pub fn position(&self) -> Option<Position> {
        let second = self.second.as_ref().and_then(|d| d.position);
        self.first.position.max(second)
    }
}

/// Why [`CommandHandler::execute_pair`] wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum PairError<RA: Refusal, RB: Refusal> {
    /// The first command did not take effect.
    #[error(transparent)]
    First(CommandError<RA>),
    /// The second did not, so neither did the first.
    #[error(transparent)]
    Second(CommandError<RB>),
}

/// A command decided on a loaded aggregate.
enum Decided<A: Aggregate> {
    /// Nothing to write: the command was applied before, or changes nothing.
    Answered(Executed, Loaded<A>),
    /// Events to append.
    Write(Write<A>),
}

impl<A: Aggregate> Decided<A> {
    /// What the command did, a write taking the next of `appended`, the
    /// parts of its append; and the aggregate it was decided on.
    fn finish<'a>(
        self,
        appended: &mut impl Iterator<Item = &'a Appended>,
    ) -> Result<(Executed, Loaded<A>), StoreError> {
        match self {
            Decided::Answered(done, loaded) => Ok((done, loaded)),
            Decided::Write(w) => match appended.next() {
                Some(part) => Ok((w.done(part), w.into_current(part))),
                None => Err(StoreError::backend(std::io::Error::other(
                    "the store answered an append with fewer parts than it was given",
                ))),
            },
        }
    }

    /// The aggregate's state with this command's events applied: the
    /// loaded one when there are none, a copy otherwise.
    fn state_after(&self) -> std::borrow::Cow<'_, A> {
        match self {
            Decided::Answered(_, loaded) => std::borrow::Cow::Borrowed(&loaded.state),
            Decided::Write(w) => std::borrow::Cow::Owned(after(&w.loaded.state, Some(&w.events))),
        }
    }

    /// The append of this command's events to `stream`, if it has any.
    fn take_part(&mut self, stream: &StreamId) -> Option<StreamAppend> {
        match self {
            Decided::Answered(..) => None,
            Decided::Write(w) => Some(w.take_part(stream)),
        }
    }

    fn into_loaded(self) -> Loaded<A> {
        match self {
            Decided::Answered(_, loaded) => loaded,
            Decided::Write(w) => w.loaded,
        }
    }
}

/// The events a command decided, not yet appended.
struct Write<A: Aggregate> {
    /// The aggregate they were decided on.
    loaded: Loaded<A>,
    events: Vec<A::Event>,
    /// The same events as the store takes them.
    encoded: Vec<NewEvent>,
    /// The command's id and fingerprint, which its events record.
    cause: (Uuid, String),
}

impl<A: Aggregate> Write<A> {
    /// The append of these events to `stream` (taken: a write is appended
    /// once, and decided afresh after a conflict).
    fn take_part(&mut self, stream: &StreamId) -> StreamAppend {
        StreamAppend::new(
            stream.clone(),
            self.loaded.expected(),
            std::mem::take(&mut self.encoded),
        )
    }

    /// The aggregate with these events applied, once appended as
    /// `appended`: what reading them back would give, so the next command
    /// on the stream need not read them (ADR 0029).
    fn into_current(self, appended: &Appended) -> Loaded<A> {
        let Write {
            mut loaded,
            events,
            cause: (command_id, fingerprint),
            ..
        } = self;
        for event in &events {
            loaded.state.apply(event);
        }
        for position in appended.first_position.0..=appended.last_position.0 {
            loaded.causes.push(Cause {
                command_id,
                by: CausedBy::Command(fingerprint.clone()),
                position: Position(position),
            });
        }
        loaded.version = Some(appended.version);
        loaded
    }

    /// What the command did, once appended as `appended`.
    fn done(&self, appended: &Appended) -> Executed {
        Executed {
            events: self.events.len(),
            version: Some(appended.version),
            position: Some(appended.last_position),
            replayed: false,
        }
    }
}

/// `state` with `events` applied (a clone).
fn after<A: Aggregate>(state: &A, events: Option<&[A::Event]>) -> A {
    let mut state = state.clone();
    for event in events.unwrap_or_default() {
        state.apply(event);
    }
    state
}

/// An `AccessDenied` event: who was refused what, on which target, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AccessDenied {
    /// The refused principal.
    pub actor: String,
    /// Its role.
    pub role: crate::domain::Role,
    /// The command's name.
    pub command: String,
    /// The stream the command targeted.
    pub target: String,
    /// The refusal, as shown to the caller.
    pub reason: String,
}

/// Executes commands against an event store.
#[derive(Clone)]
pub struct CommandHandler {
    store: Arc<dyn EventStore>,
    max_retries: usize,
    stripes: Arc<[tokio::sync::Mutex<()>]>,
    cache: Arc<std::sync::Mutex<HashMap<StreamId, Box<dyn Any + Send>>>>,
    /// Refusals recorded per principal per minute; beyond it a refusal is
    /// still answered but not recorded, so nobody fills the log with them.
    denials_per_minute: u64,
    denials: Arc<PerMinute<String>>,
}

impl CommandHandler {
    /// A handler retrying [`DEFAULT_MAX_RETRIES`] times on conflicts.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        CommandHandler {
            store,
            max_retries: DEFAULT_MAX_RETRIES,
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            cache: Arc::default(),
            denials_per_minute: u64::MAX,
            denials: Arc::default(),
        }
    }

    /// The same handler recording at most `per_minute` refusals of one
    /// principal a minute.
    pub fn with_denial_limit(mut self, per_minute: u64) -> Self {
        self.denials_per_minute = per_minute;
        self
    }

    /// Whether one more refusal of `actor` may be recorded this minute.
    pub fn may_record_denial(&self, actor: &str) -> bool {
        self.denials
            .allow(actor.to_owned(), self.denials_per_minute)
    }

    /// The same handler with another retry bound.
    pub fn with_max_retries(mut self, max_retries: usize) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// The store it writes to.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Replays `stream` into an aggregate.
    pub async fn load<A: Aggregate>(
        &self,
        stream: &StreamId,
    ) -> Result<Loaded<A>, CommandError<A::Refusal>> {
        let mut loaded = Loaded {
            state: A::default(),
            version: None,
            causes: Vec::new(),
        };
        self.catch_up(stream, &mut loaded).await?;
        Ok(loaded)
    }

    /// Applies the events of `stream` after `loaded.version`.
    async fn catch_up<A: Aggregate>(
        &self,
        stream: &StreamId,
        loaded: &mut Loaded<A>,
    ) -> Result<(), CommandError<A::Refusal>> {
        // The store no other process writes knows the stream ends where
        // this state does: there is nothing to read (ADR 0029).
        if loaded.version.is_some() && self.store.last_version_written(stream) == loaded.version {
            return Ok(());
        }
        let mut from = loaded.version.map_or(StreamVersion(0), StreamVersion::next);
        loop {
            let page = self.store.read_stream(stream, from, LOAD_PAGE).await?;
            for recorded in &page {
                let event: A::Event = decode(stream, recorded)?;
                loaded.state.apply(&event);
                loaded.version = Some(recorded.version);
                if let Ok(EventMetadata {
                    causation_id: Some(command_id),
                    command_fingerprint,
                    actor,
                    ..
                }) = recorded.metadata()
                {
                    loaded.causes.push(Cause {
                        command_id,
                        by: command_fingerprint.map_or(CausedBy::Actor(actor), CausedBy::Command),
                        position: recorded.position,
                    });
                }
            }
            match page.last() {
                Some(last) if page.len() == LOAD_PAGE => from = last.version.next(),
                _ => return Ok(()),
            }
        }
    }

    /// The cached aggregate of `stream` (taken out of the cache), caught up.
    async fn take_loaded<A: Aggregate>(
        &self,
        stream: &StreamId,
    ) -> Result<Loaded<A>, CommandError<A::Refusal>> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(stream)
            .and_then(|any| any.downcast::<Loaded<A>>().ok());
        match cached {
            Some(mut loaded) => {
                self.catch_up(stream, &mut loaded).await?;
                Ok(*loaded)
            }
            None => self.load(stream).await,
        }
    }

    /// What `read` makes of the aggregate of `stream` as the log holds it
    /// now, without deciding anything: for a use case that must know
    /// something fixed about an aggregate (an upload request's uri) before
    /// it decides on it.
    pub async fn current<A: Aggregate, T>(
        &self,
        stream: &StreamId,
        read: impl FnOnce(&A) -> T,
    ) -> Result<T, CommandError<A::Refusal>> {
        let loaded = self.take_loaded::<A>(stream).await?;
        let value = read(&loaded.state);
        self.keep(stream, loaded);
        Ok(value)
    }

    /// Keeps `loaded` for the next command on `stream`.
    fn keep<A: Aggregate>(&self, stream: &StreamId, loaded: Loaded<A>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHED_STREAMS {
            cache.clear();
        }
        cache.insert(stream.clone(), Box::new(loaded));
    }

    /// Decides `command` on the aggregate in `stream` and appends the
    /// result; see the module documentation for retries and idempotency.
    pub async fn execute<A: Aggregate>(
        &self,
        stream: &StreamId,
        command: &A::Command,
        ctx: &Context,
        envelope: &CommandEnvelope,
    ) -> Result<Executed, CommandError<A::Refusal>> {
        Ok(self
            .run::<A>(stream, command, ctx, envelope, false)
            .await?
            .0)
    }

    /// As [`CommandHandler::execute`], also returning the aggregate's state
    /// once the command took effect (with the events it wrote applied).
    pub async fn execute_observed<A: Aggregate>(
        &self,
        stream: &StreamId,
        command: &A::Command,
        ctx: &Context,
        envelope: &CommandEnvelope,
    ) -> Result<(Executed, A), CommandError<A::Refusal>> {
        let (done, state) = self.run::<A>(stream, command, ctx, envelope, true).await?;
        Ok((done, state.unwrap_or_default()))
    }

    /// Executes; with `observe`, also the state afterwards (a clone, so
    /// plain executions do not pay for it).
    async fn run<A: Aggregate>(
        &self,
        stream: &StreamId,
        command: &A::Command,
        ctx: &Context,
        envelope: &CommandEnvelope,
        observe: bool,
    ) -> Result<(Executed, Option<A>), CommandError<A::Refusal>> {
        let _turn = self.stripe(stream).lock().await;
        let step = Step::new(stream, command, envelope);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (done, loaded) = match self.decide::<A>(&step, ctx).await? {
                Decided::Answered(done, loaded) => (done, loaded),
                Decided::Write(mut write) => {
                    let part = write.take_part(stream);
                    match self.store.append_many(vec![part]).await {
                        Ok(appended) => {
                            let done = write.done(&appended[0]);
                            (done, write.into_current(&appended[0]))
                        }
                        Err(e) => {
                            self.keep(stream, write.loaded);
                            self.retry_on_conflict::<A::Refusal>(e, attempts)?;
                            continue;
                        }
                    }
                }
            };
            let state = observe.then(|| loaded.state.clone());
            // Kept with its own events applied; it still catches up with
            // any other writer's before the next decision.
            self.keep(stream, loaded);
            return Ok((done, state));
        }
    }

    /// Decides `first` on aggregate `A` and then, on the state it leaves,
    /// the command `then` makes of it on aggregate `B` (none: `B` is left
    /// alone), and appends the events of both as one atomic write: either
    /// both commands take effect or neither does. For a change of one
    /// aggregate that must be seen together with another's, such as an
    /// upload's outcome and the secret's version. Each command keeps its
    /// own idempotency and refusals; on a conflict both are decided again.
    /// Returns what each did and what `observe` reads of their states
    /// afterwards (`B`'s when it had a command). The two streams must
    /// differ: one command per stream and write.
    pub async fn execute_pair<A: Aggregate, B: Aggregate, T>(
        &self,
        ctx: &Context,
        first: Step<'_, A::Command>,
        second: (&StreamId, &CommandEnvelope),
        then: impl Fn(&A) -> Option<B::Command>,
        observe: impl FnOnce(&A, Option<&B>) -> T,
    ) -> Result<Pair<T>, PairError<A::Refusal, B::Refusal>> {
        let (stream_b, envelope_b) = second;
        let _turns = self.stripes_of(first.stream, stream_b).await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut a = self
                .decide::<A>(&first, ctx)
                .await
                .map_err(PairError::First)?;
            let part_a = a.take_part(first.stream);
            let state_a = a.state_after();
            let mut b = match then(&state_a) {
                None => None,
                Some(command) => {
                    let step = Step::new(stream_b, &command, envelope_b);
                    match self.decide::<B>(&step, ctx).await {
                        Ok(b) => Some(b),
                        Err(e) => {
                            drop(state_a);
                            self.keep(first.stream, a.into_loaded());
                            return Err(PairError::Second(e));
                        }
                    }
                }
            };
            let part_b = b.as_mut().and_then(|b| b.take_part(stream_b));
            let state_b = b.as_ref().map(Decided::state_after);
            let parts: Vec<_> = [part_a, part_b].into_iter().flatten().collect();
            let appended = match parts.is_empty() {
                true => vec![],
                false => match self.store.append_many(parts).await {
                    Ok(appended) => appended,
                    Err(e) => {
                        drop((state_a, state_b));
                        self.keep(first.stream, a.into_loaded());
                        if let Some(b) = b {
                            self.keep(stream_b, b.into_loaded());
                        }
                        self.retry_on_conflict::<A::Refusal>(e, attempts)
                            .map_err(PairError::First)?;
                        continue;
                    }
                },
            };
            let observed = observe(&state_a, state_b.as_deref());
            drop((state_a, state_b));
            let mut appended = appended.iter();
            let (first_done, loaded) = a
                .finish(&mut appended)
                .map_err(|e| PairError::First(e.into()))?;
            self.keep(first.stream, loaded);
            let second_done = match b {
                None => None,
                Some(b) => {
                    let (done, loaded) = b
                        .finish(&mut appended)
                        .map_err(|e| PairError::Second(e.into()))?;
                    self.keep(stream_b, loaded);
                    Some(done)
                }
            };
            return Ok(Pair {
                first: first_done,
                second: second_done,
                observed,
            });
        }
    }

    /// Loads `step`'s aggregate and decides its command: answered from the
    /// log (a retry, or nothing to do) or events to write. A refusal, or a
    /// command id used for another command, is recorded and returned.
    async fn decide<A: Aggregate>(
        &self,
        step: &Step<'_, A::Command>,
        ctx: &Context,
    ) -> Result<Decided<A>, CommandError<A::Refusal>> {
        let Step {
            stream,
            command,
            envelope,
        } = *step;
        let fingerprint = fingerprint(ctx, envelope, stream, command);
        let loaded = self.take_loaded::<A>(stream).await?;
        match loaded.applied(envelope.command_id, &fingerprint, ctx.actor.slug.as_str()) {
            Applied::ByAnother => {
                self.keep(stream, loaded);
                let reused = CommandError::Reused {
                    command_id: envelope.command_id,
                };
                self.record_access_denied(ctx, envelope, stream.as_str(), &reused.to_string())
                    .await?;
                return Err(reused);
            }
            Applied::At(position) => {
                let done = Executed {
                    events: 0,
                    version: loaded.version,
                    position: Some(position),
                    replayed: true,
                };
                return Ok(Decided::Answered(done, loaded));
            }
            Applied::No => {}
        }
        let events = match loaded.state.decide(command, ctx) {
            Ok(events) => events,
            Err(refusal) => {
                self.keep(stream, loaded);
                if refusal.is_security_event() {
                    self.record_denied(stream, ctx, envelope, &refusal).await?;
                }
                return Err(CommandError::Refused(refusal));
            }
        };
        if events.is_empty() {
            let done = Executed {
                events: 0,
                version: loaded.version,
                position: None,
                replayed: false,
            };
            return Ok(Decided::Answered(done, loaded));
        }
        let metadata = EventMetadata {
            command_fingerprint: Some(fingerprint.clone()),
            ..metadata(ctx, envelope)
        };
        let encoded = events
            .iter()
            .map(|e| encode(e, &metadata))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Decided::Write(Write {
            loaded,
            events,
            encoded,
            cause: (envelope.command_id, fingerprint),
        }))
    }

    /// `Ok` when an append refused with a conflict may be decided again
    /// (attempt `attempts` of at most `max_retries` more); the error to
    /// return otherwise (naming the stream that kept changing).
    fn retry_on_conflict<R: Refusal>(
        &self,
        refused: AppendError,
        attempts: usize,
    ) -> Result<(), CommandError<R>> {
        match refused {
            AppendError::Conflict(_) if attempts <= self.max_retries => Ok(()),
            AppendError::Conflict(conflict) => Err(CommandError::Aborted {
                stream: conflict.stream,
                attempts,
            }),
            AppendError::Store(e) => Err(e.into()),
            e @ (AppendError::EmptyBatch | AppendError::BatchTooLarge { .. }) => {
                Err(CommandError::Store(StoreError::backend(e)))
            }
        }
    }

    /// The turns of two streams, taken in stripe order so that two callers
    /// taking the same pair, in whichever order, never wait for each other.
    async fn stripes_of(
        &self,
        one: &StreamId,
        other: &StreamId,
    ) -> (
        tokio::sync::MutexGuard<'_, ()>,
        Option<tokio::sync::MutexGuard<'_, ()>>,
    ) {
        let (i, j) = (self.stripe_index(one), self.stripe_index(other));
        let (low, high) = (i.min(j), i.max(j));
        let first = self.stripes[low].lock().await;
        let second = match high == low {
            true => None,
            false => Some(self.stripes[high].lock().await),
        };
        (first, second)
    }

    fn stripe(&self, stream: &StreamId) -> &tokio::sync::Mutex<()> {
        &self.stripes[self.stripe_index(stream)]
    }

    fn stripe_index(&self, stream: &StreamId) -> usize {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(stream.as_str());
        (hash % self.stripes.len() as u64) as usize
    }

    async fn record_denied<R: Refusal>(
        &self,
        stream: &StreamId,
        ctx: &Context,
        envelope: &CommandEnvelope,
        refusal: &R,
    ) -> Result<(), CommandError<R>> {
        if !self.may_record_denial(ctx.actor.slug.as_str()) {
            // Still refused; only no longer recorded.
            return Ok(());
        }
        self.record_access_denied(ctx, envelope, stream.as_str(), &refusal.to_string())
            .await
            .map_err(CommandError::Store)
    }

    /// Appends an `AccessDenied` event: `ctx.actor` was refused `envelope`'s
    /// command on `target` because of `reason`. Callers refusing outside an
    /// aggregate (role checks on queries) use it directly. Fail closed: a
    /// refusal that cannot be recorded is an error, not a silent refusal.
    pub async fn record_access_denied(
        &self,
        ctx: &Context,
        envelope: &CommandEnvelope,
        target: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let denied = AccessDenied {
            actor: ctx.actor.slug.to_string(),
            role: ctx.actor.role,
            command: envelope.name.to_owned(),
            target: target.to_owned(),
            reason: reason.to_owned(),
        };
        let event = NewEvent::new(
            EventType::parse("AccessDenied").map_err(StoreError::backend)?,
            1,
            &denied,
            &metadata(ctx, envelope),
        )
        .map_err(StoreError::backend)?;
        let stream = StreamId::parse(ACCESS_DENIED_STREAM).map_err(StoreError::backend)?;
        match self
            .store
            .append(&stream, ExpectedVersion::Any, vec![event])
            .await
        {
            Ok(_) => Ok(()),
            Err(AppendError::Store(e)) => Err(e),
            Err(other) => Err(StoreError::backend(other)),
        }
    }
}

fn metadata(ctx: &Context, envelope: &CommandEnvelope) -> EventMetadata {
    EventMetadata {
        actor: ctx.actor.slug.to_string(),
        correlation_id: envelope.correlation_id,
        causation_id: Some(envelope.command_id),
        timestamp: ctx.now,
        command_fingerprint: None,
    }
}

/// The fingerprint of a command (ADR 0012): the SHA-256, in hex, of its
/// actor, its name, its target stream and its caller's arguments, each
/// length-prefixed so no two commands share an encoding.
fn fingerprint(
    ctx: &Context,
    envelope: &CommandEnvelope,
    stream: &StreamId,
    command: &impl CommandArguments,
) -> String {
    use sha2::{Digest, Sha256};
    let arguments = command.arguments().to_string();
    let mut hash = Sha256::new();
    hash.update(b"sealplane command fingerprint v1");
    for part in [
        ctx.actor.slug.as_str(),
        envelope.name,
        stream.as_str(),
        &arguments,
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

/// Encodes a domain event for the store.
pub fn encode<E: DomainEvent>(
    event: &E,
    metadata: &EventMetadata,
) -> Result<NewEvent, InvalidInput> {
    NewEvent::new(
        EventType::parse(event.event_type())?,
        event.schema_version(),
        event,
        metadata,
    )
}

/// Decodes a stored event of `stream` as a domain event.
pub fn decode<E: DomainEvent, R: Refusal>(
    stream: &StreamId,
    recorded: &RecordedEvent,
) -> Result<E, CommandError<R>> {
    recorded
        .data
        .deserialize()
        .map_err(|e| CommandError::Unreadable {
            stream: stream.clone(),
            position: recorded.position,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests;

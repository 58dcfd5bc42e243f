//! Sealplane's event store: the append-only log every state change goes
//! through (SPEC §1.2, §8).
//!
//! What it is for: the [`EventStore`] trait (append with optimistic
//! concurrency, read a stream, read the whole log, subscribe catch-up then
//! live), the hash chains that make tampering evident ([`chain`], checked by
//! [`ChainVerifier`] against held [`LogCheckpoint`]s), and the
//! backends: [`EmbeddedStore`] (one SQLite file, the default),
//! `PostgresStore` (feature `postgres`: one database several control
//! planes share, ADR 0019) and [`MemoryStore`] (unit tests of pure logic
//! only). Every backend passes the
//! conformance suite in `tests/conformance/`.
//!
//! What it is not for: it knows nothing of secrets, aggregates or
//! projections; events are typed JSON objects with metadata. Event payloads
//! must never carry a plaintext secret (SPEC §1.1): that is the callers'
//! invariant, which the end-to-end tests check by scanning the store file.

#![forbid(unsafe_code)]

#[cfg(feature = "embedded")]
pub mod backup;
pub mod chain;
mod coordination;
#[cfg(feature = "embedded")]
mod embedded;
mod event;
#[cfg(feature = "kurrentdb")]
mod kurrent;
mod memory;
pub mod migrate;
#[cfg(feature = "postgres")]
mod postgres;
mod redacted_url;
mod store;
mod subscription;
mod verify;
#[cfg(any(feature = "embedded", feature = "postgres"))]
mod writer;

pub use chain::{EventHash, LogCheckpoint, LogHash};
pub use coordination::{Exclusive, LocalCoordination};
#[cfg(feature = "embedded")]
pub use embedded::EmbeddedStore;
pub use event::{
    EventMetadata, EventType, ExpectedVersion, InvalidInput, JsonObject, MAX_EVENT_BYTES,
    MAX_EVENT_TYPE_BYTES, MAX_STREAM_ID_BYTES, NewEvent, Position, RecordedEvent, StreamId,
    StreamVersion,
};
#[cfg(feature = "kurrentdb")]
pub use kurrent::{
    KurrentConnectError, KurrentOptions, KurrentStore, LOG_STREAM as KURRENTDB_LOG_STREAM,
};
pub use memory::MemoryStore;
#[cfg(feature = "embedded")]
pub use migrate::EmbeddedImport;
pub use migrate::{LogImport, MigrateError, Migrated, copy_log};
#[cfg(feature = "postgres")]
pub use postgres::{
    APPEND_LOCK, ConnectError, NOTIFY_CHANNEL, PostgresImport, PostgresOptions, PostgresStore,
    SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION,
};
pub use redacted_url::RedactedUrl;
pub use store::{
    AppendError, Appended, Conflict, Decorator, EventStore, MAX_BATCH_BYTES, MAX_BATCH_EVENTS,
    StoreError, StreamAppend, Subscription, SubscriptionMessage, check_batch, check_expected,
    check_parts,
};
pub use verify::{
    BreakKind, ChainBreak, ChainVerifier, VerifiedLog, VerifyError, verify_log, verify_log_after,
    verify_log_against,
};

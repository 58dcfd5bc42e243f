//! The upload request aggregate (ADR 0002, stream `upload-{request_id}`):
//! the sealed upload protocol of SPEC §3 for one request, from the key
//! request to its outcome. The control plane only ever sees the reactor's
//! one-time public key and ciphertext sealed to it, never a value.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, SubsecRound as _, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::compact;
use super::key_hashes::KeyHashes;
use super::names::{SecretUri, Slug, StoreName};
use super::{Aggregate, CommandArguments, Context, DomainEvent, Refusal, RefusalKind, Role};

use sealplane_proto::keyed_hash::{self, KeyedHash};
pub use sealplane_proto::limits::{MAX_KEY_TTL, MAX_REASON_BYTES, SEALED_BOX_OVERHEAD};
pub use sealplane_proto::upload::{FailureKind, Purpose};

/// Where a request is in the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadStatus {
    /// No such request.
    Absent,
    /// A key was requested; the reactor has not provided it yet.
    Requested,
    /// The reactor provided its one-time key.
    KeyProvided,
    /// The requester handed over the ciphertext.
    UploadRequested,
    /// The reactor stored the value upstream (terminal).
    Uploaded,
    /// The reactor compared the value (terminal).
    Verified,
    /// The reactor gave up (terminal).
    Failed,
    /// The key expired unused (terminal).
    Expired,
    /// A sealed file held the current value: no new version (terminal).
    Unchanged,
    /// A sealed file was resealed to the newest sealing key (terminal).
    Resealed,
}

impl fmt::Display for UploadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UploadStatus::Absent => "absent",
            UploadStatus::Requested => "key requested",
            UploadStatus::KeyProvided => "key provided",
            UploadStatus::UploadRequested => "upload requested",
            UploadStatus::Uploaded => "uploaded",
            UploadStatus::Verified => "verified",
            UploadStatus::Failed => "failed",
            UploadStatus::Expired => "expired",
            UploadStatus::Unchanged => "unchanged",
            UploadStatus::Resealed => "resealed",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Request {
    request_id: Uuid,
    uri: SecretUri,
    store: StoreName,
    requester: Slug,
    #[serde(with = "purpose_form")]
    purpose: Purpose,
    #[serde(with = "compact::time")]
    expires_at: DateTime<Utc>,
    /// For a sealed file (SPEC §11): its sealing key, whether it is to be
    /// resealed, and the secret's latest version and hash at submission.
    /// Boxed: most requests are no sealed file, and the read model holds
    /// every request of the last hour (ADR 0033).
    sealed: Option<Box<SealedFile>>,
}

/// What a sealed-file request carries besides the ciphertext.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SealedFile {
    /// The sealing key the file names.
    pub key_id: String,
    /// Reseal to the newest key rather than apply.
    pub reseal: bool,
    /// The latest version when submitted, if any.
    pub current_version: Option<u64>,
}

/// Where a sealing key a file names stands, as the handler found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealingKeyStanding {
    /// The store's newest key.
    Newest,
    /// An older key, not retired.
    Older,
    /// Retired: its private half is destroyed.
    Retired,
    /// The store never published it.
    Unknown,
}

/// One upload request's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UploadRequest {
    request: Option<Request>,
    /// The public key and signature, once provided (and until the read
    /// model compacts the ended request: [`UploadRequest::compact`]).
    /// Boxed: the read model compacts it away once the request ends, and
    /// keeps the requests of the last hour (ADR 0033).
    key: Option<Box<(String, String)>>,
    uploaded: bool,
    /// How the request ended, once it has.
    end: Option<End>,
}

/// How an upload request ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum End {
    /// The terminal event (boxed: a request's state stays small whatever
    /// the largest event).
    Event(#[serde(with = "compact::as_json")] Box<UploadEvent>),
    /// Stored as `version`, which its secret records with the keyed hashes
    /// and upstream reference: the read model's compacted copy
    /// ([`UploadRequest::compact`]), never the command handler's.
    Recorded { version: u64 },
}

/// A request's purpose as its event's JSON has it (internally tagged), or,
/// in a binary form (the snapshot, ADR 0034), externally tagged: a binary
/// format cannot read an internally tagged enum back.
mod purpose_form {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Purpose;

    #[derive(Serialize, Deserialize)]
    enum Form {
        Put { adopt: bool },
        Verify,
    }

    pub fn serialize<S: Serializer>(purpose: &Purpose, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return purpose.serialize(serializer);
        }
        match *purpose {
            Purpose::Put { adopt } => Form::Put { adopt },
            Purpose::Verify => Form::Verify,
        }
        .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Purpose, D::Error> {
        if deserializer.is_human_readable() {
            return Purpose::deserialize(deserializer);
        }
        Ok(match Form::deserialize(deserializer)? {
            Form::Put { adopt } => Purpose::Put { adopt },
            Form::Verify => Purpose::Verify,
        })
    }
}

/// What an upload request can be asked to do; facts from other aggregates
/// are gathered by the handler.
#[derive(Clone, Debug, PartialEq)]
pub enum UploadCommand {
    /// Step 1: a user asks for a one-time key valid for `ttl`; the handler
    /// says whether the store is enabled and the actor may write / read.
    RequestKey {
        request_id: Uuid,
        uri: SecretUri,
        purpose: Purpose,
        ttl: Duration,
        store_accepts_uploads: bool,
        may_write: bool,
        may_read: bool,
        /// For a verification: the requester has verifications left for
        /// this secret (SPEC §4: verifications are rate limited).
        may_verify_now: bool,
    },
    /// Step 2: the reactor provides its one-time X25519 key (base64 of 32
    /// bytes), its Ed25519 signature (base64 of 64 bytes) and the expiry
    /// it signed.
    ProvideKey {
        public_key: String,
        signature: String,
        expires_at: DateTime<Utc>,
    },
    /// Step 4: the requester hands over the sealed box (base64), at most
    /// `max_ciphertext_bytes` once decoded.
    Upload {
        ciphertext: String,
        max_ciphertext_bytes: usize,
    },
    /// Step 5 of a put: the reactor stored the value upstream.
    ReportUploaded {
        version: u64,
        hash: String,
        key_hashes: KeyHashes,
        upstream_ref: String,
    },
    /// Step 5 of a verification: whether the value matched.
    ReportVerified { matches: bool },
    /// The reactor gave up, saying why (never a value).
    ReportFailed { reason: String, kind: FailureKind },
    /// The key expired unused.
    ExpireKey,
    /// SPEC §11: a user submits a sealed file for `uri`, sealed to
    /// sealing key `key_id`, to apply (or to reseal); the handler gathers
    /// the store's state, the user's write access, the key's standing and
    /// the secret's latest version and hash.
    SubmitSealed {
        request_id: Uuid,
        uri: SecretUri,
        key_id: String,
        ciphertext: String,
        reseal: bool,
        ttl: Duration,
        max_ciphertext_bytes: usize,
        store_accepts_uploads: bool,
        may_write: bool,
        key: SealingKeyStanding,
        current: Option<(u64, String)>,
    },
    /// A sealed file held the value of `version`, the latest: nothing written.
    ReportUnchanged { version: u64 },
    /// A sealed file resealed to `key_id`: the new sealed box (base64).
    ReportResealed { key_id: String, ciphertext: String },
    /// The control plane's own sweep (admins' authority): a request no
    /// reactor ended, [`SWEEP_GRACE`] past its expiry, before any upload.
    /// There is no key here to destroy: if a reactor holds one it destroys
    /// it at expiry anyway; this ends the request for the people waiting.
    ExpireUnanswered,
}

impl CommandArguments for UploadCommand {
    fn arguments(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            // The request id is the command id; the ttl is a limit and the
            // flags are facts the handler gathered.
            UploadCommand::RequestKey { uri, purpose, .. } => {
                json!(["RequestKey", uri, purpose])
            }
            UploadCommand::ProvideKey {
                public_key,
                signature,
                expires_at,
            } => json!(["ProvideKey", public_key, signature, expires_at]),
            // The size limit is the server's; the ciphertext is digested.
            UploadCommand::Upload { ciphertext, .. } => {
                use sha2::Digest as _;
                let digest = hex::encode(sha2::Sha256::digest(ciphertext.as_bytes()));
                json!(["Upload", digest])
            }
            UploadCommand::ReportUploaded {
                version,
                hash,
                key_hashes,
                upstream_ref,
            } => json!(["ReportUploaded", version, hash, key_hashes, upstream_ref]),
            UploadCommand::ReportVerified { matches } => json!(["ReportVerified", matches]),
            UploadCommand::ReportFailed { reason, kind } => json!(["ReportFailed", reason, kind]),
            UploadCommand::SubmitSealed {
                uri,
                key_id,
                ciphertext,
                reseal,
                ..
            } => {
                use sha2::Digest as _;
                let digest = hex::encode(sha2::Sha256::digest(ciphertext.as_bytes()));
                json!(["SubmitSealed", uri, key_id, digest, reseal])
            }
            UploadCommand::ReportUnchanged { version } => json!(["ReportUnchanged", version]),
            UploadCommand::ReportResealed { key_id, ciphertext } => {
                use sha2::Digest as _;
                let digest = hex::encode(sha2::Sha256::digest(ciphertext.as_bytes()));
                json!(["ReportResealed", key_id, digest])
            }
            UploadCommand::ExpireKey => json!(["ExpireKey"]),
            UploadCommand::ExpireUnanswered => json!(["ExpireUnanswered"]),
        }
    }
}

/// How long after a request's expiry the control plane waits for its
/// reactor to report before ending it itself.
pub const SWEEP_GRACE: Duration = Duration::seconds(10);

/// What an upload request records (SPEC §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum UploadEvent {
    /// A user asked for a one-time key for `uri`, usable until `expires_at`.
    SecretUploadKeyRequested {
        request_id: Uuid,
        uri: SecretUri,
        store: StoreName,
        requester: Slug,
        purpose: Purpose,
        expires_at: DateTime<Utc>,
    },
    /// The reactor provided its one-time key, signed over (request_id,
    /// uri, public_key, expires_at); both base64.
    SecretUploadKeyProvided {
        request_id: Uuid,
        public_key: String,
        signature: String,
        expires_at: DateTime<Utc>,
    },
    /// The requester handed over the sealed box (base64).
    SecretUploadRequested {
        request_id: Uuid,
        ciphertext: String,
    },
    /// The reactor stored the value upstream as `version`, with keyed
    /// hashes of the whole value and of each key (SPEC §4).
    SecretUploaded {
        request_id: Uuid,
        uri: SecretUri,
        version: u64,
        hash: String,
        #[serde(default)]
        key_hashes: KeyHashes,
        upstream_ref: String,
    },
    /// The reactor compared a local value with the stored one.
    SecretVerified {
        request_id: Uuid,
        uri: SecretUri,
        matches: bool,
    },
    /// The reactor gave up (the reason never holds a value). Events
    /// recorded before failures had a kind hold none: see
    /// [`UploadEvent::failure_kind`].
    SecretUploadFailed {
        request_id: Uuid,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<FailureKind>,
    },
    /// The key expired unused.
    SecretUploadKeyExpired { request_id: Uuid },
    /// A user submitted a sealed file (SPEC §11) sealed to `key_id`: to
    /// apply, or with `reseal` to have it resealed to the newest key. The
    /// secret's latest version and hash then let the reactor tell
    /// "unchanged" without writing.
    SealedFileSubmitted {
        request_id: Uuid,
        uri: SecretUri,
        store: StoreName,
        requester: Slug,
        key_id: String,
        reseal: bool,
        ciphertext: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        current_version: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        current_hash: Option<String>,
        expires_at: DateTime<Utc>,
    },
    /// The sealed file held the latest version's value: nothing written.
    SealedFileUnchanged {
        request_id: Uuid,
        uri: SecretUri,
        version: u64,
    },
    /// The sealed file, resealed to sealing key `key_id` (base64 box).
    SealedFileResealed {
        request_id: Uuid,
        uri: SecretUri,
        key_id: String,
        ciphertext: String,
    },
}

impl UploadEvent {
    /// For `SecretUploadFailed`, its kind; an event recorded without one
    /// (by a reactor from before kinds existed) is read from its reason.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            UploadEvent::SecretUploadFailed { reason, kind, .. } => {
                Some(kind.unwrap_or_else(|| FailureKind::of_legacy_reason(reason)))
            }
            _ => None,
        }
    }
}

impl DomainEvent for UploadEvent {
    fn event_type(&self) -> &'static str {
        match self {
            UploadEvent::SecretUploadKeyRequested { .. } => "SecretUploadKeyRequested",
            UploadEvent::SecretUploadKeyProvided { .. } => "SecretUploadKeyProvided",
            UploadEvent::SecretUploadRequested { .. } => "SecretUploadRequested",
            UploadEvent::SecretUploaded { .. } => "SecretUploaded",
            UploadEvent::SecretVerified { .. } => "SecretVerified",
            UploadEvent::SecretUploadFailed { .. } => "SecretUploadFailed",
            UploadEvent::SecretUploadKeyExpired { .. } => "SecretUploadKeyExpired",
            UploadEvent::SealedFileSubmitted { .. } => "SealedFileSubmitted",
            UploadEvent::SealedFileUnchanged { .. } => "SealedFileUnchanged",
            UploadEvent::SealedFileResealed { .. } => "SealedFileResealed",
        }
    }
}

/// Why an upload request refused a command. No message holds a value or
/// ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UploadRefusal {
    /// Auditors and reactors never request keys.
    #[error("only users and admins may put or verify secrets")]
    RoleMayNotUpload,
    /// A put needs write access.
    #[error(
        "you may not write `{0}`: ask someone in its canChangeWriters list or an admin to add you to its writers (new secrets go under your own slug or a group's prefix)"
    )]
    MayNotWrite(SecretUri),
    /// A verification needs read access.
    #[error(
        "you may not read `{0}`, so you may not verify it: ask someone in its canChangeReaders list or an admin to add you to its readers"
    )]
    MayNotRead(SecretUri),
    /// The store is unknown, disabled or removed.
    #[error(
        "store `{0}` does not accept uploads (unknown, disabled or removed): `sealctl get stores` lists the stores; an admin can enable it with `sealctl enable store {0}`"
    )]
    StoreNotAccepting(StoreName),
    /// The key lifetime is out of range.
    #[error(
        "an upload key lifetime of {0} seconds is out of range: set `limits.upload_key_ttl_seconds` between 1 and 3600"
    )]
    TtlOutOfRange(i64),
    /// Too many verifications of one secret by one principal lately.
    #[error(
        "too many verifications of `{0}` in the last minute: verifying compares guesses with the stored value, so it is rate limited; wait a minute (an admin can raise `limits.max_verifications_per_minute`)"
    )]
    TooManyVerifications(SecretUri),
    /// The request id is taken.
    #[error("upload request {0} exists already; a new upload needs a new request id")]
    AlreadyExists(Uuid),
    /// No such request.
    #[error("this upload request does not exist; `sealctl put secret` starts a new one")]
    NotFound,
    /// The reactor is not bound to the request's store.
    #[error("only a reactor bound to store `{0}` may provide keys for and report on its uploads")]
    NotServed(StoreName),
    /// Someone else requested this upload.
    #[error("only `{0}`, who requested this upload key, may upload with it")]
    NotRequester(Slug),
    /// The reactor has not provided its key.
    #[error(
        "the reactor has not issued a key yet: wait for it (`sealctl put secret` waits by itself) and check that the store's reactor is running"
    )]
    KeyNotProvided,
    /// A different key was provided before.
    #[error("a different key was already provided for this request; a request has one key")]
    KeyAlreadyProvided,
    /// The ciphertext was already handed over, or the request ended.
    #[error("request already used ({0}); start a new one with `sealctl put secret`")]
    AlreadyUsed(UploadStatus),
    /// The key has expired.
    #[error("the upload key expired at {0}; run `sealctl put secret` again for a fresh key")]
    Expired(DateTime<Utc>),
    /// The key may not be expired yet.
    #[error("the upload key is valid until {0}; it cannot be expired before then")]
    NotYetExpired(DateTime<Utc>),
    /// An outcome was reported before the ciphertext arrived.
    #[error("no ciphertext has been uploaded for this request yet ({0}); nothing to report")]
    NothingUploaded(UploadStatus),
    /// The report does not fit the request's purpose.
    #[error("this request's purpose calls for `{0}` instead")]
    WrongPurpose(&'static str),
    /// A different outcome was reported before.
    #[error("this upload request has already ended ({0}); a different report cannot replace it")]
    Ended(UploadStatus),
    /// A key or signature is malformed: `.0` must be base64 of `.1` bytes.
    #[error("`{0}` must be standard base64 of exactly {1} bytes")]
    MalformedKey(&'static str, usize),
    /// The key's expiry differs from the request's.
    #[error("the key's expiry {provided} is not the request's {requested}: sign the request's")]
    ExpiryMismatch {
        requested: DateTime<Utc>,
        provided: DateTime<Utc>,
    },
    /// The ciphertext is not base64.
    #[error("the ciphertext is not standard base64; upload the sealed box `sealctl` builds")]
    CiphertextNotBase64,
    /// The ciphertext is shorter than any sealed box.
    #[error(
        "the ciphertext is {0} bytes, shorter than a sealed box ({SEALED_BOX_OVERHEAD} bytes); upload the sealed box `sealctl` builds"
    )]
    CiphertextTooShort(usize),
    /// The ciphertext is over the limit.
    #[error(
        "the ciphertext is {bytes} bytes; the limit is {limit} bytes (set by `limits.max_secret_bytes`): store fewer or smaller keys"
    )]
    CiphertextTooLarge { bytes: usize, limit: usize },
    /// A reported hash (named, not echoed) is not a keyed hash.
    #[error(
        "`{0}` is not a keyed hash: expected `hmac-sha256-v2:<key id>:<64 lower-case hex digits>` (or version 1, `hmac-sha256:<key id>:<hex>`, from an older reactor), one version for the whole value and every key"
    )]
    BadHash(String),
    /// The sealed file names a key the store never published.
    #[error(
        "store `{store}` has no sealing key `{key_id}`: the file was sealed for another store or deployment; seal it again with `sealctl seal` (`sealctl get sealing-key {store}` shows the current key)"
    )]
    UnknownSealingKey { store: StoreName, key_id: String },
    /// The sealed file's key was retired.
    #[error(
        "sealing key `{0}` is retired and its private half destroyed, so this file can no longer be opened: seal the value again with `sealctl seal`"
    )]
    RetiredSealingKey(String),
    /// A reseal of a file sealed to the newest key already.
    #[error(
        "the file is sealed to `{0}`, the store's newest sealing key, already; nothing to reseal"
    )]
    AlreadyNewest(String),
    /// A report that does not fit a sealed-file request, or the other way round.
    #[error("this is not a {0}; report it as the request asks")]
    NotThatKind(&'static str),
    /// An "unchanged" report for another version than the latest.
    #[error(
        "version {reported} is not the latest version when the file was submitted ({latest:?})"
    )]
    NotLatest { reported: u64, latest: Option<u64> },
    /// The failure reason is empty.
    #[error("the failure reason is empty: say what went wrong (never the value)")]
    EmptyReason,
    /// The failure reason is too long.
    #[error("the failure reason is {0} bytes; the limit is {MAX_REASON_BYTES}")]
    ReasonTooLong(usize),
}

impl Refusal for UploadRefusal {
    fn kind(&self) -> RefusalKind {
        use UploadRefusal::*;
        match self {
            RoleMayNotUpload | MayNotWrite(_) | MayNotRead(_) | NotServed(_) | NotRequester(_) => {
                RefusalKind::Denied
            }
            AlreadyExists(_) => RefusalKind::AlreadyExists,
            NotFound => RefusalKind::NotFound,
            TooManyVerifications(_) => RefusalKind::Exhausted,
            StoreNotAccepting(_)
            | KeyNotProvided
            | KeyAlreadyProvided
            | AlreadyUsed(_)
            | Expired(_)
            | NotYetExpired(_)
            | NothingUploaded(_)
            | WrongPurpose(_)
            | Ended(_)
            | RetiredSealingKey(_)
            | AlreadyNewest(_)
            | NotThatKind(_)
            | NotLatest { .. } => RefusalKind::FailedPrecondition,
            UnknownSealingKey { .. } => RefusalKind::NotFound,
            TtlOutOfRange(_)
            | MalformedKey(..)
            | ExpiryMismatch { .. }
            | CiphertextNotBase64
            | CiphertextTooShort(_)
            | CiphertextTooLarge { .. }
            | BadHash(_)
            | EmptyReason
            | ReasonTooLong(_) => RefusalKind::Invalid,
        }
    }

    /// Reusing a request (a replayed or second upload) and using it after
    /// its expiry are attempts worth an audit trail, not just a status.
    fn is_security_event(&self) -> bool {
        use UploadRefusal::*;
        self.kind() == RefusalKind::Denied
            || matches!(self, AlreadyUsed(_) | Expired(_) | TooManyVerifications(_))
    }
}

/// Whether `hash` has the form of SPEC §4, of either version (the
/// contract's `keyed_hash`): `hmac-sha256-v2:<key id>:<64 lower-case hex
/// digits>`, or version 1's `hmac-sha256:<key id>:<hex>`, which reactors
/// older than path-bound hashes (ADR 0011) still report.
pub fn is_keyed_hash(hash: &str) -> bool {
    KeyedHash::parse(hash).is_some()
}

/// The first of `hash` and `key_hashes` that is not a keyed hash, or not
/// of `hash`'s version (one reactor computes them all, in one version, so
/// a mix is a faulty report), named `hash` or `key_hashes[<key>]`; the
/// text itself is never echoed, in case a faulty reactor put something
/// secret there.
pub fn malformed_hash(hash: &str, key_hashes: &KeyHashes) -> Option<String> {
    let Some(version) = keyed_hash::version_of(hash) else {
        return Some("hash".to_owned());
    };
    let mut keys = key_hashes.iter();
    keys.find(|(_, h)| keyed_hash::version_of(&h.to_string()) != Some(version))
        .map(|(key, _)| format!("key_hashes[{key}]"))
}

fn check_key(text: &str, field: &'static str, bytes: usize) -> Result<(), UploadRefusal> {
    match STANDARD.decode(text) {
        Ok(decoded) if decoded.len() == bytes => Ok(()),
        _ => Err(UploadRefusal::MalformedKey(field, bytes)),
    }
}

/// When a key (or a sealed file's wait) asked for at `now` with `ttl`
/// expires: in whole seconds, as the reactor signs it (`KeyOffer`), so the
/// signed and the enforced expiry are one.
fn expiry(now: DateTime<Utc>, ttl: Duration) -> Result<DateTime<Utc>, UploadRefusal> {
    Some(ttl)
        .filter(|ttl| *ttl > Duration::zero() && *ttl <= MAX_KEY_TTL)
        .and_then(|ttl| now.checked_add_signed(ttl))
        .map(|at| at.trunc_subsecs(0))
        .ok_or(UploadRefusal::TtlOutOfRange(ttl.num_seconds()))
}

/// Refuses a ciphertext that is not base64 of a sealed box of at most
/// `max` bytes.
fn check_ciphertext(ciphertext: &str, max: usize) -> Result<(), UploadRefusal> {
    let bytes = STANDARD
        .decode(ciphertext)
        .map_err(|_| UploadRefusal::CiphertextNotBase64)?
        .len();
    if bytes < SEALED_BOX_OVERHEAD {
        return Err(UploadRefusal::CiphertextTooShort(bytes));
    }
    if bytes > max {
        return Err(UploadRefusal::CiphertextTooLarge { bytes, limit: max });
    }
    Ok(())
}

impl UploadRequest {
    /// Where the request is in the protocol.
    pub fn status(&self) -> UploadStatus {
        match (&self.request, self.end.as_ref()) {
            (None, _) => UploadStatus::Absent,
            (_, Some(End::Recorded { .. })) => UploadStatus::Uploaded,
            (_, Some(End::Event(end))) => match **end {
                UploadEvent::SecretUploaded { .. } => UploadStatus::Uploaded,
                UploadEvent::SecretVerified { .. } => UploadStatus::Verified,
                UploadEvent::SecretUploadFailed { .. } => UploadStatus::Failed,
                UploadEvent::SealedFileUnchanged { .. } => UploadStatus::Unchanged,
                UploadEvent::SealedFileResealed { .. } => UploadStatus::Resealed,
                _ => UploadStatus::Expired,
            },
            _ if self.uploaded => UploadStatus::UploadRequested,
            _ if self.key.is_some() => UploadStatus::KeyProvided,
            _ => UploadStatus::Requested,
        }
    }

    /// The request's id.
    pub fn request_id(&self) -> Option<Uuid> {
        self.request.as_ref().map(|r| r.request_id)
    }

    /// The target secret.
    pub fn uri(&self) -> Option<&SecretUri> {
        self.request.as_ref().map(|r| &r.uri)
    }

    /// The store that serves it.
    pub fn store(&self) -> Option<&StoreName> {
        self.request.as_ref().map(|r| &r.store)
    }

    /// Who requested the key: the only one who may upload with it.
    pub fn requester(&self) -> Option<&Slug> {
        self.request.as_ref().map(|r| &r.requester)
    }

    /// Put or verify.
    pub fn purpose(&self) -> Option<Purpose> {
        self.request.as_ref().map(|r| r.purpose)
    }

    /// When the key stops being usable.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.request.as_ref().map(|r| r.expires_at)
    }

    /// The reactor's one-time public key, base64, once provided.
    pub fn public_key(&self) -> Option<&str> {
        self.key.as_deref().map(|(k, _)| k.as_str())
    }

    /// The reactor's signature over the key, base64, once provided.
    pub fn signature(&self) -> Option<&str> {
        self.key.as_deref().map(|(_, s)| s.as_str())
    }

    /// For a sealed file: its key, whether it is a reseal, the version then.
    pub fn sealed(&self) -> Option<&SealedFile> {
        self.request.as_ref().and_then(|r| r.sealed.as_deref())
    }

    /// The event that ended the request (`SecretUploaded`,
    /// `SecretVerified`, `SecretUploadFailed` or `SecretUploadKeyExpired`);
    /// `None` too for a compacted stored request: see
    /// [`UploadRequest::recorded_version`].
    pub fn outcome(&self) -> Option<&UploadEvent> {
        match self.end.as_ref()? {
            End::Event(end) => Some(end),
            End::Recorded { .. } => None,
        }
    }

    /// For a compacted stored request, the version its secret records
    /// (with the keyed hashes) for it.
    pub fn recorded_version(&self) -> Option<u64> {
        match self.end.as_ref()? {
            End::Recorded { version } => Some(*version),
            End::Event(_) => None,
        }
    }

    /// Makes the read model's copy of an ended request small (ADR 0028):
    /// the one-time key and signature go, and an outcome its secret now
    /// records (`recorded`: the version and whole-value hash its secret
    /// added for this request, with the per-key hashes) keeps only the
    /// version. Nothing changes for a request still open. Only queries read
    /// a compacted copy; the command handler folds its own, so a late
    /// report or key is still answered against the whole outcome.
    pub fn compact(&mut self, recorded: Option<(u64, &str)>) {
        let Some(end) = self.end.as_mut() else {
            return;
        };
        self.key = None;
        if let (End::Event(event), Some((recorded, recorded_hash))) = (&*end, recorded)
            && matches!(&**event, UploadEvent::SecretUploaded { version, hash, .. }
                if *version == recorded && hash == recorded_hash)
        {
            *end = End::Recorded { version: recorded };
        }
    }

    /// The command recording this request's upload as its secret's
    /// version, at `at`; `None` unless the request ended stored.
    pub fn version_to_record(&self, at: DateTime<Utc>) -> Option<super::secret::SecretCommand> {
        let Some(UploadEvent::SecretUploaded {
            request_id,
            version,
            hash,
            key_hashes,
            ..
        }) = self.outcome()
        else {
            return None;
        };
        Some(super::secret::SecretCommand::RecordVersion {
            request_id: *request_id,
            version: *version,
            hash: hash.clone(),
            key_hashes: key_hashes.clone(),
            by: self.requester()?.clone(),
            at,
        })
    }

    /// The request, if the actor is a reactor serving its store.
    fn served(&self, ctx: &Context) -> Result<&Request, UploadRefusal> {
        let request = self.request.as_ref().ok_or(UploadRefusal::NotFound)?;
        if ctx.actor.serves(&request.store) {
            Ok(request)
        } else {
            Err(UploadRefusal::NotServed(request.store.clone()))
        }
    }

    /// Once ended: a no-op for the same report, a refusal for another.
    fn settled(&self, report: &UploadEvent) -> Option<Result<Vec<UploadEvent>, UploadRefusal>> {
        let end = self.end.as_ref()?;
        Some(if matches!(end, End::Event(end) if **end == *report) {
            Ok(vec![])
        } else {
            Err(UploadRefusal::Ended(self.status()))
        })
    }

    fn provide_key(
        &self,
        ctx: &Context,
        public_key: &str,
        signature: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Vec<UploadEvent>, UploadRefusal> {
        let request = self.served(ctx)?;
        if let Some((k, s)) = self.key.as_deref() {
            return if k == public_key && s == signature {
                Ok(vec![])
            } else {
                Err(UploadRefusal::KeyAlreadyProvided)
            };
        }
        if self.end.is_some() {
            return Err(UploadRefusal::Ended(self.status()));
        }
        if ctx.now >= request.expires_at {
            return Err(UploadRefusal::Expired(request.expires_at));
        }
        check_key(public_key, "public_key", 32)?;
        check_key(signature, "signature", 64)?;
        if expires_at != request.expires_at {
            let requested = request.expires_at;
            return Err(UploadRefusal::ExpiryMismatch {
                requested,
                provided: expires_at,
            });
        }
        Ok(vec![UploadEvent::SecretUploadKeyProvided {
            request_id: request.request_id,
            public_key: public_key.to_owned(),
            signature: signature.to_owned(),
            expires_at,
        }])
    }

    fn upload(
        &self,
        ctx: &Context,
        ciphertext: &str,
        max: usize,
    ) -> Result<Vec<UploadEvent>, UploadRefusal> {
        let request = self.request.as_ref().ok_or(UploadRefusal::NotFound)?;
        if ctx.actor.slug != request.requester {
            return Err(UploadRefusal::NotRequester(request.requester.clone()));
        }
        match self.status() {
            UploadStatus::KeyProvided => {}
            UploadStatus::Requested => return Err(UploadRefusal::KeyNotProvided),
            status => return Err(UploadRefusal::AlreadyUsed(status)),
        }
        if ctx.now >= request.expires_at {
            return Err(UploadRefusal::Expired(request.expires_at));
        }
        check_ciphertext(ciphertext, max)?;
        Ok(vec![UploadEvent::SecretUploadRequested {
            request_id: request.request_id,
            ciphertext: ciphertext.to_owned(),
        }])
    }

    /// `SecretUploaded` for a put or `SecretVerified` for a verification,
    /// once the ciphertext is there.
    fn report(&self, ctx: &Context, event: UploadEvent) -> Result<Vec<UploadEvent>, UploadRefusal> {
        let request = self.served(ctx)?;
        if let Some(done) = self.settled(&event) {
            return done;
        }
        if !self.uploaded {
            return Err(UploadRefusal::NothingUploaded(self.status()));
        }
        let reseal = request.sealed.as_ref().is_some_and(|s| s.reseal);
        match (&event, &request.sealed) {
            (UploadEvent::SecretUploaded { .. }, Some(_)) if reseal => {
                return Err(UploadRefusal::WrongPurpose("ReportResealed"));
            }
            (UploadEvent::SealedFileUnchanged { version, .. }, Some(file)) if !reseal => {
                if file.current_version != Some(*version) {
                    return Err(UploadRefusal::NotLatest {
                        reported: *version,
                        latest: file.current_version,
                    });
                }
                return Ok(vec![event]);
            }
            (
                UploadEvent::SealedFileResealed {
                    key_id, ciphertext, ..
                },
                Some(file),
            ) if reseal => {
                if *key_id == file.key_id || !sealplane_proto::sealing_key::is_key_id(key_id) {
                    return Err(UploadRefusal::AlreadyNewest(key_id.clone()));
                }
                // The reactor's box: no user limit, but the form of one.
                check_ciphertext(ciphertext, usize::MAX)?;
                return Ok(vec![event]);
            }
            (
                UploadEvent::SealedFileUnchanged { .. } | UploadEvent::SealedFileResealed { .. },
                _,
            ) => {
                return Err(UploadRefusal::NotThatKind("sealed file of that kind"));
            }
            _ => {}
        }
        match (request.purpose, &event) {
            (
                Purpose::Put { .. },
                UploadEvent::SecretUploaded {
                    hash, key_hashes, ..
                },
            ) => {
                if let Some(field) = malformed_hash(hash, key_hashes) {
                    return Err(UploadRefusal::BadHash(field));
                }
            }
            (Purpose::Verify, UploadEvent::SecretVerified { .. }) => {}
            (Purpose::Put { .. }, _) => return Err(UploadRefusal::WrongPurpose("ReportUploaded")),
            (Purpose::Verify, _) => return Err(UploadRefusal::WrongPurpose("ReportVerified")),
        }
        Ok(vec![event])
    }

    fn expire_unanswered(&self, ctx: &Context) -> Result<Vec<UploadEvent>, UploadRefusal> {
        let request = self.request.as_ref().ok_or(UploadRefusal::NotFound)?;
        if ctx.actor.role != Role::Admin {
            return Err(UploadRefusal::NotServed(request.store.clone()));
        }
        // Ended, or uploaded and in the reactor's hands: nothing to sweep.
        if self.end.is_some() || self.uploaded {
            return Ok(vec![]);
        }
        let due = request.expires_at + SWEEP_GRACE;
        if ctx.now < due {
            return Err(UploadRefusal::NotYetExpired(due));
        }
        Ok(vec![UploadEvent::SecretUploadKeyExpired {
            request_id: request.request_id,
        }])
    }

    /// A failure (any time before the end) or an expiry (once due, unused).
    fn end(&self, ctx: &Context, event: UploadEvent) -> Result<Vec<UploadEvent>, UploadRefusal> {
        let request = self.served(ctx)?;
        if let UploadEvent::SecretUploadFailed { reason, .. } = &event {
            if reason.is_empty() {
                return Err(UploadRefusal::EmptyReason);
            }
            if reason.len() > MAX_REASON_BYTES {
                return Err(UploadRefusal::ReasonTooLong(reason.len()));
            }
        }
        if let Some(done) = self.settled(&event) {
            return done;
        }
        if let UploadEvent::SecretUploadKeyExpired { .. } = &event {
            if self.uploaded {
                return Err(UploadRefusal::AlreadyUsed(self.status()));
            }
            if ctx.now < request.expires_at {
                return Err(UploadRefusal::NotYetExpired(request.expires_at));
            }
        }
        Ok(vec![event])
    }

    /// SPEC §11: a sealed file, checked as a put is (role, write access,
    /// store), plus its key's standing and the ciphertext's size.
    fn submit_sealed(
        &self,
        command: &UploadCommand,
        ctx: &Context,
    ) -> Result<Vec<UploadEvent>, UploadRefusal> {
        let UploadCommand::SubmitSealed {
            request_id,
            uri,
            key_id,
            ciphertext,
            reseal,
            ttl,
            max_ciphertext_bytes,
            store_accepts_uploads,
            may_write,
            key,
            current,
        } = command
        else {
            return Err(UploadRefusal::NotThatKind("sealed file"));
        };
        if matches!(ctx.actor.role, Role::Auditor | Role::Reactor) {
            return Err(UploadRefusal::RoleMayNotUpload);
        }
        if !may_write {
            return Err(UploadRefusal::MayNotWrite(uri.clone()));
        }
        if self.request.is_some() {
            return Err(UploadRefusal::AlreadyExists(*request_id));
        }
        if !store_accepts_uploads {
            return Err(UploadRefusal::StoreNotAccepting(uri.store.clone()));
        }
        match key {
            SealingKeyStanding::Unknown => {
                return Err(UploadRefusal::UnknownSealingKey {
                    store: uri.store.clone(),
                    key_id: key_id.clone(),
                });
            }
            SealingKeyStanding::Retired => {
                return Err(UploadRefusal::RetiredSealingKey(key_id.clone()));
            }
            SealingKeyStanding::Newest if *reseal => {
                return Err(UploadRefusal::AlreadyNewest(key_id.clone()));
            }
            SealingKeyStanding::Newest | SealingKeyStanding::Older => {}
        }
        check_ciphertext(ciphertext, *max_ciphertext_bytes)?;
        let expires_at = expiry(ctx.now, *ttl)?;
        Ok(vec![UploadEvent::SealedFileSubmitted {
            request_id: *request_id,
            uri: uri.clone(),
            store: uri.store.clone(),
            requester: ctx.actor.slug.clone(),
            key_id: key_id.clone(),
            reseal: *reseal,
            ciphertext: ciphertext.clone(),
            current_version: current.as_ref().map(|(v, _)| *v),
            current_hash: current.as_ref().map(|(_, h)| h.clone()),
            expires_at,
        }])
    }

    /// Every command but `RequestKey`: they need the request.
    fn follow_up(
        &self,
        command: &UploadCommand,
        ctx: &Context,
    ) -> Result<Vec<UploadEvent>, UploadRefusal> {
        let request = self.request.as_ref().ok_or(UploadRefusal::NotFound)?;
        let (request_id, uri) = (request.request_id, request.uri.clone());
        match command {
            // `decide` handles it; reaching here means the id is taken.
            UploadCommand::RequestKey { .. } => Err(UploadRefusal::AlreadyExists(request_id)),
            UploadCommand::ProvideKey {
                public_key,
                signature,
                expires_at,
            } => self.provide_key(ctx, public_key, signature, *expires_at),
            UploadCommand::Upload {
                ciphertext,
                max_ciphertext_bytes,
            } => self.upload(ctx, ciphertext, *max_ciphertext_bytes),
            UploadCommand::ReportUploaded {
                version,
                hash,
                key_hashes,
                upstream_ref,
            } => {
                let event = UploadEvent::SecretUploaded {
                    request_id,
                    uri,
                    version: *version,
                    hash: hash.clone(),
                    key_hashes: key_hashes.clone(),
                    upstream_ref: upstream_ref.clone(),
                };
                self.report(ctx, event)
            }
            UploadCommand::ReportVerified { matches } => {
                let matches = *matches;
                self.report(
                    ctx,
                    UploadEvent::SecretVerified {
                        request_id,
                        uri,
                        matches,
                    },
                )
            }
            UploadCommand::ReportFailed { reason, kind } => {
                let reason = reason.clone();
                self.end(
                    ctx,
                    UploadEvent::SecretUploadFailed {
                        request_id,
                        reason,
                        kind: Some(*kind),
                    },
                )
            }
            UploadCommand::ReportUnchanged { version } => self.report(
                ctx,
                UploadEvent::SealedFileUnchanged {
                    request_id,
                    uri,
                    version: *version,
                },
            ),
            UploadCommand::ReportResealed { key_id, ciphertext } => self.report(
                ctx,
                UploadEvent::SealedFileResealed {
                    request_id,
                    uri,
                    key_id: key_id.clone(),
                    ciphertext: ciphertext.clone(),
                },
            ),
            UploadCommand::SubmitSealed { .. } => Err(UploadRefusal::AlreadyExists(request_id)),
            UploadCommand::ExpireKey => {
                if request.sealed.is_some() {
                    return Err(UploadRefusal::NotThatKind("one-time key request"));
                }
                self.end(ctx, UploadEvent::SecretUploadKeyExpired { request_id })
            }
            UploadCommand::ExpireUnanswered => self.expire_unanswered(ctx),
        }
    }
}

impl Aggregate for UploadRequest {
    type Command = UploadCommand;
    type Event = UploadEvent;
    type Refusal = UploadRefusal;

    fn decide(
        &self,
        command: &UploadCommand,
        ctx: &Context,
    ) -> Result<Vec<UploadEvent>, UploadRefusal> {
        if let UploadCommand::SubmitSealed { .. } = command {
            return self.submit_sealed(command, ctx);
        }
        let UploadCommand::RequestKey {
            request_id,
            uri,
            purpose,
            ttl,
            store_accepts_uploads,
            may_write,
            may_read,
            may_verify_now,
        } = command
        else {
            return self.follow_up(command, ctx);
        };
        if matches!(ctx.actor.role, Role::Auditor | Role::Reactor) {
            return Err(UploadRefusal::RoleMayNotUpload);
        }
        match purpose {
            Purpose::Put { .. } if !may_write => {
                return Err(UploadRefusal::MayNotWrite(uri.clone()));
            }
            Purpose::Verify if !may_read => return Err(UploadRefusal::MayNotRead(uri.clone())),
            Purpose::Verify if !may_verify_now => {
                return Err(UploadRefusal::TooManyVerifications(uri.clone()));
            }
            _ => {}
        }
        if self.request.is_some() {
            return Err(UploadRefusal::AlreadyExists(*request_id));
        }
        if !store_accepts_uploads {
            return Err(UploadRefusal::StoreNotAccepting(uri.store.clone()));
        }
        let expires_at = expiry(ctx.now, *ttl)?;
        Ok(vec![UploadEvent::SecretUploadKeyRequested {
            request_id: *request_id,
            uri: uri.clone(),
            store: uri.store.clone(),
            requester: ctx.actor.slug.clone(),
            purpose: *purpose,
            expires_at,
        }])
    }

    fn apply(&mut self, event: &UploadEvent) {
        match event {
            UploadEvent::SecretUploadKeyRequested {
                request_id,
                uri,
                store,
                requester,
                purpose,
                expires_at,
            } => {
                self.request = Some(Request {
                    request_id: *request_id,
                    uri: uri.clone(),
                    store: store.clone(),
                    requester: requester.clone(),
                    purpose: *purpose,
                    expires_at: *expires_at,
                    sealed: None,
                });
            }
            UploadEvent::SealedFileSubmitted {
                request_id,
                uri,
                store,
                requester,
                key_id,
                reseal,
                current_version,
                expires_at,
                ..
            } => {
                self.request = Some(Request {
                    request_id: *request_id,
                    uri: uri.clone(),
                    store: store.clone(),
                    requester: requester.clone(),
                    purpose: Purpose::Put { adopt: false },
                    expires_at: *expires_at,
                    sealed: Some(Box::new(SealedFile {
                        key_id: key_id.clone(),
                        reseal: *reseal,
                        current_version: *current_version,
                    })),
                });
                self.uploaded = true;
            }
            UploadEvent::SecretUploadKeyProvided {
                public_key,
                signature,
                ..
            } => self.key = Some(Box::new((public_key.clone(), signature.clone()))),
            UploadEvent::SecretUploadRequested { .. } => self.uploaded = true,
            end => self.end = Some(End::Event(Box::new(end.clone()))),
        }
    }
}

#[cfg(test)]
mod tests;

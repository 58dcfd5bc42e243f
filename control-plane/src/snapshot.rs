//! The read-model snapshot (ADR 0026): the whole [`ReadModel`] as folded up
//! to a log position, kept in one file beside the log key so a restart folds
//! only the events after it instead of the whole history.
//!
//! It is a cache, never a source of truth: a snapshot is used only when its
//! MAC checks (HMAC-SHA256 under a key derived from the log-signing key, so
//! only a holder of that key can make one the server accepts), it was
//! written by this format and version of Sealplane, and the log still has
//! the snapshot's log hash at the snapshot's position. Anything else —
//! missing, unreadable, changed, another build's, another log's — means a
//! rebuild from position 1; deleting the file is always safe.
//!
//! Layout (ADR 0034): the magic line, then sections, each as its length
//! (8 bytes, little-endian) and its bytes, then the MAC line:
//!
//! ```text
//! sealplane read-model snapshot
//! {...the model but the three parts below...}   JSON
//! [(ended at, id), ...]                          binary: finished requests
//! [(uri, secret), ...]        8 sections, binary: the secrets, in uri order
//! [(id, upload), ...]         8 sections, binary: the upload requests, in id order
//! {"format":4,"build":"0.1.0","position":P,"log_hash":"<hex>"}   JSON
//! mac <hex of HMAC-SHA256 over every byte before this line>
//! ```
//!
//! "Binary" is postcard: the model's own serde forms, which keep hashes,
//! ids and times as bytes and numbers in a binary format
//! ([`crate::domain::compact`]); there is nothing to tokenize and no text
//! to parse back. The two large maps are cut into sections so that writing
//! and reading use every core.
//!
//! The file holds token digests, access lists and the state of open uploads
//! (their one-time public keys; a resealed file's new ciphertext): it is
//! written 0600 and a snapshot others may read is refused. Errors never
//! quote its content.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac as _};
use sealplane_event_store::{LogCheckpoint, LogHash, Position};
use sealplane_host::durable;
use sealplane_proto::log_checkpoint::LogSigningKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::domain::compact;
use crate::domain::names::SecretUri;
use crate::domain::secret::Secret;
use crate::domain::upload::UploadRequest;
use crate::read_model::{ReadModel, Rest};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The snapshot's file name beside the log-signing key.
pub const SNAPSHOT_FILE: &str = "read-model.snapshot";

/// The shape of what a snapshot serializes. Bump it with any change to a
/// field of [`ReadModel`] or of an aggregate state it holds: an old
/// snapshot is then discarded instead of read into the new shape. (Build
/// versions differ too: see [`Header::build`].)
pub const FORMAT: u32 = 4;

const MAGIC: &[u8] = b"sealplane read-model snapshot\n";
/// Sections each of the two large maps is cut into.
const CHUNKS: usize = 8;
/// The model's sections: the rest, the finished requests, then the chunks
/// of each large map.
const MODEL_SECTIONS: usize = 2 + 2 * CHUNKS;
const MAC_PREFIX: &[u8] = b"mac ";
/// The MAC line: the prefix, 64 hex digits, a newline.
const MAC_LINE: usize = MAC_PREFIX.len() + 64 + 1;

type HmacSha256 = Hmac<Sha256>;

/// Why a snapshot was not written or not used. No message quotes the file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file could not be read.
    #[error("cannot read the read-model snapshot: {0}")]
    Read(std::io::Error),
    /// Not a regular file, or one its group or others may access.
    #[error(
        "{} is not a regular file of mode 0600 (found {mode:o}): a snapshot others may read or change is not used",
        path.display()
    )]
    Exposed { path: PathBuf, mode: u32 },
    /// The file could not be written.
    #[error("cannot write the read-model snapshot: {0}")]
    Write(#[from] durable::DurableError),
    /// Not a snapshot at all, or cut short.
    #[error("{} is not a complete read-model snapshot", path.display())]
    NotASnapshot { path: PathBuf },
    /// Its MAC does not match: changed on disk, or made with another log key.
    #[error(
        "{} does not carry this control plane's MAC: it was changed on disk, or written with another log key",
        path.display()
    )]
    BadMac { path: PathBuf },
    /// Written by another format or build of Sealplane.
    #[error(
        "{} was written by sealplane {build} (snapshot format {format}); this is sealplane {} (format {FORMAT})",
        path.display(), env!("CARGO_PKG_VERSION")
    )]
    OtherBuild {
        path: PathBuf,
        build: String,
        format: u32,
    },
    /// The MAC matched but the content does not parse: a bug of this build.
    /// `what` is the parser's own account, which never holds the content.
    #[error("{} does not parse ({what} in {part})", path.display())]
    Malformed {
        path: PathBuf,
        part: &'static str,
        what: String,
    },
    /// The model could not be serialized.
    #[error("cannot serialize the read model: {0}")]
    Encode(String),
}

/// What a snapshot says about itself, after the model.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: u32,
    /// The control plane's version that wrote it: a newer or older build
    /// may fold some event differently (an event type it learnt to read),
    /// so it rebuilds rather than trust another build's fold.
    build: String,
    position: u64,
    log_hash: String,
}

/// A snapshot read back and checked: the model as folded up to `at`.
#[derive(Debug)]
pub struct Snapshot {
    /// The read model after applying every event up to `at.position`.
    pub model: ReadModel,
    /// The position it covers and the log hash there.
    pub at: LogCheckpoint,
}

/// A finished request as the snapshot holds it: when it ended, and its id.
#[derive(Serialize, Deserialize)]
struct Ended(#[serde(with = "compact::time")] DateTime<Utc>, Uuid);

/// Why a binary part did not serialize or parse: postcard's account names
/// a kind of error only (it drops serde's messages, which may quote).
fn account(e: postcard::Error) -> String {
    e.to_string()
}

/// Why a JSON part did not: its kind and place, never serde_json's message
/// (which may quote the content).
fn json_account(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "an I/O error",
        serde_json::error::Category::Syntax => "a syntax error",
        serde_json::error::Category::Data => "a data error",
        serde_json::error::Category::Eof => "an early end",
    };
    format!("{kind} at line {}, column {}", e.line(), e.column())
}

/// The model serialized, ready to be sealed and written outside the lock
/// that guards the model.
pub struct Encoded {
    bytes: Vec<u8>,
}

/// Appends one section: its length, then its bytes.
fn push_section(bytes: &mut Vec<u8>, section: &[u8]) {
    bytes.extend_from_slice(&(section.len() as u64).to_le_bytes());
    bytes.extend_from_slice(section);
}

impl Encoded {
    /// Serializes `model` (call it under the model's read lock), its large
    /// maps on several threads.
    pub fn of(model: &ReadModel) -> Result<Encoded, SnapshotError> {
        fn chunk_of<K: Serialize, V: Serialize>(
            map: &std::collections::BTreeMap<K, V>,
            index: usize,
        ) -> Result<Vec<u8>, String> {
            let size = map.len().div_ceil(CHUNKS).max(1);
            let chunk: Vec<_> = map.iter().skip(index * size).take(size).collect();
            postcard::to_allocvec(&chunk).map_err(account)
        }
        let sections: Vec<Result<Vec<u8>, String>> = std::thread::scope(|scope| {
            let rest = scope.spawn(|| {
                let mut out = Vec::new();
                model
                    .write_rest(&mut out)
                    .map(|()| out)
                    .map_err(|e| json_account(&e))
            });
            let finished = scope.spawn(|| {
                let ended: Vec<Ended> = model
                    .finished()
                    .iter()
                    .map(|(at, id)| Ended(*at, *id))
                    .collect();
                postcard::to_allocvec(&ended).map_err(account)
            });
            let secrets: Vec<_> = (0..CHUNKS)
                .map(|i| scope.spawn(move || chunk_of(&model.secrets, i)))
                .collect();
            let uploads: Vec<_> = (0..CHUNKS)
                .map(|i| scope.spawn(move || chunk_of(&model.uploads, i)))
                .collect();
            [rest, finished]
                .into_iter()
                .chain(secrets)
                .chain(uploads)
                .map(|t| t.join().expect("serializing does not panic"))
                .collect()
        });
        let mut bytes = Vec::with_capacity(
            MAGIC.len()
                + sections
                    .iter()
                    .flatten()
                    .map(|l| l.len() + 8)
                    .sum::<usize>()
                + 256,
        );
        bytes.extend_from_slice(MAGIC);
        for section in sections {
            push_section(&mut bytes, &section.map_err(SnapshotError::Encode)?);
        }
        Ok(Encoded { bytes })
    }

    /// Its size in bytes so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it is empty (never, once made).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The sections of `body` (what follows the magic line and precedes the
/// MAC line), or `None` when they do not fill it exactly.
fn sections(mut body: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::with_capacity(MODEL_SECTIONS + 1);
    while !body.is_empty() {
        let (len, rest) = body.split_first_chunk::<8>()?;
        let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        if len > rest.len() {
            return None;
        }
        let (section, rest) = rest.split_at(len);
        out.push(section);
        body = rest;
    }
    Some(out)
}

/// A section's entries, read into a vector of their number at once
/// rather than grown by doubling: the number is bounded by the section's
/// length (every entry takes a byte at least), so a wrong count cannot
/// make a large allocation. Bytes left after the entries are an error.
fn entries<'de, T: Deserialize<'de>>(section: &'de [u8]) -> postcard::Result<Vec<T>> {
    struct Counted<T> {
        most: usize,
        each: std::marker::PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Counted<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a sequence")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.most));
            while let Some(entry) = seq.next_element()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    let mut deserializer = postcard::Deserializer::from_bytes(section);
    let counted = Counted {
        most: section.len(),
        each: std::marker::PhantomData,
    };
    let entries = serde::Deserializer::deserialize_seq(&mut deserializer, counted)?;
    if !deserializer.finalize()?.is_empty() {
        return Err(postcard::Error::DeserializeBadEncoding);
    }
    Ok(entries)
}

/// `chunks` in order, as one map (its entries sorted already: they were
/// written in key order).
fn map_of<K: Ord, V>(chunks: Vec<Vec<(K, V)>>) -> std::collections::BTreeMap<K, V> {
    let mut all = Vec::with_capacity(chunks.iter().map(Vec::len).sum());
    for chunk in chunks {
        all.extend(chunk);
    }
    all.into_iter().collect()
}

/// The header of a snapshot in the line-based layout of formats 1 to 3
/// (its last line but the MAC's), to say which build wrote it after an
/// upgrade rather than call it incomplete. Only the error's wording
/// depends on it: such a file is never read into a model.
fn line_header(bytes: &[u8]) -> Option<Header> {
    let mut lines = bytes.strip_suffix(b"\n")?.rsplit(|b| *b == b'\n');
    lines.next()?.strip_prefix(MAC_PREFIX)?;
    serde_json::from_slice::<Header>(lines.next()?)
        .ok()
        .filter(|header| header.format < FORMAT)
}

/// A parsing thread's result (parsing never panics).
fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread.join().expect("parsing does not panic")
}

/// One control plane's snapshot file and the key its MAC is made with.
pub struct SnapshotFile {
    path: PathBuf,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SnapshotFile {
    /// The snapshot at `path`, MAC'd under a key derived from `log_key`
    /// (so a snapshot is only accepted by the control plane that holds it).
    pub fn new(path: impl Into<PathBuf>, log_key: &LogSigningKey) -> SnapshotFile {
        let mut hasher = Sha256::new();
        hasher.update(b"sealplane-read-model-snapshot-key-v1\n");
        hasher.update(log_key.to_text().as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&hasher.finalize());
        SnapshotFile {
            path: path.into(),
            key,
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&*self.key).expect("HMAC takes any key length")
    }

    /// Writes `model` as folded up to `at`: atomically, durably, 0600.
    /// Returns the file's size.
    pub fn write(&self, model: &ReadModel, at: LogCheckpoint) -> Result<usize, SnapshotError> {
        self.write_encoded(Encoded::of(model)?, at)
    }

    /// Writes a model [`Encoded`] when it had applied exactly up to `at`.
    pub fn write_encoded(
        &self,
        encoded: Encoded,
        at: LogCheckpoint,
    ) -> Result<usize, SnapshotError> {
        let mut bytes = encoded.bytes;
        let header = Header {
            format: FORMAT,
            build: env!("CARGO_PKG_VERSION").to_owned(),
            position: at.position.0,
            log_hash: at.log_hash.to_hex(),
        };
        let header =
            serde_json::to_vec(&header).map_err(|e| SnapshotError::Encode(json_account(&e)))?;
        push_section(&mut bytes, &header);
        let mut mac = self.mac();
        mac.update(&bytes);
        let tag = hex::encode(mac.finalize().into_bytes());
        bytes.extend_from_slice(MAC_PREFIX);
        bytes.extend_from_slice(tag.as_bytes());
        bytes.push(b'\n');
        durable::write_atomic(&self.path, &bytes, 0o600)?;
        Ok(bytes.len())
    }

    /// Reads the snapshot back: `None` when there is none; an error when
    /// there is one that must not be used (the caller rebuilds).
    pub fn load(&self) -> Result<Option<Snapshot>, SnapshotError> {
        let bytes = match self.read() {
            Ok(bytes) => bytes,
            Err(SnapshotError::Read(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.parse(&bytes).map(Some)
    }

    /// The file's bytes, refused when its group or others may access it.
    fn read(&self) -> Result<Vec<u8>, SnapshotError> {
        use std::io::Read as _;
        use std::os::unix::fs::PermissionsExt as _;
        let io = |source| SnapshotError::Read(source);
        let mut file = std::fs::File::open(&self.path).map_err(io)?;
        // fstat of the handle about to be read, not a second stat of the path.
        let meta = file.metadata().map_err(io)?;
        let mode = meta.permissions().mode() & 0o7777;
        if !meta.is_file() || mode & 0o077 != 0 {
            return Err(SnapshotError::Exposed {
                path: self.path.clone(),
                mode,
            });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
        file.read_to_end(&mut bytes).map_err(io)?;
        Ok(bytes)
    }

    /// Checks and parses the bytes of a snapshot file: the MAC on one
    /// thread while the model's sections parse on others (a section that
    /// fails the MAC is never used).
    fn parse(&self, bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let incomplete = || SnapshotError::NotASnapshot {
            path: self.path.clone(),
        };
        if !bytes.starts_with(MAGIC) || bytes.len() < MAGIC.len() + MAC_LINE {
            return Err(incomplete());
        }
        let (sealed, mac_line) = bytes.split_at(bytes.len() - MAC_LINE);
        let tag = mac_line
            .strip_prefix(MAC_PREFIX)
            .and_then(|line| line.strip_suffix(b"\n"))
            .and_then(|hex_tag| hex::decode(hex_tag).ok())
            .ok_or_else(incomplete)?;
        // rest, finished, chunks..., header
        let Some(parts) =
            sections(&sealed[MAGIC.len()..]).filter(|parts| parts.len() == MODEL_SECTIONS + 1)
        else {
            return Err(match line_header(bytes) {
                Some(old) => SnapshotError::OtherBuild {
                    path: self.path.clone(),
                    build: old.build,
                    format: old.format,
                },
                None => incomplete(),
            });
        };
        let (mac_ok, header, rest, finished, secrets, uploads) = std::thread::scope(|scope| {
            let mac_ok = scope.spawn(|| {
                let mut mac = self.mac();
                mac.update(sealed);
                mac.verify_slice(&tag).is_ok()
            });
            let secrets: Vec<_> = parts[2..2 + CHUNKS]
                .iter()
                .map(|part| scope.spawn(move || entries::<(SecretUri, Secret)>(part)))
                .collect();
            let uploads: Vec<_> = parts[2 + CHUNKS..MODEL_SECTIONS]
                .iter()
                .map(|part| scope.spawn(move || entries::<(Uuid, UploadRequest)>(part)))
                .collect();
            let rest = serde_json::from_slice::<Rest>(parts[0]);
            let finished = entries::<Ended>(parts[1]);
            let header = serde_json::from_slice::<Header>(parts[MODEL_SECTIONS]);
            (
                joined(mac_ok),
                header,
                rest,
                finished,
                secrets.into_iter().map(joined).collect::<Vec<_>>(),
                uploads.into_iter().map(joined).collect::<Vec<_>>(),
            )
        });
        if !mac_ok {
            return Err(SnapshotError::BadMac {
                path: self.path.clone(),
            });
        }
        let header = header.map_err(|e| self.malformed("the header", json_account(&e)))?;
        if header.format != FORMAT || header.build != env!("CARGO_PKG_VERSION") {
            return Err(SnapshotError::OtherBuild {
                path: self.path.clone(),
                build: header.build,
                format: header.format,
            });
        }
        let log_hash = LogHash::from_hex(&header.log_hash)
            .ok_or_else(|| self.malformed("the header", "a bad log hash".to_owned()))?;
        let rest = rest.map_err(|e| self.malformed("the model's small parts", json_account(&e)))?;
        let finished = finished.map_err(|e| self.malformed("the finished requests", account(e)))?;
        let secrets = secrets
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.malformed("the secrets", account(e)))?;
        let uploads = uploads
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.malformed("the upload requests", account(e)))?;
        let model = ReadModel::from_parts(
            rest,
            finished.into_iter().map(|Ended(at, id)| (at, id)).collect(),
            map_of(secrets),
            map_of(uploads),
        );
        Ok(Snapshot {
            model,
            at: LogCheckpoint {
                position: Position(header.position),
                log_hash,
            },
        })
    }

    fn malformed(&self, part: &'static str, what: String) -> SnapshotError {
        SnapshotError::Malformed {
            path: self.path.clone(),
            part,
            what,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

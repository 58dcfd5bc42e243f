//! The embedded `file` store (SPEC §5): for one machine and `sealplane dev`.
//!
//! Layout: the secret at `a/b/c` lives in `<root>/a/b/c/`, one
//! `v{N}.json` per version and a head record `+head` (ADR 0013): the
//! newest version and whether it is soft-deleted, MACed under a key
//! derived from the master key, so a removed newest version or a removed
//! head is an error, never an older version served. (Stores written
//! before heads have a `deleted` marker naming the soft-deleted version
//! instead.) Directories are 0700, files 0600, and every file is written
//! to a temporary file, fsynced and renamed into place, so a crash leaves
//! either the old or the new file, never half of one; a new secret's
//! directory appears whole with its first version, which stands alone
//! (marked `solo`) until the secret's first head is written.
//!
//! Envelope encryption: each version gets a fresh random 32-byte data key;
//! the value (the JSON of [`SecretValue`]) is sealed under it with
//! XChaCha20-Poly1305 and the data key is wrapped under the master key with
//! XChaCha20-Poly1305, both with random 24-byte nonces. The version's
//! metadata (managed_by, path, version, uri, request_id, created_at, adopted)
//! is the associated data of both, with the path and version taken from
//! where the file is found rather than from the file: moving a file to
//! another path or version, or editing its metadata, makes it fail to open
//! ([`UpstreamError::Tampered`]).
//!
//! The operations are synchronous file-system calls (with fsyncs), run on
//! tokio's blocking pool; the store is meant for one machine.

use std::fmt;
use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand_core::{OsRng, RngCore};
use sealplane_host::durable;
use sealplane_proto::sealed::SecretValue;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::master_key::MasterKey;
use crate::upstream::{
    UpstreamError, UpstreamStore, WriteMeta, Written, check_path, path_segment_problem,
};
use crate::value_map::same_value;

mod config;
mod envelope;
mod head;

pub use self::config::FileStoreConfig;
use self::envelope::{
    AAD_KEY_TAG, AAD_VALUE_TAG, VersionFile, VersionMeta, aad, open, random_nonce, seal,
};
use self::head::{HEAD, Head};
pub use crate::upstream::MAX_PATH_LEN;

/// Longest path segment in bytes: a directory name (`NAME_MAX` on Linux).
pub const MAX_SEGMENT_LEN: usize = 255;

/// The `managed_by` value of every version Sealplane writes.
pub const MANAGED_BY: &str = "sealplane";

/// The `format` value of a version file.
pub const FORMAT: &str = "sealplane-file-v1";

/// Name of the soft-delete marker in a secret's directory.
const DELETED: &str = "deleted";

/// Prefix of temporary files (the durable writer's); a leftover from a crash is ignored.
const TMP_PREFIX: &str = durable::TEMP_PREFIX;

/// Why a path segment is refused, if it is: SPEC §3's rules, a directory
/// name's length, and the names the store uses itself.
fn segment_problem(seg: &str) -> Option<&'static str> {
    // An empty or `.`/`..` segment is never this long, so checking the
    // length first keeps the reasons in the order they always had.
    if seg.len() > MAX_SEGMENT_LEN {
        return Some("a segment is longer than 255 bytes (a directory name's limit)");
    }
    if let Some(problem) = path_segment_problem(seg) {
        return Some(problem);
    }
    // These names are the store's own files inside a secret's directory; a
    // nested secret with such a name would collide with them.
    if seg == DELETED || version_of(seg).is_some() || seg.starts_with(TMP_PREFIX) {
        return Some("a segment uses a name the file store reserves (`deleted`, `v<N>.json`)");
    }
    None
}

/// Checks a secret path: `/`-separated `[A-Za-z0-9._-]{1,255}` segments, no `.`/`..` or reserved name, ≤512 bytes.
pub fn validate_path(path: &str) -> Result<(), UpstreamError> {
    check_path(path, segment_problem)
}

/// The version number of a file name `v{N}.json` (N ≥ 1, no leading zero).
fn version_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix('v')?.strip_suffix(".json")?;
    // One spelling per version, so `v01.json` cannot shadow `v1.json`.
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn version_file_name(version: u64) -> String {
    format!("v{version}.json")
}

/// The value's JSON in a zeroizing buffer sized up front (no reallocation).
fn value_json(value: &SecretValue) -> Result<Zeroizing<Vec<u8>>, UpstreamError> {
    // Key names need no JSON escaping and base64 none either.
    let capacity = 2 + value
        .iter()
        .map(|(k, v)| 6 + k.len() + 4 * v.len().div_ceil(3))
        .sum::<usize>();
    let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
    serde_json::to_writer(&mut *buf, value)
        .map_err(|_| UpstreamError::Crypto("encoding the value"))?;
    Ok(buf)
}

fn io_err(op: &'static str, target: &Path) -> impl FnOnce(io::Error) -> UpstreamError {
    let target = target.display().to_string();
    move |source| UpstreamError::Io { op, target, source }
}

/// How a version file marks its place in ADR 0013's layout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Written since heads exist (`headed`).
    Headed,
    /// A new secret's first version, standing alone (`headed` and `solo`).
    Solo,
    /// From before heads existed (for the compatibility tests).
    #[cfg_attr(not(test), allow(dead_code))]
    BeforeHeads,
}

/// Which missing directories [`Files::secret_dir`] creates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Create {
    Nothing,
    /// All but the secret's own (which a first put creates whole).
    Parents,
}

/// What a secret's directory holds.
#[derive(Default)]
struct DirState {
    /// Every `v{N}.json`, sorted by N: `Some(meta)` for Sealplane's, `None` for foreign ones.
    versions: Vec<(u64, Option<VersionMeta>)>,
    /// Files that are neither versions, the marker, nor temporary files.
    foreign_files: bool,
    /// The version the `deleted` marker names, if any.
    deleted: Option<u64>,
    /// The head record: `Some(None)` when there is one that does not verify.
    head: Option<Option<Head>>,
}

impl DirState {
    fn latest(&self) -> Option<&(u64, Option<VersionMeta>)> {
        self.versions.last()
    }

    /// Whether the first version claims to stand alone (`solo`; a claim
    /// authenticated only when the version is opened).
    fn solo_first(&self) -> bool {
        matches!(self.versions.first(), Some((1, Some(m))) if m.solo)
    }

    /// Whether Sealplane may manage this directory without being told to adopt it.
    fn managed(&self) -> bool {
        let foreign = self.foreign_files || self.versions.iter().any(|(_, m)| m.is_none());
        if !foreign {
            return true;
        }
        // A directory an admin adopted stays adopted: its foreign files
        // were accepted then, so later writes need no --adopt.
        matches!(self.latest(), Some((_, Some(meta))) if meta.adopted)
    }
}

/// The embedded file store: envelope-encrypted versions under a root
/// directory. Cloning it is cheap (one shared store); its operations run on
/// tokio's blocking pool, since they are synchronous file-system calls with
/// fsyncs.
#[derive(Clone)]
pub struct FileStore {
    files: Arc<Files>,
}

/// The store's state and its synchronous operations.
struct Files {
    root: PathBuf,
    key: MasterKey,
    /// Serialises the writers of one secret in this process, so two puts
    /// never pick one version number; writes to different secrets run (and
    /// fsync) at once.
    locks: PathLocks,
}

/// Locks striped by secret path: one path always takes the same lock,
/// different paths mostly different ones (a shared stripe only serialises).
struct PathLocks([Mutex<()>; LOCK_STRIPES]);

/// Stripes of [`PathLocks`]: far more than the writes a reactor runs at once.
const LOCK_STRIPES: usize = 256;

impl PathLocks {
    fn new() -> Self {
        PathLocks(std::array::from_fn(|_| Mutex::new(())))
    }

    fn lock(&self, path: &str) -> std::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        path.hash(&mut hasher);
        let stripe = (hasher.finish() % LOCK_STRIPES as u64) as usize;
        // Nothing the lock guards can be left half-done by a panic: the
        // files on disk are the state, written atomically.
        self.0[stripe].lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("root", &self.files.root)
            .field("key", &self.files.key)
            .finish()
    }
}

impl FileStore {
    /// A store under `root` (created 0700 if missing) with `key` as master key.
    pub fn open(root: impl Into<PathBuf>, key: MasterKey) -> Result<Self, UpstreamError> {
        Ok(Self {
            files: Arc::new(Files::open(root.into(), key)?),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.files.root
    }

    /// Runs `op` on the blocking pool with a handle to the store.
    async fn offload<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Files) -> Result<T, UpstreamError> + Send + 'static,
    ) -> Result<T, UpstreamError> {
        let files = Arc::clone(&self.files);
        tokio::task::spawn_blocking(move || op(&files))
            .await
            .map_err(|e| UpstreamError::Io {
                op: "run a file store operation",
                target: self.files.root.display().to_string(),
                source: io::Error::other(e.to_string()),
            })?
    }
}

impl Files {
    fn open(root: PathBuf, key: MasterKey) -> Result<Self, UpstreamError> {
        match fs::symlink_metadata(&root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(UpstreamError::Io {
                    op: "use as file store root",
                    target: root.display().to_string(),
                    source: io::Error::other("not a directory"),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&root)
                    .map_err(io_err("create directory", &root))?;
            }
            Err(e) => return Err(io_err("inspect", &root)(e)),
        }
        Ok(Self {
            root,
            key,
            locks: PathLocks::new(),
        })
    }

    /// The secret's directory and whether it exists; walks it refusing
    /// symlinks (which could lead writes outside the root) and creates
    /// missing parts 0700 as `create` says.
    fn secret_dir(&self, path: &str, create: Create) -> Result<(PathBuf, bool), UpstreamError> {
        validate_path(path)?;
        let mut dir = self.root.clone();
        let segments = path.split('/').count();
        for (i, seg) in path.split('/').enumerate() {
            let parent = dir.clone();
            dir.push(seg);
            let create_this = create == Create::Parents && i + 1 < segments;
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(UpstreamError::Io {
                        op: "use as secret directory",
                        target: dir.display().to_string(),
                        source: io::Error::other("not a plain directory (a file or a symlink)"),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !create_this {
                        // The rest of the path is missing too.
                        return Ok((self.root.join(path), false));
                    }
                    match DirBuilder::new().mode(0o700).create(&dir) {
                        Ok(()) => sync_dir(&parent)?,
                        // Another secret's write made it meanwhile (writes
                        // to different secrets run at once): check it as
                        // an existing part.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                            let m = fs::symlink_metadata(&dir).map_err(io_err("inspect", &dir))?;
                            if !m.is_dir() {
                                return Err(UpstreamError::Io {
                                    op: "use as secret directory",
                                    target: dir.display().to_string(),
                                    source: io::Error::other(
                                        "not a plain directory (a file or a symlink)",
                                    ),
                                });
                            }
                        }
                        Err(e) => return Err(io_err("create directory", &dir)(e)),
                    }
                }
                Err(e) => return Err(io_err("inspect", &dir)(e)),
            }
        }
        Ok((dir, true))
    }

    /// Lists a secret's directory and classifies what it holds.
    fn scan(&self, path: &str, dir: &Path) -> Result<DirState, UpstreamError> {
        let mut state = DirState::default();
        for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
            let entry = entry.map_err(io_err("list", dir))?;
            let kind = entry
                .file_type()
                .map_err(io_err("inspect", &entry.path()))?;
            // Sub-directories are nested secrets (`a/b` under `a`).
            if kind.is_dir() {
                continue;
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                state.foreign_files = true;
                continue;
            };
            if name.starts_with(TMP_PREFIX) && kind.is_file() {
                continue;
            }
            if name == HEAD && kind.is_file() {
                let bytes = fs::read(entry.path()).map_err(io_err("read", &entry.path()))?;
                state.head = Some(head::decode(&self.key, path, &bytes));
                continue;
            }
            if name == DELETED && kind.is_file() {
                let text =
                    fs::read_to_string(entry.path()).map_err(io_err("read", &entry.path()))?;
                let version = text.trim().parse().map_err(|_| UpstreamError::Tampered {
                    path: path.to_owned(),
                })?;
                state.deleted = Some(version);
                continue;
            }
            match version_of(name) {
                Some(n) if kind.is_file() => {
                    let meta = read_meta(&entry.path())?;
                    state.versions.push((n, meta));
                }
                _ => state.foreign_files = true,
            }
        }
        state.versions.sort_by_key(|(n, _)| *n);
        Ok(state)
    }

    /// The newest version and whether it is deleted, as the head records
    /// it; `None` when there is no version. A head that does not verify,
    /// a missing newest version or a marker the head does not account for
    /// is an error naming the path, never an older version.
    fn current(&self, path: &str, state: &DirState) -> Result<Option<(u64, bool)>, UpstreamError> {
        let on_disk = state.latest().map(|(n, _)| *n);
        let rolled_back = |reason| UpstreamError::RolledBack {
            path: path.to_owned(),
            reason,
        };
        match state.head {
            Some(None) => Err(UpstreamError::Tampered {
                path: path.to_owned(),
            }),
            Some(Some(head)) => {
                // A put writes the version, then moves the head: a version
                // one beyond the head is that put's, crashed before the head
                // moved (only this store can make a version that opens, and
                // the head never moves back, unless an old head is put back:
                // a replay, which ADR 0013 leaves undetected).
                let current = match on_disk {
                    Some(n) if n == head.version => Some((n, head.deleted)),
                    Some(n) if Some(n) == head.version.checked_add(1) => Some((n, false)),
                    // A head with no version yet (its first write crashed).
                    None if head.version == 0 => None,
                    Some(n) if n > head.version => {
                        return Err(rolled_back(
                            "it holds a version newer than the store's record (an old record put back?)",
                        ));
                    }
                    _ => {
                        return Err(rolled_back(
                            "its newest version file is missing (an older version is not used in its place)",
                        ));
                    }
                };
                // The head alone says whether a headed secret is deleted; a
                // marker naming an older version (left by the layout before
                // heads) hides nothing, one naming the current live version
                // or a newer one was planted.
                if let Some(marker) = state.deleted
                    && current.is_none_or(|(n, deleted)| marker > n || (marker == n && !deleted))
                {
                    return Err(rolled_back(
                        "its `deleted` marker does not match the store's record",
                    ));
                }
                Ok(current)
            }
            None => {
                // A new secret's first version stands alone until a head is
                // written; the secret's second put or soft delete writes
                // one and ends `solo` (`end_solo`), so only a secret that
                // never had another state can be read so. (Removing this version
                // instead looks like a secret never written, as removing
                // the whole directory always did.)
                if let [(1, Some(meta))] = state.versions.as_slice()
                    && meta.solo
                    && state.deleted.is_none()
                {
                    return Ok(Some((1, false)));
                }
                // A second put crashed before its head (or v1's rewrite)
                // reached the disk: its version is the current one. Only
                // v2 can follow a `solo` v1 without a head: any later write
                // ends `solo` durably before its version.
                if let [(1, Some(first)), (2, Some(second))] = state.versions.as_slice()
                    && first.solo
                    && second.headed
                    && !second.solo
                    && state.deleted.is_none()
                {
                    return Ok(Some((2, false)));
                }
                // A store written before heads existed has none until its
                // next write. Any other version written since says there
                // was one: a version after the first is written after a
                // head, and an old secret gets its head before its next
                // version.
                if state
                    .versions
                    .iter()
                    .any(|(_, m)| m.as_ref().is_some_and(|m| m.headed))
                {
                    return Err(rolled_back("its head record (`+head`) is missing"));
                }
                Ok(on_disk.map(|n| (n, state.deleted == Some(n))))
            }
        }
    }

    /// Writes the head record of `path`, durably.
    fn write_head(&self, path: &str, dir: &Path, head: Head) -> Result<(), UpstreamError> {
        self.write_head_syncing(path, dir, head, DirSync::Now)
    }

    fn write_head_syncing(
        &self,
        path: &str,
        dir: &Path,
        head: Head,
        sync: DirSync,
    ) -> Result<(), UpstreamError> {
        write_file(dir, HEAD, &head::encode(&self.key, path, head), sync)
    }

    /// Opens version `version` of `path`: any failure to authenticate is `Tampered`.
    fn read_version(
        &self,
        path: &str,
        dir: &Path,
        version: u64,
    ) -> Result<SecretValue, UpstreamError> {
        Ok(self.open_version(path, dir, version)?.0)
    }

    /// Opens version `version` of `path` with its metadata, authenticated.
    fn open_version(
        &self,
        path: &str,
        dir: &Path,
        version: u64,
    ) -> Result<(SecretValue, VersionMeta), UpstreamError> {
        let file = dir.join(version_file_name(version));
        let tampered = || UpstreamError::Tampered {
            path: path.to_owned(),
        };
        let bytes = fs::read(&file).map_err(io_err("read", &file))?;
        let vf: VersionFile = serde_json::from_slice(&bytes).map_err(|_| tampered())?;
        if vf.format != FORMAT
            || vf.meta.managed_by != MANAGED_BY
            || vf.meta.path != path
            || vf.meta.version != version
        {
            return Err(tampered());
        }
        let decode = |s: &str| STANDARD.decode(s).map_err(|_| tampered());
        let data_key_bytes = open(
            &self.key.0,
            &decode(&vf.key_nonce)?,
            &aad(AAD_KEY_TAG, path, version, &vf.meta),
            &decode(&vf.wrapped_key)?,
        )
        .ok_or_else(tampered)?;
        let mut data_key = Zeroizing::new([0u8; 32]);
        if data_key_bytes.len() != data_key.len() {
            return Err(tampered());
        }
        data_key.copy_from_slice(&data_key_bytes);
        let json = open(
            &data_key,
            &decode(&vf.value_nonce)?,
            &aad(AAD_VALUE_TAG, path, version, &vf.meta),
            &decode(&vf.value)?,
        )
        .ok_or_else(tampered)?;
        // serde_json's error could quote the value: only the fact survives.
        let value = serde_json::from_slice(&json).map_err(|_| tampered())?;
        Ok((value, vf.meta))
    }

    /// Ends the standing of a `solo` first version (see `current`): seals
    /// it afresh without the flag and replaces it. Called after the head
    /// is written: by a secret's second put (after its version) or soft
    /// delete, and by any later write that finds the flag left by a crash
    /// (before its version). With `WithNextWrite` its rename and the
    /// head's reach the disk in the order made, with the directory's next
    /// fsync or the file system's commit (renames in one directory are
    /// journaled in order; should a crash keep this one and lose the
    /// head's, the secret reads as `RolledBack`, an error, never an older
    /// version).
    fn end_solo(&self, path: &str, dir: &Path, sync: DirSync) -> Result<(), UpstreamError> {
        let (value, mut meta) = self.open_version(path, dir, 1)?;
        meta.solo = false;
        let bytes = self.seal_version(path, &meta, &value)?;
        write_file(dir, &version_file_name(1), &bytes, sync)
    }

    /// Seals `value` as version `version` and writes it atomically.
    fn write_version(
        &self,
        path: &str,
        dir: &Path,
        version: u64,
        value: &SecretValue,
        meta: &WriteMeta,
        adopted: bool,
    ) -> Result<(), UpstreamError> {
        let bytes = self.version_file(path, version, value, meta, adopted, Layout::Headed)?;
        write_atomic(dir, &version_file_name(version), &bytes)
    }

    /// The bytes of version `version` of `path` holding `value` sealed, in
    /// `layout`.
    fn version_file(
        &self,
        path: &str,
        version: u64,
        value: &SecretValue,
        meta: &WriteMeta,
        adopted: bool,
        layout: Layout,
    ) -> Result<Vec<u8>, UpstreamError> {
        let vmeta = VersionMeta {
            managed_by: MANAGED_BY.to_owned(),
            path: path.to_owned(),
            version,
            uri: meta.uri.clone(),
            request_id: meta.request_id,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            adopted,
            headed: layout != Layout::BeforeHeads,
            solo: layout == Layout::Solo,
        };
        self.seal_version(path, &vmeta, value)
    }

    /// The bytes of the version file with metadata `vmeta` holding `value`
    /// sealed.
    fn seal_version(
        &self,
        path: &str,
        vmeta: &VersionMeta,
        value: &SecretValue,
    ) -> Result<Vec<u8>, UpstreamError> {
        let version = vmeta.version;
        // A fresh data key per version: one leaked data key exposes one version.
        let mut data_key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut data_key[..]);
        let value_nonce = random_nonce();
        let sealed_value = seal(
            &data_key,
            &value_nonce,
            &aad(AAD_VALUE_TAG, path, version, vmeta),
            &value_json(value)?,
        )?;
        let key_nonce = random_nonce();
        let wrapped_key = seal(
            &self.key.0,
            &key_nonce,
            &aad(AAD_KEY_TAG, path, version, vmeta),
            &data_key[..],
        )?;
        let vf = VersionFile {
            format: FORMAT.to_owned(),
            meta: vmeta.clone(),
            key_nonce: STANDARD.encode(key_nonce),
            wrapped_key: STANDARD.encode(wrapped_key),
            value_nonce: STANDARD.encode(value_nonce),
            value: STANDARD.encode(sealed_value),
        };
        let mut bytes = serde_json::to_vec_pretty(&vf)
            .map_err(|_| UpstreamError::Crypto("encoding a version file"))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    fn put_sync(
        &self,
        path: &str,
        value: &SecretValue,
        meta: &WriteMeta,
    ) -> Result<Written, UpstreamError> {
        let _guard = self.locks.lock(path);
        let (dir, exists) = self.secret_dir(path, Create::Parents)?;
        if !exists && let Some(written) = self.create_secret(path, &dir, value, meta)? {
            return Ok(written);
        }
        let state = self.scan(path, &dir)?;
        let managed = state.managed();
        if !managed && !meta.adopt {
            return Err(UpstreamError::NotManaged {
                path: path.to_owned(),
            });
        }
        let current = self.current(path, &state)?;
        let latest = current.map(|(n, _)| n).unwrap_or(0);
        if let (Some((n, false)), Some((_, Some(_)))) = (current, state.latest())
            && same_value(&self.read_version(path, &dir, n)?, value)
        {
            return Ok(Written {
                version: n,
                upstream_ref: upstream_ref(path, n),
                changed: false,
            });
        }
        let version = latest
            .checked_add(1)
            .ok_or(UpstreamError::Crypto("version counter exhausted"))?;
        // Keeps the adoption across versions once granted.
        let adopted = !managed || matches!(state.latest(), Some((_, Some(m))) if m.adopted);
        // A secret's second put, onto its first version standing alone,
        // writes the version, then the head, then v1 without `solo` (see
        // `current` for what a crash between them leaves). Any other
        // directory without a head (from before heads, holding only nested
        // secrets, or that second put's crash leftover) gets its head
        // first, and a `solo` v1 left by a crash loses the flag before the
        // new version, so a headed version without a head is never a
        // crash's leftover.
        let solo = state.solo_first();
        let second = solo && state.head.is_none() && state.versions.len() == 1;
        if !second {
            if state.head.is_none() {
                let head = Head {
                    version: latest,
                    deleted: current.is_some_and(|(_, deleted)| deleted),
                };
                // Made durable below with the version, in the order made
                // (see `end_solo`).
                let sync = if solo {
                    DirSync::WithNextWrite
                } else {
                    DirSync::Now
                };
                self.write_head_syncing(path, &dir, head, sync)?;
            }
            if solo {
                self.end_solo(path, &dir, DirSync::WithNextWrite)?;
            }
        }
        self.write_version(path, &dir, version, value, meta, adopted)?;
        if state.deleted.is_some() {
            // Names an older version now, so it hides nothing (see
            // `current`); a removal lost in a crash is harmless.
            let marker = dir.join(DELETED);
            fs::remove_file(&marker).map_err(io_err("remove", &marker))?;
        }
        // The version is durable: should this rename be lost in a crash,
        // the version one beyond the head is found as the current one
        // (see `current`), so the directory's fsync can wait for its next
        // durable write.
        let head = Head {
            version,
            deleted: false,
        };
        self.write_head_syncing(path, &dir, head, DirSync::WithNextWrite)?;
        if second {
            // Lost in a crash, it is done again by the next write.
            self.end_solo(path, &dir, DirSync::WithNextWrite)?;
        }
        Ok(Written {
            version,
            upstream_ref: upstream_ref(path, version),
            changed: true,
        })
    }

    /// The first version of a secret whose directory does not exist yet:
    /// the directory appears at once with its version, or not at all (a
    /// crash leaves a temporary directory beside it, nothing else). The
    /// version stands alone (`solo`): no head until the secret changes.
    /// `None` when the directory appeared meanwhile (a nested secret's
    /// write made it as a parent): the caller writes into it instead.
    fn create_secret(
        &self,
        path: &str,
        dir: &Path,
        value: &SecretValue,
        meta: &WriteMeta,
    ) -> Result<Option<Written>, UpstreamError> {
        let version = 1;
        let file = self.version_file(path, version, value, meta, false, Layout::Solo)?;
        let name = version_file_name(version);
        match durable::create_dir_with(dir, 0o700, &[(&name, &file)], 0o600) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(durable_err(e)),
        }
        Ok(Some(Written {
            version,
            upstream_ref: upstream_ref(path, version),
            changed: true,
        }))
    }

    fn get_sync(&self, path: &str) -> Result<Option<SecretValue>, UpstreamError> {
        let (dir, exists) = self.secret_dir(path, Create::Nothing)?;
        if !exists {
            return Ok(None);
        }
        let state = self.scan(path, &dir)?;
        if !state.managed() {
            return Err(UpstreamError::NotManaged {
                path: path.to_owned(),
            });
        }
        match (self.current(path, &state)?, state.latest()) {
            (None, _) | (Some((_, true)), _) => Ok(None),
            (Some((n, false)), Some((_, Some(_)))) => self.read_version(path, &dir, n).map(Some),
            // A foreign file became the latest version after adoption.
            _ => Err(UpstreamError::NotManaged {
                path: path.to_owned(),
            }),
        }
    }

    fn delete_sync(&self, path: &str, destroy: bool) -> Result<(), UpstreamError> {
        let _guard = self.locks.lock(path);
        let not_found = || UpstreamError::NotFound {
            path: path.to_owned(),
        };
        let (dir, exists) = self.secret_dir(path, Create::Nothing)?;
        if !exists {
            return Err(not_found());
        }
        let state = self.scan(path, &dir)?;
        if !state.managed() {
            return Err(UpstreamError::NotManaged {
                path: path.to_owned(),
            });
        }
        if !destroy {
            let Some((latest, _)) = self.current(path, &state)? else {
                return Err(not_found());
            };
            // The head alone records it (see `current`); a first version
            // standing alone loses `solo`, else removing the head would
            // bring it back. Its rewrite's fsync makes both durable.
            let head = Head {
                version: latest,
                deleted: true,
            };
            if !state.solo_first() {
                return self.write_head(path, &dir, head);
            }
            self.write_head_syncing(path, &dir, head, DirSync::WithNextWrite)?;
            return self.end_solo(path, &dir, DirSync::Now);
        }
        if state.latest().is_none() && state.head.is_none() {
            return Err(not_found());
        }
        // Only the store's own files go: a nested secret's directory (or a
        // foreign file of an adopted secret) stays, and then so does the directory.
        for (n, _) in &state.versions {
            let file = dir.join(version_file_name(*n));
            fs::remove_file(&file).map_err(io_err("remove", &file))?;
        }
        if state.deleted.is_some() {
            let marker = dir.join(DELETED);
            fs::remove_file(&marker).map_err(io_err("remove", &marker))?;
        }
        if state.head.is_some() {
            let head = dir.join(HEAD);
            fs::remove_file(&head).map_err(io_err("remove", &head))?;
        }
        match fs::remove_dir(&dir) {
            Ok(()) => sync_dir(dir.parent().unwrap_or(&self.root)),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => sync_dir(&dir),
            Err(e) => Err(io_err("remove directory", &dir)(e)),
        }
    }
}

fn upstream_ref(path: &str, version: u64) -> String {
    format!("{path}/{}", version_file_name(version))
}

/// The metadata of a version file if Sealplane wrote it, `None` if it is foreign.
fn read_meta(file: &Path) -> Result<Option<VersionMeta>, UpstreamError> {
    let bytes = fs::read(file).map_err(io_err("read", file))?;
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Ok(None);
    };
    if json.get("format").and_then(|v| v.as_str()) != Some(FORMAT)
        || json.pointer("/meta/managed_by").and_then(|v| v.as_str()) != Some(MANAGED_BY)
    {
        return Ok(None);
    }
    // Claims to be Sealplane's: a malformed rest is tampering, found when it
    // is opened; here a placeholder keeps it counted as Sealplane's.
    Ok(Some(
        json.get("meta")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or(VersionMeta {
                managed_by: MANAGED_BY.to_owned(),
                path: String::new(),
                version: 0,
                uri: String::new(),
                request_id: Uuid::nil(),
                created_at: String::new(),
                adopted: false,
                headed: false,
                solo: false,
            }),
    ))
}

fn sync_dir(dir: &Path) -> Result<(), UpstreamError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// Writes `dir/name` (0600) whole or not at all, durably.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), UpstreamError> {
    write_file(dir, name, bytes, DirSync::Now)
}

/// When a file's rename is made durable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DirSync {
    /// The directory is fsynced at once.
    Now,
    /// With the directory's next fsync: the caller makes one.
    WithNextWrite,
}

/// Writes `dir/name` (0600) whole or not at all; its content is durable,
/// its name as `sync` says.
fn write_file(dir: &Path, name: &str, bytes: &[u8], sync: DirSync) -> Result<(), UpstreamError> {
    let path = dir.join(name);
    match sync {
        DirSync::Now => durable::write_atomic(&path, bytes, 0o600),
        DirSync::WithNextWrite => durable::write_atomic_deferring_dir_sync(&path, bytes, 0o600),
    }
    .map_err(durable_err)
}

fn durable_err(e: durable::DurableError) -> UpstreamError {
    UpstreamError::Io {
        op: e.step,
        target: e.path.display().to_string(),
        source: e.source,
    }
}

#[async_trait::async_trait]
impl UpstreamStore for FileStore {
    async fn put(
        &self,
        path: &str,
        value: &SecretValue,
        meta: &WriteMeta,
    ) -> Result<Written, UpstreamError> {
        let (path, value, meta) = (path.to_owned(), value.clone(), meta.clone());
        self.offload(move |files| files.put_sync(&path, &value, &meta))
            .await
    }

    async fn get(&self, path: &str) -> Result<Option<SecretValue>, UpstreamError> {
        let path = path.to_owned();
        self.offload(move |files| files.get_sync(&path)).await
    }

    async fn delete(&self, path: &str, destroy: bool) -> Result<(), UpstreamError> {
        let path = path.to_owned();
        self.offload(move |files| files.delete_sync(&path, destroy))
            .await
    }

    async fn probe(&self) -> Result<(), UpstreamError> {
        self.offload(|files| {
            let io = |source| UpstreamError::Io {
                op: "look at the store's root",
                target: files.root.display().to_string(),
                source,
            };
            let meta = std::fs::metadata(&files.root).map_err(io)?;
            if !meta.is_dir() {
                return Err(io(io::Error::other("not a directory")));
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests;

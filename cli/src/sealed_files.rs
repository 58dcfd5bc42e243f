//! Sealed files for GitOps (SPEC §11, ADR 0025): `get sealing-key`,
//! `seal` (offline with `--cert`), `apply -f`, `reseal`, and the admins'
//! `rotate` / `retire sealing-key`.
//!
//! A *key file* (`prod.pub`) is a store's current sealing key with what
//! checks it without a control plane: the store certificate and the
//! reactor identity it binds, and that identity's signature over the key.
//! A *sealed file* holds only ciphertext: the uri, store, sealing key id,
//! the sealed box (uri and key id bound inside) and a SHA-256 checksum of
//! the box, so a damaged file is refused before anything is sent. The
//! value never reaches stdout, a file or an error here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use comfy_table::Table;
use crypto_box::PublicKey;
use futures_util::StreamExt as _;
use sealplane_proto::certificate::StoreCertificate;
use sealplane_proto::names::SecretUri;
use sealplane_proto::sealed::{FilePayload, SealError, SecretValue, seal_file};
use sealplane_proto::sealing_key::{SealingKeyStatement, is_key_id};
use sealplane_proto::v1;
use sealplane_proto::v1::UploadState;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use uuid::Uuid;

use crate::client::{ClientError, Connection, command_options};
use crate::known_reactors::{Expected, KnownReactors, PinError, Scope};
use crate::output::{Tabular, columns, fields, line};
use crate::trust::{Trust, TrustError};

/// The `apiVersion` of both file kinds.
pub const API_VERSION: &str = "sealplane.dev/v1";
/// The `kind` of a key file.
pub const KEY_KIND: &str = "SealingKey";
/// The `kind` of a sealed file.
pub const SEALED_KIND: &str = "SealedSecret";
/// Files submitted at once by `apply` and `reseal`.
const IN_FLIGHT: usize = 16;
/// How long `apply` waits for one file's outcome.
const OUTCOME_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a sealed-file command failed; each message is a sentence, and none
/// holds a value.
#[derive(Debug, thiserror::Error)]
pub enum SealedFileError {
    /// Talking to the control plane failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The pins could not be used.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// Trust could not be read.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// Nothing vouches for the store's reactor identity.
    #[error(
        "refusing to seal: nothing vouches for reactor identity {key} of store `{store}` (deployment {deployment}); trust the anchor that certified the store (`sealctl trust add`) or pin the identity with a first `sealctl put`; nothing was written"
    )]
    NotTrusted {
        /// The store.
        store: String,
        /// Its deployment.
        deployment: String,
        /// The identity.
        key: String,
    },
    /// The key file's sealing key is not signed by the store's identity.
    #[error(
        "refusing to seal: sealing key {key_id} of store `{store}` is not signed by the store's reactor identity; nothing was written"
    )]
    BadSignature {
        /// The store.
        store: String,
        /// The key.
        key_id: String,
    },
    /// The key file is of another kind or version.
    #[error(
        "not a sealing key file: apiVersion must be {API_VERSION} and kind {KEY_KIND} (`sealctl get sealing-key STORE > FILE` writes one)"
    )]
    NotAKeyFile,
    /// The store has no sealing key yet.
    #[error(
        "store `{0}` has no sealing key yet: its reactor makes one when it starts (an admin can ask with `sealctl rotate sealing-key {0}`)"
    )]
    NoKey(String),
    /// The key file is past its sealing period (or before it).
    #[error(
        "sealing key {key_id} is for sealing from {from} until {until}: get the current one with `sealctl get sealing-key {store}`"
    )]
    OutOfPeriod {
        /// The store.
        store: String,
        /// The key.
        key_id: String,
        /// Its period.
        from: String,
        /// Its period.
        until: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The uri is malformed or names another store than the key.
    #[error("{0}")]
    Uri(String),
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// Some files did not apply (each is in the printed report).
    #[error("{failed} of {total} file(s) did not apply; see the lines above")]
    SomeFailed {
        /// Files that failed.
        failed: usize,
        /// Files in all.
        total: usize,
    },
}

impl SealedFileError {
    /// Whether this is a refusal to trust (exit 3).
    pub fn is_trust_refusal(&self) -> bool {
        matches!(
            self,
            SealedFileError::NotTrusted { .. }
                | SealedFileError::BadSignature { .. }
                | SealedFileError::Pin(PinError::Changed { .. })
        )
    }
}

/// A store's sealing key, exported for offline sealing (`prod.pub`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyFile {
    /// [`API_VERSION`].
    pub api_version: String,
    /// [`KEY_KIND`].
    pub kind: String,
    /// The deployment the store belongs to.
    pub deployment_id: String,
    /// The store.
    pub store: String,
    /// The key's id.
    pub key_id: String,
    /// X25519, base64.
    pub public_key: String,
    /// The sealing period.
    pub not_before: String,
    /// See `not_before`.
    pub not_after: String,
    /// The reactor identity's signature over the key, base64.
    pub signature: String,
    /// The store's reactor identity (Ed25519, base64).
    pub reactor_key: String,
    /// The store certificate binding that identity, if the store has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<StoreCertificate>,
}

impl Tabular for KeyFile {
    fn table(&self) -> Table {
        fields([
            ("store", self.store.clone()),
            ("key id", self.key_id.clone()),
            ("seal from", self.not_before.clone()),
            ("seal until", self.not_after.clone()),
            ("reactor identity", self.reactor_key.clone()),
            (
                "certified",
                self.certificate
                    .as_ref()
                    .map_or("no".into(), |c| format!("serial {}", c.serial)),
            ),
        ])
    }
}

/// A sealed secret, ready for git (`db.sealed.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SealedFile {
    /// [`API_VERSION`].
    pub api_version: String,
    /// [`SEALED_KIND`].
    pub kind: String,
    /// The secret (`store://path`).
    pub uri: String,
    /// Its store.
    pub store: String,
    /// The sealing key it is sealed to.
    pub sealing_key: String,
    /// The sealed box, base64.
    pub ciphertext: String,
    /// `sha256:` and the hex SHA-256 of the sealed box's bytes.
    pub checksum: String,
}

impl Tabular for SealedFile {
    fn table(&self) -> Table {
        fields([
            ("uri", self.uri.clone()),
            ("sealing key", self.sealing_key.clone()),
            ("checksum", self.checksum.clone()),
        ])
    }
}

fn checksum(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Checks a key file: a trusted certificate (or a pin) vouches for its
/// reactor identity for its store, that identity signed the key, and
/// `now` is in its sealing period. Returns the public key.
pub fn check_key_file(
    file: &KeyFile,
    trust: &Trust,
    pins: &KnownReactors,
    now: DateTime<Utc>,
) -> Result<PublicKey, SealedFileError> {
    if file.api_version != API_VERSION || file.kind != KEY_KIND {
        return Err(SealedFileError::NotAKeyFile);
    }
    let scope = Scope {
        deployment: file.deployment_id.clone(),
        addr: String::new(),
    };
    let certified = match (&file.certificate, Uuid::parse_str(&file.deployment_id)) {
        (Some(c), Ok(deployment)) => trust.vouches(
            c,
            deployment,
            &file.store,
            &file.reactor_key,
            pins.serial(&scope, &file.store),
        )?,
        _ => None,
    };
    let expected = pins.expected(&scope, &file.store, None, &file.reactor_key, certified)?;
    if let Expected::Unknown(key) = expected {
        return Err(SealedFileError::NotTrusted {
            store: file.store.clone(),
            deployment: file.deployment_id.clone(),
            key,
        });
    }
    let signed_badly = || SealedFileError::BadSignature {
        store: file.store.clone(),
        key_id: file.key_id.clone(),
    };
    let statement = SealingKeyStatement::parse(
        &file.store,
        &file.key_id,
        &file.public_key,
        &file.not_before,
        &file.not_after,
    )
    .map_err(|_| signed_badly())?;
    statement
        .verify(expected.key(), &file.signature)
        .map_err(|_| signed_badly())?;
    let skew = crate::sealed_upload::OFFER_CLOCK_SKEW;
    if now + skew < statement.not_before || now >= statement.not_after {
        return Err(SealedFileError::OutOfPeriod {
            store: file.store.clone(),
            key_id: file.key_id.clone(),
            from: file.not_before.clone(),
            until: file.not_after.clone(),
        });
    }
    Ok(PublicKey::from(statement.public_key))
}

/// The store's newest sealing key as a key file, checked as `seal` will.
pub async fn fetch_key_file(
    conn: &Connection,
    store: &str,
    trust: &Trust,
    pins: &KnownReactors,
) -> Result<KeyFile, SealedFileError> {
    let reply = sealing_keys(conn, store).await?;
    let newest = reply
        .keys
        .iter()
        .find(|k| !k.retired)
        .ok_or_else(|| SealedFileError::NoKey(store.to_owned()))?;
    let file = KeyFile {
        api_version: API_VERSION.into(),
        kind: KEY_KIND.into(),
        deployment_id: reply.deployment_id.clone(),
        store: reply.store.clone(),
        key_id: newest.key_id.clone(),
        public_key: newest.public_key.clone(),
        not_before: newest.not_before.clone(),
        not_after: newest.not_after.clone(),
        signature: newest.signature.clone(),
        reactor_key: reply.reactor_key.clone(),
        certificate: reply
            .certificate
            .clone()
            .and_then(|c| StoreCertificate::from_proto(c).ok()),
    };
    check_key_file(&file, trust, pins, Utc::now())?;
    Ok(file)
}

async fn sealing_keys(conn: &Connection, store: &str) -> Result<v1::SealingKeysReply, ClientError> {
    Ok(conn
        .secrets()
        .get_sealing_keys(v1::GetSealingKeysRequest {
            options: None,
            store: store.to_owned(),
        })
        .await
        .map_err(|s| conn.error(s))?
        .into_inner())
}

/// Reads a key file (`--cert`), JSON or YAML.
pub fn read_key_file(path: &Path) -> Result<KeyFile, SealedFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| SealedFileError::File {
        path: path.to_owned(),
        reason: format!("cannot read the sealing key file: {e}"),
    })?;
    serde_norway::from_str(&text).map_err(|_| SealedFileError::File {
        path: path.to_owned(),
        reason: "not a sealing key file (`sealctl get sealing-key STORE > FILE` writes one)".into(),
    })
}

/// Seals `value` for `uri` to the key of `key` (already checked).
pub fn seal(
    uri: &str,
    key: &KeyFile,
    public: &PublicKey,
    value: &SecretValue,
) -> Result<SealedFile, SealedFileError> {
    let uri = resolve_uri(uri, &key.store)?;
    if uri.store.as_str() != key.store {
        return Err(SealedFileError::Uri(format!(
            "{uri} is in store `{}` but the sealing key is store `{}`'s: get that store's key with `sealctl get sealing-key {}`",
            uri.store, key.store, uri.store
        )));
    }
    let payload = FilePayload::new(uri.to_string(), key.key_id.clone(), value.clone())?;
    let ciphertext = seal_file(&payload, public)?;
    drop(payload);
    Ok(SealedFile {
        api_version: API_VERSION.into(),
        kind: SEALED_KIND.into(),
        uri: uri.to_string(),
        store: key.store.clone(),
        sealing_key: key.key_id.clone(),
        checksum: checksum(&ciphertext),
        ciphertext: STANDARD.encode(&ciphertext),
    })
}

/// A uri as typed: `store://path`, or a bare path in `store`.
fn resolve_uri(text: &str, store: &str) -> Result<SecretUri, SealedFileError> {
    let full = if text.contains("://") {
        text.to_owned()
    } else {
        format!("{store}://{text}")
    };
    SecretUri::parse(&full).map_err(|e| SealedFileError::Uri(e.to_string()))
}

/// How a sealed file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `.json`.
    Json,
    /// Anything else.
    Yaml,
}

impl FileFormat {
    fn of(path: &Path) -> FileFormat {
        if path.extension().is_some_and(|e| e == "json") {
            FileFormat::Json
        } else {
            FileFormat::Yaml
        }
    }

    /// `sealed` in this format.
    pub fn render(self, sealed: &SealedFile) -> String {
        match self {
            FileFormat::Json => serde_json::to_string_pretty(sealed).unwrap_or_default() + "\n",
            FileFormat::Yaml => serde_norway::to_string(sealed).unwrap_or_default(),
        }
    }
}

/// A sealed file read and checked: format, checksum, uri, store, key id.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Where it was read.
    pub path: PathBuf,
    /// What it holds.
    pub file: SealedFile,
    /// The sealed box.
    pub ciphertext: Vec<u8>,
    /// The uri.
    pub uri: SecretUri,
}

/// Reads and checks one sealed file; the error names the file and the
/// problem, never its content.
pub fn read_sealed(path: &Path) -> Result<Checked, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let parsed: Result<SealedFile, String> = match FileFormat::of(path) {
        FileFormat::Json => serde_json::from_str(&text).map_err(|_| "invalid JSON".to_owned()),
        FileFormat::Yaml => serde_norway::from_str(&text).map_err(|_| "invalid YAML".to_owned()),
    };
    let file = parsed.map_err(|e| {
        format!("not a sealed file ({e}): expected apiVersion, kind, uri, store, sealingKey, ciphertext, checksum")
    })?;
    if file.api_version != API_VERSION || file.kind != SEALED_KIND {
        return Err(format!(
            "not a sealed file: apiVersion must be {API_VERSION} and kind {SEALED_KIND}"
        ));
    }
    let ciphertext = STANDARD
        .decode(file.ciphertext.trim())
        .map_err(|_| "the ciphertext is not base64: the file is damaged".to_owned())?;
    if checksum(&ciphertext) != file.checksum {
        return Err(
            "the checksum does not match the ciphertext: the file is damaged or truncated; seal it again"
                .into(),
        );
    }
    let uri = SecretUri::parse(&file.uri).map_err(|e| e.to_string())?;
    if uri.store.as_str() != file.store {
        return Err(format!(
            "the uri names store `{}` but the file says store `{}`",
            uri.store, file.store
        ));
    }
    if !is_key_id(&file.sealing_key) {
        return Err("sealingKey is not a sealing key id (`sk-` and 16 hex digits)".into());
    }
    Ok(Checked {
        path: path.to_owned(),
        file,
        ciphertext,
        uri,
    })
}

/// The sealed files under `paths`: files as given; in a directory its
/// `*.yaml`, `*.yml` and `*.json` (and those of subdirectories with
/// `recursive`), in name order.
pub fn collect(paths: &[PathBuf], recursive: bool) -> Result<Vec<PathBuf>, SealedFileError> {
    let mut found = vec![];
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| SealedFileError::File {
            path: path.clone(),
            reason: format!("cannot read: {e}"),
        })?;
        if meta.is_dir() {
            walk(path, recursive, &mut found)?;
        } else {
            found.push(path.clone());
        }
    }
    Ok(found)
}

fn walk(dir: &Path, recursive: bool, found: &mut Vec<PathBuf>) -> Result<(), SealedFileError> {
    let io = |e: std::io::Error| SealedFileError::File {
        path: dir.to_owned(),
        reason: format!("cannot list: {e}"),
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if recursive {
                walk(&path, recursive, found)?;
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            found.push(path);
        }
    }
    Ok(())
}

/// What happened to one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    /// The file.
    pub file: String,
    /// The secret it names (empty if unreadable).
    pub uri: String,
    /// `applied`, `unchanged`, `resealed`, `skipped`, `would apply`, `failed`.
    pub result: String,
    /// The version written or kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FileResult {
    fn failed(path: &Path, uri: &str, error: String) -> Self {
        FileResult {
            file: path.display().to_string(),
            uri: uri.to_owned(),
            result: "failed".into(),
            version: None,
            error: Some(error),
        }
    }
}

/// Every file's result and the totals.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// One per file, in the order given.
    pub files: Vec<FileResult>,
    /// `N file(s): ...` counts by result.
    pub summary: String,
}

impl Report {
    fn new(files: Vec<FileResult>) -> Self {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &files {
            *counts.entry(f.result.as_str()).or_default() += 1;
        }
        let parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
        let summary = format!("{} file(s): {}", files.len(), parts.join(", "));
        Report { files, summary }
    }

    /// Files that failed.
    pub fn failed(&self) -> usize {
        self.files.iter().filter(|f| f.result == "failed").count()
    }
}

impl Tabular for Report {
    fn table(&self) -> Table {
        let mut table = columns(&["file", "uri", "result"]);
        for f in &self.files {
            let result = match (&f.error, f.version) {
                (Some(e), _) => format!("{}: {e}", f.result),
                (None, Some(v)) => format!("{} (version {v})", f.result),
                (None, None) => f.result.clone(),
            };
            table.add_row(vec![f.file.clone(), f.uri.clone(), result]);
        }
        table.add_row(vec![
            "total".to_owned(),
            String::new(),
            self.summary.clone(),
        ]);
        table
    }
}

/// The sealing keys of each store named, fetched once per store.
struct KnownKeys(BTreeMap<String, Result<v1::SealingKeysReply, String>>);

impl KnownKeys {
    async fn of(conn: &Connection, files: &[Result<Checked, (PathBuf, String)>]) -> Self {
        let mut known = BTreeMap::new();
        for file in files.iter().flatten() {
            if let std::collections::btree_map::Entry::Vacant(slot) =
                known.entry(file.file.store.clone())
            {
                let reply = sealing_keys(conn, slot.key()).await;
                slot.insert(reply.map_err(|e| e.to_string()));
            }
        }
        KnownKeys(known)
    }

    /// Refuses a file whose key the store does not know or retired.
    fn check(&self, file: &Checked) -> Result<&v1::SealingKeysReply, String> {
        let reply = self
            .0
            .get(&file.file.store)
            .ok_or("its store was not asked")?
            .as_ref()
            .map_err(Clone::clone)?;
        match reply
            .keys
            .iter()
            .find(|k| k.key_id == file.file.sealing_key)
        {
            None => Err(format!(
                "store `{}` has no sealing key `{}`: the file was sealed for another deployment or store; seal it again",
                file.file.store, file.file.sealing_key
            )),
            Some(k) if k.retired => Err(format!(
                "sealing key `{}` is retired, so the file can no longer be opened: seal the value again with `sealctl seal`",
                k.key_id
            )),
            Some(_) => Ok(reply),
        }
    }
}

/// A file read and checked, with its uri; else its failed result:
/// unreadable, or sealed to a key its store does not hold.
fn ready(
    file: Result<Checked, (PathBuf, String)>,
    keys: &KnownKeys,
) -> Result<(Checked, String), FileResult> {
    let file = file.map_err(|(path, e)| FileResult::failed(&path, "", e))?;
    let uri = file.uri.to_string();
    if let Err(e) = keys.check(&file) {
        return Err(FileResult::failed(&file.path, &uri, e));
    }
    Ok((file, uri))
}

/// The result of a file left unsent because the reactor stopped
/// answering an earlier one, if it did.
fn unsent(stalled: &AtomicBool, file: &Checked, uri: &str) -> Option<FileResult> {
    stalled
        .load(Ordering::Relaxed)
        .then(|| FileResult::failed(&file.path, uri, STALLED.into()))
}

fn read_all(paths: &[PathBuf]) -> Vec<Result<Checked, (PathBuf, String)>> {
    paths
        .iter()
        .map(|p| read_sealed(p).map_err(|e| (p.clone(), e)))
        .collect()
}

/// `apply -f`: checks every file, then submits those that pass (unless
/// `dry_run`), at most [`IN_FLIGHT`] at once.
pub async fn apply(
    conn: &Connection,
    paths: &[PathBuf],
    dry_run: bool,
) -> Result<Report, SealedFileError> {
    let files = read_all(paths);
    let keys = KnownKeys::of(conn, &files).await;
    let stalled = AtomicBool::new(false);
    let results = futures_util::stream::iter(files.into_iter().map(|file| {
        let (keys, stalled) = (&keys, &stalled);
        async move {
            let (file, uri) = match ready(file, keys) {
                Ok(ready) => ready,
                Err(refused) => return refused,
            };
            if let Some(unsent) = unsent(stalled, &file, &uri) {
                return unsent;
            }
            if dry_run {
                return FileResult {
                    file: file.path.display().to_string(),
                    uri,
                    result: "would apply".into(),
                    version: None,
                    error: None,
                };
            }
            match submit(conn, &file, false).await {
                Ok(status) => applied(&file, &status),
                Err(Submit::TimedOut(e)) => {
                    stalled.store(true, Ordering::Relaxed);
                    FileResult::failed(&file.path, &uri, e)
                }
                Err(Submit::Refused(e)) => FileResult::failed(&file.path, &uri, e),
            }
        }
    }))
    .buffered(IN_FLIGHT)
    .collect::<Vec<_>>()
    .await;
    Ok(Report::new(results))
}

fn applied(file: &Checked, status: &v1::UploadStatus) -> FileResult {
    let (result, error) = match status.state() {
        UploadState::Uploaded => ("applied", None),
        UploadState::Unchanged => ("unchanged", None),
        UploadState::Resealed => ("resealed", None),
        UploadState::Expired => (
            "failed",
            Some("the reactor did not answer in time; is the store's reactor running?".into()),
        ),
        _ => ("failed", Some(status.reason.clone())),
    };
    FileResult {
        file: file.path.display().to_string(),
        uri: file.uri.to_string(),
        result: result.into(),
        version: (status.version > 0).then_some(status.version),
        error,
    }
}

/// Why a file's submission has no outcome.
enum Submit {
    /// The control plane refused it, or the watch broke.
    Refused(String),
    /// The reactor did not answer in [`OUTCOME_WAIT`].
    TimedOut(String),
}

/// What the files after a timed-out one get, unsent: waiting the full
/// time for each of a thousand files would take hours.
const STALLED: &str = "not submitted: the store's reactor did not answer an earlier file in time; check that it runs and apply again";

/// Submits one file and waits for its outcome.
async fn submit(
    conn: &Connection,
    file: &Checked,
    reseal: bool,
) -> Result<v1::UploadStatus, Submit> {
    let mut secrets = conn.secrets();
    let reply = secrets
        .apply_sealed(v1::ApplySealedRequest {
            options: command_options(),
            uri: file.uri.to_string(),
            key_id: file.file.sealing_key.clone(),
            ciphertext: file.ciphertext.clone(),
            reseal,
        })
        .await
        .map_err(|s| Submit::Refused(conn.error(s).to_string()))?
        .into_inner();
    let wait = async {
        let mut stream = secrets
            .watch_upload(v1::WatchUploadRequest {
                request_id: reply.request_id.clone(),
            })
            .await
            .map_err(|s| conn.error(s).to_string())?
            .into_inner();
        loop {
            match stream.message().await {
                Ok(Some(status)) if is_terminal(status.state()) => return Ok(status),
                Ok(Some(_)) => {}
                Ok(None) => return Err("the control plane ended the watch early".to_owned()),
                Err(s) => return Err(conn.error(s).to_string()),
            }
        }
    };
    match tokio::time::timeout(OUTCOME_WAIT, wait).await {
        Ok(outcome) => outcome.map_err(Submit::Refused),
        Err(_) => Err(Submit::TimedOut(format!(
            "no outcome within {} s (request {}, which the reactor still carries out when it is back); is the store's reactor running?",
            OUTCOME_WAIT.as_secs(),
            reply.request_id
        ))),
    }
}

fn is_terminal(state: UploadState) -> bool {
    matches!(
        state,
        UploadState::Uploaded
            | UploadState::Unchanged
            | UploadState::Resealed
            | UploadState::Failed
            | UploadState::Expired
            | UploadState::Verified
    )
}

/// `reseal`: moves every file not sealed to its store's newest key onto
/// it, rewriting the file in place; the value never leaves the reactor.
pub async fn reseal(
    conn: &Connection,
    paths: &[PathBuf],
    trust: &Trust,
    pins: &KnownReactors,
) -> Result<Report, SealedFileError> {
    let files = read_all(paths);
    let keys = KnownKeys::of(conn, &files).await;
    // The newest key of each store, checked as `seal` checks it: a
    // resealed file is only written for a key this user trusts.
    let mut newest: BTreeMap<String, Result<String, String>> = BTreeMap::new();
    for file in files.iter().flatten() {
        if let std::collections::btree_map::Entry::Vacant(slot) =
            newest.entry(file.file.store.clone())
        {
            let key = fetch_key_file(conn, slot.key(), trust, pins).await;
            slot.insert(key.map(|k| k.key_id).map_err(|e| e.to_string()));
        }
    }
    let stalled = AtomicBool::new(false);
    let results = futures_util::stream::iter(files.into_iter().map(|file| {
        let (keys, newest, stalled) = (&keys, &newest, &stalled);
        async move {
            let (file, uri) = match ready(file, keys) {
                Ok(ready) => ready,
                Err(refused) => return refused,
            };
            let target = match newest.get(&file.file.store) {
                Some(Ok(key)) => key.clone(),
                Some(Err(e)) => return FileResult::failed(&file.path, &uri, e.clone()),
                None => return FileResult::failed(&file.path, &uri, "no key".into()),
            };
            if file.file.sealing_key == target {
                return FileResult {
                    file: file.path.display().to_string(),
                    uri,
                    result: "skipped".into(),
                    version: None,
                    error: None,
                };
            }
            if let Some(unsent) = unsent(stalled, &file, &uri) {
                return unsent;
            }
            let status = match submit(conn, &file, true).await {
                Ok(status) if status.state() == UploadState::Resealed => status,
                Ok(status) => return applied(&file, &status),
                Err(Submit::TimedOut(e)) => {
                    stalled.store(true, Ordering::Relaxed);
                    return FileResult::failed(&file.path, &uri, e);
                }
                Err(Submit::Refused(e)) => return FileResult::failed(&file.path, &uri, e),
            };
            if status.sealing_key_id != target {
                return FileResult::failed(
                    &file.path,
                    &uri,
                    format!(
                        "the reactor resealed to `{}`, not to the store's newest key `{target}`; the file was left as it was",
                        status.sealing_key_id
                    ),
                );
            }
            let resealed = SealedFile {
                sealing_key: status.sealing_key_id.clone(),
                checksum: checksum(&status.resealed_ciphertext),
                ciphertext: STANDARD.encode(&status.resealed_ciphertext),
                ..file.file.clone()
            };
            let text = FileFormat::of(&file.path).render(&resealed);
            // The file keeps its mode (it holds ciphertext only).
            let mode = std::fs::metadata(&file.path)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
                .unwrap_or(0o644);
            match sealplane_host::durable::write_atomic(&file.path, text.as_bytes(), mode) {
                Ok(()) => FileResult {
                    file: file.path.display().to_string(),
                    uri,
                    result: "resealed".into(),
                    version: None,
                    error: None,
                },
                Err(e) => FileResult::failed(&file.path, &uri, format!("cannot rewrite: {e}")),
            }
        }
    }))
    .buffered(IN_FLIGHT)
    .collect::<Vec<_>>()
    .await;
    Ok(Report::new(results))
}

/// What `rotate` / `retire sealing-key` say.
#[derive(Debug, Clone, Serialize)]
pub struct KeyAction {
    /// What happened.
    pub message: String,
}

impl Tabular for KeyAction {
    fn table(&self) -> Table {
        line(&self.message)
    }
}

/// `rotate sealing-key STORE` (admins).
pub async fn rotate(conn: &Connection, store: &str) -> Result<KeyAction, SealedFileError> {
    conn.stores()
        .rotate_sealing_key(v1::StoreCommand {
            options: command_options(),
            name: store.to_owned(),
        })
        .await
        .map_err(|s| conn.error(s))?;
    Ok(KeyAction {
        message: format!(
            "asked the reactor of store `{store}` for a new sealing key; `sealctl get sealing-key {store}` shows it once published"
        ),
    })
}

/// `retire sealing-key STORE KEY_ID` (admins).
pub async fn retire(
    conn: &Connection,
    store: &str,
    key_id: &str,
    force: bool,
) -> Result<KeyAction, SealedFileError> {
    conn.stores()
        .retire_sealing_key(v1::RetireSealingKeyRequest {
            options: command_options(),
            store: store.to_owned(),
            key_id: key_id.to_owned(),
            force,
        })
        .await
        .map_err(|s| conn.error(s))?;
    Ok(KeyAction {
        message: format!(
            "retired sealing key {key_id} of store `{store}`: its reactor destroys it, and files sealed to it can no longer be applied"
        ),
    })
}

/// `get sealing-keys STORE`: every key, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct KeyList {
    /// The store.
    pub store: String,
    /// Its keys.
    pub keys: Vec<KeyRow>,
}

/// One key of a [`KeyList`].
#[derive(Debug, Clone, Serialize)]
pub struct KeyRow {
    /// The key.
    pub key_id: String,
    /// Its sealing period.
    pub not_before: String,
    /// See `not_before`.
    pub not_after: String,
    /// Whether it is retired.
    pub retired: bool,
    /// Secrets whose last applied file is sealed to it.
    pub in_use_by: Vec<String>,
}

impl Tabular for KeyList {
    fn table(&self) -> Table {
        let mut table = columns(&["key id", "seal from", "seal until", "state", "files"]);
        for (i, k) in self.keys.iter().enumerate() {
            let state = match (k.retired, i) {
                (true, _) => "retired",
                (false, 0) => "current",
                (false, _) => "old",
            };
            table.add_row(vec![
                k.key_id.clone(),
                k.not_before.clone(),
                k.not_after.clone(),
                state.into(),
                k.in_use_by.len().to_string(),
            ]);
        }
        table
    }
}

/// Lists a store's sealing keys.
pub async fn list(conn: &Connection, store: &str) -> Result<KeyList, SealedFileError> {
    let reply = sealing_keys(conn, store).await?;
    Ok(KeyList {
        store: reply.store,
        keys: reply
            .keys
            .into_iter()
            .map(|k| KeyRow {
                key_id: k.key_id,
                not_before: k.not_before,
                not_after: k.not_after,
                retired: k.retired,
                in_use_by: k.in_use_by,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed_file(dir: &Path, name: &str) -> PathBuf {
        let ciphertext = vec![7u8; 80];
        let file = SealedFile {
            api_version: API_VERSION.into(),
            kind: SEALED_KIND.into(),
            uri: "prod://app/db".into(),
            store: "prod".into(),
            sealing_key: "sk-0123456789abcdef".into(),
            checksum: checksum(&ciphertext),
            ciphertext: STANDARD.encode(&ciphertext),
        };
        let path = dir.join(name);
        std::fs::write(&path, FileFormat::of(&path).render(&file)).unwrap();
        path
    }

    #[test]
    fn given_a_sealed_file_when_read_then_it_checks_out_in_yaml_and_json() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["db.sealed.yaml", "db.sealed.json"] {
            let checked = read_sealed(&sealed_file(dir.path(), name)).unwrap();
            assert_eq!(checked.uri.to_string(), "prod://app/db");
            assert_eq!(checked.ciphertext, vec![7u8; 80]);
        }
    }

    #[test]
    fn given_a_damaged_file_when_read_then_each_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = sealed_file(dir.path(), "db.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let cases: Vec<(String, &str)> = vec![
            (text.replace("BwcHBwcH", "BwcHBwcI"), "checksum"),
            (text.replace("prod://app/db", "dev://app/db"), "names store"),
            (
                text.replace("kind: SealedSecret", "kind: Secret"),
                "not a sealed file",
            ),
            (text[..text.len() / 2].to_owned(), "not a sealed file"),
            (
                text.replace("sk-0123456789abcdef", "sk-1"),
                "sealing key id",
            ),
        ];
        for (damaged, expected) in cases {
            std::fs::write(&path, &damaged).unwrap();
            let error = read_sealed(&path).unwrap_err();
            assert!(error.contains(expected), "{expected:?} not in {error:?}");
        }
    }

    #[test]
    fn given_a_folder_when_collected_then_only_sealed_file_names_in_order_and_recursion_on_ask() {
        let dir = tempfile::tempdir().unwrap();
        sealed_file(dir.path(), "b.yaml");
        sealed_file(dir.path(), "a.json");
        std::fs::write(dir.path().join("README.md"), "x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        sealed_file(&dir.path().join("sub"), "c.yml");
        let flat = collect(&[dir.path().to_owned()], false).unwrap();
        let names: Vec<_> = flat
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.json", "b.yaml"]);
        assert_eq!(collect(&[dir.path().to_owned()], true).unwrap().len(), 3);
    }

    #[test]
    fn given_a_report_when_summarised_then_counts_are_by_result() {
        let ok = |result: &str| FileResult {
            file: "f".into(),
            uri: "u".into(),
            result: result.into(),
            version: None,
            error: None,
        };
        let report = Report::new(vec![
            ok("applied"),
            ok("unchanged"),
            ok("unchanged"),
            ok("failed"),
        ]);
        assert_eq!(
            report.summary,
            "4 file(s): 1 applied, 1 failed, 2 unchanged"
        );
        assert_eq!(report.failed(), 1);
    }
}

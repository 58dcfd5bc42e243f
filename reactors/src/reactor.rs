//! The running reactor: follows the control plane's feed for its stores and
//! carries out the [`Action`]s the [`Ledger`] hands out (SPEC §3 steps 2
//! and 5, deletions).
//!
//! One task reads the feed and folds it; each action runs in its own task
//! (at most `concurrency` at once), so a slow upstream write does not hold
//! up key issuance for other users. A second task destroys keys that
//! expire unused and reports them. Reports to the control plane are
//! retried while the control plane is unreachable and dropped (logged)
//! when it refuses them: the control plane is the judge of what may
//! happen, and every report is idempotent there.
//!
//! Plaintext exists here only between [`sealed::open`] and the end of
//! [`Work::carry_out`], inside a zeroizing [`SecretValue`]; log lines and
//! failure reasons name requests, uris and error kinds, never values.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{SecondsFormat, Utc};
use sealplane_proto::feed::FeedMessage;
use sealplane_proto::limits::{MAX_REASON_BYTES, truncate_to};
use sealplane_proto::names::SecretUri;
use sealplane_proto::offer::KeyOffer;
use sealplane_proto::sealed::{self, SecretValue};
use sealplane_proto::upload::FailureKind;
use sealplane_proto::v1;
use sealplane_proto::v1::reactor_client::ReactorClient;
use tokio::sync::{Semaphore, watch};
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::aws_secrets_manager::AwsSecretsManagerStore;
use crate::config::{ConfigError, ReactorConfig, StoreConfig};
use crate::file_store::FileStore;
use crate::fingerprint::FingerprintKey;
use crate::identity::{IdentityError, ReactorIdentity};
use crate::ledger::{Action, Ledger, Purpose, RequestInfo};
use crate::master_key::{MasterKeyError, security_report};
use crate::one_time_key::{KeyError, OneTimeKeys};
use crate::upstream::{RetryPolicy, UpstreamError, UpstreamStore, WriteMeta, retry};
use crate::vault::VaultStore;

/// The start of the reason reported for a request whose key an earlier run
/// issued; `sealctl` retries such failures with a new request.
pub const KEY_LOST_REASON: &str = "one-time key lost";

/// How long a stopping reactor waits for the actions in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How often, at most, the checkpoint file is rewritten while events flow.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How often unused keys are checked for expiry.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// Why the reactor cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The identity file could not be loaded or created.
    #[error("reactor identity {path}: {source}")]
    Identity {
        /// The identity file.
        path: PathBuf,
        /// Why.
        source: IdentityError,
    },
    /// A store could not be opened.
    #[error("store `{store}`: {reason}")]
    Store {
        /// The store name.
        store: String,
        /// Why (never key material).
        reason: String,
    },
    /// The control-plane address or its TLS settings are unusable.
    #[error("control plane {address}: {reason}")]
    ControlPlane {
        /// The configured address.
        address: String,
        /// Why.
        reason: String,
    },
}

/// Everything a reactor runs with; built from `reactor.toml` by
/// [`ReactorParts::from_config`] or directly (as `sealplane dev` does).
pub struct ReactorParts {
    /// The control-plane address (`http://` or `https://`).
    pub address: String,
    /// PEM CA certificate(s) for an https address.
    pub ca_pem: Option<Vec<u8>>,
    /// The reactor's bearer token.
    pub token: Zeroizing<String>,
    /// The long-term signing identity.
    pub identity: ReactorIdentity,
    /// The keyed-hash key.
    pub fingerprint: FingerprintKey,
    /// The upstream stores, by store name.
    pub stores: BTreeMap<String, Arc<dyn UpstreamStore>>,
    /// Where the feed position is kept across restarts.
    pub checkpoint_file: PathBuf,
    /// Actions carried out at once.
    pub concurrency: usize,
}

impl ReactorParts {
    /// Loads keys and opens stores as `config` says; warnings go to stderr.
    pub async fn from_config(config: &ReactorConfig, origin: &str) -> Result<Self, StartError> {
        let token = config.token(origin)?;
        Self::from_config_with_token(config, origin, token).await
    }

    /// As [`ReactorParts::from_config`], with the token given rather than read.
    pub async fn from_config_with_token(
        config: &ReactorConfig,
        origin: &str,
        token: Zeroizing<String>,
    ) -> Result<Self, StartError> {
        let (identity, created) = ReactorIdentity::load_or_generate(&config.identity_file)
            .map_err(|source| StartError::Identity {
                path: config.identity_file.clone(),
                source,
            })?;
        if created {
            eprintln!(
                "sealplane-reactor: created a new identity in {} (public key {})",
                config.identity_file.display(),
                identity.public_key_base64()
            );
        }
        let mut stores: BTreeMap<String, Arc<dyn UpstreamStore>> = BTreeMap::new();
        for (name, store) in &config.stores {
            let opened: Arc<dyn UpstreamStore> = match store {
                StoreConfig::File(f) => {
                    let key = f
                        .master_key()
                        .map_err(|e: MasterKeyError| StartError::Store {
                            store: name.clone(),
                            reason: e.to_string(),
                        })?;
                    for warning in security_report(f.master_key_file.as_deref(), &key) {
                        eprintln!("sealplane-reactor: WARNING: store `{name}`: {warning}");
                    }
                    Arc::new(
                        FileStore::open(&f.root, key).map_err(|e| StartError::Store {
                            store: name.clone(),
                            reason: e.to_string(),
                        })?,
                    )
                }
                StoreConfig::Vault(v) => Arc::new(
                    retry(&RetryPolicy::default(), || VaultStore::connect(v))
                        .await
                        .map_err(|e| StartError::Store {
                            store: name.clone(),
                            reason: e.to_string(),
                        })?,
                ),
                StoreConfig::AwsSecretsManager(a) => Arc::new(
                    retry(&RetryPolicy::default(), || {
                        AwsSecretsManagerStore::connect(a)
                    })
                    .await
                    .map_err(|e| StartError::Store {
                        store: name.clone(),
                        reason: e.to_string(),
                    })?,
                ),
            };
            stores.insert(name.clone(), opened);
        }
        let ca_pem = match &config.control_plane.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| StartError::ControlPlane {
                address: config.control_plane.address.clone(),
                reason: format!("cannot read ca_file {}: {e}", path.display()),
            })?),
            None => None,
        };
        Ok(ReactorParts {
            address: config.control_plane.address.clone(),
            ca_pem,
            token,
            identity,
            fingerprint: config.fingerprint_key(origin)?,
            stores,
            checkpoint_file: config.checkpoint_file.clone(),
            concurrency: config.limits.concurrency,
        })
    }
}

/// Adds the bearer token to every call; the header is marked sensitive.
#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Client = ReactorClient<InterceptedService<Channel, Bearer>>;

/// The reactor.
pub struct Reactor {
    work: Arc<Work>,
    checkpoint: Checkpoint,
}

struct Work {
    client: Client,
    identity: ReactorIdentity,
    keys: OneTimeKeys,
    fingerprint: FingerprintKey,
    stores: BTreeMap<String, Arc<dyn UpstreamStore>>,
    slots: Arc<Semaphore>,
    capacity: u32,
}

impl Reactor {
    /// A reactor over `parts`; connects lazily, so it starts while the control plane is down.
    pub fn new(parts: ReactorParts) -> Result<Self, StartError> {
        let bad = |reason: String| StartError::ControlPlane {
            address: parts.address.clone(),
            reason,
        };
        let mut endpoint = Endpoint::from_shared(parts.address.clone())
            .map_err(|e| bad(format!("not a valid address: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if parts.address.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(pem) = &parts.ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| bad(format!("TLS settings: {e}")))?;
        }
        let mut header: MetadataValue<Ascii> =
            format!("Bearer {}", parts.token.as_str())
                .parse()
                .map_err(|_| bad("the token is not printable ASCII".into()))?;
        header.set_sensitive(true);
        let client = ReactorClient::with_interceptor(endpoint.connect_lazy(), Bearer(header));
        let capacity = u32::try_from(parts.concurrency.clamp(1, 4096)).unwrap_or(4096);
        Ok(Reactor {
            work: Arc::new(Work {
                client,
                identity: parts.identity,
                keys: OneTimeKeys::new(),
                fingerprint: parts.fingerprint,
                stores: parts.stores,
                slots: Arc::new(Semaphore::new(capacity as usize)),
                capacity,
            }),
            checkpoint: Checkpoint {
                path: parts.checkpoint_file,
            },
        })
    }

    /// The reactor's public identity (base64), as registered with its stores.
    pub fn public_key(&self) -> String {
        self.work.identity.public_key_base64()
    }

    /// Follows the feed until `shutdown` completes; reconnects with backoff.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop) = watch::channel(false);
        let expiry = tokio::spawn(Arc::clone(&self.work).expire_keys(stop.clone()));
        let mut ledger = Ledger::new(self.checkpoint.load());
        let mut saved = (ledger.checkpoint(), std::time::Instant::now());
        let mut delay = Backoff::new();
        let stores: Vec<&str> = self.work.stores.keys().map(String::as_str).collect();
        eprintln!(
            "sealplane-reactor: serving {} from position {}",
            stores.join(", "),
            ledger.resume_from()
        );
        tokio::pin!(shutdown);
        'feed: loop {
            ledger.resubscribed();
            let request = v1::FeedRequest {
                from_position: ledger.resume_from(),
            };
            let mut client = self.work.client.clone();
            let stream = tokio::select! {
                () = &mut shutdown => break 'feed,
                result = client.subscribe(request) => result,
            };
            match stream {
                Ok(response) => {
                    let mut stream = response.into_inner();
                    loop {
                        let message = tokio::select! {
                            () = &mut shutdown => break 'feed,
                            message = stream.message() => message,
                        };
                        match message {
                            Ok(Some(message)) => {
                                delay.reset();
                                for action in self.fold(&mut ledger, message) {
                                    self.work.clone().spawn(action).await;
                                }
                                // At most once a second: a stale checkpoint
                                // only means replaying a little more.
                                let now = ledger.checkpoint();
                                if now != saved.0 && saved.1.elapsed() >= CHECKPOINT_EVERY {
                                    self.checkpoint.save(now);
                                    saved = (now, std::time::Instant::now());
                                }
                            }
                            Ok(None) => {
                                eprintln!("sealplane-reactor: the feed ended; resubscribing");
                                break;
                            }
                            Err(status) => {
                                eprintln!(
                                    "sealplane-reactor: the feed broke ({}); resubscribing",
                                    status.message()
                                );
                                break;
                            }
                        }
                    }
                }
                Err(status) => {
                    let hint = match status.code() {
                        Code::Unauthenticated | Code::PermissionDenied => {
                            " (check the reactor's token and that its principal has the reactor role and these stores)"
                        }
                        _ => "",
                    };
                    eprintln!(
                        "sealplane-reactor: cannot subscribe to the control plane: {}{hint}",
                        status.message()
                    );
                }
            }
            tokio::select! {
                () = &mut shutdown => break 'feed,
                () = tokio::time::sleep(delay.next()) => {}
            }
        }
        let _ = stop_tx.send(true);
        let _ = expiry.await;
        // Let the actions in flight finish (each holds a slot), for a while.
        let all = self.work.slots.acquire_many(self.work.capacity);
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            eprintln!(
                "sealplane-reactor: stopping with actions still in flight; their requests are reported failed on restart"
            );
        }
        self.checkpoint.save(ledger.checkpoint());
        eprintln!("sealplane-reactor: stopped");
    }

    fn fold(&self, ledger: &mut Ledger, message: v1::FeedMessage) -> Vec<Action> {
        match FeedMessage::try_from(message) {
            Ok(FeedMessage::Event { position, event }) => {
                ledger.apply(position, event).into_iter().collect()
            }
            Ok(FeedMessage::Checkpoint { position }) => {
                ledger.covered(position);
                vec![]
            }
            Ok(FeedMessage::CaughtUp { position }) => {
                ledger.covered(position);
                let actions = ledger.caught_up();
                eprintln!(
                    "sealplane-reactor: caught up at position {position}; {} open request(s), {} action(s) due",
                    ledger.open_requests(),
                    actions.len()
                );
                actions
            }
            Err(e) => {
                // The error names the position and field, never ciphertext.
                eprintln!("sealplane-reactor: skipped a feed message: {e}");
                vec![]
            }
        }
    }
}

impl Work {
    /// Runs `action` in its own task once a slot is free.
    async fn spawn(self: Arc<Self>, action: Action) {
        let Ok(permit) = Arc::clone(&self.slots).acquire_owned().await else {
            return;
        };
        tokio::spawn(async move {
            self.carry_out(action).await;
            drop(permit);
        });
    }

    async fn carry_out(&self, action: Action) {
        match action {
            Action::ProvideKey(request) => self.provide_key(&request).await,
            Action::Open {
                request,
                ciphertext,
            } => {
                let outcome = self.open_and_store(&request, &ciphertext).await;
                self.report_outcome(&request, outcome).await;
            }
            Action::KeyLost(request) => {
                let reason = format!(
                    "{KEY_LOST_REASON}: the reactor restarted after issuing the key for this request, and keys are never kept on disk; request a new upload (sealctl retries automatically)"
                );
                self.report_failed(&request, reason).await;
            }
            Action::Delete { uri, destroy } => self.delete(&uri, destroy).await,
        }
    }

    async fn provide_key(&self, request: &RequestInfo) {
        if Utc::now() >= request.expires_at {
            self.report_expired(request.request_id).await;
            return;
        }
        let public_key = self.keys.issue(request.request_id, request.expires_at);
        let offer = KeyOffer {
            request_id: request.request_id,
            uri: request.uri.to_string(),
            public_key: *public_key.as_bytes(),
            expires_at: request.expires_at,
        };
        let signature = self.identity.sign(&offer);
        let call = v1::ProvideKeyRequest {
            options: Some(command_options()),
            request_id: request.request_id.to_string(),
            public_key: STANDARD.encode(public_key.as_bytes()),
            signature: STANDARD.encode(signature),
            expires_at: request
                .expires_at
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        };
        self.call(
            "ProvideKey",
            request.request_id,
            call,
            |mut c, r| async move { c.provide_key(r).await },
        )
        .await;
    }

    /// Opens the payload and writes it upstream (or compares it).
    async fn open_and_store(
        &self,
        request: &RequestInfo,
        ciphertext: &[u8],
    ) -> Result<Outcome, String> {
        let key = self
            .keys
            .take(request.request_id, Utc::now())
            .map_err(|e| match e {
                KeyError::Unknown => format!(
                    "{KEY_LOST_REASON}: this reactor holds no key for the request; request a new upload"
                ),
                other => other.to_string(),
            })?;
        let uri = request.uri.to_string();
        let value = sealed::open(ciphertext, key.secret_key(), request.request_id, &uri)
            .map_err(|e| e.to_string())?;
        // The key has done its one job: destroy it before any slow I/O.
        drop(key);
        let (store_name, path) = (request.uri.store.as_str(), request.uri.path.as_str());
        let store = self.stores.get(store_name).ok_or_else(|| {
            format!("this reactor is not configured for store `{store_name}`; nothing was written")
        })?;
        match request.purpose {
            Purpose::Put { adopt } => {
                let meta = WriteMeta {
                    uri: uri.clone(),
                    request_id: request.request_id,
                    adopt,
                };
                let written = retry(&RetryPolicy::default(), || store.put(path, &value, &meta))
                    .await
                    .map_err(|e| upstream_reason(&e))?;
                let fingerprint = self.fingerprint.fingerprint(&value);
                Ok(Outcome::Uploaded {
                    version: written.version,
                    hash: fingerprint.hash,
                    key_hashes: fingerprint.key_hashes,
                    upstream_ref: written.upstream_ref,
                })
            }
            Purpose::Verify => {
                let current: SecretValue = retry(&RetryPolicy::default(), || store.get(path))
                    .await
                    .map_err(|e| upstream_reason(&e))?
                    .ok_or_else(|| {
                        format!(
                            "there is no current value at {} to compare with",
                            request.uri
                        )
                    })?;
                let stored = self.fingerprint.fingerprint(&current);
                Ok(Outcome::Verified {
                    matches: self.fingerprint.matches(&value, &stored),
                })
            }
        }
    }

    async fn report_outcome(&self, request: &RequestInfo, outcome: Result<Outcome, String>) {
        let id = request.request_id;
        match outcome {
            Ok(Outcome::Uploaded {
                version,
                hash,
                key_hashes,
                upstream_ref,
            }) => {
                eprintln!(
                    "sealplane-reactor: request {id}: stored {} version {version}",
                    request.uri
                );
                let call = v1::ReportUploadedRequest {
                    options: Some(command_options()),
                    request_id: id.to_string(),
                    version,
                    hash,
                    key_hashes: key_hashes.into_iter().collect(),
                    upstream_ref,
                };
                self.call("ReportUploaded", id, call, |mut c, r| async move {
                    c.report_uploaded(r).await
                })
                .await;
            }
            Ok(Outcome::Verified { matches }) => {
                eprintln!(
                    "sealplane-reactor: request {id}: verified {} ({})",
                    request.uri,
                    if matches { "match" } else { "no match" }
                );
                let call = v1::ReportVerifiedRequest {
                    options: Some(command_options()),
                    request_id: id.to_string(),
                    matches,
                };
                self.call("ReportVerified", id, call, |mut c, r| async move {
                    c.report_verified(r).await
                })
                .await;
            }
            Err(reason) => self.report_failed(request, reason).await,
        }
    }

    async fn report_failed(&self, request: &RequestInfo, reason: String) {
        let id = request.request_id;
        let reason = truncate_to(reason, MAX_REASON_BYTES);
        eprintln!(
            "sealplane-reactor: request {id} for {} failed: {reason}",
            request.uri
        );
        // Until actions have typed errors, the kind is read from the reason.
        let kind = FailureKind::of_legacy_reason(&reason).to_proto() as i32;
        let call = v1::ReportFailedRequest {
            options: Some(command_options()),
            request_id: id.to_string(),
            reason,
            kind,
        };
        self.call("ReportFailed", id, call, |mut c, r| async move {
            c.report_failed(r).await
        })
        .await;
    }

    async fn report_expired(&self, id: Uuid) {
        let call = v1::ReportKeyExpiredRequest {
            options: Some(command_options()),
            request_id: id.to_string(),
        };
        self.call("ReportKeyExpired", id, call, |mut c, r| async move {
            c.report_key_expired(r).await
        })
        .await;
    }

    async fn delete(&self, uri: &SecretUri, destroy: bool) {
        let (store_name, path) = (uri.store.as_str(), uri.path.as_str());
        let Some(store) = self.stores.get(store_name) else {
            eprintln!(
                "sealplane-reactor: cannot delete {uri}: this reactor is not configured for store `{store_name}`"
            );
            return;
        };
        match retry(&RetryPolicy::default(), || store.delete(path, destroy)).await {
            Ok(()) | Err(UpstreamError::NotFound { .. }) => {}
            Err(e) => {
                eprintln!(
                    "sealplane-reactor: deleting {uri} upstream failed, it stays pending until the reactor restarts: {}",
                    upstream_reason(&e)
                );
                return;
            }
        }
        eprintln!(
            "sealplane-reactor: {} {uri} upstream",
            if destroy { "destroyed" } else { "deleted" }
        );
        let call = v1::ReportDeletedRequest {
            options: Some(command_options()),
            uri: uri.to_string(),
            destroyed: destroy,
        };
        self.call("ReportDeleted", Uuid::nil(), call, |mut c, r| async move {
            c.report_deleted(r).await
        })
        .await;
    }

    /// Destroys keys that expire unused and reports their requests.
    async fn expire_keys(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {}
            }
            for id in self.keys.expire(Utc::now()) {
                eprintln!(
                    "sealplane-reactor: request {id}: its one-time key expired unused and was destroyed"
                );
                self.report_expired(id).await;
            }
        }
    }

    /// Sends `request` with `send`, retrying while the control plane is
    /// unreachable; a refusal is logged and dropped.
    async fn call<R, T, F, Fut>(&self, what: &str, id: Uuid, request: R, send: F)
    where
        R: Clone,
        F: Fn(Client, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut delay = Backoff::new();
        for attempt in 1..=REPORT_ATTEMPTS {
            match send(self.client.clone(), request.clone()).await {
                Ok(_) => return,
                Err(status) if retryable(status.code()) && attempt < REPORT_ATTEMPTS => {
                    eprintln!(
                        "sealplane-reactor: {what} for {id}: the control plane is unreachable ({}); retrying",
                        status.message()
                    );
                    tokio::time::sleep(delay.next()).await;
                }
                Err(status) => {
                    eprintln!(
                        "sealplane-reactor: {what} for {id} was not accepted: {}",
                        status.message()
                    );
                    return;
                }
            }
        }
    }
}

/// Attempts for one report before giving up (about two minutes of backoff).
const REPORT_ATTEMPTS: u32 = 30;

fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
    )
}

/// What carrying out an upload produced.
enum Outcome {
    Uploaded {
        version: u64,
        hash: String,
        key_hashes: BTreeMap<String, String>,
        upstream_ref: String,
    },
    Verified {
        matches: bool,
    },
}

fn command_options() -> v1::CommandOptions {
    v1::CommandOptions {
        command_id: Uuid::new_v4().to_string(),
        correlation_id: String::new(),
    }
}

fn upstream_reason(e: &UpstreamError) -> String {
    format!("the upstream store refused or failed: {e}")
}

/// Exponential backoff from 200 ms to 5 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(200))
    }

    fn reset(&mut self) {
        self.0 = Duration::from_millis(200);
    }

    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        now
    }
}

/// The feed position kept across restarts (a low-water mark, see [`Ledger`]).
struct Checkpoint {
    path: PathBuf,
}

impl Checkpoint {
    fn load(&self) -> u64 {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                eprintln!(
                    "sealplane-reactor: checkpoint {} is unreadable; replaying the feed from the start (handling is idempotent)",
                    self.path.display()
                );
                1
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 1,
            Err(e) => {
                eprintln!(
                    "sealplane-reactor: cannot read checkpoint {}: {e}; replaying the feed from the start",
                    self.path.display()
                );
                1
            }
        }
    }

    /// Writes atomically; a lost write only means replaying more on restart.
    fn save(&self, position: u64) {
        if let Err(e) = write_atomically(&self.path, format!("{position}\n").as_bytes()) {
            eprintln!(
                "sealplane-reactor: cannot save checkpoint {}: {e}",
                self.path.display()
            );
        }
    }
}

fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_survive_a_restart_and_a_bad_file_means_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoint {
            path: dir.path().join("cp"),
        };
        assert_eq!(c.load(), 1);
        c.save(42);
        assert_eq!(c.load(), 42);
        std::fs::write(&c.path, "garbage").unwrap();
        assert_eq!(c.load(), 1);
    }

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        let mut b = Backoff::new();
        let seq: Vec<u64> = (0..7).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(seq, [200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(200));
    }
}

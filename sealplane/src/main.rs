//! `sealplane`: the control plane binary, and the one place where the
//! control plane meets the reactor (`dev` runs both in one process;
//! `is-secure` checks both configurations). The `sealplane-control-plane`
//! library itself links no reactor, sealed-box opening or upstream code.

#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::Duration as TimeDelta;
use clap::{Parser, Subcommand};
use sealplane_control_plane::application::checkpoint::Schedule;
use sealplane_control_plane::bootstrap;
use sealplane_control_plane::config::{AuditConfig, LOG_KEY_FILE};
use sealplane_control_plane::config::{
    Config, EventStoreConfig, Limits, ReadModelConfig, VerifyOnStart,
};
use sealplane_control_plane::domain::names::Slug;
use sealplane_control_plane::server;
use sealplane_control_plane::snapshot::{SNAPSHOT_FILE, SnapshotFile};
use sealplane_control_plane::startup::{self, Start};
use sealplane_event_store::{EventStore, RedactedUrl};
use sealplane_host::durable;
use sealplane_host::logging::{self, LogFormat};
use sealplane_proto::certificate::TrustAnchor;
use sealplane_proto::log_checkpoint::LogSigningKey;

mod backup;
mod dev;
mod is_secure;
mod key_file;
mod migrate;
mod status;

#[derive(Parser)]
#[command(name = "sealplane", version, about = "Sealplane control plane")]
struct Cli {
    /// Log lines on stderr as human text or one JSON object each.
    #[arg(long, global = true, env = logging::FORMAT_ENV, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a deployment for insecure settings: a default or exposed file
    /// store master key, key or token files others can read, an API
    /// without TLS. Exits 1 and lists what to fix when anything is found.
    #[command(arg_required_else_help = true)]
    IsSecure {
        /// The control plane's configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A reactor's configuration file (repeatable).
        #[arg(long = "reactor-config")]
        reactor_configs: Vec<PathBuf>,
        /// A `sealplane dev` data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Serve the gRPC API as configured.
    Serve {
        /// The configuration file.
        #[arg(long, env = "SEALPLANE_CONFIG", default_value = "sealplane.toml")]
        config: PathBuf,
    },
    /// Create the first admin on an empty event log and print its token once.
    Init {
        /// The configuration file (its event store is initialised).
        #[arg(long, env = "SEALPLANE_CONFIG", default_value = "sealplane.toml")]
        config: PathBuf,
        /// The admin's slug.
        #[arg(long, default_value = "admin")]
        admin: String,
        /// Generate a trust anchor into this file (0600) for the admin to
        /// take to their machine; the control plane never reads it.
        #[arg(long)]
        anchor_out: Option<PathBuf>,
    },
    /// Ask the running control plane how it is: version, event store, log
    /// head, read model, readiness, connected reactors and their lag
    /// (needs an admin's or auditor's token).
    Status {
        /// The configuration file (where the API listens).
        #[arg(long, env = "SEALPLANE_CONFIG", default_value = "sealplane.toml")]
        config: PathBuf,
        /// The API's address, when not the configured one on this machine.
        #[arg(long)]
        addr: Option<String>,
        /// The CA to trust for https (default: the configured certificate).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// An admin's or auditor's token.
        #[arg(long, env = "SEALPLANE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: status::Format,
    },
    /// Copy the event log to a new file (0600) while the server runs: a
    /// consistent snapshot holding ciphertext, hashes and metadata only.
    Backup {
        /// The configuration file (its event store is copied).
        #[arg(long, env = "SEALPLANE_CONFIG", default_value = "sealplane.toml")]
        config: PathBuf,
        /// The backup file to create (never overwritten).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into an empty place after verifying its whole hash
    /// chain (and any --checkpoint); with --verify, only check it.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// A data directory (the log goes to `events.db` in it) or a
        /// database file; refused when it already holds a log.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Only verify the backup; restore nothing.
        #[arg(long)]
        verify: bool,
        /// A held checkpoint `POSITION:LOG_HASH` the log must match
        /// (repeatable), e.g. the head `sealplane backup` printed.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<String>,
    },
    /// Copy the whole event log to another backend (an empty one) as it was
    /// recorded: positions, stream versions and both hash chains, so held
    /// and signed checkpoints stay valid. Verifies the copy before it is
    /// kept and says so. Stop the control planes using the source first.
    #[command(
        after_help = "Stores: embedded:PATH, postgres:URL, postgres-url-file:PATH, postgres-url-env:NAME, kurrentdb:URL, kurrentdb-url-file:PATH, kurrentdb-url-env:NAME (as a source), config:PATH (a sealplane.toml's [event_store]).\nExample: sealplane migrate-store --from embedded:/var/lib/sealplane/events.db --to postgres-url-env:SEALPLANE_POSTGRES_URL"
    )]
    MigrateStore {
        /// The store to copy from (kept unchanged).
        #[arg(long)]
        from: String,
        /// The empty store to copy into; refused when it holds events.
        #[arg(long)]
        to: String,
    },
    /// Run everything in one process on this machine, for development:
    /// the API on loopback, the embedded event store, an admin token.
    Dev {
        /// Keep data here across runs; by default a fresh temporary
        /// directory is used and removed on exit.
        #[arg(long, env = "SEALPLANE_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Where the API listens (loopback only: dev mode has no TLS).
        #[arg(long, default_value = "127.0.0.1:7700")]
        listen: SocketAddr,
        /// Also answer `/healthz` and `/readyz` over HTTP here (off unless
        /// given, so several dev servers never fight over a port).
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
    },
}

/// Arenas the allocator keeps (ADR 0033): one, so the read model and the
/// memory freed around it share pages and the freed memory is reused or
/// given back, rather than each thread's arena staying at its own peak.
const ARENAS: NonZeroU16 = NonZeroU16::MIN;

fn main() -> anyhow::Result<()> {
    // Before the runtime starts any thread: an arena, once made, stays.
    sealplane_host::memory::limit_arenas(ARENAS);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The kurrentdb client links aws-lc beside the tree's ring: with two
    // providers rustls needs the process default named.
    #[cfg(feature = "kurrentdb")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    logging::init(cli.log_format)?;
    match cli.command {
        Command::Serve { config } => serve(&config).await,
        Command::Init {
            config,
            admin,
            anchor_out,
        } => init(&config, &admin, anchor_out.as_deref()).await,
        Command::Dev {
            data_dir,
            listen,
            admin_listen,
        } => dev(data_dir, listen, admin_listen).await,
        Command::IsSecure {
            config,
            reactor_configs,
            data_dir,
        } => is_secure::run(config, reactor_configs, data_dir),
        Command::Status {
            config,
            addr,
            ca_file,
            token,
            output,
        } => status::run(&config, addr, ca_file, token, output).await,
        Command::Backup { config, to } => backup::backup(&config, &to).await,
        Command::Restore {
            from,
            to,
            verify,
            checkpoints,
        } => backup::restore(&from, to, verify, &checkpoints).await,
        Command::MigrateStore { from, to } => migrate::run(&from, &to).await,
    }
}

/// Opens the store and refuses to go on with a tampered log: every link,
/// and every recorded checkpoint (signed by `log_key`, matching the log).
async fn open_verified(
    config: &EventStoreConfig,
    log_key: &LogSigningKey,
) -> anyhow::Result<(Arc<dyn EventStore>, u64)> {
    let (store, start) = open_started(config, log_key, None, VerifyOnStart::Full).await?;
    Ok((store, start.verified.events))
}

/// Opens the store, restores the read model from `snapshot` when it is
/// usable, and verifies the log as `verify` says (ADR 0026); refuses to go
/// on with a log that fails.
async fn open_started(
    config: &EventStoreConfig,
    log_key: &LogSigningKey,
    snapshot: Option<Arc<SnapshotFile>>,
    verify: VerifyOnStart,
) -> anyhow::Result<(Arc<dyn EventStore>, Start)> {
    let store = server::open_store(config)
        .await
        .context("cannot open the event store")?;
    let start = startup::prepare(&*store, &log_key.public_key(), snapshot, verify)
        .await
        .context("the event log failed verification")?;
    Ok((store, start))
}

/// What the ready line says about verification.
fn verified_text(start: &Start) -> String {
    let head = start.verified.head.position.0;
    match start.verified_after.0 {
        0 => format!("{head} events, hash chain verified"),
        after => format!(
            "{head} events, hash chains verified after position {after}, the whole log in the background"
        ),
    }
}

/// The read model as start-up found it, the snapshot it keeps, and the
/// background walk an incremental verification leaves to do.
fn assemble(
    store: Arc<dyn EventStore>,
    limits: Limits,
    start: Start,
    snapshot: Option<(Arc<SnapshotFile>, u64)>,
    log_key: &LogSigningKey,
) -> server::Assembled {
    let after_position_0 = start.verified_after.0 != 0;
    let mut assembled = server::app_resuming(store, limits, start.model, start.applied);
    if let Some((file, every)) = snapshot {
        assembled = assembled.with_snapshots(file, every);
    }
    if after_position_0 {
        assembled = assembled.with_background_verification(log_key.public_key());
    }
    assembled
}

/// The log-signing key in `path`, created (0600) on first start; refused
/// when its group or others may read it.
fn log_key(path: &Path) -> anyhow::Result<LogSigningKey> {
    let (key, _created) = key_file::load_or_create(
        path,
        "log-signing key file",
        |text| LogSigningKey::from_text(text).map_err(|e| e.to_string()),
        || {
            let key = LogSigningKey::generate();
            let text = key.to_text();
            (key, text)
        },
    )?;
    Ok(key)
}

/// Waits for the read model's start-up rebuild (from position 1 or after
/// its snapshot) and logs how long it took.
async fn rebuilt(app: &sealplane_control_plane::api::app::App) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let from = app.model.progress().position;
    let progress = server::rebuilt(app).await?;
    tracing::info!(
        position = progress.position.0,
        folded = progress.position.0 - from.0,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "read model rebuilt from the log"
    );
    Ok(())
}

/// Binds the admin listener when `addr` is set, and says where it is.
async fn with_admin(
    assembled: server::Assembled,
    addr: Option<SocketAddr>,
) -> anyhow::Result<server::Assembled> {
    let Some(addr) = addr else {
        return Ok(assembled);
    };
    let listener = sealplane_host::admin::bind(addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "admin listener on http://{addr} (/healthz, /readyz, /metrics)");
    Ok(assembled.with_admin(listener))
}

fn describe(config: &EventStoreConfig) -> String {
    match config {
        EventStoreConfig::Embedded { path } => path.display().to_string(),
        EventStoreConfig::Postgres {
            url,
            url_file,
            url_env,
        } => match (url, url_file, url_env) {
            (Some(url), _, _) => RedactedUrl::new(url.expose()).to_string(),
            (_, Some(file), _) => format!("PostgreSQL (url from {})", file.display()),
            (_, _, Some(name)) => format!("PostgreSQL (url from ${name})"),
            _ => "PostgreSQL".to_owned(),
        },
        EventStoreConfig::Kurrentdb {
            url,
            url_file,
            url_env,
        } => match (url, url_file, url_env) {
            (Some(url), _, _) => RedactedUrl::new(url.expose()).to_string(),
            (_, Some(file), _) => format!("KurrentDB (url from {})", file.display()),
            (_, _, Some(name)) => format!("KurrentDB (url from ${name})"),
            _ => "KurrentDB".to_owned(),
        },
    }
}

async fn serve(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let tls = server::tls_of(&config)?;
    let key = log_key(&config.log_key_path())?;
    let key_id = key.key_id();
    let snapshot = config
        .snapshot_path()
        .map(|path| Arc::new(SnapshotFile::new(path, &key)));
    let (store, start) = open_started(
        &config.event_store,
        &key,
        snapshot.clone(),
        config.audit.verify_on_start,
    )
    .await?;
    let verified = verified_text(&start);
    // Served while the read model rebuilds: health says NOT_SERVING and
    // calls are refused UNAVAILABLE until it has caught up.
    let mut assembled = assemble(
        store,
        config.limits.clone(),
        start,
        snapshot.map(|file| (file, config.read_model.snapshot_every_events)),
        &key,
    );
    assembled
        .sign_checkpoints(key, Schedule::of(&config.audit))
        .await?;
    let app = assembled.app.clone();
    let assembled = with_admin(assembled, config.admin.as_ref().map(|a| a.listen)).await?;
    let listener = server::bind(config.listen).await?;
    let stop = shutdown_signal()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr = listener.local_addr()?;
    let mut serving = tokio::spawn(server::serve(assembled, listener, tls, stop));
    tokio::select! {
        done = rebuilt(&app) => done?,
        // A signal during the rebuild stops the server before it was ready.
        served = &mut serving => {
            served.context("the API task failed")??;
            return Ok(());
        }
    }
    println!(
        "sealplane serving on {scheme}://{addr} (event store {}, {verified}; log key {key_id})",
        describe(&config.event_store)
    );
    serving.await.context("the API task failed")??;
    // stdout may be gone by now (a closed pipe); that is no reason to fail.
    let _ = writeln!(
        std::io::stdout(),
        "sealplane stopped; every acknowledged event is on disk."
    );
    Ok(())
}

async fn init(config_path: &Path, admin: &str, anchor_out: Option<&Path>) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let admin = Slug::parse(admin)?;
    // Written first, so a failure leaves the log untouched.
    let anchor = match anchor_out {
        Some(path) => {
            let anchor = TrustAnchor::generate();
            durable::create_new(path, anchor.to_text().as_bytes(), 0o600)
                .with_context(|| format!("cannot write the trust anchor to {}", path.display()))?;
            Some((path, anchor))
        }
        None => None,
    };
    let key = log_key(&config.log_key_path())?;
    let (store, _) = open_verified(&config.event_store, &key).await?;
    let assembled = server::app(store.clone(), config.limits.clone()).await?;
    let ttl = TimeDelta::seconds(config.limits.token_ttl_seconds as i64);
    let token = bootstrap::init(&assembled.app, &admin, ttl).await;
    let deployment = assembled.app.deployment_id();
    store.close().await;
    let token = token?;
    let deployment = deployment?;
    println!("Created admin `{admin}` of deployment {deployment}.");
    println!("Its token is shown this once; keep it secret:");
    println!();
    println!("export SEALPLANE_TOKEN={}", token.expose());
    if let Some((path, anchor)) = anchor {
        println!();
        println!(
            "A trust anchor is in {} (keep it with the admin, off this machine): it signs store certificates.",
            path.display()
        );
        println!("Users trust it with:");
        println!();
        println!(
            "export SEALPLANE_TRUST={deployment}={}",
            anchor.public_key_base64()
        );
        println!("export SEALPLANE_ANCHOR_KEY_FILE={}", path.display());
    }
    Ok(())
}

async fn dev(
    data_dir: Option<PathBuf>,
    listen: SocketAddr,
    admin_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() {
        bail!("dev mode has no TLS, so it listens on loopback only, not {listen}");
    }
    let temp;
    let dir: &Path = match &data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create data directory {}", dir.display()))?;
            dir
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("sealplane-dev-")
                .tempdir()?;
            temp.path()
        }
    };
    let path = dir.join("events.db");
    let store_config = EventStoreConfig::Embedded { path: path.clone() };
    let key = log_key(&dir.join(LOG_KEY_FILE))?;
    let key_id = key.key_id();
    // Only a kept data directory gets a snapshot: a temporary one is gone
    // at exit.
    let snapshot = data_dir
        .as_ref()
        .map(|_| Arc::new(SnapshotFile::new(dir.join(SNAPSHOT_FILE), &key)));
    let (store, start) = open_started(
        &store_config,
        &key,
        snapshot.clone(),
        AuditConfig::default().verify_on_start,
    )
    .await
    .with_context(|| format!("event store {}", path.display()))?;
    let verified = verified_text(&start);
    let mut assembled = assemble(
        store,
        Limits::default(),
        start,
        snapshot.map(|file| (file, ReadModelConfig::default().snapshot_every_events)),
        &key,
    );
    rebuilt(&assembled.app).await?;
    assembled
        .sign_checkpoints(key, Schedule::of(&AuditConfig::default()))
        .await?;
    let (admin, token) =
        bootstrap::dev_token(&assembled.app, &Slug::parse("admin")?, TimeDelta::hours(12)).await?;
    let assembled = with_admin(assembled, admin_listen).await?;
    let listener = server::bind(listen).await?;
    let stop = shutdown_signal()?;
    let addr = listener.local_addr()?;
    let anchor = dev::trust_anchor(dir).context("cannot set up dev mode's trust anchor")?;
    let reactor = dev::reactor(&assembled.app, dir, addr, &anchor)
        .await
        .context("cannot start the in-process reactor")?;
    let deployment = assembled.app.deployment_id()?;
    println!("Sealplane dev is running.");
    println!("  event store: {} ({verified})", path.display());
    println!("  gRPC API:    http://{addr} (plaintext, loopback only)");
    println!("  log key:     {key_id} (signs checkpoints; `sealctl audit verify` pins it)");
    println!("  admin:       {admin} (a fresh token for this session, valid 12 hours)");
    println!(
        "  store:       {} (file store in {}, the default; reactor identity {})",
        dev::DEV_STORE,
        dir.join("files").display(),
        reactor.public_key()
    );
    println!();
    println!(
        "  trust:       deployment {deployment}, anchor {} (certifies store {})",
        anchor.public_key_base64(),
        dev::DEV_STORE
    );
    println!();
    println!("export SEALPLANE_ADDR=http://{addr}");
    println!("export SEALPLANE_TOKEN={}", token.expose());
    println!(
        "export SEALPLANE_TRUST={deployment}={}",
        anchor.public_key_base64()
    );
    println!();
    println!("  Try: sealctl put secret admin/hello greeting=world");
    println!("  Press Ctrl-C to stop.");
    // Stop the reactor first, so its last reports still reach the API.
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn(server::serve(assembled, listener, None, async move {
        let _ = api_stopped.await;
    }));
    reactor.run(stop).await;
    let _ = stop_api.send(());
    api.await.context("the API task failed")??;
    let _ = writeln!(
        std::io::stdout(),
        "Sealplane dev stopped; every acknowledged event is on disk."
    );
    Ok(())
}

/// Registers SIGINT and SIGTERM handlers now, before anything announces
/// readiness, and returns a future that completes on either. (Registered
/// lazily, a signal arriving right after the ready line would kill the
/// process with the default action instead of stopping it cleanly.)
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

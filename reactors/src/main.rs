//! `sealplane-reactor`: the secret reactor binary.
//!
//! `run --config reactor.toml` serves the stores the config names, logging
//! to stderr (text, or JSON with `--log-format json`); `identity` prints
//! the public key an admin registers with a store; `generate-key` writes a
//! fingerprint or master key file.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use sealplane_host::logging::{self, LogFormat};
use sealplane_reactors::config::ReactorConfig;
use sealplane_reactors::identity::ReactorIdentity;
use sealplane_reactors::master_key::MasterKey;
use sealplane_reactors::reactor::{Reactor, ReactorParts};

#[derive(Parser)]
#[command(
    name = "sealplane-reactor",
    version,
    about = "Sealplane secret reactor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Follow the control plane's feed and serve the configured stores
    /// until SIGINT or SIGTERM.
    Run {
        /// The reactor's configuration file.
        #[arg(long, env = "SEALPLANE_REACTOR_CONFIG", default_value = "reactor.toml")]
        config: PathBuf,
        /// How log lines on stderr are written: `text` for people or
        /// `json` for log pipelines (the level comes from SEALPLANE_LOG or
        /// RUST_LOG, default `info`).
        #[arg(long, env = logging::FORMAT_ENV, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Write a new random key (base64 of 32 bytes) to a file readable only
    /// by its owner: a fingerprint key (`[fingerprint] key_file`, the same
    /// on every reactor) or a file store master key (`master_key_file`).
    GenerateKey {
        /// The file to create; an existing file is never overwritten.
        #[arg(long)]
        file: PathBuf,
    },
    /// Print the reactor's Ed25519 public key (creating the identity on
    /// first use), for an admin to register with
    /// `sealctl create store NAME --reactor-key KEY`.
    Identity {
        /// The identity file (created readable by its owner only).
        #[arg(
            long,
            env = "SEALPLANE_REACTOR_IDENTITY",
            default_value = "reactor-identity"
        )]
        file: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run { config, log_format } => {
            logging::init(log_format)?;
            run(&config)
        }
        Command::GenerateKey { file } => generate_key(&file),
        Command::Identity { file } => {
            let (identity, created) = ReactorIdentity::load_or_generate(&file)
                .with_context(|| format!("reactor identity {}", file.display()))?;
            if created {
                // A one-shot command's word to the person who ran it, not a log line.
                eprintln!("created a new reactor identity in {}", file.display());
            }
            println!("{}", identity.public_key_base64());
            Ok(())
        }
    }
}

fn run(path: &Path) -> anyhow::Result<()> {
    // rustls is built with ring only; make it the process default for the
    // upstream HTTP clients.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let origin = path.display().to_string();
    let config = ReactorConfig::load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async {
        // Handlers first, so a signal right after start is never fatal.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("install the SIGTERM handler")?;
        let parts = ReactorParts::from_config(&config, &origin).await?;
        let mut reactor = Reactor::new(parts)?;
        if let Some(admin) = &config.admin {
            let listener = sealplane_host::admin::bind(admin.listen).await?;
            let addr = listener.local_addr()?;
            tracing::info!(%addr, "admin listener on http://{addr} (/healthz, /readyz, /metrics)");
            reactor = reactor.with_admin(listener);
        }
        let public_key = reactor.public_key();
        tracing::info!(
            public_key,
            "identity {public_key} (register it with `sealctl create store NAME --reactor-key KEY`)"
        );
        reactor
            .run(async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            })
            .await;
        anyhow::Ok(())
    })
}

fn generate_key(file: &Path) -> anyhow::Result<()> {
    MasterKey::create_file(file)?;
    // A one-shot command's word to the person who ran it, not a log line.
    eprintln!("wrote a new key to {} (mode 0600)", file.display());
    Ok(())
}

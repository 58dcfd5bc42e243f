//! `sealplane`: the control plane binary.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use sealplane_event_store::{EmbeddedStore, EventStore, verify_log};

#[derive(Parser)]
#[command(name = "sealplane", version, about = "Sealplane control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything in one process on this machine, for development.
    ///
    /// Today: the embedded event store. The gRPC API, the in-process reactor
    /// and the file store arrive with the next issues.
    Dev {
        /// Keep data here across runs; by default a fresh temporary
        /// directory is used and removed on exit.
        #[arg(long, env = "SEALPLANE_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Dev { data_dir } => dev(data_dir).await,
    }
}

async fn dev(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
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
    let store = EmbeddedStore::open(&path)
        .with_context(|| format!("cannot open the event store at {}", path.display()))?;
    let events = verify_log(&store)
        .await
        .with_context(|| format!("the event log at {} failed verification", path.display()))?;
    println!("Sealplane dev is running.");
    println!(
        "  event store: {} ({events} events, hash chain verified)",
        path.display()
    );
    println!(
        "  The gRPC API, the in-process reactor and the file store arrive with the next issues."
    );
    println!("  Press Ctrl-C to stop.");
    shutdown_signal().await?;
    store.close().await;
    println!("Sealplane dev stopped; every appended event is on disk.");
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {},
    }
    Ok(())
}

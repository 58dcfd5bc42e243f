//! `sealplane-reactor`: the secret reactor binary.
//!
//! Today it manages the reactor's identity; following the log and serving
//! uploads (`sealplane-reactor run --config reactor.toml`) arrive with the
//! rest of the upload-pipeline issue.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sealplane_reactors::identity::ReactorIdentity;

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
        Command::Identity { file } => {
            let (identity, created) = ReactorIdentity::load_or_generate(&file)
                .with_context(|| format!("reactor identity {}", file.display()))?;
            if created {
                eprintln!("created a new reactor identity in {}", file.display());
            }
            println!("{}", identity.public_key_base64());
            Ok(())
        }
    }
}

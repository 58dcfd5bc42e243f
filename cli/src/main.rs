//! `sealctl`: parses the command line, runs it, prints `error: <sentence>`
//! on failure. Everything else is in the library.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser as _;
use sealplane_cli::command_line::Cli;
use sealplane_cli::run::{EXIT_ERROR, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(anyhow::Error::new(e).context("cannot start"), EXIT_ERROR),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.exit_code();
            fail(anyhow::Error::new(e), code)
        }
    }
}

fn fail(error: anyhow::Error, code: u8) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(code)
}

//! The control plane: turns commands into events and serves read models.
//!
//! What it will hold (control-plane issue): pure aggregates (state +
//! command → events; state + event → state) for stores, upload requests,
//! secrets and principals; the command handler (load, decide, append with
//! the expected version); projections rebuilt from the log; bearer-token
//! auth and roles; the gRPC API; and `sealplane dev`, everything in one
//! process.
//!
//! What it is not for: confidentiality. It never holds a plaintext value or
//! an upstream credential (SPEC §1.4): a compromised control plane may deny
//! service but cannot read a secret.

#![forbid(unsafe_code)]

pub mod api;
pub mod application;
pub mod auth;
pub mod bootstrap;
pub mod command;
pub mod config;
pub mod domain;
pub mod projection;
pub mod read_model;
pub mod server;
pub mod streams;
pub mod sweep;
pub mod tls;

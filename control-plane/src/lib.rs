//! The control plane: turns commands into events and serves read models.
//!
//! What it is for: pure aggregates (`domain`: state + command → events;
//! state + event → state) for stores, upload requests, secrets and
//! principals; the command handler (`command`: load, decide, append with
//! the expected version, idempotency, `AccessDenied`); the projections
//! rebuilt from the log (`projection`, `read_model`), the read-model
//! snapshot a restart resumes from and what start-up verifies (`snapshot`,
//! `startup`, ADR 0026); the use cases that
//! span aggregates, free of any transport (`application`); bearer-token
//! auth (`auth`); and the gRPC API that only authenticates, converts and
//! maps errors (`api`). `server` assembles them; the `sealplane` binary
//! (its own package) runs them.
//!
//! What it is not for: confidentiality. It never holds a plaintext value or
//! an upstream credential (SPEC §1.4), and links no code that opens a
//! sealed box or talks to an upstream store (the architecture invariants
//! in ARCHITECTURE.md): a compromised control plane may deny service but
//! cannot read a secret.

#![forbid(unsafe_code)]

pub mod api;
pub mod application;
pub mod auth;
pub mod bootstrap;
pub mod command;
pub mod config;
pub mod domain;
pub mod health;
pub mod metrics;
pub mod projection;
pub mod rate;
pub mod read_model;
pub mod server;
pub mod snapshot;
pub mod startup;
pub mod streams;
pub mod sweep;
pub mod tls;

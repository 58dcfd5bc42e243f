//! Sealplane's test kit: the one place test scaffolding lives, shared by
//! the integration tests and benchmarks of every crate (as a
//! dev-dependency only).
//!
//! What it is for:
//! - running the workspace's real binaries: [`bin`] finds them (next to
//!   the test's target directory, or in `$SEALPLANE_BIN_DIR`), a
//!   [`Process`] captures a process's output in a log file and waits for
//!   a line of it;
//! - a [`ControlPlane`]: `sealplane init` + `sealplane serve` (or
//!   `sealplane dev`) on a loopback port, its address and admin token;
//! - a [`Cluster`]: a control plane, reactors, users and `sealctl` runs
//!   ([`Run`]) in one directory, and the plaintext scan over all of it
//!   ([`scan`]: event store, file stores, every process log, every
//!   `sealctl` output);
//! - the real upstream servers `scripts/test` starts, and their clients
//!   that bypass the adapters under test: [`openbao`] (and OpenBao dev
//!   servers of a test's own), [`moto`] (AWS Secrets Manager);
//! - TLS fixtures ([`tls`]): a throw-away CA and the certificates it signs.
//!
//! What it is not for: product code, and tests. No product crate may
//! depend on it (its helpers hand out admin tokens, read stores raw and
//! reach upstream servers with root credentials);
//! it holds no test beyond checks of its own helpers: tests live beside
//! the code they test, or in `tests/` when they span processes.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod control_plane;
pub mod moto;
pub mod openbao;
pub mod postgres;
pub mod process;
pub mod scan;
pub mod sealctl;
pub mod tls;

pub use cluster::{Cluster, User, authorized};
pub use control_plane::{ControlPlane, Settings};
pub use process::{BIN_DIR_ENV, Process, bin};
pub use scan::{input_file, marker};
pub use sealctl::Run;

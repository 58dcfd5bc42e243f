//! What Sealplane's processes need from the machine they run on: durable
//! atomic files with private modes ([`durable`]), and logging setup
//! (`logging`, behind the cargo feature of that name, so a process that
//! only writes files links no `tracing-subscriber`), and the admin
//! listener's `/healthz` and `/readyz` (`admin`, feature of that name),
//! and the allocator's settings for a long-running process: handing freed
//! memory back to the system and fewer arenas (`memory`, feature of that
//! name).
//!
//! Every process writes small files that must survive a crash whole or
//! not at all (keys, identities, pins, checkpoints, the file store's
//! versions); they all go through [`durable`], so a fix to how that is
//! done lands everywhere at once.
//!
//! What it is not for: anything that knows about secrets, events or the
//! protocol. It holds no domain types and no cryptography, and the bytes
//! it writes are the caller's business (a caller that writes key material
//! keeps it in its own zeroizing buffer).

// Denied, not forbidden: `memory` makes the two calls into glibc that have
// no safe wrapper (ADR 0030, 0033), and allows them there alone.
#![deny(unsafe_code)]

#[cfg(feature = "admin")]
pub mod admin;
pub mod durable;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "memory")]
pub mod memory;
pub mod private;

//! The secret reactor: the only Sealplane component that sees a plaintext
//! value, and only in memory while it writes it upstream.
//!
//! What it holds: the reactor's Ed25519 identity ([`identity`]), one-time
//! X25519 keys zeroized after one use or on expiry ([`one_time_key`]),
//! keyed hashes (SPEC §4, [`fingerprint`]), the upstream store adapters
//! behind one trait ([`upstream`]; [`file_store`], [`vault`],
//! [`aws_secrets_manager`], registered in [`stores`]), and the running
//! reactor ([`reactor`]) that follows the log through the control plane's
//! feed from a checkpoint, folds it in a pure [`ledger`] and opens sealed
//! payloads only to write them upstream.
//!
//! What it is not for: deciding who may do what. The control plane
//! authorises; the reactor only acts on events that authorise it.

#![forbid(unsafe_code)]

pub mod aws_secrets_manager;
pub mod config;
pub mod file_store;
pub mod fingerprint;
pub mod identity;
pub mod ledger;
pub mod master_key;
pub mod metrics;
pub mod one_time_key;
pub mod reactor;
pub mod sealing_keys;
pub mod security;
pub mod stores;
pub mod upstream;
pub mod value_map;
pub mod vault;

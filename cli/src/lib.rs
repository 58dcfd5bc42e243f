//! `sealctl`: the command-line client for users, admins and auditors.
//!
//! It reads values from arguments, files, env files and hidden prompts
//! ([`value_input`]); pins each store's reactor identity on first use
//! ([`known_reactors`]); seals values to one-time keys whose signature it
//! has checked against that pin ([`sealed_upload`]); and reads secrets,
//! stores and principals ([`secrets`], [`admin`]); streams the audit log
//! ([`audit`]); chooses the control plane from flags, environment and
//! named contexts ([`connection_settings`], [`contexts`]); and checks a
//! put without sending it ([`dry_run`]). The plaintext of a
//! value never leaves this process unsealed, and no error or output of
//! this crate contains one.
//!
//! What it is not for: trusting the control plane with confidentiality.
//! The grammar is in [`command_line`], the dispatch in [`run`].

#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod audit_verify;
pub mod client;
pub mod command_line;
pub mod connection_settings;
pub mod contexts;
pub mod dry_run;
pub mod known_log_keys;
pub mod known_reactors;
pub mod output;
pub mod progress;
pub mod replay;
pub mod run;
pub mod sealed_files;
pub mod sealed_upload;
pub mod secrets;
pub mod trust;
pub mod value_input;

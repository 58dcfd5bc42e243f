//! `sealctl`: the command-line client for users, admins and auditors.
//!
//! What it will hold (upload-pipeline issue): reading values from
//! arguments, files and hidden prompts; pinning each store's reactor
//! identity (`known_reactors`); sealing values to one-time keys whose
//! signature it has checked; and the `get`, `describe`, `verify`, `audit`
//! commands. The plaintext of a value never leaves this process unsealed.
//!
//! What it is not for: trusting the control plane with confidentiality.

#![forbid(unsafe_code)]

//! End-to-end tests across real processes: the `sealplane` and
//! `sealplane-reactor` binaries, driven by the real `sealctl`, against real
//! upstream stores started by `scripts/test` (OpenBao, PostgreSQL, an AWS
//! emulator). After each flow the tests scan the event store and captured
//! logs for the plaintext (SPEC §1.1).
//!
//! The flows arrive with the control-plane and upload-pipeline issues; this
//! crate holds their shared harness.

#![forbid(unsafe_code)]

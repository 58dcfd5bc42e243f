//! The gRPC API: one tonic service per area (stores, secrets, principals,
//! reactor, audit, operations), each authenticating the caller, checking its role, validating
//! input and turning domain outcomes into precise statuses.

// Every tonic service method returns `Result<_, tonic::Status>` (176
// bytes); helpers feeding them return the same type rather than boxing it.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod audit;
pub mod audit_verification;
pub mod operations;
pub mod principals;
pub mod reactor;
pub mod recorded_event;
pub mod secrets;
pub mod status;
pub mod stores;

//! The gRPC API: one tonic service per area (stores, secrets, principals,
//! reactor), each authenticating the caller, checking its role, validating
//! input and turning domain outcomes into precise statuses.

pub mod status;

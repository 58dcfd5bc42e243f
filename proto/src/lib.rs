//! Sealplane's wire contract between processes: the protobuf services and
//! messages (compiled from `proto/sealplane/**.proto` without `protoc`), and
//! conversions between them and the domain types.
//!
//! What it is not for: behaviour. Servers and clients live in the
//! control-plane, reactor and CLI crates.

#![forbid(unsafe_code)]

/// Generated code for package `sealplane.v1`.
pub mod v1 {
    tonic::include_proto!("sealplane.v1");
}

#[cfg(feature = "offer")]
pub mod offer;
#[cfg(feature = "sealed")]
pub mod sealed;

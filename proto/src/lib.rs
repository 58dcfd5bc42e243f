//! Sealplane's wire contract between processes, defined once: the protobuf
//! services and messages (compiled from `proto/sealplane/**.proto` without
//! `protoc`), and the vocabulary every process shares — names and their
//! rules (`names`), limits (`limits`), the upload protocol's purposes and
//! failure kinds (`upload`), the written form of keyed hashes
//! (`keyed_hash`), the typed reactor feed (`feed`), the signed key offer
//! and store certificates (`offer`, `certificate`; signing and verifying
//! with feature `signatures`), signed log checkpoints (`log_checkpoint`,
//! feature `signatures`), the sealed-payload format (`sealed`,
//! feature `sealed`, which the control plane leaves off) and which
//! addresses a client may send a token to (`transport`).
//!
//! What it is not for: behaviour. Servers and clients live in the
//! control-plane, reactor and CLI crates, and this crate depends on none
//! of them.

#![forbid(unsafe_code)]

/// Generated code for package `sealplane.v1`.
pub mod v1 {
    tonic::include_proto!("sealplane.v1");
}

pub mod certificate;
pub mod encoding;
pub mod feed;
pub mod keyed_hash;
pub mod limits;
#[cfg(feature = "signatures")]
pub mod log_checkpoint;
pub mod names;
#[cfg(feature = "signatures")]
pub mod offer;
#[cfg(feature = "sealed")]
pub mod sealed;
pub mod sealing_key;
pub mod status;
pub mod transport;
pub mod upload;

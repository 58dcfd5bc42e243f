//! TLS for the gRPC server (rustls through tonic): the server certificate
//! and key, and optionally a CA that client certificates must chain to.

use std::path::Path;

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::config::TlsConfig;

/// A TLS file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot read TLS {what} from {path}: {source}")]
pub struct TlsError {
    what: &'static str,
    path: String,
    source: std::io::Error,
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError {
        what,
        path: path.display().to_string(),
        source,
    })?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN ") {
        return Err(TlsError {
            what,
            path: path.display().to_string(),
            source: std::io::Error::other("not a PEM file"),
        });
    }
    Ok(bytes)
}

/// The server side of TLS described by `config`.
pub fn server_tls(config: &TlsConfig) -> Result<ServerTlsConfig, TlsError> {
    let cert = read(&config.cert, "certificate")?;
    let key = read(&config.key, "private key")?;
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if let Some(ca) = &config.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca, "client CA")?));
    }
    Ok(tls)
}

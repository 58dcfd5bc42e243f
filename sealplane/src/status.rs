//! `sealplane status`: asks the running control plane (`Operations.GetStatus`,
//! admins and auditors) and prints the answer as `sealctl get status` does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sealplane_control_plane::config::Config;
use sealplane_proto::status::StatusView;
use sealplane_proto::v1;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// The `-o` formats of `sealplane status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned `field  value` lines.
    Table,
    /// One JSON document (the fields of `sealctl get status -o json`).
    Json,
}

/// The address the API of `config` is reached at from this machine.
fn local_address(listen: SocketAddr, tls: bool) -> String {
    let host = match listen.ip() {
        ip if ip.is_unspecified() && listen.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}:{}", listen.port())
}

/// Prints the status of the control plane `config_path` configures.
pub async fn run(
    config_path: &Path,
    addr: Option<String>,
    ca_file: Option<PathBuf>,
    token: Option<String>,
    format: Format,
) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    if addr.is_none() && config.listen.port() == 0 {
        bail!(
            "the configuration listens on port 0 (any free port); pass the API's address with --addr"
        );
    }
    let addr = addr.unwrap_or_else(|| local_address(config.listen, config.tls.is_some()));
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        bail!("no token: set SEALPLANE_TOKEN (an admin's or auditor's) or pass --token");
    };
    let mut endpoint = Endpoint::from_shared(addr.clone())
        .with_context(|| format!("`{addr}` is not an address"))?;
    if addr.starts_with("https://") {
        // The server's own certificate is the default trust root: right for
        // a self-signed one; name the CA with --ca-file otherwise.
        let ca = ca_file
            .or_else(|| config.tls.as_ref().map(|t| t.cert.clone()))
            .context("an https address needs --ca-file")?;
        let pem = std::fs::read(&ca).with_context(|| format!("cannot read {}", ca.display()))?;
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach the control plane at {addr}"))?;
    let mut request = tonic::Request::new(v1::GetStatusRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}")
            .parse()
            .context("the token is not a valid header value")?,
    );
    let reply = v1::operations_client::OperationsClient::new(channel)
        .get_status(request)
        .await
        .map_err(|s| anyhow::anyhow!("{} ({:?})", s.message(), s.code()))?
        .into_inner();
    let view = StatusView::from(reply);
    match format {
        Format::Table => print!("{}", view.human()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&view)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_is_reached_on_loopback_when_it_listens_everywhere() {
        let at = |s: &str, tls| local_address(s.parse().unwrap(), tls);
        assert_eq!(at("0.0.0.0:7443", true), "https://127.0.0.1:7443");
        assert_eq!(at("127.0.0.1:7700", false), "http://127.0.0.1:7700");
        assert_eq!(at("[::]:7443", false), "http://[::1]:7443");
    }
}

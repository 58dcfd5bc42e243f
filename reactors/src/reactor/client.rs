//! The reactor's gRPC client to the control plane: the endpoint, TLS, and
//! the bearer token on every call.

use std::time::Duration;

use sealplane_proto::transport::{Transport, check_plaintext};
use sealplane_proto::v1::reactor_client::ReactorClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::StartError;

/// The control plane's `Reactor` service, every call carrying the token.
pub(super) type Client = ReactorClient<InterceptedService<Channel, Bearer>>;

/// Adds the bearer token to every call; the header is marked sensitive.
#[derive(Clone)]
pub(super) struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A client for `address`; connects lazily, so the reactor starts while
/// the control plane is down. Plain `http://` to anything but loopback is
/// refused here too, not only by the config check, since `ReactorParts`
/// can be built without a config file (`sealplane dev` does).
pub(super) fn connect(
    address: &str,
    ca_pem: Option<&[u8]>,
    token: &str,
) -> Result<Client, StartError> {
    let bad = |reason: String| StartError::ControlPlane {
        address: address.to_owned(),
        reason,
    };
    // The rule's reading of the scheme decides TLS, so the check and the
    // connection cannot disagree on what is plain text.
    let transport = check_plaintext(address).map_err(|e| bad(e.to_string()))?;
    let mut endpoint = Endpoint::from_shared(address.to_owned())
        .map_err(|e| bad(format!("not a valid address: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if transport == Transport::Tls {
        let mut tls = ClientTlsConfig::new().with_enabled_roots();
        if let Some(pem) = ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| bad(format!("TLS settings: {e}")))?;
    }
    let mut header: MetadataValue<Ascii> = format!("Bearer {token}")
        .parse()
        .map_err(|_| bad("the token is not printable ASCII".into()))?;
    header.set_sensitive(true);
    Ok(ReactorClient::with_interceptor(
        endpoint.connect_lazy(),
        Bearer(header),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_http_off_loopback_is_refused_before_connecting() {
        let Err(e) = connect("http://db.example:7700", None, "t") else {
            panic!("connected to db.example in clear");
        };
        assert_eq!(
            e.to_string(),
            "control plane http://db.example:7700: refusing to send a token in clear to http://db.example:7700: use https:// (plain http is only allowed to loopback addresses)"
        );
        // Loopback and https are fine (lazily: nothing is connected here).
        for ok in [
            "http://127.0.0.1:1",
            "http://[::1]:1",
            "https://db.example:7700",
        ] {
            assert!(connect(ok, None, "t").is_ok(), "{ok}");
        }
    }
}

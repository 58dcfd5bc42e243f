//! `sealplane init` and `sealplane serve` with TLS, as an operator runs
//! them: a CA-signed server certificate, client certificates required, and
//! plaintext or certificate-less clients turned away.

use std::time::Duration;

use sealplane_proto::v1;
use sealplane_proto::v1::principals_client::PrincipalsClient;
use sealplane_test_kit::tls::ServerTls;
use sealplane_test_kit::{ControlPlane, Settings};
use tonic::Request;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

async fn who_am_i(
    channel: Result<Channel, tonic::transport::Error>,
    token: &str,
) -> Result<String, String> {
    let channel = channel.map_err(|e| e.to_string())?;
    let mut request = Request::new(v1::WhoAmIRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    PrincipalsClient::new(channel)
        .who_am_i(request)
        .await
        .map(|r| r.into_inner().slug)
        .map_err(|s| s.to_string())
}

#[tokio::test]
async fn tls_with_client_certificates_serves_only_verified_clients() {
    let dir = tempfile::tempdir().unwrap();
    let pki = ServerTls::write_to(dir.path());
    let client = pki.ca.issue(&["alice-laptop"]);
    let mut control_plane = ControlPlane::configure(
        Some(dir.path()),
        Settings {
            tls: pki.section(true),
            ..Settings::default()
        },
    );

    // init: creates the first admin once and prints its token once.
    let token = control_plane.init();
    let again = control_plane
        .command()
        .args(["init", "--config"])
        .arg(control_plane.config_path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has principals"));

    control_plane.start();
    let port = control_plane
        .addr
        .strip_prefix("https://127.0.0.1:")
        .expect("serve prints its https address")
        .to_owned();
    let url = format!("https://127.0.0.1:{port}");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pki.ca.pem()))
        .domain_name("localhost");
    let connect = |tls: Option<ClientTlsConfig>, url: String| async move {
        let mut endpoint = Channel::from_shared(url)
            .unwrap()
            .connect_timeout(Duration::from_secs(5));
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).unwrap();
        }
        endpoint.connect().await
    };

    // A verified client gets through.
    let with_cert = tls
        .clone()
        .identity(Identity::from_pem(&client.cert, &client.key));
    assert_eq!(
        who_am_i(connect(Some(with_cert), url.clone()).await, &token).await,
        Ok("admin".into())
    );
    // Without a client certificate, or in plaintext, nothing gets through.
    assert!(
        who_am_i(connect(Some(tls), url.clone()).await, &token)
            .await
            .is_err()
    );
    let plain = format!("http://127.0.0.1:{port}");
    assert!(who_am_i(connect(None, plain).await, &token).await.is_err());

    control_plane.stop();
}

#[test]
fn a_missing_certificate_is_named_at_start_up() {
    let control_plane = ControlPlane::configure(
        None,
        Settings {
            tls: "[tls]\ncert = \"/nonexistent/server.crt\"\nkey = \"/nonexistent/server.key\"\n"
                .into(),
            ..Settings::default()
        },
    );
    let out = control_plane
        .command()
        .args(["serve", "--config"])
        .arg(control_plane.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/server.crt"), "{stderr}");
}

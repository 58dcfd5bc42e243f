//! `sealplane init` and `sealplane serve` with TLS, as an operator runs
//! them: a CA-signed server certificate, client certificates required, and
//! plaintext or certificate-less clients turned away.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use sealplane_proto::v1;
use sealplane_proto::v1::principals_client::PrincipalsClient;
use tonic::Request;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca: ca.pem(),
        server: leaf(vec!["localhost".into()]),
        client: leaf(vec!["alice-laptop".into()]),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

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
    let pki = pki();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n[event_store]\nbackend = \"embedded\"\npath = \"{}\"\n",
        write(dir.path(), "server.crt", &pki.server.0),
        write(dir.path(), "server.key", &pki.server.1),
        write(dir.path(), "ca.crt", &pki.ca),
        dir.path().join("events.db").display(),
    );
    let config = write(dir.path(), "sealplane.toml", &config);

    // init: creates the first admin once and prints its token once.
    let bin = env!("CARGO_BIN_EXE_sealplane");
    let init = Command::new(bin)
        .args(["init", "--config", &config])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let stdout = String::from_utf8(init.stdout).unwrap();
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("export SEALPLANE_TOKEN="))
        .expect("the admin token")
        .to_owned();
    let again = Command::new(bin)
        .args(["init", "--config", &config])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has principals"));

    let mut server = Command::new(bin)
        .args(["serve", "--config", &config])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let port = line
        .split("https://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("serve prints its https address")
        .to_owned();
    let url = format!("https://127.0.0.1:{port}");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
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
        .identity(Identity::from_pem(&pki.client.0, &pki.client.1));
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

    assert!(
        Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(server.wait().unwrap().success());
}

#[test]
fn a_missing_certificate_is_named_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "sealplane.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\n[tls]\ncert = \"/nonexistent/server.crt\"\nkey = \"/nonexistent/server.key\"\n[event_store]\nbackend = \"embedded\"\npath = \"{}\"\n",
            dir.path().join("events.db").display()
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sealplane"))
        .args(["serve", "--config", &config])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/server.crt"), "{stderr}");
}

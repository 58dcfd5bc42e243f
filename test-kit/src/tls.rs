//! TLS fixtures: a throw-away certificate authority, certificates it
//! signs, and the files and `[tls]` section a TLS control plane serves with.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair};

/// A self-signed CA that signs leaf certificates.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate, PEM.
    pub cert: String,
    /// Its private key, PEM.
    pub key: String,
}

impl Ca {
    /// A new CA with a fresh key.
    pub fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `names` (DNS names) signed by this CA, with a fresh key.
    pub fn issue(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

impl Default for Ca {
    fn default() -> Ca {
        Ca::new()
    }
}

/// A CA and a `localhost` server certificate it signed, written to
/// `ca.crt`, `server.crt` and `server.key` in a directory.
pub struct ServerTls {
    /// The CA (to issue client certificates, or to trust).
    pub ca: Ca,
    /// `ca.crt`.
    pub ca_file: PathBuf,
    /// `server.crt`.
    pub cert_file: PathBuf,
    /// `server.key`.
    pub key_file: PathBuf,
}

impl ServerTls {
    /// A new CA and server certificate for `localhost`, written into `dir`.
    pub fn write_to(dir: &Path) -> ServerTls {
        let ca = Ca::new();
        let server = ca.issue(&["localhost"]);
        ServerTls {
            ca_file: write_file(dir, "ca.crt", &ca.pem()),
            cert_file: write_file(dir, "server.crt", &server.cert),
            key_file: write_file(dir, "server.key", &server.key),
            ca,
        }
    }

    /// The `[tls]` section of `sealplane.toml` serving this certificate;
    /// with `client_certificates`, clients must present one this CA signed.
    pub fn section(&self, client_certificates: bool) -> String {
        let mut section = format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            self.cert_file.display(),
            self.key_file.display()
        );
        if client_certificates {
            section += &format!("client_ca = \"{}\"\n", self.ca_file.display());
        }
        section
    }
}

/// Writes `text` to `dir/name`; returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

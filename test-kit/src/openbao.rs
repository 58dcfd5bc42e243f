//! OpenBao for the Vault store's tests: the server `scripts/test` starts,
//! dev servers of a test's own, and raw HTTP API calls that do not go
//! through the adapter under test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sealplane_reactors::vault::{KvVersion, VaultConfig};
use serde_json::{Value, json};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

/// The environment variable `name`, or a panic saying how to get it.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run these tests with `scripts/test` (e.g. `scripts/test -- --test vault`), which starts an OpenBao dev server and exports it"
        )
    })
}

/// A random name for a mount, policy or role, so tests never share one.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Raw access to an OpenBao server's HTTP API with a given token.
pub struct Api {
    /// The server's address, without a trailing `/`.
    pub address: String,
    /// The token every call sends.
    pub token: String,
    client: VaultClient,
}

impl Api {
    /// A client for the server at `address`, calling with `token`.
    pub fn new(address: &str, token: &str) -> Api {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings = VaultClientSettingsBuilder::default()
            .address(address)
            .token(token)
            .ca_certs(Vec::new())
            .build()
            .unwrap();
        Api {
            address: address.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client: VaultClient::new(settings).unwrap(),
        }
    }

    /// The shared server of `scripts/test`, as root.
    pub fn shared() -> Api {
        Api::new(
            &required_env("SEALPLANE_TEST_VAULT_ADDR"),
            &required_env("SEALPLANE_TEST_VAULT_TOKEN"),
        )
    }

    /// `method /v1/path` with an optional JSON body: (status, JSON body or Null).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Like [`Api::call`], with transport errors returned.
    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let url = format!("{}/v1/{path}", self.address);
        let http = &self.client.http.http;
        let request = match method {
            "GET" => http.get(url),
            "POST" => http.post(url),
            "PUT" => http.put(url),
            "DELETE" => http.delete(url),
            other => panic!("unsupported method {other}"),
        };
        let mut request = request.header("X-Vault-Token", self.token.as_str());
        if let Some(body) = body {
            request = request.body(serde_json::to_vec(&body).unwrap());
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, json))
    }

    /// Like [`Api::call`], panicking unless the status is 2xx.
    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, json) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status}: {json}"
        );
        json
    }

    /// Enables a KV engine of `version` at a fresh random mount; returns the mount.
    pub async fn new_kv_mount(&self, version: KvVersion) -> String {
        let mount = unique("kv");
        let v = if version == KvVersion::V2 { "2" } else { "1" };
        self.ok(
            "POST",
            &format!("sys/mounts/{mount}"),
            Some(json!({"type": "kv", "options": {"version": v}})),
        )
        .await;
        mount
    }

    /// A token with `policy` (and `default`), created by this token.
    pub async fn token_with_policy(&self, policy: &str) -> String {
        let created = self
            .ok(
                "POST",
                "auth/token/create",
                Some(json!({"policies": [policy], "ttl": "10m"})),
            )
            .await;
        created["auth"]["client_token"].as_str().unwrap().to_owned()
    }
}

/// Writes `token` to a file (0600: the reactor refuses a wider one) in `dir`; returns its path.
pub fn token_file(dir: &Path, token: &str) -> PathBuf {
    let path = dir.join(unique("token"));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

/// A store config for `address`/`mount` with a token file.
pub fn config(address: &str, mount: &str, kv: KvVersion, token_file: &Path) -> VaultConfig {
    let text = format!(
        "address = {address:?}\nmount = {mount:?}\nkv_version = {}\ntoken_file = {:?}\nrequest_timeout_seconds = 2\n",
        if kv == KvVersion::V2 { 2 } else { 1 },
        token_file.display().to_string(),
    );
    toml::from_str(&text).unwrap()
}

/// A loopback port whose successor is free too (a dev server's cluster port).
pub fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free loopback ports");
}

/// An OpenBao dev server of the test's own (root token `root`), killed on drop.
pub struct DevServer {
    /// Its loopback port (the next one is its cluster port).
    pub port: u16,
    /// Where its TLS files are, when it serves TLS.
    pub tls_dir: Option<PathBuf>,
    child: Child,
}

/// The root token of every [`DevServer`].
pub const DEV_ROOT_TOKEN: &str = "root";

impl DevServer {
    /// Starts `bao server -dev` on `port` (plain http) and waits until it serves.
    pub async fn start(port: u16) -> DevServer {
        DevServer::spawn(port, None).await
    }

    /// Starts a dev server with TLS; its CA is `<tls_dir>/vault-ca.pem`.
    pub async fn start_tls(port: u16, tls_dir: &Path) -> DevServer {
        DevServer::spawn(port, Some(tls_dir.to_owned())).await
    }

    async fn spawn(port: u16, tls_dir: Option<PathBuf>) -> DevServer {
        let bin = required_env("SEALPLANE_TEST_BAO_BIN");
        let mut cmd = Command::new(bin);
        cmd.args([
            "server",
            "-dev",
            &format!("-dev-root-token-id={DEV_ROOT_TOKEN}"),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ]);
        if let Some(dir) = &tls_dir {
            cmd.arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", dir.display()));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bao server -dev");
        let server = DevServer {
            port,
            tls_dir,
            child,
        };
        server.wait_ready().await;
        server
    }

    /// `http://127.0.0.1:PORT`, or `https://` with TLS.
    pub fn address(&self) -> String {
        match self.tls_dir {
            Some(_) => format!("https://127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match &self.tls_dir {
                // With TLS, the CA file appears once the listener is set up.
                Some(dir) => {
                    dir.join("vault-ca.pem").exists()
                        && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                }
                None => {
                    let api = Api::new(&self.address(), DEV_ROOT_TOKEN);
                    matches!(
                        api.try_call("GET", "secret/config", None).await,
                        Ok((200, _))
                    )
                }
            };
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bao dev server on {} did not start",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the server (dev mode: its data is gone).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.stop();
    }
}

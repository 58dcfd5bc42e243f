//! moto for the AWS Secrets Manager store's tests: the server
//! `scripts/test` starts, an SDK client of the tests' own (to read and write
//! without the adapter under test), and a TCP relay that can be cut.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls;
use sealplane_reactors::aws_secrets_manager::AwsSecretsManagerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The environment variable `name`, or a panic saying how to get it.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run these tests with `scripts/test` (e.g. `scripts/test -- --test aws_secrets_manager`), which starts a moto server and exports it"
        )
    })
}

/// A random name prefix (`t-<12 hex>/`), so tests never share a secret.
pub fn unique_prefix() -> String {
    format!("t-{}/", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// The moto server of `scripts/test`.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The region it answers for.
    pub region: String,
    /// The access key id it accepts.
    pub access_key_id: String,
    /// The secret access key it accepts.
    pub secret_access_key: String,
}

impl Moto {
    /// The server of `scripts/test`, from the environment it exports.
    pub fn shared() -> Moto {
        Moto {
            endpoint: required_env("SEALPLANE_TEST_AWS_ENDPOINT"),
            region: required_env("SEALPLANE_TEST_AWS_REGION"),
            access_key_id: required_env("SEALPLANE_TEST_AWS_ACCESS_KEY_ID"),
            secret_access_key: required_env("SEALPLANE_TEST_AWS_SECRET_ACCESS_KEY"),
        }
    }

    /// An SDK client for moto, independent of the adapter under test.
    pub fn client(&self) -> Client {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                &self.access_key_id,
                &self.secret_access_key,
                None,
                None,
                "test",
            ))
            .endpoint_url(&self.endpoint)
            .http_client(http)
            .build();
        Client::from_conf(config)
    }

    /// A store config for `endpoint` (moto's unless a test reroutes it) with `prefix`.
    pub fn config(&self, endpoint: &str, prefix: &str) -> AwsSecretsManagerConfig {
        let text = format!(
            "region = {:?}\nendpoint = {endpoint:?}\naccess_key_id = {:?}\nsecret_access_key_env = \"SEALPLANE_TEST_AWS_SECRET_ACCESS_KEY\"\nname_prefix = {prefix:?}\nrecovery_window_days = 7\nrequest_timeout_seconds = 2\n",
            self.region, self.access_key_id,
        );
        toml::from_str(&text).unwrap()
    }
}

/// What the SDK says about a secret: tags, stages, deletion.
pub struct Described {
    /// The secret's ARN.
    pub arn: String,
    /// Its tags, by key.
    pub tags: HashMap<String, String>,
    /// The id of the version labelled AWSCURRENT.
    pub current: String,
    /// Whether it is scheduled for deletion.
    pub deleted: bool,
}

/// `DescribeSecret`, `None` when there is no such secret.
pub async fn describe(client: &Client, name: &str) -> Option<Described> {
    let out = match client.describe_secret().secret_id(name).send().await {
        Ok(out) => out,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            return None;
        }
        Err(e) => panic!(
            "describe {name}: {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(e)
        ),
    };
    let tags = out
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or("").to_owned(),
                t.value().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let current = out
        .version_ids_to_stages()
        .into_iter()
        .flatten()
        .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    Some(Described {
        arn: out.arn().unwrap_or("").to_owned(),
        tags,
        current,
        deleted: out.deleted_date().is_some(),
    })
}

/// The current `SecretString`, parsed as JSON.
pub async fn current_json(client: &Client, name: &str) -> serde_json::Value {
    let out = client
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "get {name}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        });
    serde_json::from_str(out.secret_string().expect("a SecretString")).unwrap()
}

/// How many versions the secret has, deprecated ones included.
pub async fn version_count(client: &Client, name: &str) -> usize {
    client
        .list_secret_version_ids()
        .secret_id(name)
        .include_deprecated(true)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "list versions of {name}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })
        .versions()
        .len()
}

/// A loopback TCP relay to `target` that [`Relay::cut`] closes, open connections included.
pub struct Relay {
    /// `http://127.0.0.1:PORT`, where it listens.
    pub address: String,
    accept: JoinHandle<()>,
    relays: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    /// Starts relaying from a fresh loopback port to `target`.
    pub async fn start(target: &str) -> Relay {
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let relays = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::clone(&relays);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                accepted.lock().unwrap().push(relay);
            }
        });
        Relay {
            address,
            accept,
            relays,
        }
    }

    /// Stops listening and drops every relayed connection: the address is a closed port.
    pub async fn cut(&self) {
        // The listener first, so no connection is relayed after the drain.
        self.accept.abort();
        while !self.accept.is_finished() {
            tokio::task::yield_now().await;
        }
        let relays: Vec<_> = self.relays.lock().unwrap().drain(..).collect();
        for task in relays {
            task.abort();
            let _ = task.await;
        }
    }
}

/// A loopback address that accepts connections and never answers.
pub async fn black_hole() -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (address, task)
}

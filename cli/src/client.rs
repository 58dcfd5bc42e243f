//! The connection to the control plane: address, TLS, the bearer token
//! sent with every call, and turning gRPC failures into sentences.

use std::path::PathBuf;
use std::time::Duration;

use sealplane_proto::transport::{AddressRefused, Transport, check_plaintext};
use sealplane_proto::v1;
use sealplane_proto::v1::audit_client::AuditClient;
use sealplane_proto::v1::principals_client::PrincipalsClient;
use sealplane_proto::v1::secrets_client::SecretsClient;
use sealplane_proto::v1::stores_client::StoresClient;
use tonic::codegen::InterceptedService;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};
use uuid::Uuid;

/// The address used when neither `--addr`, `SEALPLANE_ADDR` nor a context gives one.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:7700";

/// How long connecting may take before the control plane counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why talking to the control plane failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not a URL the token may be sent to: not `http://`
    /// or `https://`, or plain `http://` to a host that is not loopback.
    #[error(transparent)]
    Address(#[from] AddressRefused),
    /// The URL passed the address rule but the gRPC client refuses it.
    #[error("{0:?} is not a control-plane address: use https://HOST:PORT")]
    BadAddr(String),
    /// The CA file could not be read.
    #[error("cannot read the CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("cannot set up TLS for {addr}: {reason}")]
    Tls {
        /// The address.
        addr: String,
        /// What tonic said.
        reason: String,
    },
    /// The TLS handshake failed (an untrusted or wrong certificate).
    #[error(
        "the TLS handshake with the control plane at {addr} failed: {reason}; if it uses a private CA, pass it with --ca-file or SEALPLANE_CA_FILE"
    )]
    TlsHandshake {
        /// The address.
        addr: String,
        /// What rustls said.
        reason: String,
    },
    /// The token cannot be sent as a header (it is never printed).
    #[error("the token is not valid header text: check SEALPLANE_TOKEN or --token")]
    BadToken,
    /// Nothing answers at the address.
    #[error(
        "cannot reach the control plane at {addr} (is `sealplane dev` running? set SEALPLANE_ADDR)"
    )]
    Unreachable {
        /// The address.
        addr: String,
    },
    /// The caller is not authenticated.
    #[error("{0}")]
    Unauthenticated(String),
    /// The control plane refused or failed the call; its message is a sentence.
    #[error("{message}")]
    Refused {
        /// The gRPC code.
        code: Code,
        /// The control plane's sentence.
        message: String,
    },
}

impl ClientError {
    /// The gRPC code of a refusal, if this is one.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Refused { code, .. } => Some(*code),
            ClientError::Unauthenticated(_) => Some(Code::Unauthenticated),
            _ => None,
        }
    }
}

/// Where and how to connect (its `Debug` hides the token).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// `https://host:port`, or `http://` to a loopback address.
    pub addr: String,
    /// The bearer token, if any.
    pub token: Option<String>,
    /// A PEM CA bundle to trust for https.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerAuth(Option<AsciiMetadataValue>);

impl Interceptor for BearerAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A connected channel plus the token to present.
#[derive(Clone)]
pub struct Connection {
    channel: Channel,
    auth: BearerAuth,
    addr: String,
}

impl Connection {
    /// Connects to `settings.addr`, with TLS for `https://`; plain
    /// `http://` to anything but loopback is refused before anything is
    /// resolved or sent (`sealplane_proto::transport`).
    pub async fn open(settings: &ConnectionSettings) -> Result<Self, ClientError> {
        let addr = settings.addr.trim().trim_end_matches('/').to_owned();
        // The rule's own reading of the scheme decides TLS, so the check
        // and the connection cannot disagree on what is plain text.
        let https = check_plaintext(&addr)? == Transport::Tls;
        let mut endpoint = Endpoint::from_shared(addr.clone())
            .map_err(|_| ClientError::BadAddr(addr.clone()))?
            .connect_timeout(CONNECT_TIMEOUT);
        if https {
            // A CA file replaces the system roots: a private deployment's
            // CA is then the only one trusted for it.
            let tls = match &settings.ca_file {
                Some(path) => {
                    let pem = std::fs::read(path).map_err(|reason| ClientError::CaFile {
                        path: path.clone(),
                        reason,
                    })?;
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
                }
                None => ClientTlsConfig::new().with_native_roots(),
            };
            endpoint = endpoint.tls_config(tls).map_err(|e| ClientError::Tls {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        }
        let auth = match &settings.token {
            Some(token) if !token.trim().is_empty() => {
                let value: AsciiMetadataValue =
                    MetadataValue::try_from(format!("Bearer {}", token.trim()))
                        .map_err(|_| ClientError::BadToken)?;
                BearerAuth(Some(value))
            }
            _ => BearerAuth(None),
        };
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| connect_error(&addr, &e))?;
        Ok(Connection {
            channel,
            auth,
            addr,
        })
    }

    /// The control plane's address as connected (no trailing `/`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A Secrets client.
    pub fn secrets(&self) -> SecretsClient<InterceptedService<Channel, BearerAuth>> {
        SecretsClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A Stores client.
    pub fn stores(&self) -> StoresClient<InterceptedService<Channel, BearerAuth>> {
        StoresClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// An Operations client (`get status`).
    pub fn operations(
        &self,
    ) -> v1::operations_client::OperationsClient<InterceptedService<Channel, BearerAuth>> {
        v1::operations_client::OperationsClient::with_interceptor(
            self.channel.clone(),
            self.auth.clone(),
        )
    }

    /// An Audit client.
    pub fn audit(&self) -> AuditClient<InterceptedService<Channel, BearerAuth>> {
        AuditClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// A Principals client.
    pub fn principals(&self) -> PrincipalsClient<InterceptedService<Channel, BearerAuth>> {
        PrincipalsClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// Turns a failed call into a sentence.
    pub fn error(&self, status: Status) -> ClientError {
        error_of(&self.addr, status)
    }
}

/// Why connecting failed: TLS trouble is named as such (a certificate
/// problem is not "unreachable"), anything else means nothing answered.
fn connect_error(addr: &str, error: &(dyn std::error::Error + 'static)) -> ClientError {
    let mut source = Some(error);
    while let Some(e) = source {
        let text = e.to_string();
        let lower = text.to_lowercase();
        if lower.contains("certificate") || lower.contains("native certs") {
            return ClientError::TlsHandshake {
                addr: addr.to_owned(),
                reason: text,
            };
        }
        source = e.source();
    }
    ClientError::Unreachable {
        addr: addr.to_owned(),
    }
}

/// Turns a failed call to `addr` into a sentence: transport failures say
/// the control plane is unreachable, refusals keep the server's sentence.
pub fn error_of(addr: &str, status: Status) -> ClientError {
    // Statuses made by the client's transport (not sent by the server)
    // carry the transport error as their source.
    let transport = std::error::Error::source(&status).is_some()
        && matches!(status.code(), Code::Unavailable | Code::Unknown);
    if transport {
        return ClientError::Unreachable {
            addr: addr.to_owned(),
        };
    }
    match status.code() {
        Code::Unauthenticated => {
            let message = status.message();
            if message.contains("SEALPLANE_TOKEN") {
                ClientError::Unauthenticated(message.to_owned())
            } else {
                ClientError::Unauthenticated(format!(
                    "{message} (the token comes from --token, SEALPLANE_TOKEN or the context's token file)"
                ))
            }
        }
        code => ClientError::Refused {
            code,
            message: if status.message().is_empty() {
                format!("the control plane answered {code:?} without a reason")
            } else {
                status.message().to_owned()
            },
        },
    }
}

/// Fresh options for a command: a new command id each time.
/// Every page of a paged list. `fetch(page_token, min_position)` asks
/// for one page and returns its items, its read position and the next
/// page token (empty after the last); every page after the first is read
/// at least as new as the first, so no page shows an older state.
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, ClientError>
where
    F: FnMut(String, Option<v1::QueryOptions>) -> Fut,
    Fut: std::future::Future<
            Output = Result<(Vec<T>, Option<v1::ReadPosition>, String), ClientError>,
        >,
{
    let mut all = vec![];
    let (mut token, mut first_read) = (String::new(), None::<u64>);
    loop {
        let options = first_read.map(|position| v1::QueryOptions {
            min_position: position,
        });
        let (items, read, next) = fetch(token, options).await?;
        first_read = first_read.or(read.map(|r| r.position));
        all.extend(items);
        if next.is_empty() {
            return Ok(all);
        }
        token = next;
    }
}

pub fn command_options() -> Option<v1::CommandOptions> {
    Some(v1::CommandOptions {
        command_id: Uuid::new_v4().to_string(),
        correlation_id: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_refusals_keep_their_sentence() {
        let e = error_of(
            "http://x",
            Status::failed_precondition("store `x` is disabled; an admin can enable it"),
        );
        assert_eq!(
            e.to_string(),
            "store `x` is disabled; an admin can enable it"
        );
        assert_eq!(e.code(), Some(Code::FailedPrecondition));
    }

    #[test]
    fn unauthenticated_mentions_the_token_variable() {
        let e = error_of(
            "http://x",
            Status::unauthenticated("unknown token; ask an admin"),
        );
        assert!(e.to_string().contains("SEALPLANE_TOKEN"), "{e}");
        let e = error_of(
            "http://x",
            Status::unauthenticated("no bearer token: set SEALPLANE_TOKEN or pass --token"),
        );
        assert_eq!(
            e.to_string(),
            "no bearer token: set SEALPLANE_TOKEN or pass --token"
        );
    }

    #[test]
    fn settings_hide_the_token_in_debug() {
        let settings = ConnectionSettings {
            addr: "http://127.0.0.1:1".into(),
            token: Some("spt_secret".into()),
            ca_file: None,
        };
        let text = format!("{settings:?}");
        assert!(!text.contains("spt_secret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn options_carry_a_fresh_uuid() {
        let (a, b) = (command_options().unwrap(), command_options().unwrap());
        assert_ne!(a.command_id, b.command_id);
        assert!(Uuid::parse_str(&a.command_id).is_ok());
    }
}

//! A control plane that lies about the key offer (SPEC §1.4, §3 step 3):
//! the real `sealctl` against a small in-test stand-in for the control
//! plane's Secrets service, which the real control plane cannot be made to
//! play. The offers are signed by a real reactor identity (the test holds
//! its key), so only what the offer states is wrong: a put offer for a
//! verification, an expired offer, an offer for another request. Each is
//! refused with exit 3 before anything is sealed or sent.

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{Duration, SecondsFormat, Utc};
use ed25519_dalek::{Signer as _, SigningKey};
use sealplane_proto::offer::KeyOffer;
use sealplane_proto::upload::Purpose;
use sealplane_proto::v1;
use sealplane_proto::v1::secrets_server::{Secrets, SecretsServer};
use sealplane_test_kit::bin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

const DEPLOYMENT: &str = "6f1c2a8e-0000-4000-8000-00000000d001";
const URI: &str = "local://alice/db";

/// How the stand-in lies.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// Asked to verify, it offers a key the reactor signed for a put.
    PutForVerify,
    /// It offers a key whose signed expiry is long past.
    Expired,
    /// It offers a key signed for another request.
    ForeignRequest,
}

struct StandIn {
    reactor: SigningKey,
    lie: Lie,
    request_id: Uuid,
    uploads: Arc<Mutex<usize>>,
}

impl StandIn {
    fn offer(&self) -> v1::UploadStatus {
        let mut expires_at = (Utc::now() + Duration::minutes(5))
            .to_rfc3339_opts(SecondsFormat::Secs, true)
            .parse::<chrono::DateTime<Utc>>()
            .unwrap();
        let (mut request_id, mut purpose) = (self.request_id, Purpose::Verify);
        match self.lie {
            Lie::PutForVerify => purpose = Purpose::Put { adopt: false },
            Lie::Expired => expires_at = Utc::now() - Duration::hours(2),
            Lie::ForeignRequest => request_id = Uuid::new_v4(),
        }
        let public_key = [9u8; 32];
        let offer = KeyOffer {
            request_id,
            store: "local".into(),
            uri: URI.into(),
            purpose,
            public_key,
            expires_at,
        };
        let signature = self.reactor.sign(&offer.signed_bytes()).to_bytes();
        v1::UploadStatus {
            request_id: request_id.to_string(),
            uri: URI.into(),
            state: v1::UploadState::KeyProvided as i32,
            public_key: STANDARD.encode(public_key),
            signature: STANDARD.encode(signature),
            expires_at: expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            ..Default::default()
        }
    }
}

type Statuses = Pin<Box<dyn Stream<Item = Result<v1::UploadStatus, Status>> + Send>>;

#[tonic::async_trait]
impl Secrets for StandIn {
    async fn request_upload_key(
        &self,
        _: Request<v1::RequestUploadKeyRequest>,
    ) -> Result<Response<v1::RequestUploadKeyReply>, Status> {
        Ok(Response::new(v1::RequestUploadKeyReply {
            reply: Some(v1::CommandReply::default()),
            request_id: self.request_id.to_string(),
            uri: URI.into(),
            reactor_key: STANDARD.encode(self.reactor.verifying_key().as_bytes()),
            expires_at: (Utc::now() + Duration::minutes(5))
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            certificate: None,
            deployment_id: DEPLOYMENT.into(),
        }))
    }

    type WatchUploadStream = Statuses;

    async fn watch_upload(
        &self,
        _: Request<v1::WatchUploadRequest>,
    ) -> Result<Response<Statuses>, Status> {
        let offer = self.offer();
        let stream = tokio_stream::iter(vec![Ok(offer)]).chain(tokio_stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn upload_secret(
        &self,
        _: Request<v1::UploadSecretRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        *self.uploads.lock().unwrap() += 1;
        Err(Status::internal("the stand-in keeps what it gets"))
    }

    async fn list_secrets(
        &self,
        _: Request<v1::ListSecretsRequest>,
    ) -> Result<Response<v1::ListSecretsReply>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn get_secret(
        &self,
        _: Request<v1::GetSecretRequest>,
    ) -> Result<Response<v1::GetSecretReply>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn secret_history(
        &self,
        _: Request<v1::GetSecretRequest>,
    ) -> Result<Response<v1::SecretHistoryReply>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn delete_secret(
        &self,
        _: Request<v1::DeleteSecretRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn change_access(
        &self,
        _: Request<v1::ChangeAccessRequest>,
    ) -> Result<Response<v1::CommandReply>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn get_sealing_keys(
        &self,
        _: Request<v1::GetSealingKeysRequest>,
    ) -> Result<Response<v1::SealingKeysReply>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn apply_sealed(
        &self,
        _: Request<v1::ApplySealedRequest>,
    ) -> Result<Response<v1::ApplySealedReply>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
}

use tokio_stream::StreamExt as _;

/// Serves a stand-in that tells `lie` on a loopback port.
async fn stand_in(lie: Lie) -> (SocketAddr, String, Arc<Mutex<usize>>) {
    let reactor = SigningKey::from_bytes(&[5; 32]);
    let key = STANDARD.encode(reactor.verifying_key().as_bytes());
    let uploads = Arc::new(Mutex::new(0));
    let service = StandIn {
        reactor,
        lie,
        request_id: Uuid::new_v4(),
        uploads: uploads.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SecretsServer::new(service))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, key, uploads)
}

#[tokio::test(flavor = "multi_thread")]
async fn offers_that_do_not_state_the_request_purpose_and_time_asked_for_are_refused() {
    let cases = [
        (
            Lie::PutForVerify,
            "verify",
            "not signed by the given reactor identity",
        ),
        (Lie::Expired, "verify", "which is past"),
        (Lie::ForeignRequest, "put", "another upload request"),
    ];
    for (lie, verb, expected) in cases {
        let (addr, key, uploads) = stand_in(lie).await;
        let dir = tempfile::tempdir().unwrap();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(bin("sealctl"))
                .args([
                    verb,
                    "secret",
                    URI,
                    "password=never-sent",
                    "--reactor-key",
                    &key,
                ])
                .env("SEALPLANE_ADDR", format!("http://{addr}"))
                .env("SEALPLANE_TOKEN", format!("spt_{}", "a".repeat(43)))
                .env("SEALPLANE_CONFIG_DIR", dir.path())
                .env_remove("SEALPLANE_TRUST")
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{lie:?}: {stderr}");
        assert!(stderr.contains(expected), "{lie:?}: {stderr}");
        assert!(stderr.contains("nothing was sent"), "{lie:?}: {stderr}");
        assert!(!stderr.contains("never-sent"), "{lie:?}: {stderr}");
        assert_eq!(*uploads.lock().unwrap(), 0, "{lie:?}: nothing uploaded");
    }
}

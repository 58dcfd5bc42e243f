//! The gRPC API as clients see it: the real `sealplane` binary on a
//! loopback port, called with the generated clients. Refusals are checked
//! by status code and by the `AccessDenied` events they leave in the log.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use sealplane_proto::v1;
use sealplane_proto::v1::principals_client::PrincipalsClient;
use sealplane_proto::v1::reactor_client::ReactorClient;
use sealplane_proto::v1::secrets_client::SecretsClient;
use sealplane_proto::v1::stores_client::StoresClient;
use sealplane_test_kit::{ControlPlane, Settings, bin};
use tonic::transport::Channel;
use tonic::{Code, Request};
use uuid::Uuid;

/// A running `sealplane serve` (a bare control plane: no reactor, no
/// store) in `data_dir`, initialised with `sealplane init` on first start.
fn start(data_dir: &Path) -> ControlPlane {
    ControlPlane::start_in(data_dir, Settings::default())
}

fn req<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn opts() -> Option<v1::CommandOptions> {
    Some(v1::CommandOptions::default())
}

/// A base64 Ed25519-sized key (the control plane only checks its shape).
fn key32() -> String {
    STANDARD.encode(Uuid::new_v4().as_bytes().repeat(2))
}

/// Clients for one server.
struct Clients {
    stores: StoresClient<Channel>,
    principals: PrincipalsClient<Channel>,
    secrets: SecretsClient<Channel>,
    reactor: ReactorClient<Channel>,
    admin: String,
}

impl Clients {
    async fn new(server: &ControlPlane) -> Clients {
        let channel = server.channel().await;
        Clients {
            stores: StoresClient::new(channel.clone()),
            principals: PrincipalsClient::new(channel.clone()),
            secrets: SecretsClient::new(channel.clone()),
            reactor: ReactorClient::new(channel),
            admin: server.admin_token().to_owned(),
        }
    }

    /// Creates a principal and returns a fresh token for it.
    async fn principal(&mut self, slug: &str, role: &str, stores: &[&str]) -> String {
        self.principals
            .create_user(req(
                v1::CreateUserRequest {
                    options: opts(),
                    slug: slug.into(),
                    role: role.into(),
                    stores: stores.iter().map(|s| s.to_string()).collect(),
                },
                &self.admin,
            ))
            .await
            .unwrap();
        self.token(slug, 0).await.token
    }

    async fn token(&mut self, slug: &str, ttl_seconds: u64) -> v1::IssueTokenReply {
        self.principals
            .issue_token(req(
                v1::IssueTokenRequest {
                    options: opts(),
                    slug: slug.into(),
                    ttl_seconds,
                },
                &self.admin,
            ))
            .await
            .unwrap()
            .into_inner()
    }

    async fn create_store(
        &mut self,
        name: &str,
        token: &str,
    ) -> Result<v1::CommandReply, tonic::Status> {
        self.stores
            .create_store(req(
                v1::CreateStoreRequest {
                    options: opts(),
                    name: name.into(),
                    kind: "file".into(),
                    reactor_key: key32(),
                    certificate: None,
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }
}

/// The `AccessDenied` events in the store file, as (actor, command) pairs.
fn access_denied(data_dir: &Path) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(data_dir.join("events.db")).unwrap();
    let mut q = db
        .prepare("SELECT data FROM events WHERE stream_id = 'access-denied' ORDER BY position")
        .unwrap();
    q.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|d| {
            let v: serde_json::Value = serde_json::from_str(&d.unwrap()).unwrap();
            (
                v["actor"].as_str().unwrap().to_owned(),
                v["command"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Asserts each (actor, command) refusal is recorded in the store file.
fn assert_denied(data_dir: &Path, expected: &[(&str, &str)]) {
    let denied = access_denied(data_dir);
    for expected in expected {
        assert!(
            denied
                .iter()
                .any(|(a, cmd)| (a.as_str(), cmd.as_str()) == *expected),
            "{expected:?} not recorded in {denied:?}"
        );
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> (Code, String) {
    let s = r.expect_err("expected a refusal");
    (s.code(), s.message().to_owned())
}

#[tokio::test]
async fn calls_without_a_valid_token_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut c = Clients::new(&server).await;
    let who = |token: Option<&str>| {
        let mut r = Request::new(v1::WhoAmIRequest {});
        if let Some(t) = token {
            r.metadata_mut().insert("authorization", t.parse().unwrap());
        }
        r
    };
    let (status, message) = code(c.principals.who_am_i(who(None)).await);
    assert_eq!(status, Code::Unauthenticated);
    assert!(message.contains("SEALPLANE_TOKEN"), "{message}");
    for bad in ["spt_abc", "Basic dXNlcjpwYXNz", "Bearer nope"] {
        let (status, message) = code(c.principals.who_am_i(who(Some(bad))).await);
        assert_eq!(status, Code::Unauthenticated, "{bad}");
        assert!(message.contains("Bearer spt_"), "{message}");
    }
    let forged = format!("Bearer spt_{}", "A".repeat(43));
    let (status, message) = code(c.principals.who_am_i(who(Some(&forged))).await);
    assert_eq!(status, Code::Unauthenticated);
    assert!(message.contains("unknown token"), "{message}");

    // A valid token works until it is revoked...
    let alice = c.principal("alice", "user", &[]).await;
    let me = c
        .principals
        .who_am_i(req(v1::WhoAmIRequest {}, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((me.slug.as_str(), me.role.as_str()), ("alice", "user"));
    c.principals
        .revoke_token(req(
            v1::RevokeTokenRequest {
                options: opts(),
                slug: "alice".into(),
                token_id: me.token_id,
            },
            &alice,
        ))
        .await
        .expect("a user may revoke its own token");
    let (status, message) = code(
        c.principals
            .who_am_i(req(v1::WhoAmIRequest {}, &alice))
            .await,
    );
    assert_eq!(status, Code::Unauthenticated);
    assert!(message.contains("revoked"), "{message}");

    // ...or until it expires.
    let short = c.token("alice", 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, message) = code(
        c.principals
            .who_am_i(req(v1::WhoAmIRequest {}, &short.token))
            .await,
    );
    assert_eq!(status, Code::Unauthenticated);
    assert!(message.contains("expired"), "{message}");
    drop(c); // an idle connection would hold the graceful shutdown
    server.stop();
}

#[tokio::test]
async fn each_role_gets_what_it_may_and_refusals_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut c = Clients::new(&server).await;
    let admin = c.admin.clone();
    c.create_store("local", &admin).await.unwrap();
    let alice = c.principal("alice", "user", &[]).await;
    let audrey = c.principal("audrey", "auditor", &[]).await;
    let r1 = c.principal("r1", "reactor", &["local"]).await;

    // A user may list stores but not manage stores or principals.
    let (status, message) = code(c.create_store("mine", &alice).await);
    assert_eq!(status, Code::PermissionDenied);
    assert!(message.contains("alice"), "{message}");
    let stores = c
        .stores
        .list_stores(req(v1::ListStoresRequest::default(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stores.stores.len(), 1);
    assert!(stores.stores[0].is_default);
    let (status, _) = code(
        c.principals
            .list_principals(req(v1::ListPrincipalsRequest::default(), &alice))
            .await,
    );
    assert_eq!(status, Code::PermissionDenied);
    let (status, _) = code(
        c.reactor
            .subscribe(req(
                v1::FeedRequest {
                    from_position: 0,
                    ..Default::default()
                },
                &alice,
            ))
            .await,
    );
    assert_eq!(status, Code::PermissionDenied);

    // An auditor reads everything and writes nothing.
    let principals = c
        .principals
        .list_principals(req(v1::ListPrincipalsRequest::default(), &audrey))
        .await
        .unwrap()
        .into_inner();
    let slugs: Vec<_> = principals
        .principals
        .iter()
        .map(|p| p.slug.as_str())
        .collect();
    assert_eq!(slugs, ["admin", "alice", "audrey", "r1"]);
    c.secrets
        .list_secrets(req(v1::ListSecretsRequest::default(), &audrey))
        .await
        .unwrap();
    let (status, _) = code(
        c.principals
            .create_group(req(
                v1::CreateGroupRequest {
                    options: opts(),
                    slug: "g".into(),
                },
                &audrey,
            ))
            .await,
    );
    assert_eq!(status, Code::PermissionDenied);

    // A reactor follows the feed and reads no secrets.
    let mut feed = c
        .reactor
        .subscribe(req(
            v1::FeedRequest {
                from_position: 0,
                ..Default::default()
            },
            &r1,
        ))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(
        first.message,
        Some(v1::feed_message::Message::CaughtUp(_))
    ));
    // A resume position beyond the log (a checkpoint from before a restore,
    // or from another log) would skip the events that later take those
    // positions: refused, not followed.
    let (status, message) = code(
        c.reactor
            .subscribe(req(
                v1::FeedRequest {
                    from_position: 1_000_000,
                    ..Default::default()
                },
                &r1,
            ))
            .await,
    );
    assert_eq!(status, Code::OutOfRange, "{message}");
    assert!(message.contains("1000000"), "{message}");
    assert!(message.contains("checkpoint"), "{message}");
    let (status, _) = code(
        c.secrets
            .list_secrets(req(v1::ListSecretsRequest::default(), &r1))
            .await,
    );
    assert_eq!(status, Code::PermissionDenied);

    assert_denied(
        dir.path(),
        &[
            ("alice", "CreateStore"),
            ("alice", "ListPrincipals"),
            ("alice", "Subscribe"),
            ("audrey", "CreateGroup"),
            ("r1", "ListSecrets"),
        ],
    );
    drop(c); // an idle connection would hold the graceful shutdown
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_commands_on_one_aggregate_resolve_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut c = Clients::new(&server).await;
    let admin = c.admin.clone();

    // Sixteen admins race to create the same store: exactly one wins.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let mut stores = c.stores.clone();
            let admin = admin.clone();
            tokio::spawn(async move {
                stores
                    .create_store(req(
                        v1::CreateStoreRequest {
                            options: opts(),
                            name: "race".into(),
                            kind: "file".into(),
                            reactor_key: key32(),
                            certificate: None,
                        },
                        &admin,
                    ))
                    .await
            })
        })
        .collect();
    let mut codes = vec![];
    for t in tasks {
        codes.push(
            t.await
                .unwrap()
                .map(|_| Code::Ok)
                .unwrap_or_else(|s| s.code()),
        );
    }
    assert_eq!(
        codes.iter().filter(|c| **c == Code::Ok).count(),
        1,
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .all(|c| matches!(c, Code::Ok | Code::AlreadyExists)),
        "{codes:?}"
    );

    // Sixteen different members added to one group at once all land,
    // through optimistic-concurrency retries on the group's stream.
    c.principals
        .create_group(req(
            v1::CreateGroupRequest {
                options: opts(),
                slug: "team".into(),
            },
            &admin,
        ))
        .await
        .unwrap();
    for i in 0..16 {
        c.principal(&format!("u{i}"), "user", &[]).await;
    }
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let mut principals = c.principals.clone();
            let admin = admin.clone();
            tokio::spawn(async move {
                principals
                    .add_member(req(
                        v1::MembershipRequest {
                            options: opts(),
                            group: "team".into(),
                            user: format!("u{i}"),
                        },
                        &admin,
                    ))
                    .await
            })
        })
        .collect();
    let mut last = 0;
    for t in tasks {
        let reply = t.await.unwrap().expect("every member lands").into_inner();
        last = last.max(reply.position);
    }
    let list = c
        .principals
        .list_principals(req(
            v1::ListPrincipalsRequest {
                options: Some(v1::QueryOptions { min_position: last }),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let team = list.principals.iter().find(|p| p.slug == "team").unwrap();
    assert_eq!(
        team.related.len(),
        16,
        "read your writes: all members visible"
    );
    assert!(list.next_page_token.is_empty(), "one page holds them all");
    // The same principals page by page, 3 at a time, in slug order.
    let (mut paged, mut token) = (vec![], String::new());
    loop {
        let page = c
            .principals
            .list_principals(req(
                v1::ListPrincipalsRequest {
                    options: Some(v1::QueryOptions { min_position: last }),
                    page_size: 3,
                    page_token: token,
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.principals.len() <= 3);
        paged.extend(page.principals.into_iter().map(|p| p.slug));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let all: Vec<String> = list.principals.iter().map(|p| p.slug.clone()).collect();
    assert!(all.len() > 3, "{all:?}");
    assert_eq!(paged, all);
    let bad = c
        .principals
        .list_principals(req(
            v1::ListPrincipalsRequest {
                page_token: "../not a slug".into(),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    drop(c); // an idle connection would hold the graceful shutdown
    server.stop();
}

#[tokio::test]
async fn a_retried_command_id_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut c = Clients::new(&server).await;
    let admin = c.admin.clone();
    let options = Some(v1::CommandOptions {
        command_id: Uuid::new_v4().to_string(),
        correlation_id: String::new(),
    });
    let group = |options: Option<v1::CommandOptions>| v1::CreateGroupRequest {
        options,
        slug: "ops".into(),
    };
    let first = c
        .principals
        .create_group(req(group(options.clone()), &admin))
        .await
        .unwrap()
        .into_inner();
    let again = c
        .principals
        .create_group(req(group(options), &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.events, 1);
    assert_eq!(again.events, 0, "nothing applied twice");
    assert_eq!(
        again.position, first.position,
        "the retry reports the original write"
    );
    // A new command id for the same thing is a new command, and refused.
    let (status, _) = code(c.principals.create_group(req(group(opts()), &admin)).await);
    assert_eq!(status, Code::AlreadyExists);
    drop(c); // an idle connection would hold the graceful shutdown
    server.stop();
}

/// The streams holding an event caused by `command_id`, in log order.
fn streams_caused_by(data_dir: &Path, command_id: &str) -> Vec<String> {
    let db = rusqlite::Connection::open(data_dir.join("events.db")).unwrap();
    let mut q = db
        .prepare("SELECT stream_id, metadata FROM events ORDER BY position")
        .unwrap();
    q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .filter(|(_, m)| {
            let v: serde_json::Value = serde_json::from_str(m).unwrap();
            v["causation_id"].as_str() == Some(command_id)
        })
        .map(|(stream, _)| stream)
        .collect()
}

/// Issue 11: a command id is not a ticket. Bob, once granted and since
/// revoked, reuses the command id of the grant for an upload key: that is
/// another principal's, another command, not a retry, and refused.
#[tokio::test]
async fn a_command_id_reused_by_another_principal_for_another_command_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut c = Clients::new(&server).await;
    let admin = c.admin.clone();
    c.create_store("local", &admin).await.unwrap();
    let alice = c.principal("alice", "user", &[]).await;
    let bob = c.principal("bob", "user", &[]).await;
    let with_id = |id: &str| {
        Some(v1::CommandOptions {
            command_id: id.into(),
            correlation_id: String::new(),
        })
    };
    let request_key = |options: Option<v1::CommandOptions>| v1::RequestUploadKeyRequest {
        options,
        uri: "local://alice/db".into(),
        purpose: v1::Purpose::Put as i32,
        adopt: false,
    };
    // alice owns the secret (her first put creates it).
    let first = Uuid::new_v4().to_string();
    c.secrets
        .request_upload_key(req(request_key(with_id(&first)), &alice))
        .await
        .unwrap();
    // A genuine retry of her call is still idempotent on both streams.
    let again = c
        .secrets
        .request_upload_key(req(request_key(with_id(&first)), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.request_id, first);
    // She grants bob the writers list with command id X, then revokes him.
    let x = Uuid::new_v4().to_string();
    let change = |grant: bool, options| v1::ChangeAccessRequest {
        options,
        uri: "local://alice/db".into(),
        list: "writers".into(),
        slug: "bob".into(),
        grant,
    };
    c.secrets
        .change_access(req(change(true, with_id(&x)), &alice))
        .await
        .unwrap();
    c.secrets
        .change_access(req(change(false, opts()), &alice))
        .await
        .unwrap();
    assert!(access_denied(dir.path()).is_empty());
    let caused_by_x = streams_caused_by(dir.path(), &x);
    assert_eq!(caused_by_x, ["secret-local://alice/db"]);

    // bob asks for an upload key with X: not a retry of anything of his.
    let (status, message) = code(
        c.secrets
            .request_upload_key(req(request_key(with_id(&x)), &bob))
            .await,
    );
    assert!(
        matches!(status, Code::InvalidArgument | Code::AlreadyExists),
        "{status:?}: {message}"
    );
    assert!(
        message.contains(&format!(
            "command id {x} was already used for another command"
        )),
        "{message}"
    );
    assert_eq!(
        streams_caused_by(dir.path(), &x),
        ["secret-local://alice/db", "access-denied"],
        "no upload request for bob, and his attempt recorded"
    );
    assert_eq!(
        access_denied(dir.path()),
        [("bob".to_owned(), "RequestUploadKey".to_owned())]
    );
    drop(c); // an idle connection would hold the graceful shutdown
    server.stop();
}

/// Reads upload status messages until `state`.
async fn until_state(
    watch: &mut tonic::Streaming<v1::UploadStatus>,
    state: v1::UploadState,
) -> v1::UploadStatus {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("watch stalled")
            .expect("watch ended")
            .unwrap();
        if next.state == state as i32 {
            return next;
        }
    }
}

#[tokio::test]
async fn the_upload_protocol_through_the_api_with_its_bad_cases() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut c = Clients::new(&server).await;
    let admin = c.admin.clone();
    c.create_store("local", &admin).await.unwrap();
    c.create_store("other", &admin).await.unwrap();
    let alice = c.principal("alice", "user", &[]).await;
    let bob = c.principal("bob", "user", &[]).await;
    let r1 = c.principal("r1", "reactor", &["local"]).await;
    let r2 = c.principal("r2", "reactor", &["other"]).await;
    let request_key = |uri: &str| v1::RequestUploadKeyRequest {
        options: opts(),
        uri: uri.into(),
        purpose: v1::Purpose::Put as i32,
        adopt: false,
    };

    // 1. alice asks for a key; a bare path goes to the default store.
    let key = c
        .secrets
        .request_upload_key(req(request_key("alice/db"), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key.uri, "local://alice/db");
    let mut watch = c
        .secrets
        .watch_upload(req(
            v1::WatchUploadRequest {
                request_id: key.request_id.clone(),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    until_state(&mut watch, v1::UploadState::KeyRequested).await;

    // Only the store's reactor may provide the key.
    let provide = |token: &str| {
        req(
            v1::ProvideKeyRequest {
                options: opts(),
                request_id: key.request_id.clone(),
                public_key: key32(),
                signature: STANDARD.encode([7u8; 64]),
                expires_at: key.expires_at.clone(),
            },
            token,
        )
    };
    let (status, _) = code(c.reactor.provide_key(provide(&r2)).await);
    assert_eq!(status, Code::PermissionDenied);
    c.reactor.provide_key(provide(&r1)).await.unwrap();
    let provided = until_state(&mut watch, v1::UploadState::KeyProvided).await;
    assert_eq!(STANDARD.decode(&provided.public_key).unwrap().len(), 32);

    // 4. Only alice may upload, and only once.
    let upload = |token: &str, bytes: usize| {
        req(
            v1::UploadSecretRequest {
                options: opts(),
                request_id: key.request_id.clone(),
                ciphertext: vec![0xAB; bytes],
            },
            token,
        )
    };
    let (status, _) = code(c.secrets.upload_secret(upload(&bob, 100)).await);
    assert_eq!(status, Code::PermissionDenied);
    let (status, message) = code(c.secrets.upload_secret(upload(&alice, 1_000_000)).await);
    assert_eq!(status, Code::InvalidArgument);
    assert!(message.contains("limit"), "{message}");
    c.secrets.upload_secret(upload(&alice, 100)).await.unwrap();
    until_state(&mut watch, v1::UploadState::UploadRequested).await;
    let (status, _) = code(c.secrets.upload_secret(upload(&alice, 100)).await);
    assert_eq!(status, Code::FailedPrecondition);

    // The reactor's feed carried the request and the ciphertext; the other
    // reactor's feed carried none of it.
    let types = |token: String| {
        let mut reactor = c.reactor.clone();
        async move {
            let mut feed = reactor
                .subscribe(req(
                    v1::FeedRequest {
                        from_position: 0,
                        ..Default::default()
                    },
                    &token,
                ))
                .await
                .unwrap()
                .into_inner();
            let mut types = vec![];
            while let Some(Ok(m)) = tokio::time::timeout(Duration::from_secs(10), feed.next())
                .await
                .unwrap()
            {
                use v1::feed_message::Message;
                match m.message {
                    Some(Message::KeyRequested(k)) => {
                        assert_eq!(k.uri, "local://alice/db");
                        types.push("SecretUploadKeyRequested".to_string())
                    }
                    Some(Message::KeyProvided(_)) => {
                        types.push("SecretUploadKeyProvided".to_string())
                    }
                    Some(Message::UploadRequested(u)) => {
                        assert_eq!(
                            u.ciphertext,
                            vec![0xAB; 100],
                            "the sealed box, byte for byte"
                        );
                        types.push("SecretUploadRequested".to_string())
                    }
                    Some(Message::Checkpoint(_)) => {}
                    _ => break,
                }
            }
            types
        }
    };
    let seen = types(r1.clone()).await;
    assert!(
        seen.contains(&"SecretUploadKeyRequested".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"SecretUploadRequested".to_string()),
        "{seen:?}"
    );
    assert!(
        types(r2.clone()).await.is_empty(),
        "another store's reactor sees nothing"
    );

    // 5. The reactor reports; alice sees the version and its hash.
    let hash = format!("hmac-sha256:k1:{}", "ab".repeat(32));
    let done = c
        .reactor
        .report_uploaded(req(
            v1::ReportUploadedRequest {
                options: opts(),
                request_id: key.request_id.clone(),
                version: 1,
                hash: hash.clone(),
                key_hashes: HashMap::from([(
                    "password".to_string(),
                    format!("hmac-sha256:k1:{}", "cd".repeat(32)),
                )]),
                upstream_ref: "file:alice/db@1".into(),
            },
            &r1,
        ))
        .await
        .unwrap()
        .into_inner();
    let uploaded = until_state(&mut watch, v1::UploadState::Uploaded).await;
    assert_eq!(
        (uploaded.version, uploaded.hash.as_str()),
        (1, hash.as_str())
    );
    let secret = c
        .secrets
        .get_secret(req(
            v1::GetSecretRequest {
                options: Some(v1::QueryOptions {
                    min_position: done.position,
                }),
                uri: "local://alice/db".into(),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(secret.creator, "alice");
    assert_eq!(secret.versions.len(), 1);
    assert_eq!(secret.versions[0].hash, hash);
    assert_eq!(secret.versions[0].by, "alice");
    let mine = c
        .secrets
        .list_secrets(req(v1::ListSecretsRequest::default(), &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.secrets.len(), 1);
    let theirs = c
        .secrets
        .list_secrets(req(v1::ListSecretsRequest::default(), &bob))
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.secrets.is_empty(), "bob is not a reader");
    let (status, _) = code(
        c.secrets
            .get_secret(req(
                v1::GetSecretRequest {
                    options: None,
                    uri: "local://alice/db".into(),
                },
                &bob,
            ))
            .await,
    );
    // Answered as for a secret that does not exist: no existence oracle.
    assert_eq!(status, Code::NotFound);

    // Bad requests for a key.
    for (uri, token, expected) in [
        ("local://alice/../etc", &alice, Code::InvalidArgument),
        ("Local://alice/x", &alice, Code::InvalidArgument),
        ("nowhere://alice/x", &alice, Code::NotFound),
        ("local://alice/x", &bob, Code::PermissionDenied),
        ("local://bob/x", &r1, Code::PermissionDenied),
    ] {
        let (status, message) = code(
            c.secrets
                .request_upload_key(req(request_key(uri), token))
                .await,
        );
        assert_eq!(status, expected, "{uri}: {message}");
    }
    c.stores
        .disable_store(req(
            v1::StoreCommand {
                options: opts(),
                name: "other".into(),
            },
            &admin,
        ))
        .await
        .unwrap();
    let (status, message) = code(
        c.secrets
            .request_upload_key(req(request_key("other://alice/x"), &alice))
            .await,
    );
    assert_eq!(status, Code::FailedPrecondition);
    assert!(message.contains("sealctl enable store other"), "{message}");

    assert_denied(
        dir.path(),
        &[
            ("bob", "UploadSecret"),
            ("r2", "ProvideKey"),
            ("bob", "GetSecret"),
        ],
    );
    drop(c); // an idle connection would hold the graceful shutdown
    server.stop();
}

#[tokio::test]
async fn a_restart_rebuilds_the_read_model_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut c = Clients::new(&server).await;
    let admin = c.admin.clone();
    c.create_store("local", &admin).await.unwrap();
    c.create_store("vault-prod", &admin).await.unwrap();
    c.stores
        .set_default_store(req(
            v1::StoreCommand {
                options: opts(),
                name: "vault-prod".into(),
            },
            &admin,
        ))
        .await
        .unwrap();
    c.stores
        .disable_store(req(
            v1::StoreCommand {
                options: opts(),
                name: "local".into(),
            },
            &admin,
        ))
        .await
        .unwrap();
    c.principal("alice", "user", &[]).await;
    c.principals
        .create_group(req(
            v1::CreateGroupRequest {
                options: opts(),
                slug: "team".into(),
            },
            &admin,
        ))
        .await
        .unwrap();
    c.principals
        .add_member(req(
            v1::MembershipRequest {
                options: opts(),
                group: "team".into(),
                user: "alice".into(),
            },
            &admin,
        ))
        .await
        .unwrap();
    let snapshot = |mut c: Clients| async move {
        let admin = c.admin.clone();
        let mut stores = c
            .stores
            .list_stores(req(v1::ListStoresRequest::default(), &admin))
            .await
            .unwrap()
            .into_inner();
        let mut principals = c
            .principals
            .list_principals(req(v1::ListPrincipalsRequest::default(), &admin))
            .await
            .unwrap()
            .into_inner();
        stores.read = None;
        principals.read = None;
        (stores, principals)
    };
    let before = snapshot(c).await;
    server.stop();

    let mut server = start(dir.path());
    let after = snapshot(Clients::new(&server).await).await;
    assert_eq!(after, before);
    assert!(
        after
            .0
            .stores
            .iter()
            .any(|s| s.name == "vault-prod" && s.is_default)
    );
    assert!(
        after
            .0
            .stores
            .iter()
            .any(|s| s.name == "local" && !s.enabled)
    );
    server.stop();
}

#[test]
fn serve_refuses_plaintext_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sealplane.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"0.0.0.0:0\"\n[event_store]\nbackend = \"embedded\"\npath = \"{}\"\n",
            dir.path().join("events.db").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin("sealplane"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without TLS"), "{stderr}");
    assert!(
        !dir.path().join("events.db").exists(),
        "nothing was created"
    );
}

/// Every entry of one audit read (its stream ends at the read's own record).
async fn audit_log(
    channel: &Channel,
    token: &str,
    request: v1::AuditLogRequest,
) -> Result<Vec<v1::AuditEntry>, tonic::Status> {
    let mut client = v1::audit_client::AuditClient::new(channel.clone());
    let mut stream = client.log(req(request, token)).await?.into_inner();
    let mut entries = vec![];
    while let Some(entry) = stream.message().await? {
        entries.push(entry);
    }
    Ok(entries)
}

#[tokio::test]
async fn only_admins_and_auditors_read_the_audit_log_filtered_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut c = Clients::new(&server).await;
    let channel = server.channel().await;
    let alice = c.principal("alice", "user", &[]).await;
    let carol = c.principal("carol", "auditor", &[]).await;
    let admin = c.admin.clone();
    c.create_store("local", &admin).await.unwrap();

    // A user is refused, and the refusal is an event.
    let (status, message) = code(audit_log(&channel, &alice, v1::AuditLogRequest::default()).await);
    assert_eq!(status, Code::PermissionDenied, "{message}");
    assert!(message.contains("needs admin or auditor"), "{message}");
    assert_denied(dir.path(), &[("alice", "AuditLog")]);

    // Filters apply on the server: only what alice did...
    let by_alice = audit_log(
        &channel,
        &carol,
        v1::AuditLogRequest {
            actor: "alice".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let lines: Vec<(&str, &str)> = by_alice
        .iter()
        .map(|e| (e.event_type.as_str(), e.details.as_str()))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].0, "AccessDenied");
    assert!(
        lines[0]
            .1
            .starts_with("alice was refused AuditLog on audit log: "),
        "{lines:?}"
    );
    // ...one store's events, one type, and a position range.
    let of_store = audit_log(
        &channel,
        &carol,
        v1::AuditLogRequest {
            store: "local".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let types: Vec<&str> = of_store.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["StoreCreated", "DefaultStoreSet"], "{of_store:?}");
    let created = &of_store[0];
    assert_eq!(
        (
            created.event_type.as_str(),
            created.actor.as_str(),
            created.target.as_str(),
            created.store.as_str()
        ),
        ("StoreCreated", "admin", "store local", "local")
    );
    let users = audit_log(
        &channel,
        &admin,
        v1::AuditLogRequest {
            event_types: vec!["UserCreated".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let created: Vec<&str> = users.iter().map(|e| e.principal.as_str()).collect();
    assert_eq!(created, ["admin", "alice", "carol"]);
    let point = |p: u64| {
        Some(v1::LogPoint {
            point: Some(v1::log_point::Point::Position(p)),
        })
    };
    let one = audit_log(
        &channel,
        &carol,
        v1::AuditLogRequest {
            since: point(created_position(&users, "alice")),
            until: point(created_position(&users, "alice")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].details, "admin created user alice with role user");

    // Bad filters are refused with a sentence, before anything is recorded.
    for (bad, wanted) in [
        (
            v1::AuditLogRequest {
                event_types: vec!["SecretPut".into()],
                ..Default::default()
            },
            "no event type `SecretPut`",
        ),
        (
            v1::AuditLogRequest {
                follow: true,
                until: point(3),
                ..Default::default()
            },
            "cannot be combined with `until`",
        ),
        (
            v1::AuditLogRequest {
                since: Some(v1::LogPoint {
                    point: Some(v1::log_point::Point::Time("yesterday".into())),
                }),
                ..Default::default()
            },
            "neither a log position nor an RFC 3339 time",
        ),
        (
            v1::AuditLogRequest {
                actor: "Not A Slug".into(),
                ..Default::default()
            },
            "",
        ),
    ] {
        let (status, message) = code(audit_log(&channel, &carol, bad).await);
        assert_eq!(status, Code::InvalidArgument, "{message}");
        assert!(message.contains(wanted), "{message}");
    }

    // Each read is itself an event, with its reader and filters; the
    // unfiltered read ends with its own record.
    let all = audit_log(&channel, &carol, v1::AuditLogRequest::default())
        .await
        .unwrap();
    let last = all.last().unwrap();
    assert_eq!(
        (last.event_type.as_str(), last.details.as_str()),
        ("AuditLogRead", "carol read the audit log (every event)")
    );
    let db = rusqlite::Connection::open(dir.path().join("events.db")).unwrap();
    let reads: Vec<String> = db
        .prepare("SELECT data FROM events WHERE stream_id = 'audit-reads' ORDER BY position")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(reads.len(), 5, "{reads:#?}");
    let first: serde_json::Value = serde_json::from_str(&reads[0]).unwrap();
    assert_eq!(first["reader"], "carol");
    assert_eq!(first["role"], "auditor");
    assert_eq!(first["filters"], serde_json::json!({"actor": "alice"}));
}

fn created_position(entries: &[v1::AuditEntry], principal: &str) -> u64 {
    entries
        .iter()
        .find(|e| e.principal == principal)
        .map(|e| e.position)
        .unwrap()
}

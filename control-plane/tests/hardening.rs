//! The API as a misbehaving client meets it (issue 11): inputs that used
//! to panic a handler, an existence oracle, a grant to nobody. The real
//! services, called in-process with bearer tokens, over a memory store.

use std::sync::Arc;

use chrono::Duration as TimeDelta;
use sealplane_control_plane::api::principals::PrincipalsApi;
use sealplane_control_plane::api::secrets::SecretsApi;
use sealplane_control_plane::api::stores::StoresApi;
use sealplane_control_plane::application::App;
use sealplane_control_plane::bootstrap;
use sealplane_control_plane::config::Limits;
use sealplane_control_plane::domain::names::Slug;
use sealplane_control_plane::server;
use sealplane_event_store::{EventStore, MemoryStore, Position};
use sealplane_proto::v1;
use sealplane_proto::v1::principals_server::Principals;
use sealplane_proto::v1::secrets_server::Secrets;
use sealplane_proto::v1::stores_server::Stores;
use tonic::{Code, Request};

fn req<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

struct Api {
    /// Kept: dropping it would tell the streams the server shuts down.
    _assembled: server::Assembled,
    app: App,
    store: Arc<dyn EventStore>,
    admin: String,
}

impl Api {
    async fn new() -> Api {
        Api::with(Limits::default()).await
    }

    async fn with(limits: Limits) -> Api {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let assembled = server::app(store.clone(), limits).await.unwrap();
        let app = assembled.app.clone();
        let admin = bootstrap::init(&app, &Slug::parse("admin").unwrap(), TimeDelta::hours(1))
            .await
            .unwrap()
            .expose()
            .to_owned();
        Api {
            _assembled: assembled,
            app,
            store,
            admin,
        }
    }

    async fn user(&self, slug: &str, role: &str) -> String {
        let principals = PrincipalsApi::new(self.app.clone());
        principals
            .create_user(req(
                v1::CreateUserRequest {
                    options: None,
                    slug: slug.into(),
                    role: role.into(),
                    stores: vec![],
                },
                &self.admin,
            ))
            .await
            .unwrap();
        principals
            .issue_token(req(
                v1::IssueTokenRequest {
                    options: None,
                    slug: slug.into(),
                    ttl_seconds: 3600,
                },
                &self.admin,
            ))
            .await
            .unwrap()
            .into_inner()
            .token
    }

    async fn denials(&self) -> Vec<String> {
        self.store
            .read_all(Position::START, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type.as_str() == "AccessDenied")
            .map(|e| e.data.as_str().to_owned())
            .collect()
    }
}

#[tokio::test]
async fn a_huge_token_lifetime_is_refused_not_a_panic() {
    let api = Api::new().await;
    let alice = api.user("alice", "user").await;
    let principals = PrincipalsApi::new(api.app.clone());
    for (ttl, token) in [
        (u64::MAX, &api.admin),
        (1_000_000_000_000_000, &api.admin),
        (1_000_000_000_000_000, &alice),
    ] {
        let status = principals
            .issue_token(req(
                v1::IssueTokenRequest {
                    options: None,
                    slug: "alice".into(),
                    ttl_seconds: ttl,
                },
                token,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{ttl}: {status:?}");
        assert!(status.message().contains("ttl_seconds is too large"));
    }
}

#[tokio::test]
async fn someone_elses_secret_answers_exactly_as_a_missing_one() {
    let api = Api::new().await;
    // alice's first write creates her secret.
    let alice = alice_with_a_secret(&api).await;
    let bob = api.user("bob", "user").await;
    let secrets = SecretsApi::new(api.app.clone());
    let get = |uri: &str, token: &str| {
        secrets.get_secret(req(
            v1::GetSecretRequest {
                options: None,
                uri: uri.into(),
            },
            token,
        ))
    };
    assert!(get("local://alice/db", &alice).await.is_ok());
    let hidden = get("local://alice/db", &bob).await.unwrap_err();
    let missing = get("local://alice/nothing", &bob).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(hidden.code(), missing.code());
    assert_eq!(
        hidden.message().replace("alice/db", "X"),
        missing.message().replace("alice/nothing", "X")
    );
    // The refusal is still recorded, for auditors.
    let denials = api.denials().await;
    assert!(
        denials.iter().any(|d| d.contains("`bob` is not a reader")),
        "{denials:?}"
    );
}

#[tokio::test]
async fn a_grant_to_a_slug_nobody_has_is_refused() {
    let api = Api::new().await;
    let alice = alice_with_a_secret(&api).await;
    let secrets = SecretsApi::new(api.app.clone());
    let grant = |slug: &str| {
        secrets.change_access(req(
            v1::ChangeAccessRequest {
                options: None,
                uri: "local://alice/db".into(),
                list: "readers".into(),
                slug: slug.into(),
                grant: true,
            },
            &alice,
        ))
    };
    // A later principal named `carol` must not inherit a grant made now.
    let status = grant("carol").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("no user or group `carol`"),
        "{status:?}"
    );
    api.user("carol", "user").await;
    grant("carol").await.unwrap();
}

fn base64_key() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([7u8; 32])
}

/// The next item of a stream, within `secs` seconds.
async fn next_within<S, T>(stream: &mut S, secs: u64) -> Option<Result<T, tonic::Status>>
where
    S: tokio_stream::Stream<Item = Result<T, tonic::Status>> + Unpin,
{
    use tokio_stream::StreamExt as _;
    tokio::time::timeout(std::time::Duration::from_secs(secs), stream.next())
        .await
        .expect("the stream stayed silent")
}

#[tokio::test]
async fn revoking_a_token_ends_its_feed_and_its_watches_within_seconds() {
    use sealplane_control_plane::api::reactor::ReactorApi;
    use sealplane_proto::v1::reactor_server::Reactor;

    let api = Api::new().await;
    let principals = PrincipalsApi::new(api.app.clone());
    principals
        .create_user(req(
            v1::CreateUserRequest {
                options: None,
                slug: "r1".into(),
                role: "reactor".into(),
                stores: vec!["local".into()],
            },
            &api.admin,
        ))
        .await
        .unwrap();
    let issued = principals
        .issue_token(req(
            v1::IssueTokenRequest {
                options: None,
                slug: "r1".into(),
                ttl_seconds: 3600,
            },
            &api.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut feed = ReactorApi::new(api.app.clone())
        .subscribe(req(
            v1::FeedRequest {
                from_position: 0,
                ..Default::default()
            },
            &issued.token,
        ))
        .await
        .unwrap()
        .into_inner();
    let first = next_within(&mut feed, 5).await.unwrap().unwrap();
    assert!(matches!(
        first.message,
        Some(v1::feed_message::Message::CaughtUp(_))
    ));

    // alice watches her own upload request.
    let alice = api.user("alice", "user").await;
    local_store(&api).await;
    let secrets = SecretsApi::new(api.app.clone());
    let key = key_request(&api, &alice, "local://alice/db", v1::Purpose::Put)
        .await
        .unwrap();
    let mut watch = secrets
        .watch_upload(req(
            v1::WatchUploadRequest {
                request_id: key.request_id.clone(),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    next_within(&mut watch, 5).await.unwrap().unwrap();

    // The admin revokes both tokens.
    let whoami = |token: &str| principals.who_am_i(req(v1::WhoAmIRequest::default(), token));
    let alice_token = whoami(&alice).await.unwrap().into_inner().token_id;
    for (slug, token_id) in [("r1", issued.token_id.clone()), ("alice", alice_token)] {
        principals
            .revoke_token(req(
                v1::RevokeTokenRequest {
                    options: None,
                    slug: slug.into(),
                    token_id,
                },
                &api.admin,
            ))
            .await
            .unwrap();
    }
    // The feed may still deliver what the revocation itself wrote; then it
    // ends, refused.
    let ended = loop {
        match next_within(&mut feed, 5).await {
            Some(Ok(_)) => continue,
            Some(Err(status)) => break status,
            None => panic!("the feed ended without saying why"),
        }
    };
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    assert!(ended.message().contains("revoked"), "{ended:?}");
    let ended = loop {
        match next_within(&mut watch, 5).await {
            Some(Ok(_)) => continue,
            Some(Err(status)) => break status,
            None => panic!("the watch ended without saying why"),
        }
    };
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
}

#[tokio::test]
async fn a_read_model_that_stopped_following_the_log_authenticates_nobody() {
    let api = Api::new().await;
    let principals = PrincipalsApi::new(api.app.clone());
    principals
        .who_am_i(req(v1::WhoAmIRequest::default(), &api.admin))
        .await
        .unwrap();
    // The store closes under the projector (as a failed store would).
    api.store.close().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        match principals
            .who_am_i(req(v1::WhoAmIRequest::default(), &api.admin))
            .await
        {
            Err(status) => break status,
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Ok(_) => panic!("a frozen read model still authenticates"),
        }
    };
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("stopped following"), "{status:?}");
}

/// A store `local` and a secret `local://alice/db` alice created.
async fn alice_with_a_secret(api: &Api) -> String {
    let alice = api.user("alice", "user").await;
    local_store(api).await;
    key_request(api, &alice, "local://alice/db", v1::Purpose::Put)
        .await
        .unwrap();
    alice
}

/// Creates the file store `local`.
async fn local_store(api: &Api) {
    StoresApi::new(api.app.clone())
        .create_store(req(
            v1::CreateStoreRequest {
                options: None,
                name: "local".into(),
                kind: "file".into(),
                reactor_key: base64_key(),
                certificate: None,
            },
            &api.admin,
        ))
        .await
        .unwrap();
}

async fn key_request(
    api: &Api,
    token: &str,
    uri: &str,
    purpose: v1::Purpose,
) -> Result<v1::RequestUploadKeyReply, tonic::Status> {
    SecretsApi::new(api.app.clone())
        .request_upload_key(req(
            v1::RequestUploadKeyRequest {
                options: None,
                uri: uri.into(),
                purpose: purpose as i32,
                adopt: false,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn one_principal_cannot_hold_unbounded_upload_requests() {
    let api = Api::with(Limits {
        max_open_uploads_per_principal: 3,
        ..Limits::default()
    })
    .await;
    let alice = alice_with_a_secret(&api).await; // one open already
    for n in 1..=2 {
        key_request(
            &api,
            &alice,
            &format!("local://alice/s{n}"),
            v1::Purpose::Put,
        )
        .await
        .unwrap();
    }
    let status = key_request(&api, &alice, "local://alice/s3", v1::Purpose::Put)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("limit is 3"), "{status:?}");
    // Others are not held back by alice.
    let bob = api.user("bob", "user").await;
    key_request(&api, &bob, "local://bob/x", v1::Purpose::Put)
        .await
        .unwrap();
}

#[tokio::test]
async fn one_principal_cannot_hold_unbounded_streams() {
    let api = Api::with(Limits {
        max_streams_per_principal: 2,
        ..Limits::default()
    })
    .await;
    let alice = alice_with_a_secret(&api).await;
    let request = key_request(&api, &alice, "local://alice/w", v1::Purpose::Put)
        .await
        .unwrap();
    let secrets = SecretsApi::new(api.app.clone());
    let watch = || {
        secrets.watch_upload(req(
            v1::WatchUploadRequest {
                request_id: request.request_id.clone(),
            },
            &alice,
        ))
    };
    let first = watch().await.unwrap();
    let _second = watch().await.unwrap();
    let status = watch().await.err().expect("a third stream is refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Closing one frees its place.
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match watch().await {
            Ok(_) => break,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(status) => panic!("a closed stream kept its place: {status:?}"),
        }
    }
}

#[tokio::test]
async fn refusals_cannot_fill_the_log() {
    let api = Api::with(Limits {
        max_denials_per_minute: 3,
        ..Limits::default()
    })
    .await;
    let bob = api.user("bob", "user").await;
    let principals = PrincipalsApi::new(api.app.clone());
    let mut codes = vec![];
    for _ in 0..6 {
        let status = principals
            .list_principals(req(v1::ListPrincipalsRequest::default(), &bob))
            .await
            .unwrap_err();
        codes.push(status.code());
    }
    assert_eq!(
        codes,
        [
            Code::PermissionDenied,
            Code::PermissionDenied,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::ResourceExhausted,
            Code::ResourceExhausted
        ]
    );
    assert_eq!(
        api.denials().await.len(),
        3,
        "only the first three are recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn the_verification_limit_holds_under_concurrency() {
    let api = Arc::new(
        Api::with(Limits {
            max_verifications_per_minute: 2,
            ..Limits::default()
        })
        .await,
    );
    let alice = alice_with_a_secret(&api).await;
    let attempts: Vec<_> = (0..50)
        .map(|_| {
            let (api, alice) = (api.clone(), alice.clone());
            tokio::spawn(async move {
                key_request(&api, &alice, "local://alice/db", v1::Purpose::Verify).await
            })
        })
        .collect();
    let mut granted = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => granted += 1,
            Err(status) => assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}"),
        }
    }
    assert_eq!(granted, 2, "at most the limit succeed");
}

#[tokio::test]
async fn knocking_without_a_valid_token_is_slowed_down() {
    let api = Api::with(Limits {
        max_denials_per_minute: 5,
        ..Limits::default()
    })
    .await;
    let principals = PrincipalsApi::new(api.app.clone());
    let mut codes = vec![];
    for _ in 0..8 {
        let status = principals
            .who_am_i(req(
                v1::WhoAmIRequest::default(),
                &format!("spt_{}", "x".repeat(43)),
            ))
            .await
            .unwrap_err();
        codes.push(status.code());
    }
    assert_eq!(codes[..5], [Code::Unauthenticated; 5]);
    assert_eq!(codes[5..], [Code::ResourceExhausted; 3]);
    // A valid token is still served.
    principals
        .who_am_i(req(v1::WhoAmIRequest::default(), &api.admin))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_removed_user_loses_its_tokens_and_groups_and_its_slug_stays_taken() {
    let api = Api::new().await;
    let alice = api.user("alice", "user").await;
    let principals = PrincipalsApi::new(api.app.clone());
    principals
        .create_group(req(
            v1::CreateGroupRequest {
                options: None,
                slug: "payments".into(),
            },
            &api.admin,
        ))
        .await
        .unwrap();
    principals
        .add_member(req(
            v1::MembershipRequest {
                options: None,
                group: "payments".into(),
                user: "alice".into(),
            },
            &api.admin,
        ))
        .await
        .unwrap();
    principals
        .who_am_i(req(v1::WhoAmIRequest::default(), &alice))
        .await
        .unwrap();
    let remove = |token: &str| {
        principals.remove_user(req(
            v1::RemoveUserRequest {
                options: None,
                slug: "alice".into(),
            },
            token,
        ))
    };
    // Only admins remove users.
    assert_eq!(
        remove(&alice).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    remove(&api.admin).await.unwrap();

    let status = principals
        .who_am_i(req(v1::WhoAmIRequest::default(), &alice))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let listed = principals
        .list_principals(req(v1::ListPrincipalsRequest::default(), &api.admin))
        .await
        .unwrap()
        .into_inner();
    let payments = listed
        .principals
        .iter()
        .find(|p| p.slug == "payments")
        .unwrap();
    assert!(payments.related.is_empty(), "{payments:?}");
    // The slug is never reused, so nobody inherits what alice was granted.
    let again = principals
        .create_user(req(
            v1::CreateUserRequest {
                options: None,
                slug: "alice".into(),
                role: "user".into(),
                stores: vec![],
            },
            &api.admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    assert!(again.message().contains("removed user"), "{again:?}");
    // Removing again changes nothing.
    remove(&api.admin).await.unwrap();
}

#[tokio::test]
async fn refusals_decided_by_an_aggregate_cannot_fill_the_log_either() {
    let api = Api::with(Limits {
        max_denials_per_minute: 3,
        ..Limits::default()
    })
    .await;
    alice_with_a_secret(&api).await;
    let bob = api.user("bob", "user").await;
    for _ in 0..6 {
        let status = key_request(&api, &bob, "local://alice/db", v1::Purpose::Put)
            .await
            .unwrap_err();
        // Still refused every time...
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    // ...but recorded only up to the limit.
    let bobs = api
        .denials()
        .await
        .into_iter()
        .filter(|d| d.contains("\"actor\":\"bob\""))
        .count();
    assert_eq!(bobs, 3);
}

/// Gives `uri` (created by a key request) a first version, as its reactor
/// would.
async fn with_a_version(api: &Api, uri: &str) {
    use sealplane_control_plane::command::CommandEnvelope;
    use sealplane_control_plane::domain::names::{SecretUri, StoreName};
    use sealplane_control_plane::domain::secret::{Secret, SecretCommand};
    use sealplane_control_plane::domain::{Actor, Context, Role};
    let uri = SecretUri::parse(uri).unwrap();
    let reactor = Actor {
        slug: Slug::parse("reactor-0").unwrap(),
        role: Role::Reactor,
        groups: vec![],
        stores: vec![StoreName::parse("local").unwrap()],
    };
    let hash = |b: &str| format!("hmac-sha256-v2:e2e:{}", b.repeat(32));
    let record = SecretCommand::RecordVersion {
        request_id: uuid::Uuid::new_v4(),
        version: 1,
        hash: hash("ab"),
        key_hashes: [("k".to_owned(), hash("cd"))].into(),
        by: Slug::parse("alice").unwrap(),
        at: chrono::Utc::now(),
    };
    let ctx = Context {
        actor: reactor,
        now: chrono::Utc::now(),
    };
    api.app
        .execute::<Secret>(
            &sealplane_control_plane::streams::secret(&uri),
            &record,
            &ctx,
            &CommandEnvelope::new("RecordVersion"),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn listing_secrets_comes_in_pages_that_together_hold_each_once_in_uri_order() {
    let api = Api::new().await;
    let alice = alice_with_a_secret(&api).await;
    with_a_version(&api, "local://alice/db").await;
    for name in ["e", "b", "d", "a"] {
        let uri = format!("local://alice/{name}");
        key_request(&api, &alice, &uri, v1::Purpose::Put)
            .await
            .unwrap();
        with_a_version(&api, &uri).await;
    }
    // One secret without a version is not listed (nor counted in a page).
    key_request(&api, &alice, "local://alice/c", v1::Purpose::Put)
        .await
        .unwrap();
    let secrets = SecretsApi::new(api.app.clone());
    let page = |token: String, size: u32| {
        let secrets = &secrets;
        let alice = alice.clone();
        async move {
            secrets
                .list_secrets(req(
                    v1::ListSecretsRequest {
                        options: None,
                        store: String::new(),
                        page_size: size,
                        page_token: token,
                    },
                    &alice,
                ))
                .await
                .map(|r| r.into_inner())
        }
    };
    let (mut seen, mut token, mut pages) = (vec![], String::new(), 0);
    loop {
        let reply = page(token, 2).await.unwrap();
        assert!(reply.secrets.len() <= 2);
        pages += 1;
        seen.extend(reply.secrets.into_iter().map(|s| s.uri));
        if reply.next_page_token.is_empty() {
            break;
        }
        token = reply.next_page_token;
    }
    assert_eq!(
        seen,
        ["a", "b", "d", "db", "e"].map(|n| format!("local://alice/{n}")),
        "each secret once, in uri order"
    );
    assert_eq!(pages, 3);
    // Without a size, one page of up to 1000 holds them all.
    let all = page(String::new(), 0).await.unwrap();
    assert_eq!(all.secrets.len(), 5);
    assert!(all.next_page_token.is_empty());
    // Bad input gets a sentence.
    let too_big = page(String::new(), 5001).await.unwrap_err();
    assert_eq!(too_big.code(), Code::InvalidArgument);
    assert!(too_big.message().contains("5000"), "{too_big:?}");
    let forged = page("not a uri".into(), 2).await.unwrap_err();
    assert_eq!(forged.code(), Code::InvalidArgument);
    assert!(forged.message().contains("page_token"), "{forged:?}");
}

#[tokio::test]
async fn a_put_refused_for_a_reused_command_id_leaves_no_new_secret_behind() {
    // Given alice's key request for a new secret, sent with command id X
    let api = Api::new().await;
    let alice = api.user("alice", "user").await;
    local_store(&api).await;
    let x = uuid::Uuid::new_v4().to_string();
    let put = |uri: &str| v1::RequestUploadKeyRequest {
        options: Some(v1::CommandOptions {
            command_id: x.clone(),
            correlation_id: String::new(),
        }),
        uri: uri.into(),
        purpose: v1::Purpose::Put as i32,
        adopt: false,
    };
    let secrets = SecretsApi::new(api.app.clone());
    secrets
        .request_upload_key(req(put("local://alice/a"), &alice))
        .await
        .unwrap();
    // When she sends X again for another new secret
    let refused = secrets
        .request_upload_key(req(put("local://alice/b"), &alice))
        .await
        .unwrap_err();
    // Then it is refused, and that secret was not created on the way
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let created: Vec<String> = api
        .store
        .read_all(Position::START, 1_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type.as_str() == "SecretCreated")
        .map(|e| e.stream_id.as_str().to_owned())
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(created[0].ends_with("alice/a"), "{created:?}");
}
